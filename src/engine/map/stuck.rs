//! `map.stuck_after`: attempts running for longer than this are reported (once per
//! attempt) as [`crate::report::event::Event::ItemStuck`]; nothing is killed.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

/// The attempts in flight and when each began.
#[derive(Debug, Default)]
pub struct StuckWatch {
    after: Option<Duration>,
    running: HashMap<usize, (Instant, u32)>,
}

impl StuckWatch {
    pub fn new(after: Option<Duration>) -> Self {
        StuckWatch {
            after,
            running: HashMap::new(),
        }
    }

    /// Attempt `attempt` of item `idx` began now.
    pub fn started(&mut self, idx: usize, attempt: u32, now: Instant) {
        if self.after.is_some() {
            self.running.insert(idx, (now, attempt));
        }
    }

    /// The item's attempt ended (or was handed back).
    pub fn ended(&mut self, idx: usize) {
        if self.after.is_some() {
            self.running.remove(&idx);
        }
    }

    /// When the next attempt becomes stuck.
    pub fn next_due(&self) -> Option<Instant> {
        let after = self.after?;
        self.running.values().map(|(t, _)| *t + after).min()
    }

    /// The attempts stuck at `now`: `(idx, attempt, running for)`, each returned once.
    pub fn take_due(&mut self, now: Instant) -> Vec<(usize, u32, Duration)> {
        let Some(after) = self.after else {
            return Vec::new();
        };
        let mut due: Vec<_> = self
            .running
            .iter()
            .filter(|(_, (t, _))| now.duration_since(*t) >= after)
            .map(|(idx, (t, a))| (*idx, *a, now.duration_since(*t)))
            .collect();
        due.sort_unstable_by_key(|d| d.0);
        for (idx, _, _) in &due {
            self.running.remove(idx);
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_attempt_is_reported_once_when_its_time_comes() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut w = StuckWatch::new(Some(10 * s));
        w.started(1, 1, t0);
        w.started(2, 1, t0 + 5 * s);
        assert_eq!(w.next_due(), Some(t0 + 10 * s));
        assert!(w.take_due(t0 + 9 * s).is_empty());
        assert_eq!(w.take_due(t0 + 11 * s), vec![(1, 1, 11 * s)]);
        assert!(w.take_due(t0 + 12 * s).is_empty());
        w.ended(2);
        assert_eq!(w.next_due(), None);
        assert!(w.take_due(t0 + 60 * s).is_empty());
    }

    #[test]
    fn off_without_a_limit() {
        let mut w = StuckWatch::new(None);
        w.started(1, 1, Instant::now());
        assert_eq!(w.next_due(), None);
    }
}
