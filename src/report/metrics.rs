//! `--metrics-file PATH`: Prometheus text-format metrics for node_exporter's textfile
//! collector (or any scraper of files). Written atomically (temp file + rename) every
//! [`WRITE_EVERY`] while items finish, and once more when the run ends.
//!
//! Every series has the labels `job` (the job id) and `workflow`. Item counts are those of
//! items finished *in this run*; `runner_items_total` is the job's item count.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::report::event::Event;
use crate::report::reporter::{Reporter, warn_report_failed, write_report_file};
use crate::state::records::ItemStatus;

/// How often the file is refreshed during a run.
pub const WRITE_EVERY: Duration = Duration::from_secs(10);

/// Upper bounds (seconds) of the item duration histogram buckets.
pub const BUCKETS: [f64; 9] = [0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0];

pub struct Metrics {
    path: PathBuf,
    job: String,
    workflow: String,
    total: usize,
    succeeded: u64,
    failed: u64,
    retried: u64,
    bucket_counts: [u64; BUCKETS.len()],
    /// Sum of item wall times in milliseconds (integers: no float noise in the output).
    duration_sum_ms: u64,
    duration_count: u64,
    exit_code: Option<i32>,
    job_duration_ms: Option<u64>,
    last_write: Instant,
}

/// A Prometheus label value: backslash, double quote and newline escaped.
/// Milliseconds as seconds with at most three decimals and no float noise (`1.693`, `2`).
fn seconds(ms: u64) -> String {
    let (whole, frac) = (ms / 1000, ms % 1000);
    if frac == 0 {
        whole.to_string()
    } else {
        format!("{whole}.{frac:03}")
            .trim_end_matches('0')
            .to_owned()
    }
}

fn label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Metrics {
    pub fn new(path: PathBuf) -> Self {
        Metrics {
            path,
            job: String::new(),
            workflow: String::new(),
            total: 0,
            succeeded: 0,
            failed: 0,
            retried: 0,
            bucket_counts: [0; BUCKETS.len()],
            duration_sum_ms: 0,
            duration_count: 0,
            exit_code: None,
            job_duration_ms: None,
            last_write: Instant::now(),
        }
    }

    /// The text exposition of what was reported so far.
    pub fn render(&self) -> String {
        let labels = format!(
            "job=\"{}\",workflow=\"{}\"",
            label(&self.job),
            label(&self.workflow)
        );
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, value: String| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            let _ = writeln!(out, "{name}{{{labels}}} {value}");
        };
        metric(
            "runner_items_total",
            "gauge",
            "Work items of the job.",
            self.total.to_string(),
        );
        metric(
            "runner_items_succeeded",
            "counter",
            "Items that succeeded in this run.",
            self.succeeded.to_string(),
        );
        metric(
            "runner_items_failed",
            "counter",
            "Items that failed for good in this run (DLQ or skipped).",
            self.failed.to_string(),
        );
        metric(
            "runner_items_retried",
            "counter",
            "Item attempts beyond the first in this run.",
            self.retried.to_string(),
        );
        if let Some(code) = self.exit_code {
            metric(
                "runner_job_exit_code",
                "gauge",
                "The exit code of the run (0 completed, 1 failures, 130/143 interrupted).",
                code.to_string(),
            );
        }
        if let Some(ms) = self.job_duration_ms {
            metric(
                "runner_job_duration_seconds",
                "gauge",
                "Wall time of the run.",
                seconds(ms),
            );
        }
        let name = "runner_item_duration_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Wall time of items finished in this run, all attempts included."
        );
        let _ = writeln!(out, "# TYPE {name} histogram");
        let mut cumulative = 0;
        for (le, n) in BUCKETS.iter().zip(self.bucket_counts) {
            cumulative += n;
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {cumulative}");
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels},le=\"+Inf\"}} {}",
            self.duration_count
        );
        let _ = writeln!(
            out,
            "{name}_sum{{{labels}}} {}",
            seconds(self.duration_sum_ms)
        );
        let _ = writeln!(out, "{name}_count{{{labels}}} {}", self.duration_count);
        out
    }

    fn write(&mut self) {
        self.last_write = Instant::now();
        if let Err(e) = write_report_file(&self.path, self.render().as_bytes()) {
            warn_report_failed("metrics file", &self.path, &e);
        }
    }
}

impl Reporter for Metrics {
    fn report(&mut self, event: &Event) {
        match event {
            Event::JobStarted {
                job_id, workflow, ..
            } => {
                self.job = job_id.clone();
                self.workflow = workflow.clone();
            }
            Event::MapStarted { total, .. } => self.total = *total,
            Event::ItemRetrying { .. } => self.retried += 1,
            Event::ItemFinished {
                status,
                duration_ms,
                ..
            } => {
                match status {
                    ItemStatus::Succeeded => self.succeeded += 1,
                    ItemStatus::Dlq | ItemStatus::Failed => self.failed += 1,
                    ItemStatus::Pending | ItemStatus::Purged => {}
                }
                let secs = *duration_ms as f64 / 1000.0;
                for (i, le) in BUCKETS.iter().enumerate() {
                    if secs <= *le {
                        self.bucket_counts[i] += 1;
                        break;
                    }
                }
                self.duration_sum_ms += *duration_ms;
                self.duration_count += 1;
                if self.last_write.elapsed() >= WRITE_EVERY {
                    self.write();
                }
            }
            Event::JobFinished {
                total,
                exit_code,
                duration_ms,
                ..
            } => {
                self.total = *total;
                self.exit_code = Some(*exit_code);
                self.job_duration_ms = Some(*duration_ms);
            }
            _ => {}
        }
    }

    fn finish(&mut self) {
        self.write();
    }
}

#[cfg(test)]
mod tests {
    use super::seconds;

    #[test]
    fn seconds_have_no_float_noise() {
        assert_eq!(seconds(1693), "1.693");
        assert_eq!(seconds(1700), "1.7");
        assert_eq!(seconds(2000), "2");
        assert_eq!(seconds(5), "0.005");
        assert_eq!(seconds(0), "0");
    }
}
