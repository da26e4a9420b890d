//! `runner status [JOB] [--json]`

use std::io::Write;

use serde_json::json;

use crate::cli::args::{Global, StatusArgs};
use crate::cli::job_open::{display_state, open_job, read_meta, recover, snapshot_workflow};
use crate::state::job::JobView;
use crate::state::layout::{JobDir, StateDir};
use crate::state::lock::read_info;
use crate::state::records::JobState;

pub fn status(g: &Global, a: &StatusArgs) -> anyhow::Result<i32> {
    let state = StateDir::new(&g.state_dir);
    match &a.job {
        Some(id) => one(&state, id, a.json),
        None => table(&state, a.json),
    }
}

fn state_name(s: JobState) -> &'static str {
    match s {
        JobState::Running => "running",
        JobState::Paused => "paused",
        JobState::Interrupted => "interrupted",
        JobState::Completed => "completed",
        JobState::Failed => "failed",
        JobState::Stale => "stale",
    }
}

fn phase(view: &JobView, setup_total: usize, reduce_total: usize) -> &'static str {
    if !view.map_started {
        "setup"
    } else if !view.map_done {
        "map"
    } else if view.reduce_done < reduce_total {
        "reduce"
    } else {
        let _ = setup_total;
        "done"
    }
}

fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

/// The `status JOB --json` document (field names are documented in docs/cli.md).
fn job_doc(dir: &JobDir) -> anyhow::Result<serde_json::Value> {
    let meta = read_meta(dir)?;
    let view = recover(dir, false)?;
    let st = display_state(dir, &view);
    let (setup_total, reduce_total) = snapshot_workflow(dir, &meta)
        .map(|w| (w.setup.len(), w.reduce.len()))
        .unwrap_or((0, 0));
    let mut durations = view.durations();
    durations.sort_unstable();
    let finished = view.counts.total - view.counts.pending;
    // The journal's modification time is when anything was last recorded.
    let updated_at = std::fs::metadata(dir.journal())
        .and_then(|m| m.modified())
        .ok()
        .map(|t| humantime::format_rfc3339_millis(t).to_string())
        .or(view.updated_at.clone());
    let elapsed = elapsed_secs(view.started_at.as_deref(), updated_at.as_deref());
    let live = matches!(st, JobState::Running | JobState::Paused | JobState::Stale);
    let lock = if live { read_info(&dir.lock()) } else { None };
    let heartbeat_age = lock.as_ref().and_then(|l| age_secs(&l.heartbeat_at));
    Ok(json!({
        "job_id": meta.job_id,
        "workflow": meta.workflow_name,
        "workflow_path": meta.workflow_path,
        "state": state_name(st),
        "phase": phase(&view, setup_total, reduce_total),
        "total": view.counts.total,
        "successful": view.counts.successful,
        "failed": view.counts.failed_total(),
        "pending": view.counts.pending,
        "dlq": view.counts.dlq,
        "skipped_failed": view.counts.failed,
        "purged": view.counts.purged,
        "runs": view.runs,
        "setup": { "done": view.setup_done, "total": setup_total },
        "reduce": { "done": view.reduce_done, "total": reduce_total },
        "created_at": meta.created_at,
        "started_at": view.started_at,
        "updated_at": updated_at,
        "durations_ms": { "p50": percentile(&durations, 0.5), "p95": percentile(&durations, 0.95) },
        "throughput_per_s": elapsed.filter(|e| *e > 0.0).map(|e| (finished as f64 / e * 10.0).round() / 10.0),
        "lock": lock.map(|l| json!({
            "pid": l.pid, "host": l.host, "command": l.command,
            "started_at": l.started_at, "heartbeat_at": l.heartbeat_at,
        })),
        "heartbeat_age_s": heartbeat_age,
        "paused": view.paused().map(|p| json!({ "since": p.paused_at, "reason": p.reason })),
        "pause_history": view.pauses.iter().map(|p| json!({
            "paused_at": p.paused_at,
            "resumed_at": p.resumed_at,
            "duration_s": p.resumed_at.as_deref().and_then(|r| elapsed_secs(Some(&p.paused_at), Some(r))),
            "reason": p.reason,
        })).collect::<Vec<_>>(),
    }))
}

fn parse_time(t: &str) -> Option<std::time::SystemTime> {
    humantime::parse_rfc3339_weak(t)
        .ok()
        .or_else(|| humantime::parse_rfc3339(t).ok())
}

fn elapsed_secs(from: Option<&str>, to: Option<&str>) -> Option<f64> {
    let (a, b) = (parse_time(from?)?, parse_time(to?)?);
    b.duration_since(a).ok().map(|d| d.as_secs_f64())
}

fn age_secs(t: &str) -> Option<f64> {
    std::time::SystemTime::now()
        .duration_since(parse_time(t)?)
        .ok()
        .map(|d| (d.as_secs_f64() * 10.0).round() / 10.0)
}

fn one(state: &StateDir, id: &str, json_out: bool) -> anyhow::Result<i32> {
    let dir = open_job(state, id)?;
    let d = job_doc(&dir)?;
    let mut out = std::io::stdout().lock();
    if json_out {
        let _ = writeln!(out, "{}", serde_json::to_string_pretty(&d)?);
        return Ok(0);
    }
    let s = |k: &str| {
        d[k].as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| d[k].to_string())
    };
    let mut lines = vec![
        format!("job:        {}", s("job_id")),
        format!("workflow:   {} ({})", s("workflow"), s("workflow_path")),
        format!("state:      {} (phase: {})", s("state"), s("phase")),
        format!(
            "items:      {} total, {} succeeded, {} failed ({} in DLQ), {} pending",
            d["total"], d["successful"], d["failed"], d["dlq"], d["pending"]
        ),
        format!(
            "setup:      {}/{} steps   reduce: {}/{} steps",
            d["setup"]["done"], d["setup"]["total"], d["reduce"]["done"], d["reduce"]["total"]
        ),
        format!(
            "runs:       {}   started: {}   updated: {}",
            d["runs"],
            s("started_at"),
            s("updated_at")
        ),
    ];
    if let (Some(p50), Some(p95)) = (
        d["durations_ms"]["p50"].as_u64(),
        d["durations_ms"]["p95"].as_u64(),
    ) {
        lines.push(format!(
            "durations:  p50 {p50} ms, p95 {p95} ms   throughput: {} items/s",
            d["throughput_per_s"]
        ));
    }
    if let Some(l) = d["lock"].as_object() {
        lines.push(format!(
            "lock:       pid {} on {} (`{}`) since {}, heartbeat {}s ago",
            l["pid"],
            l["host"].as_str().unwrap_or("?"),
            l["command"].as_str().unwrap_or("?"),
            l["started_at"].as_str().unwrap_or("?"),
            d["heartbeat_age_s"]
        ));
    }
    if let Some(p) = d["paused"].as_object() {
        lines.push(format!(
            "paused:     since {}{}",
            p["since"].as_str().unwrap_or("?"),
            p["reason"]
                .as_str()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        ));
    }
    if let Some(h) = d["pause_history"].as_array().filter(|h| !h.is_empty()) {
        lines.push("pauses:".into());
        for p in h {
            lines.push(format!(
                "  {} -> {}{}{}",
                p["paused_at"].as_str().unwrap_or("?"),
                p["resumed_at"].as_str().unwrap_or("(still paused)"),
                p["duration_s"]
                    .as_f64()
                    .map(|d| format!(", {d:.1}s"))
                    .unwrap_or_default(),
                p["reason"]
                    .as_str()
                    .map(|r| format!(", reason: {r}"))
                    .unwrap_or_default()
            ));
        }
    }
    for l in lines {
        if writeln!(out, "{l}").is_err() {
            break;
        }
    }
    Ok(0)
}

fn table(state: &StateDir, json_out: bool) -> anyhow::Result<i32> {
    let mut docs = Vec::new();
    for id in state.list_jobs()? {
        let dir = state.job(&id)?;
        match job_doc(&dir) {
            Ok(d) => docs.push(d),
            Err(e) => {
                docs.push(json!({ "job_id": id, "state": "unreadable", "error": format!("{e:#}") }))
            }
        }
    }
    let mut out = std::io::stdout().lock();
    if json_out {
        let _ = writeln!(out, "{}", serde_json::to_string_pretty(&docs)?);
        return Ok(0);
    }
    if docs.is_empty() {
        crate::cli::out::errln!("runner: no jobs in {}", state.root().display());
        return Ok(0);
    }
    let _ = writeln!(
        out,
        "{:<40} {:<16} {:<12} {:>22}  {:<24} {:<24}",
        "JOB", "WORKFLOW", "STATE", "DONE/FAILED/TOTAL", "STARTED", "UPDATED"
    );
    for d in docs {
        let str_of = |k: &str| d[k].as_str().unwrap_or("-").to_owned();
        let counts = match d.get("error") {
            Some(_) => "-".to_owned(),
            None => format!("{}/{}/{}", d["successful"], d["failed"], d["total"]),
        };
        let mut row = format!(
            "{:<40} {:<16} {:<12} {:>22}  {:<24} {:<24}",
            str_of("job_id"),
            str_of("workflow"),
            str_of("state"),
            counts,
            str_of("started_at"),
            str_of("updated_at")
        );
        if let Some(e) = d.get("error").and_then(|e| e.as_str()) {
            row.push_str(&format!("\n    cannot read this job: {e}"));
        }
        if writeln!(out, "{}", row.trim_end()).is_err() {
            break;
        }
    }
    Ok(0)
}
