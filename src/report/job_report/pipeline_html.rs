//! The page of a pipeline: a summary, one row per node (its state, a bar of when it ran on
//! the pipeline's time axis, its job's figures), then each node's job sections.

use std::fmt::Write;

use crate::pipeline::dag::NodeState;
use crate::report::job_report::html::{card, foot, head, job_sections};
use crate::report::job_report::pipeline::{NodeRow, PipelineReport};
use crate::report::job_report::text::{dur, esc, kib, or_dash};
use crate::session::live::state_name;

pub fn page(p: &PipelineReport) -> String {
    let mut s = head(&format!(
        "runner report: pipeline {} ({})",
        p.pipeline, p.pipeline_id
    ));
    let _ = write!(
        s,
        r#"<header><h1>Pipeline {}</h1><div class="sub">pipeline <code>{}</code> · <span class="badge st-{}">{}</span> · exit code {}</div></header>"#,
        esc(&p.pipeline),
        esc(&p.pipeline_id),
        state_name(p.state),
        state_name(p.state),
        p.exit_code
    );
    s.push_str(&summary(p));
    s.push_str(&nodes(p));
    for r in &p.jobs {
        let node = p.nodes.iter().find(|n| n.job_id == r.job_id);
        s.push_str(&job_sections(r, Some(node.map_or(&r.job_id, |n| &n.node))));
    }
    s.push_str(&foot(p.generated_at));
    s
}

fn summary(p: &PipelineReport) -> String {
    let count = |st: NodeState| p.nodes.iter().filter(|n| n.state == st).count();
    let mut s = String::from(r#"<section id="summary"><div class="card-row">"#);
    card(
        &mut s,
        "jobs",
        &format!("{} / {}", count(NodeState::Completed), p.nodes.len()),
        &format!(
            "completed · {} failed · {} skipped · {} not run",
            count(NodeState::Failed),
            count(NodeState::Skipped),
            count(NodeState::Pending) + count(NodeState::Interrupted) + count(NodeState::Running)
        ),
    );
    card(
        &mut s,
        "wall time",
        &dur(p.wall_ms),
        &format!(
            "started {}",
            p.started_at.map(|t| t.to_string()).unwrap_or_default()
        ),
    );
    let items: usize = p.nodes.iter().map(|n| n.total).sum();
    let ok: usize = p.nodes.iter().map(|n| n.successful).sum();
    let dlq: usize = p.nodes.iter().map(|n| n.dlq).sum();
    card(
        &mut s,
        "items",
        &format!("{ok} / {items}"),
        &format!("succeeded, all jobs · {dlq} in DLQs"),
    );
    s.push_str("</div></section>");
    s
}

/// The node table: one row per node with a bar of when it ran.
fn nodes(p: &PipelineReport) -> String {
    let mut s = String::from(
        r#"<section id="nodes"><div class="panel"><h2>Jobs</h2><p class="note">One row per job of the pipeline, in file order; the bar shows when it ran within the pipeline's wall time. Hover a bar for its times.</p><table><tr><th>job</th><th>state</th><th style="width:30%">when</th><th class="n">items</th><th class="n">failed (DLQ)</th><th class="n">attempts</th><th class="n">wall time</th><th class="n">p50</th><th class="n">p95</th><th class="n">peak memory</th></tr>"#,
    );
    for n in &p.nodes {
        let _ = write!(
            s,
            r#"<tr><td><code>{0}</code><div class="d">{1}</div></td><td><span class="badge nd-{2}">{2}</span>{3}</td><td>{4}</td><td class="n">{5}/{6}</td><td class="n">{7} ({8})</td><td class="n">{9}</td><td class="n">{10}</td><td class="n">{11}</td><td class="n">{12}</td><td class="n">{13}</td></tr>"#,
            esc(&n.node),
            if n.needs.is_empty() {
                String::new()
            } else {
                format!("needs {}", esc(&n.needs.join(", ")))
            },
            n.state.name(),
            n.reason
                .as_ref()
                .map(|r| format!(r#"<div class="d">{}</div>"#, esc(r)))
                .unwrap_or_default(),
            bar(n, p.wall_ms),
            n.successful,
            n.total,
            n.failed,
            n.dlq,
            n.attempts,
            or_dash(n.ms, dur),
            or_dash(n.duration_p50_ms, dur),
            or_dash(n.duration_p95_ms, dur),
            or_dash(n.peak_rss_max_kb, kib)
        );
    }
    s.push_str("</table></div></section>");
    s
}

/// A node's span on the pipeline's time axis, as a one-row SVG.
fn bar(n: &NodeRow, wall_ms: u64) -> String {
    let (Some(start), Some(ms)) = (n.start_ms, n.ms) else {
        return r#"<span class="none">did not run</span>"#.into();
    };
    let end = wall_ms.max(1) as f64;
    let x = start as f64 / end * 1000.0;
    let w = (ms as f64 / end * 1000.0).max(2.0);
    let class = match n.state {
        NodeState::Completed => "o-ok",
        NodeState::Failed => "o-failed",
        NodeState::Interrupted => "o-retried",
        _ => "o-step",
    };
    format!(
        r#"<svg class="nodebar" viewBox="0 0 1000 16" preserveAspectRatio="none"><rect class="{class}" data-k="1" x="{x:.1}" y="2" width="{w:.1}" height="12"><title>{} · {} · from +{} for {}</title></rect></svg>"#,
        esc(&n.node),
        n.state.name(),
        dur(start),
        dur(ms)
    )
}
