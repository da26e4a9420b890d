//! Item output between machines: a worker sends the last `cap` bytes of each stream of an
//! attempt with its outcome; the coordinator writes them where the local backend would have
//! written the attempt's logs (`logs/items/<stem>/<attempt>.out|err`), so `runner logs`
//! works the same.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::state::atomic::{FILE_MODE, create_dir_private};
use crate::state::error::StateError;
use crate::state::layout::item_file_stem;

/// Default bytes of each stream a worker sends.
pub const DEFAULT_TAIL_CAP: usize = 64 * 1024;

/// The last `cap` bytes of the file at `path` (empty when it does not exist), with a note
/// in front when the start was cut.
pub fn read_tail(path: &Path, cap: usize) -> Vec<u8> {
    let (end, skipped) = crate::state::logs::read_end(path, cap as u64);
    if skipped == 0 {
        return end;
    }
    let mut out =
        format!("[runner: the first {skipped} bytes stayed on the worker]\n").into_bytes();
    out.extend_from_slice(&end);
    out
}

/// The log files of attempt `attempt` of `item_id` under `items_dir` (`logs/items`).
pub fn log_paths(items_dir: &Path, item_id: &str, attempt: u32) -> [std::path::PathBuf; 2] {
    let dir = items_dir.join(item_file_stem(item_id));
    [
        dir.join(format!("{attempt}.out")),
        dir.join(format!("{attempt}.err")),
    ]
}

/// Write an attempt's streams as its log files (private, replacing earlier copies); like a
/// local attempt, a stream without output leaves no file.
pub fn write_logs(
    items_dir: &Path,
    item_id: &str,
    attempt: u32,
    stdout: &[u8],
    stderr: &[u8],
) -> Result<(), StateError> {
    if stdout.is_empty() && stderr.is_empty() {
        return Ok(());
    }
    let paths = log_paths(items_dir, item_id, attempt);
    if let Some(dir) = paths[0].parent() {
        create_dir_private(dir)?;
    }
    for (path, bytes) in paths.iter().zip([stdout, stderr]) {
        if bytes.is_empty() {
            continue;
        }
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(FILE_MODE)
            .open(path)
            .map_err(|e| StateError::io("create", path, e))?;
        f.write_all(bytes)
            .map_err(|e| StateError::io("write", path, e))?;
    }
    Ok(())
}

/// Remove an attempt's log files (on the worker, once sent).
pub fn remove_logs(items_dir: &Path, item_id: &str, attempt: u32) {
    let paths = log_paths(items_dir, item_id, attempt);
    for p in &paths {
        let _ = std::fs::remove_file(p);
    }
    if let Some(dir) = paths[0].parent() {
        let _ = std::fs::remove_dir(dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tail_is_the_end_with_a_note() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.out");
        std::fs::write(&p, b"0123456789").unwrap();
        assert_eq!(read_tail(&p, 64), b"0123456789");
        let t = String::from_utf8(read_tail(&p, 4)).unwrap();
        assert_eq!(t, "[runner: the first 6 bytes stayed on the worker]\n6789");
        assert!(read_tail(&d.path().join("missing"), 4).is_empty());
    }

    #[test]
    fn logs_land_where_runner_logs_looks() {
        let d = tempfile::tempdir().unwrap();
        write_logs(d.path(), "item/1", 2, b"out", b"err").unwrap();
        let [o, e] = log_paths(d.path(), "item/1", 2);
        assert_eq!(std::fs::read(&o).unwrap(), b"out");
        assert_eq!(std::fs::read(&e).unwrap(), b"err");
        assert!(o.starts_with(d.path().join(item_file_stem("item/1"))));
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&o).unwrap().permissions().mode() & 0o777,
            0o600
        );
        remove_logs(d.path(), "item/1", 2);
        assert!(!o.exists() && !o.parent().unwrap().exists());
        write_logs(d.path(), "quiet", 1, b"", b"").unwrap();
        write_logs(d.path(), "half", 1, b"", b"e").unwrap();
        let [o, e] = log_paths(d.path(), "half", 1);
        assert!(!o.exists() && e.exists());
        assert!(
            !log_paths(d.path(), "quiet", 1)[0]
                .parent()
                .unwrap()
                .exists()
        );
    }
}
