//! Persisted record types shared by the journal, the checkpoint and the DLQ.
//!
//! These are part of the on-disk format (docs/state.md): renaming a field is a format change.

use serde::{Deserialize, Serialize};

use super::time::Timestamp;

/// Why one attempt of an item (or one setup/reduce step) failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "class", rename_all = "snake_case")]
pub enum Failure {
    /// The step exited with a non-zero status.
    Exit { code: i32, step: usize },
    /// The step was killed by a signal it did not ask for.
    Signal { signal: i32, step: usize },
    /// The item's (or the step's) time limit ran out; the process group was killed.
    Timeout { after_ms: u64, step: usize },
    /// The step could not be started (e.g. the working directory does not exist).
    Spawn { message: String, step: usize },
    /// A `${...}` placeholder could not be rendered for this item.
    Template { message: String, step: usize },
    /// The attempt was cancelled by `stop`/SIGINT before it finished.
    Cancelled { step: usize },
    /// The Slurm task running the attempt ended without its outcome (killed, node failure,
    /// out of memory): the item goes back to the queue.
    TaskLost { message: String },
    /// The worker running the attempt stopped heartbeating: its lease expired and the item
    /// goes back to the queue.
    WorkerLost { message: String },
    /// The attempt went over its `map.resources.memory` limit (docs/resources.md).
    MemoryLimit { limit_bytes: u64, step: usize },
    /// The attempt used up its `map.resources.cpu_time`.
    CpuLimit { limit_ms: u64, step: usize },
    /// The attempt started more than `map.resources.processes` processes at once.
    ProcessLimit { limit: u64, step: usize },
    /// The step's `validate:` stayed below its threshold after its `on_incomplete` handlers.
    Validation { message: String, step: usize },
    /// A `commit_required: true` step ended without `HEAD` having moved.
    NoCommit { step: usize },
    /// The item's branch could not be merged into the job's branch (git isolation); the
    /// merge was aborted.
    MergeConflict { message: String },
}

impl Failure {
    /// Every value [`Failure::class`] can return (what `dlq list --class` accepts).
    pub const CLASSES: [&'static str; 14] = [
        "exit",
        "signal",
        "timeout",
        "spawn",
        "template",
        "cancelled",
        "task_lost",
        "worker_lost",
        "memory_limit",
        "cpu_limit",
        "process_limit",
        "validation",
        "no_commit",
        "merge_conflict",
    ];

    /// Short class name used in summaries and `retry.on` matching.
    pub fn class(&self) -> &'static str {
        match self {
            Failure::Exit { .. } => "exit",
            Failure::Signal { .. } => "signal",
            Failure::Timeout { .. } => "timeout",
            Failure::Spawn { .. } => "spawn",
            Failure::Template { .. } => "template",
            Failure::Cancelled { .. } => "cancelled",
            Failure::TaskLost { .. } => "task_lost",
            Failure::WorkerLost { .. } => "worker_lost",
            Failure::MemoryLimit { .. } => "memory_limit",
            Failure::CpuLimit { .. } => "cpu_limit",
            Failure::ProcessLimit { .. } => "process_limit",
            Failure::Validation { .. } => "validation",
            Failure::NoCommit { .. } => "no_commit",
            Failure::MergeConflict { .. } => "merge_conflict",
        }
    }

    /// The backend lost the attempt (not the item's fault): it goes back to the queue.
    pub fn is_lost(&self) -> bool {
        matches!(self, Failure::TaskLost { .. } | Failure::WorkerLost { .. })
    }

    /// The index of the template step that failed.
    pub fn step(&self) -> usize {
        match self {
            Failure::Exit { step, .. }
            | Failure::Signal { step, .. }
            | Failure::Timeout { step, .. }
            | Failure::Spawn { step, .. }
            | Failure::Template { step, .. }
            | Failure::Cancelled { step }
            | Failure::MemoryLimit { step, .. }
            | Failure::CpuLimit { step, .. }
            | Failure::ProcessLimit { step, .. }
            | Failure::Validation { step, .. }
            | Failure::NoCommit { step } => *step,
            Failure::TaskLost { .. }
            | Failure::WorkerLost { .. }
            | Failure::MergeConflict { .. } => 0,
        }
    }

    /// The exit code, when the failure is a non-zero exit.
    pub fn exit_code(&self) -> Option<i32> {
        match self {
            Failure::Exit { code, .. } => Some(*code),
            _ => None,
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Exit { code, step } => write!(f, "step {} exited with code {code}", step + 1),
            Failure::Signal { signal, step } => {
                write!(f, "step {} was killed by signal {signal}", step + 1)
            }
            Failure::Timeout { after_ms, step } => write!(
                f,
                "step {} timed out after {}",
                step + 1,
                humantime::format_duration(std::time::Duration::from_millis(*after_ms))
            ),
            Failure::Spawn { message, step } => {
                write!(f, "step {} could not start: {message}", step + 1)
            }
            Failure::Template { message, step } => write!(f, "step {}: {message}", step + 1),
            Failure::Cancelled { step } => write!(f, "step {} was cancelled", step + 1),
            Failure::TaskLost { message } => write!(f, "the Slurm task was lost: {message}"),
            Failure::WorkerLost { message } => write!(f, "the worker was lost: {message}"),
            Failure::MemoryLimit { limit_bytes, step } => write!(
                f,
                "step {} went over its memory limit ({})",
                step + 1,
                crate::state::usage::bytes_text(*limit_bytes)
            ),
            Failure::CpuLimit { limit_ms, step } => write!(
                f,
                "step {} used up its CPU time limit ({})",
                step + 1,
                humantime::format_duration(std::time::Duration::from_millis(*limit_ms))
            ),
            Failure::ProcessLimit { limit, step } => write!(
                f,
                "step {} went over its limit of {limit} processes",
                step + 1
            ),
            Failure::Validation { message, step } => {
                write!(f, "step {} is incomplete: {message}", step + 1)
            }
            Failure::NoCommit { step } => write!(
                f,
                "step {} has commit_required: true but made no git commit",
                step + 1
            ),
            Failure::MergeConflict { message } => write!(
                f,
                "merging the item's branch into the job's branch failed: {message}"
            ),
        }
    }
}

/// One attempt of one item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    /// 1-based attempt number within the job (attempts of earlier runs count).
    pub attempt: u32,
    pub started_at: Timestamp,
    pub duration_ms: u64,
    /// `None` when the attempt succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
    /// Last few lines of the failing step's stderr.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub stderr_tail: String,
    /// What the attempt's processes used, when it was measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
}

pub use super::usage::{Ran, Usage};

/// Final state of an item within a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemStatus {
    #[default]
    Pending,
    Succeeded,
    /// Failed for good and placed in the DLQ.
    Dlq,
    /// Failed for good under `on_item_failure: skip` (not in the DLQ).
    Failed,
    /// Removed from the DLQ by `dlq purge`: given up on, never run again.
    Purged,
}

/// Which phase of a job a step belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Setup,
    Map,
    Reduce,
}

/// One entry of the append-only journal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum Record {
    /// A run (`run`, `resume` or `dlq retry`) of the job began.
    RunStarted {
        run: u32,
        command: String,
        pid: u32,
        at: Timestamp,
    },
    /// A setup or reduce step finished successfully (resume skips it).
    StepDone {
        phase: Phase,
        index: usize,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        captured: Option<(String, serde_json::Value)>,
        /// `${shell.*}` (`output`, `stderr`) the step left for the next one, when it kept
        /// its output: a resume that skips it gives it back.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        shell: Option<serde_json::Value>,
        /// When the step ran and what it used (for `runner report`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ran: Option<Ran>,
    },
    /// Setup and item selection are over: the items are frozen in `items.jsonl`.
    MapStarted {
        total: usize,
        items_hash: String,
    },
    /// A setup or reduce step began in a process group.
    StepStarted {
        phase: Phase,
        index: usize,
        pgid: i32,
        pid_start: u64,
        /// When it started (for `runner report`: a step that never got its `step_done`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        at: Option<Timestamp>,
    },
    /// The process groups left by a crashed run were killed.
    GroupsReaped,
    /// `runner pause`: no new item starts until `Unpaused`.
    Paused {
        at: Timestamp,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    Unpaused {
        at: Timestamp,
    },
    /// An item's attempt began in a process group (so a resume can kill it if we crash).
    ItemStarted {
        idx: usize,
        attempt: u32,
        pgid: i32,
        pid_start: u64,
    },
    /// One attempt of an item ended (success or failure).
    Attempt {
        idx: usize,
        attempt: Attempt,
    },
    /// The item reached a final state in this run.
    ItemDone {
        idx: usize,
        status: ItemStatus,
        /// Attempts made so far in the job, this run included.
        attempts: u32,
        duration_ms: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        exit_code: Option<i32>,
        #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
        captured: serde_json::Map<String, serde_json::Value>,
        /// The final attempt when it succeeded (a failed one has its own `attempt` record):
        /// when it started, how long it took, what it used.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ran: Option<Ran>,
    },
    /// The item was taken out of the DLQ (`dlq purge`) or put back to pending (`dlq retry`).
    ItemReset {
        idx: usize,
        status: ItemStatus,
    },
    /// Every item reached a final state (or the error policy stopped the map).
    MapDone,
    /// The first record of a journal segment after a rotation: its sequence number.
    Segment {
        seq: u64,
    },
    /// The run ended; `state` is the job state it leaves.
    RunEnded {
        run: u32,
        state: JobState,
        at: Timestamp,
    },
}

/// The state of a job as `status` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Running,
    Paused,
    Interrupted,
    Completed,
    Failed,
    /// Display only: the lock is held but the heartbeat stopped (hung or stopped process).
    Stale,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_lists_every_class_once() {
        let all = [
            Failure::Exit { code: 1, step: 0 },
            Failure::Signal { signal: 9, step: 0 },
            Failure::Timeout {
                after_ms: 1,
                step: 0,
            },
            Failure::Spawn {
                message: String::new(),
                step: 0,
            },
            Failure::Template {
                message: String::new(),
                step: 0,
            },
            Failure::Cancelled { step: 0 },
            Failure::TaskLost {
                message: String::new(),
            },
            Failure::WorkerLost {
                message: String::new(),
            },
            Failure::MemoryLimit {
                limit_bytes: 1,
                step: 0,
            },
            Failure::CpuLimit {
                limit_ms: 1,
                step: 0,
            },
            Failure::ProcessLimit { limit: 1, step: 0 },
            Failure::Validation {
                message: String::new(),
                step: 0,
            },
            Failure::NoCommit { step: 0 },
            Failure::MergeConflict {
                message: String::new(),
            },
        ];
        // Exhaustive: a new variant does not compile until it is added to `all`.
        let position = |f: &Failure| match f {
            Failure::Exit { .. } => 0,
            Failure::Signal { .. } => 1,
            Failure::Timeout { .. } => 2,
            Failure::Spawn { .. } => 3,
            Failure::Template { .. } => 4,
            Failure::Cancelled { .. } => 5,
            Failure::TaskLost { .. } => 6,
            Failure::WorkerLost { .. } => 7,
            Failure::MemoryLimit { .. } => 8,
            Failure::CpuLimit { .. } => 9,
            Failure::ProcessLimit { .. } => 10,
            Failure::Validation { .. } => 11,
            Failure::NoCommit { .. } => 12,
            Failure::MergeConflict { .. } => 13,
        };
        for (i, f) in all.iter().enumerate() {
            assert_eq!(position(f), i);
        }
        let classes: Vec<&str> = all.iter().map(Failure::class).collect();
        assert_eq!(classes, Failure::CLASSES);
        // The serialized tag is the class too.
        for f in &all {
            assert_eq!(serde_json::to_value(f).unwrap()["class"], f.class());
        }
    }
}
