//! `runner status`: what a job's files say about it, as the documents `status --json`
//! prints (field names are documented in docs/cli.md and kept stable).

use serde::Serialize;

use crate::report::stats::{Spread, percentile};
use crate::session::error::SessionError;
use crate::session::open::{read_meta, snapshot_workflow};
use crate::state::job::JobView;
use crate::state::layout::{JobDir, StateDir};
use crate::state::lock::read_info;
use crate::state::records::JobState;
use crate::state::recover::{display_state, recover};
use crate::state::time::Timestamp;

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Progress {
    pub done: usize,
    pub total: usize,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Percentiles {
    pub p50: Option<u64>,
    pub p95: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Holder {
    pub pid: u32,
    pub host: String,
    pub command: String,
    pub started_at: String,
    pub heartbeat_at: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct PausedNow {
    pub since: Timestamp,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PauseEntry {
    pub paused_at: Timestamp,
    pub resumed_at: Option<Timestamp>,
    pub duration_s: Option<f64>,
    pub reason: Option<String>,
}

/// The `status JOB --json` document.
#[derive(Debug, Clone, Serialize)]
pub struct JobStatus {
    pub job_id: String,
    pub workflow: String,
    pub workflow_path: std::path::PathBuf,
    pub state: JobState,
    /// `setup`, `map`, `reduce` or `done`.
    pub phase: &'static str,
    pub total: usize,
    pub successful: usize,
    /// DLQ + skipped + purged.
    pub failed: usize,
    pub pending: usize,
    pub dlq: usize,
    pub skipped_failed: usize,
    pub purged: usize,
    pub runs: u32,
    pub setup: Progress,
    pub reduce: Progress,
    pub created_at: Timestamp,
    pub started_at: Option<Timestamp>,
    pub updated_at: Option<Timestamp>,
    pub durations_ms: Percentiles,
    /// Peak resident memory (KiB) of each item's last attempt: p50, p95, max.
    pub peak_rss_kb: Spread,
    /// CPU time (ms, user + system) of each item's last attempt: p50, p95, max.
    pub cpu_ms: Spread,
    pub throughput_per_s: Option<f64>,
    pub lock: Option<Holder>,
    pub heartbeat_age_s: Option<f64>,
    pub paused: Option<PausedNow>,
    pub pause_history: Vec<PauseEntry>,
}

/// One row of `status --json` without a job: a job, or one that cannot be read.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Row {
    Job(Box<JobStatus>),
    Pipeline(Box<crate::pipeline::status::PipelineStatus>),
    Unreadable {
        job_id: String,
        /// Always `unreadable`.
        state: &'static str,
        error: String,
    },
}

fn phase(view: &JobView, reduce_total: usize) -> &'static str {
    if !view.map_started {
        "setup"
    } else if !view.map_done {
        "map"
    } else if view.reduce_done < reduce_total {
        "reduce"
    } else {
        "done"
    }
}

fn elapsed_secs(from: Option<Timestamp>, to: Option<Timestamp>) -> Option<f64> {
    Some(to?.since(from?).as_secs_f64())
}

fn age_secs(t: Timestamp) -> f64 {
    (t.age().as_secs_f64() * 10.0).round() / 10.0
}

/// The status of the job in `dir`.
pub fn job_status(dir: &JobDir) -> Result<JobStatus, SessionError> {
    let meta = read_meta(dir)?;
    let view = recover(dir, false)?;
    let st = display_state(dir, &view);
    let (setup_total, reduce_total) = snapshot_workflow(dir, &meta)
        .map(|w| (w.setup.len(), w.reduce.len()))
        .unwrap_or((0, 0));
    let mut durations = view.durations();
    durations.sort_unstable();
    let (rss, cpu) = view.usages();
    let finished = view.counts.total - view.counts.pending;
    // The journal's modification time is when anything was last recorded.
    let updated_at = std::fs::metadata(dir.journal())
        .and_then(|m| m.modified())
        .ok()
        .map(Timestamp::from)
        .or(view.updated_at);
    let elapsed = elapsed_secs(view.started_at, updated_at);
    let live = matches!(st, JobState::Running | JobState::Paused | JobState::Stale);
    let lock = if live { read_info(&dir.lock()) } else { None };
    Ok(JobStatus {
        job_id: meta.job_id,
        workflow: meta.workflow_name,
        workflow_path: meta.workflow_path,
        state: st,
        phase: phase(&view, reduce_total),
        total: view.counts.total,
        successful: view.counts.successful,
        failed: view.counts.failed_total(),
        pending: view.counts.pending,
        dlq: view.counts.dlq,
        skipped_failed: view.counts.failed,
        purged: view.counts.purged,
        runs: view.runs,
        setup: Progress {
            done: view.setup_done,
            total: setup_total,
        },
        reduce: Progress {
            done: view.reduce_done,
            total: reduce_total,
        },
        created_at: meta.created_at,
        started_at: view.started_at,
        updated_at,
        durations_ms: Percentiles {
            p50: percentile(&durations, 0.5),
            p95: percentile(&durations, 0.95),
        },
        peak_rss_kb: Spread::of(rss),
        cpu_ms: Spread::of(cpu),
        throughput_per_s: elapsed
            .filter(|e| *e > 0.0)
            .map(|e| (finished as f64 / e * 10.0).round() / 10.0),
        heartbeat_age_s: lock
            .as_ref()
            .and_then(|l| l.heartbeat_at.parse::<Timestamp>().ok())
            .map(age_secs),
        lock: lock.map(|l| Holder {
            pid: l.pid,
            host: l.host,
            command: l.command,
            started_at: l.started_at,
            heartbeat_at: l.heartbeat_at,
        }),
        paused: view.paused().map(|p| PausedNow {
            since: p.paused_at,
            reason: p.reason.clone(),
        }),
        pause_history: view
            .pauses
            .iter()
            .map(|p| PauseEntry {
                paused_at: p.paused_at,
                resumed_at: p.resumed_at,
                duration_s: elapsed_secs(Some(p.paused_at), p.resumed_at),
                reason: p.reason.clone(),
            })
            .collect(),
    })
}

/// Every job of the state directory, readable or not.
pub fn all_jobs(state: &StateDir) -> Result<Vec<Row>, SessionError> {
    let mut rows = Vec::new();
    for id in state.list_jobs()? {
        let dir = state.job(&id)?;
        if crate::pipeline::journal::is_pipeline(&dir) {
            rows.push(
                match crate::pipeline::status::pipeline_status(state, &dir) {
                    Ok(s) => Row::Pipeline(Box::new(s)),
                    Err(e) => Row::Unreadable {
                        job_id: id,
                        state: "unreadable",
                        error: crate::session::runtime::error_chain(&e),
                    },
                },
            );
            continue;
        }
        rows.push(match job_status(&dir) {
            Ok(s) => Row::Job(Box::new(s)),
            Err(e) => Row::Unreadable {
                job_id: id,
                state: "unreadable",
                error: crate::session::runtime::error_chain(&e),
            },
        });
    }
    Ok(rows)
}
