//! `runner schedule list FILE [--json]`: each schedule's trigger, next fire times, last run
//! and its outcome, and how many fires were missed or skipped.

use jiff::Timestamp;
use serde::Serialize;

use crate::schedule::fire::job_state;
use crate::schedule::model::Schedules;
use crate::schedule::plan::start_of;
use crate::schedule::store::{LastFired, Store};
use crate::session::error::SessionError;
use crate::state::layout::StateDir;
use crate::state::records::JobState;

/// Next fire times listed per schedule.
pub const NEXT_SHOWN: usize = 3;

#[derive(Debug, Clone, Serialize)]
pub struct ScheduleStatus {
    pub name: String,
    /// `cron 0 3 * * * (Europe/Berlin)`, `every 15m`, `at ...`.
    pub trigger: String,
    pub run: std::path::PathBuf,
    /// When the next fires start (jitter included), RFC 3339 UTC.
    pub next: Vec<String>,
    pub last: Option<LastFired>,
    /// The state of the last run's job (`running`, `completed`, `failed`, ...).
    pub last_state: Option<JobState>,
    pub fired: u64,
    pub missed: u64,
    pub skipped: u64,
    pub misfire_grace_s: f64,
    pub coalesce: bool,
    pub max_instances: usize,
    pub jitter_s: f64,
}

pub fn list(
    root: &std::path::Path,
    schedules: &Schedules,
    now: Timestamp,
) -> Result<Vec<ScheduleStatus>, SessionError> {
    let store = Store::open(root)?;
    let state = StateDir::new(root);
    let mut out = Vec::new();
    for s in &schedules.schedules {
        let rem = store.get(&s.name);
        let anchor = rem.seen().unwrap_or(now);
        // Fires still owed (after the last handled one) come first, then the future ones.
        let mut t = rem.last_nominal().unwrap_or(anchor).min(now);
        if rem.seen().is_none() {
            t = now;
        }
        let mut next = Vec::new();
        while next.len() < NEXT_SHOWN {
            let Some(n) = s.trigger.next_after(t, anchor) else {
                break;
            };
            next.push(start_of(&s.name, n, &s.policy).to_string());
            t = n;
        }
        out.push(ScheduleStatus {
            name: s.name.clone(),
            trigger: s.trigger.describe(),
            run: s.run.clone(),
            next,
            last_state: rem
                .last_fired
                .as_ref()
                .and_then(|l| job_state(&state, &l.job_id)),
            last: rem.last_fired.clone(),
            fired: rem.fired,
            missed: rem.missed,
            skipped: rem.skipped,
            misfire_grace_s: s.policy.misfire_grace.as_secs_f64(),
            coalesce: s.policy.coalesce,
            max_instances: s.policy.max_instances,
            jitter_s: s.policy.jitter.as_secs_f64(),
        });
    }
    Ok(out)
}
