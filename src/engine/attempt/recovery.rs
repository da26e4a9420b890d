//! A step with its `on_failure`, the same in every phase: after a failed attempt of the step
//! its handlers run in order (a failed handler stops them, unless it has
//! `continue_on_error`); while attempts are left the step runs again; at the end the failure
//! is forgiven when the last handlers succeeded and the step does not `fail` anyway.
//! `${shell.*}` follows every step and handler that keeps its output.

use std::future::Future;

use serde_json::{Map, Value};

use crate::engine::attempt::step::StepOutcome;
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
            StepOutcome::Ok { captured, .. } => return Ended::Ok { captured },
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
        if matches!(failure, Failure::Cancelled { .. })
            || !handlers(r, &of.handlers, index, values).await
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

/// Run handlers in order; false when one failed (and does not `continue_on_error`) or was
/// cancelled.
async fn handlers<R: StepRunner>(
    r: &mut R,
    hs: &[Step],
    index: usize,
    values: &mut Map<String, Value>,
) -> bool {
    for h in hs {
        let out = r.run_one(h, index, values).await;
        if let Some(s) = out.shell() {
            values.insert(SHELL.into(), s.clone());
        }
        if let StepOutcome::Failed { failure, .. } = out
            && (matches!(failure, Failure::Cancelled { .. }) || !h.continue_on_error)
        {
            return false;
        }
    }
    true
}
