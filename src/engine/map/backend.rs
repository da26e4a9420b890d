//! The seam between the one dispatcher and where attempts run. A backend runs the attempts
//! it is given (local processes, Slurm array tasks, ...) and reports what happened as
//! [`BackendEvent`]s; it never records, retries or applies the error policy: the dispatcher
//! does, the same way for every backend.

use std::sync::Arc;

use serde_json::{Map, Value};

use crate::engine::error::EngineError;
use crate::engine::map::work::Candidates;
use crate::items::Item;
use crate::state::records::Attempt;

/// One attempt to run: item `idx` of the job, attempt number `attempt` (1-based, counted
/// over the whole job).
#[derive(Debug, Clone)]
pub struct AttemptRun {
    pub idx: usize,
    pub item: Arc<Item>,
    pub attempt: u32,
}

/// How an attempt ended.
#[derive(Debug, Clone)]
pub struct AttemptEnd {
    pub idx: usize,
    /// `failure: None` when it succeeded; `Cancelled` when a stop or signal cut it short
    /// (the item stays pending); `TaskLost`/`WorkerLost` when the backend lost it.
    pub attempt: Attempt,
    /// Values captured by its steps (only kept when it succeeded).
    pub captured: Map<String, Value>,
    /// What did not stop it but the user should see (a step's `validate:` that stayed
    /// incomplete without failing it); also in the item's log. Local attempts only.
    pub warnings: Vec<String>,
}

/// What a backend reports.
#[derive(Debug)]
pub enum BackendEvent {
    /// An attempt started in a local process group (recorded, so that a crash can be
    /// cleaned up by the next run).
    Spawned {
        idx: usize,
        attempt: u32,
        pgid: i32,
        pid_start: u64,
    },
    /// An attempt ended.
    Ended(AttemptEnd),
    /// An attempt was handed back without having run (a stop took it back before it
    /// started): the item stays pending, nothing is recorded.
    Returned { idx: usize },
    /// Something worth telling the user that changes nothing.
    Warning(String),
}

/// Where the map's attempts run. The dispatcher calls these from one task; none of them is
/// called concurrently with another.
#[allow(async_fn_in_trait)]
pub trait MapBackend {
    /// How many more attempts may be submitted now.
    fn free_slots(&self) -> usize;

    /// Attempts submitted (or adopted) that have not ended or been returned.
    fn in_flight(&self) -> usize;

    /// After a crash: take over the attempts of these items that an earlier run left
    /// running elsewhere or finished without their outcome being recorded. Returns the
    /// indexes taken over; they are in flight now and end through [`Self::next`].
    async fn adopt(&mut self, candidates: &Candidates<'_>) -> Result<Vec<usize>, EngineError> {
        let _ = candidates;
        Ok(Vec::new())
    }

    /// How many ended attempts may wait for their records to reach the disk while new ones
    /// are submitted (slots refill while the journal syncs). A crash re-runs at most these
    /// and the attempts in flight. 0: an ended attempt keeps its slot until its record is
    /// durable, and [`Self::recorded`] is called before anything more is submitted.
    fn undurable_budget(&self) -> usize {
        0
    }

    /// Start these attempts (at most [`Self::free_slots`] of them).
    async fn submit(&mut self, batch: Vec<AttemptRun>) -> Result<(), EngineError>;

    /// Wait for the next event. Only called while something is in flight.
    async fn next(&mut self) -> Result<BackendEvent, EngineError>;

    /// An event that is ready now, without waiting (so one journal sync covers a burst).
    fn try_next(&mut self) -> Option<BackendEvent>;

    /// A graceful stop began: hand back (as [`BackendEvent::Returned`]) what has not started.
    async fn stop_starting(&mut self) {}

    /// Cancel everything in flight now: each attempt ends `Cancelled` or is returned.
    async fn cancel(&mut self) {}

    /// Everything reported so far is recorded durably: the backend may forget what it kept
    /// to survive a crash before that (Slurm's outcome files).
    fn recorded(&mut self) {}
}
