//! GitHub Actions: when `GITHUB_ACTIONS=true`, every failed item (and failed setup/reduce
//! step) becomes an `::error title=...::message` workflow command, and a Markdown summary
//! (counts table, failed items) is appended to `$GITHUB_STEP_SUMMARY` when that is set.
//!
//! Annotations go to stdout, where GitHub reads workflow commands; with `--json` stdout
//! carries only NDJSON, so they go to stderr instead (the runner's log shows them, but
//! GitHub does not turn them into annotations then; the summary is written either way).

use std::io::Write;
use std::path::PathBuf;

use crate::report::event::Event;
use crate::report::reporter::{Reporter, warn_report_failed};
use crate::state::records::{ItemStatus, JobState, Phase};

/// At most this many failed items are listed in the step summary.
const SUMMARY_ITEMS: usize = 50;
/// At most this many annotations are printed (GitHub shows only a few per step anyway).
const MAX_ANNOTATIONS: usize = 100;

struct Failed {
    item_id: String,
    attempts: u32,
    error: String,
    stderr_last: String,
}

pub struct GitHub {
    to_stderr: bool,
    summary: Option<PathBuf>,
    workflow: String,
    job_id: String,
    command: String,
    annotations: usize,
    failed: Vec<Failed>,
    failed_steps: Vec<String>,
    finished: Option<Event>,
}

/// Escape the message of a workflow command (GitHub's rules: `%`, CR, LF).
pub fn escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Escape a property value of a workflow command (also `:` and `,`).
pub fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

/// A Markdown table cell: no line breaks, `|` escaped.
fn cell(s: &str) -> String {
    s.replace('|', "\\|")
        .replace(['\r', '\n'], " ")
        .replace('`', "'")
}

impl GitHub {
    /// Enabled when `GITHUB_ACTIONS=true`.
    pub fn from_env(json: bool) -> Option<Self> {
        if std::env::var_os("GITHUB_ACTIONS").as_deref() != Some("true".as_ref()) {
            return None;
        }
        let summary = std::env::var_os("GITHUB_STEP_SUMMARY")
            .filter(|s| !s.is_empty())
            .map(PathBuf::from);
        Some(GitHub::new(json, summary))
    }

    pub fn new(to_stderr: bool, summary: Option<PathBuf>) -> Self {
        GitHub {
            to_stderr,
            summary,
            workflow: String::new(),
            job_id: String::new(),
            command: "run".into(),
            annotations: 0,
            failed: Vec::new(),
            failed_steps: Vec::new(),
            finished: None,
        }
    }

    fn annotate(&mut self, title: &str, message: &str) {
        if self.annotations >= MAX_ANNOTATIONS {
            return;
        }
        self.annotations += 1;
        let line = format!(
            "::error title={}::{}\n",
            escape_property(title),
            escape_data(message)
        );
        let _ = if self.to_stderr {
            std::io::stderr().lock().write_all(line.as_bytes())
        } else {
            let mut out = std::io::stdout().lock();
            out.write_all(line.as_bytes()).and_then(|_| out.flush())
        };
    }

    /// The Markdown appended to `$GITHUB_STEP_SUMMARY`.
    pub fn summary_markdown(&self) -> String {
        let mut md = String::new();
        let (state, counts) = match &self.finished {
            Some(Event::JobFinished {
                state,
                total,
                successful,
                failed,
                dlq,
                pending,
                duration_ms,
                ..
            }) => (
                *state,
                Some((*total, *successful, *failed, *dlq, *pending, *duration_ms)),
            ),
            _ => (JobState::Interrupted, None),
        };
        let icon = match state {
            JobState::Completed => "✅",
            JobState::Failed => "❌",
            _ => "⚠️",
        };
        let state_name = match state {
            JobState::Completed => "completed",
            JobState::Failed => "failed",
            JobState::Interrupted => "interrupted",
            JobState::Paused => "paused",
            JobState::Running => "running",
            JobState::Stale => "stale",
        };
        md.push_str(&format!(
            "### {icon} runner: {} `{}` {state_name} ({})\n\n",
            cell(&self.workflow),
            cell(&self.job_id),
            cell(&self.command)
        ));
        if let Some((total, ok, failed, dlq, pending, ms)) = counts {
            md.push_str("| total | succeeded | failed | in DLQ | pending | duration |\n");
            md.push_str("|---:|---:|---:|---:|---:|---:|\n");
            md.push_str(&format!(
                "| {total} | {ok} | {failed} | {dlq} | {pending} | {:.1}s |\n\n",
                ms as f64 / 1000.0
            ));
        }
        if !self.failed_steps.is_empty() {
            md.push_str("**Failed steps**\n\n");
            for s in &self.failed_steps {
                md.push_str(&format!("- {}\n", cell(s)));
            }
            md.push('\n');
        }
        if !self.failed.is_empty() {
            md.push_str(&format!(
                "**Failed items in this run** ({})\n\n",
                self.failed.len()
            ));
            md.push_str("| item | attempts | error | last stderr line |\n|---|---:|---|---|\n");
            for f in self.failed.iter().take(SUMMARY_ITEMS) {
                md.push_str(&format!(
                    "| `{}` | {} | {} | {} |\n",
                    cell(&f.item_id),
                    f.attempts,
                    cell(&f.error),
                    cell(&f.stderr_last)
                ));
            }
            if self.failed.len() > SUMMARY_ITEMS {
                md.push_str(&format!(
                    "\n... and {} more (`runner dlq list {}`)\n",
                    self.failed.len() - SUMMARY_ITEMS,
                    self.job_id
                ));
            }
            md.push('\n');
        }
        md
    }
}

impl Reporter for GitHub {
    fn report(&mut self, event: &Event) {
        match event {
            Event::JobStarted {
                job_id,
                workflow,
                command,
            } => {
                self.job_id = job_id.clone();
                self.workflow = workflow.clone();
                self.command = command.clone();
            }
            Event::ItemFinished {
                item_id,
                status: ItemStatus::Dlq | ItemStatus::Failed,
                attempts,
                error,
                stderr_tail,
                ..
            } => {
                let error = error.clone().unwrap_or_else(|| "failed".into());
                let mut message = format!(
                    "item {item_id} failed after {attempts} attempt{}: {error}",
                    if *attempts == 1 { "" } else { "s" }
                );
                if !stderr_tail.is_empty() {
                    message.push_str("\nstderr:\n");
                    message.push_str(stderr_tail.trim_end());
                }
                let title = format!("{}: item {item_id} failed", self.workflow);
                self.annotate(&title, &message);
                self.failed.push(Failed {
                    item_id: item_id.clone(),
                    attempts: *attempts,
                    error,
                    stderr_last: stderr_tail.lines().last().unwrap_or("").to_owned(),
                });
            }
            Event::StepFinished {
                phase,
                index,
                command,
                ok: false,
                error,
                ..
            } if *phase != Phase::Map => {
                let which = format!(
                    "{} step {}",
                    if *phase == Phase::Setup {
                        "setup"
                    } else {
                        "reduce"
                    },
                    index + 1
                );
                let error = error.clone().unwrap_or_else(|| "failed".into());
                self.annotate(
                    &format!("{}: {which} failed", self.workflow),
                    &format!("{which} failed: {error}\ncommand: {command}"),
                );
                self.failed_steps.push(format!("{which}: {error}"));
            }
            Event::JobFinished { .. } => self.finished = Some(event.clone()),
            _ => {}
        }
    }

    fn finish(&mut self) {
        let Some(path) = self.summary.clone() else {
            return;
        };
        let md = self.summary_markdown();
        let result = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(md.as_bytes()));
        if let Err(e) = result {
            warn_report_failed("GitHub step summary", &path, &e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_follows_github_rules() {
        assert_eq!(escape_data("50% done\r\nnext"), "50%25 done%0D%0Anext");
        assert_eq!(escape_property("a: b, c%"), "a%3A b%2C c%25");
    }
}
