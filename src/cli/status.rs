//! `runner status [JOB] [--json]`

use std::io::Write;

use crate::cli::args::{Global, StatusArgs};
use crate::session::live::state_name;
use crate::session::open::open_job;
use crate::session::status::{JobStatus, Row, all_jobs, job_status};
use crate::state::layout::StateDir;
use crate::state::time::Timestamp;
use crate::state::usage::bytes_text;

pub fn status(g: &Global, a: &StatusArgs) -> anyhow::Result<i32> {
    let state = StateDir::new(&g.state_dir);
    match &a.job {
        Some(id) => one(&state, id, a.json),
        None => table(&state, a.json),
    }
}

fn or_dash(v: &Option<Timestamp>) -> String {
    v.map(|t| t.to_string()).unwrap_or_else(|| "-".into())
}

fn one(state: &StateDir, id: &str, json_out: bool) -> anyhow::Result<i32> {
    let dir = open_job(state, id)?;
    if crate::pipeline::journal::is_pipeline(&dir) {
        return pipeline(state, &dir, json_out);
    }
    let d = job_status(&dir)?;
    let mut out = std::io::stdout().lock();
    if json_out {
        let _ = writeln!(out, "{}", serde_json::to_string_pretty(&d)?);
        return Ok(0);
    }
    for l in details(&d) {
        if writeln!(out, "{l}").is_err() {
            break;
        }
    }
    Ok(0)
}

fn details(d: &JobStatus) -> Vec<String> {
    let mut lines = vec![
        format!("job:        {}", d.job_id),
        format!("workflow:   {} ({})", d.workflow, d.workflow_path.display()),
        format!("state:      {} (phase: {})", state_name(d.state), d.phase),
        format!(
            "items:      {} total, {} succeeded, {} failed ({} in DLQ), {} pending",
            d.total, d.successful, d.failed, d.dlq, d.pending
        ),
        format!(
            "setup:      {}/{} steps   reduce: {}/{} steps",
            d.setup.done, d.setup.total, d.reduce.done, d.reduce.total
        ),
        format!(
            "runs:       {}   started: {}   updated: {}",
            d.runs,
            or_dash(&d.started_at),
            or_dash(&d.updated_at)
        ),
    ];
    if let (Some(p50), Some(p95)) = (d.durations_ms.p50, d.durations_ms.p95) {
        lines.push(format!(
            "durations:  p50 {p50} ms, p95 {p95} ms   throughput: {} items/s",
            d.throughput_per_s
                .map(|t| t.to_string())
                .unwrap_or_else(|| "-".into())
        ));
    }
    if let (Some(r), Some(c)) = (d.peak_rss_kb.max, d.cpu_ms.max) {
        let mem = |v: Option<u64>| v.map(|kb| bytes_text(kb * 1024)).unwrap_or_default();
        let cpu = |v: Option<u64>| v.map(|ms| format!("{ms} ms")).unwrap_or_default();
        lines.push(format!(
            "memory:     p50 {}, p95 {}, max {}   CPU: p50 {}, p95 {}, max {}",
            mem(d.peak_rss_kb.p50),
            mem(d.peak_rss_kb.p95),
            mem(Some(r)),
            cpu(d.cpu_ms.p50),
            cpu(d.cpu_ms.p95),
            cpu(Some(c))
        ));
    }
    if let Some(l) = &d.lock {
        lines.push(format!(
            "lock:       pid {} on {} (`{}`) since {}, heartbeat {}s ago",
            l.pid,
            l.host,
            l.command,
            l.started_at,
            d.heartbeat_age_s
                .map(|a| a.to_string())
                .unwrap_or_else(|| "?".into())
        ));
    }
    if let Some(p) = &d.paused {
        lines.push(format!(
            "paused:     since {}{}",
            p.since,
            p.reason
                .as_ref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        ));
    }
    if !d.pause_history.is_empty() {
        lines.push("pauses:".into());
        for p in &d.pause_history {
            lines.push(format!(
                "  {} -> {}{}{}",
                p.paused_at,
                p.resumed_at
                    .map(|t| t.to_string())
                    .unwrap_or_else(|| "(still paused)".into()),
                p.duration_s
                    .map(|d| format!(", {d:.1}s"))
                    .unwrap_or_default(),
                p.reason
                    .as_ref()
                    .map(|r| format!(", reason: {r}"))
                    .unwrap_or_default()
            ));
        }
    }
    lines
}

fn table(state: &StateDir, json_out: bool) -> anyhow::Result<i32> {
    let rows = all_jobs(state)?;
    let mut out = std::io::stdout().lock();
    if json_out {
        let _ = writeln!(out, "{}", serde_json::to_string_pretty(&rows)?);
        return Ok(0);
    }
    if rows.is_empty() {
        crate::cli::out::errln!("runner: no jobs in {}", state.root().display());
        return Ok(0);
    }
    let _ = writeln!(
        out,
        "{:<40} {:<16} {:<12} {:>22}  {:<24} {:<24}",
        "JOB", "WORKFLOW", "STATE", "DONE/FAILED/TOTAL", "STARTED", "UPDATED"
    );
    for row in &rows {
        let line = match row {
            Row::Job(d) => format!(
                "{:<40} {:<16} {:<12} {:>22}  {:<24} {:<24}",
                d.job_id,
                d.workflow,
                state_name(d.state),
                format!("{}/{}/{}", d.successful, d.failed, d.total),
                or_dash(&d.started_at),
                or_dash(&d.updated_at)
            ),
            Row::Pipeline(d) => format!(
                "{:<40} {:<16} {:<12} {:>22}  {:<24} {:<24}",
                d.job_id,
                format!("{} (pipeline)", d.pipeline),
                state_name(d.state),
                format!("{}/{}/{} jobs", d.successful, d.failed, d.total),
                or_dash(&d.started_at),
                or_dash(&d.updated_at)
            ),
            Row::Unreadable {
                job_id,
                state,
                error,
            } => format!(
                "{job_id:<40} {:<16} {state:<12} {:>22}\n    cannot read this job: {error}",
                "-", "-"
            ),
        };
        if writeln!(out, "{}", line.trim_end()).is_err() {
            break;
        }
    }
    Ok(0)
}

fn pipeline(
    state: &StateDir,
    dir: &crate::state::layout::JobDir,
    json_out: bool,
) -> anyhow::Result<i32> {
    let d = crate::pipeline::status::pipeline_status(state, dir)?;
    if json_out {
        crate::cli::out::line(&serde_json::to_string_pretty(&d)?);
        return Ok(0);
    }
    let mut lines = vec![
        format!("pipeline:   {}", d.job_id),
        format!("file:       {} ({})", d.pipeline, d.pipeline_path.display()),
        format!("state:      {}", state_name(d.state)),
        format!(
            "jobs:       {} total, {} completed, {} failed, {} skipped, {} running, {} pending",
            d.total, d.successful, d.failed, d.skipped, d.running, d.pending
        ),
        format!(
            "runs:       {}   started: {}   updated: {}",
            d.runs,
            or_dash(&d.started_at),
            or_dash(&d.updated_at)
        ),
    ];
    if let Some(l) = &d.lock {
        lines.push(format!(
            "lock:       pid {} on {} since {}",
            l.pid, l.host, l.started_at
        ));
    }
    if let Some(p) = &d.paused {
        lines.push(format!("paused:     since {}", p.since));
    }
    lines.push(format!(
        "{:<16} {:<12} {:>20} {:>10}  {}",
        "JOB", "STATE", "DONE/FAILED/TOTAL", "DURATION", "JOB ID"
    ));
    for n in &d.nodes {
        let mut row = format!(
            "{:<16} {:<12} {:>20} {:>10}  {}",
            n.node,
            n.state.name(),
            format!("{}/{}/{}", n.successful, n.failed, n.total),
            n.duration_ms
                .map(|ms| format!("{:.1}s", ms as f64 / 1000.0))
                .unwrap_or_else(|| "-".into()),
            n.job_id
        );
        if let Some(r) = &n.reason {
            row.push_str(&format!("  ({r})"));
        }
        lines.push(row);
    }
    for l in lines {
        if !crate::cli::out::line(&l) {
            break;
        }
    }
    Ok(0)
}
