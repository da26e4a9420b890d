//! A job's recorded state in memory: [`JobView`] is what the journal's records add up to.
//! The same `apply` serves the live run (records are applied as they are written) and
//! recovery (checkpoint + journal replay), so the two cannot disagree.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::state::item_states::ItemStates;
use crate::state::records::{ItemStatus, JobState, Phase, Record};
use crate::state::time::Timestamp;

/// Facts fixed when the job is created (`job.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobMeta {
    pub job_id: String,
    pub workflow_name: String,
    /// Absolute path of the workflow file the job was started from.
    pub workflow_path: PathBuf,
    /// Directory steps run in: where `run` was started, or the workflow's `working_dir:`.
    pub workflow_dir: PathBuf,
    /// blake3 of the workflow file's bytes at start (resume refuses a changed file).
    pub fingerprint: String,
    pub created_at: Timestamp,
    /// `--set KEY=VALUE` overrides of the workflow env.
    #[serde(default)]
    pub overrides: Vec<(String, String)>,
    /// `--max-parallel` given to `run`.
    #[serde(default)]
    pub max_parallel: Option<usize>,
}

/// Counts of items by status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub total: usize,
    pub pending: usize,
    pub successful: usize,
    /// Failed for good under `on_item_failure: skip`.
    pub failed: usize,
    pub dlq: usize,
    /// Given up on with `dlq purge`.
    #[serde(default)]
    pub purged: usize,
}

impl Counts {
    fn slot(&mut self, s: ItemStatus) -> &mut usize {
        match s {
            ItemStatus::Pending => &mut self.pending,
            ItemStatus::Succeeded => &mut self.successful,
            ItemStatus::Failed => &mut self.failed,
            ItemStatus::Dlq => &mut self.dlq,
            ItemStatus::Purged => &mut self.purged,
        }
    }

    /// Items that failed for good (DLQ, skipped or purged).
    pub fn failed_total(&self) -> usize {
        self.failed + self.dlq + self.purged
    }
}

/// A process group a run started, until the step or item it belongs to ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveGroup {
    pub phase: Phase,
    /// Item index (map) or step index (setup/reduce).
    pub idx: usize,
    pub pgid: i32,
    /// Start time of the group leader in clock ticks since boot (guards against pid reuse).
    pub pid_start: u64,
}

/// One pause of a live job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PauseSpan {
    pub paused_at: Timestamp,
    pub resumed_at: Option<Timestamp>,
    pub reason: Option<String>,
}

/// Everything the journal says about a job.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct JobView {
    pub runs: u32,
    /// A run started and has not recorded its end (it is live, or it crashed).
    pub run_open: bool,
    /// State left by the last run that ended.
    pub last_state: Option<JobState>,
    pub setup_done: usize,
    pub captures: Map<String, Value>,
    pub map_started: bool,
    pub items_hash: Option<String>,
    pub map_done: bool,
    pub reduce_done: usize,
    pub reduce_captures: Map<String, Value>,
    /// `${shell.*}` left by the last finished setup / reduce step that kept its output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub setup_shell: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reduce_shell: Option<Value>,
    pub items: ItemStates,
    pub counts: Counts,
    pub started_at: Option<Timestamp>,
    pub updated_at: Option<Timestamp>,
    #[serde(default)]
    pub live_groups: Vec<LiveGroup>,
    #[serde(default)]
    pub pauses: Vec<PauseSpan>,
}

impl JobView {
    /// Is the last pause still open?
    pub fn paused(&self) -> Option<&PauseSpan> {
        self.pauses.last().filter(|p| p.resumed_at.is_none())
    }

    fn end_group(&mut self, phase: Phase, idx: usize) {
        if !self.live_groups.is_empty() {
            self.live_groups
                .retain(|g| !(g.phase == phase && g.idx == idx));
        }
    }

    fn close_pause(&mut self, at: Timestamp) {
        if let Some(p) = self.pauses.last_mut()
            && p.resumed_at.is_none()
        {
            p.resumed_at = Some(at);
        }
    }

    pub fn apply(&mut self, rec: &Record) {
        match rec {
            Record::RunStarted { at, .. } => {
                self.close_pause(*at);
                self.runs += 1;
                self.run_open = true;
                if self.started_at.is_none() {
                    self.started_at = Some(*at);
                }
                self.updated_at = Some(*at);
            }
            Record::StepStarted {
                phase,
                index,
                pgid,
                pid_start,
                ..
            } => {
                self.live_groups.push(LiveGroup {
                    phase: *phase,
                    idx: *index,
                    pgid: *pgid,
                    pid_start: *pid_start,
                });
            }
            Record::GroupsReaped => self.live_groups.clear(),
            Record::Paused { at, reason } => {
                if self.paused().is_none() {
                    self.pauses.push(PauseSpan {
                        paused_at: *at,
                        resumed_at: None,
                        reason: reason.clone(),
                    });
                }
            }
            Record::Unpaused { at } => self.close_pause(*at),
            Record::StepDone {
                phase,
                index,
                captured,
                shell,
                ..
            } => {
                self.end_group(*phase, *index);
                let (done, caps, last_shell) = match phase {
                    Phase::Reduce => (
                        &mut self.reduce_done,
                        &mut self.reduce_captures,
                        &mut self.reduce_shell,
                    ),
                    _ => (
                        &mut self.setup_done,
                        &mut self.captures,
                        &mut self.setup_shell,
                    ),
                };
                *done = (*done).max(index + 1);
                if let Some((k, v)) = captured {
                    caps.insert(k.clone(), v.clone());
                }
                if shell.is_some() {
                    last_shell.clone_from(shell);
                }
            }
            Record::MapStarted { total, items_hash } => {
                self.map_started = true;
                self.items_hash = Some(items_hash.clone());
                self.items = ItemStates::new(*total);
                self.counts = Counts {
                    total: *total,
                    pending: *total,
                    ..Counts::default()
                };
            }
            Record::ItemStarted {
                idx,
                attempt,
                pgid,
                pid_start,
            } => {
                // A started attempt counts even if a crash loses its end, so attempt
                // numbers (and log files) are never reused.
                self.items.raise_attempts(*idx, *attempt);
                self.live_groups.push(LiveGroup {
                    phase: Phase::Map,
                    idx: *idx,
                    pgid: *pgid,
                    pid_start: *pid_start,
                });
            }
            Record::Attempt { idx, attempt } => {
                self.end_group(Phase::Map, *idx);
                self.items.raise_attempts(*idx, attempt.attempt);
                self.items
                    .set_exit_code(*idx, attempt.failure.as_ref().and_then(|f| f.exit_code()));
                self.items.set_usage(*idx, attempt.usage);
            }
            Record::ItemDone {
                idx,
                status,
                attempts,
                duration_ms,
                exit_code,
                captured,
                ran,
            } => {
                self.end_group(Phase::Map, *idx);
                self.set_status(*idx, *status);
                self.items.raise_attempts(*idx, *attempts);
                self.items
                    .set_done(*idx, *duration_ms, *exit_code, captured);
                if let Some(ran) = ran {
                    self.items.set_usage(*idx, ran.usage());
                }
            }
            Record::ItemReset { idx, status } => {
                self.set_status(*idx, *status);
                self.map_done = false;
                self.reduce_done = 0;
                self.reduce_captures.clear();
                self.reduce_shell = None;
            }
            Record::MapDone => self.map_done = true,
            Record::Segment { .. } => {}
            Record::RunEnded { state, at, .. } => {
                self.close_pause(*at);
                self.run_open = false;
                self.last_state = Some(*state);
                self.updated_at = Some(*at);
            }
        }
    }

    fn set_status(&mut self, idx: usize, status: ItemStatus) {
        if let Some(old) = self.items.set_status(idx, status) {
            *self.counts.slot(old) -= 1;
            *self.counts.slot(status) += 1;
        }
    }

    /// Indexes of items with `status`, in item order.
    pub fn with_status(&self, status: ItemStatus) -> impl Iterator<Item = usize> + '_ {
        self.items.with_status(status)
    }

    /// Durations of finished items, for percentiles.
    pub fn durations(&self) -> Vec<u64> {
        self.items.durations()
    }

    /// Peak RSS (KiB) and CPU time (ms) of the items whose last attempt was measured.
    pub fn usages(&self) -> (Vec<u64>, Vec<u64>) {
        self.items.usages()
    }
}

#[cfg(test)]
impl JobView {
    /// A view whose selected items have these statuses (for tests; counts are not kept).
    pub(crate) fn with_statuses(statuses: &[ItemStatus]) -> JobView {
        let mut items = ItemStates::new(statuses.len());
        for (i, s) in statuses.iter().enumerate() {
            items.set_status(i, *s);
        }
        JobView {
            map_started: true,
            items,
            ..JobView::default()
        }
    }
}

/// What a version 1 `checkpoint.json` holds: the view up to a journal offset (read only).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Checkpoint {
    pub journal_offset: u64,
    pub view: JobView,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::records::{Attempt, Failure};

    fn done(idx: usize, status: ItemStatus) -> Record {
        Record::ItemDone {
            idx,
            status,
            attempts: 1,
            duration_ms: 5,
            exit_code: None,
            captured: Map::new(),
            ran: None,
        }
    }

    #[test]
    fn counts_follow_records() {
        let mut v = JobView::default();
        v.apply(&Record::MapStarted {
            total: 3,
            items_hash: "h".into(),
        });
        v.apply(&done(0, ItemStatus::Succeeded));
        v.apply(&Record::Attempt {
            idx: 1,
            attempt: Attempt {
                attempt: 2,
                started_at: Timestamp::now(),
                duration_ms: 1,
                failure: Some(Failure::Exit { code: 4, step: 0 }),
                stderr_tail: String::new(),
                usage: None,
            },
        });
        v.apply(&done(1, ItemStatus::Dlq));
        assert_eq!(
            v.counts,
            Counts {
                total: 3,
                pending: 1,
                successful: 1,
                failed: 0,
                dlq: 1,
                purged: 0
            }
        );
        assert_eq!(v.items.attempts(1), 2);
        v.apply(&Record::ItemReset {
            idx: 1,
            status: ItemStatus::Pending,
        });
        assert_eq!(v.counts.pending, 2);
        assert_eq!(
            v.with_status(ItemStatus::Pending).collect::<Vec<_>>(),
            vec![1, 2]
        );
        // A repeated record is idempotent for the counts.
        v.apply(&done(0, ItemStatus::Succeeded));
        assert_eq!(v.counts.successful, 1);
    }
}
