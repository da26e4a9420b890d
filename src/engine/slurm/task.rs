//! One array task of the Slurm backend (the library side of the hidden `runner exec-item`):
//! it runs its batch of item attempts from the job's frozen directory, up to `parallel` at
//! once, each with the per-attempt code of local runs (its own timeout and logs), and
//! writes each attempt's outcome file atomically as soon as the attempt ends. Retries are
//! the dispatcher's: a failed attempt comes back in a later submission.
//!
//! `scancel` (or Slurm's time limit) sends SIGTERM: the attempts in flight are killed at
//! once and leave no outcome, nothing new starts, and the task exits 143; the coordinator
//! sees those attempts lost (or, after a cancel, cancelled), and keeps the finished ones.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;

use crate::engine::attempt::context::AttemptCtx;
use crate::engine::attempt::executor::{Executor, ProcessExecutor};
use crate::engine::attempt::run::run_attempt;
use crate::engine::attempt::vars::JobVars;
use crate::engine::controls::{Controls, watch_signals};
use crate::engine::map::backend::AttemptRun;
use crate::items::Item;
use crate::state::error::StateError;
use crate::state::job::JobMeta;
use crate::state::layout::JobDir;
use crate::state::records::Failure;
use crate::state::slurm::outcome::Outcome;
use crate::state::slurm::paths::SlurmPaths;
use crate::state::slurm::submission::{NodeContext, SubmissionSpec, TaskItem};
use crate::workflow::model::Workflow;

/// How long an attempt killed by a signal waits for this process to see a signal of its
/// own (then it was the task that was cancelled, and the attempt leaves no outcome).
const SIGNAL_SETTLE: Duration = Duration::from_millis(500);

#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error("submission {sub} has no task {index} (it has {tasks})")]
    NoTask {
        sub: u64,
        index: usize,
        tasks: usize,
    },
    #[error("{0}")]
    Config(String),
    #[error("cannot start the task's runtime: {0}")]
    Runtime(#[from] std::io::Error),
}

/// Which task of which job.
pub struct TaskRun<'a> {
    pub dir: &'a JobDir,
    pub meta: &'a JobMeta,
    /// The job's workflow (its snapshot).
    pub workflow: &'a Workflow,
    pub sub: u64,
    pub index: usize,
}

/// How a task's batch went.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TaskEnd {
    /// Attempts that ended and left their outcome.
    pub finished: usize,
    /// A signal cut the batch short (attempts in flight were killed, the rest not started).
    pub interrupted: bool,
}

/// Run array task `index` of submission `sub`.
pub fn run_task(t: TaskRun<'_>) -> Result<TaskEnd, TaskError> {
    let paths = SlurmPaths::new(t.dir.path());
    let spec = SubmissionSpec::read(&paths.sub_file(t.sub))?;
    let tasks = spec.tasks.len();
    let batch = spec
        .tasks
        .into_iter()
        .nth(t.index)
        .ok_or(TaskError::NoTask {
            sub: t.sub,
            index: t.index,
            tasks,
        })?;
    let node = match NodeContext::read(&paths.context()) {
        Ok(n) => n,
        Err(StateError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            NodeContext::default()
        }
        Err(e) => return Err(e.into()),
    };
    let mut vars =
        JobVars::build(&t.meta.job_id, t.workflow, &t.meta.overrides).map_err(TaskError::Config)?;
    vars.captures = node.captures;
    let workflow = t.workflow.with_env(&vars.env).map_err(TaskError::Config)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    crate::engine::process::reaper::become_subreaper();
    let controls = Controls::default();
    let logs = Some(t.dir.logs_dir().join("items"));
    let end = rt.block_on(async {
        // SIGTERM from scancel or the time limit: kill the attempts' process groups at once.
        watch_signals(controls.clone(), Duration::ZERO, None);
        let ctx = AttemptCtx::new(ProcessExecutor, &workflow, vars, logs, &controls);
        let end = run_batch(Arc::new(ctx), batch, spec.parallel, t.sub, &paths).await;
        controls.cancel.cancel(); // ends the signal watcher
        end
    });
    rt.shutdown_timeout(Duration::from_secs(1));
    end
}

/// Run a batch of attempts, `parallel` at once, writing each one's outcome as it ends.
/// An attempt cut short by a stop leaves no outcome.
pub async fn run_batch<E: Executor>(
    ctx: Arc<AttemptCtx<E>>,
    batch: Vec<TaskItem>,
    parallel: usize,
    sub: u64,
    paths: &SlurmPaths,
) -> Result<TaskEnd, TaskError> {
    let host = nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut todo = batch.into_iter();
    let mut running = JoinSet::new();
    let mut end = TaskEnd::default();
    let mut failed: Option<StateError> = None;
    loop {
        while running.len() < parallel.max(1)
            && !ctx.cancel.is_cancelled()
            && failed.is_none()
            && let Some(t) = todo.next()
        {
            let ctx = ctx.clone();
            running.spawn(async move {
                let run = AttemptRun {
                    idx: t.idx,
                    item: Arc::new(Item {
                        id: t.item_id,
                        value: t.item,
                    }),
                    attempt: t.attempt,
                };
                (run_attempt(&ctx, &run, None).await, run.item)
            });
        }
        let Some(joined) = running.join_next().await else {
            break;
        };
        let Ok((e, item)) = joined else {
            continue; // a panicked attempt leaves no outcome: the coordinator sees it lost
        };
        if matches!(e.attempt.failure, Some(Failure::Signal { .. })) && !ctx.cancel.is_cancelled() {
            // `scancel` signals every process of the task at once: a step can die of it
            // before this process has handled its own SIGTERM. Let that settle first.
            let _ = tokio::time::timeout(SIGNAL_SETTLE, ctx.cancel.cancelled()).await;
        }
        let cut_short = match &e.attempt.failure {
            Some(Failure::Cancelled { .. }) => true,
            Some(_) => ctx.cancel.is_cancelled(),
            None => false,
        };
        if cut_short {
            end.interrupted = true;
            continue;
        }
        let outcome = Outcome {
            sub,
            idx: e.idx,
            item_id: item.id.clone(),
            attempt: e.attempt,
            captured: e.captured,
            host: host.clone(),
        };
        match outcome.write(paths) {
            Ok(()) => end.finished += 1,
            // Stop starting attempts; the ones in flight still leave their outcome.
            Err(err) => failed = failed.or(Some(err)),
        }
    }
    end.interrupted |= ctx.cancel.is_cancelled();
    match failed {
        Some(e) => Err(e.into()),
        None => Ok(end),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::attempt::executor::mock::MockExecutor;

    fn ctx(step: &str) -> AttemptCtx<Arc<MockExecutor>> {
        crate::engine::attempt::run::tests::ctx(&format!("    - shell: '{step}'\n"), None)
    }

    fn batch(n: usize) -> Vec<TaskItem> {
        (0..n)
            .map(|idx| TaskItem {
                idx,
                item_id: format!("i{idx}"),
                item: serde_json::json!({"k": if idx % 2 == 0 { 0 } else { 100 }}),
                attempt: 2,
            })
            .collect()
    }

    #[tokio::test]
    async fn every_attempt_of_the_batch_leaves_its_own_outcome() {
        let d = tempfile::tempdir().unwrap();
        let paths = SlurmPaths::new(d.path());
        std::fs::create_dir_all(paths.outcomes()).unwrap();
        // `flaky 0` succeeds; `flaky 100` fails (exit 1) its first 100 calls.
        let c = Arc::new(ctx("flaky ${item.k}"));
        let end = run_batch(c.clone(), batch(7), 3, 5, &paths).await.unwrap();
        assert_eq!(
            end,
            TaskEnd {
                finished: 7,
                interrupted: false
            }
        );
        for idx in 0..7 {
            let key = crate::state::slurm::paths::OutcomeKey::new(&format!("i{idx}"), 5, 2);
            let o = Outcome::read(&paths.outcome(&key)).unwrap();
            assert_eq!(o.idx, idx);
            assert_eq!(o.attempt.attempt, 2);
            let want = (idx % 2 == 1).then_some(Failure::Exit { code: 1, step: 0 });
            assert_eq!(o.attempt.failure, want, "item {idx}");
        }
        assert_eq!(
            c.exec.ran.lock().unwrap().len(),
            7,
            "one attempt each, no retry"
        );
    }

    #[tokio::test]
    async fn a_cancelled_batch_starts_nothing_more() {
        let d = tempfile::tempdir().unwrap();
        let paths = SlurmPaths::new(d.path());
        std::fs::create_dir_all(paths.outcomes()).unwrap();
        let c = Arc::new(ctx("true"));
        c.cancel.cancel();
        let end = run_batch(c.clone(), batch(4), 2, 1, &paths).await.unwrap();
        assert!(end.interrupted);
        assert_eq!(end.finished, 0);
        assert!(c.exec.ran.lock().unwrap().is_empty());
    }
}
