//! The dead-letter queue: `dlq.jsonl`, one JSON entry per line (readable with `jq`), a plain
//! [`jsonl`](super::jsonl) file.
//!
//! Appends add one line and fsync; removals and updates rewrite the whole file atomically, so
//! a kill at any moment loses nothing. When an item id appears more than once, the later line
//! wins. Callers must hold the job lock.

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::error::StateError;
use super::jsonl::{self, Framing};
use super::records::{Attempt, Failure};
use super::time::Timestamp;

/// An item that failed for good.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct DlqEntry {
    pub item_id: String,
    pub item: serde_json::Value,
    pub attempts: Vec<Attempt>,
    pub first_failure_at: Timestamp,
    pub last_failure_at: Timestamp,
}

impl DlqEntry {
    /// Why the last attempt failed.
    pub fn last_error(&self) -> Option<&Failure> {
        self.attempts.last().and_then(|a| a.failure.as_ref())
    }
}

/// Read the DLQ. A missing file is empty; an incomplete or unreadable last line (a write that
/// was interrupted) is ignored; a bad line before the last is an error naming the line. If an
/// item id appears twice the later entry wins, at the position of the first.
pub fn load(path: &Path) -> Result<Vec<DlqEntry>, StateError> {
    let all: Vec<DlqEntry> = jsonl::read_all(path, Framing::Plain, |c| StateError::DlqLine {
        path: path.to_path_buf(),
        line: c.line,
        detail: c.detail,
    })?;
    let mut entries: Vec<DlqEntry> = Vec::with_capacity(all.len());
    let mut index: HashMap<String, usize> = HashMap::new();
    for entry in all {
        match index.get(&entry.item_id) {
            Some(&i) => entries[i] = entry,
            None => {
                index.insert(entry.item_id.clone(), entries.len());
                entries.push(entry);
            }
        }
    }
    Ok(entries)
}

/// Append one entry and fsync (the file is created with mode 0600). A torn last line is cut
/// off first, so the new entry never follows garbage.
pub fn append(path: &Path, entry: &DlqEntry) -> Result<(), StateError> {
    jsonl::append_durable(path, Framing::Plain, entry)
}

/// Replace the whole DLQ with `entries`, atomically.
pub fn rewrite(path: &Path, entries: &[DlqEntry]) -> Result<(), StateError> {
    jsonl::rewrite(path, Framing::Plain, entries)
}

/// Replace the entry with the same item id (atomic rewrite), or append a new one.
pub fn upsert(path: &Path, entry: &DlqEntry) -> Result<(), StateError> {
    let mut entries = load(path)?;
    match entries.iter_mut().find(|e| e.item_id == entry.item_id) {
        Some(slot) => {
            *slot = entry.clone();
            rewrite(path, &entries)
        }
        None => append(path, entry),
    }
}

/// Remove the entries of the given item ids; returns how many were removed. The file is
/// rewritten atomically only if something was removed.
pub fn remove(path: &Path, ids: &[String]) -> Result<usize, StateError> {
    let entries = load(path)?;
    let before = entries.len();
    let kept: Vec<DlqEntry> = entries
        .into_iter()
        .filter(|e| !ids.contains(&e.item_id))
        .collect();
    let removed = before - kept.len();
    if removed > 0 {
        rewrite(path, &kept)?;
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    fn entry(id: &str, code: i32) -> DlqEntry {
        DlqEntry {
            item_id: id.into(),
            item: serde_json::json!({"id": id, "n": code}),
            attempts: vec![
                Attempt {
                    attempt: 1,
                    started_at: "2024-01-01T00:00:00Z".into(),
                    duration_ms: 5,
                    failure: Some(Failure::Timeout {
                        after_ms: 5,
                        step: 0,
                    }),
                    stderr_tail: String::new(),
                    usage: None,
                },
                Attempt {
                    attempt: 2,
                    started_at: "2024-01-01T00:00:01Z".into(),
                    duration_ms: 5,
                    failure: Some(Failure::Exit { code, step: 1 }),
                    stderr_tail: "oops".into(),
                    usage: None,
                },
            ],
            first_failure_at: "2024-01-01T00:00:00Z".into(),
            last_failure_at: "2024-01-01T00:00:01Z".into(),
        }
    }

    fn ids(v: &[DlqEntry]) -> Vec<&str> {
        v.iter().map(|e| e.item_id.as_str()).collect()
    }

    #[test]
    fn last_error() {
        let e = entry("a", 7);
        assert_eq!(e.last_error(), Some(&Failure::Exit { code: 7, step: 1 }));
        let mut none = e.clone();
        none.attempts.clear();
        assert_eq!(none.last_error(), None);
    }

    #[test]
    fn append_load_mode() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("dlq.jsonl");
        assert!(load(&p).unwrap().is_empty());
        append(&p, &entry("a", 1)).unwrap();
        append(&p, &entry("b", 2)).unwrap();
        assert_eq!(load(&p).unwrap(), vec![entry("a", 1), entry("b", 2)]);
        let mode = fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // One JSON object per line.
        let text = fs::read_to_string(&p).unwrap();
        assert_eq!(text.lines().count(), 2);
        for l in text.lines() {
            serde_json::from_str::<serde_json::Value>(l).unwrap();
        }
    }

    #[test]
    fn later_duplicate_wins_in_first_position() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("dlq.jsonl");
        append(&p, &entry("a", 1)).unwrap();
        append(&p, &entry("b", 2)).unwrap();
        append(&p, &entry("a", 3)).unwrap();
        assert_eq!(load(&p).unwrap(), vec![entry("a", 3), entry("b", 2)]);
    }

    #[test]
    fn torn_last_line_is_ignored_and_repaired_on_append() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("dlq.jsonl");
        append(&p, &entry("a", 1)).unwrap();
        let good = fs::read(&p).unwrap();
        let mut torn = good.clone();
        torn.extend_from_slice(&Framing::Plain.encode(&p, &entry("b", 2)).unwrap()[..20]);
        fs::write(&p, &torn).unwrap();
        assert_eq!(ids(&load(&p).unwrap()), vec!["a"]);
        // A complete but unparsable last line is also a torn tail.
        let mut bad_last = good.clone();
        bad_last.extend_from_slice(b"{\"item_id\": \n");
        fs::write(&p, &bad_last).unwrap();
        assert_eq!(ids(&load(&p).unwrap()), vec!["a"]);
        // Appending after a torn line keeps the file valid.
        fs::write(&p, &torn).unwrap();
        append(&p, &entry("c", 3)).unwrap();
        assert_eq!(ids(&load(&p).unwrap()), vec!["a", "c"]);
        // Every cut of a valid file loads without error.
        append(&p, &entry("d", 4)).unwrap();
        let full = fs::read(&p).unwrap();
        for cut in 0..=full.len() {
            fs::write(&p, &full[..cut]).unwrap();
            let n = full[..cut].iter().filter(|&&b| b == b'\n').count();
            assert_eq!(load(&p).unwrap().len(), n, "cut at {cut}");
        }
    }

    #[test]
    fn bad_middle_line_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("dlq.jsonl");
        append(&p, &entry("a", 1)).unwrap();
        let mut bytes = fs::read(&p).unwrap();
        bytes.extend_from_slice(b"not json\n");
        bytes.extend_from_slice(&Framing::Plain.encode(&p, &entry("b", 2)).unwrap());
        fs::write(&p, &bytes).unwrap();
        let e = load(&p).unwrap_err();
        assert!(matches!(e, StateError::DlqLine { line: 2, .. }), "{e}");
        assert!(e.to_string().contains("dlq.jsonl line 2"), "{e}");
    }

    #[test]
    fn blank_lines_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("dlq.jsonl");
        let mut bytes = b"\n".to_vec();
        bytes.extend_from_slice(&Framing::Plain.encode(&p, &entry("a", 1)).unwrap());
        bytes.extend_from_slice(b"  \n");
        fs::write(&p, &bytes).unwrap();
        assert_eq!(ids(&load(&p).unwrap()), vec!["a"]);
    }

    #[test]
    fn rewrite_upsert_remove() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("dlq.jsonl");
        upsert(&p, &entry("a", 1)).unwrap();
        upsert(&p, &entry("b", 2)).unwrap();
        upsert(&p, &entry("a", 9)).unwrap();
        assert_eq!(load(&p).unwrap(), vec![entry("a", 9), entry("b", 2)]);
        assert_eq!(fs::read_to_string(&p).unwrap().lines().count(), 2);

        assert_eq!(remove(&p, &["x".to_string()]).unwrap(), 0);
        assert_eq!(remove(&p, &["a".to_string(), "x".to_string()]).unwrap(), 1);
        assert_eq!(load(&p).unwrap(), vec![entry("b", 2)]);

        rewrite(&p, &[]).unwrap();
        assert!(load(&p).unwrap().is_empty());
        assert_eq!(
            remove(&dir.path().join("missing"), &["a".into()]).unwrap(),
            0
        );
    }
}
