//! How a job run reports to the person or program that started it: the reporters chosen by
//! the flags (human, NDJSON, JUnit, metrics, GitHub), and the run itself, whose outcome
//! becomes the exit code.

use crate::cli::args::{ColorChoice, Global, ReportArgs};
use crate::report::github::GitHub;
use crate::report::human::{Human, Verbosity};
use crate::report::junit::Junit;
use crate::report::metrics::Metrics;
use crate::report::ndjson::Ndjson;
use crate::report::reporter::{Fanout, Reporter};
use crate::session::runtime::{OpenRun, RunOptions, run_job};
use std::ffi::OsStr;
use std::io::IsTerminal;

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

/// Run an opened job with the reporters `out` asks for; returns the exit code.
pub fn run(g: &Global, out: &ReportArgs, job: OpenRun, opts: RunOptions) -> anyhow::Result<i32> {
    let outcome = run_job(job, opts, reporter(g, out))?;
    Ok(outcome.exit_code())
}

/// The run options common to `run`, `resume` and `dlq retry`.
pub fn run_options(
    g: &Global,
    max_parallel: Option<u32>,
    kill_grace: std::time::Duration,
) -> RunOptions {
    RunOptions {
        max_parallel: max_parallel.map(|n| n as usize),
        kill_grace,
        tee_output: verbosity(g) != Verbosity::Quiet,
        // Prodigy's switch for merging without asking.
        merge: std::env::var("PRODIGY_AUTO_MERGE").is_ok_and(|v| v.eq_ignore_ascii_case("true")),
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
