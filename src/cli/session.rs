//! Running a job from the CLI: reporters, the async runtime, signal handling, and the
//! mapping from a job's end state to an exit code.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};

use tokio_util::sync::CancellationToken;

use crate::cli::args::Global;
use crate::cli::exit::{COMPLETED, FAILURES, SIGINT, SIGTERM};
use crate::engine::executor::ProcessExecutor;
use crate::engine::phases::{JobOutcome, JobRun, RunKind, execute};
use crate::engine::recorder::Recorder;
use crate::report::human::{Human, Verbosity};
use crate::report::ndjson::Ndjson;
use crate::report::reporter::{Fanout, Reporter};
use crate::state::job::{JobMeta, JobView};
use crate::state::layout::JobDir;
use crate::state::lock::JobLock;
use crate::state::records::JobState;
use crate::workflow::model::Workflow;

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
}

/// Run the job to its end (or interruption) and return the exit code.
pub fn run_session(g: &Global, json: bool, s: Session<'_>) -> anyhow::Result<i32> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let cancel = CancellationToken::new();
    let signal = Arc::new(AtomicI32::new(0));
    let mut rec = Recorder::new(s.dir, s.view, reporter(g, json))?;
    for w in &s.warnings {
        rec.report(&crate::report::event::Event::Warning { message: w.clone() });
    }
    let outcome: anyhow::Result<JobOutcome> = rt.block_on(async {
        watch_signals(cancel.clone(), signal.clone());
        let run = JobRun {
            meta: s.meta,
            workflow: s.workflow,
            kind: s.kind,
            max_parallel: s.max_parallel,
            cancel,
        };
        Ok(execute(ProcessExecutor, run, &mut rec).await?)
    });
    rec.finish_reporting();
    drop(rec);
    let released = s.lock.release();
    let outcome = outcome?;
    released?;
    if let Some(reason) = &outcome.reason {
        eprintln!("runner: {reason}");
    }
    Ok(match outcome.state {
        JobState::Completed => COMPLETED,
        JobState::Interrupted => match signal.load(Ordering::SeqCst) {
            15 => SIGTERM,
            _ => SIGINT,
        },
        _ => FAILURES,
    })
}

/// First SIGINT/SIGTERM: stop dispatching and cancel in-flight items (their process groups
/// get TERM, then KILL after the grace period); the job is saved as interrupted.
fn watch_signals(cancel: CancellationToken, which: Arc<AtomicI32>) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return;
    };
    tokio::spawn(async move {
        let n = tokio::select! {
            _ = int.recv() => 2,
            _ = term.recv() => 15,
        };
        which.store(n, Ordering::SeqCst);
        cancel.cancel();
    });
}
