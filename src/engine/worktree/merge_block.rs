//! Prodigy's `merge:` block: after reduce, its steps run in the job's worktree (with their
//! `on_failure`, `commit_required`, and a limit for the whole block), with
//! `${merge.worktree}`, `${merge.worktree_path}`, `${merge.source_branch}`,
//! `${merge.target_branch}` and `${merge.session_id}`. It merges the job's branch itself
//! (runner does not); a crash before the job's end runs it again on resume.

use std::borrow::Cow;
use std::time::Instant;

use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

use crate::engine::attempt::commit_required;
use crate::engine::attempt::executor::Executor;
use crate::engine::attempt::recovery::{Ended, StepRunner, run_step};
use crate::engine::attempt::run::limit_for;
use crate::engine::attempt::step::{self, StepEnv, StepOutcome};
use crate::engine::attempt::vars::JobVars;
use crate::engine::worktree::job::JobWorktree;
use crate::workflow::model::{MergeSpec, Step};
use crate::workflow::template::{VarRef, resolve_path};

/// `${merge.*}` for the job's worktree.
pub fn merge_vars(w: &JobWorktree) -> Value {
    json!({
        "worktree": w.job_id,
        "worktree_path": w.path.to_string_lossy(),
        "source_branch": w.record.branch,
        "target_branch": w.record.target.as_deref().unwrap_or("HEAD"),
        "session_id": w.job_id,
    })
}

/// Run the block; `Err(reason)` when a step failed for good. `warn` hears what did not
/// stop it (a step's `validate:` that stayed incomplete without failing it).
pub async fn run_block<E: Executor>(
    exec: &E,
    spec: &MergeSpec,
    senv: StepEnv,
    vars: &JobVars,
    merge: Value,
    cancel: &CancellationToken,
    warn: &mut (dyn FnMut(String) + Send),
) -> Result<(), String> {
    let mut r = BlockRunner {
        exec,
        senv,
        vars,
        merge,
        deadline: spec.timeout.map(|t| Instant::now() + t),
        cancel,
        warn,
    };
    let mut values = Map::new();
    for (i, st) in spec.steps.iter().enumerate() {
        match run_step(&mut r, st, i, &mut values).await {
            Ended::Ok { captured } => {
                if let Some((k, v)) = captured {
                    values.insert(k, v);
                }
            }
            Ended::Forgiven { .. } => {}
            Ended::Failed {
                failure,
                stderr_tail,
            } => {
                let what = failure.to_string();
                let what = what
                    .strip_prefix(&format!("step {} ", i + 1))
                    .unwrap_or(&what)
                    .to_owned();
                let mut reason = format!(
                    "merge step {} (`{}`) {what}",
                    i + 1,
                    crate::report::human::one_line(&st.source)
                );
                if let Some(last) = stderr_tail.lines().rev().find(|l| !l.trim().is_empty()) {
                    reason.push_str(&format!(": {}", last.trim()));
                }
                return Err(reason);
            }
        }
    }
    Ok(())
}

struct BlockRunner<'a, E> {
    exec: &'a E,
    senv: StepEnv,
    vars: &'a JobVars,
    merge: Value,
    deadline: Option<Instant>,
    cancel: &'a CancellationToken,
    warn: &'a mut (dyn FnMut(String) + Send),
}

impl<E: Executor> StepRunner for BlockRunner<'_, E> {
    fn warn(&mut self, message: String) {
        (self.warn)(format!("merge {message}"));
    }

    async fn run_one(
        &mut self,
        step: &Step,
        index: usize,
        values: &Map<String, Value>,
    ) -> StepOutcome {
        let rendered = {
            let lookup = |v: &VarRef| match v.root.as_str() {
                "merge" => resolve_path(&self.merge, &v.path).map(Cow::Borrowed),
                _ => self.vars.lookup(v, values),
            };
            step::render(step, index, &self.senv, &lookup)
        };
        let r = match rendered {
            Ok(r) => r,
            Err(failure) => return StepOutcome::not_run(failure),
        };
        let (limit, _) = limit_for(step.timeout, self.deadline);
        let cwd = r.cwd.clone();
        let running = step::run(self.exec, step, index, r, &self.senv, limit, self.cancel);
        commit_required::checked(step, index, cwd, running).await
    }
}
