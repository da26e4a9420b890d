//! `items.jsonl`: the items selected when the map started, frozen so that a resume runs
//! exactly the same items. One line per item: `{"id": ..., "item": ...}`.

use std::io::{BufRead, Write};
use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::items::Item;
use crate::state::atomic::write_atomic;
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
pub fn write(path: &Path, items: &[Arc<Item>]) -> Result<String, StateError> {
    let mut buf = Vec::with_capacity(items.len() * 64);
    for it in items {
        serde_json::to_writer(
            &mut buf,
            &LineOut {
                id: &it.id,
                item: &it.value,
            },
        )
        .map_err(|e| StateError::Corrupt {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?;
        let _ = buf.write_all(b"\n");
    }
    write_atomic(path, &buf)?;
    Ok(blake3::hash(&buf).to_hex().to_string())
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
