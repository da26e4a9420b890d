//! Crash-safe whole-file writes and checksummed snapshots.
//!
//! `write_atomic` never leaves a half-written file under the final name: the bytes go to a
//! temporary file in the same directory, which is fsynced and renamed over the target, and then
//! the directory itself is fsynced so the rename survives a power cut.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::error::StateError;

/// Permission bits of every file the runner creates in the state directory.
pub const FILE_MODE: u32 = 0o600;
/// Permission bits of every directory the runner creates in the state directory.
pub const DIR_MODE: u32 = 0o700;

const SNAPSHOT_MAGIC: &str = "runner-snapshot v1";

/// The directory holding `path` (`.` for a bare file name).
pub(crate) fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// fsync a directory, making renames, creations and unlinks inside it durable.
pub fn fsync_dir(dir: &Path) -> Result<(), StateError> {
    let d = File::open(dir).map_err(|e| StateError::io("open directory", dir, e))?;
    d.sync_all()
        .map_err(|e| StateError::io("fsync directory", dir, e))
}

/// Create `dir` and its missing parents with mode 0700 (existing directories are left alone).
pub fn create_dir_private(dir: &Path) -> Result<(), StateError> {
    DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
        .map_err(|e| StateError::io("create directory", dir, e))
}

/// Replace `path` with `bytes` atomically (temp file, fsync, rename, fsync of the directory).
/// The file gets mode 0600.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StateError> {
    replace(path, true, |f| f.write_all(bytes))?;
    fsync_dir(&parent_dir(path))
}

/// [`write_atomic`] for content produced piece by piece (buffered; nothing is held whole
/// in memory): `fill` writes the new content.
pub fn write_atomic_with(
    path: &Path,
    fill: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> Result<(), StateError> {
    replace(path, true, |f| {
        let mut w = io::BufWriter::with_capacity(1 << 20, f);
        fill(&mut w)?;
        w.flush()
    })?;
    fsync_dir(&parent_dir(path))
}

/// [`write_atomic`] for a file outside the state directory, with permission bits `mode`
/// (not reduced by the umask), as a workflow's `write_file` step asks.
pub fn write_atomic_mode(path: &Path, bytes: &[u8], mode: u32) -> Result<(), StateError> {
    use std::os::unix::fs::PermissionsExt;
    replace(path, true, |f| {
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        f.write_all(bytes)
    })?;
    fsync_dir(&parent_dir(path))
}

/// Replace `path` with `bytes` atomically but without fsync: a reader sees the old file or
/// all of the new one, never part of it; a power cut may lose it. For hand-off files whose
/// reader makes their content durable itself (Slurm's outcome files).
pub fn write_atomic_unsynced(path: &Path, bytes: &[u8]) -> Result<(), StateError> {
    replace(path, false, |f| f.write_all(bytes))
}

fn replace(
    path: &Path,
    sync: bool,
    fill: impl FnOnce(&mut File) -> io::Result<()>,
) -> Result<(), StateError> {
    let dir = parent_dir(path);
    let name = path
        .file_name()
        .ok_or_else(|| {
            StateError::io(
                "write",
                path,
                io::Error::new(io::ErrorKind::InvalidInput, "the path has no file name"),
            )
        })?
        .to_string_lossy()
        .into_owned();
    let tmp = dir.join(format!(
        ".{name}.tmp-{}-{:08x}",
        std::process::id(),
        fastrand::u32(..)
    ));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(FILE_MODE)
            .open(&tmp)
            .map_err(|e| StateError::io("create temporary file", &tmp, e))?;
        fill(&mut f).map_err(|e| StateError::io("write", &tmp, e))?;
        if sync {
            f.sync_all().map_err(|e| StateError::io("fsync", &tmp, e))?;
        }
        drop(f);
        fs::rename(&tmp, path).map_err(|e| StateError::io("rename temporary file over", path, e))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Encode `value` as a checksummed snapshot (header line + JSON body).
fn encode_snapshot<T: Serialize>(path: &Path, value: &T) -> Result<Vec<u8>, StateError> {
    let body = serde_json::to_vec(value).map_err(|source| StateError::Encode {
        path: path.to_path_buf(),
        source,
    })?;
    let mut out = format!(
        "{SNAPSHOT_MAGIC} crc32c={:08x} len={}\n",
        crc32c::crc32c(&body),
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(&body);
    Ok(out)
}

/// Atomically write `value` as a checksummed snapshot:
/// `runner-snapshot v1 crc32c=<8 hex> len=<bytes>\n` followed by the JSON body.
pub fn write_checksummed<T: Serialize>(path: &Path, value: &T) -> Result<(), StateError> {
    let bytes = encode_snapshot(path, value)?;
    write_atomic(path, &bytes)
}

/// Read a snapshot written by [`write_checksummed`]. `Ok(None)` when the file does not exist;
/// [`StateError::Corrupt`] when its header, length, checksum or JSON is wrong.
pub fn read_checksummed<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, StateError> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StateError::io("read", path, e)),
    };
    decode_snapshot(path, &bytes).map(Some)
}

fn decode_snapshot<T: DeserializeOwned>(path: &Path, bytes: &[u8]) -> Result<T, StateError> {
    let corrupt = |detail: String| StateError::Corrupt {
        path: path.to_path_buf(),
        detail,
    };
    let nl = bytes
        .iter()
        .position(|&b| b == b'\n')
        .ok_or_else(|| corrupt("the header line is missing or incomplete".into()))?;
    let header = std::str::from_utf8(&bytes[..nl])
        .map_err(|_| corrupt("the header line is not text".into()))?;
    let body = &bytes[nl + 1..];
    let rest = header
        .strip_prefix(SNAPSHOT_MAGIC)
        .and_then(|r| r.strip_prefix(" crc32c="))
        .ok_or_else(|| corrupt(format!("unexpected header {header:?}")))?;
    let (crc_hex, len_text) = rest
        .split_once(" len=")
        .ok_or_else(|| corrupt(format!("unexpected header {header:?}")))?;
    if crc_hex.len() != 8 || !crc_hex.bytes().all(is_lower_hex) {
        return Err(corrupt(format!("bad checksum field in header {header:?}")));
    }
    let crc = u32::from_str_radix(crc_hex, 16)
        .map_err(|_| corrupt(format!("bad checksum field in header {header:?}")))?;
    let len: usize = len_text
        .parse()
        .map_err(|_| corrupt(format!("bad length field in header {header:?}")))?;
    if body.len() != len {
        return Err(corrupt(format!(
            "the header says {len} bytes of data but there are {} (truncated or appended to)",
            body.len()
        )));
    }
    let actual = crc32c::crc32c(body);
    if actual != crc {
        return Err(corrupt(format!(
            "checksum mismatch: header says {crc:08x}, data has {actual:08x}"
        )));
    }
    serde_json::from_slice(body).map_err(|e| {
        corrupt(format!(
            "the checksum is right but the data does not have the expected structure ({e}); \
             it may come from a different runner version"
        ))
    })
}

/// Is `b` a digit or one of `a`-`f` (checksums are written in lowercase only)?
pub(crate) fn is_lower_hex(b: u8) -> bool {
    b.is_ascii_digit() || (b'a'..=b'f').contains(&b)
}

/// Is `name` a temporary file left by [`write_atomic`] (`.<file>.tmp-<pid>-<rand>`)?
fn is_temp_name(name: &str) -> bool {
    name.starts_with('.') && name.contains(".tmp-")
}

/// Delete temporary files (`.*.tmp-*`) left in `dir` by writers that were killed mid-write.
/// Returns how many were removed; a missing directory counts as none. Call it only while
/// holding the job lock, so no live writer's temporary file is removed.
pub fn remove_stale_temp_files(dir: &Path) -> Result<usize, StateError> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(StateError::io("list directory", dir, e)),
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry.map_err(|e| StateError::io("list directory", dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !is_temp_name(name) {
            continue;
        }
        let is_file = entry.file_type().map(|t| t.is_file()).unwrap_or(false);
        if !is_file {
            continue;
        }
        let p = entry.path();
        match fs::remove_file(&p) {
            Ok(()) => removed += 1,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(StateError::io("remove temporary file", &p, e)),
        }
    }
    if removed > 0 {
        fsync_dir(dir)?;
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::{Deserialize, Serialize};
    use std::os::unix::fs::PermissionsExt;

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Snap {
        a: u32,
        b: Vec<String>,
    }

    fn snap() -> Snap {
        Snap {
            a: 7,
            b: vec!["x".into(), "y\nz".into()],
        }
    }

    #[test]
    fn write_atomic_replaces_and_sets_mode() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.txt");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        let mode = fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // No temporary files left behind.
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }

    #[test]
    fn write_atomic_error_names_path() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("missing-dir").join("f");
        let e = write_atomic(&p, b"x").unwrap_err();
        assert!(e.to_string().contains("missing-dir"), "{e}");
    }

    #[test]
    fn checksummed_round_trip_and_missing() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("checkpoint.json");
        assert_eq!(read_checksummed::<Snap>(&p).unwrap(), None);
        write_checksummed(&p, &snap()).unwrap();
        let text = fs::read_to_string(&p).unwrap();
        assert!(text.starts_with("runner-snapshot v1 crc32c="), "{text}");
        assert_eq!(read_checksummed::<Snap>(&p).unwrap(), Some(snap()));
    }

    #[test]
    fn checksummed_detects_every_single_byte_flip_and_truncation() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("checkpoint.json");
        let good = encode_snapshot(&p, &snap()).unwrap();
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x01;
            match decode_snapshot::<Snap>(&p, &bad) {
                Err(StateError::Corrupt { .. }) => {}
                Ok(v) => panic!("flip at {i} not detected: {v:?}"),
                Err(e) => panic!("flip at {i}: wrong error {e}"),
            }
        }
        for cut in 0..good.len() {
            assert!(matches!(
                decode_snapshot::<Snap>(&p, &good[..cut]),
                Err(StateError::Corrupt { .. })
            ));
        }
        fs::write(&p, &good[..good.len() - 1]).unwrap();
        let e = read_checksummed::<Snap>(&p).unwrap_err();
        let m = e.to_string();
        assert!(
            m.contains("checkpoint.json") && m.contains("replay from the journal"),
            "{m}"
        );
    }

    #[test]
    fn wrong_structure_is_corrupt_not_panic() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.json");
        write_checksummed(&p, &serde_json::json!({"other": true})).unwrap();
        assert!(matches!(
            read_checksummed::<Snap>(&p),
            Err(StateError::Corrupt { .. })
        ));
    }

    #[test]
    fn stale_temp_files_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(".checkpoint.json.tmp-123-abcd"), b"x").unwrap();
        fs::write(dir.path().join(".dlq.jsonl.tmp-1-2"), b"x").unwrap();
        fs::write(dir.path().join("checkpoint.json"), b"x").unwrap();
        fs::write(dir.path().join("notes.tmp-1"), b"x").unwrap();
        assert_eq!(remove_stale_temp_files(dir.path()).unwrap(), 2);
        assert_eq!(remove_stale_temp_files(dir.path()).unwrap(), 0);
        assert!(dir.path().join("checkpoint.json").exists());
        assert!(dir.path().join("notes.tmp-1").exists());
        assert_eq!(
            remove_stale_temp_files(&dir.path().join("nope")).unwrap(),
            0
        );
    }

    #[test]
    fn create_dir_private_mode() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("a/b");
        create_dir_private(&d).unwrap();
        create_dir_private(&d).unwrap();
        let mode = fs::metadata(&d).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
    }
}
