//! The error policy of a map run (`on_item_failure`, `max_failures`, `failure_threshold`)
//! and how a map run ends.

use crate::workflow::model::{ErrorPolicy, OnItemFailure};

/// Why the map loop ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MapEnd {
    /// Every queued item reached a final state.
    Finished,
    /// The error policy stopped dispatching (the reason is user-facing).
    Stopped(String),
    /// Cancelled (stop/SIGINT): unfinished items stay pending.
    Cancelled,
}

impl MapEnd {
    /// How a map run ended: cancelled (stop/SIGINT with work left, or
    /// in-flight items cancelled) wins over a policy stop, which wins over finishing.
    pub fn decide(cancelled: bool, policy_stop: Option<String>) -> MapEnd {
        match (cancelled, policy_stop) {
            (true, _) => MapEnd::Cancelled,
            (false, Some(reason)) => MapEnd::Stopped(reason),
            (false, None) => MapEnd::Finished,
        }
    }
}

/// Failure accounting of one map run against the error policy.
#[derive(Debug, Default)]
pub struct PolicyCounter {
    finished: u64,
    failed: u64,
}

impl PolicyCounter {
    /// Count a final item; `Some(reason)` when the policy says stop.
    pub fn count(&mut self, policy: &ErrorPolicy, failed: bool) -> Option<String> {
        self.finished += 1;
        if !failed {
            return None;
        }
        self.failed += 1;
        if policy.on_item_failure == OnItemFailure::Stop {
            return Some("an item failed and on_item_failure is `stop`".into());
        }
        if let Some(max) = policy.max_failures
            && self.failed >= max
        {
            return Some(format!(
                "{} items failed (max_failures: {max})",
                self.failed
            ));
        }
        if let Some(t) = policy.failure_threshold
            && self.finished >= 10
            && self.failed as f64 / self.finished as f64 >= t
        {
            return Some(format!(
                "{} of {} finished items failed (failure_threshold: {t})",
                self.failed, self.finished
            ));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_limits() {
        let p = ErrorPolicy {
            on_item_failure: OnItemFailure::Dlq,
            max_failures: Some(2),
            failure_threshold: None,
        };
        let mut c = PolicyCounter::default();
        assert!(c.count(&p, true).is_none());
        assert!(c.count(&p, false).is_none());
        assert!(c.count(&p, true).unwrap().contains("max_failures: 2"));

        let p = ErrorPolicy {
            on_item_failure: OnItemFailure::Dlq,
            max_failures: None,
            failure_threshold: Some(0.5),
        };
        let mut c = PolicyCounter::default();
        for _ in 0..4 {
            assert!(c.count(&p, true).is_none(), "needs 10 finished items first");
        }
        for _ in 0..5 {
            assert!(c.count(&p, false).is_none());
        }
        assert!(c.count(&p, true).is_some(), "5 of 10 failed");

        let p = ErrorPolicy {
            on_item_failure: OnItemFailure::Stop,
            max_failures: None,
            failure_threshold: None,
        };
        assert!(PolicyCounter::default().count(&p, true).is_some());
    }
}
