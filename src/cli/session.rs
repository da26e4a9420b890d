//! Running a job from the CLI: reporters, the async runtime, signal handling, and the
//! mapping from a job's end state to an exit code.

use std::ffi::OsStr;
use std::io::IsTerminal;
use std::sync::Arc;

use tokio::sync::mpsc;

use crate::cli::args::{ColorChoice, Global, ReportArgs};
use crate::cli::exit::usage;
use crate::engine::attempt::executor::ProcessExecutor;
use crate::engine::controls::{Controls, watch_channel, watch_signals};
use crate::engine::error::EngineError;
use crate::engine::phases::{JobOutcome, JobRun, RunKind, execute};
use crate::engine::recorder::Recorder;
use crate::items::Item;
use crate::report::github::GitHub;
use crate::report::human::{Human, Verbosity};
use crate::report::junit::Junit;
use crate::report::metrics::Metrics;
use crate::report::ndjson::Ndjson;
use crate::report::reporter::{Fanout, Reporter};
use crate::state::job::{JobMeta, JobView};
use crate::state::layout::JobDir;
use crate::state::lock::JobLock;
use crate::state::records::Record;
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

/// Whether human output may be coloured: `always`; or `auto` when stderr is a terminal and
/// `NO_COLOR` is unset or empty; never otherwise.
pub fn color_enabled(choice: ColorChoice, stderr_tty: bool, no_color: Option<&OsStr>) -> bool {
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => stderr_tty && no_color.is_none_or(|v| v.is_empty()),
    }
}

pub fn use_color(g: &Global) -> bool {
    color_enabled(
        g.color,
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    )
}

pub fn reporter(g: &Global, out: &ReportArgs) -> Box<dyn Reporter> {
    let tty = std::io::stderr().is_terminal();
    let mut all: Vec<Box<dyn Reporter>> = vec![Box::new(
        Human::new(verbosity(g), tty).with_color(use_color(g)),
    )];
    if out.json {
        all.push(Box::new(Ndjson::new(std::io::stdout())));
    }
    if let Some(path) = &out.junit {
        all.push(Box::new(Junit::new(path.clone())));
    }
    if let Some(path) = &out.metrics_file {
        all.push(Box::new(Metrics::new(path.clone())));
    }
    if let Some(gh) = GitHub::from_env(out.json) {
        all.push(Box::new(gh));
    }
    Box::new(Fanout(all))
}

pub struct Session<'a> {
    pub dir: JobDir,
    pub meta: &'a JobMeta,
    pub workflow: &'a Workflow,
    pub view: JobView,
    pub kind: RunKind,
    /// Items already selected (a `run` without setup selects before it creates the job).
    pub preselected: Option<Vec<Arc<Item>>>,
    pub max_parallel: Option<usize>,
    pub lock: JobLock,
    pub warnings: Vec<String>,
    /// How long the steps in flight get after the first SIGINT/SIGTERM is forwarded to them.
    pub kill_grace: std::time::Duration,
}

/// Run the job to its end (or interruption) and return the exit code.
pub fn run_session(g: &Global, out: &ReportArgs, s: Session<'_>) -> anyhow::Result<i32> {
    // One thread: the dispatcher and item tasks wait on I/O; a single thread avoids
    // cross-thread wakeups per item (measured: the largest per-item cost after fork/exec).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    crate::engine::process::reaper::become_subreaper();
    crate::engine::process::watchdog::start();
    let controls = Controls::default();
    let mut rec = Recorder::new(s.dir, s.view, reporter(g, out))?;
    let mut warnings = s.warnings;
    let killed = crate::engine::process::orphans::kill_leftovers(&rec.view.live_groups);
    if !rec.view.live_groups.is_empty() {
        if killed > 0 {
            warnings.push(format!(
                "killed {killed} process group(s) left running by a crashed run of this job"
            ));
        }
        rec.record_durable(Record::GroupsReaped)?;
    }
    let control_dir = rec.dir.control();
    let outcome: anyhow::Result<JobOutcome> = rt.block_on(async {
        let (tx, mut rx) = mpsc::unbounded_channel();
        watch_signals(controls.clone(), s.kill_grace, Some(tx.clone()));
        watch_channel(control_dir, controls.clone(), tx);
        let run = JobRun {
            meta: s.meta,
            workflow: s.workflow,
            kind: s.kind,
            preselected: s.preselected,
            max_parallel: s.max_parallel,
            controls: controls.clone(),
            warnings,
            tee_output: verbosity(g) != Verbosity::Quiet,
        };
        let out = execute(ProcessExecutor, run, &mut rx, &mut rec).await;
        controls.cancel.cancel(); // ends the watchers
        Ok(out?)
    });
    rec.finish_reporting();
    drop(rec);
    rt.shutdown_timeout(std::time::Duration::from_secs(1));
    crate::engine::process::watchdog::stop();
    let released = s.lock.release();
    let outcome = outcome.map_err(|e| kept_job_hint(e, &s.meta.job_id))?;
    released?;
    Ok(crate::report::event::job_exit_code(
        outcome.state,
        controls.stop_signal(),
    ))
}

/// Items are selected in the job only after setup (or on a resume that re-selects): when
/// that fails, the job stays, failed, and the message says how to go on.
fn kept_job_hint(e: anyhow::Error, job_id: &str) -> anyhow::Error {
    match e.downcast_ref::<EngineError>() {
        Some(EngineError::Items(_)) => usage(format!(
            "{e:#}\nrunner: job {job_id} is kept as failed before its map, with its finished \
             setup steps recorded; fix the input, then `runner resume {job_id}` selects the \
             items again without rerunning those steps"
        )),
        _ => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_only_when_allowed() {
        let no = Some(OsStr::new("1"));
        let empty = Some(OsStr::new(""));
        assert!(color_enabled(ColorChoice::Always, false, no));
        assert!(!color_enabled(ColorChoice::Never, true, None));
        assert!(color_enabled(ColorChoice::Auto, true, None));
        assert!(color_enabled(ColorChoice::Auto, true, empty));
        assert!(!color_enabled(ColorChoice::Auto, true, no));
        assert!(!color_enabled(ColorChoice::Auto, false, None));
    }
}
