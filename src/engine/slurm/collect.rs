//! The coordinator's book of array tasks it waits for, and what a poll turns into events:
//! each outcome file that appeared ends its attempt; a task that ended without the outcome
//! of some of its attempts (killed, node failure, time limit) loses only those, which end
//! as [`Failure::TaskLost`] (the dispatcher queues them again), or, when a stop took the
//! task back before it started, are returned (their items stay pending).

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Map;
use tokio::time::Instant;

use crate::engine::map::backend::{AttemptEnd, BackendEvent};
use crate::engine::slurm::client::{TaskId, TaskStates, is_terminal};
use crate::state::records::{Attempt, Failure};
use crate::state::slurm::outcome::Outcome;
use crate::state::slurm::paths::{OutcomeKey, SlurmPaths};

/// An attempt of a task whose outcome has not come in.
#[derive(Debug, Clone)]
pub struct Live {
    pub idx: usize,
    pub attempt: u32,
    pub key: OutcomeKey,
}

/// An array task the coordinator waits for.
#[derive(Debug, Clone)]
pub struct Task {
    pub id: TaskId,
    /// Its attempts without an outcome yet.
    pub live: Vec<Live>,
    /// Slurm said it was running (so it was not taken back unstarted).
    pub started: bool,
    /// When a poll first said it ended (with that state) while outcomes were missing.
    pub ended: Option<(Instant, String)>,
}

/// What a poll found.
#[derive(Debug)]
pub enum Found {
    /// An attempt's outcome (and its file, deleted once recorded).
    Outcome(Outcome, PathBuf),
    /// A task ended without this attempt's outcome: Slurm's last state, the task.
    Lost(Live, String, TaskId),
    /// A stop took this attempt's task back before it started.
    Returned(Live),
}

#[derive(Debug, Default)]
pub struct Tasks {
    by_id: HashMap<TaskId, Task>,
    /// The task of each attempt still waited for, by its outcome file.
    expected: HashMap<OutcomeKey, TaskId>,
    /// Outcome files that could not be read (warned about once).
    unreadable: HashSet<OutcomeKey>,
}

impl Tasks {
    pub fn add(&mut self, task: Task) {
        for l in &task.live {
            self.expected.insert(l.key.clone(), task.id.clone());
        }
        self.by_id.insert(task.id.clone(), task);
    }

    /// Attempts waited for.
    pub fn in_flight(&self) -> usize {
        self.expected.len()
    }

    pub fn ids(&self) -> Vec<TaskId> {
        let mut ids: Vec<TaskId> = self.by_id.keys().cloned().collect();
        ids.sort();
        ids
    }

    /// The Slurm jobs (arrays) with tasks waited for.
    pub fn jobs(&self) -> Vec<String> {
        let mut jobs: Vec<String> = self.by_id.keys().map(|t| t.job.clone()).collect();
        jobs.sort();
        jobs.dedup();
        jobs
    }

    /// The outcome files of waited-for attempts that are there now. `warn` is told about
    /// a file that cannot be read (once); its attempt is still waited for.
    pub fn outcomes(&mut self, paths: &SlurmPaths, mut warn: impl FnMut(String)) -> Vec<Found> {
        let mut found = Vec::new();
        let Ok(dir) = std::fs::read_dir(paths.outcomes()) else {
            return found;
        };
        for entry in dir.flatten() {
            let name = entry.file_name();
            let Some(key) = name.to_str().and_then(OutcomeKey::parse) else {
                continue;
            };
            if !self.expected.contains_key(&key) {
                continue; // recorded already, or not ours
            }
            let path = entry.path();
            match Outcome::read(&path) {
                Ok(o) => {
                    self.done(&key);
                    found.push(Found::Outcome(o, path));
                }
                Err(e) => {
                    if self.unreadable.insert(key) {
                        warn(format!("ignoring an unreadable outcome file: {e}"));
                    }
                }
            }
        }
        found
    }

    /// The attempt of `key` ended: stop waiting for it (and for its task, when it was the
    /// last one).
    fn done(&mut self, key: &OutcomeKey) {
        let Some(id) = self.expected.remove(key) else {
            return;
        };
        if let Some(t) = self.by_id.get_mut(&id) {
            t.live.retain(|l| &l.key != key);
            if t.live.is_empty() {
                self.by_id.remove(&id);
            }
        }
    }

    /// Apply a poll's task states: tasks that ended with attempts still missing their
    /// outcome give them up once `grace` has passed since (their files may still be on the
    /// way through a shared filesystem). After a stop (`halted`), a task cancelled before
    /// it started is taken back at once.
    pub fn ended(
        &mut self,
        states: &TaskStates,
        now: Instant,
        grace: Duration,
        halted: bool,
    ) -> Vec<Found> {
        let mut gone = Vec::new();
        for t in self.by_id.values_mut() {
            let state = states.get(&t.id).unwrap_or("UNKNOWN");
            if !is_terminal(state) {
                t.started |= state != "PENDING";
                t.ended = None;
                continue;
            }
            let taken_back = halted && state == "CANCELLED" && !t.started;
            match &t.ended {
                _ if taken_back => gone.push(t.id.clone()),
                None => t.ended = Some((now, state.to_owned())),
                Some((since, _)) if now.duration_since(*since) >= grace => gone.push(t.id.clone()),
                Some(_) => {}
            }
        }
        let mut found = Vec::new();
        for id in gone {
            let Some(t) = self.by_id.remove(&id) else {
                continue;
            };
            let state = states.get(&id).unwrap_or("UNKNOWN").to_owned();
            let taken_back = halted && state == "CANCELLED" && !t.started;
            for l in t.live {
                self.expected.remove(&l.key);
                found.push(if taken_back {
                    Found::Returned(l)
                } else {
                    Found::Lost(l, state.clone(), id.clone())
                });
            }
        }
        found
    }

    /// Stop waiting for everything; the attempts that were waited for.
    pub fn drain(&mut self) -> Vec<Live> {
        self.expected.clear();
        self.by_id.drain().flat_map(|(_, t)| t.live).collect()
    }
}

/// The end of an attempt whose outcome file came in.
pub fn outcome_end(o: Outcome) -> BackendEvent {
    BackendEvent::Ended(AttemptEnd {
        idx: o.idx,
        attempt: o.attempt,
        captured: o.captured,
        warnings: Vec::new(),
    })
}

/// The end of an attempt that did not get to finish.
fn cut_short(l: &Live, failure: Failure, stderr_tail: String) -> BackendEvent {
    BackendEvent::Ended(AttemptEnd {
        idx: l.idx,
        attempt: Attempt {
            attempt: l.attempt,
            started_at: crate::state::time::Timestamp::now(),
            duration_ms: 0,
            failure: Some(failure),
            stderr_tail,
            usage: None,
        },
        captured: Map::new(),
        warnings: Vec::new(),
    })
}

/// The end of an attempt lost with its task: the Slurm state, and the end of the task's
/// log, which says what killed it when anything does.
pub fn lost_end(l: &Live, state: &str, task: &TaskId, paths: &SlurmPaths) -> BackendEvent {
    let log = paths.task_log(&task.job, task.index);
    let tail = std::fs::read_to_string(&log)
        .map(|s| {
            let lines: Vec<&str> = s.lines().collect();
            lines[lines.len().saturating_sub(5)..].join("\n")
        })
        .unwrap_or_default();
    let message = format!("task {task} ended {state} without an outcome");
    let stderr_tail = format!("Slurm {message} (log: {})\n{tail}", log.display());
    cut_short(
        l,
        Failure::TaskLost { message },
        stderr_tail.trim_end().to_owned(),
    )
}

/// The end of an attempt cancelled by a forced stop (its item stays pending).
pub fn cancelled_end(l: &Live) -> BackendEvent {
    cut_short(l, Failure::Cancelled { step: 0 }, String::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(job: &str, index: usize, idxs: &[usize]) -> Task {
        Task {
            id: TaskId {
                job: job.into(),
                index,
            },
            live: idxs
                .iter()
                .map(|&idx| Live {
                    idx,
                    attempt: 1,
                    key: OutcomeKey::new(&format!("i{idx}"), 1, 1),
                })
                .collect(),
            started: false,
            ended: None,
        }
    }

    fn states(lines: &str) -> TaskStates {
        crate::engine::slurm::client::parse_squeue(lines)
    }

    #[test]
    fn a_task_that_ended_loses_its_missing_attempts_after_the_grace() {
        let mut tasks = Tasks::default();
        tasks.add(task("7", 0, &[1, 2]));
        tasks.add(task("7", 1, &[3]));
        assert_eq!(tasks.in_flight(), 3);
        let t0 = Instant::now();
        let grace = Duration::from_secs(2);
        let s = states("7 0 FAILED\n7 1 RUNNING\n");
        assert!(tasks.ended(&s, t0, grace, false).is_empty(), "grace");
        let found = tasks.ended(&s, t0 + grace, grace, false);
        let lost: Vec<usize> = found
            .iter()
            .map(|f| match f {
                Found::Lost(l, state, _) => {
                    assert_eq!(state, "FAILED");
                    l.idx
                }
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(lost, vec![1, 2]);
        assert_eq!(tasks.in_flight(), 1);
        assert_eq!(tasks.jobs(), vec!["7".to_owned()]);
    }

    #[test]
    fn a_task_back_to_live_is_no_longer_ending() {
        let mut tasks = Tasks::default();
        tasks.add(task("7", 0, &[1]));
        let t0 = Instant::now();
        let g = Duration::from_secs(2);
        tasks.ended(&states(""), t0, g, false);
        tasks.ended(&states("7 0 RUNNING\n"), t0 + g, g, false);
        assert!(tasks.ended(&states(""), t0 + g * 2, g, false).is_empty());
    }

    #[test]
    fn after_a_stop_an_unstarted_cancelled_task_is_returned_at_once() {
        let mut tasks = Tasks::default();
        tasks.add(task("7", 0, &[1]));
        tasks.add(task("7", 1, &[2]));
        let t0 = Instant::now();
        let g = Duration::from_secs(2);
        tasks.ended(&states("7 0 PENDING\n7 1 RUNNING\n"), t0, g, false);
        let found = tasks.ended(&states("7 0 CANCELLED\n7 1 CANCELLED\n"), t0, g, true);
        assert!(matches!(found.as_slice(), [Found::Returned(l)] if l.idx == 1));
        let found = tasks.ended(&states("7 1 CANCELLED\n"), t0 + g, g, true);
        assert!(
            matches!(found.as_slice(), [Found::Lost(l, _, _)] if l.idx == 2),
            "a started task that was cancelled lost its attempt: {found:?}"
        );
    }
}
