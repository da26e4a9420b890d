//! A pipeline's report: one row per node (its state, when it ran, its job's figures), then
//! each node's job report. `--json` prints [`PipelineReport`].

use serde::Serialize;

use crate::pipeline::dag::NodeState;
use crate::pipeline::status::{NodeStatus, pipeline_status};
use crate::report::job_report::model::{FORMAT_VERSION, JobReport};
use crate::report::job_report::{build_from, load};
use crate::session::error::SessionError;
use crate::state::layout::{JobDir, StateDir};
use crate::state::records::JobState;
use crate::state::time::Timestamp;

/// One node of a pipeline, as its row in the report.
#[derive(Debug, Clone, Serialize)]
pub struct NodeRow {
    pub node: String,
    pub job_id: String,
    pub state: NodeState,
    pub needs: Vec<String>,
    /// When it started, in ms after the pipeline's start (`None`: it did not start).
    pub start_ms: Option<u64>,
    /// How long it ran (so far, when it is running).
    pub ms: Option<u64>,
    pub total: usize,
    pub successful: usize,
    pub failed: usize,
    pub dlq: usize,
    pub attempts: usize,
    pub throughput_per_s: Option<f64>,
    pub duration_p50_ms: Option<u64>,
    pub duration_p95_ms: Option<u64>,
    pub peak_rss_max_kb: Option<u64>,
    /// Why it failed or was skipped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What `runner report <pipeline-id>` shows, and prints with `--json`.
#[derive(Debug, Clone, Serialize)]
pub struct PipelineReport {
    pub format_version: u32,
    /// Always `pipeline`.
    pub kind: &'static str,
    pub pipeline_id: String,
    pub pipeline: String,
    pub state: JobState,
    pub exit_code: i32,
    pub generated_at: Timestamp,
    pub started_at: Option<Timestamp>,
    /// From the pipeline's start to its last node's end (or now, while one runs).
    pub wall_ms: u64,
    /// In pipeline file order.
    pub nodes: Vec<NodeRow>,
    /// The report of each node that has a job, in the same order.
    pub jobs: Vec<JobReport>,
}

/// The report of the pipeline in `dir`: its status, and each node's job report.
pub fn pipeline_report(state: &StateDir, dir: &JobDir) -> Result<PipelineReport, SessionError> {
    let st = pipeline_status(state, dir)?;
    let origin = st
        .started_at
        .or_else(|| st.nodes.iter().filter_map(|n| n.started_at).min());
    let now = Timestamp::now();
    let ms_after = |t: Timestamp| origin.map_or(0, |o| t.since(o).as_millis() as u64);
    let mut nodes = Vec::new();
    let mut jobs = Vec::new();
    for n in &st.nodes {
        let job_dir = state.job(&n.job_id).ok().filter(JobDir::exists);
        let report = match job_dir {
            Some(d) => Some(build_from(&load(&d)?)),
            None => None,
        };
        nodes.push(row(n, report.as_ref(), &ms_after, now));
        jobs.extend(report);
    }
    let wall_ms = nodes
        .iter()
        .filter_map(|n| Some(n.start_ms? + n.ms?))
        .max()
        .unwrap_or(0);
    Ok(PipelineReport {
        format_version: FORMAT_VERSION,
        kind: "pipeline",
        pipeline_id: st.job_id.clone(),
        pipeline: st.pipeline.clone(),
        state: st.state,
        exit_code: crate::error::job_exit_code(st.state, None),
        generated_at: now,
        started_at: origin,
        wall_ms,
        nodes,
        jobs,
    })
}

fn row(
    n: &NodeStatus,
    r: Option<&JobReport>,
    ms_after: &dyn Fn(Timestamp) -> u64,
    now: Timestamp,
) -> NodeRow {
    let end = n
        .finished_at
        .or((n.state == NodeState::Running).then_some(now));
    let m = r.map(|r| &r.summary);
    NodeRow {
        node: n.node.clone(),
        job_id: n.job_id.clone(),
        state: n.state,
        needs: n.needs.clone(),
        start_ms: n.started_at.map(ms_after),
        ms: n
            .started_at
            .zip(end)
            .map(|(s, e)| e.since(s).as_millis() as u64),
        total: n.total,
        successful: n.successful,
        failed: n.failed,
        dlq: n.dlq,
        attempts: m.map_or(0, |m| m.attempts),
        throughput_per_s: m.and_then(|m| m.throughput_per_s),
        duration_p50_ms: m.and_then(|m| m.duration_ms.p50),
        duration_p95_ms: m.and_then(|m| m.duration_ms.p95),
        peak_rss_max_kb: m.and_then(|m| m.peak_rss_kb.max),
        reason: n.reason.clone(),
    }
}
