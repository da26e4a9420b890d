//! Prodigy's `commit_required: true`: the step fails unless `HEAD` of its directory moved
//! while it ran (`PRODIGY_NO_COMMIT_VALIDATION=true` in runner's environment skips the check,
//! as in Prodigy).

use std::future::Future;
use std::path::{Path, PathBuf};

use crate::engine::attempt::step::StepOutcome;
use crate::engine::worktree::git::Git;
use crate::state::records::Failure;
use crate::workflow::model::Step;

/// Run a step (`running`, not started yet) in `cwd`; with `commit_required` it fails unless
/// it made a commit.
pub async fn checked(
    step: &Step,
    index: usize,
    cwd: PathBuf,
    running: impl Future<Output = StepOutcome>,
) -> StepOutcome {
    if !step.commit_required {
        return running.await;
    }
    let before = match before(&cwd, index).await {
        Ok(b) => b,
        Err(failure) => return StepOutcome::not_run(failure),
    };
    after(running.await, &cwd, before, index).await
}

/// `HEAD` before a `commit_required` step; `Ok(None)` when the check is skipped.
async fn before(cwd: &Path, step: usize) -> Result<Option<String>, Failure> {
    if std::env::var("PRODIGY_NO_COMMIT_VALIDATION").is_ok_and(|v| v == "true") {
        return Ok(None);
    }
    head(cwd.to_path_buf())
        .await
        .map(Some)
        .map_err(|e| Failure::Spawn {
            message: format!(
                "commit_required: true, but {} has no git commit to compare with ({e})",
                cwd.display()
            ),
            step,
        })
}

/// The step's outcome, failed with [`Failure::NoCommit`] when it succeeded without a commit.
async fn after(out: StepOutcome, cwd: &Path, before: Option<String>, step: usize) -> StepOutcome {
    let (Some(before), StepOutcome::Ok { shell, .. }) = (before, &out) else {
        return out;
    };
    match head(cwd.to_path_buf()).await {
        Ok(now) if now != before => out,
        _ => StepOutcome::Failed {
            failure: Failure::NoCommit { step },
            stderr_tail: String::new(),
            shell: shell.clone(),
        },
    }
}

async fn head(cwd: PathBuf) -> Result<String, String> {
    tokio::task::spawn_blocking(move || Git::at(cwd).head().map_err(|e| e.to_string()))
        .await
        .map_err(|e| e.to_string())?
}
