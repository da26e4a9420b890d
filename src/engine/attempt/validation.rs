//! A step's `validate:` (Prodigy's step validation), run after the step succeeded, through
//! the same [`StepRunner`] as the step itself (its logs, time limits, process groups,
//! cancellation). As in Prodigy: the result is the JSON the command prints, or its
//! `result_file`; a command that fails is 0%; output that is not a result counts as complete;
//! while the result is below the threshold the `on_incomplete` handlers run (with
//! `${validation.*}`) and validation repeats, up to `max_attempts` rounds.

use serde_json::{Map, Value};

use crate::engine::attempt::recovery::{StepRunner, handlers};
use crate::engine::attempt::step::StepOutcome;
use crate::engine::attempt::validation_result::ValidationResult;
use crate::state::records::Failure;
use crate::workflow::model::Step;
use crate::workflow::step_validation::Validation;

/// The key of `${validation.*}` among a unit's values (a reserved name, so no capture).
pub const VALIDATION: &str = "validation";

/// Check `step` (number `index` of its phase), which succeeded; the failure that fails it,
/// if any (`Cancelled` when the run was stopped meanwhile).
pub async fn validate<R: StepRunner>(
    r: &mut R,
    step: &Step,
    index: usize,
    values: &Map<String, Value>,
) -> Option<Failure> {
    let v = step.validate.as_deref()?;
    let mut result = match check(r, v, index, values).await {
        Ok(res) => res,
        Err(cancelled) => return Some(cancelled),
    };
    if result.meets(v.threshold) {
        return None;
    }
    let Some(oi) = &v.on_incomplete else {
        r.warn(format!(
            "step {}: validation {}; without `on_incomplete` the step goes on",
            index + 1,
            describe(&result, v.threshold)
        ));
        return None;
    };
    let mut rounds = 0;
    let mut handler_failed = None;
    while rounds < oi.attempts && !result.meets(v.threshold) {
        rounds += 1;
        let mut local = values.clone();
        local.insert(VALIDATION.into(), result.vars());
        match handlers(r, &oi.handlers, index, &mut local).await {
            Some(f @ Failure::Cancelled { .. }) => return Some(f),
            Some(f) => {
                handler_failed = Some(f);
                break;
            }
            None => {}
        }
        result = match check(r, v, index, values).await {
            Ok(res) => res,
            Err(cancelled) => return Some(cancelled),
        };
    }
    if result.meets(v.threshold) {
        return None;
    }
    let mut message = format!(
        "validation {} after {rounds} of {} on_incomplete attempts",
        describe(&result, v.threshold),
        oi.attempts
    );
    if let Some(f) = handler_failed {
        // The handler's own failure, without its step number (it is the step's).
        let what = f.to_string();
        let what = what
            .strip_prefix(&format!("step {} ", index + 1))
            .unwrap_or(&what);
        message.push_str(&format!(" (the on_incomplete handler {what})"));
    }
    if oi.fail {
        return Some(Failure::Validation {
            message,
            step: index,
        });
    }
    r.warn(format!(
        "step {}: {message}; with `fail_workflow: false` the step goes on",
        index + 1
    ));
    None
}

/// One validation: the commands, then the result (`Err` only when cancelled).
async fn check<R: StepRunner>(
    r: &mut R,
    v: &Validation,
    index: usize,
    values: &Map<String, Value>,
) -> Result<ValidationResult, Failure> {
    let mut output = String::new();
    for (i, c) in v.commands.iter().enumerate() {
        match r.run_one(c, index, values).await {
            StepOutcome::Failed {
                failure: f @ Failure::Cancelled { .. },
                ..
            } => return Err(f),
            StepOutcome::Failed { failure, .. } => {
                let which = if v.list {
                    format!("validation command {}", i + 1)
                } else {
                    "the validation command".to_owned()
                };
                let why = without_step(&failure, index);
                return Ok(ValidationResult::failed(format!("{which} {why}")));
            }
            StepOutcome::Ok { shell, .. } => output = output_of(shell.as_ref()),
        }
    }
    let text = match &v.result_file {
        Some(file) => match r.run_one(file, index, values).await {
            StepOutcome::Failed {
                failure: f @ Failure::Cancelled { .. },
                ..
            } => return Err(f),
            StepOutcome::Failed { failure, .. } => {
                let why = match failure {
                    Failure::Spawn { message, .. } => message,
                    other => without_step(&other, index),
                };
                return Ok(ValidationResult::failed(why));
            }
            StepOutcome::Ok { shell, .. } => output_of(shell.as_ref()),
        },
        // Prodigy does not read the output of `commands:`.
        None if v.list => return Ok(ValidationResult::complete()),
        None => output,
    };
    Ok(ValidationResult::parse(&text).unwrap_or_else(|e| {
        r.warn(format!(
            "step {}: the validation output is not a result ({e}); counted as complete, as Prodigy does",
            index + 1
        ));
        ValidationResult::complete()
    }))
}

fn output_of(shell: Option<&Value>) -> String {
    shell
        .and_then(|s| s["output"].as_str())
        .unwrap_or_default()
        .to_owned()
}

/// A failure's text without its `step N ` prefix (the validated step is named already).
fn without_step(failure: &Failure, index: usize) -> String {
    let text = failure.to_string();
    let prefix = format!("step {} ", index + 1);
    text.strip_prefix(&prefix)
        .map(str::to_owned)
        .unwrap_or(text)
}

/// `50% complete, below the threshold of 100% (missing: a, b)`.
fn describe(result: &ValidationResult, threshold: f64) -> String {
    let mut text = format!("{}, below the threshold of {threshold}%", result.summary());
    if !result.missing.is_empty() {
        let missing = result.missing.join(", ");
        let short: String = missing.chars().take(200).collect();
        let more = if short.len() < missing.len() {
            "..."
        } else {
            ""
        };
        text.push_str(&format!(" (missing: {short}{more})"));
    }
    text
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::engine::attempt::run::{run_attempt, tests::ctx};
    use crate::engine::map::backend::AttemptRun;
    use crate::items::Item;
    use crate::state::records::Failure;

    fn item() -> AttemptRun {
        AttemptRun {
            idx: 0,
            item: Arc::new(Item {
                id: "a".into(),
                value: serde_json::json!({"id": "a"}),
            }),
            attempt: 1,
        }
    }

    #[tokio::test]
    async fn incomplete_rounds_of_handlers_then_the_step_fails() {
        let c = ctx(
            "    - shell: 'echo work'\n      validate:\n        shell: 'echo {\"completion_percentage\": 60, \"status\": \"incomplete\"}'\n        threshold: 80\n        on_incomplete:\n          shell: 'echo fix ${validation.completion}'\n          max_attempts: 2\n    - shell: 'echo never'\n",
            None,
        );
        let end = run_attempt(&c, &item(), None).await;
        let failure = end.attempt.failure.expect("failed");
        assert!(
            matches!(failure, Failure::Validation { step: 0, .. }),
            "{failure}"
        );
        assert_eq!(failure.class(), "validation");
        let check = "echo {\"completion_percentage\": 60, \"status\": \"incomplete\"}";
        let ran = c.exec.ran.lock().unwrap().clone();
        assert_eq!(
            ran,
            vec![
                "echo work",
                check,
                "echo fix 60",
                check,
                "echo fix 60",
                check
            ]
        );
    }

    #[tokio::test]
    async fn a_failing_validation_command_is_zero_percent_and_a_step_without_handlers_goes_on() {
        let c = ctx(
            "    - shell: 'echo work'\n      validate:\n        shell: 'exit 3'\n    - shell: 'echo next'\n",
            None,
        );
        let end = run_attempt(&c, &item(), None).await;
        assert!(end.attempt.failure.is_none(), "{:?}", end.attempt);
        let ran = c.exec.ran.lock().unwrap().clone();
        assert_eq!(ran, vec!["echo work", "exit 3", "echo next"]);
    }
}
