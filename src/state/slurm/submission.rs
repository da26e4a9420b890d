//! What was submitted to Slurm: `sub-<N>.json` holds each array task's batch of item
//! attempts (written before `sbatch`, read by the tasks), and `submissions.jsonl` records
//! the Slurm job id of each submission once `sbatch` returned it (appended and fsynced
//! before the coordinator waits on the tasks). Together they let a resume find every task
//! of an earlier run, even one whose `sbatch` raced a crash (its `--comment` carries the
//! submission's random token).

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::state::atomic::write_atomic;
use crate::state::error::StateError;
use crate::state::jsonl::{self, Framing};

/// One item attempt in an array task's batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskItem {
    pub idx: usize,
    pub item_id: String,
    pub item: Value,
    /// The attempt's number within the job.
    pub attempt: u32,
}

/// `slurm/sub-<N>.json`: array task `i` runs the attempts `tasks[i]`, `parallel` at once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubmissionSpec {
    pub sub: u64,
    /// Random tag passed in `--comment`: finds this array on the cluster if the coordinator
    /// died before recording its job id (job names repeat across job directories).
    pub token: String,
    pub parallel: usize,
    pub tasks: Vec<Vec<TaskItem>>,
}

impl SubmissionSpec {
    /// The `--comment` that names this submission on the cluster.
    pub fn comment(&self) -> String {
        format!("runner-sub-{}-{}", self.sub, self.token)
    }

    pub fn write(&self, path: &Path) -> Result<(), StateError> {
        write_atomic(path, &to_json(path, self)?)
    }

    pub fn read(path: &Path) -> Result<Self, StateError> {
        read_json(path)
    }

    /// Each task's attempts, as the submissions log keeps them.
    pub fn refs(&self) -> Vec<Vec<TaskRef>> {
        self.tasks
            .iter()
            .map(|t| {
                t.iter()
                    .map(|i| TaskRef {
                        idx: i.idx,
                        attempt: i.attempt,
                    })
                    .collect()
            })
            .collect()
    }
}

/// An item attempt of a submitted task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskRef {
    pub idx: usize,
    pub attempt: u32,
}

/// One line of `slurm/submissions.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubmissionRecord {
    pub sub: u64,
    pub slurm_job_id: String,
    /// The attempts of each array index. (Lines of older versions have none: their tasks
    /// are not adopted.)
    #[serde(default)]
    pub tasks: Vec<Vec<TaskRef>>,
    pub at: String,
}

impl SubmissionRecord {
    pub fn new(spec: &SubmissionSpec, slurm_job_id: &str) -> Self {
        SubmissionRecord {
            sub: spec.sub,
            slurm_job_id: slurm_job_id.to_owned(),
            tasks: spec.refs(),
            at: humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
        }
    }
}

/// Append a submission to the log, durably.
pub fn append(path: &Path, record: &SubmissionRecord) -> Result<(), StateError> {
    jsonl::append_durable(path, Framing::Plain, record)
}

/// Every submission in the log (a torn last line, left by a crash, is skipped).
pub fn read_log(path: &Path) -> Result<Vec<SubmissionRecord>, StateError> {
    jsonl::read_all(path, Framing::Plain, |c| StateError::Corrupt {
        path: path.to_path_buf(),
        detail: format!("line {}: {}", c.line, c.detail),
    })
}

/// `slurm/context.json`: what the tasks need that is not in the job's own files.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeContext {
    /// Captures of the setup phase (`${name}` in the map's steps).
    pub captures: Map<String, Value>,
}

impl NodeContext {
    pub fn write(&self, path: &Path) -> Result<(), StateError> {
        write_atomic(path, &to_json(path, self)?)
    }

    pub fn read(path: &Path) -> Result<Self, StateError> {
        read_json(path)
    }
}

/// The JSON of a value to be written to `path`.
pub(super) fn to_json<T: Serialize>(path: &Path, value: &T) -> Result<Vec<u8>, StateError> {
    serde_json::to_vec(value).map_err(|source| StateError::Encode {
        path: path.to_path_buf(),
        source,
    })
}

pub(super) fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, StateError> {
    let bytes = std::fs::read(path).map_err(|e| StateError::io("read", path, e))?;
    serde_json::from_slice(&bytes).map_err(|e| StateError::Corrupt {
        path: path.to_path_buf(),
        detail: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn spec() -> SubmissionSpec {
        let item = |idx, attempt| TaskItem {
            idx,
            item_id: format!("i{idx}"),
            item: serde_json::json!({"n": idx}),
            attempt,
        };
        SubmissionSpec {
            sub: 4,
            token: "00ff".into(),
            parallel: 2,
            tasks: vec![vec![item(0, 1), item(1, 2)], vec![item(5, 1)]],
        }
    }

    #[test]
    fn specs_round_trip_and_name_their_comment() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("sub-4.json");
        spec().write(&p).unwrap();
        assert_eq!(SubmissionSpec::read(&p).unwrap(), spec());
        assert_eq!(spec().comment(), "runner-sub-4-00ff");
    }

    #[test]
    fn the_log_keeps_each_tasks_attempts_and_skips_a_torn_line() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("submissions.jsonl");
        let rec = SubmissionRecord::new(&spec(), "77");
        append(&p, &rec).unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(&p)
            .unwrap()
            .write_all(b"{\"sub\":5,\"slu")
            .unwrap();
        let all = read_log(&p).unwrap();
        assert_eq!(all, vec![rec]);
        assert_eq!(
            all[0].tasks[0],
            vec![
                TaskRef { idx: 0, attempt: 1 },
                TaskRef { idx: 1, attempt: 2 }
            ]
        );
        let line = std::fs::read_to_string(&p).unwrap();
        assert!(
            line.starts_with("{\"sub\":4,\"slurm_job_id\":\"77\""),
            "{line}"
        );
    }
}
