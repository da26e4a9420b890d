//! What `runner report` shows: the data of the HTML page, and exactly what `--json` prints
//! (field names documented in docs/report.md). A pipeline report is a list of these, one
//! per node, plus a row per node ([`super::pipeline`]).

use serde::Serialize;

pub use crate::report::stats::Spread;
use crate::state::records::JobState;
use crate::state::time::Timestamp;

/// Version of this document's shape.
pub const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize)]
pub struct JobReport {
    pub format_version: u32,
    pub job_id: String,
    pub workflow: String,
    pub state: JobState,
    /// The exit code a run ending in this state has.
    pub exit_code: i32,
    pub generated_at: Timestamp,
    pub summary: Summary,
    pub timeline: Timeline,
    pub histograms: Histograms,
    /// The 10 items with the longest attempts (all attempts summed).
    pub slowest: Vec<ItemRow>,
    /// The 10 items with the highest peak memory.
    pub heaviest: Vec<ItemRow>,
    pub dlq: DlqReport,
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub total: usize,
    pub successful: usize,
    /// DLQ + skipped + purged.
    pub failed: usize,
    pub dlq: usize,
    pub pending: usize,
    /// Attempts recorded (every run).
    pub attempts: usize,
    /// Attempts beyond an item's first.
    pub retries: usize,
    pub runs: u32,
    pub started_at: Option<Timestamp>,
    pub ended_at: Option<Timestamp>,
    /// From the first run's start to the last record.
    pub wall_ms: u64,
    /// Items finished per second of wall time.
    pub throughput_per_s: Option<f64>,
    /// Attempt durations.
    pub duration_ms: Spread,
    /// Peak resident memory of attempts, KiB.
    pub peak_rss_kb: Spread,
    /// CPU time of attempts (user + system), ms.
    pub cpu_ms: Spread,
    /// Why the job failed besides its items, when the journal knows (a setup/reduce step).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed_step: Option<String>,
}

/// How an attempt (or step) ended, as the timeline colours it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Ok,
    /// Failed, and the item was tried again.
    Retried,
    /// A time limit ran out.
    Timeout,
    /// A resource limit ended it.
    Limit,
    /// Failed for good (or was cancelled).
    Failed,
}

/// One attempt on the timeline. Times are milliseconds after `Timeline::origin`.
#[derive(Debug, Clone, Serialize)]
pub struct Bar {
    pub lane: u32,
    pub start_ms: u64,
    pub ms: u64,
    pub item_id: String,
    pub attempt: u32,
    pub outcome: Outcome,
    /// It failed and the item was tried again.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub retried: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_class: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peak_rss_kb: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_ms: Option<u64>,
}

/// Many attempts at once: one row of lanes, one time bucket.
#[derive(Debug, Clone, Serialize)]
pub struct Cell {
    pub row: u32,
    pub bucket: u32,
    /// Share of the row's lane time that attempts were running, 0 to 1.
    pub busy: f64,
    /// Attempts that started in the cell, by outcome.
    pub ok: u32,
    pub retried: u32,
    pub timeout: u32,
    pub limit: u32,
    pub failed: u32,
}

/// How a large timeline was folded: attempts are not drawn one by one.
#[derive(Debug, Clone, Serialize)]
pub struct Aggregation {
    pub bucket_ms: u64,
    pub buckets: u32,
    /// Lanes per row.
    pub lanes_per_row: u32,
    pub rows: u32,
}

/// A setup or reduce step.
#[derive(Debug, Clone, Serialize)]
pub struct StepBar {
    /// `setup` or `reduce`.
    pub phase: &'static str,
    /// 1-based.
    pub step: usize,
    pub start_ms: u64,
    pub ms: u64,
    pub outcome: Outcome,
}

/// A span of time, in ms after the origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Span {
    pub start_ms: u64,
    pub end_ms: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Timeline {
    /// When the first run started; every time below counts from here.
    pub origin: Option<Timestamp>,
    pub end_ms: u64,
    /// Parallel slots (computed from the attempts' start and end times).
    pub lanes: u32,
    /// Set when the attempts are folded into `cells` instead of drawn as `bars`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aggregated: Option<Aggregation>,
    pub bars: Vec<Bar>,
    pub cells: Vec<Cell>,
    pub steps: Vec<StepBar>,
    /// `runner pause` to `resume`.
    pub pauses: Vec<Span>,
    /// Each run of the job (`run`, `resume`, `dlq retry`); the time between is idle.
    pub runs: Vec<Span>,
}

/// A histogram: `count` values in `[lo, hi)` per bin (the last bin includes `hi`).
#[derive(Debug, Clone, Serialize)]
pub struct Histogram {
    /// `ms` or `KiB`.
    pub unit: &'static str,
    /// Bins grow geometrically (values spread over orders of magnitude).
    pub log: bool,
    pub bins: Vec<Bin>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Bin {
    pub lo: u64,
    pub hi: u64,
    pub count: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Histograms {
    pub duration_ms: Histogram,
    pub peak_rss_kb: Histogram,
    pub cpu_ms: Histogram,
}

/// One item in the slowest/heaviest tables.
#[derive(Debug, Clone, Serialize)]
pub struct ItemRow {
    pub item_id: String,
    /// `succeeded`, `dlq`, `failed`, `pending`, `purged`.
    pub status: crate::state::records::ItemStatus,
    pub attempts: u32,
    /// All its attempts, summed.
    pub duration_ms: u64,
    /// Its highest attempt.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peak_rss_kb: Option<u64>,
    /// All its attempts, summed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_class: Option<&'static str>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DlqReport {
    pub entries: usize,
    /// By the class of each entry's last failure, most common first.
    pub classes: Vec<DlqClass>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DlqClass {
    pub class: &'static str,
    pub count: usize,
    /// The first few entries of the class.
    pub examples: Vec<DlqExample>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DlqExample {
    pub item_id: String,
    pub attempts: usize,
    pub error: String,
    pub stderr_tail: String,
}
