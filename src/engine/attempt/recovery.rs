//! A step with its `on_failure`, the same in every phase: after a failed attempt of the step
//! its handlers run in order (a failed handler stops them, unless it has
//! `continue_on_error`, and fails the step when `handler_failure_fatal`); while attempts are
//! left the step runs again; at the end the failure is forgiven unless the step `fail`s
//! anyway.
//! `${shell.*}` follows every step and handler that keeps its output. A step that succeeded
//! is then checked by its `validate:` ([`super::validation`]); when that fails the step, it
//! is a failed attempt like any other.

use std::future::Future;

use serde_json::{Map, Value};

use crate::engine::attempt::step::StepOutcome;
use crate::engine::attempt::validation::validate;
use crate::state::records::Failure;
use crate::workflow::model::Step;

/// The key of `${shell.*}` among a unit's values (a reserved name, so no capture).
pub const SHELL: &str = "shell";

/// Runs one step or handler of a unit (an item attempt, the setup, the reduce) with the
/// unit's values so far.
pub trait StepRunner {
    fn run_one(
        &mut self,
        step: &Step,
        index: usize,
        values: &Map<String, Value>,
    ) -> impl Future<Output = StepOutcome> + Send;

    /// Tell the user about something that did not stop the unit (a step's `validate:` that
    /// stayed incomplete without failing it).
    fn warn(&mut self, message: String);
}

/// How a step ended, its handlers and retries included.
#[derive(Debug)]
pub enum Ended {
    Ok {
        captured: Option<(String, Value)>,
    },
    /// It failed, and `on_failure` forgave it: the unit goes on.
    Forgiven {
        failure: Failure,
    },
    Failed {
        failure: Failure,
        stderr_tail: String,
    },
}

/// Run `step` (number `index` of its phase) with its `on_failure`; `values` gains
/// `${shell.*}` of what ran.
pub async fn run_step<R: StepRunner>(
    r: &mut R,
    step: &Step,
    index: usize,
    values: &mut Map<String, Value>,
) -> Ended {
    let attempts = step.on_failure.as_ref().map_or(1, |o| o.attempts.max(1));
    let mut n = 0;
    loop {
        n += 1;
        let out = r.run_one(step, index, values).await;
        if let Some(s) = out.shell() {
            values.insert(SHELL.into(), s.clone());
        }
        let (failure, stderr_tail) = match out {
            StepOutcome::Ok { captured, .. } => match validate(r, step, index, values).await {
                None => return Ended::Ok { captured },
                Some(failure) => (failure, String::new()),
            },
            StepOutcome::Failed {
                failure,
                stderr_tail,
                ..
            } => (failure, stderr_tail),
        };
        let Some(of) = step.on_failure.as_ref() else {
            return Ended::Failed {
                failure,
                stderr_tail,
            };
        };
        // Prodigy: a failed handler fails the step only when `handler_failure_fatal`; else
        // the step is retried, or ends as `fail_workflow` says, as after a handler that worked.
        if matches!(failure, Failure::Cancelled { .. })
            || handlers(r, &of.handlers, index, values)
                .await
                .is_some_and(|h| matches!(h, Failure::Cancelled { .. }) || of.handler_failure_fatal)
        {
            return Ended::Failed {
                failure,
                stderr_tail,
            };
        }
        if n < attempts {
            continue;
        }
        return if of.fail {
            Ended::Failed {
                failure,
                stderr_tail,
            }
        } else {
            Ended::Forgiven { failure }
        };
    }
}

/// Run handlers in order; the failure of the one that failed (and does not
/// `continue_on_error`) or was cancelled.
pub(crate) async fn handlers<R: StepRunner>(
    r: &mut R,
    hs: &[Step],
    index: usize,
    values: &mut Map<String, Value>,
) -> Option<Failure> {
    for h in hs {
        let out = r.run_one(h, index, values).await;
        if let Some(s) = out.shell() {
            values.insert(SHELL.into(), s.clone());
        }
        if let StepOutcome::Failed { failure, .. } = out
            && (matches!(failure, Failure::Cancelled { .. }) || !h.continue_on_error)
        {
            return Some(failure);
        }
    }
    None
}
