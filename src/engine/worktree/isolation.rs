//! Git isolation as the phases see it: the job's worktree opened before setup, the items'
//! branches dropped when the map is over, and the job's branch handled after reduce.

use crate::engine::attempt::executor::Executor;
use crate::engine::attempt::step::StepEnv;
use crate::engine::attempt::vars::JobVars;
use crate::engine::error::EngineError;
use crate::engine::limits::meter::AttemptResources;
use crate::engine::phases::JobRun;
use crate::engine::recorder::Recorder;
use crate::engine::worktree::finish::{self, MergeEnd};
use crate::engine::worktree::git::no_gc_env;
use crate::engine::worktree::job::{self, JobWorktree, WorktreeError};
use crate::engine::worktree::merge_block;
use crate::report::event::Event;
use crate::state::layout::JobDir;
use crate::workflow::model::Workflow;

/// The job's worktree, when it runs isolated (see [`job::open`]).
pub fn open(
    dir: &JobDir,
    job_id: &str,
    wf: &Workflow,
    fresh: bool,
) -> Result<Option<JobWorktree>, EngineError> {
    job::open(dir, job_id, wf, fresh).map_err(|e| match e {
        e @ (WorktreeError::NotARepo { .. }
        | WorktreeError::NoCommit { .. }
        | WorktreeError::Executor(_)) => EngineError::Config(e.to_string()),
        e => EngineError::Infra(format!("git isolation: {e}")),
    })
}

/// Steps in worktrees run with git's automatic gc off, so that parallel commits never wait
/// on (or fail for) gc's locks.
pub fn no_gc(vars: &mut JobVars) {
    for (k, v) in no_gc_env(vars.env.get("GIT_CONFIG_COUNT").map(String::as_str)) {
        if !vars.override_keys.contains(&k) {
            vars.override_keys.push(k.clone());
        }
        vars.env.insert(k, v);
    }
}

/// The map is over and every outcome is recorded: the items' worktrees and branches go.
pub fn map_done(w: &JobWorktree) -> Result<(), EngineError> {
    finish::drop_items(w).map_err(|e| EngineError::Infra(format!("git isolation: {e}")))
}

/// After a completed reduce: merge the job's branch (with `run.merge`) or say how; `Some`
/// reason when the merge failed (the job fails; a resume tries again).
pub async fn finish<E: Executor>(
    exec: &E,
    w: &JobWorktree,
    wf: &Workflow,
    vars: &JobVars,
    run: &JobRun<'_>,
    rec: &mut Recorder,
) -> Result<Option<String>, EngineError> {
    let r = &w.record;
    if let Some(spec) = &wf.merge {
        let senv = StepEnv {
            dir: wf.dir.clone(),
            env: vars.env_pairs(wf),
            kill_grace: wf.map.kill_grace,
            log_stem: Some(rec.dir.logs_dir().join("merge")),
            tee: run.tee_output,
            on_spawn: None,
            kill: run.controls.kill.clone(),
            resources: AttemptResources::new(None),
        };
        let merge = merge_block::merge_vars(w);
        let mut warn = |message| rec.report(&Event::Warning { message });
        let cancel = &run.controls.cancel;
        if let Err(reason) =
            merge_block::run_block(exec, spec, senv, vars, merge, cancel, &mut warn).await
        {
            return Ok(Some(reason));
        }
        // The block merges (or not) as it sees fit: say where the work is now.
        let merged = match &r.target {
            Some(t) => w.git().is_ancestor(&r.branch, t).unwrap_or(false),
            None => false,
        };
        rec.report(&Event::WorktreeMerge {
            branch: r.branch.clone(),
            worktree: w.path.to_string_lossy().into_owned(),
            target: r.target.clone(),
            merged,
            command: (!merged).then(|| finish::merge_command(w)),
        });
        return Ok(None);
    }
    let ended = match finish::merge_job_branch(w, run.merge) {
        Ok(end) => end,
        Err(e) => {
            return Ok(Some(format!(
                "merging branch {} into {} failed: {e}; the job's work stays on {}",
                r.branch,
                r.target.as_deref().unwrap_or("HEAD"),
                r.branch
            )));
        }
    };
    rec.report(&Event::WorktreeMerge {
        branch: r.branch.clone(),
        worktree: w.path.to_string_lossy().into_owned(),
        target: r.target.clone(),
        merged: ended == MergeEnd::Merged,
        command: match ended {
            MergeEnd::Kept { command } => Some(command),
            MergeEnd::Merged => None,
        },
    });
    Ok(None)
}
