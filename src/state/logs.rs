//! Where a job's captured output lives: `logs/setup-<n>.out|err`, `logs/reduce-<n>.out|err`
//! and `logs/items/<item-file-stem>/<attempt>.out|err`, and how to find them in order.

use std::path::PathBuf;

use super::layout::{JobDir, item_file_stem};

/// One log file and what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogFile {
    /// `setup step 1 stdout`, `attempt 2 stderr`, ...
    pub title: String,
    pub path: PathBuf,
}

/// The last `cap` bytes of the file at `path` (empty when it cannot be read), and how many
/// bytes before them were left out.
pub fn read_end(path: &std::path::Path, cap: u64) -> (Vec<u8>, u64) {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = std::fs::File::open(path) else {
        return (Vec::new(), 0);
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let skipped = len.saturating_sub(cap);
    if skipped > 0 && f.seek(SeekFrom::Start(skipped)).is_err() {
        return (Vec::new(), 0);
    }
    let mut out = Vec::new();
    let _ = f.take(cap).read_to_end(&mut out);
    (out, skipped)
}

/// The log files that exist now, in order: setup steps, reduce steps (or one item's
/// attempts), stdout before stderr.
pub fn log_files(dir: &JobDir, item: Option<&str>) -> Vec<LogFile> {
    let (base, prefixes): (PathBuf, Vec<&str>) = match item {
        Some(id) => (
            dir.logs_dir().join("items").join(item_file_stem(id)),
            vec![""],
        ),
        None => (dir.logs_dir(), vec!["setup-", "reduce-"]),
    };
    let mut found: Vec<(usize, u64, u8, PathBuf, String)> = Vec::new();
    let Ok(rd) = std::fs::read_dir(&base) else {
        return Vec::new();
    };
    for e in rd.filter_map(|e| e.ok()) {
        let path = e.path();
        let (Some(stem), Some(ext)) = (
            path.file_stem().and_then(|s| s.to_str()),
            path.extension().and_then(|s| s.to_str()),
        ) else {
            continue;
        };
        let stream = match ext {
            "out" => 0,
            "err" => 1,
            _ => continue,
        };
        for (pi, prefix) in prefixes.iter().enumerate() {
            if let Some(n) = stem
                .strip_prefix(prefix)
                .and_then(|n| n.parse::<u64>().ok())
            {
                let what = match (item, *prefix) {
                    (Some(_), _) => format!("attempt {n}"),
                    (None, "setup-") => format!("setup step {n}"),
                    _ => format!("reduce step {n}"),
                };
                let title = format!("{what} {}", if stream == 0 { "stdout" } else { "stderr" });
                found.push((pi, n, stream, path.clone(), title));
            }
        }
    }
    found.sort_by_key(|f| (f.0, f.1, f.2));
    found
        .into_iter()
        .map(|(_, _, _, path, title)| LogFile { title, path })
        .collect()
}
