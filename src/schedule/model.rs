//! Validated schedules.

use std::path::PathBuf;
use std::time::Duration;

use crate::schedule::trigger::Trigger;

#[derive(Debug)]
pub struct Schedules {
    pub schedules: Vec<Schedule>,
}

#[derive(Debug)]
pub struct Schedule {
    pub name: String,
    pub trigger: Trigger,
    /// Absolute path of the workflow or pipeline to run.
    pub run: PathBuf,
    pub set: Vec<(String, String)>,
    pub policy: Policy,
}

/// What happens to fires that are late or overlap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub misfire_grace: Duration,
    pub coalesce: bool,
    pub max_instances: usize,
    pub jitter: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            misfire_grace: Duration::from_secs(60),
            coalesce: true,
            max_instances: 1,
            jitter: Duration::ZERO,
        }
    }
}
