//! Keeping runner's state out of `git status`: the job's worktrees live in the state
//! directory, by default `.runner/` at the top of the repository they come from. When that
//! directory is inside the repository and git does not ignore it yet, it is added to the
//! repository's local exclude file (`info/exclude` in the git directory: never committed,
//! never shared), once.

use std::io::Write;
use std::path::Path;

use crate::engine::worktree::git::Git;
use crate::workflow::template::quote::backslash_before;

/// Exclude `state_root` (runner's state directory) from the repository at `top`, if it is
/// inside it and not ignored yet. Best effort: a failure only leaves `git status` showing it.
pub fn exclude_state_dir(top: &Path, state_root: &Path) {
    let (Ok(top), Ok(root)) = (top.canonicalize(), state_root.canonicalize()) else {
        return;
    };
    let Some(rel) = root.strip_prefix(&top).ok().and_then(Path::to_str) else {
        return;
    };
    if rel.is_empty() {
        return;
    }
    let git = Git::at(&top);
    if git.check(&["check-ignore", "-q", rel]).unwrap_or(true) {
        return;
    }
    let Ok(common) = git.run(&["rev-parse", "--git-common-dir"]) else {
        return;
    };
    let info = top.join(common).join("info");
    let _ = std::fs::create_dir_all(&info);
    let line = format!("/{}/\n", escape(rel));
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(info.join("exclude"))
    {
        let _ = f.write_all(line.as_bytes());
    }
}

/// A path as a gitignore pattern that matches only itself.
fn escape(path: &str) -> String {
    backslash_before(path, |c| {
        matches!(c, '\\' | '*' | '?' | '[' | '!' | '#' | ' ')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_only_the_path() {
        assert_eq!(escape(".runner"), ".runner");
        assert_eq!(escape("a b/[x]*#"), "a\\ b/\\[x]\\*\\#");
    }
}
