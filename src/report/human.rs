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
    /// The phase running now (what an interrupt stops).
    phase: Option<Phase>,
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
            phase: None,
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

    fn rate(&self) -> String {
        let secs = self
            .map_started
            .map(|s| s.elapsed().as_secs_f64())
            .unwrap_or(0.0);
        rate_text(self.done as f64, secs)
    }
}

/// A throughput people can read at any speed: `1234 items/s`, `12.5 items/s`,
/// `0.23 items/s`, or `4.3 s/item` below one item every two seconds.
pub fn rate_text(done: f64, secs: f64) -> String {
    if done <= 0.0 || secs <= 0.0 {
        return "0 items/s".into();
    }
    let r = done / secs;
    if r >= 100.0 {
        format!("{r:.0} items/s")
    } else if r >= 10.0 {
        format!("{r:.1} items/s")
    } else if r >= 0.5 {
        format!("{r:.2} items/s")
    } else {
        format!("{:.1} s/item", 1.0 / r)
    }
}

/// A step's command on one line: its first line, then `...` when there is more.
pub fn one_line(command: &str) -> String {
    let mut lines = command.lines().map(str::trim).filter(|l| !l.is_empty());
    let first = lines.next().unwrap_or("");
    if lines.next().is_some() {
        format!("{first} ...")
    } else {
        first.to_owned()
    }
}

fn phase_name(p: Phase) -> &'static str {
    match p {
        Phase::Setup => "setup",
        Phase::Map => "map",
        Phase::Reduce => "reduce",
    }
}

fn state_word(s: JobState) -> &'static str {
    match s {
        JobState::Running => "running",
        JobState::Paused => "paused",
        JobState::Stale => "stale",
        JobState::Interrupted => "interrupted",
        JobState::Completed => "completed",
        JobState::Failed => "failed",
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
            Event::PhaseStarted { phase } => self.phase = Some(*phase),
            Event::StepFinished {
                phase,
                index,
                command,
                ok,
                duration_ms,
                error,
            } => {
                let command = one_line(command);
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
                        "{spinner} map [{bar:30}] {pos}/{len} {msg} {rate} eta {eta}",
                    ) {
                        let style = style.with_key(
                            "rate",
                            |s: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                                let secs = s.elapsed().as_secs_f64();
                                let _ = w.write_str(&rate_text(s.pos() as f64, secs));
                            },
                        );
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
                ..
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
                        "map: {}/{} done, {} failed, {}",
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
                        "map: {}/{} done, {} failed in {} ({})",
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
            // Said by the item's retry or its end.
            Event::ItemTimedOut { .. } => {}
            Event::ItemStuck {
                item_id,
                attempt,
                running_ms,
            } => self.line(&format!(
                "{} item {item_id} (attempt {attempt}) has been running for {} (map.stuck_after); it is not killed",
                self.paint("warning:", YELLOW),
                secs(*running_ms)
            )),
            Event::Paused { reason } => self.line(&format!(
                "paused: no new item starts until `runner resume`{}",
                reason
                    .as_ref()
                    .map(|r| format!(" (reason: {r})"))
                    .unwrap_or_default()
            )),
            Event::Unpaused {} => self.line("resumed: dispatching items again"),
            Event::WorktreeMerge {
                branch,
                worktree,
                target,
                merged: true,
                ..
            } => self.line(&format!(
                "merged branch {branch} into {} (worktree {worktree})",
                target.as_deref().unwrap_or("HEAD")
            )),
            Event::WorktreeMerge {
                branch,
                worktree,
                command,
                ..
            } => self.line(&format!(
                "the job's work is on branch {branch} (worktree {worktree}); merge it with: {}",
                command.as_deref().unwrap_or("git merge")
            )),
            Event::Interrupted {
                signal,
                in_flight,
                kill_grace_ms,
            } => {
                // Always shown (even with -q): the person who pressed Ctrl-C is waiting.
                let what = match (self.phase, *in_flight) {
                    (_, 0) => "nothing is running; saving the state".to_owned(),
                    (Some(Phase::Map), 1) => "stopping 1 running item".to_owned(),
                    (Some(Phase::Map), n) => format!("stopping {n} running items"),
                    (Some(p), _) => format!("stopping the running {} step", phase_name(p)),
                    (None, _) => "stopping".to_owned(),
                };
                let again = if signal == "SIGINT" {
                    "press Ctrl-C again"
                } else {
                    "send it again"
                };
                let tail = if *in_flight == 0 {
                    String::new()
                } else {
                    format!(
                        " ({signal} sent; killed in {}); {again} to kill at once",
                        secs(*kill_grace_ms)
                    )
                };
                let head = if signal == "SIGINT" {
                    "interrupted"
                } else {
                    "terminated"
                };
                self.line(&format!("{}: {what}{tail}", self.paint(head, YELLOW)));
            }
            Event::JobFinished {
                job_id,
                state,
                total,
                successful,
                failed,
                dlq,
                pending,
                duration_ms,
                reason,
                ..
            } => {
                let mut counts = format!("{successful}/{total} succeeded");
                if *failed > 0 {
                    counts.push_str(&format!(", {failed} failed"));
                }
                if *dlq > 0 {
                    counts.push_str(&format!(", {dlq} in the DLQ (`runner dlq list {job_id}`)"));
                }
                if *pending > 0 {
                    counts.push_str(&format!(", {pending} pending"));
                }
                let text = match (state, reason) {
                    (JobState::Failed, Some(reason)) if *total == 0 => {
                        format!("{}: {reason}", self.paint("failed", RED))
                    }
                    (JobState::Failed, Some(reason)) => {
                        format!("{}: {reason}; items: {counts}", self.paint("failed", RED))
                    }
                    (JobState::Completed, _) => {
                        format!("{}: {counts}", self.paint("completed", GREEN))
                    }
                    (JobState::Failed, None) => {
                        format!("{}: {counts}", self.paint("finished with failures", RED))
                    }
                    (JobState::Interrupted, _) => format!(
                        "{} (resume with `runner resume {job_id}`): {counts}",
                        self.paint("interrupted", YELLOW)
                    ),
                    (other, _) => format!("{}: {counts}", state_word(*other)),
                };
                self.line(&format!(
                    "runner: job {job_id} {text} in {}",
                    secs(*duration_ms)
                ));
            }
        }
    }

    fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_readable_at_any_speed() {
        assert_eq!(rate_text(0.0, 3.0), "0 items/s");
        assert_eq!(rate_text(2000.0, 1.6), "1250 items/s");
        assert_eq!(rate_text(667.896, 10.0), "66.8 items/s");
        assert_eq!(rate_text(23.0, 100.0), "4.3 s/item");
        assert_eq!(rate_text(3.0, 4.0), "0.75 items/s");
        assert_eq!(rate_text(1.0, 4.3), "4.3 s/item");
    }

    #[test]
    fn multi_line_commands_show_their_first_line() {
        assert_eq!(one_line("echo one\nexit 3\n"), "echo one ...");
        assert_eq!(one_line("\n  make all  \n"), "make all");
        assert_eq!(one_line("true"), "true");
    }
}
