//! Run the items command and capture its output.

use std::path::Path;
use std::process::{Command, Stdio};

use super::error::ItemsError;

/// How many trailing stderr lines a failure report keeps.
const STDERR_TAIL_LINES: usize = 20;

/// Run `command` with `/bin/sh -c` in `dir` with `env` added to the environment; return its
/// stdout. Stdin is empty; stderr is captured and, on failure, its last lines are reported.
pub fn run_command(
    command: &str,
    dir: &Path,
    env: &[(String, String)],
) -> Result<Vec<u8>, ItemsError> {
    let output = Command::new("/bin/sh")
        .arg("-c")
        .arg(command)
        .current_dir(dir)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .output()
        .map_err(|source| ItemsError::CommandSpawn {
            command: command.to_string(),
            dir: dir.to_path_buf(),
            source,
        })?;
    if output.status.success() {
        return Ok(output.stdout);
    }
    Err(ItemsError::Command {
        command: command.to_string(),
        code: output.status.code(),
        stderr_tail: tail(&String::from_utf8_lossy(&output.stderr), STDERR_TAIL_LINES),
    })
}

/// The last `n` lines of `text`, without a trailing newline.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.trim_end().lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captures_stdout_in_dir_with_env() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("f.txt"), "hello").expect("write");
        let out = run_command(
            "cat f.txt; printf ' %s' \"$GREETING\"; echo oops >&2",
            dir.path(),
            &[("GREETING".to_string(), "hi".to_string())],
        )
        .expect("runs");
        assert_eq!(out, b"hello hi");
    }

    #[test]
    fn failure_reports_code_and_stderr_tail() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = run_command(
            "for i in $(seq 1 30); do echo line$i >&2; done; exit 3",
            dir.path(),
            &[],
        )
        .expect_err("fails");
        match &err {
            ItemsError::Command {
                command,
                code,
                stderr_tail,
            } => {
                assert!(command.starts_with("for i"));
                assert_eq!(*code, Some(3));
                assert_eq!(stderr_tail.lines().count(), 20);
                assert!(stderr_tail.starts_with("line11\n"));
                assert!(stderr_tail.ends_with("line30"));
            }
            other => panic!("unexpected {other:?}"),
        }
        let msg = err.to_string();
        assert!(
            msg.contains("exit code 3") && msg.contains("line30"),
            "{msg}"
        );
    }

    #[test]
    fn killed_by_signal_has_no_code() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = run_command("kill -9 $$", dir.path(), &[]).expect_err("fails");
        assert!(
            matches!(err, ItemsError::Command { code: None, .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("signal"));
    }

    #[test]
    fn missing_directory_cannot_spawn() {
        let err = run_command("true", Path::new("/nonexistent/dir/x"), &[]).expect_err("fails");
        assert!(matches!(err, ItemsError::CommandSpawn { .. }), "{err:?}");
        assert!(err.to_string().contains("/nonexistent/dir/x"));
    }

    #[test]
    fn tail_keeps_last_lines() {
        assert_eq!(tail("a\nb\nc\n", 2), "b\nc");
        assert_eq!(tail("", 2), "");
    }
}
