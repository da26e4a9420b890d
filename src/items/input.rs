//! Where the items come from: a file or a shell command.

use std::path::{Path, PathBuf};

use super::command::run_command;
use super::error::ItemsError;

/// The items input of a workflow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A file, read as is (the path is used as given; [`Input::from_bare`] already joins it
    /// with the workflow directory).
    File(PathBuf),
    /// A shell command run with `/bin/sh -c` in the workflow directory; its stdout is the input.
    Command(String),
}

impl Input {
    /// Prodigy's rule for a bare `input:` string: when `base_dir/s` names an existing file it
    /// is that file (the joined path), otherwise `s` is a shell command.
    pub fn from_bare(s: &str, base_dir: &Path) -> Input {
        let path = base_dir.join(s);
        if !s.is_empty() && path.is_file() {
            Input::File(path)
        } else {
            Input::Command(s.to_string())
        }
    }

    /// What error locations (`ORIGIN:LINE:COLUMN`) name: the path, or the command's output.
    pub fn origin(&self) -> String {
        match self {
            Input::File(path) => path.display().to_string(),
            Input::Command(_) => "map.input command output".to_string(),
        }
    }

    /// Read the file, or run the command in `base_dir` with `env` added, and return the bytes.
    pub fn read(&self, base_dir: &Path, env: &[(String, String)]) -> Result<Vec<u8>, ItemsError> {
        match self {
            Input::File(path) => std::fs::read(path).map_err(|source| ItemsError::Io {
                path: path.clone(),
                source,
            }),
            Input::Command(cmd) => run_command(cmd, base_dir, env),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_bare_prefers_an_existing_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("items.json"), "[]").expect("write");
        assert_eq!(
            Input::from_bare("items.json", dir.path()),
            Input::File(dir.path().join("items.json"))
        );
        assert_eq!(
            Input::from_bare("ls *.json", dir.path()),
            Input::Command("ls *.json".to_string())
        );
        assert_eq!(
            Input::from_bare("missing.json", dir.path()),
            Input::Command("missing.json".to_string())
        );
    }

    #[test]
    fn from_bare_directory_or_empty_is_a_command() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("sub")).expect("mkdir");
        assert_eq!(
            Input::from_bare("sub", dir.path()),
            Input::Command("sub".to_string())
        );
        assert_eq!(
            Input::from_bare("", dir.path()),
            Input::Command(String::new())
        );
    }

    #[test]
    fn reads_a_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.txt");
        std::fs::write(&path, "x\n").expect("write");
        let input = Input::File(path);
        assert_eq!(input.read(dir.path(), &[]).expect("reads"), b"x\n");
    }

    #[test]
    fn unreadable_file_names_the_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("nope.json");
        let err = Input::File(path.clone())
            .read(dir.path(), &[])
            .expect_err("fails");
        assert!(matches!(err, ItemsError::Io { .. }), "{err:?}");
        assert!(err.to_string().contains(&path.display().to_string()));
    }

    #[test]
    fn runs_a_command_in_base_dir() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("marker"), "").expect("write");
        let out = Input::Command("ls".to_string())
            .read(dir.path(), &[])
            .expect("runs");
        assert_eq!(out, b"marker\n");
    }

    #[test]
    fn origin_describes_the_source() {
        assert_eq!(
            Input::Command("ls".into()).origin(),
            "map.input command output"
        );
        assert_eq!(Input::File(PathBuf::from("/a/b")).origin(), "/a/b");
    }
}
