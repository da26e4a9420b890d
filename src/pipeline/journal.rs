//! A pipeline's directory in the state directory (`jobs/<pipeline-id>/`): its metadata, the
//! pipeline file as it started, and an append-only journal of node starts and ends, read
//! back tolerating a torn tail (the same durable JSONL primitive as a job's DLQ).
//!
//! ```text
//! pipeline.json  pipeline.yml  pipeline.jsonl  lock  control/  notifications.jsonl
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::state::time::Timestamp;

use crate::pipeline::dag::NodeState;
use crate::state::error::StateError;
use crate::state::jsonl::{Framing, append_durable, read_all};
use crate::state::layout::JobDir;
use crate::state::records::JobState;

/// `pipeline.json`: what is fixed when the pipeline is created.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PipelineMeta {
    pub pipeline_id: String,
    pub name: String,
    /// Absolute path of the pipeline file.
    pub pipeline_path: PathBuf,
    pub pipeline_dir: PathBuf,
    /// blake3 of the pipeline file's bytes at start.
    pub fingerprint: String,
    pub created_at: Timestamp,
    /// `--set` given to `run`, passed to every node.
    #[serde(default)]
    pub overrides: Vec<(String, String)>,
    /// `--max-parallel` given to `run`, passed to every node.
    #[serde(default)]
    pub max_parallel: Option<usize>,
}

pub fn meta_path(dir: &JobDir) -> PathBuf {
    dir.path().join("pipeline.json")
}

pub fn snapshot_path(dir: &JobDir) -> PathBuf {
    dir.path().join("pipeline.yml")
}

pub fn journal_path(dir: &JobDir) -> PathBuf {
    dir.path().join("pipeline.jsonl")
}

/// Is this job directory a pipeline's?
pub fn is_pipeline(dir: &JobDir) -> bool {
    meta_path(dir).exists()
}

/// One line of `pipeline.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum PipelineRecord {
    RunStarted {
        run: u32,
        command: String,
        pid: u32,
        at: Timestamp,
    },
    NodeStarted {
        node: String,
        job_id: String,
        /// `run` (a new job) or `resume` (its job existed).
        how: String,
        at: Timestamp,
    },
    NodeFinished {
        node: String,
        state: NodeState,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        exit_code: Option<i32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        at: Timestamp,
    },
    NodeSkipped {
        node: String,
        reason: String,
        at: Timestamp,
    },
    Paused {
        at: Timestamp,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    Unpaused {
        at: Timestamp,
    },
    RunEnded {
        run: u32,
        state: JobState,
        at: Timestamp,
    },
}

/// One node as the journal tells it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct NodeEntry {
    pub state: NodeState,
    pub job_id: Option<String>,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    pub exit_code: Option<i32>,
    /// Why it failed or was skipped.
    pub reason: Option<String>,
}

/// What the journal adds up to.
#[derive(Debug, Clone, Default)]
pub struct PipelineView {
    pub runs: u32,
    pub run_open: bool,
    pub last_state: Option<JobState>,
    pub started_at: Option<Timestamp>,
    pub updated_at: Option<Timestamp>,
    pub nodes: BTreeMap<String, NodeEntry>,
    /// Since when, and why, when paused now.
    pub paused: Option<(Timestamp, Option<String>)>,
}

impl PipelineView {
    pub fn apply(&mut self, rec: &PipelineRecord) {
        match rec {
            PipelineRecord::RunStarted { at, .. } => {
                self.runs += 1;
                self.run_open = true;
                self.paused = None;
                self.started_at.get_or_insert(*at);
                self.updated_at = Some(*at);
            }
            PipelineRecord::NodeStarted {
                node, job_id, at, ..
            } => {
                let e = self.nodes.entry(node.clone()).or_default();
                e.state = NodeState::Running;
                e.job_id = Some(job_id.clone());
                e.started_at = Some(*at);
                e.finished_at = None;
                e.exit_code = None;
                e.reason = None;
                self.updated_at = Some(*at);
            }
            PipelineRecord::NodeFinished {
                node,
                state,
                exit_code,
                error,
                at,
            } => {
                let e = self.nodes.entry(node.clone()).or_default();
                e.state = *state;
                e.exit_code = *exit_code;
                e.reason = error.clone();
                e.finished_at = Some(*at);
                self.updated_at = Some(*at);
            }
            PipelineRecord::NodeSkipped { node, reason, at } => {
                let e = self.nodes.entry(node.clone()).or_default();
                e.state = NodeState::Skipped;
                e.reason = Some(reason.clone());
                e.finished_at = Some(*at);
                self.updated_at = Some(*at);
            }
            PipelineRecord::Paused { at, reason } => {
                self.paused = Some((*at, reason.clone()));
            }
            PipelineRecord::Unpaused { .. } => self.paused = None,
            PipelineRecord::RunEnded { state, at, .. } => {
                self.run_open = false;
                self.paused = None;
                self.last_state = Some(*state);
                self.updated_at = Some(*at);
                // A crash leaves nodes `running`; an ended run never does.
            }
        }
    }

    /// The state when no process holds the lock: a run that never ended crashed.
    pub fn recorded_state(&self) -> JobState {
        if self.run_open {
            return JobState::Interrupted;
        }
        self.last_state.unwrap_or(JobState::Interrupted)
    }
}

/// Read the journal (a torn last line, left by a crash, is skipped).
pub fn read_view(dir: &JobDir) -> Result<PipelineView, StateError> {
    let path = journal_path(dir);
    let records: Vec<PipelineRecord> =
        read_all(&path, Framing::Checksummed, |c| StateError::Corrupt {
            path: path.clone(),
            detail: format!("line {}: {}", c.line, c.detail),
        })?;
    let mut view = PipelineView::default();
    for r in &records {
        view.apply(r);
    }
    Ok(view)
}

/// Append a record durably (fsynced before this returns).
pub fn append(dir: &JobDir, rec: &PipelineRecord) -> Result<(), StateError> {
    append_durable(&journal_path(dir), Framing::Checksummed, rec)
}

pub fn now() -> Timestamp {
    Timestamp::now()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_view_follows_the_records_and_survives_a_torn_tail() {
        let d = tempfile::tempdir().unwrap();
        let dir = JobDir::at(d.path());
        let recs = [
            PipelineRecord::RunStarted {
                run: 1,
                command: "run".into(),
                pid: 1,
                at: "2026-01-01T00:00:00Z".into(),
            },
            PipelineRecord::NodeStarted {
                node: "a".into(),
                job_id: "p.a".into(),
                how: "run".into(),
                at: "2026-01-01T00:00:01Z".into(),
            },
            PipelineRecord::NodeFinished {
                node: "a".into(),
                state: NodeState::Completed,
                exit_code: Some(0),
                error: None,
                at: "2026-01-01T00:00:02Z".into(),
            },
            PipelineRecord::NodeStarted {
                node: "b".into(),
                job_id: "p.b".into(),
                how: "run".into(),
                at: "2026-01-01T00:00:03Z".into(),
            },
        ];
        for r in &recs {
            append(&dir, r).unwrap();
        }
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(journal_path(&dir))
            .unwrap();
        f.write_all(b"0000").unwrap();
        let v = read_view(&dir).unwrap();
        assert_eq!(v.nodes["a"].state, NodeState::Completed);
        assert_eq!(v.nodes["b"].state, NodeState::Running);
        assert_eq!(v.recorded_state(), JobState::Interrupted);
    }
}
