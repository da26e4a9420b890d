//! One attempt of one item: its template steps in order, each rendered with the item's
//! variables, within the item's time limit, with captures and `on_failure` handlers. Owns
//! nothing shared; the caller (a map backend, a Slurm task) reports the result.

use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use crate::engine::attempt::context::AttemptCtx;
use crate::engine::attempt::executor::Executor;
use crate::engine::attempt::step::{self, StepEnv, StepOutcome};
use crate::engine::attempt::vars::item_lookup;
use crate::engine::limits::meter::AttemptResources;
use crate::engine::map::backend::{AttemptEnd, AttemptRun};
use crate::engine::process::shell::SpawnHook;
use crate::items::Item;
use crate::state::records::{Attempt, Failure};
use crate::state::time::Timestamp;
use crate::workflow::model::Step;

/// Run attempt `run.attempt` of item `run.idx`; `on_spawn` is told each step's process
/// group as soon as it exists.
pub async fn run_attempt<E: Executor>(
    ctx: &AttemptCtx<E>,
    run: &AttemptRun,
    on_spawn: Option<SpawnHook>,
) -> AttemptEnd {
    let started_at = Timestamp::now();
    let started = Instant::now();
    let deadline = ctx.timeout.map(|t| started + t);
    let senv = StepEnv {
        dir: ctx.dir.clone(),
        env: item_env(ctx, &run.item, run.attempt),
        kill_grace: ctx.kill_grace,
        log_stem: ctx.logs_dir.as_ref().map(|d| {
            d.join(crate::state::layout::item_file_stem(&run.item.id))
                .join(run.attempt.to_string())
        }),
        tee: false,
        on_spawn,
        kill: ctx.kill.clone(),
        resources: AttemptResources::new(ctx.limits.clone()),
    };
    let mut captured = Map::new();
    let cx = AttemptCx {
        ctx,
        run,
        senv: &senv,
    };
    let mut failure = None;
    let mut stderr_tail = String::new();
    for (i, step) in ctx.steps.iter().enumerate() {
        let (limit, item_limited) = limit_for(step.timeout, deadline);
        match cx.step(&captured, step, i, limit).await {
            StepOutcome::Ok {
                captured: Some((k, v)),
            } => {
                captured.insert(k, v);
            }
            StepOutcome::Ok { captured: None } => {}
            StepOutcome::Failed {
                failure: f,
                stderr_tail: tail,
            } => {
                let f = match (f, item_limited, ctx.timeout) {
                    // Report the item's own limit when it is what ran out.
                    (Failure::Timeout { step, .. }, true, Some(t)) => Failure::Timeout {
                        after_ms: t.as_millis() as u64,
                        step,
                    },
                    (f, _, _) => f,
                };
                let handled = cx.handlers(&captured, step, i, deadline, &f).await;
                if handled && step.forgive_on_handled && !matches!(f, Failure::Cancelled { .. }) {
                    continue;
                }
                failure = Some(f);
                stderr_tail = tail;
                break;
            }
        }
    }
    if failure.is_some() {
        captured.clear();
    }
    AttemptEnd {
        idx: run.idx,
        attempt: Attempt {
            attempt: run.attempt,
            started_at,
            duration_ms: started.elapsed().as_millis() as u64,
            failure,
            stderr_tail,
            usage: senv.resources.used(),
        },
        captured,
    }
}

/// The time limit of a step: the tighter of its own and what is left of the item's.
/// Returns whether the item's limit is the binding one.
pub(crate) fn limit_for(
    step: Option<Duration>,
    deadline: Option<Instant>,
) -> (Option<Duration>, bool) {
    let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
    match (step, left) {
        (Some(s), Some(l)) if l < s => (Some(l), true),
        (Some(s), _) => (Some(s), false),
        (None, Some(l)) => (Some(l), true),
        (None, None) => (None, false),
    }
}

/// One attempt of one item: what every step of it shares.
struct AttemptCx<'a, E> {
    ctx: &'a AttemptCtx<E>,
    run: &'a AttemptRun,
    senv: &'a StepEnv,
}

impl<E: Executor> AttemptCx<'_, E> {
    /// Render and run one step (or handler) with the captures made so far.
    async fn step(
        &self,
        captured: &Map<String, Value>,
        step: &Step,
        index: usize,
        limit: Option<Duration>,
    ) -> StepOutcome {
        let rendered = {
            let lookup = |v: &crate::workflow::template::VarRef| {
                item_lookup(
                    &self.ctx.vars,
                    &self.run.item,
                    self.run.attempt,
                    captured,
                    v,
                )
            };
            step::render(step, index, self.senv, &lookup)
        };
        match rendered {
            Ok(r) => {
                step::run(
                    &self.ctx.exec,
                    step,
                    index,
                    r,
                    self.senv,
                    limit,
                    &self.ctx.cancel,
                )
                .await
            }
            Err(failure) => StepOutcome::Failed {
                failure,
                stderr_tail: String::new(),
            },
        }
    }

    /// Run a failed step's `on_failure` handlers; true when all of them succeeded.
    async fn handlers(
        &self,
        captured: &Map<String, Value>,
        step: &Step,
        index: usize,
        deadline: Option<Instant>,
        failure: &Failure,
    ) -> bool {
        if step.on_failure.is_empty() || matches!(failure, Failure::Cancelled { .. }) {
            return false;
        }
        for h in &step.on_failure {
            let (limit, _) = limit_for(h.timeout, deadline);
            if let StepOutcome::Failed { .. } = self.step(captured, h, index, limit).await {
                return false;
            }
        }
        true
    }
}

/// The step environment of an attempt: the workflow env and `RUNNER_*`.
fn item_env<E>(ctx: &AttemptCtx<E>, item: &Item, attempt: u32) -> Vec<(String, String)> {
    let mut env = Vec::with_capacity(ctx.env.len() + 4);
    env.extend(ctx.env.iter().cloned());
    env.push(("RUNNER_ITEM".into(), item.value.to_string()));
    env.push(("RUNNER_ITEM_ID".into(), item.id.clone()));
    env.push(("RUNNER_JOB_ID".into(), ctx.vars.job_id.clone()));
    env.push(("RUNNER_ATTEMPT".into(), attempt.to_string()));
    env
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::engine::attempt::executor::mock::MockExecutor;
    use crate::engine::attempt::vars::JobVars;
    use crate::engine::controls::Controls;
    use crate::workflow::load::load_str;

    /// The context of a map with these steps (YAML lines) and `map.timeout`, on the mock
    /// executor.
    pub(crate) fn ctx(steps_yaml: &str, timeout: Option<&str>) -> AttemptCtx<Arc<MockExecutor>> {
        let text = format!(
            "name: t\nmap:\n  input: x.json\n{}  agent_template:\n{steps_yaml}",
            timeout
                .map(|t| format!("  timeout: {t}\n"))
                .unwrap_or_default()
        );
        let wf = load_str(
            &text,
            std::path::Path::new("t.yml"),
            std::path::Path::new("/"),
        )
        .expect("workflow");
        let vars = JobVars::build("job", &wf, &[]).expect("vars");
        AttemptCtx::new(
            Arc::new(MockExecutor::default()),
            &wf,
            vars,
            None,
            &Controls::default(),
        )
    }

    fn run(n: u32) -> AttemptRun {
        AttemptRun {
            idx: 4,
            item: Arc::new(Item {
                id: "a".into(),
                value: serde_json::json!({"id": "a", "n": 7}),
            }),
            attempt: n,
        }
    }

    #[tokio::test]
    async fn steps_render_item_values_and_captures_flow_on() {
        let c = ctx(
            "    - shell: 'echo ${item.n}'\n      capture: n\n    - shell: 'echo got-${n}-${attempt}'\n",
            None,
        );
        let end = run_attempt(&c, &run(3), None).await;
        assert_eq!(end.idx, 4);
        assert_eq!(end.attempt.attempt, 3);
        assert!(end.attempt.failure.is_none(), "{:?}", end.attempt);
        assert_eq!(end.captured["n"], "7");
        let ran = c.exec.ran.lock().unwrap().clone();
        assert_eq!(ran, vec!["echo 7", "echo got-7-3"]);
    }

    #[tokio::test]
    async fn a_failing_step_stops_the_attempt_and_runs_its_handler() {
        let c = ctx(
            "    - shell: 'exit 4'\n      on_failure:\n        - shell: 'echo cleanup'\n    - shell: 'echo never'\n",
            None,
        );
        let end = run_attempt(&c, &run(1), None).await;
        assert_eq!(
            end.attempt.failure,
            Some(Failure::Exit { code: 4, step: 0 })
        );
        let ran = c.exec.ran.lock().unwrap().clone();
        assert_eq!(ran, vec!["exit 4", "echo cleanup"]);
        assert!(end.captured.is_empty());
    }

    #[tokio::test]
    async fn the_items_own_limit_is_reported_when_it_runs_out() {
        let c = ctx("    - shell: 'sleep 100'\n", Some("3s"));
        let end = run_attempt(&c, &run(1), None).await;
        assert_eq!(
            end.attempt.failure,
            Some(Failure::Timeout {
                after_ms: 3000,
                step: 0
            })
        );
    }
}
