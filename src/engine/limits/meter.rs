//! One attempt's limits and what its steps used so far: each step runs with the CPU time
//! the attempt has left, and the attempt's usage is its steps' usage folded together.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::engine::limits::enforcer::{Enforcer, StepLimits};
use crate::state::records::Usage;

#[derive(Debug, Clone, Default)]
pub struct AttemptResources {
    enforcer: Option<Arc<Enforcer>>,
    used: Arc<Mutex<Option<Usage>>>,
}

impl AttemptResources {
    /// A fresh meter for one attempt (or one setup/reduce step), limited by `enforcer`.
    pub fn new(enforcer: Option<Arc<Enforcer>>) -> Self {
        AttemptResources {
            enforcer,
            used: Arc::default(),
        }
    }

    /// The limits of the next step.
    pub fn step(&self) -> Option<StepLimits> {
        let enforcer = self.enforcer.clone()?;
        let cpu_left = enforcer.resources().cpu_time.map(|t| {
            let used = self.used().map(|u| u.cpu_ms).unwrap_or(0);
            t.saturating_sub(Duration::from_millis(used))
        });
        Some(StepLimits { enforcer, cpu_left })
    }

    /// A step ended having used `u` (when it was measured).
    pub fn add(&self, u: Option<Usage>) {
        let Some(u) = u else { return };
        let mut used = self.used.lock().unwrap_or_else(|e| e.into_inner());
        *used = Some(used.map_or(u, |prev| prev.add_step(u)));
    }

    /// What the steps used so far (`None` when none was measured).
    pub fn used(&self) -> Option<Usage> {
        *self.used.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_add_up() {
        let m = AttemptResources::new(None);
        assert_eq!(m.used(), None);
        assert!(m.step().is_none(), "no limits, no step limits");
        m.add(Some(Usage {
            peak_rss_kb: 10,
            cpu_ms: 100,
        }));
        m.add(None);
        m.add(Some(Usage {
            peak_rss_kb: 30,
            cpu_ms: 50,
        }));
        assert_eq!(
            m.used(),
            Some(Usage {
                peak_rss_kb: 30,
                cpu_ms: 150
            })
        );
    }
}
