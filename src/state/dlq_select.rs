//! Which DLQ entries count, and which a command selects.
//!
//! One rule, one number: the journal is the truth. An entry of `dlq.jsonl` counts only
//! while the journal has its item in the `dlq` state, so `dlq list` shows exactly the
//! items `status` counts as `dlq`. The entry of an item that is still pending (a crash
//! between the DLQ write and the journal record: resume runs it once) or was purged (a
//! crash inside `dlq purge`) does not count.
//!
//! Filters (`--class`, `--since`) narrow the counted entries further.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use crate::state::dlq::DlqEntry;
use crate::state::job::JobView;
use crate::state::records::ItemStatus;

/// The DLQ entries split by what the journal says about their items.
#[derive(Debug, Default, PartialEq)]
pub struct Counted {
    /// Entries whose item is in the `dlq` state: the DLQ.
    pub in_dlq: Vec<DlqEntry>,
    /// Entries whose item is in another state (`None`: not an item of the job).
    pub stray: Vec<(DlqEntry, Option<ItemStatus>)>,
}

/// Split `entries` by the journal's status of their items (`index` gives the index of each
/// entry's item among the job's frozen items; ids it lacks are not items of the job). Order
/// is kept.
pub fn by_journal(
    entries: Vec<DlqEntry>,
    index: &HashMap<String, usize>,
    view: &JobView,
) -> Counted {
    let status = |id: &str| {
        index
            .get(id)
            .filter(|idx| view.items.contains(**idx))
            .map(|idx| view.items.status(*idx))
    };
    let mut out = Counted::default();
    for e in entries {
        match status(&e.item_id) {
            Some(ItemStatus::Dlq) => out.in_dlq.push(e),
            other => out.stray.push((e, other)),
        }
    }
    out
}

/// `--class` and `--since`: an entry matches when its last failure has one of `classes`
/// (any class when empty) and happened at most `since` ago (any time when `None`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DlqFilter {
    pub classes: Vec<String>,
    pub since: Option<Duration>,
}

impl DlqFilter {
    /// No filter given: every entry matches.
    pub fn is_empty(&self) -> bool {
        self.classes.is_empty() && self.since.is_none()
    }

    pub fn matches(&self, e: &DlqEntry, now: SystemTime) -> bool {
        let class_ok = self.classes.is_empty()
            || e.last_error()
                .is_some_and(|f| self.classes.iter().any(|c| c == f.class()));
        // A failure in the future (clock skew) is recent.
        let since_ok = self.since.is_none_or(|d| {
            now.duration_since(e.last_failure_at.system_time())
                .map_or(true, |age| age <= d)
        });
        class_ok && since_ok
    }

    /// The entries that match, in order.
    pub fn select(&self, entries: Vec<DlqEntry>, now: SystemTime) -> Vec<DlqEntry> {
        entries
            .into_iter()
            .filter(|e| self.matches(e, now))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::records::{Attempt, Failure};

    fn entry(id: &str, failure: Option<Failure>, last: &str) -> DlqEntry {
        DlqEntry {
            item_id: id.into(),
            item: serde_json::json!({ "id": id }),
            attempts: vec![Attempt {
                attempt: 1,
                started_at: last.into(),
                duration_ms: 1,
                failure,
                stderr_tail: String::new(),
                usage: None,
            }],
            first_failure_at: last.into(),
            last_failure_at: last.into(),
        }
    }

    const T: &str = "2024-01-01T00:00:00Z";

    #[test]
    fn only_items_in_dlq_state_count() {
        let exit = Some(Failure::Exit { code: 1, step: 0 });
        let entries = vec![
            entry("a", exit.clone(), T),
            entry("b", exit.clone(), T),
            entry("c", exit.clone(), T),
            entry("gone", exit.clone(), T),
        ];
        let index: HashMap<String, usize> =
            [("a".to_string(), 0), ("b".into(), 1), ("c".into(), 2)].into();
        let v = JobView::with_statuses(&[ItemStatus::Dlq, ItemStatus::Pending, ItemStatus::Purged]);
        let c = by_journal(entries.clone(), &index, &v);
        assert_eq!(c.in_dlq, vec![entries[0].clone()]);
        assert_eq!(
            c.stray,
            vec![
                (entries[1].clone(), Some(ItemStatus::Pending)),
                (entries[2].clone(), Some(ItemStatus::Purged)),
                (entries[3].clone(), None),
            ]
        );
        // The number is the journal's.
        assert_eq!(c.in_dlq.len(), v.with_status(ItemStatus::Dlq).count());
    }

    #[test]
    fn class_filter() {
        let now = humantime::parse_rfc3339(T).unwrap();
        let entries = vec![
            entry(
                "t",
                Some(Failure::Timeout {
                    after_ms: 1,
                    step: 0,
                }),
                T,
            ),
            entry("x", Some(Failure::Exit { code: 3, step: 0 }), T),
            entry("s", Some(Failure::Signal { signal: 9, step: 0 }), T),
            entry("none", None, T),
        ];
        let ids = |f: &DlqFilter| -> Vec<String> {
            f.select(entries.clone(), now)
                .into_iter()
                .map(|e| e.item_id)
                .collect()
        };
        let all = DlqFilter::default();
        assert!(all.is_empty());
        assert_eq!(ids(&all), ["t", "x", "s", "none"]);
        let f = DlqFilter {
            classes: vec!["timeout".into(), "signal".into()],
            since: None,
        };
        assert!(!f.is_empty());
        assert_eq!(ids(&f), ["t", "s"]);
        let f = DlqFilter {
            classes: vec!["spawn".into()],
            since: None,
        };
        assert!(ids(&f).is_empty());
    }

    #[test]
    fn since_filter() {
        let now = humantime::parse_rfc3339("2024-01-01T01:00:00Z").unwrap();
        let entries = vec![
            entry("old", None, "2024-01-01T00:00:00Z"),
            entry("recent", None, "2024-01-01T00:59:00.500Z"),
            entry("future", None, "2024-01-01T02:00:00Z"),
        ];
        let f = |secs| DlqFilter {
            classes: Vec::new(),
            since: Some(Duration::from_secs(secs)),
        };
        let ids = |f: DlqFilter| -> Vec<String> {
            f.select(entries.clone(), now)
                .into_iter()
                .map(|e| e.item_id)
                .collect()
        };
        assert_eq!(ids(f(120)), ["recent", "future"]);
        assert_eq!(ids(f(3600)), ["old", "recent", "future"]);
        // Both filters: intersection.
        let both = DlqFilter {
            classes: vec!["exit".into()],
            since: Some(Duration::from_secs(3600)),
        };
        assert!(ids(both).is_empty());
    }
}
