//! The per-item executor: runs the map template for one item, attempt after attempt, as the
//! retry policy says. Owns nothing shared; reports back to the dispatcher.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::engine::executor::Executor;
use crate::engine::process::SpawnHook;
use crate::engine::retry;
use crate::engine::step::{self, StepEnv, StepOutcome};
use crate::engine::vars::{JobVars, item_lookup};
use crate::items::Item;
use crate::report::event::Event;
use crate::state::records::{Attempt, Failure};
use crate::workflow::model::{RetryPolicy, Step};

/// Everything an item needs that is the same for all items of a map.
pub struct MapCtx<E> {
    pub exec: E,
    pub steps: Arc<Vec<Step>>,
    pub vars: JobVars,
    /// Workflow env as `(name, value)` pairs, added to each step's environment.
    pub env: Vec<(String, String)>,
    pub dir: std::path::PathBuf,
    pub timeout: Option<Duration>,
    pub kill_grace: Duration,
    pub retry: RetryPolicy,
    /// `logs/items/` of the job; each item logs under `<stem>/<attempt>.out|err`.
    pub logs_dir: Option<std::path::PathBuf>,
    pub cancel: CancellationToken,
    pub kill: crate::engine::control::KillSwitch,
    pub notes: mpsc::UnboundedSender<Note>,
}

/// What an item task tells the dispatcher while it runs.
#[derive(Debug)]
pub enum Note {
    Event(Event),
    /// An attempt's process group started (recorded so a crash can be cleaned up).
    Spawned {
        idx: usize,
        attempt: u32,
        pgid: i32,
        pid_start: u64,
    },
}

/// One item to run.
#[derive(Debug, Clone)]
pub struct ItemRun {
    pub idx: usize,
    pub item: Arc<Item>,
    /// Attempts made by earlier runs of the job (numbering continues after them).
    pub prior_attempts: u32,
}

/// What happened to an item in this run.
#[derive(Debug, Clone)]
pub struct ItemResult {
    pub idx: usize,
    pub item: Arc<Item>,
    /// Every attempt of this run, the last one included.
    pub attempts: Vec<Attempt>,
    pub succeeded: bool,
    /// Cancelled by stop/SIGINT: not final, the item stays pending.
    pub cancelled: bool,
    pub captured: Map<String, Value>,
    pub duration: Duration,
}

impl ItemResult {
    pub fn last_failure(&self) -> Option<&Failure> {
        self.attempts.last().and_then(|a| a.failure.as_ref())
    }
}

pub async fn run_item<E: Executor>(ctx: Arc<MapCtx<E>>, run: ItemRun) -> ItemResult {
    let started = Instant::now();
    let mut attempts = Vec::new();
    let mut n_this_run = 0u32;
    loop {
        n_this_run += 1;
        let attempt_no = run.prior_attempts + n_this_run;
        let (attempt, captured) = run_attempt(&ctx, &run, attempt_no).await;
        let failure = attempt.failure.clone();
        attempts.push(attempt);
        let done = |succeeded, cancelled, captured| ItemResult {
            idx: run.idx,
            item: run.item.clone(),
            attempts: attempts.clone(),
            succeeded,
            cancelled,
            captured,
            duration: started.elapsed(),
        };
        let Some(failure) = failure else {
            return done(true, false, captured);
        };
        if matches!(failure, Failure::Cancelled { .. }) || ctx.cancel.is_cancelled() {
            return done(false, true, Map::new());
        }
        if !retry::should_retry(&ctx.retry, &failure, n_this_run) {
            return done(false, false, Map::new());
        }
        let wait = retry::delay(&ctx.retry, n_this_run);
        let _ = ctx.notes.send(Note::Event(Event::ItemRetrying {
            item_id: run.item.id.clone(),
            attempt: attempt_no,
            error: failure.to_string(),
            delay_ms: wait.as_millis() as u64,
        }));
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = ctx.cancel.cancelled() => return done(false, true, Map::new()),
        }
    }
}

async fn run_attempt<E: Executor>(
    ctx: &MapCtx<E>,
    run: &ItemRun,
    attempt_no: u32,
) -> (Attempt, Map<String, Value>) {
    let started_at = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
    let started = Instant::now();
    let deadline = ctx.timeout.map(|t| started + t);
    let senv = StepEnv {
        dir: ctx.dir.clone(),
        env: item_env(ctx, &run.item, attempt_no),
        kill_grace: ctx.kill_grace,
        log_stem: ctx.logs_dir.as_ref().map(|d| {
            d.join(crate::state::layout::item_file_stem(&run.item.id))
                .join(attempt_no.to_string())
        }),
        tee: false,
        on_spawn: Some(spawn_hook(ctx, run.idx, attempt_no)),
        kill: ctx.kill.clone(),
    };
    let mut captured = Map::new();
    let cx = AttemptCx {
        ctx,
        run,
        no: attempt_no,
        senv: &senv,
    };
    let mut failure = None;
    let mut stderr_tail = String::new();
    for (i, step) in ctx.steps.iter().enumerate() {
        let (limit, item_limited) = limit_for(step.timeout, deadline);
        let outcome = cx.step(&captured, step, i, limit).await;
        match outcome {
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
    let attempt = Attempt {
        attempt: attempt_no,
        started_at,
        duration_ms: started.elapsed().as_millis() as u64,
        failure,
        stderr_tail,
    };
    (attempt, captured)
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
    ctx: &'a MapCtx<E>,
    run: &'a ItemRun,
    no: u32,
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
                item_lookup(&self.ctx.vars, &self.run.item, self.no, captured, v)
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

fn spawn_hook<E>(ctx: &MapCtx<E>, idx: usize, attempt: u32) -> SpawnHook {
    let tx = ctx.notes.clone();
    SpawnHook(Arc::new(move |pgid, pid_start| {
        let _ = tx.send(Note::Spawned {
            idx,
            attempt,
            pgid,
            pid_start,
        });
    }))
}

fn item_env<E>(ctx: &MapCtx<E>, item: &Item, attempt: u32) -> Vec<(String, String)> {
    let mut env = Vec::with_capacity(ctx.env.len() + 4);
    env.extend(ctx.env.iter().cloned());
    env.push(("RUNNER_ITEM".into(), item.value.to_string()));
    env.push(("RUNNER_ITEM_ID".into(), item.id.clone()));
    env.push(("RUNNER_JOB_ID".into(), ctx.vars.job_id.clone()));
    env.push(("RUNNER_ATTEMPT".into(), attempt.to_string()));
    env
}
