//! One worktree per item: made when an attempt starts, on a branch from the job branch's
//! tip; after a successful attempt the branch is merged into the job branch, one item at a
//! time. An attempt that finds its branch already merged (a run that merged it died before
//! recording the outcome) succeeds without running again.

use std::path::PathBuf;
use std::sync::Arc;

use crate::engine::worktree::git::{Git, GitError};
use crate::engine::worktree::job::JobWorktree;
use crate::state::atomic::{create_dir_private, write_atomic};
use crate::state::records::Failure;

/// The items' worktrees of one job; merges and worktree changes take turns.
#[derive(Debug)]
pub struct ItemWorktrees {
    job: JobWorktree,
    turn: tokio::sync::Mutex<()>,
}

/// Where an attempt stands once its worktree is ready.
#[derive(Debug)]
pub enum Entered {
    /// Run the steps in this directory.
    Run(PathBuf),
    /// An earlier attempt's branch is already merged: nothing to run.
    Merged,
}

impl ItemWorktrees {
    pub fn new(job: JobWorktree) -> Arc<Self> {
        Arc::new(ItemWorktrees {
            job,
            turn: tokio::sync::Mutex::new(()),
        })
    }

    /// Make item `id`'s worktree afresh from the job branch's tip (whatever an interrupted
    /// or failed attempt left is discarded), unless its branch is merged already.
    pub async fn enter(self: &Arc<Self>, id: &str) -> Result<Entered, Failure> {
        let _turn = self.turn.lock().await;
        let (me, id) = (self.clone(), id.to_owned());
        tokio::task::spawn_blocking(move || me.enter_now(&id))
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|e| e.to_string()))
            .map_err(|message| Failure::Spawn {
                message: format!("cannot make the item's git worktree: {message}"),
                step: 0,
            })
    }

    /// Merge item `id`'s branch into the job branch; a conflict aborts the merge and fails
    /// the item ([`Failure::MergeConflict`]). Its worktree goes; its branch stays until the
    /// map ends, so that a crash before the outcome is recorded finds it merged.
    pub async fn merge(self: &Arc<Self>, id: &str) -> Result<(), Failure> {
        let _turn = self.turn.lock().await;
        let (me, id) = (self.clone(), id.to_owned());
        tokio::task::spawn_blocking(move || me.merge_now(&id))
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| {
                r.map_err(|e| match e {
                    GitError::Conflict { detail, .. } => detail,
                    e => e.to_string(),
                })
            })
            .map_err(|message| Failure::MergeConflict { message })
    }

    fn enter_now(&self, id: &str) -> Result<Entered, GitError> {
        let dir = &self.job.dir;
        let (path, base_file) = (dir.item_worktree(id), dir.item_worktree_base(id));
        let branch = self.job.item_branch(id);
        let git = self.job.git();
        let tip = git.resolve(&format!("refs/heads/{branch}"))?;
        let base = std::fs::read_to_string(&base_file).unwrap_or_default();
        if let Some(tip) = &tip
            && tip != base.trim()
            && !base.trim().is_empty()
            && git.is_ancestor(tip, "HEAD")?
        {
            remove_worktree(&git, &path)?;
            return Ok(Entered::Merged);
        }
        remove_worktree(&git, &path)?;
        git.delete_branch(&branch)?;
        let base = git.head()?;
        create_dir_private(&dir.item_worktrees()).map_err(io_error)?;
        write_atomic(&base_file, format!("{base}\n").as_bytes()).map_err(io_error)?;
        git.add_worktree(&path, &branch, &base)?;
        let work = path.join(&self.job.record.subdir);
        std::fs::create_dir_all(&work).map_err(io_error)?;
        Ok(Entered::Run(work))
    }

    fn merge_now(&self, id: &str) -> Result<(), GitError> {
        let git = self.job.git();
        git.merge(&self.job.item_branch(id))?;
        remove_worktree(&git, &self.job.dir.item_worktree(id))
    }
}

/// Remove a worktree directory, registered or not (a crash may have cut `git worktree add`
/// short).
pub fn remove_worktree(git: &Git, path: &std::path::Path) -> Result<(), GitError> {
    if git.remove_worktree(path).is_err() && path.exists() {
        std::fs::remove_dir_all(path).map_err(io_error)?;
    }
    git.prune()
}

fn io_error(e: impl std::fmt::Display) -> GitError {
    GitError::Io(e.to_string())
}
