//! The single owner of a job's recorded state while it runs: every change goes through
//! here as a journal record (applied to the in-memory [`JobView`] at the same time), every
//! change users should see goes out as an [`Event`], and item failures reach the DLQ.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::engine::controls::ControlMsg;
use crate::items::Item;
use crate::report::event::Event;
use crate::report::reporter::Reporter;
use crate::state::checkpoint::{self, JournalPos};
use crate::state::dlq::{self, DlqEntry};
use crate::state::error::StateError;
use crate::state::job::JobView;
use crate::state::journal::JournalWriter;
use crate::state::layout::JobDir;
use crate::state::records::{Attempt, ItemStatus, Ran, Record};
use crate::state::segments::Segments;
use crate::state::time::Timestamp;
use crate::state::timeline::TimelineWriter;
use crate::workflow::model::OnItemFailure;

/// An item's end, as the dispatcher hands it to [`Recorder::item_finished`].
pub struct ItemOutcome<'a> {
    pub idx: usize,
    pub item: &'a Item,
    /// Attempts of this run, the last one included.
    pub attempts: &'a [Attempt],
    pub succeeded: bool,
    pub captured: Map<String, Value>,
    /// Wall time from the first attempt of this run to the end, retry waits included.
    pub duration: Duration,
}

/// A position in the journal: see [`Recorder::mark`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DurableMark {
    segment: u64,
    records: u64,
}

/// Size of the active journal segment past which it is sealed and a checkpoint taken
/// (bounds both the state directory and the replay after a crash). Tests lower it with the
/// hidden variable `RUNNER_JOURNAL_SEGMENT_BYTES`.
const SEGMENT_BYTES: u64 = 16 << 20;

fn segment_bytes() -> u64 {
    std::env::var("RUNNER_JOURNAL_SEGMENT_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(SEGMENT_BYTES)
}

pub struct Recorder {
    pub dir: JobDir,
    pub view: JobView,
    journal: JournalWriter<Record>,
    /// What `runner report` draws (kept when old journal segments are dropped).
    timeline: TimelineWriter,
    reporter: Box<dyn Reporter>,
    dlq: HashMap<String, DlqEntry>,
    segments: Segments,
    segment_bytes: u64,
}

impl Recorder {
    pub fn new(
        dir: JobDir,
        view: JobView,
        reporter: Box<dyn Reporter>,
    ) -> Result<Self, StateError> {
        let segments = Segments::find(&dir)?;
        let fresh = !dir.journal().exists();
        let journal = JournalWriter::open(&dir.journal())?;
        if fresh && segments.active_seq > 0 {
            // A crash sealed the last segment before starting the next one.
            journal.append_durable(Record::Segment {
                seq: segments.active_seq,
            })?;
        }
        let timeline = TimelineWriter::open(&dir.timeline())?;
        let dlq = dlq::load(&dir.dlq())?
            .into_iter()
            .map(|e| (e.item_id.clone(), e))
            .collect();
        Ok(Recorder {
            dir,
            view,
            journal,
            timeline,
            reporter,
            dlq,
            segments,
            segment_bytes: segment_bytes(),
        })
    }

    /// Append a record (group-committed: durable within milliseconds, see [`Self::flush`]).
    pub fn record(&mut self, rec: Record) -> Result<(), StateError> {
        self.view.apply(&rec);
        self.timeline.note(&rec)?;
        let end = self.journal.append(rec)?;
        if end >= self.segment_bytes {
            self.rotate()?;
        }
        Ok(())
    }

    /// Append a record and wait until it is on disk.
    pub fn record_durable(&mut self, rec: Record) -> Result<(), StateError> {
        self.record(rec)?;
        self.flush()
    }

    pub fn flush(&mut self) -> Result<(), StateError> {
        self.timeline.flush()?;
        self.journal.flush()
    }

    /// The job is over (for now): compress `timeline.bin` (a later run unseals it).
    pub fn seal_timeline(&mut self) -> Result<(), StateError> {
        self.timeline.seal()
    }

    /// A mark of everything recorded so far, to ask later (without waiting) whether it is
    /// on disk yet: see [`Self::is_durable`].
    pub fn mark(&self) -> DurableMark {
        DurableMark {
            segment: self.segments.active_seq,
            records: self.journal.appended(),
        }
    }

    /// Whether everything recorded before `mark` was taken is on disk now. (A rotation
    /// flushes the sealed segment, so a mark of an older segment is durable.)
    pub fn is_durable(&self, mark: DurableMark) -> bool {
        mark.segment < self.segments.active_seq || self.journal.durable() >= mark.records
    }

    pub fn report(&mut self, ev: &Event) {
        self.reporter.report(ev);
    }

    pub fn finish_reporting(&mut self) {
        self.reporter.finish();
    }

    /// Apply a control message: record a pause/unpause (durably) and tell the reporters;
    /// report an interrupt with the number of items (or steps) in flight. Returns whether
    /// the job is paused afterwards. Repeated requests are no-ops.
    pub fn apply_control(&mut self, msg: ControlMsg, in_flight: usize) -> Result<bool, StateError> {
        let at = Timestamp::now();
        match msg {
            ControlMsg::Pause(reason) if self.view.paused().is_none() => {
                self.record_durable(Record::Paused {
                    at,
                    reason: reason.clone(),
                })?;
                self.report(&Event::Paused { reason });
            }
            ControlMsg::Unpause if self.view.paused().is_some() => {
                self.record_durable(Record::Unpaused { at })?;
                self.report(&Event::Unpaused {});
            }
            ControlMsg::Interrupted(i) => self.report(&Event::Interrupted {
                signal: i.signal.as_str().to_owned(),
                in_flight,
                kill_grace_ms: i.grace.as_millis() as u64,
            }),
            _ => {}
        }
        Ok(self.view.paused().is_some())
    }

    pub fn in_dlq(&self, item_id: &str) -> bool {
        self.dlq.contains_key(item_id)
    }

    /// `dlq purge`: the items at `idxs` are given up on (`purged` in the journal, durably),
    /// then the entries of `ids` leave the DLQ file.
    pub fn purge(&mut self, idxs: &[usize], ids: &[String]) -> Result<(), StateError> {
        for &idx in idxs {
            self.record(Record::ItemReset {
                idx,
                status: ItemStatus::Purged,
            })?;
        }
        self.flush()?;
        dlq::remove(&self.dir.dlq(), ids)?;
        for id in ids {
            self.dlq.remove(id);
        }
        Ok(())
    }

    /// Write the checkpoint (everything in the journal so far).
    pub fn checkpoint(&mut self) -> Result<(), StateError> {
        self.flush()?;
        let pos = JournalPos {
            segment: self.segments.active_seq,
            offset: self.journal.durable_len(),
        };
        checkpoint::write(&self.dir, pos, &mut self.view)
    }

    /// Seal the active journal segment, checkpoint at the start of the next one, and drop
    /// the segments the checkpoint covers.
    fn rotate(&mut self) -> Result<(), StateError> {
        self.segments.rotate(&self.dir, &mut self.journal)?;
        self.checkpoint()?;
        let seq = self.segments.active_seq;
        self.segments.drop_before(&self.dir, seq)
    }

    /// Record an item's end: the DLQ entry when it failed for good (written before the
    /// journal says so: a crash in between leaves the item pending and in the DLQ, which
    /// resume deduplicates), and its final status. Its failed attempts were recorded as
    /// they ended. Returns the status.
    pub fn item_finished(
        &mut self,
        r: ItemOutcome<'_>,
        on_failure: OnItemFailure,
    ) -> Result<ItemStatus, StateError> {
        let id = &r.item.id;
        let status = if r.succeeded {
            if self.dlq.remove(id).is_some() {
                dlq::remove(&self.dir.dlq(), std::slice::from_ref(id))?;
            }
            ItemStatus::Succeeded
        } else if on_failure == OnItemFailure::Skip {
            ItemStatus::Failed
        } else {
            let now = Timestamp::now();
            match self.dlq.get_mut(id) {
                Some(e) => {
                    e.attempts.extend(r.attempts.iter().cloned());
                    e.last_failure_at = now;
                    dlq::upsert(&self.dir.dlq(), e)?;
                }
                None => {
                    let e = DlqEntry {
                        item_id: id.clone(),
                        item: r.item.value.clone(),
                        attempts: r.attempts.to_vec(),
                        first_failure_at: now,
                        last_failure_at: now,
                    };
                    dlq::append(&self.dir.dlq(), &e)?;
                    self.dlq.insert(id.clone(), e);
                }
            }
            ItemStatus::Dlq
        };
        let last = r.attempts.last();
        let failure = last.and_then(|a| a.failure.as_ref());
        let attempts = last.map(|a| a.attempt).unwrap_or(0);
        let duration_ms = r.duration.as_millis() as u64;
        // A failed last attempt has its own record; a successful one is told here.
        let ran = last
            .filter(|a| a.failure.is_none())
            .map(|a| Ran::new(a.started_at, a.duration_ms, a.usage));
        self.record(Record::ItemDone {
            idx: r.idx,
            status,
            attempts,
            duration_ms,
            exit_code: failure.and_then(|f| f.exit_code()),
            captured: r.captured,
            ran,
        })?;
        self.report(&Event::ItemFinished {
            item_id: id.clone(),
            status,
            attempts,
            duration_ms,
            exit_code: failure.and_then(|f| f.exit_code()),
            error: failure.map(|f| f.to_string()),
            failure_class: failure.map(|f| f.class()),
            stderr_tail: last.map(|a| a.stderr_tail.clone()).unwrap_or_default(),
            usage: last.and_then(|a| a.usage),
        });
        Ok(status)
    }
}
