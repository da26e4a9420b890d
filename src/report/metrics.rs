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

/// Upper bounds (seconds) of the item duration and CPU time histogram buckets.
pub const BUCKETS: [f64; 9] = [0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0];

/// Upper bounds (MiB) of the peak memory histogram buckets.
pub const MEMORY_BUCKETS_MIB: [f64; 9] = [
    16.0, 64.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0, 8192.0, 16384.0,
];

/// A Prometheus histogram of integer observations (milliseconds or KiB), printed in the
/// base unit (seconds, bytes) without float noise.
struct Histogram {
    /// Bucket upper bounds as printed, and in observation units.
    bounds: Vec<(String, u64)>,
    counts: Vec<u64>,
    sum: u64,
    count: u64,
}

impl Histogram {
    fn new(bounds: Vec<(String, u64)>) -> Self {
        Histogram {
            counts: vec![0; bounds.len()],
            bounds,
            sum: 0,
            count: 0,
        }
    }

    fn seconds() -> Self {
        Histogram::new(
            BUCKETS
                .iter()
                .map(|s| (s.to_string(), (s * 1000.0) as u64))
                .collect(),
        )
    }

    fn bytes() -> Self {
        Histogram::new(
            MEMORY_BUCKETS_MIB
                .iter()
                .map(|m| {
                    let kib = (m * 1024.0) as u64;
                    ((kib * 1024).to_string(), kib)
                })
                .collect(),
        )
    }

    fn observe(&mut self, v: u64) {
        if let Some(i) = self.bounds.iter().position(|(_, le)| v <= *le) {
            self.counts[i] += 1;
        }
        self.sum += v;
        self.count += 1;
    }

    /// The text of the histogram `name`; `sum` renders the sum in the base unit.
    fn render(&self, out: &mut String, name: &str, help: &str, labels: &str, sum: String) {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} histogram");
        let mut cumulative = 0;
        for ((le, _), n) in self.bounds.iter().zip(&self.counts) {
            cumulative += n;
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {cumulative}");
        }
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", self.count);
        let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
        let _ = writeln!(out, "{name}_count{{{labels}}} {}", self.count);
    }
}

pub struct Metrics {
    path: PathBuf,
    job: String,
    workflow: String,
    total: usize,
    succeeded: u64,
    failed: u64,
    retried: u64,
    /// Item wall times in milliseconds (integers: no float noise in the output).
    durations: Histogram,
    /// Peak RSS of each item's last attempt, KiB.
    memory: Histogram,
    /// CPU time of each item's last attempt, ms.
    cpu: Histogram,
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
            durations: Histogram::seconds(),
            memory: Histogram::bytes(),
            cpu: Histogram::seconds(),
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
        self.durations.render(
            &mut out,
            "runner_item_duration_seconds",
            "Wall time of items finished in this run, all attempts included.",
            &labels,
            seconds(self.durations.sum),
        );
        if self.memory.count > 0 {
            self.memory.render(
                &mut out,
                "runner_item_peak_rss_bytes",
                "Peak resident memory of the last attempt of items finished in this run.",
                &labels,
                (self.memory.sum * 1024).to_string(),
            );
            self.cpu.render(
                &mut out,
                "runner_item_cpu_seconds",
                "CPU time (user + system) of the last attempt of items finished in this run.",
                &labels,
                seconds(self.cpu.sum),
            );
        }
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
                usage,
                ..
            } => {
                match status {
                    ItemStatus::Succeeded => self.succeeded += 1,
                    ItemStatus::Dlq | ItemStatus::Failed => self.failed += 1,
                    ItemStatus::Pending | ItemStatus::Purged => {}
                }
                self.durations.observe(*duration_ms);
                if let Some(u) = usage {
                    self.memory.observe(u.peak_rss_kb);
                    self.cpu.observe(u.cpu_ms);
                }
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
