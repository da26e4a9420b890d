//! The one event type every reporter consumes (progress bar, plain log lines, NDJSON).
//! With `--json` each event is printed as one line; the field names are a public contract
//! (docs/cli.md).

use serde::Serialize;

use crate::state::records::{ItemStatus, JobState, Phase, Usage};

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    JobStarted {
        job_id: String,
        workflow: String,
        /// `run`, `resume` or `dlq_retry`.
        command: String,
    },
    PhaseStarted {
        phase: Phase,
    },
    StepFinished {
        phase: Phase,
        index: usize,
        command: String,
        ok: bool,
        duration_ms: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    MapStarted {
        total: usize,
        to_run: usize,
        max_parallel: usize,
    },
    ItemRetrying {
        item_id: String,
        attempt: u32,
        error: String,
        /// The failed attempt's failure class (`exit`, `timeout`, `memory_limit`, ...).
        failure_class: &'static str,
        delay_ms: u64,
        /// What the failed attempt used.
        #[serde(skip_serializing_if = "Option::is_none")]
        usage: Option<Usage>,
    },
    ItemFinished {
        item_id: String,
        status: ItemStatus,
        attempts: u32,
        duration_ms: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        exit_code: Option<i32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        /// The last attempt's failure class, when it failed.
        #[serde(skip_serializing_if = "Option::is_none")]
        failure_class: Option<&'static str>,
        #[serde(skip_serializing_if = "String::is_empty")]
        stderr_tail: String,
        /// What the last attempt used: `{"peak_rss_kb": .., "cpu_ms": ..}`.
        #[serde(skip_serializing_if = "Option::is_none")]
        usage: Option<Usage>,
    },
    /// An attempt of an item ran out of time (the item may be retried).
    ItemTimedOut {
        item_id: String,
        attempt: u32,
        error: String,
    },
    /// An item has been running for longer than `map.stuck_after` (said once per attempt;
    /// the item is not killed).
    ItemStuck {
        item_id: String,
        attempt: u32,
        running_ms: u64,
    },
    PhaseFinished {
        phase: Phase,
        ok: bool,
        duration_ms: u64,
    },
    Warning {
        message: String,
    },
    /// Git isolation, after reduce: the job's work is on `branch`; it was merged into
    /// `target` (`merged`), or it stays there and `command` merges it.
    WorktreeMerge {
        branch: String,
        worktree: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        target: Option<String>,
        merged: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        command: Option<String>,
    },
    /// `runner pause`: no new item starts.
    Paused {
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    Unpaused {},
    /// The first SIGINT/SIGTERM: it was forwarded to the process groups of the `in_flight`
    /// items (or the running setup/reduce step), which are killed after `kill_grace_ms`.
    Interrupted {
        /// `SIGINT` or `SIGTERM`.
        signal: String,
        in_flight: usize,
        kill_grace_ms: u64,
    },
    JobFinished {
        job_id: String,
        state: JobState,
        exit_code: i32,
        total: usize,
        successful: usize,
        failed: usize,
        dlq: usize,
        pending: usize,
        duration_ms: u64,
        /// Why the job failed or stopped besides its items: a setup/reduce step, the error
        /// policy.
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
}
