//! Extra helpers for the black-box tests (NDJSON parsing, polling, process checks).
#![allow(dead_code)]

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use super::Project;

/// Parse `--json` NDJSON stdout into events.
pub fn events(o: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad NDJSON line {l:?}: {e}")))
        .collect()
}

/// The events named `name`.
pub fn events_named(o: &Output, name: &str) -> Vec<serde_json::Value> {
    events(o)
        .into_iter()
        .filter(|e| e["event"] == name)
        .collect()
}

/// Poll until `cond` holds, panicking with `what` after `limit`.
pub fn wait_until(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Wait for a file to exist with non-empty content.
pub fn wait_for_file(path: &Path, limit: Duration) {
    wait_until(limit, &format!("file {}", path.display()), || {
        std::fs::metadata(path)
            .map(|m| m.len() > 0)
            .unwrap_or(false)
    });
}

/// Whether a process with this pid exists and is not a zombie.
pub fn pid_alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => {
            // state is the field after the ")" closing the command name
            let state = s
                .rsplit_once(')')
                .map(|(_, r)| r.trim_start().chars().next());
            !matches!(state, Some(Some('Z')) | Some(Some('X')))
        }
        Err(_) => false,
    }
}

/// Read a pid written by a step.
pub fn read_pid(p: &Project, name: &str) -> i32 {
    p.read(name)
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("no pid in {name}: {:?}", p.read(name)))
}

/// `runner <args>` output, asserting the exit code.
pub fn run_expect(p: &Project, args: &[&str], want: i32) -> Output {
    let out = p.run(args);
    assert_eq!(
        super::code(&out),
        want,
        "runner {args:?}: stdout:\n{}\nstderr:\n{}",
        super::stdout(&out),
        super::stderr(&out)
    );
    out
}

/// Lines of a file, sorted.
pub fn sorted_lines(p: &Project, name: &str) -> Vec<String> {
    let mut v: Vec<String> = p.read(name).lines().map(String::from).collect();
    v.sort();
    v
}

/// Lines of a file in order.
pub fn lines(p: &Project, name: &str) -> Vec<String> {
    p.read(name).lines().map(String::from).collect()
}

/// `git args` in `dir`, which must succeed; its stdout, trimmed.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Make `dir` a git repository on `main` with a committer configured (nothing committed).
pub fn git_init(dir: &Path) {
    git(dir, &["init", "-q", "-b", "main"]);
    git(dir, &["config", "user.name", "Test"]);
    git(dir, &["config", "user.email", "test@example.com"]);
}

/// Commit everything in `dir`.
pub fn git_commit_all(dir: &Path, message: &str) {
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "-m", message]);
}
