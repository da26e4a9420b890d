//! Running an opened job to its end: the async runtime, the subreaper and watchdog, cleanup
//! of the process groups a crashed run left, signals and the control channel, the phases,
//! and the release of the lock. `run`, `resume` and `dlq retry` all end here.

use std::time::Duration;

use tokio::sync::mpsc;

use crate::engine::attempt::executor::ProcessExecutor;
use crate::engine::controls::{Controls, watch_channel, watch_signals};
use crate::engine::error::EngineError;
use crate::engine::phases::{JobOutcome, JobRun, RunKind, execute};
use crate::engine::process::{orphans, reaper, watchdog};
use crate::engine::recorder::Recorder;
use crate::items::Frozen;
use crate::report::reporter::Reporter;
use crate::session::error::SessionError;
use crate::state::job::{JobMeta, JobView};
use crate::state::layout::JobDir;
use crate::state::lock::JobLock;
use crate::state::records::Record;
use crate::workflow::model::Workflow;

/// A job opened for a run: locked, its state recovered, with the workflow it runs.
pub struct OpenRun {
    pub dir: JobDir,
    pub meta: JobMeta,
    pub workflow: Workflow,
    pub view: JobView,
    pub lock: JobLock,
    pub kind: RunKind,
    /// Items already selected (a `run` without setup selects before it creates the job).
    pub preselected: Option<Frozen>,
    /// Said right after `job_started`.
    pub warnings: Vec<String>,
}

/// How this invocation runs the job.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// `--max-parallel` of this invocation.
    pub max_parallel: Option<usize>,
    /// How long the steps in flight get after the first SIGINT/SIGTERM is forwarded to them.
    pub kill_grace: Duration,
    /// Copy setup/reduce output to stderr (not with `-q`).
    pub tee_output: bool,
    /// Git isolation: merge the job's branch into the original branch after reduce.
    pub merge: bool,
}

/// Run the job to its end (or interruption), reporting to `reporter`; the lock is released
/// whatever happens.
pub fn run_job(
    job: OpenRun,
    opts: RunOptions,
    reporter: Box<dyn Reporter>,
) -> Result<JobOutcome, SessionError> {
    // One thread: the dispatcher and item tasks wait on I/O; a single thread avoids
    // cross-thread wakeups per item (measured: the largest per-item cost after fork/exec).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| SessionError::Infra(format!("cannot start the async runtime: {e}")))?;
    reaper::become_subreaper();
    watchdog::start();
    let OpenRun {
        dir,
        meta,
        workflow,
        view,
        lock,
        kind,
        preselected,
        mut warnings,
    } = job;
    let controls = Controls::default();
    let reporter = crate::notify::notifier::with_notifications(reporter, &workflow, &meta, &dir);
    let outcome: Result<JobOutcome, SessionError> = (|| {
        let mut rec = Recorder::new(dir, view, reporter)?;
        let killed = orphans::kill_leftovers(&rec.view.live_groups);
        if !rec.view.live_groups.is_empty() {
            if killed > 0 {
                warnings.push(format!(
                    "killed {killed} process group(s) left running by a crashed run of this job"
                ));
            }
            rec.record_durable(Record::GroupsReaped)?;
        }
        let control_dir = rec.dir.control();
        let outcome = rt.block_on(async {
            let (tx, mut rx) = mpsc::unbounded_channel();
            watch_signals(controls.clone(), opts.kill_grace, Some(tx.clone()));
            watch_channel(control_dir, controls.clone(), tx);
            let run = JobRun {
                meta: &meta,
                workflow: &workflow,
                kind,
                preselected: std::cell::Cell::new(preselected),
                max_parallel: opts.max_parallel,
                controls: controls.clone(),
                warnings,
                tee_output: opts.tee_output,
                merge: opts.merge,
            };
            let out = execute(ProcessExecutor, run, &mut rx, &mut rec).await;
            controls.cancel.cancel(); // ends the watchers
            out
        });
        rec.finish_reporting();
        outcome.map_err(|e| kept_job_hint(e, &meta.job_id))
    })();
    rt.shutdown_timeout(Duration::from_secs(1));
    watchdog::stop();
    let released = lock.release();
    let outcome = outcome?;
    released?;
    Ok(outcome)
}

/// Items are selected in the job only after setup (or on a resume that re-selects): when
/// that fails, the job stays, failed, and the message says how to go on.
fn kept_job_hint(e: EngineError, job_id: &str) -> SessionError {
    match e {
        EngineError::Items(_) => SessionError::Usage(format!(
            "{}\nrunner: job {job_id} is kept as failed before its map, with its finished \
             setup steps recorded; fix the input, then `runner resume {job_id}` selects the \
             items again without rerunning those steps",
            error_chain(&e)
        )),
        e => e.into(),
    }
}

/// An error and its sources on one line (`a: b: c`).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    text
}
