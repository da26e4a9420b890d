//! The append-only, checksummed journal.
//!
//! Each record is one line: `<crc32c of the JSON as 8 lowercase hex> <JSON>\n`. Appending costs
//! O(1) per record, and a crash can only damage the last line (a *torn tail*), which
//! [`replay`] tolerates and reports so that [`truncate_torn_tail`] can cut it off before the
//! journal is reopened for appending.
//!
//! [`JournalWriter`] does group commit on a background thread: [`JournalWriter::append`]
//! encodes the record on the caller's thread, queues the bytes and returns; the thread takes
//! everything queued, writes it with one `write` call, runs one `fdatasync` for the whole batch
//! and then wakes the callers waiting in [`JournalWriter::flush`].

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::marker::PhantomData;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::atomic::{FILE_MODE, fsync_dir, parent_dir};
use super::error::StateError;
use super::jsonl::{self, Framing, ScanError};

pub use super::jsonl::ScanEnd as ReplayEnd;
pub use super::jsonl::truncate_torn_tail;

/// Encode one record as a complete journal line (with its trailing newline).
pub fn encode_line<T: Serialize>(path: &Path, rec: &T) -> Result<Vec<u8>, StateError> {
    Framing::Checksummed.encode(path, rec)
}

// ---------------------------------------------------------------------------------------------
// Writer

struct Queue {
    /// Encoded lines waiting for the writer thread.
    buf: Vec<u8>,
    /// Records accepted by `append` so far.
    appended: u64,
    /// File offset just after the last accepted record.
    end: u64,
    /// Records known to be on disk (written and fdatasynced).
    durable: u64,
    /// File offset just after the last durable record.
    durable_len: u64,
    /// The first write/fsync error; sticky: once set, nothing more is written.
    error: Option<String>,
    /// `close`/`drop` asked the thread to finish.
    closing: bool,
    /// The thread has exited (normally or not).
    dead: bool,
    /// The thread is parked waiting for work (so `append` must wake it).
    idle: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    /// Signalled when work is queued or closing is requested.
    work: Condvar,
    /// Signalled when `durable` advances or the thread fails/exits.
    done: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Marks the queue dead when the writer thread exits, even by unwinding.
struct DeathGuard(Arc<Shared>);

impl Drop for DeathGuard {
    fn drop(&mut self) {
        let mut q = self.0.lock();
        q.dead = true;
        q.idle = false;
        drop(q);
        self.0.done.notify_all();
    }
}

/// Appends records of type `T` to a journal file with group commit. `Send + Sync`: share it in
/// an `Arc`. Dropping it flushes (errors at drop are lost; call [`JournalWriter::close`] to see
/// them).
pub struct JournalWriter<T> {
    path: PathBuf,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    _records: PhantomData<fn(T)>,
}

impl<T> std::fmt::Debug for JournalWriter<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JournalWriter")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl<T: Serialize> JournalWriter<T> {
    /// Open `path` for appending (created with mode 0600 if missing) and start the writer
    /// thread. Fails with [`StateError::JournalTornTail`] if the file does not end with a
    /// complete line: replay it and call [`truncate_torn_tail`] first.
    pub fn open(path: &Path) -> Result<Self, StateError> {
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(FILE_MODE)
            .open(path)
            .map_err(|e| StateError::io("open journal", path, e))?;
        let len = file
            .metadata()
            .map_err(|e| StateError::io("stat journal", path, e))?
            .len();
        if len > 0 {
            let mut last = [0u8; 1];
            file.read_exact_at(&mut last, len - 1)
                .map_err(|e| StateError::io("read journal", path, e))?;
            if last[0] != b'\n' {
                return Err(StateError::JournalTornTail {
                    path: path.to_path_buf(),
                });
            }
        } else {
            // The file may be new: make its directory entry durable.
            fsync_dir(&parent_dir(path))?;
        }
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                buf: Vec::new(),
                appended: 0,
                end: len,
                durable: 0,
                durable_len: len,
                error: None,
                closing: false,
                dead: false,
                idle: false,
            }),
            work: Condvar::new(),
            done: Condvar::new(),
        });
        let thread_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("journal-writer".into())
            .spawn(move || writer_thread(file, thread_shared))
            .map_err(|e| StateError::io("start the writer thread for", path, e))?;
        Ok(JournalWriter {
            path: path.to_path_buf(),
            shared,
            thread: Some(thread),
            _records: PhantomData,
        })
    }

    /// Queue `rec` and return at once; it becomes durable at the next group commit (see
    /// [`JournalWriter::flush`]). Returns the file offset just after this record, which is
    /// where a replay that should start after it must begin. Fails if an earlier write failed.
    pub fn append(&self, rec: T) -> Result<u64, StateError> {
        let line = encode_line(&self.path, &rec)?;
        let mut q = self.shared.lock();
        self.check(&q)?;
        q.buf.extend_from_slice(&line);
        q.appended += 1;
        q.end += line.len() as u64;
        let end = q.end;
        let wake = q.idle;
        if wake {
            q.idle = false;
        }
        drop(q);
        if wake {
            self.shared.work.notify_one();
        }
        Ok(end)
    }

    /// Append `rec` and wait until it (and everything before it) is on disk.
    pub fn append_durable(&self, rec: T) -> Result<u64, StateError> {
        let end = self.append(rec)?;
        self.flush()?;
        Ok(end)
    }
}

impl<T> JournalWriter<T> {
    /// The journal's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many records were accepted by [`Self::append`] so far.
    pub fn appended(&self) -> u64 {
        self.shared.lock().appended
    }

    /// How many records are known to be on disk (written and fdatasynced), without waiting.
    pub fn durable(&self) -> u64 {
        self.shared.lock().durable
    }

    /// File offset just after the last record known to be durable.
    pub fn durable_len(&self) -> u64 {
        self.shared.lock().durable_len
    }

    fn error(&self, detail: &str) -> StateError {
        StateError::JournalWrite {
            path: self.path.clone(),
            detail: detail.to_string(),
        }
    }

    fn check(&self, q: &Queue) -> Result<(), StateError> {
        if let Some(e) = &q.error {
            return Err(self.error(e));
        }
        if q.closing || q.dead {
            return Err(self.error("the journal writer has stopped"));
        }
        Ok(())
    }

    /// Block until every record appended before this call is durable. Returns the error of
    /// the writer thread if a write or fsync failed.
    pub fn flush(&self) -> Result<(), StateError> {
        let mut q = self.shared.lock();
        let target = q.appended;
        while q.durable < target && q.error.is_none() && !q.dead {
            q = self
                .shared
                .done
                .wait(q)
                .unwrap_or_else(PoisonError::into_inner);
        }
        if let Some(e) = &q.error {
            return Err(self.error(e));
        }
        if q.durable < target {
            return Err(self.error("the journal writer stopped before the records were written"));
        }
        Ok(())
    }

    /// Flush, stop the writer thread and report any error.
    pub fn close(mut self) -> Result<(), StateError> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<(), StateError> {
        let Some(thread) = self.thread.take() else {
            return Ok(());
        };
        {
            let mut q = self.shared.lock();
            q.closing = true;
        }
        self.shared.work.notify_one();
        let panicked = thread.join().is_err();
        let q = self.shared.lock();
        if let Some(e) = &q.error {
            return Err(self.error(e));
        }
        if panicked || q.durable < q.appended {
            return Err(self.error("the journal writer stopped before the records were written"));
        }
        Ok(())
    }
}

impl<T> Drop for JournalWriter<T> {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

fn writer_thread(mut file: File, shared: Arc<Shared>) {
    let _guard = DeathGuard(Arc::clone(&shared));
    let mut batch: Vec<u8> = Vec::new();
    loop {
        let (target, target_len, good_len) = {
            let mut q = shared.lock();
            while q.buf.is_empty() && !q.closing && q.error.is_none() {
                q.idle = true;
                q = shared.work.wait(q).unwrap_or_else(PoisonError::into_inner);
            }
            q.idle = false;
            if q.error.is_some() || q.buf.is_empty() {
                return; // failed earlier, or closing with nothing left to write
            }
            std::mem::swap(&mut q.buf, &mut batch);
            (q.appended, q.end, q.durable_len)
        };
        let result = file.write_all(&batch).and_then(|()| file.sync_data());
        batch.clear();
        if batch.capacity() > 16 << 20 {
            batch.shrink_to(1 << 20);
        }
        let mut q = shared.lock();
        match result {
            Ok(()) => {
                q.durable = target;
                q.durable_len = target_len;
            }
            Err(e) => {
                // Best effort: cut a partial write so the file ends on a record boundary.
                let _ = file.set_len(good_len).and_then(|()| file.sync_data());
                q.error = Some(format!("write or fsync failed: {e}"));
            }
        }
        drop(q);
        shared.done.notify_all();
    }
}

// ---------------------------------------------------------------------------------------------
// Replay

/// Stream the records of the journal at `path`, starting at byte `from_offset` (0, or a value
/// returned by [`JournalWriter::append`] / [`ReplayEnd::valid_len`]), calling `f(offset, record)`
/// for each. A missing file has no records.
///
/// A damaged or incomplete last line, or several damaged lines at the very end, is a torn tail
/// (reported, not an error). A damaged line followed by a valid one is
/// [`StateError::JournalCorrupt`].
pub fn replay<T: DeserializeOwned>(
    path: &Path,
    from_offset: u64,
    f: impl FnMut(u64, T),
) -> Result<ReplayEnd, StateError> {
    match jsonl::scan(path, from_offset, Framing::Checksummed, f) {
        Ok(end) => Ok(end),
        Err(ScanError::State(e)) => Err(e),
        Err(ScanError::Corrupt(c)) => Err(StateError::JournalCorrupt {
            path: path.to_path_buf(),
            offset: c.offset,
            line: c.line,
            detail: c.detail,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::records::{Attempt, Failure, ItemStatus, Record};
    use serde::Deserialize;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    #[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
    struct Rec {
        thread: u32,
        seq: u32,
        text: String,
    }

    fn rec(thread: u32, seq: u32) -> Rec {
        Rec {
            thread,
            seq,
            text: format!("t{thread} s{seq} \"quoted\"\nnewline"),
        }
    }

    fn read_all<T: DeserializeOwned>(path: &Path) -> (Vec<(u64, T)>, ReplayEnd) {
        let mut out = Vec::new();
        let end = replay(path, 0, |off, r| out.push((off, r))).unwrap();
        (out, end)
    }

    fn sample_records() -> Vec<Record> {
        vec![
            Record::RunStarted {
                run: 1,
                command: "run".into(),
                pid: 42,
                at: "2024-01-01T00:00:00Z".into(),
            },
            Record::MapStarted {
                total: 3,
                items_hash: "h".into(),
            },
            Record::Attempt {
                idx: 0,
                attempt: Attempt {
                    attempt: 1,
                    started_at: "2024-01-01T00:00:01Z".into(),
                    duration_ms: 12,
                    failure: Some(Failure::Exit { code: 3, step: 0 }),
                    stderr_tail: "boom\n".into(),
                    usage: None,
                },
            },
            Record::ItemDone {
                idx: 0,
                status: ItemStatus::Dlq,
                attempts: 1,
                duration_ms: 12,
                exit_code: Some(3),
                captured: Default::default(),
                ran: None,
            },
            Record::MapDone,
        ]
    }

    fn write_sample(path: &Path) -> Vec<u8> {
        let w = JournalWriter::<Record>::open(path).unwrap();
        for r in sample_records() {
            w.append(r).unwrap();
        }
        w.close().unwrap();
        fs::read(path).unwrap()
    }

    #[test]
    fn line_format() {
        let line = encode_line(Path::new("j"), &serde_json::json!({"a": 1})).unwrap();
        let text = String::from_utf8(line).unwrap();
        assert_eq!(
            text,
            format!("{:08x} {{\"a\":1}}\n", crc32c::crc32c(b"{\"a\":1}"))
        );
    }

    #[test]
    fn round_trip_offsets_and_mode() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("journal.log");
        let w = JournalWriter::<Record>::open(&p).unwrap();
        let mut ends = Vec::new();
        for r in sample_records() {
            ends.push(w.append(r).unwrap());
        }
        w.flush().unwrap();
        assert_eq!(w.durable_len(), *ends.last().unwrap());
        drop(w);
        let mode = fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let (got, end) = read_all::<Record>(&p);
        assert_eq!(
            got.iter().map(|(_, r)| r.clone()).collect::<Vec<_>>(),
            sample_records()
        );
        // Each record's offset is the previous record's end.
        let mut starts = vec![0];
        starts.extend_from_slice(&ends[..ends.len() - 1]);
        assert_eq!(got.iter().map(|(o, _)| *o).collect::<Vec<_>>(), starts);
        assert_eq!(end.valid_len, fs::metadata(&p).unwrap().len());
        assert_eq!(end.records, 5);
        assert_eq!(end.torn_tail, None);

        // Reopen and append more: offsets continue from the file length.
        let w = JournalWriter::<Record>::open(&p).unwrap();
        let e = w.append_durable(Record::MapDone).unwrap();
        assert_eq!(e, fs::metadata(&p).unwrap().len());
        drop(w);
        assert_eq!(read_all::<Record>(&p).1.records, 6);
    }

    #[test]
    fn missing_file_has_no_records() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("none.log");
        let end = replay::<Record>(&p, 0, |_, _| panic!("no records")).unwrap();
        assert_eq!(
            end,
            ReplayEnd {
                valid_len: 0,
                records: 0,
                torn_tail: None
            }
        );
        assert!(matches!(
            replay::<Record>(&p, 10, |_, _| {}),
            Err(StateError::BadOffset { .. })
        ));
        truncate_torn_tail(&p, 0).unwrap();
    }

    #[test]
    fn writer_is_send_and_sync() {
        fn assert_send_sync<X: Send + Sync>() {}
        assert_send_sync::<JournalWriter<Record>>();
        assert_send_sync::<Arc<JournalWriter<Rec>>>();
    }

    #[test]
    fn group_commit_from_many_threads() {
        const THREADS: u32 = 8;
        const PER: u32 = 1000;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("journal.log");
        let w = Arc::new(JournalWriter::<Rec>::open(&p).unwrap());
        std::thread::scope(|s| {
            for t in 0..THREADS {
                let w = Arc::clone(&w);
                s.spawn(move || {
                    for i in 0..PER {
                        w.append(rec(t, i)).unwrap();
                        if i % 250 == 0 {
                            w.flush().unwrap();
                        }
                    }
                });
            }
        });
        w.flush().unwrap();
        let (got, end) = read_all::<Rec>(&p);
        assert_eq!(end.records, u64::from(THREADS * PER));
        let mut next = vec![0u32; THREADS as usize];
        for (_, r) in got {
            assert_eq!(r, rec(r.thread, next[r.thread as usize]));
            next[r.thread as usize] += 1;
        }
        assert!(next.iter().all(|&n| n == PER));
    }

    #[test]
    fn flush_waits_for_durability_and_drop_flushes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("journal.log");
        {
            let w = JournalWriter::<Rec>::open(&p).unwrap();
            for i in 0..100 {
                w.append(rec(0, i)).unwrap();
            }
            w.flush().unwrap();
            assert_eq!(read_all::<Rec>(&p).1.records, 100);
            for i in 100..200 {
                w.append(rec(0, i)).unwrap();
            }
        } // drop flushes
        assert_eq!(read_all::<Rec>(&p).1.records, 200);
    }

    #[test]
    fn write_errors_surface_on_next_call() {
        // /dev/full fails every write with ENOSPC.
        let p = Path::new("/dev/full");
        if !p.exists() {
            return;
        }
        let w = JournalWriter::<Rec>::open(p).unwrap();
        w.append(rec(0, 0)).unwrap();
        let e = w.flush().unwrap_err();
        assert!(matches!(e, StateError::JournalWrite { .. }), "{e}");
        assert!(e.to_string().contains("/dev/full"), "{e}");
        assert!(w.append(rec(0, 1)).is_err());
        assert!(w.flush().is_err());
        assert!(w.close().is_err());
    }

    #[test]
    fn torn_tail_at_every_byte_offset() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("journal.log");
        let full = write_sample(&p);
        let cut_path = dir.path().join("cut.log");
        for cut in 0..=full.len() {
            let prefix = &full[..cut];
            fs::write(&cut_path, prefix).unwrap();
            let (got, end) = read_all::<Record>(&cut_path);
            let complete = prefix.iter().filter(|&&b| b == b'\n').count();
            let valid_len = prefix
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |i| i + 1);
            assert_eq!(got.len(), complete, "cut at {cut}");
            assert_eq!(
                got.into_iter().map(|(_, r)| r).collect::<Vec<_>>(),
                sample_records()[..complete].to_vec(),
                "cut at {cut}"
            );
            assert_eq!(end.valid_len, valid_len as u64, "cut at {cut}");
            assert_eq!(
                end.torn_tail,
                (cut > valid_len).then_some((cut - valid_len) as u64),
                "cut at {cut}"
            );
            // Repair and append: the journal is whole again.
            truncate_torn_tail(&cut_path, end.valid_len).unwrap();
            let w = JournalWriter::<Record>::open(&cut_path).unwrap();
            w.append_durable(Record::MapDone).unwrap();
            drop(w);
            let (again, end2) = read_all::<Record>(&cut_path);
            assert_eq!(again.len(), complete + 1, "cut at {cut}");
            assert_eq!(end2.torn_tail, None);
        }
    }

    #[test]
    fn open_refuses_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("journal.log");
        let full = write_sample(&p);
        fs::write(&p, &full[..full.len() - 3]).unwrap();
        let e = JournalWriter::<Record>::open(&p).unwrap_err();
        assert!(matches!(e, StateError::JournalTornTail { .. }), "{e}");
    }

    /// Byte range of line `n` (0-based, including its newline).
    fn line_range(bytes: &[u8], n: usize) -> std::ops::Range<usize> {
        let mut start = 0;
        for _ in 0..n {
            start += bytes[start..].iter().position(|&b| b == b'\n').unwrap() + 1;
        }
        let end = start + bytes[start..].iter().position(|&b| b == b'\n').unwrap() + 1;
        start..end
    }

    #[test]
    fn flipped_byte_in_middle_record_is_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("journal.log");
        let full = write_sample(&p);
        let mid = line_range(&full, 2);
        let bad_path = dir.path().join("bad.log");
        for i in mid.clone() {
            for mask in [0x01u8, 0x20, 0x80] {
                let mut bad = full.clone();
                bad[i] ^= mask;
                fs::write(&bad_path, &bad).unwrap();
                let mut seen = 0;
                match replay::<Record>(&bad_path, 0, |_, _| seen += 1) {
                    Err(StateError::JournalCorrupt { offset, line, .. }) => {
                        assert_eq!(offset, mid.start as u64, "flip at {i}");
                        assert_eq!(line, 3, "flip at {i}");
                        assert_eq!(seen, 2, "flip at {i}");
                    }
                    other => panic!("flip {mask:#x} at {i}: {other:?}"),
                }
            }
        }
        // The message is useful.
        let mut bad = full.clone();
        bad[mid.start + 20] ^= 1;
        fs::write(&bad_path, &bad).unwrap();
        let m = replay::<Record>(&bad_path, 0, |_, _| {})
            .unwrap_err()
            .to_string();
        assert!(m.contains("bad.log") && m.contains("line 3"), "{m}");
    }

    #[test]
    fn flipped_byte_in_last_record_is_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("journal.log");
        let full = write_sample(&p);
        let last = line_range(&full, 4);
        let bad_path = dir.path().join("bad.log");
        for i in last.clone() {
            let mut bad = full.clone();
            bad[i] ^= 0x01;
            fs::write(&bad_path, &bad).unwrap();
            let (got, end) = read_all::<Record>(&bad_path);
            assert_eq!(got.len(), 4, "flip at {i}");
            assert_eq!(end.valid_len, last.start as u64);
            assert_eq!(end.torn_tail, Some(last.len() as u64));
        }
    }

    #[test]
    fn several_bad_lines_at_the_end_are_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("journal.log");
        let mut full = write_sample(&p);
        let good = full.len();
        full.extend_from_slice(b"garbage\n\0\0\0\0\n\0\0\0");
        fs::write(&p, &full).unwrap();
        let (got, end) = read_all::<Record>(&p);
        assert_eq!(got.len(), 5);
        assert_eq!(end.valid_len, good as u64);
        assert_eq!(end.torn_tail, Some((full.len() - good) as u64));
    }

    #[test]
    fn unknown_record_mid_file_is_reported_with_reason() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("journal.log");
        let w = JournalWriter::<serde_json::Value>::open(&p).unwrap();
        w.append(serde_json::json!({"t": "map_done"})).unwrap();
        w.append(serde_json::json!({"t": "from_the_future"}))
            .unwrap();
        w.append(serde_json::json!({"t": "map_done"})).unwrap();
        w.close().unwrap();
        let e = replay::<Record>(&p, 0, |_, _| {}).unwrap_err();
        match &e {
            StateError::JournalCorrupt { line, detail, .. } => {
                assert_eq!(*line, 2);
                assert!(detail.contains("not understood"), "{detail}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn replay_from_offset() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("journal.log");
        let full = write_sample(&p);
        let third = line_range(&full, 2).start as u64;
        let mut got = Vec::new();
        let end = replay::<Record>(&p, third, |o, r| got.push((o, r))).unwrap();
        assert_eq!(end.records, 3);
        assert_eq!(got[0].0, third);
        assert_eq!(
            got.into_iter().map(|(_, r)| r).collect::<Vec<_>>(),
            sample_records()[2..].to_vec()
        );
        // At the end: nothing, no error.
        let end = replay::<Record>(&p, full.len() as u64, |_, _| panic!()).unwrap();
        assert_eq!(end.records, 0);
        assert_eq!(end.valid_len, full.len() as u64);
        // Not a record boundary, or past the end: clear errors.
        assert!(matches!(
            replay::<Record>(&p, third + 1, |_, _| {}),
            Err(StateError::BadOffset { .. })
        ));
        assert!(matches!(
            replay::<Record>(&p, full.len() as u64 + 1, |_, _| {}),
            Err(StateError::BadOffset { .. })
        ));
        // Corruption after the offset reports the absolute line number.
        let mut bad = full.clone();
        bad[line_range(&full, 3).start + 12] ^= 1;
        fs::write(&p, &bad).unwrap();
        match replay::<Record>(&p, third, |_, _| {}) {
            Err(StateError::JournalCorrupt { line, .. }) => assert_eq!(line, 4),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn truncate_refuses_to_extend() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("journal.log");
        let full = write_sample(&p);
        assert!(truncate_torn_tail(&p, full.len() as u64 + 5).is_err());
        truncate_torn_tail(&p, full.len() as u64).unwrap();
        assert_eq!(fs::read(&p).unwrap(), full);
    }

    /// Throughput check: `cargo test --lib state::journal -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn replay_speed() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("journal.log");
        let n = 1_000_000u64;
        let rec = Record::ItemDone {
            idx: 123_456,
            status: ItemStatus::Succeeded,
            attempts: 1,
            duration_ms: 3,
            exit_code: None,
            captured: Default::default(),
            ran: None,
        };
        let t = std::time::Instant::now();
        let w = JournalWriter::<Record>::open(&p).unwrap();
        for _ in 0..n {
            w.append(rec.clone()).unwrap();
        }
        w.close().unwrap();
        let write = t.elapsed();
        let t = std::time::Instant::now();
        let mut count = 0u64;
        let end = replay::<Record>(&p, 0, |_, _| count += 1).unwrap();
        let read = t.elapsed();
        assert_eq!(end.records, n);
        eprintln!(
            "append {n}: {write:?} ({:.0}/s); replay: {read:?} ({:.0}/s), {} bytes",
            n as f64 / write.as_secs_f64(),
            n as f64 / read.as_secs_f64(),
            end.valid_len
        );
    }
}
