//! `timeline.bin`: what `runner report` draws, kept for the job's whole life. The journal
//! drops its old segments once a checkpoint covers them, and with them the start, duration
//! and usage of every attempt they held; this file keeps those in 36 bytes per attempt.
//!
//! ```text
//! runner timeline\n   (16 bytes), then fixed-size records (little endian):
//! kind u8 | class u8 | flags u8 | phase u8 | n u32 | attempt u32 | at i64 (ms since the
//! epoch) | ms u32 | exit i32 | peak_rss_kb u32 | cpu_ms u32
//! ```
//!
//! It is written by the [`crate::engine::recorder::Recorder`] next to the journal (buffered,
//! not synced: a crash may lose its last records, which only the report misses) and read
//! tolerating a torn last record.
//!
//! When a run ends with the job completed or failed, the file is **sealed**: replaced
//! (atomically) by `runner tl lz4 1\n` and the records as one LZ4 frame, about a third of
//! their size. A later run that appends unseals it first. Both stream: memory does not
//! grow with the file.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::atomic::{FILE_MODE, write_atomic_with};
use super::error::StateError;
use super::records::{Failure, Phase, Record, Usage};
use super::time::Timestamp;

const MAGIC: &[u8; 16] = b"runner timeline\n";
/// The header of a sealed timeline.
const PACKED: &[u8; 16] = b"runner tl lz4 1\n";
const SIZE: usize = 36;

/// One thing the report draws.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    RunStarted {
        at: Timestamp,
    },
    RunEnded {
        at: Timestamp,
    },
    /// Something happened at `at` (a pause or unpause): a crashed run lasted at least so long.
    Seen {
        at: Timestamp,
    },
    StepStarted {
        phase: Phase,
        index: usize,
        at: Timestamp,
    },
    StepDone {
        phase: Phase,
        index: usize,
        at: Timestamp,
        ms: u64,
    },
    Attempt(AttemptMark),
}

/// An attempt of an item that ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttemptMark {
    pub idx: usize,
    pub attempt: u32,
    /// When it started, and how long it ran.
    pub at: Timestamp,
    pub ms: u64,
    /// Its failure class (`None`: it succeeded).
    pub class: Option<&'static str>,
    pub exit_code: Option<i32>,
    pub usage: Option<Usage>,
}

impl Mark {
    /// The mark of a journal record, if the report draws it.
    pub fn of(rec: &Record) -> Option<Mark> {
        Some(match rec {
            Record::RunStarted { at, .. } => Mark::RunStarted { at: *at },
            Record::RunEnded { at, .. } => Mark::RunEnded { at: *at },
            Record::Paused { at, .. } | Record::Unpaused { at } => Mark::Seen { at: *at },
            Record::StepStarted {
                phase,
                index,
                at: Some(at),
                ..
            } => Mark::StepStarted {
                phase: *phase,
                index: *index,
                at: *at,
            },
            Record::StepDone {
                phase,
                index,
                ran: Some(ran),
                ..
            } => Mark::StepDone {
                phase: *phase,
                index: *index,
                at: ran.at,
                ms: ran.ms,
            },
            Record::Attempt { idx, attempt } => Mark::Attempt(AttemptMark {
                idx: *idx,
                attempt: attempt.attempt,
                at: attempt.started_at,
                ms: attempt.duration_ms,
                class: attempt.failure.as_ref().map(Failure::class),
                exit_code: attempt.failure.as_ref().and_then(Failure::exit_code),
                usage: attempt.usage,
            }),
            Record::ItemDone {
                idx,
                attempts,
                ran: Some(ran),
                ..
            } => Mark::Attempt(AttemptMark {
                idx: *idx,
                attempt: *attempts,
                at: ran.at,
                ms: ran.ms,
                class: None,
                exit_code: None,
                usage: ran.usage(),
            }),
            _ => return None,
        })
    }

    fn encode(&self) -> [u8; SIZE] {
        let mut b = [0u8; SIZE];
        let (kind, class, phase, n, attempt, at, ms, exit, usage) = match *self {
            Mark::RunStarted { at } => (1, 0, 0, 0, 0, at, 0, None, None),
            Mark::RunEnded { at } => (2, 0, 0, 0, 0, at, 0, None, None),
            Mark::Seen { at } => (3, 0, 0, 0, 0, at, 0, None, None),
            Mark::StepStarted { phase, index, at } => {
                (4, 0, phase_code(phase), index, 0, at, 0, None, None)
            }
            Mark::StepDone {
                phase,
                index,
                at,
                ms,
            } => (5, 0, phase_code(phase), index, 0, at, ms, None, None),
            Mark::Attempt(a) => (
                6,
                class_code(a.class),
                0,
                a.idx,
                a.attempt,
                a.at,
                a.ms,
                a.exit_code,
                a.usage,
            ),
        };
        let flags = u8::from(exit.is_some()) | (u8::from(usage.is_some()) << 1);
        let u = usage.unwrap_or_default();
        b[0] = kind;
        b[1] = class;
        b[2] = flags;
        b[3] = phase;
        b[4..8].copy_from_slice(&sat(n as u64).to_le_bytes());
        b[8..12].copy_from_slice(&attempt.to_le_bytes());
        b[12..20].copy_from_slice(&epoch_ms(at).to_le_bytes());
        b[20..24].copy_from_slice(&sat(ms).to_le_bytes());
        b[24..28].copy_from_slice(&exit.unwrap_or(0).to_le_bytes());
        b[28..32].copy_from_slice(&sat(u.peak_rss_kb).to_le_bytes());
        b[32..36].copy_from_slice(&sat(u.cpu_ms).to_le_bytes());
        b
    }

    fn decode(b: &[u8]) -> Option<Mark> {
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let mut at8 = [0u8; 8];
        at8.copy_from_slice(&b[12..20]);
        let at = from_epoch_ms(i64::from_le_bytes(at8));
        let n = u32_at(4) as usize;
        let ms = u64::from(u32_at(20));
        let flags = b[2];
        Some(match b[0] {
            1 => Mark::RunStarted { at },
            2 => Mark::RunEnded { at },
            3 => Mark::Seen { at },
            4 => Mark::StepStarted {
                phase: phase_from(b[3])?,
                index: n,
                at,
            },
            5 => Mark::StepDone {
                phase: phase_from(b[3])?,
                index: n,
                at,
                ms,
            },
            6 => Mark::Attempt(AttemptMark {
                idx: n,
                attempt: u32_at(8),
                at,
                ms,
                class: match b[1] {
                    0 => None,
                    c => Some(*Failure::CLASSES.get(usize::from(c) - 1)?),
                },
                exit_code: (flags & 1 != 0).then(|| u32_at(24) as i32),
                usage: (flags & 2 != 0).then(|| Usage {
                    peak_rss_kb: u32_at(28).into(),
                    cpu_ms: u32_at(32).into(),
                }),
            }),
            _ => return None,
        })
    }
}

fn sat(v: u64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

fn class_code(class: Option<&str>) -> u8 {
    class
        .and_then(|c| Failure::CLASSES.iter().position(|k| *k == c))
        .map_or(0, |i| i as u8 + 1)
}

fn phase_code(p: Phase) -> u8 {
    match p {
        Phase::Setup => 0,
        Phase::Map => 1,
        Phase::Reduce => 2,
    }
}

fn phase_from(b: u8) -> Option<Phase> {
    Some(match b {
        0 => Phase::Setup,
        1 => Phase::Map,
        2 => Phase::Reduce,
        _ => return None,
    })
}

fn epoch_ms(t: Timestamp) -> i64 {
    match t.system_time().duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => d.as_millis() as i64,
        Err(e) => -(e.duration().as_millis() as i64),
    }
}

fn from_epoch_ms(ms: i64) -> Timestamp {
    let d = Duration::from_millis(ms.unsigned_abs());
    Timestamp::from(if ms >= 0 {
        SystemTime::UNIX_EPOCH + d
    } else {
        SystemTime::UNIX_EPOCH - d
    })
}

/// Appends marks to a job's `timeline.bin`.
pub struct TimelineWriter {
    path: PathBuf,
    /// `None` once sealed: the next mark unseals and reopens it.
    out: Option<BufWriter<File>>,
}

impl TimelineWriter {
    /// Open for appending (creating it with its header; a torn last record is cut off; a
    /// sealed file is unsealed).
    pub fn open(path: &Path) -> Result<TimelineWriter, StateError> {
        Ok(TimelineWriter {
            path: path.to_path_buf(),
            out: Some(open_raw(path)?),
        })
    }

    /// Note `rec` if the report draws it.
    pub fn note(&mut self, rec: &Record) -> Result<(), StateError> {
        let Some(m) = Mark::of(rec) else {
            return Ok(());
        };
        let out = match &mut self.out {
            Some(out) => out,
            None => self.out.insert(open_raw(&self.path)?),
        };
        out.write_all(&m.encode())
            .map_err(|e| StateError::io("write timeline", &self.path, e))
    }

    /// Hand what is buffered to the kernel (readers see it; no fsync).
    pub fn flush(&mut self) -> Result<(), StateError> {
        match &mut self.out {
            Some(out) => out
                .flush()
                .map_err(|e| StateError::io("write timeline", &self.path, e)),
            None => Ok(()),
        }
    }

    /// Compress the file for good (the job is over): see the module's doc. Streamed: memory
    /// does not grow with the file.
    pub fn seal(&mut self) -> Result<(), StateError> {
        self.flush()?;
        self.out = None;
        if read_header(&self.path)? != Some(*MAGIC) {
            return Ok(()); // missing, torn or already sealed
        }
        let io = |e| StateError::io("seal timeline", &self.path, e);
        let mut raw = File::open(&self.path).map_err(io)?;
        raw.seek(SeekFrom::Start(MAGIC.len() as u64)).map_err(io)?;
        write_atomic_with(&self.path, |w| {
            w.write_all(PACKED)?;
            let mut enc = lz4_flex::frame::FrameEncoder::new(w);
            std::io::copy(&mut raw, &mut enc)?;
            enc.finish().map_err(std::io::Error::other)?;
            Ok(())
        })
    }
}

/// Open `path` for appending raw records, unsealing it first when sealed.
fn open_raw(path: &Path) -> Result<BufWriter<File>, StateError> {
    let io = |what: &'static str| move |e| StateError::io(what, path, e);
    if read_header(path)? == Some(*PACKED) {
        let mut packed = File::open(path).map_err(io("open timeline"))?;
        packed
            .seek(SeekFrom::Start(PACKED.len() as u64))
            .map_err(io("read timeline"))?;
        write_atomic_with(path, |w| {
            w.write_all(MAGIC)?;
            std::io::copy(&mut lz4_flex::frame::FrameDecoder::new(packed), w)?;
            Ok(())
        })?;
    }
    let file = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(FILE_MODE)
        .open(path)
        .map_err(io("open timeline"))?;
    let len = file.metadata().map_err(io("stat timeline"))?.len();
    let mut out = BufWriter::with_capacity(64 << 10, file);
    if len < MAGIC.len() as u64 {
        out.get_ref().set_len(0).map_err(io("truncate timeline"))?;
        out.write_all(MAGIC).map_err(io("write timeline"))?;
    } else {
        let whole = (len - MAGIC.len() as u64) / SIZE as u64 * SIZE as u64;
        if whole + (MAGIC.len() as u64) < len {
            out.get_ref()
                .set_len(whole + MAGIC.len() as u64)
                .map_err(io("truncate timeline"))?;
        }
    }
    Ok(out)
}

/// The first 16 bytes of `path` (`None`: missing or shorter).
fn read_header(path: &Path) -> Result<Option<[u8; 16]>, StateError> {
    let mut head = [0u8; 16];
    match File::open(path) {
        Ok(mut f) => match f.read_exact(&mut head) {
            Ok(()) => Ok(Some(head)),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(None),
            Err(e) => Err(StateError::io("read timeline", path, e)),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StateError::io("read timeline", path, e)),
    }
}

/// The records' bytes of `path`, sealed or not (`None`: no such file).
fn read_body(path: &Path) -> Result<Option<Vec<u8>>, StateError> {
    let mut bytes = Vec::new();
    match File::open(path) {
        Ok(mut f) => f
            .read_to_end(&mut bytes)
            .map_err(|e| StateError::io("read timeline", path, e))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StateError::io("read timeline", path, e)),
    };
    let corrupt = |detail: &str| StateError::Corrupt {
        path: path.to_path_buf(),
        detail: detail.into(),
    };
    if let Some(packed) = bytes.strip_prefix(PACKED.as_slice()) {
        let mut body = Vec::new();
        return lz4_flex::frame::FrameDecoder::new(packed)
            .read_to_end(&mut body)
            .map(|_| Some(body))
            .map_err(|e| corrupt(&format!("its compressed records do not decompress: {e}")));
    }
    match bytes.strip_prefix(MAGIC.as_slice()) {
        Some(body) => Ok(Some(body.to_vec())),
        None if bytes.len() < MAGIC.len() => Ok(Some(Vec::new())),
        None => Err(corrupt("it does not start with the timeline header")),
    }
}

/// Every mark of `timeline.bin` (`None`: the job has none, e.g. made by an older runner).
pub fn read(path: &Path) -> Result<Option<Vec<Mark>>, StateError> {
    Ok(read_body(path)?.map(|body| body.chunks_exact(SIZE).filter_map(Mark::decode).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::records::{Attempt, ItemStatus, Ran};

    fn at(s: &str) -> Timestamp {
        s.into()
    }

    #[test]
    fn records_round_trip_as_marks() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("timeline.bin");
        let usage = Usage {
            peak_rss_kb: 5000,
            cpu_ms: 42,
        };
        let recs = [
            Record::RunStarted {
                run: 1,
                command: "run".into(),
                pid: 1,
                at: at("2024-01-01T00:00:00Z"),
            },
            Record::StepDone {
                phase: Phase::Reduce,
                index: 2,
                captured: None,
                shell: None,
                ran: Some(Ran::new(at("2024-01-01T00:00:01.5Z"), 7, None)),
            },
            Record::Attempt {
                idx: 9,
                attempt: Attempt {
                    attempt: 2,
                    started_at: at("2024-01-01T00:00:02Z"),
                    duration_ms: 30,
                    failure: Some(Failure::Exit { code: -3, step: 0 }),
                    stderr_tail: "x".into(),
                    usage: Some(usage),
                },
            },
            Record::ItemDone {
                idx: 4,
                status: ItemStatus::Succeeded,
                attempts: 1,
                duration_ms: 12,
                exit_code: None,
                captured: Default::default(),
                ran: Some(Ran::new(at("2024-01-01T00:00:03Z"), 12, Some(usage))),
            },
            Record::MapDone,
        ];
        let mut w = TimelineWriter::open(&path).unwrap();
        for r in &recs {
            w.note(r).unwrap();
        }
        w.flush().unwrap();
        drop(w);
        let marks = read(&path).unwrap().unwrap();
        let want: Vec<Mark> = recs.iter().filter_map(Mark::of).collect();
        assert_eq!(marks, want);
        assert_eq!(marks.len(), 4);
        assert!(matches!(
            marks[2],
            Mark::Attempt(AttemptMark {
                class: Some("exit"),
                exit_code: Some(-3),
                ..
            })
        ));
    }

    #[test]
    fn a_torn_last_record_is_cut_off_and_appending_goes_on() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("timeline.bin");
        let rec = Record::RunEnded {
            run: 1,
            state: crate::state::records::JobState::Completed,
            at: at("2024-01-01T00:00:00Z"),
        };
        let mut w = TimelineWriter::open(&path).unwrap();
        w.note(&rec).unwrap();
        w.flush().unwrap();
        drop(w);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&[6, 0, 0]).unwrap();
        assert_eq!(read(&path).unwrap().unwrap().len(), 1, "torn tail ignored");
        let mut w = TimelineWriter::open(&path).unwrap();
        w.note(&rec).unwrap();
        w.flush().unwrap();
        assert_eq!(read(&path).unwrap().unwrap().len(), 2);
        assert!(read(&d.path().join("none")).unwrap().is_none());
    }

    #[test]
    fn a_sealed_timeline_reads_the_same_and_unseals_to_append() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("timeline.bin");
        let rec = |run| Record::RunEnded {
            run,
            state: crate::state::records::JobState::Completed,
            at: at("2024-01-01T00:00:00Z"),
        };
        let mut w = TimelineWriter::open(&path).unwrap();
        for run in 0..1000 {
            w.note(&rec(run)).unwrap();
        }
        let raw_len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        w.seal().unwrap();
        let sealed = std::fs::read(&path).unwrap();
        assert!(sealed.starts_with(PACKED));
        assert!((sealed.len() as u64) * 3 < raw_len.max(1000 * SIZE as u64));
        assert_eq!(read(&path).unwrap().unwrap().len(), 1000);
        // The same writer, then a new one, append after unsealing it.
        w.note(&rec(1000)).unwrap();
        w.flush().unwrap();
        assert!(std::fs::read(&path).unwrap().starts_with(MAGIC));
        assert_eq!(read(&path).unwrap().unwrap().len(), 1001);
        w.seal().unwrap();
        drop(w);
        let mut w = TimelineWriter::open(&path).unwrap();
        w.note(&rec(1001)).unwrap();
        w.flush().unwrap();
        assert_eq!(read(&path).unwrap().unwrap().len(), 1002);
    }
}
