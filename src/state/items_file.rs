//! `items.jsonl`: the items selected when the map started, frozen so that a resume runs
//! exactly the same items. One line per item: `{"id": ..., "item": ...}`.
//!
//! A run reads it through an [`ItemStore`]: items stay on disk and an item's value is
//! loaded only when its attempt is submitted, so memory does not grow with the items' JSON.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use serde::{Deserialize, Serialize};

use crate::items::{Frozen, Item};
use crate::state::atomic::write_atomic_with;
use crate::state::error::StateError;

#[derive(Serialize)]
struct LineOut<'a> {
    id: &'a str,
    item: &'a serde_json::Value,
}

#[derive(Deserialize)]
struct LineIn {
    id: String,
    item: serde_json::Value,
}

/// Write the items atomically; returns the blake3 hash of the file (the items' fingerprint).
/// Streamed one line at a time, so a million items cost no second copy in memory.
pub fn write<I: std::borrow::Borrow<Item>>(path: &Path, items: &[I]) -> Result<String, StateError> {
    write_lines(path, |line| {
        for it in items {
            let it = it.borrow();
            let out = LineOut {
                id: &it.id,
                item: &it.value,
            };
            serde_json::to_writer(&mut *line.buf, &out).map_err(std::io::Error::from)?;
            line.end()?;
        }
        Ok(())
    })
}

/// [`write`] from the selection's spill file: each value's JSON is copied as it is, never
/// parsed again.
pub fn write_frozen(path: &Path, items: &Frozen) -> Result<String, StateError> {
    write_lines(path, |line| {
        items.for_each(|id, raw| {
            line.buf.extend_from_slice(b"{\"id\":");
            serde_json::to_writer(&mut *line.buf, id).map_err(std::io::Error::from)?;
            line.buf.extend_from_slice(b",\"item\":");
            line.buf.extend_from_slice(raw.as_bytes());
            line.buf.push(b'}');
            line.end()
        })
    })
}

/// One line being written: filled in `buf`, then hashed and written by [`Line::end`].
struct Line<'a> {
    buf: &'a mut Vec<u8>,
    hasher: &'a mut blake3::Hasher,
    w: &'a mut dyn std::io::Write,
}

impl Line<'_> {
    fn end(&mut self) -> std::io::Result<()> {
        self.buf.push(b'\n');
        self.hasher.update(self.buf);
        self.w.write_all(self.buf)?;
        self.buf.clear();
        Ok(())
    }
}

fn write_lines(
    path: &Path,
    fill: impl FnOnce(&mut Line<'_>) -> std::io::Result<()>,
) -> Result<String, StateError> {
    let mut hasher = blake3::Hasher::new();
    write_atomic_with(path, |w| {
        let mut buf = Vec::with_capacity(256);
        fill(&mut Line {
            buf: &mut buf,
            hasher: &mut hasher,
            w,
        })
    })?;
    Ok(hasher.finalize().to_hex().to_string())
}

/// Read the items and check them against the hash recorded when the map started.
pub fn read_verified(
    path: &Path,
    expected_hash: Option<&str>,
    expected_len: usize,
) -> Result<Vec<Arc<Item>>, StateError> {
    let bytes = std::fs::read(path).map_err(|e| StateError::io("read", path, e))?;
    let hash = blake3::hash(&bytes).to_hex().to_string();
    if expected_hash.is_some_and(|h| h != hash) {
        return Err(StateError::Corrupt {
            path: path.to_path_buf(),
            detail: "the frozen items do not match the fingerprint recorded when the map started (the file was changed or damaged)".into(),
        });
    }
    let items = read(path)?;
    if items.len() != expected_len {
        return Err(StateError::Corrupt {
            path: path.to_path_buf(),
            detail: format!(
                "{} items, but the journal records {expected_len}",
                items.len()
            ),
        });
    }
    Ok(items)
}

/// Every line-th line's offset is kept: at most this many lines are skipped to reach an item.
const INDEX_EVERY: usize = 64;

/// The frozen items, on disk, with a sparse index of line offsets.
pub struct ItemStore {
    path: PathBuf,
    /// Offset of line `k * INDEX_EVERY`.
    index: Vec<u64>,
    len: usize,
    /// Where sequential reads left off: the next line's index and a reader positioned there.
    cursor: Mutex<Option<(usize, BufReader<File>)>>,
}

impl std::fmt::Debug for ItemStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ItemStore")
            .field("path", &self.path)
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl ItemStore {
    /// Open `path`, check it against the hash and item count recorded when the map started
    /// (`None`: unchecked), and index it. One sequential pass over the file.
    pub fn open(
        path: &Path,
        expected_hash: Option<&str>,
        expected_len: Option<usize>,
    ) -> Result<ItemStore, StateError> {
        let corrupt = |detail: String| StateError::Corrupt {
            path: path.to_path_buf(),
            detail,
        };
        let mut file = File::open(path).map_err(|e| StateError::io("open", path, e))?;
        let mut hasher = blake3::Hasher::new();
        let mut index = Vec::new();
        let mut buf = vec![0u8; 1 << 20];
        let (mut offset, mut lines, mut at_line_start) = (0u64, 0usize, true);
        loop {
            let n = file
                .read(&mut buf)
                .map_err(|e| StateError::io("read", path, e))?;
            if n == 0 {
                break;
            }
            let chunk = &buf[..n];
            hasher.update(chunk);
            let mut from = 0;
            while from < n {
                if at_line_start {
                    if lines.is_multiple_of(INDEX_EVERY) {
                        index.push(offset + from as u64);
                    }
                    at_line_start = false;
                }
                match memchr(b'\n', &chunk[from..]) {
                    Some(i) => {
                        from += i + 1;
                        lines += 1;
                        at_line_start = true;
                    }
                    None => break,
                }
            }
            offset += n as u64;
        }
        if !at_line_start {
            return Err(corrupt("the last line is incomplete".into()));
        }
        let hash = hasher.finalize().to_hex().to_string();
        if expected_hash.is_some_and(|h| h != hash) {
            return Err(corrupt("the frozen items do not match the fingerprint recorded when the map started (the file was changed or damaged)".into()));
        }
        if let Some(want) = expected_len
            && want != lines
        {
            return Err(corrupt(format!(
                "{lines} items, but the journal records {want}"
            )));
        }
        Ok(ItemStore {
            path: path.to_path_buf(),
            index,
            len: lines,
            cursor: Mutex::new(None),
        })
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Item `idx`. Reading items in order is sequential I/O; any other one skips at most
    /// 63 lines from its nearest indexed line.
    pub fn get(&self, idx: usize) -> Result<Arc<Item>, StateError> {
        if idx >= self.len {
            return Err(StateError::Corrupt {
                path: self.path.clone(),
                detail: format!("there is no item {idx} (the file has {})", self.len),
            });
        }
        let mut cursor = self.cursor.lock().unwrap_or_else(PoisonError::into_inner);
        let reuse =
            matches!(&*cursor, Some((next, _)) if *next <= idx && idx - *next < INDEX_EVERY);
        if !reuse {
            let base = (idx / INDEX_EVERY) * INDEX_EVERY;
            let mut f =
                File::open(&self.path).map_err(|e| StateError::io("open", &self.path, e))?;
            f.seek(SeekFrom::Start(self.index[idx / INDEX_EVERY]))
                .map_err(|e| StateError::io("seek in", &self.path, e))?;
            *cursor = Some((base, BufReader::with_capacity(64 << 10, f)));
        }
        let Some((next, reader)) = cursor.as_mut() else {
            unreachable!("the cursor was just set")
        };
        let mut line = Vec::new();
        loop {
            line.clear();
            reader
                .read_until(b'\n', &mut line)
                .map_err(|e| StateError::io("read", &self.path, e))?;
            let n = *next;
            *next += 1;
            if n == idx {
                return parse_line(&self.path, idx, &line).map(Arc::new);
            }
        }
    }

    /// Every item, in order, read sequentially.
    pub fn iter(&self) -> Result<impl Iterator<Item = Result<Item, StateError>> + '_, StateError> {
        let f = File::open(&self.path).map_err(|e| StateError::io("open", &self.path, e))?;
        let mut reader = BufReader::with_capacity(1 << 20, f);
        let mut idx = 0;
        Ok(std::iter::from_fn(move || {
            let mut line = Vec::new();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) => None,
                Ok(_) => {
                    idx += 1;
                    Some(parse_line(&self.path, idx - 1, &line))
                }
                Err(e) => Some(Err(StateError::io("read", &self.path, e))),
            }
        }))
    }

    /// The indexes of the items with these ids (ids not found are left out).
    pub fn find_ids(&self, ids: &HashSet<&str>) -> Result<HashMap<String, usize>, StateError> {
        let mut found = HashMap::new();
        if ids.is_empty() {
            return Ok(found);
        }
        for (idx, item) in self.iter()?.enumerate() {
            let item = item?;
            if ids.contains(item.id.as_str()) {
                found.insert(item.id, idx);
                if found.len() == ids.len() {
                    break;
                }
            }
        }
        Ok(found)
    }
}

fn parse_line(path: &Path, idx: usize, line: &[u8]) -> Result<Item, StateError> {
    let l: LineIn = serde_json::from_slice(line).map_err(|e| StateError::Corrupt {
        path: path.to_path_buf(),
        detail: format!("line {}: {e}", idx + 1),
    })?;
    Ok(Item {
        id: l.id,
        value: l.item,
    })
}

fn memchr(needle: u8, hay: &[u8]) -> Option<usize> {
    hay.iter().position(|&b| b == needle)
}

pub fn read(path: &Path) -> Result<Vec<Arc<Item>>, StateError> {
    let f = std::fs::File::open(path).map_err(|e| StateError::io("open", path, e))?;
    let mut out = Vec::new();
    for (n, line) in std::io::BufReader::new(f).lines().enumerate() {
        let line = line.map_err(|e| StateError::io("read", path, e))?;
        if line.is_empty() {
            continue;
        }
        let l: LineIn = serde_json::from_str(&line).map_err(|e| StateError::Corrupt {
            path: path.to_path_buf(),
            detail: format!("line {}: {e}", n + 1),
        })?;
        out.push(Arc::new(Item {
            id: l.id,
            value: l.item,
        }));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(n: usize) -> Vec<Arc<Item>> {
        (0..n)
            .map(|i| {
                Arc::new(Item {
                    id: format!("id-{i}"),
                    value: serde_json::json!({ "n": i, "pad": "x".repeat(i % 7) }),
                })
            })
            .collect()
    }

    #[test]
    fn the_store_reads_items_in_and_out_of_order() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("items.jsonl");
        let all = items(500);
        let hash = write(&p, &all).unwrap();
        let store = ItemStore::open(&p, Some(&hash), Some(500)).unwrap();
        assert_eq!(store.len(), 500);
        for (i, item) in all.iter().enumerate() {
            assert_eq!(store.get(i).unwrap().id, item.id);
        }
        for i in [499, 3, 64, 63, 128, 0, 300, 301, 250] {
            assert_eq!(*store.get(i).unwrap(), *all[i], "item {i}");
        }
        assert!(store.get(500).is_err());
        let ids: Vec<String> = store.iter().unwrap().map(|i| i.unwrap().id).collect();
        assert_eq!(ids.len(), 500);
        let want: HashSet<&str> = ["id-7", "id-499", "nope"].into_iter().collect();
        let found = store.find_ids(&want).unwrap();
        assert_eq!(found.get("id-7"), Some(&7));
        assert_eq!(found.get("id-499"), Some(&499));
        assert_eq!(found.len(), 2);
    }

    #[test]
    fn a_changed_file_or_count_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("items.jsonl");
        let hash = write(&p, &items(10)).unwrap();
        assert!(ItemStore::open(&p, Some(&hash), Some(9)).is_err());
        assert!(ItemStore::open(&p, Some("0000"), Some(10)).is_err());
        let empty = d.path().join("empty.jsonl");
        let h = write::<Item>(&empty, &[]).unwrap();
        assert!(
            ItemStore::open(&empty, Some(&h), Some(0))
                .unwrap()
                .is_empty()
        );
    }
}
