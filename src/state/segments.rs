//! The journal as a sequence of segments, so a long job's state directory stays bounded:
//! records are appended to the active segment `journal.log`; at a checkpoint taken once it
//! has grown past a size, it is sealed (renamed `journal.<seq>.log`), a new `journal.log`
//! starts with a [`Record::Segment`] header naming its sequence number, the checkpoint is
//! written at the new segment's start, and the sealed segments it covers are deleted.
//!
//! Crash safety: each step is durable before the next. A crash after the rename leaves the
//! old checkpoint, whose segment and every later one are still there; a crash before the
//! deletion leaves sealed segments the checkpoint already covers, which recovery ignores
//! (and the next rotation deletes). A segment recovery needs that is missing or damaged is
//! an error naming it; one the checkpoint covers is ignored.

use std::path::PathBuf;

use super::checkpoint::JournalPos;
use super::error::StateError;
use super::journal::{JournalWriter, ReplayEnd, replay};
use super::layout::JobDir;
use super::records::Record;

/// The segments of a job's journal, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segments {
    /// Sealed segments `(seq, path)`, in order.
    pub sealed: Vec<(u64, PathBuf)>,
    /// The active segment's sequence number (it may not exist yet).
    pub active_seq: u64,
}

impl Segments {
    /// Find the segments of the job in `dir`.
    pub fn find(dir: &JobDir) -> Result<Segments, StateError> {
        let mut sealed = Vec::new();
        let rd = match std::fs::read_dir(dir.path()) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Segments {
                    sealed,
                    active_seq: 0,
                });
            }
            Err(e) => return Err(StateError::io("list directory", dir.path(), e)),
        };
        for e in rd.flatten() {
            let name = e.file_name();
            let Some(seq) = name
                .to_str()
                .and_then(|n| n.strip_prefix("journal."))
                .and_then(|n| n.strip_suffix(".log"))
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            sealed.push((seq, e.path()));
        }
        sealed.sort();
        let after_sealed = sealed.last().map(|(s, _)| s + 1).unwrap_or(0);
        let active_seq = header_seq(dir)?.unwrap_or(after_sealed);
        Ok(Segments { sealed, active_seq })
    }

    /// Replay every record from `from` on (sealed segments, then the active one). Returns
    /// how the active segment ended (its torn tail, if any, is the only one tolerated).
    pub fn replay(
        &self,
        dir: &JobDir,
        from: JournalPos,
        mut f: impl FnMut(Record),
    ) -> Result<ReplayEnd, StateError> {
        let mut next = from.segment;
        for (seq, path) in self.sealed.iter().filter(|(s, _)| *s >= from.segment) {
            if *seq != next {
                return Err(missing(dir, next));
            }
            let offset = if *seq == from.segment { from.offset } else { 0 };
            let end = replay::<Record>(path, offset, |_, r| f(r))?;
            if end.torn_tail.is_some() {
                return Err(StateError::Corrupt {
                    path: path.clone(),
                    detail: "a sealed journal segment ends with an incomplete record".into(),
                });
            }
            next = seq + 1;
        }
        if next < self.active_seq {
            return Err(missing(dir, next));
        }
        let offset = if self.active_seq == from.segment {
            from.offset
        } else {
            0
        };
        replay::<Record>(&dir.journal(), offset, |_, r| f(r))
    }

    /// Seal the active segment and start the next one, whose header makes it durable.
    /// `writer` is the active segment's writer; it writes to the new segment afterwards.
    pub fn rotate(
        &mut self,
        dir: &JobDir,
        writer: &mut JournalWriter<Record>,
    ) -> Result<(), StateError> {
        writer.flush()?;
        let sealed = dir.journal_segment(self.active_seq);
        std::fs::rename(dir.journal(), &sealed)
            .map_err(|e| StateError::io("seal journal segment", &dir.journal(), e))?;
        super::atomic::fsync_dir(dir.path())?;
        self.sealed.push((self.active_seq, sealed));
        self.active_seq += 1;
        let next = JournalWriter::open(&dir.journal())?;
        next.append_durable(Record::Segment {
            seq: self.active_seq,
        })?;
        // Everything of the old writer is on disk already.
        std::mem::replace(writer, next).close()
    }

    /// Delete the sealed segments before `seq` (a checkpoint at `seq` covers them).
    pub fn drop_before(&mut self, dir: &JobDir, seq: u64) -> Result<(), StateError> {
        let (gone, kept): (Vec<_>, Vec<_>) = self.sealed.drain(..).partition(|(s, _)| *s < seq);
        self.sealed = kept;
        for (_, path) in gone {
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(StateError::io("delete journal segment", &path, e)),
            }
        }
        super::atomic::fsync_dir(dir.path())
    }
}

fn missing(dir: &JobDir, seq: u64) -> StateError {
    StateError::Corrupt {
        path: dir.journal_segment(seq),
        detail: "this journal segment is needed (the checkpoint does not cover it) but it is \
                 missing"
            .into(),
    }
}

/// The sequence number in the active segment's header, if it has one.
fn header_seq(dir: &JobDir) -> Result<Option<u64>, StateError> {
    use std::io::{BufRead, BufReader};
    let file = match std::fs::File::open(dir.journal()) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StateError::io("open", &dir.journal(), e)),
    };
    let mut first = Vec::new();
    BufReader::new(file)
        .read_until(b'\n', &mut first)
        .map_err(|e| StateError::io("read", &dir.journal(), e))?;
    if first.last() == Some(&b'\n') {
        first.pop();
    }
    Ok(
        match super::jsonl::Framing::Checksummed.decode::<Record>(&first) {
            Ok(Record::Segment { seq }) => Some(seq),
            _ => None,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record that is easy to tell apart.
    fn rec(i: u64) -> Record {
        Record::Segment { seq: 1000 + i }
    }

    fn all(dir: &JobDir, from: JournalPos) -> Result<Vec<Record>, StateError> {
        let mut out = Vec::new();
        Segments::find(dir)?.replay(dir, from, |r| out.push(r))?;
        Ok(out)
    }

    #[test]
    fn rotation_keeps_every_record_in_order_and_drops_covered_segments() {
        let d = tempfile::tempdir().unwrap();
        let dir = JobDir::at(d.path());
        let mut segs = Segments::find(&dir).unwrap();
        assert_eq!(segs.active_seq, 0);
        let mut w = JournalWriter::open(&dir.journal()).unwrap();
        w.append(rec(1)).unwrap();
        segs.rotate(&dir, &mut w).unwrap();
        w.append(rec(2)).unwrap();
        segs.rotate(&dir, &mut w).unwrap();
        w.append(rec(3)).unwrap();
        w.flush().unwrap();
        assert_eq!(segs.active_seq, 2);
        assert_eq!(Segments::find(&dir).unwrap(), segs);
        let got = all(&dir, JournalPos::default()).unwrap();
        let seqs: Vec<u64> = got
            .iter()
            .map(|r| match r {
                Record::Segment { seq } => *seq,
                _ => 0,
            })
            .collect();
        assert_eq!(seqs, vec![1001, 1, 1002, 2, 1003]);
        // A checkpoint at segment 2 covers 0 and 1: they can go.
        segs.drop_before(&dir, 2).unwrap();
        assert!(!dir.journal_segment(0).exists());
        let got = all(
            &dir,
            JournalPos {
                segment: 2,
                offset: 0,
            },
        )
        .unwrap();
        assert_eq!(got.len(), 2);
        // ... but not from an older position: that segment is gone, and it says so.
        let err = all(&dir, JournalPos::default()).unwrap_err().to_string();
        assert!(
            err.contains("journal.0.log") && err.contains("missing"),
            "{err}"
        );
        drop(w);
    }

    #[test]
    fn a_sealed_segment_the_checkpoint_covers_may_be_damaged() {
        let d = tempfile::tempdir().unwrap();
        let dir = JobDir::at(d.path());
        let mut segs = Segments::find(&dir).unwrap();
        let mut w = JournalWriter::open(&dir.journal()).unwrap();
        w.append(rec(1)).unwrap();
        segs.rotate(&dir, &mut w).unwrap();
        w.append(rec(2)).unwrap();
        w.flush().unwrap();
        std::fs::write(dir.journal_segment(0), "garbage\nmore garbage\n").unwrap();
        let from = JournalPos {
            segment: 1,
            offset: 0,
        };
        assert_eq!(all(&dir, from).unwrap().len(), 2);
        drop(w);
    }
}
