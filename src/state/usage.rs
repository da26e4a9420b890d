//! What an attempt (or a setup/reduce step) used, as recorded in the journal, the DLQ and
//! `results.jsonl`: peak resident memory and CPU time (docs/resources.md says how each is
//! measured and what is not counted).

use serde::{Deserialize, Serialize};

use super::time::Timestamp;

/// Peak memory and CPU time of one attempt (all its steps) or one step.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Peak resident set size in KiB: the largest process (rlimit path) or the attempt's
    /// cgroup as a whole (cgroup path); the largest step of the attempt.
    pub peak_rss_kb: u64,
    /// User + system CPU time in milliseconds, summed over the attempt's steps.
    pub cpu_ms: u64,
}

impl Usage {
    /// Fold the usage of one more step of the same attempt in: peaks take the larger,
    /// CPU time adds up.
    pub fn add_step(self, step: Usage) -> Usage {
        Usage {
            peak_rss_kb: self.peak_rss_kb.max(step.peak_rss_kb),
            cpu_ms: self.cpu_ms.saturating_add(step.cpu_ms),
        }
    }
}

/// When a successful final attempt (or a setup/reduce step) ran and what it used: the
/// journal's `item_done.ran` / `step_done.ran` (a failed attempt has its own record).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ran {
    /// When it started.
    pub at: Timestamp,
    /// How long it ran, in milliseconds.
    pub ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_rss_kb: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_ms: Option<u64>,
}

impl Ran {
    pub fn new(at: Timestamp, ms: u64, usage: Option<Usage>) -> Ran {
        Ran {
            at,
            ms,
            peak_rss_kb: usage.map(|u| u.peak_rss_kb),
            cpu_ms: usage.map(|u| u.cpu_ms),
        }
    }

    pub fn usage(&self) -> Option<Usage> {
        Some(Usage {
            peak_rss_kb: self.peak_rss_kb?,
            cpu_ms: self.cpu_ms?,
        })
    }
}

/// A byte count for people: `512 B`, `1.5 KiB`, `300 MiB`, `2 GiB`.
pub fn bytes_text(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 || v >= 100.0 || v.fract() < 0.05 {
        format!("{v:.0} {}", UNITS[unit])
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_counts_read_well() {
        assert_eq!(bytes_text(512), "512 B");
        assert_eq!(bytes_text(1536), "1.5 KiB");
        assert_eq!(bytes_text(300 << 20), "300 MiB");
        assert_eq!(bytes_text(2 << 30), "2 GiB");
        assert_eq!(bytes_text(1024), "1 KiB");
    }

    #[test]
    fn steps_fold_into_the_attempt() {
        let a = Usage {
            peak_rss_kb: 10,
            cpu_ms: 5,
        };
        let b = Usage {
            peak_rss_kb: 7,
            cpu_ms: 6,
        };
        assert_eq!(
            a.add_step(b),
            Usage {
                peak_rss_kb: 10,
                cpu_ms: 11
            }
        );
    }

    #[test]
    fn ran_keeps_usage_only_when_measured() {
        let at: Timestamp = "2024-01-01T00:00:00Z".into();
        let r = Ran::new(at, 5, None);
        assert_eq!(r.usage(), None);
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(json, r#"{"at":"2024-01-01T00:00:00.000Z","ms":5}"#);
        let u = Usage {
            peak_rss_kb: 3,
            cpu_ms: 4,
        };
        assert_eq!(Ran::new(at, 5, Some(u)).usage(), Some(u));
    }
}
