//! `runner status` of a pipeline: its state and its nodes (state, item counts, duration).
//! Field names are documented in docs/pipelines.md and kept stable.

use serde::Serialize;

use crate::state::time::Timestamp;

use crate::pipeline::dag::NodeState;
use crate::pipeline::journal::{read_view, snapshot_path};
use crate::pipeline::load::node_job_id;
use crate::pipeline::raw::RawPipeline;
use crate::pipeline::run::read_pipeline_meta;
use crate::session::error::SessionError;
use crate::session::status::{Holder, PausedNow, job_status};
use crate::state::layout::{JobDir, StateDir};
use crate::state::lock::{is_held, read_info};
use crate::state::records::JobState;
use crate::state::recover::{STALE_AFTER, heartbeat_age};

/// One node in `status --json` of a pipeline.
#[derive(Debug, Clone, Serialize)]
pub struct NodeStatus {
    pub node: String,
    pub job_id: String,
    pub state: NodeState,
    pub needs: Vec<String>,
    /// Item counts of its job (0 before it started).
    pub total: usize,
    pub successful: usize,
    pub failed: usize,
    pub dlq: usize,
    pub pending: usize,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    pub duration_ms: Option<u64>,
    pub exit_code: Option<i32>,
    /// Why it failed or was skipped.
    pub reason: Option<String>,
}

/// `status <pipeline-id> --json`; counts are of nodes, `dlq` of items in the nodes' DLQs.
#[derive(Debug, Clone, Serialize)]
pub struct PipelineStatus {
    pub job_id: String,
    /// Always `pipeline`.
    pub kind: &'static str,
    pub pipeline: String,
    pub pipeline_path: std::path::PathBuf,
    pub state: JobState,
    pub total: usize,
    pub successful: usize,
    pub failed: usize,
    pub skipped: usize,
    pub running: usize,
    pub pending: usize,
    pub dlq: usize,
    pub runs: u32,
    pub created_at: Timestamp,
    pub started_at: Option<Timestamp>,
    pub updated_at: Option<Timestamp>,
    pub lock: Option<Holder>,
    pub paused: Option<PausedNow>,
    pub nodes: Vec<NodeStatus>,
}

fn ms_between(a: &Option<Timestamp>, b: &Option<Timestamp>) -> Option<u64> {
    Some(b.as_ref()?.since(*a.as_ref()?).as_millis() as u64)
}

pub fn pipeline_status(state: &StateDir, dir: &JobDir) -> Result<PipelineStatus, SessionError> {
    let meta = read_pipeline_meta(dir)?;
    let view = read_view(dir)?;
    let live = is_held(&dir.lock());
    let info = if live { read_info(&dir.lock()) } else { None };
    let st = if live {
        if info
            .as_ref()
            .and_then(heartbeat_age)
            .is_some_and(|a| a > STALE_AFTER)
        {
            JobState::Stale
        } else if view.paused.is_some() {
            JobState::Paused
        } else {
            JobState::Running
        }
    } else {
        view.recorded_state()
    };
    // Node order and needs from the pipeline as it started (without loading workflows).
    let text = std::fs::read_to_string(snapshot_path(dir)).unwrap_or_default();
    let order: Vec<(String, Vec<String>)> = match serde_saphyr::from_str::<RawPipeline>(&text) {
        Ok(raw) => raw
            .jobs
            .value
            .0
            .iter()
            .map(|(n, node)| {
                let needs = node
                    .value
                    .needs
                    .as_ref()
                    .map(|l| l.value.iter().map(|s| s.value.clone()).collect())
                    .unwrap_or_default();
                (n.clone(), needs)
            })
            .collect(),
        Err(_) => view.nodes.keys().map(|k| (k.clone(), Vec::new())).collect(),
    };
    let mut nodes = Vec::new();
    for (name, needs) in order {
        let entry = view.nodes.get(&name).cloned().unwrap_or_default();
        let job_id = node_job_id(&meta.pipeline_id, &name);
        let mut node_state = entry.state;
        if node_state == NodeState::Running && !live {
            node_state = NodeState::Interrupted;
        }
        let counts = state
            .job(&job_id)
            .ok()
            .filter(|d| d.exists())
            .and_then(|d| job_status(&d).ok())
            .map(|j| (j.total, j.successful, j.failed, j.dlq, j.pending));
        let (total, successful, failed, dlq, pending) = counts.unwrap_or((0, 0, 0, 0, 0));
        nodes.push(NodeStatus {
            node: name,
            job_id,
            state: node_state,
            needs,
            total,
            successful,
            failed,
            dlq,
            pending,
            duration_ms: ms_between(&entry.started_at, &entry.finished_at),
            started_at: entry.started_at,
            finished_at: entry.finished_at,
            exit_code: entry.exit_code,
            reason: entry.reason,
        });
    }
    let count = |s: NodeState| nodes.iter().filter(|n| n.state == s).count();
    Ok(PipelineStatus {
        job_id: meta.pipeline_id.clone(),
        kind: "pipeline",
        pipeline: meta.name.clone(),
        pipeline_path: meta.pipeline_path.clone(),
        state: st,
        total: nodes.len(),
        successful: count(NodeState::Completed),
        failed: count(NodeState::Failed),
        skipped: count(NodeState::Skipped),
        running: count(NodeState::Running),
        pending: count(NodeState::Pending) + count(NodeState::Interrupted),
        dlq: nodes.iter().map(|n| n.dlq).sum(),
        runs: view.runs,
        created_at: meta.created_at,
        started_at: view.started_at,
        updated_at: view.updated_at,
        lock: info.map(|l| Holder {
            pid: l.pid,
            host: l.host,
            command: l.command,
            started_at: l.started_at,
            heartbeat_at: l.heartbeat_at,
        }),
        paused: view
            .paused
            .map(|(since, reason)| PausedNow { since, reason }),
        nodes,
    })
}
