//! A scripted map backend, and the dispatcher's tests against it: retries, lost attempts,
//! the error policy, pause, stop, cancel, adoption and slot limits, in virtual time and
//! without a process.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Map;
use tokio::time::Instant;

use crate::engine::error::EngineError;
use crate::engine::map::backend::{AttemptEnd, AttemptRun, BackendEvent, MapBackend};
use crate::engine::map::work::Candidates;
use crate::state::records::{Attempt, Failure};

/// What an attempt does in the mock.
#[derive(Debug, Clone)]
pub enum Script {
    Ok(Duration),
    Fail(Failure, Duration),
    /// Still queued (not started) until a stop takes it back.
    Queued,
    /// Runs until cancelled.
    Hang,
}

type ScriptFn = Box<dyn Fn(usize, u32) -> Script + Send>;

pub struct MockBackend {
    slots: usize,
    script: ScriptFn,
    running: Vec<(AttemptRun, Option<Instant>, Script)>,
    ready: VecDeque<BackendEvent>,
    /// Items it takes over on `adopt`; they succeed after 1 s.
    pub adoptable: Vec<usize>,
    /// Every attempt submitted, `(idx, attempt)`.
    pub submitted: Arc<Mutex<Vec<(usize, u32)>>>,
    /// The most attempts in flight at once.
    pub peak: usize,
}

impl MockBackend {
    pub fn new(slots: usize, script: impl Fn(usize, u32) -> Script + Send + 'static) -> Self {
        MockBackend {
            slots,
            script: Box::new(script),
            running: Vec::new(),
            ready: VecDeque::new(),
            adoptable: Vec::new(),
            submitted: Arc::default(),
            peak: 0,
        }
    }

    fn end(run: &AttemptRun, failure: Option<Failure>) -> BackendEvent {
        BackendEvent::Ended(AttemptEnd {
            idx: run.idx,
            attempt: Attempt {
                attempt: run.attempt,
                started_at: crate::state::time::Timestamp::now(),
                duration_ms: 1,
                failure,
                stderr_tail: String::new(),
                usage: None,
            },
            captured: Map::new(),
            warnings: Vec::new(),
        })
    }

    /// The running attempt that ends first, if any ends at all.
    fn first_due(&self) -> Option<(usize, Instant)> {
        self.running
            .iter()
            .enumerate()
            .filter_map(|(i, (_, at, _))| at.map(|t| (i, t)))
            .min_by_key(|(_, t)| *t)
    }

    fn finish(&mut self, i: usize) -> BackendEvent {
        let (run, _, script) = self.running.remove(i);
        match script {
            Script::Fail(f, _) => Self::end(&run, Some(f)),
            _ => Self::end(&run, None),
        }
    }
}

impl MapBackend for MockBackend {
    fn free_slots(&self) -> usize {
        self.slots.saturating_sub(self.running.len())
    }

    fn in_flight(&self) -> usize {
        self.running.len() + self.ready.len()
    }

    async fn adopt(&mut self, candidates: &Candidates<'_>) -> Result<Vec<usize>, EngineError> {
        let mut taken = Vec::new();
        for idx in candidates.iter().filter(|idx| self.adoptable.contains(idx)) {
            let run = AttemptRun {
                idx,
                item: candidates.item(idx)?,
                attempt: candidates.prior_attempts(idx),
            };
            let at = Instant::now() + Duration::from_secs(1);
            self.running
                .push((run, Some(at), Script::Ok(Duration::from_secs(1))));
            taken.push(idx);
        }
        Ok(taken)
    }

    async fn submit(&mut self, batch: Vec<AttemptRun>) -> Result<(), EngineError> {
        for run in batch {
            self.submitted.lock().unwrap().push((run.idx, run.attempt));
            let script = (self.script)(run.idx, run.attempt);
            let at = match &script {
                Script::Ok(d) | Script::Fail(_, d) => Some(Instant::now() + *d),
                Script::Queued | Script::Hang => None,
            };
            self.running.push((run, at, script));
        }
        self.peak = self.peak.max(self.running.len());
        Ok(())
    }

    async fn next(&mut self) -> Result<BackendEvent, EngineError> {
        if let Some(ev) = self.ready.pop_front() {
            return Ok(ev);
        }
        match self.first_due() {
            Some((_, at)) => {
                tokio::time::sleep_until(at).await;
                let (i, _) = self.first_due().expect("still there");
                Ok(self.finish(i))
            }
            None => std::future::pending().await,
        }
    }

    fn try_next(&mut self) -> Option<BackendEvent> {
        if let Some(ev) = self.ready.pop_front() {
            return Some(ev);
        }
        let (i, at) = self.first_due()?;
        (at <= Instant::now()).then(|| self.finish(i))
    }

    async fn stop_starting(&mut self) {
        let mut kept = Vec::new();
        for (run, at, script) in self.running.drain(..) {
            match script {
                Script::Queued => self
                    .ready
                    .push_back(BackendEvent::Returned { idx: run.idx }),
                _ => kept.push((run, at, script)),
            }
        }
        self.running = kept;
    }

    async fn cancel(&mut self) {
        for (run, _, _) in self.running.drain(..) {
            self.ready
                .push_back(Self::end(&run, Some(Failure::Cancelled { step: 0 })));
        }
    }
}

/// A map's job for backend tests: a recorder on a fresh job directory whose map selected
/// `n` items (`i0`, `i1`, ...), the events it reports, the items and the queue.
pub struct TestJob {
    pub dir: tempfile::TempDir,
    pub rec: crate::engine::recorder::Recorder,
    pub events: Arc<Mutex<Vec<crate::report::event::Event>>>,
    pub items: Vec<Arc<crate::items::Item>>,
    pub queue: Vec<u32>,
}

impl TestJob {
    pub fn new(n: usize) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let collect = crate::report::reporter::Collect::default();
        let events = collect.0.clone();
        let mut rec = crate::engine::recorder::Recorder::new(
            crate::state::layout::JobDir::at(dir.path()),
            crate::state::job::JobView::default(),
            Box::new(collect),
        )
        .unwrap();
        rec.record(crate::state::records::Record::MapStarted {
            total: n,
            items_hash: "h".into(),
        })
        .unwrap();
        let items = (0..n)
            .map(|idx| {
                Arc::new(crate::items::Item {
                    id: format!("i{idx}"),
                    value: serde_json::json!(idx),
                })
            })
            .collect();
        TestJob {
            dir,
            rec,
            events,
            items,
            queue: (0..n as u32).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::controls::{ControlMsg, Controls};
    use crate::engine::map::dispatch::{LOST_LIMIT, MapRun, dispatch};
    use crate::engine::map::policy::MapEnd;
    use crate::engine::recorder::Recorder;
    use crate::report::event::Event;
    use crate::state::dlq;
    use crate::state::records::ItemStatus;
    use crate::workflow::model::{Backoff, ErrorPolicy, OnItemFailure, RetryPolicy};
    use tokio::sync::mpsc;

    struct Bench {
        _dir: tempfile::TempDir,
        rec: Recorder,
        events: Arc<Mutex<Vec<Event>>>,
        items: Vec<Arc<crate::items::Item>>,
        queue: Vec<u32>,
        controls: Controls,
        policy: ErrorPolicy,
        retry: RetryPolicy,
    }

    fn bench(n: usize) -> Bench {
        let TestJob {
            dir,
            rec,
            events,
            items,
            queue,
        } = TestJob::new(n);
        Bench {
            _dir: dir,
            rec,
            events,
            items,
            queue,
            controls: Controls::default(),
            policy: ErrorPolicy {
                on_item_failure: OnItemFailure::Dlq,
                max_failures: None,
                failure_threshold: None,
            },
            retry: RetryPolicy::default(),
        }
    }

    impl Bench {
        async fn run(&mut self, backend: &mut MockBackend) -> MapEnd {
            let (_tx, mut rx) = mpsc::unbounded_channel();
            self.run_with(backend, &mut rx).await
        }

        async fn run_with(
            &mut self,
            backend: &mut MockBackend,
            rx: &mut mpsc::UnboundedReceiver<ControlMsg>,
        ) -> MapEnd {
            let run = MapRun {
                queue: self.queue.clone(),
                items: &self.items,
                policy: &self.policy,
                retry: &self.retry,
                controls: &self.controls,
                stuck_after: None,
            };
            dispatch(backend, run, &mut self.rec, rx).await.unwrap()
        }

        fn status(&self, idx: usize) -> ItemStatus {
            self.rec.view.items.status(idx)
        }

        fn retrying(&self) -> usize {
            self.events
                .lock()
                .unwrap()
                .iter()
                .filter(|e| matches!(e, Event::ItemRetrying { .. }))
                .count()
        }
    }

    fn exit(code: i32) -> Failure {
        Failure::Exit { code, step: 0 }
    }

    const MS: Duration = Duration::from_millis(10);

    #[tokio::test(start_paused = true)]
    async fn every_item_runs_once_within_the_slots() {
        let mut b = bench(20);
        let mut backend = MockBackend::new(3, |_, _| Script::Ok(MS));
        assert_eq!(b.run(&mut backend).await, MapEnd::Finished);
        assert_eq!(backend.peak, 3);
        let submitted = backend.submitted.lock().unwrap().clone();
        assert_eq!(submitted.len(), 20);
        assert!(submitted.iter().all(|(_, a)| *a == 1));
        assert_eq!(b.rec.view.counts.successful, 20);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_item_is_retried_after_its_delay_and_attempts_are_recorded() {
        let mut b = bench(1);
        b.retry = RetryPolicy {
            max_attempts: 3,
            backoff: Backoff::Fixed,
            initial_delay: Duration::from_secs(5),
            ..RetryPolicy::default()
        };
        let mut backend = MockBackend::new(4, |_, attempt| match attempt {
            1 | 2 => Script::Fail(exit(3), MS),
            _ => Script::Ok(MS),
        });
        let t0 = Instant::now();
        assert_eq!(b.run(&mut backend).await, MapEnd::Finished);
        assert!(t0.elapsed() >= Duration::from_secs(10), "two 5 s delays");
        assert_eq!(
            backend.submitted.lock().unwrap().clone(),
            vec![(0, 1), (0, 2), (0, 3)]
        );
        assert_eq!(b.status(0), ItemStatus::Succeeded);
        assert_eq!(b.rec.view.items.attempts(0), 3);
        assert_eq!(b.retrying(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn exhausted_retries_reach_the_dlq_with_every_attempt() {
        let mut b = bench(2);
        b.retry = RetryPolicy {
            max_attempts: 2,
            initial_delay: MS,
            ..RetryPolicy::default()
        };
        let mut backend = MockBackend::new(4, |idx, _| match idx {
            1 => Script::Fail(exit(9), MS),
            _ => Script::Ok(MS),
        });
        assert_eq!(b.run(&mut backend).await, MapEnd::Finished);
        assert_eq!(b.status(0), ItemStatus::Succeeded);
        assert_eq!(b.status(1), ItemStatus::Dlq);
        let entries = dlq::load(&b.rec.dir.dlq()).unwrap();
        assert_eq!(entries.len(), 1);
        let attempts: Vec<u32> = entries[0].attempts.iter().map(|a| a.attempt).collect();
        assert_eq!(attempts, vec![1, 2]);
    }

    #[tokio::test(start_paused = true)]
    async fn lost_attempts_go_back_to_the_queue_without_using_the_retry_budget() {
        let mut b = bench(2);
        let lost = || Failure::TaskLost {
            message: "node died".into(),
        };
        let mut backend = MockBackend::new(4, move |idx, attempt| match (idx, attempt) {
            (0, 1) => Script::Fail(lost(), MS),
            (0, _) => Script::Ok(MS),
            (_, _) => Script::Fail(lost(), MS),
        });
        assert_eq!(b.run(&mut backend).await, MapEnd::Finished);
        assert_eq!(
            b.status(0),
            ItemStatus::Succeeded,
            "a lost attempt is retried"
        );
        assert_eq!(b.status(1), ItemStatus::Dlq, "but not for ever");
        let tries_of_1 = backend
            .submitted
            .lock()
            .unwrap()
            .iter()
            .filter(|(i, _)| *i == 1)
            .count();
        assert_eq!(tries_of_1 as u32, LOST_LIMIT + 1);
        let entries = dlq::load(&b.rec.dir.dlq()).unwrap();
        assert_eq!(entries[0].last_error().unwrap().class(), "task_lost");
    }

    #[tokio::test(start_paused = true)]
    async fn max_failures_stops_dispatching_and_leaves_the_rest_pending() {
        let mut b = bench(10);
        b.policy.max_failures = Some(2);
        let mut backend = MockBackend::new(1, |idx, _| match idx {
            1 | 2 => Script::Fail(exit(1), MS),
            _ => Script::Ok(MS),
        });
        let end = b.run(&mut backend).await;
        assert!(
            matches!(end, MapEnd::Stopped(ref r) if r.contains("max_failures: 2")),
            "{end:?}"
        );
        assert_eq!(b.rec.view.counts.dlq, 2);
        assert_eq!(b.rec.view.counts.successful, 1);
        assert_eq!(b.rec.view.counts.pending, 7);
    }

    #[tokio::test(start_paused = true)]
    async fn skip_policy_marks_failed_items_without_the_dlq() {
        let mut b = bench(2);
        b.policy.on_item_failure = OnItemFailure::Skip;
        let mut backend = MockBackend::new(2, |idx, _| match idx {
            0 => Script::Fail(exit(1), MS),
            _ => Script::Ok(MS),
        });
        assert_eq!(b.run(&mut backend).await, MapEnd::Finished);
        assert_eq!(b.status(0), ItemStatus::Failed);
        assert!(dlq::load(&b.rec.dir.dlq()).unwrap().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn pause_holds_new_attempts_until_unpause() {
        let mut b = bench(6);
        let mut backend = MockBackend::new(2, |_, _| Script::Ok(Duration::from_secs(1)));
        let submitted = backend.submitted.clone();
        let (tx, mut rx) = mpsc::unbounded_channel();
        tx.send(ControlMsg::Pause(Some("db".into()))).unwrap();
        let watcher = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(30)).await;
            let while_paused = submitted.lock().unwrap().len();
            tx.send(ControlMsg::Unpause).unwrap();
            while_paused
        });
        assert_eq!(b.run_with(&mut backend, &mut rx).await, MapEnd::Finished);
        let while_paused = watcher.await.unwrap();
        assert!(
            while_paused <= 2,
            "{while_paused} attempts started while paused"
        );
        assert_eq!(b.rec.view.counts.successful, 6);
        assert_eq!(b.rec.view.pauses.len(), 1);
        assert!(b.rec.view.paused().is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_stop_takes_back_what_has_not_started_and_lets_the_rest_finish() {
        let mut b = bench(4);
        let mut backend = MockBackend::new(4, |idx, _| match idx {
            0 | 1 => Script::Ok(Duration::from_secs(2)),
            _ => Script::Queued,
        });
        let stop = b.controls.stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            stop.cancel();
        });
        assert_eq!(b.run(&mut backend).await, MapEnd::Cancelled);
        assert_eq!(b.rec.view.counts.successful, 2, "running attempts finish");
        assert_eq!(b.rec.view.counts.pending, 2, "queued ones stay to do");
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancel_ends_hanging_attempts_and_keeps_their_items_pending() {
        let mut b = bench(3);
        let mut backend = MockBackend::new(3, |_, _| Script::Hang);
        let controls = b.controls.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            controls.stop.cancel();
            controls.cancel.cancel();
        });
        assert_eq!(b.run(&mut backend).await, MapEnd::Cancelled);
        assert_eq!(b.rec.view.counts.pending, 3);
        assert_eq!(b.rec.view.counts.failed_total(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_retry_that_would_start_after_a_stop_leaves_the_item_pending() {
        let mut b = bench(1);
        b.retry = RetryPolicy {
            max_attempts: 5,
            backoff: Backoff::Fixed,
            initial_delay: Duration::from_secs(60),
            ..RetryPolicy::default()
        };
        let mut backend = MockBackend::new(1, |_, _| Script::Fail(exit(2), MS));
        let stop = b.controls.stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            stop.cancel();
        });
        assert_eq!(b.run(&mut backend).await, MapEnd::Cancelled);
        assert_eq!(b.status(0), ItemStatus::Pending);
        assert_eq!(
            b.rec.view.items.attempts(0),
            1,
            "the failed attempt is recorded"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn adopted_items_are_not_submitted_again() {
        let mut b = bench(3);
        b.rec.view.items.raise_attempts(1, 1);
        let mut backend = MockBackend::new(3, |_, _| Script::Ok(MS));
        backend.adoptable = vec![1];
        assert_eq!(b.run(&mut backend).await, MapEnd::Finished);
        let submitted = backend.submitted.lock().unwrap().clone();
        assert_eq!(submitted, vec![(0, 1), (2, 1)]);
        assert_eq!(b.rec.view.counts.successful, 3);
    }
}
