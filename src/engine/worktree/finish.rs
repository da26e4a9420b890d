//! The end of a job's git isolation: the items' branches go when the map is over, and after
//! reduce the job's branch is merged into the branch the job started on (with `--merge`),
//! or left with the command that merges it; `runner clean` removes all of it.

use std::path::PathBuf;

use crate::engine::worktree::git::{Git, GitError};
use crate::engine::worktree::item::remove_worktree;
use crate::engine::worktree::job::{JobWorktree, WorktreeRecord};
use crate::state::atomic::read_checksummed;
use crate::state::layout::JobDir;
use crate::workflow::template::quote::quote_bare;

/// What became of the job's branch after reduce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MergeEnd {
    /// Merged into the target branch.
    Merged,
    /// Left in place; this command merges it.
    Kept { command: String },
}

/// Remove the items' worktrees and branches (their outcomes are recorded: none is merged
/// again or needed to tell).
pub fn drop_items(job: &JobWorktree) -> Result<(), GitError> {
    let git = Git::at(&job.record.repo);
    remove_item_worktrees(&git, &job.dir)?;
    for branch in job_branches(&git, &job.job_id)? {
        if branch != job.record.branch {
            git.delete_branch(&branch)?;
        }
    }
    Ok(())
}

/// Merge the job's branch into the branch the job started on when `merge` is set, else say
/// how.
pub fn merge_job_branch(job: &JobWorktree, merge: bool) -> Result<MergeEnd, GitError> {
    let r = &job.record;
    let repo = Git::at(&r.repo);
    let kept = || MergeEnd::Kept {
        command: merge_command(job),
    };
    let (true, Some(target)) = (merge, &r.target) else {
        return Ok(kept());
    };
    match checked_out(&repo, target)? {
        Some(dir) => Git::at(dir).merge(&r.branch)?,
        // Not checked out anywhere: only a fast-forward, without touching a work tree.
        None => repo
            .run(&[
                "fetch",
                "--quiet",
                ".",
                &format!("refs/heads/{}:refs/heads/{target}", r.branch),
            ])
            .map(drop)?,
    }
    Ok(MergeEnd::Merged)
}

/// The command that merges the job's branch into the branch checked out in the repository.
pub fn merge_command(job: &JobWorktree) -> String {
    format!(
        "git -C {} merge {}",
        quote_bare(&job.record.repo.to_string_lossy()),
        quote_bare(&job.record.branch)
    )
}

/// The work tree where `branch` is checked out, if any.
fn checked_out(repo: &Git, branch: &str) -> Result<Option<PathBuf>, GitError> {
    let list = repo.run(&["worktree", "list", "--porcelain"])?;
    let mut dir = None;
    for line in list.lines() {
        if let Some(p) = line.strip_prefix("worktree ") {
            dir = Some(PathBuf::from(p));
        } else if line.strip_prefix("branch refs/heads/") == Some(branch) {
            return Ok(dir);
        }
    }
    Ok(None)
}

/// The branches of job `job_id` (`runner/<job>/...`).
fn job_branches(git: &Git, job_id: &str) -> Result<Vec<String>, GitError> {
    let prefix = crate::engine::worktree::job::job_branch(job_id);
    let prefix = prefix.trim_end_matches("/job");
    let out = git.run(&[
        "for-each-ref",
        "--format=%(refname:short)",
        &format!("refs/heads/{prefix}"),
    ])?;
    Ok(out.lines().map(str::to_owned).collect())
}

fn remove_item_worktrees(git: &Git, dir: &JobDir) -> Result<(), GitError> {
    let items = dir.item_worktrees();
    if let Ok(entries) = std::fs::read_dir(&items) {
        for e in entries.flatten() {
            if e.path().is_dir() {
                remove_worktree(git, &e.path())?;
            }
        }
    }
    if items.exists() {
        std::fs::remove_dir_all(&items).map_err(|e| GitError::Io(e.to_string()))?;
    }
    git.prune()
}

/// `runner clean`: remove the worktrees and branches of the job in `dir`, if it has any.
pub fn remove_job(dir: &JobDir) -> Result<(), GitError> {
    let record: Option<WorktreeRecord> =
        read_checksummed(&dir.worktree_record()).map_err(|e| GitError::Io(e.to_string()))?;
    let Some(record) = record else {
        return Ok(());
    };
    let git = Git::at(&record.repo);
    if !record.repo.is_dir() {
        return Ok(()); // the repository is gone: nothing to tell it
    }
    remove_item_worktrees(&git, dir)?;
    remove_worktree(&git, &dir.job_worktree())?;
    for branch in job_branches(&git, &dir.id())? {
        git.delete_branch(&branch)?;
    }
    git.prune()
}
