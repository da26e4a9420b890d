//! The dispatcher's bookkeeping of a map run: items waiting to be submitted (now, or after a
//! retry delay, by index only), and for every item the run is working on, its value and the
//! attempts it made so far. Items' values are loaded from an [`ItemSource`] when their first
//! attempt is submitted, so memory grows with the attempts in flight, not with the items.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::Arc;

use tokio::time::Instant;

use crate::engine::map::backend::AttemptRun;
use crate::items::Item;
use crate::state::error::StateError;
use crate::state::items_file::ItemStore;
use crate::state::job::JobView;
use crate::state::records::Attempt;

/// Where the values of a job's items come from.
pub trait ItemSource: Sync {
    fn item(&self, idx: usize) -> Result<Arc<Item>, StateError>;
}

impl ItemSource for ItemStore {
    fn item(&self, idx: usize) -> Result<Arc<Item>, StateError> {
        self.get(idx)
    }
}

/// Items held in memory (tests, small jobs).
impl ItemSource for Vec<Arc<Item>> {
    fn item(&self, idx: usize) -> Result<Arc<Item>, StateError> {
        self.get(idx).cloned().ok_or_else(|| StateError::Corrupt {
            path: "items".into(),
            detail: format!("there is no item {idx}"),
        })
    }
}

/// The items a run takes on, as [`crate::engine::map::backend::MapBackend::adopt`] sees
/// them: which are queued, the attempts earlier runs made, and their values on demand.
pub struct Candidates<'a> {
    queued: Vec<u64>,
    count: usize,
    view: &'a JobView,
    items: &'a dyn ItemSource,
}

impl<'a> Candidates<'a> {
    pub fn new(queue: &[u32], view: &'a JobView, items: &'a dyn ItemSource) -> Self {
        let max = queue.iter().copied().max().map_or(0, |m| m as usize + 1);
        let mut queued = vec![0u64; max.div_ceil(64)];
        for &i in queue {
            queued[i as usize / 64] |= 1 << (i % 64);
        }
        Candidates {
            queued,
            count: queue.len(),
            view,
            items,
        }
    }

    /// Is item `idx` one this run takes on?
    pub fn contains(&self, idx: usize) -> bool {
        self.queued
            .get(idx / 64)
            .is_some_and(|w| w & (1 << (idx % 64)) != 0)
    }

    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The queued items' indexes, in order.
    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.queued.len() * 64).filter(|i| self.contains(*i))
    }

    /// Attempts earlier runs made of item `idx`.
    pub fn prior_attempts(&self, idx: usize) -> u32 {
        self.view.items.attempts(idx)
    }

    pub fn item(&self, idx: usize) -> Result<Arc<Item>, StateError> {
        self.items.item(idx)
    }

    /// Everything about a queued item, as its [`Work`] starts with.
    pub fn run(&self, idx: usize) -> Result<ItemRun, StateError> {
        Ok(ItemRun {
            idx,
            item: self.item(idx)?,
            prior_attempts: self.prior_attempts(idx),
        })
    }
}

/// One item a run works on.
#[derive(Debug, Clone)]
pub struct ItemRun {
    pub idx: usize,
    pub item: Arc<Item>,
    /// Attempts made by earlier runs of the job (numbering continues after them).
    pub prior_attempts: u32,
}

/// What the run knows about an item between its first attempt and its final record.
#[derive(Debug)]
pub struct Work {
    pub run: ItemRun,
    /// Attempts of this run that ended (failed ones; the last one may have succeeded).
    pub attempts: Vec<Attempt>,
    /// Attempts of this run that count against `retry.max_attempts` (lost ones do not).
    pub tries: u32,
    /// Attempts the backend lost.
    pub lost: u32,
    /// The highest attempt number used so far.
    pub last_attempt: u32,
    pub started: Instant,
}

impl Work {
    fn new(run: ItemRun) -> Self {
        Work {
            last_attempt: run.prior_attempts,
            run,
            attempts: Vec::new(),
            tries: 0,
            lost: 0,
            started: Instant::now(),
        }
    }

    /// The next attempt of this item.
    pub fn next_attempt(&mut self) -> AttemptRun {
        if self.attempts.is_empty() && self.last_attempt == self.run.prior_attempts {
            // The item's duration starts with its first attempt, not when it was queued.
            self.started = Instant::now();
        }
        self.last_attempt += 1;
        AttemptRun {
            idx: self.run.idx,
            item: self.run.item.clone(),
            attempt: self.last_attempt,
        }
    }
}

/// Items waiting for a slot, in order, and items waiting for their retry delay.
#[derive(Debug, Default)]
pub struct Waiting {
    ready: VecDeque<u32>,
    delayed: BinaryHeap<Reverse<(Instant, u64, usize)>>,
    seq: u64,
}

impl Waiting {
    /// Items that have not started, in order.
    pub fn with_ready(ready: impl IntoIterator<Item = u32>) -> Self {
        Waiting {
            ready: ready.into_iter().collect(),
            ..Waiting::default()
        }
    }

    pub fn push_ready(&mut self, idx: usize) {
        self.ready.push_back(idx as u32);
    }

    /// Wait until `at` before the item's next attempt.
    pub fn push_delayed(&mut self, idx: usize, at: Instant) {
        self.seq += 1;
        self.delayed.push(Reverse((at, self.seq, idx)));
    }

    /// Move delayed items whose time has come to the front of the ready ones (a retry goes
    /// before items that have not started, so a failing item finishes soon).
    pub fn promote(&mut self, now: Instant) {
        let mut due = Vec::new();
        while let Some(Reverse((at, _, idx))) = self.delayed.peek().copied() {
            if at > now {
                break;
            }
            self.delayed.pop();
            due.push(idx);
        }
        for idx in due.into_iter().rev() {
            self.ready.push_front(idx as u32);
        }
    }

    pub fn pop_ready(&mut self) -> Option<usize> {
        self.ready.pop_front().map(|i| i as usize)
    }

    pub fn has_ready(&self) -> bool {
        !self.ready.is_empty()
    }

    /// When the next delayed item becomes ready.
    pub fn next_due(&self) -> Option<Instant> {
        self.delayed.peek().map(|Reverse((at, _, _))| *at)
    }

    pub fn is_empty(&self) -> bool {
        self.ready.is_empty() && self.delayed.is_empty()
    }

    /// Drop these items (adopted by the backend: they are in flight).
    pub fn remove(&mut self, idxs: &[usize]) {
        if idxs.is_empty() {
            return;
        }
        let gone: std::collections::HashSet<u32> = idxs.iter().map(|i| *i as u32).collect();
        self.ready.retain(|i| !gone.contains(i));
    }
}

/// Everything the run is working on, by item index.
#[derive(Debug, Default)]
pub struct Works(HashMap<usize, Work>);

impl Works {
    pub fn start(&mut self, run: ItemRun) {
        self.0.insert(run.idx, Work::new(run));
    }

    pub fn contains(&self, idx: usize) -> bool {
        self.0.contains_key(&idx)
    }

    pub fn get_mut(&mut self, idx: usize) -> Option<&mut Work> {
        self.0.get_mut(&idx)
    }

    pub fn take(&mut self, idx: usize) -> Option<Work> {
        self.0.remove(&idx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn retries_become_ready_in_time_order_before_fresh_items() {
        let now = Instant::now();
        let mut w = Waiting::default();
        w.push_ready(1);
        w.push_ready(2);
        w.push_delayed(7, now + Duration::from_secs(2));
        w.push_delayed(8, now + Duration::from_secs(1));
        assert_eq!(w.next_due(), Some(now + Duration::from_secs(1)));
        w.promote(now);
        assert_eq!(w.pop_ready(), Some(1));
        w.promote(now + Duration::from_secs(3));
        assert_eq!(w.pop_ready(), Some(8));
        assert_eq!(w.pop_ready(), Some(7));
        assert_eq!(w.pop_ready(), Some(2));
        assert!(w.is_empty());
    }

    #[test]
    fn attempt_numbers_continue_after_earlier_runs() {
        let mut work = Work::new(ItemRun {
            idx: 3,
            item: Arc::new(Item {
                id: "x".into(),
                value: serde_json::json!(1),
            }),
            prior_attempts: 2,
        });
        assert_eq!(work.next_attempt().attempt, 3);
        assert_eq!(work.next_attempt().attempt, 4);
    }
}
