//! Running a job from the CLI: reporters, the async runtime, signal handling, and the
//! mapping from a job's end state to an exit code.

use std::io::IsTerminal;

use tokio::sync::mpsc;

use crate::cli::args::Global;
use crate::engine::control::{Controls, watch_channel, watch_signals};
use crate::engine::executor::ProcessExecutor;
use crate::engine::phases::{JobOutcome, JobRun, RunKind, execute};
use crate::engine::recorder::Recorder;
use crate::report::event::Event;
use crate::report::human::{Human, Verbosity};
use crate::report::ndjson::Ndjson;
use crate::report::reporter::{Fanout, Reporter};
use crate::state::job::{JobMeta, JobView};
use crate::state::layout::JobDir;
use crate::state::lock::JobLock;
use crate::state::records::Record;
use crate::workflow::model::Workflow;

/// Default time in-flight items get after the first SIGINT/SIGTERM or `runner stop`.
pub const STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

pub fn verbosity(g: &Global) -> Verbosity {
    if g.quiet {
        Verbosity::Quiet
    } else if g.verbose > 0 {
        Verbosity::Verbose
    } else {
        Verbosity::Normal
    }
}

pub fn reporter(g: &Global, json: bool) -> Box<dyn Reporter> {
    let mut all: Vec<Box<dyn Reporter>> = vec![Box::new(Human::new(
        verbosity(g),
        std::io::stderr().is_terminal(),
    ))];
    if json {
        all.push(Box::new(Ndjson::new(std::io::stdout())));
    }
    Box::new(Fanout(all))
}

pub struct Session<'a> {
    pub dir: JobDir,
    pub meta: &'a JobMeta,
    pub workflow: &'a Workflow,
    pub view: JobView,
    pub kind: RunKind,
    pub max_parallel: Option<usize>,
    pub lock: JobLock,
    pub warnings: Vec<String>,
    /// How long in-flight items may go on after a stop request or the first signal.
    pub stop_grace: std::time::Duration,
}

/// Run the job to its end (or interruption) and return the exit code.
pub fn run_session(g: &Global, json: bool, s: Session<'_>) -> anyhow::Result<i32> {
    // One thread: the dispatcher and item tasks wait on I/O; a single thread avoids
    // cross-thread wakeups per item (measured: the largest per-item cost after fork/exec).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    crate::engine::reaper::become_subreaper();
    let controls = Controls::default();
    let mut rec = Recorder::new(s.dir, s.view, reporter(g, json))?;
    for w in &s.warnings {
        rec.report(&Event::Warning { message: w.clone() });
    }
    let killed = crate::engine::orphans::kill_leftovers(&rec.view.live_groups);
    if !rec.view.live_groups.is_empty() {
        if killed > 0 {
            rec.report(&Event::Warning {
                message: format!(
                    "killed {killed} process group(s) left running by a crashed run of this job"
                ),
            });
        }
        rec.record_durable(Record::GroupsReaped)?;
    }
    let control_dir = rec.dir.control();
    let outcome: anyhow::Result<JobOutcome> = rt.block_on(async {
        let (tx, mut rx) = mpsc::unbounded_channel();
        watch_signals(controls.clone(), s.stop_grace);
        watch_channel(control_dir, controls.clone(), tx);
        let run = JobRun {
            meta: s.meta,
            workflow: s.workflow,
            kind: s.kind,
            max_parallel: s.max_parallel,
            controls: controls.clone(),
        };
        let out = execute(ProcessExecutor, run, &mut rx, &mut rec).await;
        controls.cancel.cancel(); // ends the watchers
        Ok(out?)
    });
    rec.finish_reporting();
    drop(rec);
    rt.shutdown_timeout(std::time::Duration::from_secs(1));
    let released = s.lock.release();
    let outcome = outcome?;
    released?;
    if let Some(reason) = &outcome.reason {
        eprintln!("runner: {reason}");
    }
    Ok(crate::report::event::job_exit_code(
        outcome.state,
        controls.stop_signal(),
    ))
}
