//! The coordinator against the in-memory cluster (`fake.rs`), driven by the real
//! dispatcher in virtual time: batch accounting, lost tasks, adoption decisions, a Slurm
//! that cannot answer or refuses, stop and cancel.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;

use crate::engine::controls::Controls;
use crate::engine::error::EngineError;
use crate::engine::map::dispatch::{LOST_LIMIT, MapRun, dispatch};
use crate::engine::map::mock::TestJob;
use crate::engine::map::policy::MapEnd;
use crate::engine::recorder::Recorder;
use crate::engine::slurm::adopt::CERTAIN_TRIES;
use crate::engine::slurm::backend::{SlurmBackend, SlurmJob};
use crate::engine::slurm::batch::Durations;
use crate::engine::slurm::fake::{Act, FakeSlurm};
use crate::report::event::Event;
use crate::state::dlq;
use crate::state::records::{ItemStatus, Record};
use crate::state::slurm::outcome::Outcome;
use crate::state::slurm::paths::{OutcomeKey, SlurmPaths};
use crate::state::slurm::submission::{self, SubmissionRecord, SubmissionSpec, TaskItem};
use crate::workflow::model::{ErrorPolicy, OnItemFailure, RetryPolicy, SlurmOptions};

const NAME: &str = "runner-job";

struct Bench {
    dir: tempfile::TempDir,
    rec: Recorder,
    events: Arc<Mutex<Vec<Event>>>,
    items: Vec<Arc<crate::items::Item>>,
    queue: Vec<u32>,
    controls: Controls,
    opts: SlurmOptions,
    retry: RetryPolicy,
    max_parallel: usize,
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
        dir,
        rec,
        events,
        items,
        queue,
        controls: Controls::default(),
        opts: SlurmOptions {
            poll_interval: Duration::from_secs(1),
            ..SlurmOptions::default()
        },
        retry: RetryPolicy::default(),
        max_parallel: 8,
    }
}

impl Bench {
    fn paths(&self) -> SlurmPaths {
        SlurmPaths::new(&self.dir.path().canonicalize().unwrap())
    }

    fn fake(&self, script: impl FnMut(&TaskItem) -> Act + Send + 'static) -> FakeSlurm {
        FakeSlurm::new(self.paths(), script)
    }

    async fn run(&mut self, fake: &FakeSlurm) -> Result<MapEnd, EngineError> {
        let job = SlurmJob {
            job_dir: self.dir.path().canonicalize().unwrap(),
            job_name: NAME.into(),
            opts: self.opts.clone(),
            timeout: None,
            kill_grace: Duration::from_secs(1),
            runner: "/usr/bin/runner".into(),
            max_parallel: self.max_parallel,
            recorded: Durations::default(),
        };
        let mut backend = SlurmBackend::new(fake.clone(), job, serde_json::Map::new())?;
        let (_tx, mut rx) = mpsc::unbounded_channel();
        let policy = ErrorPolicy {
            on_item_failure: OnItemFailure::Dlq,
            max_failures: None,
            failure_threshold: None,
        };
        let run = MapRun {
            queue: self.queue.clone(),
            items: &self.items,
            policy: &policy,
            retry: &self.retry,
            controls: &self.controls,
            stuck_after: None,
        };
        dispatch(&mut backend, run, &mut self.rec, &mut rx).await
    }

    fn status(&self, idx: usize) -> ItemStatus {
        self.rec.view.items.status(idx)
    }

    fn warnings(&self) -> Vec<String> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter_map(|e| match e {
                Event::Warning { message } => Some(message.clone()),
                _ => None,
            })
            .collect()
    }

    /// Records of item `idx` in the journal: (failed attempts, item ends).
    fn records_of(&self, idx: usize) -> (usize, usize) {
        let mut out = (0, 0);
        let journal = self.rec.dir.journal();
        crate::state::journal::replay::<Record>(&journal, 0, |_, r| match r {
            Record::Attempt { idx: i, .. } if i == idx => out.0 += 1,
            Record::ItemDone { idx: i, .. } if i == idx => out.1 += 1,
            _ => {}
        })
        .unwrap();
        out
    }

    fn outcome_files(&self) -> usize {
        std::fs::read_dir(self.paths().outcomes()).unwrap().count()
    }
}

fn item(idx: usize, attempt: u32) -> TaskItem {
    TaskItem {
        idx,
        item_id: format!("i{idx}"),
        item: serde_json::json!(idx),
        attempt,
    }
}

#[tokio::test(start_paused = true)]
async fn a_batched_array_runs_every_item_once_and_cleans_its_outcomes() {
    let mut b = bench(40);
    b.opts.items_per_task = Some(4);
    b.opts.parallel_per_task = Some(2);
    let fake = b.fake(|_| Act::Ok(5));
    assert_eq!(b.run(&fake).await.unwrap(), MapEnd::Finished);
    let reqs = fake.lock().requests.clone();
    assert_eq!(reqs.len(), 1, "one sbatch for all 40 items");
    assert_eq!(
        (reqs[0].tasks, reqs[0].throttle),
        (10, 4),
        "10 tasks, 8 / 2 at once"
    );
    assert_eq!(fake.submitted()[0][1], vec![4, 5, 6, 7]);
    assert_eq!(b.rec.view.counts.successful, 40);
    for idx in 0..40 {
        assert_eq!(b.records_of(idx), (0, 1), "item {idx} recorded once");
    }
    assert_eq!(b.outcome_files(), 0, "recorded outcomes are deleted");
    let log = submission::read_log(&b.paths().submissions()).unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].tasks.len(), 10);
}

#[tokio::test(start_paused = true)]
async fn a_task_killed_mid_batch_loses_only_its_unfinished_items() {
    let mut b = bench(12);
    b.opts.items_per_task = Some(4);
    // Item 5's first attempt kills its task (items 4..8): 4 finished, 5, 6, 7 did not.
    let fake = b.fake(|t| match (t.idx, t.attempt) {
        (5, 1) => Act::KillTask,
        _ => Act::Ok(5),
    });
    assert_eq!(b.run(&fake).await.unwrap(), MapEnd::Finished);
    assert_eq!(b.rec.view.counts.successful, 12);
    let subs = fake.submitted();
    assert_eq!(subs.len(), 2, "{subs:?}");
    let again: Vec<usize> = subs[1].iter().flatten().copied().collect();
    assert_eq!(again, vec![5, 6, 7], "only the unfinished items run again");
    assert_eq!(b.records_of(4), (0, 1));
    for idx in [5, 6, 7] {
        assert_eq!(
            b.records_of(idx),
            (1, 1),
            "one lost attempt, one end: item {idx}"
        );
        assert_eq!(b.rec.view.items.attempts(idx), 2);
    }
    let lost = b.warnings().len();
    assert_eq!(lost, 0, "{:?}", b.warnings());
}

#[tokio::test(start_paused = true)]
async fn an_item_that_always_kills_its_task_ends_in_the_dlq_as_lost() {
    let mut b = bench(3);
    b.opts.items_per_task = Some(3);
    let fake = b.fake(|t| {
        if t.idx == 1 {
            Act::KillTask
        } else {
            Act::Ok(5)
        }
    });
    assert_eq!(b.run(&fake).await.unwrap(), MapEnd::Finished);
    assert_eq!(b.status(0), ItemStatus::Succeeded);
    assert_eq!(
        b.status(2),
        ItemStatus::Succeeded,
        "lost once with item 1, then ran"
    );
    assert_eq!(b.status(1), ItemStatus::Dlq);
    let entries = dlq::load(&b.rec.dir.dlq()).unwrap();
    assert_eq!(entries[0].attempts.len() as u32, LOST_LIMIT + 1);
    let last = entries[0].attempts.last().unwrap();
    assert_eq!(last.failure.as_ref().unwrap().class(), "task_lost");
    assert!(
        last.stderr_tail.contains("ended FAILED without an outcome"),
        "{last:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_probe_round_comes_first_then_tasks_are_sized_from_its_durations() {
    let mut b = bench(100);
    b.max_parallel = 4;
    let fake = b.fake(|_| Act::Ok(30_000));
    assert_eq!(b.run(&fake).await.unwrap(), MapEnd::Finished);
    let subs = fake.submitted();
    assert_eq!(
        subs[0],
        vec![vec![0], vec![1], vec![2], vec![3]],
        "the probe"
    );
    // 30 s items: 2 to a task make about a minute.
    assert!(subs[1].iter().all(|t| t.len() == 2), "{:?}", subs[1]);
    assert_eq!(subs[1].len(), 48);
    assert_eq!(b.rec.view.counts.successful, 100);
}

#[tokio::test(start_paused = true)]
async fn one_squeue_per_poll_interval_for_all_arrays() {
    let mut b = bench(40);
    b.opts.items_per_task = Some(1);
    b.opts.array_size = 5;
    b.max_parallel = 40;
    let fake = b.fake(|_| Act::Ok(5));
    let t0 = tokio::time::Instant::now();
    assert_eq!(b.run(&fake).await.unwrap(), MapEnd::Finished);
    let polls = fake.lock().calls.squeue;
    let intervals = t0.elapsed().as_secs() as usize;
    assert!(fake.lock().requests.len() >= 8, "several arrays at once");
    assert!(
        polls <= intervals + 2,
        "{polls} squeue calls in {intervals} s"
    );
}

#[tokio::test(start_paused = true)]
async fn a_refused_submission_stops_the_run_naming_slurms_reason() {
    let mut b = bench(3);
    b.opts.items_per_task = Some(1);
    let fake = b.fake(|_| Act::Ok(5));
    fake.lock().refuse =
        Some("Batch job submission failed: Invalid partition name specified".into());
    let err = b.run(&fake).await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, EngineError::Infra(_)), "{err:?}");
    assert!(text.contains("Invalid partition name specified"), "{text}");
    assert_eq!(fake.lock().calls.sbatch, 3, "tried three times");
    assert_eq!(b.rec.view.counts.pending, 3);
    assert!(
        !b.paths().sub_file(1).exists(),
        "a refused submission leaves no file"
    );
}

#[tokio::test(start_paused = true)]
async fn polls_slurm_cannot_answer_end_no_task() {
    let mut b = bench(6);
    b.opts.items_per_task = Some(2);
    let fake = b.fake(|_| Act::Ok(5));
    fake.lock().squeue_errors = 5;
    assert_eq!(b.run(&fake).await.unwrap(), MapEnd::Finished);
    assert_eq!(b.rec.view.counts.successful, 6);
    for idx in 0..6 {
        assert_eq!(b.records_of(idx), (0, 1), "no attempt was lost meanwhile");
    }
    let warnings = b.warnings();
    assert_eq!(warnings.len(), 1, "said once: {warnings:?}");
    assert!(warnings[0].contains("cannot poll Slurm"), "{warnings:?}");
}

#[tokio::test(start_paused = true)]
async fn a_stop_takes_back_tasks_that_have_not_started() {
    let mut b = bench(8);
    b.opts.items_per_task = Some(1);
    b.max_parallel = 2;
    let fake = b.fake(|_| Act::Ok(5));
    let stop = b.controls.stop.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        stop.cancel();
    });
    assert_eq!(b.run(&fake).await.unwrap(), MapEnd::Cancelled);
    assert_eq!(fake.lock().calls.scancel_pending, 1);
    assert_eq!(b.rec.view.counts.successful, 2, "the running tasks finish");
    assert_eq!(b.rec.view.counts.pending, 6, "the others stay to do");
    for idx in 2..8 {
        assert_eq!(b.records_of(idx), (0, 0), "item {idx}: nothing recorded");
    }
}

#[tokio::test(start_paused = true)]
async fn a_cancel_scancels_everything_and_keeps_finished_outcomes() {
    let mut b = bench(4);
    b.opts.items_per_task = Some(2);
    let fake = b.fake(|t| if t.idx == 1 { Act::Hang } else { Act::Ok(5) });
    let controls = b.controls.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        controls.stop.cancel();
        controls.cancel.cancel();
    });
    assert_eq!(b.run(&fake).await.unwrap(), MapEnd::Cancelled);
    assert_eq!(fake.lock().calls.scancel, 1);
    // Item 0 finished before item 1 hung its task; items 2 and 3 ran in the other task.
    assert_eq!(b.rec.view.counts.successful, 3);
    assert_eq!(b.status(1), ItemStatus::Pending);
    assert_eq!(b.records_of(1), (0, 0));
}

/// An earlier run's submission: its spec on disk and, unless `orphan`, its log line.
fn earlier(
    b: &Bench,
    fake: &FakeSlurm,
    sub: u64,
    tasks: Vec<Vec<TaskItem>>,
    states: Option<&[&str]>,
    orphan: bool,
) {
    let spec = SubmissionSpec {
        sub,
        token: format!("tok{sub}"),
        parallel: 1,
        tasks,
    };
    let paths = b.paths();
    std::fs::create_dir_all(paths.outcomes()).unwrap();
    spec.write(&paths.sub_file(sub)).unwrap();
    let job = match states {
        Some(s) => fake.lock().add_array(NAME, &spec, s),
        None => "999".into(),
    };
    if !orphan {
        submission::append(&paths.submissions(), &SubmissionRecord::new(&spec, &job)).unwrap();
    }
}

fn finished(b: &Bench, idx: usize, sub: u64, attempt: u32) {
    let o = Outcome {
        sub,
        idx,
        item_id: format!("i{idx}"),
        attempt: crate::state::records::Attempt {
            attempt,
            started_at: crate::state::time::Timestamp::now(),
            duration_ms: 7,
            failure: None,
            stderr_tail: String::new(),
            usage: None,
        },
        captured: serde_json::Map::new(),
        host: "n".into(),
    };
    o.write(&b.paths()).unwrap();
    assert!(
        b.paths()
            .outcome(&OutcomeKey::new(&format!("i{idx}"), sub, attempt))
            .exists()
    );
}

#[tokio::test(start_paused = true)]
async fn resume_adopts_live_and_finished_tasks_and_submits_only_the_rest() {
    let mut b = bench(8);
    b.opts.items_per_task = Some(4);
    b.rec.view.items.raise_attempts(3, 1); // its attempt 1 was recorded (a failure)
    let fake = b.fake(|_| Act::Ok(5));
    // Submission 1: item 0 still running, item 1 finished (outcome there), item 2's task
    // died without an outcome, item 3's attempt 1 was recorded already.
    earlier(
        &b,
        &fake,
        1,
        vec![
            vec![item(0, 1)],
            vec![item(1, 1)],
            vec![item(2, 1)],
            vec![item(3, 1)],
        ],
        Some(&["RUNNING", "COMPLETED", "FAILED", "COMPLETED"]),
        false,
    );
    finished(&b, 1, 1, 1);
    finished(&b, 3, 1, 1);
    // Submission 2 reached Slurm but the crash came before its line: found by comment.
    earlier(
        &b,
        &fake,
        2,
        vec![vec![item(4, 1), item(5, 1)]],
        Some(&["PENDING"]),
        true,
    );
    // Submission 3 was written but never submitted.
    earlier(&b, &fake, 3, vec![vec![item(6, 1)]], None, true);
    assert_eq!(b.run(&fake).await.unwrap(), MapEnd::Finished);
    assert_eq!(b.rec.view.counts.successful, 8);
    let again: Vec<usize> = fake.submitted().into_iter().flatten().flatten().collect();
    assert_eq!(
        again,
        vec![2, 3, 6, 7],
        "only what was neither running nor finished"
    );
    assert_eq!(b.rec.view.items.attempts(3), 2, "numbering continues");
    for idx in 0..8 {
        assert_eq!(b.records_of(idx).1, 1, "item {idx} recorded once");
    }
    // The fake cluster ran item 0's task while the resume asked about it: it is collected.
    let warnings = b.warnings();
    assert!(
        warnings.iter().any(|w| w.starts_with(
            "adopted 3 Slurm task(s) of an earlier run (4 item(s): 2 queued or running, 2 finished)"
        )),
        "{warnings:?}"
    );
    let log = submission::read_log(&b.paths().submissions()).unwrap();
    let subs: Vec<u64> = log.iter().map(|r| r.sub).collect();
    assert_eq!(
        subs,
        vec![1, 2, 4],
        "the found orphan is recorded; new ones follow"
    );
}

#[tokio::test(start_paused = true)]
async fn resume_stops_without_submitting_when_squeue_cannot_say_what_runs() {
    let mut b = bench(2);
    let fake = b.fake(|_| Act::Ok(5));
    earlier(
        &b,
        &fake,
        1,
        vec![vec![item(0, 1)], vec![item(1, 1)]],
        Some(&["RUNNING", "RUNNING"]),
        false,
    );
    fake.lock().squeue_errors = usize::MAX;
    let err = b.run(&fake).await.unwrap_err().to_string();
    assert!(err.contains("nothing was submitted again"), "{err}");
    assert!(err.contains("Unable to contact slurm controller"), "{err}");
    let c = fake.lock();
    assert_eq!(c.calls.sbatch, 0);
    assert_eq!(c.calls.squeue, CERTAIN_TRIES as usize);
}

#[tokio::test(start_paused = true)]
async fn an_adopted_attempt_that_fails_is_retried_under_the_next_number() {
    let mut b = bench(1);
    b.opts.items_per_task = Some(1);
    b.retry.max_attempts = 2;
    let fake = b.fake(|t| {
        if t.attempt == 1 {
            Act::Exit(3)
        } else {
            Act::Ok(5)
        }
    });
    earlier(
        &b,
        &fake,
        1,
        vec![vec![item(0, 1)]],
        Some(&["RUNNING"]),
        false,
    );
    assert_eq!(b.run(&fake).await.unwrap(), MapEnd::Finished);
    assert_eq!(b.status(0), ItemStatus::Succeeded);
    assert_eq!(b.rec.view.items.attempts(0), 2);
    let attempts: Vec<u32> = fake
        .lock()
        .arrays
        .iter()
        .flat_map(|a| {
            a.tasks
                .iter()
                .flat_map(|t| t.batch.iter().map(|i| i.attempt))
        })
        .collect();
    assert_eq!(
        attempts,
        vec![1, 2],
        "the adopted attempt 1, then attempt 2"
    );
}
