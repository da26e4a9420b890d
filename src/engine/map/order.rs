//! Which items a run takes on, in which order, and what a resume would do. The run itself
//! (`phases::build_queue`) and `resume --dry-run` share [`queue_order`], so the preview
//! counts exactly the items a resume runs.

use serde::Serialize;

use crate::engine::phases::RunKind;
use crate::state::job::JobView;
use crate::state::records::ItemStatus;

/// The indexes of the items a run of `kind` queues, in order: pending, then (resume)
/// failed and DLQ items; each item once, since an item has one status in the journal (an
/// item both pending and in `dlq.jsonl` is pending: pending wins). `id_of` gives an
/// item's id (only `dlq retry` of named items needs it).
pub fn queue_order<'a>(
    kind: &RunKind,
    view: &JobView,
    id_of: impl Fn(usize) -> Option<&'a str>,
) -> Vec<usize> {
    let mut order: Vec<usize> = Vec::new();
    match kind {
        RunKind::Run => order.extend(view.with_status(ItemStatus::Pending)),
        RunKind::Resume { pending_only } => {
            order.extend(view.with_status(ItemStatus::Pending));
            if !pending_only {
                order.extend(view.with_status(ItemStatus::Failed));
                order.extend(view.with_status(ItemStatus::Dlq));
            }
        }
        RunKind::DlqRetry { items: wanted } => {
            order.extend(view.with_status(ItemStatus::Dlq).filter(|i| {
                wanted.is_empty() || id_of(*i).is_some_and(|id| wanted.iter().any(|w| w == id))
            }));
        }
    }
    order
}

/// Queued items by the status they come from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct BySource {
    pub pending: usize,
    /// Failed for good under `on_item_failure: skip`.
    pub failed: usize,
    pub dlq: usize,
    pub total: usize,
}

/// What `runner resume` would do, from the recorded state alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResumePlan {
    /// `None` while the items are not selected yet (setup unfinished): the map would run
    /// every item selected after setup.
    pub items: Option<BySource>,
    /// Setup steps that would run (from the first unfinished one).
    pub setup_steps: usize,
    /// Reduce steps that would run once the map leaves no item pending (from the first,
    /// when failed or DLQ items run again).
    pub reduce_steps: usize,
}

/// The plan of a resume (`pending_only`: `--pending-only`) of a job with `setup_total`
/// setup and `reduce_total` reduce steps.
pub fn resume_plan(
    view: &JobView,
    pending_only: bool,
    setup_total: usize,
    reduce_total: usize,
) -> ResumePlan {
    let setup_steps = setup_total.saturating_sub(view.setup_done);
    if !view.map_started {
        return ResumePlan {
            items: None,
            setup_steps,
            reduce_steps: reduce_total,
        };
    }
    let order = queue_order(&RunKind::Resume { pending_only }, view, |_| None);
    let mut by = BySource {
        total: order.len(),
        ..BySource::default()
    };
    for idx in order {
        match view.items.status(idx) {
            ItemStatus::Pending => by.pending += 1,
            ItemStatus::Failed => by.failed += 1,
            ItemStatus::Dlq => by.dlq += 1,
            ItemStatus::Succeeded | ItemStatus::Purged => {}
        }
    }
    // Re-running a finished item resets reduce to its first step.
    let reduce_done = if by.failed + by.dlq > 0 {
        0
    } else {
        view.reduce_done
    };
    ResumePlan {
        items: Some(by),
        setup_steps,
        reduce_steps: reduce_total.saturating_sub(reduce_done),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Items 0..6: succeeded, dlq, pending, failed, dlq, purged; one setup step done.
    fn view() -> JobView {
        JobView {
            setup_done: 1,
            ..JobView::with_statuses(&[
                ItemStatus::Succeeded,
                ItemStatus::Dlq,
                ItemStatus::Pending,
                ItemStatus::Failed,
                ItemStatus::Dlq,
                ItemStatus::Purged,
            ])
        }
    }

    #[test]
    fn order_by_kind() {
        let v = view();
        let ids = ["a", "b", "c", "d", "e", "f"];
        let id_of = |i: usize| ids.get(i).copied();
        let resume = |p| queue_order(&RunKind::Resume { pending_only: p }, &v, id_of);
        assert_eq!(resume(false), [2, 3, 1, 4], "pending, failed, DLQ");
        assert_eq!(resume(true), [2]);
        assert_eq!(queue_order(&RunKind::Run, &v, id_of), [2]);
        let retry = |w: &[&str]| {
            let items = w.iter().map(|s| s.to_string()).collect();
            queue_order(&RunKind::DlqRetry { items }, &v, id_of)
        };
        assert_eq!(retry(&[]), [1, 4]);
        assert_eq!(retry(&["e", "c"]), [4], "only DLQ items, named ones");
    }

    #[test]
    fn plan_counts_by_source() {
        let mut v = view();
        let p = resume_plan(&v, false, 2, 3);
        assert_eq!(
            p.items,
            Some(BySource {
                pending: 1,
                failed: 1,
                dlq: 2,
                total: 4
            })
        );
        assert_eq!(p.setup_steps, 1);
        assert_eq!(p.reduce_steps, 3);
        let p = resume_plan(&v, true, 2, 3);
        assert_eq!(
            p.items,
            Some(BySource {
                pending: 1,
                total: 1,
                ..BySource::default()
            })
        );
        // A pending-only resume after reduce step 1 of 3 ran continues reduce from step 2.
        v.reduce_done = 1;
        assert_eq!(resume_plan(&v, true, 2, 3).reduce_steps, 2);
        assert_eq!(resume_plan(&v, false, 2, 3).reduce_steps, 3);
    }

    #[test]
    fn plan_before_items_are_selected() {
        let v = JobView::default();
        let p = resume_plan(&v, false, 2, 1);
        assert_eq!(
            p,
            ResumePlan {
                items: None,
                setup_steps: 2,
                reduce_steps: 1
            }
        );
    }
}
