//! A pipeline's report: one row per node (its job's figures), then each node's job report.
//! Pipelines are not in this build yet; this is the shape they plug into: collect each
//! node's [`JobReport`] (from its job directory, with [`super::build`]) and render them
//! with [`page`].

use serde::Serialize;

use crate::report::job_report::html::{foot, head, job_sections};
use crate::report::job_report::model::JobReport;
use crate::report::job_report::text::{dur, esc, kib, or_dash};
use crate::session::live::state_name;
use crate::state::records::JobState;

/// One node of a pipeline, as its row in the report.
#[derive(Debug, Clone, Serialize)]
pub struct NodeRow {
    pub node: String,
    pub job_id: String,
    pub state: JobState,
    pub total: usize,
    pub successful: usize,
    pub failed: usize,
    pub wall_ms: u64,
    pub throughput_per_s: Option<f64>,
    pub duration_p50_ms: Option<u64>,
    pub duration_p95_ms: Option<u64>,
    pub peak_rss_max_kb: Option<u64>,
}

impl NodeRow {
    pub fn of(node: &str, r: &JobReport) -> NodeRow {
        let m = &r.summary;
        NodeRow {
            node: node.to_owned(),
            job_id: r.job_id.clone(),
            state: r.state,
            total: m.total,
            successful: m.successful,
            failed: m.failed,
            wall_ms: m.wall_ms,
            throughput_per_s: m.throughput_per_s,
            duration_p50_ms: m.duration_ms.p50,
            duration_p95_ms: m.duration_ms.p95,
            peak_rss_max_kb: m.peak_rss_kb.max,
        }
    }
}

/// What `runner report` prints for a pipeline with `--json`.
#[derive(Debug, Clone, Serialize)]
pub struct PipelineReport {
    pub pipeline: String,
    pub nodes: Vec<NodeRow>,
    pub jobs: Vec<JobReport>,
}

impl PipelineReport {
    /// `(node name, its job's report)` in pipeline order.
    pub fn new(pipeline: &str, nodes: Vec<(String, JobReport)>) -> PipelineReport {
        PipelineReport {
            pipeline: pipeline.to_owned(),
            nodes: nodes.iter().map(|(n, r)| NodeRow::of(n, r)).collect(),
            jobs: nodes.into_iter().map(|(_, r)| r).collect(),
        }
    }
}

/// The page of a pipeline: the node table, then each node's sections.
pub fn page(p: &PipelineReport) -> String {
    let mut s = head(&format!("runner report: pipeline {}", p.pipeline));
    s.push_str(&format!(
        r#"<header><h1>Pipeline {}</h1></header><section id="nodes"><div class="panel"><h2>Nodes</h2><table><tr><th>node</th><th>job</th><th>state</th><th class="n">items</th><th class="n">failed</th><th class="n">wall time</th><th class="n">p50</th><th class="n">p95</th><th class="n">peak memory</th></tr>"#,
        esc(&p.pipeline)
    ));
    for n in &p.nodes {
        s.push_str(&format!(
            r#"<tr><td>{}</td><td class="id">{}</td><td>{}</td><td class="n">{}/{}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td></tr>"#,
            esc(&n.node),
            esc(&n.job_id),
            state_name(n.state),
            n.successful,
            n.total,
            n.failed,
            dur(n.wall_ms),
            or_dash(n.duration_p50_ms, dur),
            or_dash(n.duration_p95_ms, dur),
            or_dash(n.peak_rss_max_kb, kib)
        ));
    }
    s.push_str("</table></div></section>");
    for r in &p.jobs {
        s.push_str(&job_sections(r, false));
    }
    if let Some(last) = p.jobs.last() {
        s.push_str(&foot(last));
    } else {
        s.push_str("</body></html>\n");
    }
    s
}
