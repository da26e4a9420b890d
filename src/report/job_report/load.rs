//! A job's history as its files record it: every attempt with its start, duration and usage,
//! runs and setup/reduce steps (from `timeline.bin`, or for jobs without one, from the
//! journal segments still there), the item ids, the DLQ.

use crate::state::atomic::read_checksummed;
use crate::state::dlq::{self, DlqEntry};
use crate::state::error::StateError;
use crate::state::items_file::ItemStore;
use crate::state::job::{JobMeta, JobView};
use crate::state::journal::replay;
use crate::state::layout::JobDir;
use crate::state::records::{JobState, Phase, Record};
use crate::state::recover::{display_state, recover};
use crate::state::segments::Segments;
use crate::state::time::Timestamp;
use crate::state::timeline::{self, Mark};

/// One recorded attempt of an item.
pub use crate::state::timeline::AttemptMark as AttemptRec;

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
        ItemStore::open(&dir.items(), None, None)?
            .iter()?
            .map(|i| i.map(|i| i.id))
            .collect::<Result<_, _>>()?
    } else {
        Vec::new()
    };
    let mut r = Replay::default();
    match timeline::read(&dir.timeline())? {
        Some(marks) => marks.into_iter().for_each(|m| r.apply(m)),
        None => replay_journal(dir, &mut r)?,
    }
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

/// A job made before `timeline.bin` existed: the journal segments that are left.
fn replay_journal(dir: &JobDir, r: &mut Replay) -> Result<(), StateError> {
    let segs = Segments::find(dir)?;
    let paths = segs.sealed.iter().map(|(_, p)| p.clone());
    for path in paths.chain(std::iter::once(dir.journal())) {
        if path.exists() {
            replay::<Record>(&path, 0, |_, rec| {
                if let Some(m) = Mark::of(&rec) {
                    r.apply(m);
                }
            })?;
        }
    }
    Ok(())
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

    fn apply(&mut self, m: Mark) {
        match m {
            Mark::RunStarted { at } => {
                self.close_run(None);
                self.open = Some((at, at));
            }
            Mark::RunEnded { at } => self.close_run(Some(at)),
            Mark::Seen { at } => self.seen(at),
            Mark::StepStarted { phase, index, at } => {
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
            Mark::StepDone {
                phase,
                index,
                at,
                ms,
            } => {
                self.seen(end_of(at, ms));
                match self.started_at(phase, index) {
                    Some(i) => {
                        self.steps[i].at = at;
                        self.steps[i].ms = Some(ms);
                    }
                    None => self.steps.push(StepRec {
                        phase,
                        index,
                        at,
                        ms: Some(ms),
                    }),
                }
            }
            Mark::Attempt(a) => {
                self.seen(end_of(a.at, a.ms));
                self.attempts.push(a);
            }
        }
    }
}

fn end_of(at: Timestamp, ms: u64) -> Timestamp {
    Timestamp::from(at.system_time() + std::time::Duration::from_millis(ms))
}
