//! Human output on stderr: a progress bar when stderr is a terminal, otherwise plain lines
//! (one per state change, a progress line at most every few seconds).

use std::io::Write;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::report::event::Event;
use crate::report::reporter::Reporter;
use crate::state::records::{ItemStatus, JobState, Phase};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verbosity {
    Quiet,
    Normal,
    Verbose,
}

pub struct Human {
    verbosity: Verbosity,
    bar: Option<ProgressBar>,
    tty: bool,
    progress_every: Duration,
    last_progress: Instant,
    total: usize,
    done: usize,
    failed: usize,
    map_started: Option<Instant>,
    color: bool,
}

const RED: &str = "31";
const GREEN: &str = "32";
const YELLOW: &str = "33";

impl Human {
    pub fn new(verbosity: Verbosity, tty: bool) -> Self {
        Human {
            verbosity,
            bar: None,
            tty,
            progress_every: Duration::from_secs(5),
            last_progress: Instant::now(),
            total: 0,
            done: 0,
            failed: 0,
            map_started: None,
            color: false,
        }
    }

    /// Colour a few words (failures red, completion green); the CLI decides whether colour
    /// is allowed (`--color`, `NO_COLOR`, a terminal).
    pub fn with_color(mut self, color: bool) -> Self {
        self.color = color;
        self
    }

    fn paint(&self, text: &str, code: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }

    fn line(&self, text: &str) {
        match &self.bar {
            Some(bar) => bar.println(text),
            None => {
                let _ = writeln!(std::io::stderr(), "{text}");
            }
        }
    }

    fn normal(&self, text: &str) {
        if self.verbosity >= Verbosity::Normal {
            self.line(text);
        }
    }

    fn rate(&self) -> f64 {
        let secs = self
            .map_started
            .map(|s| s.elapsed().as_secs_f64())
            .unwrap_or(0.0);
        if secs > 0.0 {
            self.done as f64 / secs
        } else {
            0.0
        }
    }
}

fn phase_name(p: Phase) -> &'static str {
    match p {
        Phase::Setup => "setup",
        Phase::Map => "map",
        Phase::Reduce => "reduce",
    }
}

fn secs(ms: u64) -> String {
    format!("{:.1}s", ms as f64 / 1000.0)
}

impl Reporter for Human {
    fn report(&mut self, event: &Event) {
        match event {
            Event::JobStarted {
                job_id,
                workflow,
                command,
            } => {
                let verb = if command == "run" {
                    "started"
                } else {
                    "continuing"
                };
                // Even with -q: scripts and people need the job id to resume.
                self.line(&format!("runner: job {job_id} {verb} ({workflow})"));
            }
            Event::PhaseStarted { .. } => {}
            Event::StepFinished {
                phase,
                index,
                command,
                ok,
                duration_ms,
                error,
            } => {
                if *ok {
                    self.normal(&format!(
                        "{} step {} ok ({}): {command}",
                        phase_name(*phase),
                        index + 1,
                        secs(*duration_ms)
                    ));
                } else {
                    self.line(&format!(
                        "{} step {} {}: {} ({command})",
                        phase_name(*phase),
                        index + 1,
                        self.paint("FAILED", RED),
                        error.as_deref().unwrap_or("failed")
                    ));
                }
            }
            Event::MapStarted {
                total,
                to_run,
                max_parallel,
            } => {
                self.total = *to_run;
                self.done = 0;
                self.failed = 0;
                self.map_started = Some(Instant::now());
                self.last_progress = Instant::now();
                self.normal(&format!(
                    "map: {to_run} of {total} items to run, {max_parallel} at a time"
                ));
                if self.tty && self.verbosity >= Verbosity::Normal && *to_run > 0 {
                    let bar = ProgressBar::with_draw_target(
                        Some(*to_run as u64),
                        ProgressDrawTarget::stderr_with_hz(10),
                    );
                    if let Ok(style) = ProgressStyle::with_template(
                        "{spinner} map [{bar:30}] {pos}/{len} {msg} {per_sec} eta {eta}",
                    ) {
                        bar.set_style(style.progress_chars("=> "));
                    }
                    self.bar = Some(bar);
                }
            }
            Event::ItemRetrying {
                item_id,
                attempt,
                error,
                delay_ms,
            } => {
                if self.verbosity >= Verbosity::Verbose {
                    self.line(&format!(
                        "item {item_id}: attempt {attempt} failed ({error}); retrying in {}",
                        secs(*delay_ms)
                    ));
                }
            }
            Event::ItemFinished {
                item_id,
                status,
                attempts,
                error,
                stderr_tail,
                ..
            } => {
                self.done += 1;
                let failed = !matches!(status, ItemStatus::Succeeded);
                if failed {
                    self.failed += 1;
                    let dest = if *status == ItemStatus::Dlq {
                        " -> DLQ"
                    } else {
                        ""
                    };
                    let mut text = format!(
                        "item {item_id} {} after {attempts} attempt{}: {}{dest}",
                        self.paint("failed", RED),
                        if *attempts == 1 { "" } else { "s" },
                        error.as_deref().unwrap_or("failed")
                    );
                    if let Some(last) = stderr_tail.lines().last() {
                        text.push_str(&format!("\n  stderr: {last}"));
                    }
                    self.line(&text);
                } else if self.verbosity >= Verbosity::Verbose {
                    self.line(&format!("item {item_id} ok"));
                }
                if let Some(bar) = &self.bar {
                    bar.inc(1);
                    if self.failed > 0 {
                        bar.set_message(format!("({} failed)", self.failed));
                    }
                } else if self.verbosity >= Verbosity::Normal
                    && self.last_progress.elapsed() >= self.progress_every
                {
                    self.last_progress = Instant::now();
                    self.line(&format!(
                        "map: {}/{} done, {} failed, {:.0} items/s",
                        self.done,
                        self.total,
                        self.failed,
                        self.rate()
                    ));
                }
            }
            Event::PhaseFinished {
                phase,
                ok,
                duration_ms,
            } => {
                if let Some(bar) = self.bar.take() {
                    bar.finish_and_clear();
                }
                if *phase == Phase::Map {
                    self.normal(&format!(
                        "map: {}/{} done, {} failed in {} ({:.0} items/s)",
                        self.done,
                        self.total,
                        self.failed,
                        secs(*duration_ms),
                        self.rate()
                    ));
                } else if !ok {
                    self.line(&format!(
                        "{} {}",
                        phase_name(*phase),
                        self.paint("failed", RED)
                    ));
                }
            }
            Event::Warning { message } => {
                self.line(&format!("{} {message}", self.paint("warning:", YELLOW)))
            }
            Event::Paused { reason } => self.line(&format!(
                "paused: no new item starts until `runner resume`{}",
                reason
                    .as_ref()
                    .map(|r| format!(" (reason: {r})"))
                    .unwrap_or_default()
            )),
            Event::Unpaused {} => self.line("resumed: dispatching items again"),
            Event::JobFinished {
                job_id,
                state,
                total,
                successful,
                failed,
                dlq,
                pending,
                duration_ms,
                ..
            } => {
                let what = match state {
                    JobState::Completed => self.paint("completed", GREEN),
                    JobState::Failed => self.paint("finished with failures", RED),
                    JobState::Interrupted => format!(
                        "{} (resume with `runner resume`)",
                        self.paint("interrupted", YELLOW)
                    ),
                    JobState::Paused => "paused".into(),
                    JobState::Running => "running".into(),
                    JobState::Stale => "stale".into(),
                };
                let mut text =
                    format!("runner: job {job_id} {what}: {successful}/{total} succeeded");
                if *failed > 0 {
                    text.push_str(&format!(", {failed} failed"));
                }
                if *dlq > 0 {
                    text.push_str(&format!(", {dlq} in the DLQ (`runner dlq list {job_id}`)"));
                }
                if *pending > 0 {
                    text.push_str(&format!(", {pending} pending"));
                }
                text.push_str(&format!(" in {}", secs(*duration_ms)));
                self.line(&text);
            }
        }
    }

    fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}
