//! The map dispatcher: the one loop that owns a map run. It keeps the backend's slots
//! filled from the queue, records every attempt and item end through the [`Recorder`],
//! decides retries (as data: a retry is the item queued again after its delay), applies the
//! error policy, and obeys pause, stop and cancel. Backends only run attempts.

use std::collections::VecDeque;

use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::engine::controls::{ControlMsg, Controls};
use crate::engine::error::EngineError;
use crate::engine::map::backend::{AttemptEnd, BackendEvent, MapBackend};
use crate::engine::map::policy::{MapEnd, PolicyCounter};
use crate::engine::map::retry;
use crate::engine::map::stuck::StuckWatch;
use crate::engine::map::work::{Candidates, ItemRun, ItemSource, Waiting, Works};
use crate::engine::recorder::{DurableMark, ItemOutcome, Recorder};
use crate::report::event::Event;
use crate::state::records::{Failure, ItemStatus, Record};
use crate::workflow::model::{ErrorPolicy, RetryPolicy};

/// How often one item may be lost by the backend (a killed Slurm task, a dead worker) in one
/// run before it fails for good. Lost attempts do not count against `retry.max_attempts`.
pub const LOST_LIMIT: u32 = 3;

/// What a map run is asked to do.
pub struct MapRun<'a> {
    /// The indexes of the items to run, in order.
    pub queue: Vec<u32>,
    /// Where their values come from (loaded when an item's first attempt is submitted).
    pub items: &'a dyn ItemSource,
    pub policy: &'a ErrorPolicy,
    pub retry: &'a RetryPolicy,
    pub controls: &'a Controls,
    /// `map.stuck_after`: report attempts running longer than this.
    pub stuck_after: Option<std::time::Duration>,
}

/// The state of one map run's loop.
struct Loop<'a> {
    run: MapRun<'a>,
    works: Works,
    waiting: Waiting,
    counter: PolicyCounter,
    /// The error policy stopped dispatching (its reason).
    stopped: Option<String>,
    /// Attempts were cancelled or handed back: their items stay pending.
    cancelled: bool,
    /// Items left pending because the run was halting when they would have been retried.
    left_pending: bool,
    /// Marks of the attempt ends recorded but not known to be on disk yet, oldest first.
    undurable: VecDeque<DurableMark>,
    stuck: StuckWatch,
}

/// Run the map to its end, or until the error policy, a stop or a cancel ends it.
pub async fn dispatch<B: MapBackend>(
    backend: &mut B,
    run: MapRun<'_>,
    rec: &mut Recorder,
    control: &mut mpsc::UnboundedReceiver<ControlMsg>,
) -> Result<MapEnd, EngineError> {
    let controls = run.controls.clone();
    let MapRun {
        queue,
        items,
        policy,
        retry,
        controls: run_controls,
        stuck_after,
    } = run;
    let mut works = Works::default();
    let adopted = if queue.is_empty() {
        Vec::new()
    } else {
        let candidates = Candidates::new(&queue, &rec.view, items);
        let adopted = backend.adopt(&candidates).await?;
        for &idx in &adopted {
            works.start(candidates.run(idx)?);
        }
        adopted
    };
    let adopted: std::collections::HashSet<u32> = adopted.iter().map(|i| *i as u32).collect();
    let mut lp = Loop {
        works,
        waiting: Waiting::with_ready(queue.into_iter().filter(|i| !adopted.contains(i))),
        counter: PolicyCounter::default(),
        stopped: None,
        cancelled: false,
        left_pending: false,
        undurable: VecDeque::new(),
        stuck: StuckWatch::new(stuck_after),
        run: MapRun {
            queue: Vec::new(),
            items,
            policy,
            retry,
            controls: run_controls,
            stuck_after,
        },
    };
    let mut paused = rec.view.paused().is_some();
    let (mut stop_seen, mut cancel_sent) = (false, false);
    loop {
        let halted = lp.halted(&controls);
        if controls.cancel.is_cancelled() && !cancel_sent {
            cancel_sent = true;
            backend.cancel().await;
        }
        if halted && !stop_seen {
            stop_seen = true;
            backend.stop_starting().await;
        }
        lp.waiting.promote(Instant::now());
        if !halted && !paused && backend.free_slots() > 0 && lp.waiting.has_ready() {
            // Slots refill while the journal syncs, as long as at most the backend's budget
            // of finished attempts wait for their records: a crash re-runs at most those
            // and the attempts in flight.
            lp.sync_within(backend.undurable_budget(), rec, backend)?;
            let mut batch = Vec::new();
            let room = backend.free_slots();
            while batch.len() < room
                && let Some(idx) = lp.waiting.pop_ready()
            {
                if !lp.works.contains(idx) {
                    lp.works.start(ItemRun {
                        idx,
                        item: lp.run.items.item(idx)?,
                        prior_attempts: rec.view.items.attempts(idx),
                    });
                }
                if let Some(w) = lp.works.get_mut(idx) {
                    let a = w.next_attempt();
                    lp.stuck.started(idx, a.attempt, Instant::now());
                    batch.push(a);
                }
            }
            if !batch.is_empty() {
                backend.submit(batch).await?;
            }
        }
        if backend.in_flight() == 0 && (halted || lp.waiting.is_empty()) {
            break;
        }
        lp.report_stuck(rec);
        let due = lp.waiting.next_due().filter(|_| !halted && !paused);
        let stuck_due = lp.stuck.next_due();
        tokio::select! {
            biased;
            ev = backend.next(), if backend.in_flight() > 0 => {
                // Take every event that is ready, so one journal sync covers them all.
                let mut events = vec![ev?];
                while let Some(more) = backend.try_next() {
                    events.push(more);
                }
                for ev in events {
                    lp.handle(ev, rec, &controls)?;
                }
            }
            Some(msg) = control.recv() => paused = rec.apply_control(msg, backend.in_flight())?,
            _ = controls.stop.cancelled(), if !stop_seen => {}
            _ = controls.cancel.cancelled(), if !cancel_sent => {}
            _ = tokio::time::sleep_until(due.unwrap_or_else(Instant::now)), if due.is_some() => {}
            _ = tokio::time::sleep_until(stuck_due.unwrap_or_else(Instant::now)), if stuck_due.is_some() => {}
        }
    }
    rec.flush()?;
    backend.recorded();
    let unfinished = !lp.waiting.is_empty() || lp.left_pending;
    Ok(MapEnd::decide(
        controls.cancel.is_cancelled()
            || lp.cancelled
            || (controls.stop.is_cancelled() && unfinished),
        lp.stopped,
    ))
}

impl Loop<'_> {
    fn halted(&self, controls: &Controls) -> bool {
        self.stopped.is_some() || controls.stop.is_cancelled() || controls.cancel.is_cancelled()
    }

    /// Forget the attempt ends that are on disk now; wait for the journal when more than
    /// `budget` are not. The backend hears when everything it reported is recorded.
    fn sync_within<B: MapBackend>(
        &mut self,
        budget: usize,
        rec: &mut Recorder,
        backend: &mut B,
    ) -> Result<(), EngineError> {
        let before = self.undurable.len();
        while self.undurable.front().is_some_and(|m| rec.is_durable(*m)) {
            self.undurable.pop_front();
        }
        if self.undurable.len() > budget {
            rec.flush()?;
            self.undurable.clear();
        }
        if before > 0 && self.undurable.is_empty() {
            backend.recorded();
        }
        Ok(())
    }

    /// Report the attempts that became stuck (`map.stuck_after`).
    fn report_stuck(&mut self, rec: &mut Recorder) {
        for (idx, attempt, running) in self.stuck.take_due(Instant::now()) {
            if let Some(w) = self.works.get_mut(idx) {
                rec.report(&Event::ItemStuck {
                    item_id: w.run.item.id.clone(),
                    attempt,
                    running_ms: running.as_millis() as u64,
                });
            }
        }
    }

    fn handle(
        &mut self,
        ev: BackendEvent,
        rec: &mut Recorder,
        controls: &Controls,
    ) -> Result<(), EngineError> {
        match ev {
            BackendEvent::Spawned {
                idx,
                attempt,
                pgid,
                pid_start,
            } => rec.record(Record::ItemStarted {
                idx,
                attempt,
                pgid,
                pid_start,
            })?,
            BackendEvent::Warning(message) => rec.report(&Event::Warning { message }),
            BackendEvent::Returned { idx } => {
                self.stuck.ended(idx);
                self.works.take(idx);
                self.cancelled = true;
            }
            BackendEvent::Ended(end) => self.ended(end, rec, controls)?,
        }
        Ok(())
    }

    fn ended(
        &mut self,
        end: AttemptEnd,
        rec: &mut Recorder,
        controls: &Controls,
    ) -> Result<(), EngineError> {
        let idx = end.idx;
        self.stuck.ended(idx);
        if !end.warnings.is_empty()
            && let Some(w) = self.works.get_mut(idx)
        {
            for warning in &end.warnings {
                rec.report(&Event::Warning {
                    message: format!("item {}: {warning}", w.run.item.id),
                });
            }
        }
        let failure = end.attempt.failure.clone();
        if let (Some(f @ Failure::Timeout { .. }), Some(w)) = (&failure, self.works.get_mut(idx)) {
            rec.report(&Event::ItemTimedOut {
                item_id: w.run.item.id.clone(),
                attempt: end.attempt.attempt,
                error: f.to_string(),
            });
        }
        match failure {
            None => self.finish(end, true, rec),
            Some(Failure::Cancelled { .. }) => {
                // Not final: the item stays pending and runs again on resume.
                self.works.take(idx);
                self.cancelled = true;
                Ok(())
            }
            Some(f) => {
                rec.record(Record::Attempt {
                    idx,
                    attempt: end.attempt.clone(),
                })?;
                self.undurable.push_back(rec.mark());
                let halted = self.halted(controls);
                let Some(work) = self.works.get_mut(idx) else {
                    return Ok(());
                };
                // An adopted attempt was numbered by the run that started it.
                work.last_attempt = work.last_attempt.max(end.attempt.attempt);
                work.attempts.push(end.attempt.clone());
                let wait = if f.is_lost() {
                    work.lost += 1;
                    (work.lost <= LOST_LIMIT).then(|| retry::delay(self.run.retry, work.lost))
                } else {
                    work.tries += 1;
                    retry::should_retry(self.run.retry, &f, work.tries)
                        .then(|| retry::delay(self.run.retry, work.tries))
                };
                match wait {
                    Some(_) if halted => {
                        // No new attempt starts once the run halts: the item stays pending.
                        self.works.take(idx);
                        self.left_pending = true;
                        Ok(())
                    }
                    Some(wait) => {
                        rec.report(&Event::ItemRetrying {
                            item_id: work.run.item.id.clone(),
                            attempt: end.attempt.attempt,
                            error: f.to_string(),
                            failure_class: f.class(),
                            delay_ms: wait.as_millis() as u64,
                            usage: end.attempt.usage,
                        });
                        self.waiting.push_delayed(idx, Instant::now() + wait);
                        Ok(())
                    }
                    None => self.finish(end, false, rec),
                }
            }
        }
    }

    /// The item's final attempt ended: record it, and count it against the error policy.
    fn finish(
        &mut self,
        end: AttemptEnd,
        succeeded: bool,
        rec: &mut Recorder,
    ) -> Result<(), EngineError> {
        let Some(mut work) = self.works.take(end.idx) else {
            return Ok(());
        };
        if succeeded {
            work.attempts.push(end.attempt);
        }
        let status = rec.item_finished(
            ItemOutcome {
                idx: end.idx,
                item: &work.run.item,
                attempts: &work.attempts,
                succeeded,
                captured: end.captured,
                duration: work.started.elapsed(),
            },
            self.run.policy.on_item_failure,
        )?;
        self.undurable.push_back(rec.mark());
        if let Some(reason) = self
            .counter
            .count(self.run.policy, status != ItemStatus::Succeeded)
            && self.stopped.is_none()
        {
            rec.report(&Event::Warning {
                message: format!(
                    "stopping the map: {reason}; attempts in flight finish, the rest stay pending"
                ),
            });
            self.stopped = Some(reason);
        }
        Ok(())
    }
}
