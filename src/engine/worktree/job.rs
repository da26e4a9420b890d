//! The job's worktree and branch: created from `HEAD` of the directory the job started in
//! (once, recorded in `worktree.json`), reopened by every later run of the job. Setup,
//! reduce and the `merge:` block run there.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::engine::worktree::exclude::exclude_state_dir;
use crate::engine::worktree::git::{Git, GitError};
use crate::state::atomic::{create_dir_private, read_checksummed, write_checksummed};
use crate::state::error::StateError;
use crate::state::layout::{JobDir, item_file_stem};
use crate::workflow::model::{ExecutorKind, Isolation, Workflow};

/// Why the job's worktree could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum WorktreeError {
    #[error(transparent)]
    Git(#[from] GitError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(
        "`isolation: worktree`, but {} is not inside a git work tree: run runner inside a git repository (`git init`, and a first commit), or set `isolation: none`",
        .dir.display()
    )]
    NotARepo { dir: PathBuf },
    #[error(
        "`isolation: worktree`, but the repository at {} has no commit yet: make a first commit",
        .dir.display()
    )]
    NoCommit { dir: PathBuf },
    #[error("`isolation: worktree` runs with the local executor only, not {0}")]
    Executor(&'static str),
}

/// What `worktree.json` keeps: where the job's work comes from and goes back to.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorktreeRecord {
    /// The top of the work tree the job started in.
    pub repo: PathBuf,
    /// The job's directory relative to `repo`: steps run at the same place in worktrees.
    pub subdir: PathBuf,
    /// The job's branch.
    pub branch: String,
    /// The commit it started from.
    pub base: String,
    /// The branch checked out when the job started (`None`: a detached `HEAD`).
    pub target: Option<String>,
}

/// The job's worktree, open for a run.
#[derive(Debug, Clone)]
pub struct JobWorktree {
    pub record: WorktreeRecord,
    /// The worktree's top directory.
    pub path: PathBuf,
    pub dir: JobDir,
    pub job_id: String,
}

impl JobWorktree {
    /// Where steps run: the job's start directory inside the worktree.
    pub fn work_dir(&self) -> PathBuf {
        self.path.join(&self.record.subdir)
    }

    /// `git` in the job's worktree.
    pub fn git(&self) -> Git {
        Git::at(&self.path)
    }

    /// The branch of item `item_id`.
    pub fn item_branch(&self, item_id: &str) -> String {
        format!(
            "runner/{}/item-{}",
            ref_safe(&self.job_id),
            ref_safe(&item_file_stem(item_id))
        )
    }

    /// `workflow` with its directory (and the map's input file under it) moved into the
    /// worktree.
    pub fn rebase(&self, wf: &Workflow) -> Workflow {
        let mut out = wf.clone();
        let to = self.work_dir();
        if let crate::items::Input::File(p) = &wf.map.selection.input
            && let Ok(rel) = p.strip_prefix(&wf.dir)
        {
            out.map.selection.input = crate::items::Input::File(to.join(rel));
        }
        out.dir = to;
        out
    }
}

/// The job's branch name.
pub fn job_branch(job_id: &str) -> String {
    format!("runner/{}/job", ref_safe(job_id))
}

/// Job ids and item stems are `[A-Za-z0-9._-]`; a `.` could make `..` or `.lock`, which git
/// refuses in branch names.
fn ref_safe(s: &str) -> String {
    s.replace('.', "_")
}

/// Whether `wf` runs in worktrees: the top of its git work tree when it does.
pub fn wanted(wf: &Workflow) -> Result<Option<PathBuf>, WorktreeError> {
    let auto = wf.prodigy && wf.executor == ExecutorKind::Local;
    match wf.isolation {
        Isolation::None => Ok(None),
        Isolation::Auto if !auto => Ok(None),
        // A repository without a commit has nothing to branch from: no isolation.
        Isolation::Auto => {
            let git = Git::at(&wf.dir);
            Ok(git.toplevel()?.filter(|_| git.head().is_ok()))
        }
        Isolation::Worktree if wf.executor != ExecutorKind::Local => {
            Err(WorktreeError::Executor(wf.executor.name()))
        }
        Isolation::Worktree => match Git::at(&wf.dir).toplevel()? {
            Some(top) => Ok(Some(top)),
            None => Err(WorktreeError::NotARepo {
                dir: wf.dir.clone(),
            }),
        },
    }
}

/// The job's worktree: the recorded one (made again if its directory is gone), or, when
/// `fresh` (nothing of the job has run yet) and `wf` wants one, a new one from `HEAD`.
pub fn open(
    dir: &JobDir,
    job_id: &str,
    wf: &Workflow,
    fresh: bool,
) -> Result<Option<JobWorktree>, WorktreeError> {
    let record: Option<WorktreeRecord> = read_checksummed(&dir.worktree_record())?;
    let record = match record {
        Some(r) => r,
        None if !fresh => return Ok(None),
        None => match wanted(wf)? {
            None => return Ok(None),
            Some(top) => new_record(&top, wf, job_id)?,
        },
    };
    // Recorded before the worktree exists: a crash in between finds the record and makes
    // the worktree then.
    write_checksummed(&dir.worktree_record(), &record)?;
    let wt = JobWorktree {
        path: dir.job_worktree(),
        record,
        dir: dir.clone(),
        job_id: job_id.to_owned(),
    };
    ensure(&wt)?;
    Ok(Some(wt))
}

fn new_record(top: &Path, wf: &Workflow, job_id: &str) -> Result<WorktreeRecord, WorktreeError> {
    let git = Git::at(top);
    let base = git.head().map_err(|_| WorktreeError::NoCommit {
        dir: top.to_path_buf(),
    })?;
    let start = wf.dir.canonicalize().unwrap_or_else(|_| wf.dir.clone());
    let top_c = top.canonicalize().unwrap_or_else(|_| top.to_path_buf());
    let subdir = start
        .strip_prefix(&top_c)
        .map(Path::to_path_buf)
        .unwrap_or_default();
    Ok(WorktreeRecord {
        repo: top_c,
        subdir,
        branch: job_branch(job_id),
        base,
        target: Git::at(&wf.dir).current_branch()?,
    })
}

/// Make sure the worktree exists, and that no merge a crash cut short is left in it.
fn ensure(wt: &JobWorktree) -> Result<(), WorktreeError> {
    let repo = Git::at(&wt.record.repo);
    if !wt.path.join(".git").exists() {
        create_dir_private(&wt.dir.worktrees())?;
        // The state directory (jobs/<id>/ up two) holds the worktrees: out of `git status`.
        if let Some(root) = wt.dir.path().parent().and_then(Path::parent) {
            exclude_state_dir(&wt.record.repo, root);
        }
        repo.prune()?;
        let p = wt.path.to_string_lossy().into_owned();
        if repo
            .resolve(&format!("refs/heads/{}", wt.record.branch))?
            .is_some()
        {
            repo.run(&["worktree", "add", "--quiet", &p, &wt.record.branch])?;
        } else {
            repo.add_worktree(&wt.path, &wt.record.branch, &wt.record.base)?;
        }
    }
    let git = wt.git();
    if git.merge_in_progress()? {
        git.run(&["merge", "--abort"])?;
    }
    // The start directory may hold nothing git tracks.
    std::fs::create_dir_all(wt.work_dir())
        .map_err(|e| StateError::io("create directory", &wt.work_dir(), e))?;
    Ok(())
}
