//! One attempt of one item: its template steps in order, each rendered with the item's
//! variables, within the item's time limit, with captures and `on_failure` handlers. Owns
//! nothing shared; the caller (a map backend, a Slurm task) reports the result.

use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use crate::engine::attempt::commit_required;
use crate::engine::attempt::context::AttemptCtx;
use crate::engine::attempt::executor::Executor;
use crate::engine::attempt::recovery::{Ended, SHELL, StepRunner, run_step};
use crate::engine::attempt::step::{self, StepEnv, StepOutcome};
use crate::engine::attempt::vars::item_lookup;
use crate::engine::limits::meter::AttemptResources;
use crate::engine::map::backend::{AttemptEnd, AttemptRun};
use crate::engine::process::shell::SpawnHook;
use crate::engine::worktree::item::Entered;
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
    let dir = match &ctx.worktrees {
        None => ctx.dir.clone(),
        Some(w) => match w.enter(&run.item.id).await {
            Ok(Entered::Run(dir)) => dir,
            Ok(Entered::Merged) => return ended_early(run, started_at, started, None),
            Err(f) => return ended_early(run, started_at, started, Some(f)),
        },
    };
    let senv = StepEnv {
        dir,
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
    let mut cx = AttemptCx {
        ctx,
        run,
        senv: &senv,
        deadline,
        warnings: Vec::new(),
    };
    let mut captured = Map::new();
    let mut failure = None;
    let mut stderr_tail = String::new();
    for (i, step) in ctx.steps.iter().enumerate() {
        match run_step(&mut cx, step, i, &mut captured).await {
            Ended::Ok {
                captured: Some((k, v)),
            } => {
                captured.insert(k, v);
            }
            Ended::Ok { captured: None } | Ended::Forgiven { .. } => {}
            Ended::Failed {
                failure: f,
                stderr_tail: tail,
            } => {
                failure = Some(f);
                stderr_tail = tail;
                break;
            }
        }
    }
    if failure.is_none()
        && let Some(w) = &ctx.worktrees
        && let Err(f) = w.merge(&run.item.id).await
    {
        failure = Some(f);
    }
    // `${shell.*}` is not kept with the item.
    captured.remove(SHELL);
    if failure.is_some() {
        captured.clear();
    }
    let mut end = ended_early(run, started_at, started, failure);
    end.attempt.stderr_tail = stderr_tail;
    end.attempt.usage = senv.resources.used();
    end.captured = captured;
    end.warnings = cx.warnings;
    end
}

/// Append `runner: warning: MESSAGE` to the attempt's stderr log (`<stem>.err`).
fn log_warning(stem: &std::path::Path, message: &str) {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    if let Some(dir) = stem.parent() {
        let _ = std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir);
    }
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(stem.with_extension("err"))
        .and_then(|mut f| writeln!(f, "runner: warning: {message}"));
    if let Err(e) = written {
        tracing::warn!("cannot write the item log: {e}");
    }
}

/// An attempt that ended (before its steps ran, when its worktree could not be made or an
/// earlier run merged it).
fn ended_early(
    run: &AttemptRun,
    started_at: Timestamp,
    started: Instant,
    failure: Option<Failure>,
) -> AttemptEnd {
    AttemptEnd {
        idx: run.idx,
        attempt: Attempt {
            attempt: run.attempt,
            started_at,
            duration_ms: started.elapsed().as_millis() as u64,
            failure,
            stderr_tail: String::new(),
            usage: None,
        },
        captured: Map::new(),
        warnings: Vec::new(),
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
    /// When the item's time limit runs out.
    deadline: Option<Instant>,
    /// Warnings so far, for the run's output.
    warnings: Vec<String>,
}

impl<E: Executor> StepRunner for AttemptCx<'_, E> {
    /// A warning of an item goes to its log (`<attempt>.err`) and, with its attempt's end,
    /// to the run's output.
    fn warn(&mut self, message: String) {
        if let Some(stem) = &self.senv.log_stem {
            log_warning(stem, &message);
        }
        self.warnings.push(message);
    }

    /// Render and run one step (or handler) with the captures made so far, within the
    /// tighter of its own and the item's time limit.
    async fn run_one(
        &mut self,
        step: &Step,
        index: usize,
        captured: &Map<String, Value>,
    ) -> StepOutcome {
        let (limit, item_limited) = limit_for(step.timeout, self.deadline);
        let rendered = {
            let lookup = |v: &crate::workflow::template::VarRef| {
                item_lookup(
                    &self.ctx.vars,
                    &self.run.item,
                    self.run.idx,
                    self.run.attempt,
                    captured,
                    v,
                )
            };
            step::render(step, index, self.senv, &lookup)
        };
        let out = match rendered {
            Ok(r) => {
                let cwd = r.cwd.clone();
                let running = step::run(
                    &self.ctx.exec,
                    step,
                    index,
                    r,
                    self.senv,
                    limit,
                    &self.ctx.cancel,
                );
                commit_required::checked(step, index, cwd, running).await
            }
            Err(failure) => StepOutcome::not_run(failure),
        };
        match (out, item_limited, self.ctx.timeout) {
            // Report the item's own limit when it is what ran out.
            (
                StepOutcome::Failed {
                    failure: Failure::Timeout { step, .. },
                    stderr_tail,
                    shell,
                },
                true,
                Some(t),
            ) => StepOutcome::Failed {
                failure: Failure::Timeout {
                    after_ms: t.as_millis() as u64,
                    step,
                },
                stderr_tail,
                shell,
            },
            (out, _, _) => out,
        }
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
