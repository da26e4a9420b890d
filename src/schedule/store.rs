//! What the schedules remember across restarts, in `<state-dir>/schedules/`: an append-only
//! `schedules.jsonl` (the durable JSONL primitive, a torn tail skipped) of when each
//! schedule was first seen and what became of each fire, with the next fire time; and the
//! `lock` the service (or `run-due`) holds, so that two never fire on one state directory.

use std::collections::BTreeMap;
use std::path::PathBuf;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::state::atomic::create_dir_private;
use crate::state::error::StateError;
use crate::state::jsonl::{Framing, append_durable, read_all, rewrite};

/// `<state-dir>/schedules/`
pub fn dir(state_root: &std::path::Path) -> PathBuf {
    state_root.join("schedules")
}

/// One line of `schedules.jsonl`. Times are RFC 3339 (UTC).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum ScheduleRecord {
    /// The schedule was first seen: fires before this are not owed.
    Seen { schedule: String, at: String },
    /// A run was started for the fire due at `nominal`.
    Fired {
        schedule: String,
        nominal: String,
        at: String,
        job_id: String,
        /// Earlier fires within the grace folded into this run (`coalesce`).
        #[serde(default, skip_serializing_if = "is_zero")]
        coalesced: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        next: Option<String>,
    },
    /// Fires missed by more than `misfire_grace` (not run).
    Missed {
        schedule: String,
        first: String,
        last: String,
        count: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        next: Option<String>,
    },
    /// A fire that was due but not run: `max_instances` runs were still going, or its run
    /// could not be started.
    Skipped {
        schedule: String,
        nominal: String,
        reason: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        next: Option<String>,
    },
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl ScheduleRecord {
    pub fn schedule(&self) -> &str {
        match self {
            ScheduleRecord::Seen { schedule, .. }
            | ScheduleRecord::Fired { schedule, .. }
            | ScheduleRecord::Missed { schedule, .. }
            | ScheduleRecord::Skipped { schedule, .. } => schedule,
        }
    }
}

/// One schedule's remembered state.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Remembered {
    pub seen_at: Option<String>,
    /// The latest fire time handled (fired, missed or skipped): fires after it are owed.
    pub last_nominal: Option<String>,
    pub last_fired: Option<LastFired>,
    pub missed: u64,
    pub skipped: u64,
    pub fired: u64,
    pub next: Option<String>,
    /// Recent job ids (newest last), for `max_instances`.
    #[serde(skip)]
    pub recent_jobs: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LastFired {
    pub nominal: String,
    pub at: String,
    pub job_id: String,
}

impl Remembered {
    pub fn seen(&self) -> Option<Timestamp> {
        self.seen_at.as_deref().and_then(|t| t.parse().ok())
    }

    pub fn last_nominal(&self) -> Option<Timestamp> {
        self.last_nominal.as_deref().and_then(|t| t.parse().ok())
    }
}

/// Jobs kept per schedule for counting running instances.
const RECENT_JOBS: usize = 32;

/// Records kept when the file is compacted (per schedule, besides its `seen`).
const KEEP_PER_SCHEDULE: usize = 50;
/// The file is compacted when it holds more records than this.
const COMPACT_OVER: usize = 20_000;

#[derive(Debug, Default)]
pub struct Store {
    path: PathBuf,
    pub by_name: BTreeMap<String, Remembered>,
}

impl Store {
    pub fn open(state_root: &std::path::Path) -> Result<Store, StateError> {
        let path = dir(state_root).join("schedules.jsonl");
        let records: Vec<ScheduleRecord> =
            read_all(&path, Framing::Checksummed, |c| StateError::Corrupt {
                path: path.clone(),
                detail: format!("line {}: {}", c.line, c.detail),
            })?;
        let mut store = Store {
            path,
            by_name: BTreeMap::new(),
        };
        for r in &records {
            store.apply(r);
        }
        Ok(store)
    }

    /// Rewrite a long file keeping each schedule's recent records (only under the lock).
    pub fn compact(&self) -> Result<(), StateError> {
        let records: Vec<ScheduleRecord> =
            read_all(&self.path, Framing::Checksummed, |c| StateError::Corrupt {
                path: self.path.clone(),
                detail: format!("line {}: {}", c.line, c.detail),
            })?;
        if records.len() <= COMPACT_OVER {
            return Ok(());
        }
        let mut keep: Vec<ScheduleRecord> = Vec::new();
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for r in records.iter().rev() {
            let n = counts.entry(r.schedule().to_owned()).or_default();
            if matches!(r, ScheduleRecord::Seen { .. }) || *n < KEEP_PER_SCHEDULE {
                keep.push(r.clone());
                *n += 1;
            }
        }
        keep.reverse();
        rewrite(&self.path, Framing::Checksummed, &keep)
    }

    fn apply(&mut self, r: &ScheduleRecord) {
        let e = self.by_name.entry(r.schedule().to_owned()).or_default();
        let later = |cur: &Option<String>, t: &str| match cur.as_deref() {
            Some(c) if c.parse::<Timestamp>().ok() >= t.parse::<Timestamp>().ok() => c.to_owned(),
            _ => t.to_owned(),
        };
        match r {
            ScheduleRecord::Seen { at, .. } => {
                if e.seen_at.is_none() {
                    e.seen_at = Some(at.clone());
                }
            }
            ScheduleRecord::Fired {
                nominal,
                at,
                job_id,
                next,
                ..
            } => {
                e.last_nominal = Some(later(&e.last_nominal, nominal));
                e.last_fired = Some(LastFired {
                    nominal: nominal.clone(),
                    at: at.clone(),
                    job_id: job_id.clone(),
                });
                e.fired += 1;
                e.recent_jobs.push(job_id.clone());
                if e.recent_jobs.len() > RECENT_JOBS {
                    e.recent_jobs.remove(0);
                }
                e.next = next.clone();
            }
            ScheduleRecord::Missed {
                last, count, next, ..
            } => {
                e.last_nominal = Some(later(&e.last_nominal, last));
                e.missed += count;
                e.next = next.clone();
            }
            ScheduleRecord::Skipped { nominal, next, .. } => {
                e.last_nominal = Some(later(&e.last_nominal, nominal));
                e.skipped += 1;
                e.next = next.clone();
            }
        }
    }

    /// Append durably, then apply.
    pub fn record(&mut self, r: ScheduleRecord) -> Result<(), StateError> {
        if let Some(parent) = self.path.parent() {
            create_dir_private(parent)?;
        }
        append_durable(&self.path, Framing::Checksummed, &r)?;
        self.apply(&r);
        Ok(())
    }

    pub fn get(&self, name: &str) -> Remembered {
        self.by_name.get(name).cloned().unwrap_or_default()
    }
}
