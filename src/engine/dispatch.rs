//! The map dispatcher: one loop that owns the queue and the recorder, keeps up to
//! `max_parallel` items in flight (one task each), records each result as it arrives and
//! applies the error policy. Nothing else mutates job state during the map.

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::engine::control::ControlMsg;
use crate::engine::executor::Executor;
use crate::engine::item::{ItemRun, MapCtx, Note, run_item};
use crate::engine::recorder::Recorder;
use crate::report::event::Event;
use crate::state::error::StateError;
use crate::state::records::{ItemStatus, Record};
use tokio_util::sync::CancellationToken;

use crate::workflow::model::{ErrorPolicy, OnItemFailure};

/// Why the map loop ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MapEnd {
    /// Every queued item reached a final state.
    Finished,
    /// The error policy stopped dispatching (the reason is user-facing).
    Stopped(String),
    /// Cancelled (stop/SIGINT): unfinished items stay pending.
    Cancelled,
}

impl MapEnd {
    /// How a map loop (local or Slurm) ended: cancelled (stop/SIGINT with work left, or
    /// in-flight items cancelled) wins over a policy stop, which wins over finishing.
    pub fn decide(cancelled: bool, policy_stop: Option<String>) -> MapEnd {
        match (cancelled, policy_stop) {
            (true, _) => MapEnd::Cancelled,
            (false, Some(reason)) => MapEnd::Stopped(reason),
            (false, None) => MapEnd::Finished,
        }
    }
}

/// Failure accounting of one map run against the error policy.
#[derive(Debug, Default)]
pub struct PolicyCounter {
    finished: u64,
    failed: u64,
}

impl PolicyCounter {
    /// Count a final item; `Some(reason)` when the policy says stop.
    pub fn count(&mut self, policy: &ErrorPolicy, failed: bool) -> Option<String> {
        self.finished += 1;
        if !failed {
            return None;
        }
        self.failed += 1;
        if policy.on_item_failure == OnItemFailure::Stop {
            return Some("an item failed and on_item_failure is `stop`".into());
        }
        if let Some(max) = policy.max_failures
            && self.failed >= max
        {
            return Some(format!(
                "{} items failed (max_failures: {max})",
                self.failed
            ));
        }
        if let Some(t) = policy.failure_threshold
            && self.finished >= 10
            && self.failed as f64 / self.finished as f64 >= t
        {
            return Some(format!(
                "{} of {} finished items failed (failure_threshold: {t})",
                self.failed, self.finished
            ));
        }
        None
    }
}

/// The channels a map listens to besides its items.
pub struct MapIo<'a> {
    pub notes: &'a mut mpsc::UnboundedReceiver<Note>,
    pub control: &'a mut mpsc::UnboundedReceiver<ControlMsg>,
    /// Stop dispatching (graceful stop); in-flight items are cancelled through `ctx.cancel`.
    pub stop: CancellationToken,
}

pub async fn dispatch<E: Executor>(
    ctx: Arc<MapCtx<E>>,
    queue: Vec<ItemRun>,
    max_parallel: usize,
    policy: &ErrorPolicy,
    rec: &mut Recorder,
    io: MapIo<'_>,
) -> Result<MapEnd, StateError> {
    let mut queue = queue.into_iter().peekable();
    let mut running = JoinSet::new();
    let mut counter = PolicyCounter::default();
    let mut stopped: Option<String> = None;
    let mut cancelled = false;
    let mut paused = rec.view.paused().is_some();
    let mut unsynced = false;
    let max_parallel = max_parallel.max(1);
    loop {
        let halted = stopped.is_some() || io.stop.is_cancelled() || ctx.cancel.is_cancelled();
        // A finished item keeps its slot until its record is on disk: a crash then re-runs
        // at most `max_parallel` items (those in flight), never finished ones too.
        if unsynced && !halted && !paused && running.len() < max_parallel && queue.peek().is_some()
        {
            rec.flush()?;
            unsynced = false;
        }
        while !halted && !paused && running.len() < max_parallel {
            match queue.next() {
                Some(run) => {
                    running.spawn(run_item(ctx.clone(), run));
                }
                None => break,
            }
        }
        if running.is_empty() && (halted || queue.peek().is_none()) {
            break;
        }
        tokio::select! {
            biased;
            Some(note) = io.notes.recv() => match note {
                Note::Event(ev) => rec.report(&ev),
                Note::Spawned { idx, attempt, pgid, pid_start } => {
                    rec.record(Record::ItemStarted { idx, attempt, pgid, pid_start })?;
                }
            },
            Some(msg) = io.control.recv() => paused = rec.apply_control(msg, running.len())?,
            _ = io.stop.cancelled(), if !halted => {}
            Some(joined) = running.join_next(), if !running.is_empty() => {
                // Take every result that is ready, so one journal sync covers them all.
                let mut batch = vec![joined];
                while let Some(more) = running.try_join_next() {
                    batch.push(more);
                }
                for joined in batch {
                    let Ok(result) = joined else {
                        rec.report(&Event::Warning { message: "an item task ended abnormally; the item stays pending".into() });
                        continue;
                    };
                    if result.cancelled {
                        cancelled = true;
                        continue;
                    }
                    let status = rec.item_finished(&result, policy.on_item_failure)?;
                    unsynced = true;
                    if let Some(reason) = counter.count(policy, status != ItemStatus::Succeeded)
                        && stopped.is_none()
                    {
                        rec.report(&Event::Warning { message: format!("stopping the map: {reason}; items in flight finish, the rest stay pending") });
                        stopped = Some(reason);
                    }
                }
            }
        }
    }
    while let Ok(note) = io.notes.try_recv() {
        if let Note::Event(ev) = note {
            rec.report(&ev);
        }
    }
    rec.flush()?;
    let unfinished = queue.peek().is_some();
    Ok(MapEnd::decide(
        ctx.cancel.is_cancelled() || cancelled || (io.stop.is_cancelled() && unfinished),
        stopped,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_limits() {
        let p = ErrorPolicy {
            on_item_failure: OnItemFailure::Dlq,
            max_failures: Some(2),
            failure_threshold: None,
        };
        let mut c = PolicyCounter::default();
        assert!(c.count(&p, true).is_none());
        assert!(c.count(&p, false).is_none());
        assert!(c.count(&p, true).unwrap().contains("max_failures: 2"));

        let p = ErrorPolicy {
            on_item_failure: OnItemFailure::Dlq,
            max_failures: None,
            failure_threshold: Some(0.5),
        };
        let mut c = PolicyCounter::default();
        for _ in 0..4 {
            assert!(c.count(&p, true).is_none(), "needs 10 finished items first");
        }
        for _ in 0..5 {
            assert!(c.count(&p, false).is_none());
        }
        assert!(c.count(&p, true).is_some(), "5 of 10 failed");

        let p = ErrorPolicy {
            on_item_failure: OnItemFailure::Stop,
            max_failures: None,
            failure_threshold: None,
        };
        assert!(PolicyCounter::default().count(&p, true).is_some());
    }
}
