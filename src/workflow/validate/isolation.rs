//! Git worktree isolation: `isolation:` and Prodigy's `merge:` block.

use serde_saphyr::{Location, Spanned};

use super::ctx::{Ctx, duration};
use super::steps::phase_steps;
use crate::workflow::error::WorkflowError;
use crate::workflow::model::{ExecutorKind, Isolation, MergeSpec};
use crate::workflow::raw::RawWorkflow;
use crate::workflow::template::scope::{Part, Scope};

/// `isolation: worktree | none` (default: worktrees for a Prodigy-format file in a git work
/// tree); worktrees need the local executor.
pub(super) fn isolation(
    cx: &Ctx,
    raw: &RawWorkflow,
    executor: ExecutorKind,
) -> Result<Isolation, WorkflowError> {
    let Some(i) = &raw.isolation else {
        return Ok(Isolation::Auto);
    };
    let value = match i.value.trim().to_ascii_lowercase().as_str() {
        "worktree" => Isolation::Worktree,
        "none" => Isolation::None,
        other => {
            return Err(cx.err(
                i.referenced,
                format!("unknown isolation {other:?}: use `worktree` or `none`"),
            ));
        }
    };
    if value == Isolation::Worktree && executor != ExecutorKind::Local {
        return Err(cx.err(
            i.referenced,
            format!(
                "`isolation: worktree` runs with the local executor only, not `executor: {}`: remove one of them",
                executor.name()
            ),
        ));
    }
    Ok(value)
}

/// Prodigy's `merge:` block (`${merge.*}` and setup's captures in scope); it needs
/// worktrees, so it is an error where they are off.
pub(super) fn merge_spec(
    cx: &Ctx,
    raw: &RawWorkflow,
    setup_captures: &[String],
) -> Option<MergeSpec> {
    let m = raw.merge.as_ref()?;
    let off = match raw
        .isolation
        .as_ref()
        .map(|i| i.value.trim().to_ascii_lowercase())
    {
        Some(i) => i == "none",
        None => raw.mode.is_none(),
    };
    if off {
        cx.report(cx.err(
            m.referenced,
            "`merge:` runs after reduce in the job's git worktree: add `isolation: worktree` (or `mode: mapreduce`), or remove it",
        ));
    }
    let mut scope = Scope::new(Part::Merge).with_captures(setup_captures);
    let steps = phase_steps(cx, m, &mut scope);
    let timeout = match &m.value.timeout {
        Some(t) => Some(cx.keep(duration(
            cx,
            &Spanned::new(t.clone(), m.referenced, Location::UNKNOWN),
        ))?),
        None => None,
    };
    Some(MergeSpec { steps, timeout })
}
