//! The checkpoint: a job's state folded up to a position in its journal, so recovery replays
//! only what came after, and journal segments before it can be dropped.
//!
//! `checkpoint.bin` (version 2) is compact, compressed and checksummed:
//!
//! ```text
//! runner-checkpoint v2\n
//! {"segment":S,"offset":O,"items":N,"raw_len":R,"crc32c":"<8 hex of the body>"}\n
//! <body: LZ4 block of: view JSON (items left out) \n side tables JSON \n status bytes,
//!  attempts (u16 LE), durations (u32 LE)[, usage: peak RSS KiB and CPU ms (u32 LE pairs)]>
//! ```
//!
//! The usage column is there when the header says `"usage":true` (some attempt was
//! measured); checkpoints without the field have none.
//!
//! It is written like every snapshot (temporary file, fsync, rename, fsync of the directory).
//! Jobs made by earlier versions have `checkpoint.json` (version 1: a JSON snapshot with a
//! journal offset), which is still read.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::atomic::{read_checksummed, write_atomic};
use super::error::StateError;
use super::item_states::{ItemStates, SparseOwned};
use super::job::{Checkpoint as CheckpointV1, JobView};
use super::layout::JobDir;
use super::records::ItemStatus;

const MAGIC: &str = "runner-checkpoint v2";

/// A position in the journal: segment `segment`, byte `offset` of it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct JournalPos {
    pub segment: u64,
    pub offset: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct Header {
    segment: u64,
    offset: u64,
    items: usize,
    raw_len: usize,
    crc32c: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    usage: bool,
}

/// Write the checkpoint of `view` at `pos` (the view's items are lent out while encoding).
pub fn write(dir: &JobDir, pos: JournalPos, view: &mut JobView) -> Result<(), StateError> {
    let path = dir.checkpoint();
    let encode = |e: serde_json::Error| StateError::Encode {
        path: path.clone(),
        source: e,
    };
    let items = std::mem::take(&mut view.items);
    let head = serde_json::to_vec(&*view);
    view.items = items;
    let mut raw = head.map_err(encode)?;
    raw.push(b'\n');
    serde_json::to_writer(&mut raw, &view.items.sparse()).map_err(encode)?;
    raw.push(b'\n');
    let (status, attempts, durations) = view.items.columns();
    raw.reserve(status.len() * 7);
    raw.extend(status.iter().map(|s| status_code(*s)));
    for a in attempts {
        raw.extend_from_slice(&a.to_le_bytes());
    }
    for d in durations {
        raw.extend_from_slice(&d.to_le_bytes());
    }
    let usage = view.items.usage_column();
    for v in usage.iter().flatten() {
        raw.extend_from_slice(&v.to_le_bytes());
    }
    let body = lz4_flex::block::compress(&raw);
    let header = Header {
        segment: pos.segment,
        offset: pos.offset,
        items: status.len(),
        raw_len: raw.len(),
        crc32c: format!("{:08x}", crc32c::crc32c(&body)),
        usage: !usage.is_empty(),
    };
    let mut out = format!("{MAGIC}\n").into_bytes();
    serde_json::to_writer(&mut out, &header).map_err(encode)?;
    out.push(b'\n');
    out.extend_from_slice(&body);
    write_atomic(&path, &out)?;
    // A version 1 checkpoint left by an earlier runner is superseded.
    let old = dir.checkpoint_v1();
    if old.exists() {
        let _ = std::fs::remove_file(old);
    }
    Ok(())
}

/// The checkpoint of the job, if it has one: its view and the journal position it covers.
pub fn read(dir: &JobDir) -> Result<Option<(JobView, JournalPos)>, StateError> {
    let path = dir.checkpoint();
    match std::fs::read(&path) {
        Ok(bytes) => decode(&path, &bytes).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // Version 1: the journal was one file, segment 0.
            Ok(
                read_checksummed::<CheckpointV1>(&dir.checkpoint_v1())?.map(|c| {
                    (
                        c.view,
                        JournalPos {
                            segment: 0,
                            offset: c.journal_offset,
                        },
                    )
                }),
            )
        }
        Err(e) => Err(StateError::io("read", &path, e)),
    }
}

fn decode(path: &Path, bytes: &[u8]) -> Result<(JobView, JournalPos), StateError> {
    let corrupt = |detail: String| StateError::Corrupt {
        path: path.to_path_buf(),
        detail,
    };
    let mut lines = bytes.splitn(3, |&b| b == b'\n');
    let magic = lines.next().unwrap_or_default();
    if magic != MAGIC.as_bytes() {
        return Err(corrupt(
            "it does not start with the checkpoint header".into(),
        ));
    }
    let header: Header = serde_json::from_slice(lines.next().unwrap_or_default())
        .map_err(|e| corrupt(format!("bad header: {e}")))?;
    let body = lines
        .next()
        .ok_or_else(|| corrupt("the data is missing".into()))?;
    let crc = format!("{:08x}", crc32c::crc32c(body));
    if crc != header.crc32c {
        return Err(corrupt(format!(
            "checksum mismatch: header says {}, data has {crc}",
            header.crc32c
        )));
    }
    let raw = lz4_flex::block::decompress(body, header.raw_len)
        .map_err(|e| corrupt(format!("cannot decompress: {e}")))?;
    let mut parts = raw.splitn(3, |&b| b == b'\n');
    let mut view: JobView = serde_json::from_slice(parts.next().unwrap_or_default())
        .map_err(|e| corrupt(format!("bad view: {e}")))?;
    let sparse: SparseOwned = serde_json::from_slice(parts.next().unwrap_or_default())
        .map_err(|e| corrupt(format!("bad side tables: {e}")))?;
    let cols = parts.next().unwrap_or_default();
    let n = header.items;
    let width = if header.usage { 15 } else { 7 };
    if cols.len() != n * width {
        return Err(corrupt(format!(
            "{} bytes of item columns for {n} items",
            cols.len()
        )));
    }
    let status = cols[..n]
        .iter()
        .map(|b| status_from(*b).ok_or_else(|| corrupt(format!("unknown item status {b}"))))
        .collect::<Result<Vec<_>, _>>()?;
    let attempts = cols[n..3 * n]
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    let u32s = |b: &[u8]| {
        b.chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect::<Vec<_>>()
    };
    let durations = u32s(&cols[3 * n..7 * n]);
    let usage = u32s(&cols[7 * n..])
        .chunks_exact(2)
        .map(|p| [p[0], p[1]])
        .collect();
    view.items = ItemStates::from_parts(status, attempts, durations, usage, sparse);
    Ok((
        view,
        JournalPos {
            segment: header.segment,
            offset: header.offset,
        },
    ))
}

fn status_code(s: ItemStatus) -> u8 {
    match s {
        ItemStatus::Pending => 0,
        ItemStatus::Succeeded => 1,
        ItemStatus::Dlq => 2,
        ItemStatus::Failed => 3,
        ItemStatus::Purged => 4,
    }
}

fn status_from(b: u8) -> Option<ItemStatus> {
    Some(match b {
        0 => ItemStatus::Pending,
        1 => ItemStatus::Succeeded,
        2 => ItemStatus::Dlq,
        3 => ItemStatus::Failed,
        4 => ItemStatus::Purged,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::records::Record;
    use crate::state::time::Timestamp;

    fn view(n: usize) -> JobView {
        let mut v = JobView::default();
        v.apply(&Record::RunStarted {
            run: 1,
            command: "run".into(),
            pid: 1,
            at: Timestamp::now(),
        });
        v.apply(&Record::MapStarted {
            total: n,
            items_hash: "h".into(),
        });
        for i in (0..n).step_by(3) {
            let mut captured = serde_json::Map::new();
            if i % 2 == 0 {
                captured.insert("x".into(), serde_json::json!(i));
            }
            v.apply(&Record::ItemDone {
                idx: i,
                status: if i % 5 == 0 {
                    ItemStatus::Dlq
                } else {
                    ItemStatus::Succeeded
                },
                attempts: 2,
                duration_ms: i as u64,
                exit_code: (i % 5 == 0).then_some(3),
                captured,
                ran: None,
            });
        }
        v
    }

    #[test]
    fn round_trip() {
        let d = tempfile::tempdir().unwrap();
        let dir = JobDir::at(d.path());
        let mut v = view(1000);
        let pos = JournalPos {
            segment: 4,
            offset: 77,
        };
        write(&dir, pos, &mut v).unwrap();
        assert_eq!(v.items.len(), 1000, "the items are given back");
        let (back, at) = read(&dir).unwrap().unwrap();
        assert_eq!(at, pos);
        assert_eq!(back.items, v.items);
        assert_eq!(back.counts, v.counts);
        assert_eq!(back.started_at, v.started_at);
    }

    #[test]
    fn usage_round_trips_when_measured() {
        let d = tempfile::tempdir().unwrap();
        let dir = JobDir::at(d.path());
        let mut v = view(10);
        let u = crate::state::records::Usage {
            peak_rss_kb: 4096,
            cpu_ms: 12,
        };
        v.items.set_usage(3, Some(u));
        write(&dir, JournalPos::default(), &mut v).unwrap();
        let (back, _) = read(&dir).unwrap().unwrap();
        assert_eq!(back.items.usage(3), Some(u));
        assert_eq!(back.items, v.items);
    }

    #[test]
    fn damage_is_reported() {
        let d = tempfile::tempdir().unwrap();
        let dir = JobDir::at(d.path());
        write(&dir, JournalPos::default(), &mut view(100)).unwrap();
        let mut bytes = std::fs::read(dir.checkpoint()).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x55;
        std::fs::write(dir.checkpoint(), &bytes).unwrap();
        let err = read(&dir).unwrap_err().to_string();
        assert!(err.contains("checksum mismatch"), "{err}");
        assert!(err.contains("checkpoint.bin"), "{err}");
    }

    #[test]
    fn a_million_items_are_small() {
        let d = tempfile::tempdir().unwrap();
        let dir = JobDir::at(d.path());
        let mut v = view(1_000_000);
        write(&dir, JournalPos::default(), &mut v).unwrap();
        let len = std::fs::metadata(dir.checkpoint()).unwrap().len();
        assert!(len < 8_000_000, "{len} bytes");
    }
}
