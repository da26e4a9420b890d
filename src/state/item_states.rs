//! Per-item recorded state, kept compact: a few bytes per item in parallel columns (status,
//! attempts, duration), with the rare values (exit codes of failures, captured outputs) in
//! side tables. Ten million items take about 70 MB, 150 MB when their usage (peak memory,
//! CPU time) was measured.

use std::collections::HashMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::state::records::{ItemStatus, Usage};

/// The recorded state of every selected item, by index.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ItemStates {
    status: Vec<ItemStatus>,
    /// Attempts made in the job (saturating at 65,535).
    attempts: Vec<u16>,
    /// Wall time of the item's last run, all attempts included (saturating at ~49 days).
    duration_ms: Vec<u32>,
    exit_code: HashMap<u32, i32>,
    captured: HashMap<u32, Box<Map<String, Value>>>,
    /// Peak RSS (KiB) and CPU time (ms) of each item's latest measured attempt (saturating
    /// at 4 TiB and ~49 days; `[0, 0]`: not measured). Empty until an attempt is measured.
    usage: Vec<[u32; 2]>,
}

/// One item's state, as a value (for tests, the old checkpoint format, and callers that want
/// everything at once).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ItemState {
    #[serde(rename = "s")]
    pub status: ItemStatus,
    #[serde(rename = "a", default)]
    pub attempts: u32,
    #[serde(rename = "d", default)]
    pub duration_ms: u64,
    #[serde(rename = "x", default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(rename = "c", default, skip_serializing_if = "Option::is_none")]
    pub captured: Option<Box<Map<String, Value>>>,
    /// What the item's latest measured attempt used.
    #[serde(rename = "u", default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
}

impl ItemStates {
    /// `n` pending items.
    pub fn new(n: usize) -> Self {
        ItemStates {
            status: vec![ItemStatus::Pending; n],
            attempts: vec![0; n],
            duration_ms: vec![0; n],
            exit_code: HashMap::new(),
            captured: HashMap::new(),
            usage: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.status.len()
    }

    pub fn is_empty(&self) -> bool {
        self.status.is_empty()
    }

    pub fn contains(&self, idx: usize) -> bool {
        idx < self.len()
    }

    pub fn status(&self, idx: usize) -> ItemStatus {
        self.status.get(idx).copied().unwrap_or_default()
    }

    pub fn attempts(&self, idx: usize) -> u32 {
        self.attempts.get(idx).copied().unwrap_or(0).into()
    }

    pub fn duration_ms(&self, idx: usize) -> u64 {
        self.duration_ms.get(idx).copied().unwrap_or(0).into()
    }

    pub fn exit_code(&self, idx: usize) -> Option<i32> {
        self.exit_code.get(&key(idx)).copied()
    }

    pub fn captured(&self, idx: usize) -> Option<&Map<String, Value>> {
        self.captured.get(&key(idx)).map(|b| &**b)
    }

    /// What the item's latest measured attempt used.
    pub fn usage(&self, idx: usize) -> Option<Usage> {
        match self.usage.get(idx) {
            Some(&[rss, cpu]) if rss > 0 || cpu > 0 => Some(Usage {
                peak_rss_kb: rss.into(),
                cpu_ms: cpu.into(),
            }),
            _ => None,
        }
    }

    /// Everything about one item.
    pub fn get(&self, idx: usize) -> ItemState {
        ItemState {
            status: self.status(idx),
            attempts: self.attempts(idx),
            duration_ms: self.duration_ms(idx),
            exit_code: self.exit_code(idx),
            captured: self.captured(idx).map(|m| Box::new(m.clone())),
            usage: self.usage(idx),
        }
    }

    /// Keep what the item's latest attempt used (`None`: not measured; the column is only
    /// allocated once something was).
    pub fn set_usage(&mut self, idx: usize, usage: Option<Usage>) {
        if !self.contains(idx) || (usage.is_none() && self.usage.is_empty()) {
            return;
        }
        if self.usage.is_empty() {
            self.usage = vec![[0, 0]; self.len()];
        }
        let u = usage.unwrap_or_default();
        let sat = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
        self.usage[idx] = [sat(u.peak_rss_kb), sat(u.cpu_ms)];
    }

    /// Peak RSS (KiB) and CPU time (ms) of the items whose latest attempt was measured.
    pub fn usages(&self) -> (Vec<u64>, Vec<u64>) {
        self.usage
            .iter()
            .filter(|[rss, cpu]| *rss > 0 || *cpu > 0)
            .map(|[rss, cpu]| (u64::from(*rss), u64::from(*cpu)))
            .unzip()
    }

    /// Set the status; returns the old one (`None` for an index out of range).
    pub fn set_status(&mut self, idx: usize, status: ItemStatus) -> Option<ItemStatus> {
        let slot = self.status.get_mut(idx)?;
        Some(std::mem::replace(slot, status))
    }

    /// Attempt numbers only grow (a started attempt counts even if its end was lost).
    pub fn raise_attempts(&mut self, idx: usize, attempts: u32) {
        if let Some(a) = self.attempts.get_mut(idx) {
            *a = (*a).max(attempts.min(u16::MAX.into()) as u16);
        }
    }

    pub fn set_exit_code(&mut self, idx: usize, code: Option<i32>) {
        if !self.contains(idx) {
            return;
        }
        match code {
            Some(c) => self.exit_code.insert(key(idx), c),
            None => self.exit_code.remove(&key(idx)),
        };
    }

    /// The end of an item's run: its duration, last exit code and captured values.
    pub fn set_done(
        &mut self,
        idx: usize,
        duration_ms: u64,
        exit_code: Option<i32>,
        captured: &Map<String, Value>,
    ) {
        let Some(d) = self.duration_ms.get_mut(idx) else {
            return;
        };
        *d = duration_ms.min(u32::MAX.into()) as u32;
        self.set_exit_code(idx, exit_code);
        if captured.is_empty() {
            self.captured.remove(&key(idx));
        } else {
            self.captured.insert(key(idx), Box::new(captured.clone()));
        }
    }

    /// Indexes of items with `status`, in item order.
    pub fn with_status(&self, status: ItemStatus) -> impl Iterator<Item = usize> + '_ {
        self.status
            .iter()
            .enumerate()
            .filter(move |(_, s)| **s == status)
            .map(|(i, _)| i)
    }

    /// Durations of finished items, for percentiles.
    pub fn durations(&self) -> Vec<u64> {
        self.status
            .iter()
            .zip(&self.duration_ms)
            .filter(|(s, _)| **s != ItemStatus::Pending)
            .map(|(_, d)| u64::from(*d))
            .collect()
    }

    /// The fixed-size columns: status codes, attempts, durations (for the checkpoint).
    pub fn columns(&self) -> (&[ItemStatus], &[u16], &[u32]) {
        (&self.status, &self.attempts, &self.duration_ms)
    }

    /// The usage column: empty, or one `[peak_rss_kb, cpu_ms]` per item (for the checkpoint).
    pub fn usage_column(&self) -> &[[u32; 2]] {
        &self.usage
    }

    /// The sparse side tables (for the checkpoint).
    pub fn sparse(&self) -> Sparse<'_> {
        Sparse {
            exit_code: self.exit_code.iter().map(|(k, v)| (*k, *v)).collect(),
            captured: self.captured.iter().map(|(k, v)| (*k, &**v)).collect(),
        }
    }

    /// Rebuild from checkpoint columns and side tables.
    pub fn from_parts(
        status: Vec<ItemStatus>,
        attempts: Vec<u16>,
        duration_ms: Vec<u32>,
        usage: Vec<[u32; 2]>,
        sparse: SparseOwned,
    ) -> Self {
        ItemStates {
            status,
            attempts,
            duration_ms,
            usage,
            exit_code: sparse.exit_code.into_iter().collect(),
            captured: sparse
                .captured
                .into_iter()
                .map(|(k, v)| (k, Box::new(v)))
                .collect(),
        }
    }
}

fn key(idx: usize) -> u32 {
    u32::try_from(idx).unwrap_or(u32::MAX)
}

/// The side tables, borrowed for writing.
#[derive(Debug, Serialize)]
pub struct Sparse<'a> {
    pub exit_code: Vec<(u32, i32)>,
    pub captured: Vec<(u32, &'a Map<String, Value>)>,
}

/// The side tables, read back.
#[derive(Debug, Default, Deserialize)]
pub struct SparseOwned {
    #[serde(default)]
    pub exit_code: Vec<(u32, i32)>,
    #[serde(default)]
    pub captured: Vec<(u32, Map<String, Value>)>,
}

/// Serialized as the list of per-item objects (`{"s": ..., "a": ..., "d": ...}`), the
/// format of version 1 checkpoints.
impl Serialize for ItemStates {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq((0..self.len()).map(|i| self.get(i)))
    }
}

impl<'de> Deserialize<'de> for ItemStates {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let all = Vec::<ItemState>::deserialize(d)?;
        let mut out = ItemStates::new(all.len());
        for (i, st) in all.into_iter().enumerate() {
            out.set_status(i, st.status);
            out.raise_attempts(i, st.attempts);
            out.set_done(
                i,
                st.duration_ms,
                st.exit_code,
                st.captured.as_deref().unwrap_or(&Map::new()),
            );
            out.set_usage(i, st.usage);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_and_side_tables() {
        let mut s = ItemStates::new(3);
        assert_eq!(s.status(1), ItemStatus::Pending);
        assert_eq!(s.set_status(1, ItemStatus::Dlq), Some(ItemStatus::Pending));
        s.raise_attempts(1, 4);
        s.raise_attempts(1, 2);
        assert_eq!(s.attempts(1), 4);
        let mut cap = Map::new();
        cap.insert("k".into(), Value::from(1));
        s.set_done(1, 1234, Some(3), &cap);
        assert_eq!(s.exit_code(1), Some(3));
        assert_eq!(s.captured(1).unwrap()["k"], 1);
        s.set_done(1, 10, None, &Map::new());
        assert_eq!(s.exit_code(1), None);
        assert!(s.captured(1).is_none());
        assert_eq!(s.with_status(ItemStatus::Dlq).collect::<Vec<_>>(), vec![1]);
        assert_eq!(s.set_status(9, ItemStatus::Dlq), None);
    }

    #[test]
    fn usage_is_a_column_allocated_once_measured() {
        let mut s = ItemStates::new(3);
        s.set_usage(1, None);
        assert!(s.usage_column().is_empty());
        let u = Usage {
            peak_rss_kb: 2048,
            cpu_ms: 7,
        };
        s.set_usage(1, Some(u));
        assert_eq!(s.usage_column().len(), 3);
        assert_eq!(s.usage(1), Some(u));
        assert_eq!(s.usage(0), None);
        assert_eq!(s.usages(), (vec![2048], vec![7]));
        s.set_usage(
            2,
            Some(Usage {
                peak_rss_kb: u64::MAX,
                cpu_ms: 1,
            }),
        );
        assert_eq!(s.usage(2).unwrap().peak_rss_kb, u64::from(u32::MAX));
        s.set_usage(1, None);
        assert_eq!(s.usage(1), None, "a later unmeasured attempt replaces it");
        let back: ItemStates = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back.usage(2), s.usage(2));
    }

    #[test]
    fn the_old_object_list_round_trips() {
        let mut s = ItemStates::new(2);
        s.set_status(0, ItemStatus::Succeeded);
        s.raise_attempts(0, 2);
        s.set_done(0, 55, Some(7), &Map::new());
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(
            json,
            r#"[{"s":"succeeded","a":2,"d":55,"x":7},{"s":"pending","a":0,"d":0}]"#
        );
        let back: ItemStates = serde_json::from_str(&json).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn a_few_bytes_per_item() {
        let per_item = std::mem::size_of::<ItemStatus>() + 2 + 4;
        assert!(per_item <= 8, "{per_item}");
    }
}
