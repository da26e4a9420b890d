//! A job's history as its files record it: the whole journal replayed (every attempt with
//! its start, duration and usage; runs, pauses, setup/reduce steps), the item ids, the DLQ.

use crate::state::atomic::read_checksummed;
use crate::state::dlq::{self, DlqEntry};
use crate::state::error::StateError;
use crate::state::items_file;
use crate::state::job::{JobMeta, JobView};
use crate::state::journal::replay;
use crate::state::layout::JobDir;
use crate::state::records::{Failure, JobState, Phase, Record, Usage};
use crate::state::recover::{display_state, recover};
use crate::state::time::Timestamp;

/// One recorded attempt of an item.
#[derive(Debug, Clone)]
pub struct AttemptRec {
    pub idx: usize,
    pub attempt: u32,
    pub at: Timestamp,
    pub ms: u64,
    pub failure: Option<Failure>,
    pub usage: Option<Usage>,
}

/// A setup or reduce step that started.
#[derive(Debug, Clone)]
pub struct StepRec {
    pub phase: Phase,
    pub index: usize,
    pub at: Timestamp,
    /// `None`: it never recorded its end (it failed, or the run was stopped).
    pub ms: Option<u64>,
}

/// One run of the job; `end` is its `run_ended`, or its last record's time after a crash.
#[derive(Debug, Clone, Copy)]
pub struct RunRec {
    pub start: Timestamp,
    pub end: Timestamp,
}

pub struct History {
    pub meta: JobMeta,
    pub view: JobView,
    pub state: JobState,
    /// Item ids by index.
    pub ids: Vec<String>,
    pub attempts: Vec<AttemptRec>,
    pub steps: Vec<StepRec>,
    pub runs: Vec<RunRec>,
    pub dlq: Vec<DlqEntry>,
}

/// Read everything the report needs from `dir`.
pub fn load(dir: &JobDir) -> Result<History, StateError> {
    let meta: JobMeta = read_checksummed(&dir.meta())?.ok_or_else(|| StateError::Corrupt {
        path: dir.meta(),
        detail: "missing: this is not a complete job directory".into(),
    })?;
    let view = recover(dir, false)?;
    let state = display_state(dir, &view);
    let ids = if view.map_started && dir.items().exists() {
        items_file::read(&dir.items())?
            .iter()
            .map(|i| i.id.clone())
            .collect()
    } else {
        Vec::new()
    };
    let mut r = Replay::default();
    replay::<Record>(&dir.journal(), 0, |_, rec| r.apply(rec))?;
    r.close_run(None);
    let dlq = if dir.dlq().exists() {
        dlq::load(&dir.dlq())?
    } else {
        Vec::new()
    };
    Ok(History {
        meta,
        view,
        state,
        ids,
        attempts: r.attempts,
        steps: r.steps,
        runs: r.runs,
        dlq,
    })
}

#[derive(Default)]
struct Replay {
    attempts: Vec<AttemptRec>,
    steps: Vec<StepRec>,
    runs: Vec<RunRec>,
    /// The run being read: its start and the latest time seen in it.
    open: Option<(Timestamp, Timestamp)>,
    /// Steps of the open run that started: (phase, index, position in `steps`).
    started: Vec<(Phase, usize, usize)>,
}

impl Replay {
    fn seen(&mut self, t: Timestamp) {
        if let Some((_, last)) = &mut self.open {
            *last = (*last).max(t);
        }
    }

    fn close_run(&mut self, end: Option<Timestamp>) {
        if let Some((start, last)) = self.open.take() {
            self.runs.push(RunRec {
                start,
                end: end.unwrap_or(last).max(start),
            });
        }
        self.started.clear();
    }

    fn started_at(&self, phase: Phase, index: usize) -> Option<usize> {
        self.started
            .iter()
            .find(|(p, i, _)| *p == phase && *i == index)
            .map(|(_, _, pos)| *pos)
    }

    fn apply(&mut self, rec: Record) {
        match rec {
            Record::RunStarted { at, .. } => {
                self.close_run(None);
                self.open = Some((at, at));
            }
            Record::RunEnded { at, .. } => self.close_run(Some(at)),
            Record::Paused { at, .. } | Record::Unpaused { at } => self.seen(at),
            Record::StepStarted {
                phase,
                index,
                at: Some(at),
                ..
            } => {
                self.seen(at);
                if self.started_at(phase, index).is_none() {
                    self.started.push((phase, index, self.steps.len()));
                    self.steps.push(StepRec {
                        phase,
                        index,
                        at,
                        ms: None,
                    });
                }
            }
            Record::StepDone {
                phase,
                index,
                ran: Some(ran),
                ..
            } => {
                self.seen(end_of(ran.at, ran.ms));
                match self.started_at(phase, index) {
                    Some(i) => {
                        self.steps[i].at = ran.at;
                        self.steps[i].ms = Some(ran.ms);
                    }
                    None => self.steps.push(StepRec {
                        phase,
                        index,
                        at: ran.at,
                        ms: Some(ran.ms),
                    }),
                }
            }
            Record::Attempt { idx, attempt } => {
                self.seen(end_of(attempt.started_at, attempt.duration_ms));
                self.attempts.push(AttemptRec {
                    idx,
                    attempt: attempt.attempt,
                    at: attempt.started_at,
                    ms: attempt.duration_ms,
                    failure: attempt.failure,
                    usage: attempt.usage,
                });
            }
            Record::ItemDone {
                idx,
                attempts,
                ran: Some(ran),
                ..
            } => {
                self.seen(end_of(ran.at, ran.ms));
                self.attempts.push(AttemptRec {
                    idx,
                    attempt: attempts,
                    at: ran.at,
                    ms: ran.ms,
                    failure: None,
                    usage: ran.usage(),
                });
            }
            _ => {}
        }
    }
}

fn end_of(at: Timestamp, ms: u64) -> Timestamp {
    Timestamp::from(at.system_time() + std::time::Duration::from_millis(ms))
}
