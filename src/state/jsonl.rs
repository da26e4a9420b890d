//! The one durable JSONL primitive of the state directory: one JSON value per line, appended
//! with fsync, read back tolerating a torn tail. The journal, the DLQ and Slurm's submission
//! log are all such files; they differ only in their [`Framing`].
//!
//! Crash semantics, the same for every such file: a crash can only damage the end of the
//! file (an incomplete or garbled last line, or several garbled lines at the very end: a
//! *torn tail*), which readers skip and report; a damaged line *followed by a valid one* is
//! corruption, an error naming the line. [`append_durable`] cuts a torn tail before it
//! appends, so a new line never follows garbage.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::atomic::{FILE_MODE, fsync_dir, is_lower_hex, parent_dir, write_atomic};
use super::error::StateError;

/// How each line is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// The bare JSON value (readable with `jq`).
    Plain,
    /// `<crc32c of the JSON as 8 lowercase hex> <JSON>`: damage is detected, not guessed.
    Checksummed,
}

/// Length of the `<8 hex> ` prefix of a checksummed line.
const PREFIX_LEN: usize = 9;

impl Framing {
    /// Encode `value` as one complete line (with its newline).
    pub fn encode<T: Serialize>(self, path: &Path, value: &T) -> Result<Vec<u8>, StateError> {
        let mut line = Vec::with_capacity(128);
        if self == Framing::Checksummed {
            line.extend_from_slice(b"00000000 ");
        }
        serde_json::to_writer(&mut line, value).map_err(|source| StateError::Encode {
            path: path.to_path_buf(),
            source,
        })?;
        if self == Framing::Checksummed {
            let crc = crc32c::crc32c(&line[PREFIX_LEN..]);
            const HEX: &[u8; 16] = b"0123456789abcdef";
            for (i, slot) in line[..8].iter_mut().enumerate() {
                *slot = HEX[((crc >> (28 - 4 * i)) & 0xf) as usize];
            }
        }
        // Compact JSON never contains a raw newline, so the line cannot be split.
        line.push(b'\n');
        Ok(line)
    }

    /// The JSON of a line (without its newline) whose framing is intact.
    pub fn check(self, line: &[u8]) -> Result<&[u8], String> {
        match self {
            Framing::Plain => Ok(line),
            Framing::Checksummed => check_checksummed(line),
        }
    }

    /// Decode a line (without its newline).
    pub fn decode<T: DeserializeOwned>(self, line: &[u8]) -> Result<T, String> {
        let json = self.check(line)?;
        serde_json::from_slice(json).map_err(|e| match self {
            Framing::Checksummed => {
                format!("checksum is right but the record is not understood: {e}")
            }
            Framing::Plain => e.to_string(),
        })
    }
}

fn check_checksummed(line: &[u8]) -> Result<&[u8], String> {
    if line.len() < PREFIX_LEN + 1 || line[8] != b' ' || !line[..8].iter().all(|&b| is_lower_hex(b))
    {
        return Err("not a `<crc32c> <json>` line".into());
    }
    let mut want = 0u32;
    for &b in &line[..8] {
        let v = if b.is_ascii_digit() {
            b - b'0'
        } else {
            b - b'a' + 10
        };
        want = (want << 4) | u32::from(v);
    }
    let json = &line[PREFIX_LEN..];
    let got = crc32c::crc32c(json);
    if got != want {
        return Err(format!(
            "checksum mismatch: line says {want:08x}, data has {got:08x}"
        ));
    }
    Ok(json)
}

/// How a scan ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanEnd {
    /// File offset just after the last valid line (`from` if there were none).
    pub valid_len: u64,
    /// Values passed to the callback.
    pub records: u64,
    /// Bytes of an incomplete or damaged tail that were ignored.
    pub torn_tail: Option<u64>,
}

/// A damaged line followed by a valid one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Corruption {
    /// Byte offset of the damaged line.
    pub offset: u64,
    /// Its line number, counted from the start of the file.
    pub line: u64,
    pub detail: String,
}

/// Why a scan failed.
#[derive(Debug)]
pub enum ScanError {
    State(StateError),
    Corrupt(Corruption),
}

impl From<StateError> for ScanError {
    fn from(e: StateError) -> Self {
        ScanError::State(e)
    }
}

/// Stream the values of the file at `path` from byte `from` (0, or a line boundary), calling
/// `f(offset, value)` for each. A missing file has no values (only when `from` is 0; else
/// [`StateError::BadOffset`]). Blank lines are skipped.
pub fn scan<T: DeserializeOwned>(
    path: &Path,
    from: u64,
    framing: Framing,
    mut f: impl FnMut(u64, T),
) -> Result<ScanEnd, ScanError> {
    let bad_offset = |detail: String| StateError::BadOffset {
        path: path.to_path_buf(),
        offset: from,
        detail,
    };
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if from == 0 {
                return Ok(ScanEnd {
                    valid_len: 0,
                    records: 0,
                    torn_tail: None,
                });
            }
            return Err(bad_offset("the file does not exist".into()).into());
        }
        Err(e) => return Err(StateError::io("open", path, e).into()),
    };
    if from > 0 {
        let len = file
            .metadata()
            .map_err(|e| StateError::io("stat", path, e))?
            .len();
        if from > len {
            return Err(bad_offset(format!("the file is only {len} bytes long")).into());
        }
        let mut prev = [0u8; 1];
        file.read_exact_at(&mut prev, from - 1)
            .map_err(|e| StateError::io("read", path, e))?;
        if prev[0] != b'\n' {
            return Err(bad_offset("that is not the start of a line".into()).into());
        }
    }
    let mut reader = BufReader::with_capacity(1 << 20, file);
    reader
        .seek(SeekFrom::Start(from))
        .map_err(|e| StateError::io("seek in", path, e))?;

    let mut line = Vec::with_capacity(4096);
    let mut offset = from;
    let mut valid_len = from;
    let mut records = 0u64;
    let mut line_no = 0u64; // relative to `from`
    let mut first_bad: Option<(u64, u64, String)> = None;
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .map_err(|e| StateError::io("read", path, e))?;
        if n == 0 {
            break;
        }
        line_no += 1;
        let line_offset = offset;
        offset += n as u64;
        let Some(body) = line.strip_suffix(b"\n") else {
            break; // an incomplete last line: torn tail
        };
        if body.iter().all(u8::is_ascii_whitespace) {
            if first_bad.is_none() {
                valid_len = offset;
            }
            continue;
        }
        match &first_bad {
            None => match framing.decode::<T>(body) {
                Ok(value) => {
                    f(line_offset, value);
                    records += 1;
                    valid_len = offset;
                }
                Err(detail) => first_bad = Some((line_offset, line_no, detail)),
            },
            Some((bad_offset, bad_line, detail)) => {
                let intact = match framing {
                    Framing::Checksummed => framing.check(body).is_ok(),
                    Framing::Plain => serde_json::from_slice::<T>(body).is_ok(),
                };
                if intact {
                    return Err(ScanError::Corrupt(Corruption {
                        offset: *bad_offset,
                        line: absolute_line(path, from, *bad_line)?,
                        detail: detail.clone(),
                    }));
                }
            }
        }
    }
    Ok(ScanEnd {
        valid_len,
        records,
        torn_tail: (offset > valid_len).then_some(offset - valid_len),
    })
}

/// Turn a line number counted from `from` into one counted from the start of the file
/// (only on the error path, so the cost does not matter).
fn absolute_line(path: &Path, from: u64, relative: u64) -> Result<u64, StateError> {
    if from == 0 {
        return Ok(relative);
    }
    let file = File::open(path).map_err(|e| StateError::io("open", path, e))?;
    let mut reader = BufReader::new(file).take(from);
    let mut buf = [0u8; 64 * 1024];
    let mut newlines = 0u64;
    loop {
        let n = reader
            .read(&mut buf)
            .map_err(|e| StateError::io("read", path, e))?;
        if n == 0 {
            break;
        }
        newlines += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
    }
    Ok(newlines + relative)
}

/// Read every value of a plain or checksummed JSONL file; a torn tail is skipped, and
/// `corrupt` turns a damaged line followed by valid ones into the caller's error.
pub fn read_all<T: DeserializeOwned>(
    path: &Path,
    framing: Framing,
    corrupt: impl FnOnce(Corruption) -> StateError,
) -> Result<Vec<T>, StateError> {
    let mut out = Vec::new();
    match scan(path, 0, framing, |_, v| out.push(v)) {
        Ok(_) => Ok(out),
        Err(ScanError::State(e)) => Err(e),
        Err(ScanError::Corrupt(c)) => Err(corrupt(c)),
    }
}

/// Append `value` as one line and fsync it (the file is created with mode 0600, and its
/// directory fsynced when it is new). A torn tail left by a crash is cut off first.
pub fn append_durable<T: Serialize>(
    path: &Path,
    framing: Framing,
    value: &T,
) -> Result<(), StateError> {
    let line = framing.encode(path, value)?;
    let existed = path.exists();
    let mut file = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(FILE_MODE)
        .open(path)
        .map_err(|e| StateError::io("open", path, e))?;
    let len = file
        .metadata()
        .map_err(|e| StateError::io("stat", path, e))?
        .len();
    if len > 0 {
        let mut last = [0u8; 1];
        file.read_exact_at(&mut last, len - 1)
            .map_err(|e| StateError::io("read", path, e))?;
        if last[0] != b'\n' {
            let keep = last_newline_end(&file, path, len)?;
            file.set_len(keep)
                .map_err(|e| StateError::io("truncate", path, e))?;
        }
    }
    file.write_all(&line)
        .map_err(|e| StateError::io("append to", path, e))?;
    file.sync_data()
        .map_err(|e| StateError::io("fsync", path, e))?;
    if !existed {
        fsync_dir(&parent_dir(path))?;
    }
    Ok(())
}

/// The offset just after the last newline before `len` (0 when there is none).
fn last_newline_end(file: &File, path: &Path, len: u64) -> Result<u64, StateError> {
    let mut end = len;
    let mut buf = [0u8; 4096];
    while end > 0 {
        let start = end.saturating_sub(buf.len() as u64);
        let chunk = &mut buf[..(end - start) as usize];
        file.read_exact_at(chunk, start)
            .map_err(|e| StateError::io("read", path, e))?;
        if let Some(i) = chunk.iter().rposition(|&b| b == b'\n') {
            return Ok(start + i as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

/// Replace the whole file with `values`, atomically.
pub fn rewrite<T: Serialize>(
    path: &Path,
    framing: Framing,
    values: &[T],
) -> Result<(), StateError> {
    let mut bytes = Vec::new();
    for v in values {
        bytes.extend_from_slice(&framing.encode(path, v)?);
    }
    write_atomic(path, &bytes)
}

/// Cut the file at `path` to `valid_len` bytes (a [`ScanEnd::valid_len`]) and fsync it, so
/// lines appended afterwards never follow garbage. Refuses to make the file longer.
pub fn truncate_torn_tail(path: &Path, valid_len: u64) -> Result<(), StateError> {
    let file = match OpenOptions::new().write(true).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound && valid_len == 0 => return Ok(()),
        Err(e) => return Err(StateError::io("open", path, e)),
    };
    let len = file
        .metadata()
        .map_err(|e| StateError::io("stat", path, e))?
        .len();
    if len < valid_len {
        return Err(StateError::BadOffset {
            path: path.to_path_buf(),
            offset: valid_len,
            detail: format!("cannot cut the torn tail there, the file is only {len} bytes long"),
        });
    }
    if len == valid_len {
        return Ok(());
    }
    file.set_len(valid_len)
        .map_err(|e| StateError::io("truncate", path, e))?;
    file.sync_all()
        .map_err(|e| StateError::io("fsync", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
    struct V {
        n: u32,
        s: String,
    }

    fn v(n: u32) -> V {
        V {
            n,
            s: format!("value \"{n}\"\nline"),
        }
    }

    fn read(path: &Path, framing: Framing) -> Result<Vec<V>, StateError> {
        read_all(path, framing, |c| StateError::Corrupt {
            path: path.to_path_buf(),
            detail: format!("line {}: {}", c.line, c.detail),
        })
    }

    #[test]
    fn both_framings_round_trip_and_files_are_private() {
        for framing in [Framing::Plain, Framing::Checksummed] {
            let d = tempfile::tempdir().unwrap();
            let p = d.path().join("x.jsonl");
            for n in 0..3 {
                append_durable(&p, framing, &v(n)).unwrap();
            }
            assert_eq!(read(&p, framing).unwrap(), vec![v(0), v(1), v(2)]);
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
    }

    #[test]
    fn plain_lines_are_bare_json() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.jsonl");
        append_durable(&p, Framing::Plain, &v(7)).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.starts_with("{\"n\":7"), "{text}");
    }

    #[test]
    fn a_torn_tail_is_skipped_then_cut_before_the_next_append() {
        for framing in [Framing::Plain, Framing::Checksummed] {
            let d = tempfile::tempdir().unwrap();
            let p = d.path().join("x.jsonl");
            append_durable(&p, framing, &v(1)).unwrap();
            let full = framing.encode(&p, &v(2)).unwrap();
            for cut in 1..full.len() {
                let keep = std::fs::read(&p).unwrap();
                let mut bytes = keep.clone();
                bytes.extend_from_slice(&full[..cut]);
                std::fs::write(&p, &bytes).unwrap();
                assert_eq!(read(&p, framing).unwrap(), vec![v(1)], "cut {cut}");
                append_durable(&p, framing, &v(3)).unwrap();
                assert_eq!(read(&p, framing).unwrap(), vec![v(1), v(3)], "cut {cut}");
                std::fs::write(&p, &keep).unwrap();
            }
        }
    }

    #[test]
    fn a_damaged_line_followed_by_a_valid_one_is_corruption() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.jsonl");
        for n in 0..3 {
            append_durable(&p, Framing::Checksummed, &v(n)).unwrap();
        }
        let mut bytes = std::fs::read(&p).unwrap();
        let second = bytes.iter().position(|&b| b == b'\n').unwrap() + 12;
        bytes[second] ^= 1;
        std::fs::write(&p, &bytes).unwrap();
        let err = read(&p, Framing::Checksummed).unwrap_err().to_string();
        assert!(err.contains("line 2"), "{err}");
    }

    #[test]
    fn scan_from_an_offset() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.jsonl");
        let mut offsets = Vec::new();
        for n in 0..4 {
            offsets.push(std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0));
            append_durable(&p, Framing::Checksummed, &v(n)).unwrap();
        }
        let mut seen = Vec::new();
        let end = scan(&p, offsets[2], Framing::Checksummed, |off, x: V| {
            seen.push((off, x.n))
        })
        .unwrap();
        assert_eq!(seen, vec![(offsets[2], 2), (offsets[3], 3)]);
        assert_eq!(end.records, 2);
        assert!(matches!(
            scan(&p, offsets[2] + 1, Framing::Checksummed, |_, _: V| {}),
            Err(ScanError::State(StateError::BadOffset { .. }))
        ));
    }

    #[test]
    fn rewrite_replaces_everything() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.jsonl");
        append_durable(&p, Framing::Plain, &v(1)).unwrap();
        rewrite(&p, Framing::Plain, &[v(5), v(6)]).unwrap();
        assert_eq!(read(&p, Framing::Plain).unwrap(), vec![v(5), v(6)]);
    }
}
