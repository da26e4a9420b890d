//! A thin layer over the `git` command line: argv only (never a shell string), each command
//! with `gc.auto=0` so that parallel commits and merges never race on gc's locks.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

/// What went wrong running `git`.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("cannot run git ({0}): install git or put it on PATH")]
    Spawn(std::io::Error),
    #[error("`git {args}` in {dir} failed: {stderr}")]
    Failed {
        args: String,
        dir: PathBuf,
        stderr: String,
    },
    /// A file next to the worktrees could not be written or removed.
    #[error("{0}")]
    Io(String),
    /// `git merge` stopped on conflicts (the merge was aborted).
    #[error("merging {branch} conflicts: {detail}")]
    Conflict { branch: String, detail: String },
}

/// The environment that turns git's automatic gc off for the steps of a worktree (the
/// `GIT_CONFIG_COUNT` mechanism, after any entries already given in `existing`).
pub fn no_gc_env(existing: Option<&str>) -> Vec<(String, String)> {
    let n: usize = existing.and_then(|c| c.trim().parse().ok()).unwrap_or(0);
    vec![
        ("GIT_CONFIG_COUNT".into(), (n + 1).to_string()),
        (format!("GIT_CONFIG_KEY_{n}"), "gc.auto".into()),
        (format!("GIT_CONFIG_VALUE_{n}"), "0".into()),
    ]
}

/// `git` run in one directory.
#[derive(Debug, Clone)]
pub struct Git {
    dir: PathBuf,
}

impl Git {
    pub fn at(dir: impl Into<PathBuf>) -> Self {
        Git { dir: dir.into() }
    }

    fn command<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut c = Command::new("git");
        c.arg("-c")
            .arg("gc.auto=0")
            .args(args)
            .current_dir(&self.dir)
            .env("GIT_TERMINAL_PROMPT", "0")
            .env_remove("GIT_DIR")
            .env_remove("GIT_WORK_TREE")
            .env_remove("GIT_INDEX_FILE")
            .stdin(std::process::Stdio::null());
        c
    }

    /// Run `git args`; its stdout, trimmed.
    pub fn run(&self, args: &[&str]) -> Result<String, GitError> {
        let out = self.command(args).output().map_err(GitError::Spawn)?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
        } else {
            Err(GitError::Failed {
                args: args.join(" "),
                dir: self.dir.clone(),
                stderr: last_lines(&String::from_utf8_lossy(&out.stderr)),
            })
        }
    }

    /// Whether `git args` succeeds (for questions such as `merge-base --is-ancestor`).
    pub fn check(&self, args: &[&str]) -> Result<bool, GitError> {
        let out = self.command(args).output().map_err(GitError::Spawn)?;
        Ok(out.status.success())
    }

    /// The top of the work tree the directory is in; `None` outside a git work tree.
    pub fn toplevel(&self) -> Result<Option<PathBuf>, GitError> {
        let out = self
            .command(["rev-parse", "--show-toplevel"])
            .output()
            .map_err(GitError::Spawn)?;
        if !out.status.success() {
            return Ok(None);
        }
        let top = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        Ok((!top.is_empty()).then(|| PathBuf::from(top)))
    }

    /// The commit `HEAD` points at.
    pub fn head(&self) -> Result<String, GitError> {
        self.run(&["rev-parse", "--verify", "HEAD"])
    }

    /// The commit a ref names, if it exists.
    pub fn resolve(&self, refname: &str) -> Result<Option<String>, GitError> {
        let out = self
            .command(["rev-parse", "--verify", "--quiet", refname])
            .output()
            .map_err(GitError::Spawn)?;
        Ok(out
            .status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned()))
    }

    /// The branch checked out here (`None`: a detached HEAD).
    pub fn current_branch(&self) -> Result<Option<String>, GitError> {
        let out = self
            .command(["symbolic-ref", "--quiet", "--short", "HEAD"])
            .output()
            .map_err(GitError::Spawn)?;
        let name = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        Ok((out.status.success() && !name.is_empty()).then_some(name))
    }

    /// A new worktree at `path` on a new branch `branch` starting at `base`.
    pub fn add_worktree(&self, path: &Path, branch: &str, base: &str) -> Result<(), GitError> {
        let p = path.to_string_lossy();
        self.run(&["worktree", "add", "--quiet", "-b", branch, &p, base])
            .map(drop)
    }

    /// Remove the worktree at `path` (changes and all) and forget it.
    pub fn remove_worktree(&self, path: &Path) -> Result<(), GitError> {
        let p = path.to_string_lossy();
        if path.exists() {
            self.run(&["worktree", "remove", "--force", "--force", &p])?;
        }
        self.prune()
    }

    /// Forget worktrees whose directories are gone.
    pub fn prune(&self) -> Result<(), GitError> {
        self.run(&["worktree", "prune"]).map(drop)
    }

    /// Delete branch `name` if it exists.
    pub fn delete_branch(&self, name: &str) -> Result<(), GitError> {
        if self.resolve(&format!("refs/heads/{name}"))?.is_some() {
            self.run(&["branch", "-D", "--quiet", name])?;
        }
        Ok(())
    }

    /// Whether commit `a` is reachable from `b`.
    pub fn is_ancestor(&self, a: &str, b: &str) -> Result<bool, GitError> {
        self.check(&["merge-base", "--is-ancestor", a, b])
    }

    /// Whether a merge was left half done here (a crash during `git merge`).
    pub fn merge_in_progress(&self) -> Result<bool, GitError> {
        Ok(self.resolve("MERGE_HEAD")?.is_some())
    }

    /// Merge `branch` into the branch checked out here (fast-forward when possible, else a
    /// merge commit); on a conflict the merge is aborted and [`GitError::Conflict`] returned.
    pub fn merge(&self, branch: &str) -> Result<(), GitError> {
        match self.run(&["merge", "--no-edit", "--quiet", branch]) {
            Ok(_) => Ok(()),
            Err(GitError::Failed { stderr, .. }) => {
                let detail = match self.run(&["diff", "--name-only", "--diff-filter=U"]) {
                    Ok(files) if !files.is_empty() => {
                        format!("conflicting files: {}", files.replace('\n', ", "))
                    }
                    _ => stderr,
                };
                if self.merge_in_progress()? {
                    self.run(&["merge", "--abort"])?;
                }
                Err(GitError::Conflict {
                    branch: branch.to_owned(),
                    detail,
                })
            }
            Err(e) => Err(e),
        }
    }
}

/// The last few non-empty lines of git's stderr, on one line.
fn last_lines(s: &str) -> String {
    let lines: Vec<&str> = s.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    lines[lines.len().saturating_sub(3)..].join(" / ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_gc_env_goes_after_existing_entries() {
        assert_eq!(
            no_gc_env(None),
            vec![
                ("GIT_CONFIG_COUNT".to_owned(), "1".to_owned()),
                ("GIT_CONFIG_KEY_0".to_owned(), "gc.auto".to_owned()),
                ("GIT_CONFIG_VALUE_0".to_owned(), "0".to_owned()),
            ]
        );
        assert_eq!(no_gc_env(Some("2"))[1].0, "GIT_CONFIG_KEY_2");
    }

    #[test]
    fn last_lines_keeps_the_end() {
        assert_eq!(last_lines("a\n\nb\nc\nd\n"), "b / c / d");
    }
}
