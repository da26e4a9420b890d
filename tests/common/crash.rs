//! Helpers for crash-recovery tests: background `runner` processes that can be SIGKILLed,
//! polling for marker files with a deadline, and reading the journal and exec logs.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::Project;

/// A `runner` process started in the background with stdout/stderr going to files.
pub struct Bg {
    pub child: Child,
    pub stderr_path: PathBuf,
    pub stdout_path: PathBuf,
}

impl Bg {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL the process and reap it.
    pub fn kill9(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
        let _ = self.child.wait();
    }

    /// Wait for the process to exit (at most `limit`), returning its exit code, or `None`
    /// if it was still running at the deadline (it is then killed).
    pub fn wait_code(&mut self, limit: Duration) -> Option<i32> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                return Some(st.code().unwrap_or(-1));
            }
            if Instant::now() >= deadline {
                self.kill9();
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.stdout_path).unwrap_or_default()
    }
}

impl Drop for Bg {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.kill9();
        }
    }
}

/// `runner <args>` as a std Command (so it can be killed), in `p`'s directory with its state dir.
pub fn runner_command(p: &Project, state_dir: &Path) -> Command {
    let mut c = Command::new(assert_cmd::cargo::cargo_bin("runner"));
    c.current_dir(p.path())
        .env("RUNNER_STATE_DIR", state_dir)
        .env_remove("RUST_LOG")
        .env_remove("NO_COLOR")
        .stdin(Stdio::null());
    c
}

static SPAWNED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Start `runner <args>` in the background.
pub fn spawn(p: &Project, args: &[&str]) -> Bg {
    spawn_with(p, &p.state_dir(), args, &[])
}

pub fn spawn_with(p: &Project, state_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Bg {
    let n = SPAWNED.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let logs = p.path().join(".bg");
    std::fs::create_dir_all(&logs).expect("mkdir .bg");
    let stderr_path = logs.join(format!("{n}.stderr"));
    let stdout_path = logs.join(format!("{n}.stdout"));
    let mut c = runner_command(p, state_dir);
    c.args(args)
        .stdout(std::fs::File::create(&stdout_path).expect("stdout file"))
        .stderr(std::fs::File::create(&stderr_path).expect("stderr file"));
    for (k, v) in env {
        c.env(k, v);
    }
    let child = c.spawn().expect("spawn runner");
    Bg {
        child,
        stderr_path,
        stdout_path,
    }
}

/// Run `runner <args>` to completion with a private state dir and extra env.
pub fn run_with(p: &Project, state_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = runner_command(p, state_dir);
    c.args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run runner")
}

/// Poll `cond` every 10 ms until it holds; panic with `what` after `limit`.
pub fn wait_until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The complete, checksummed-looking lines of a journal as JSON (a torn last line is skipped).
pub fn journal_records(path: &Path) -> Vec<serde_json::Value> {
    let bytes = std::fs::read(path).unwrap_or_default();
    let mut out = Vec::new();
    for line in bytes.split_inclusive(|&b| b == b'\n') {
        let Some(body) = line.strip_suffix(b"\n") else {
            break;
        };
        if body.len() < 10 || body[8] != b' ' {
            break;
        }
        let Ok(crc) = u32::from_str_radix(std::str::from_utf8(&body[..8]).unwrap_or("x"), 16)
        else {
            break;
        };
        if crc32c::crc32c(&body[9..]) != crc {
            break;
        }
        match serde_json::from_slice(&body[9..]) {
            Ok(v) => out.push(v),
            Err(_) => break,
        }
    }
    out
}

/// Number of `item_done` records in the journal file (any status).
pub fn item_done_count(path: &Path) -> usize {
    journal_records(path)
        .iter()
        .filter(|r| r["t"] == "item_done")
        .count()
}

/// idx -> number of `item_done` records with status `succeeded`.
pub fn succeeded_records(records: &[serde_json::Value]) -> BTreeMap<u64, usize> {
    let mut m = BTreeMap::new();
    for r in records {
        if r["t"] == "item_done" && r["status"] == "succeeded" {
            *m.entry(r["idx"].as_u64().expect("idx")).or_default() += 1;
        }
    }
    m
}

/// Line -> count of a log file that items append their id to.
pub fn line_counts(text: &str) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for l in text.lines() {
        *m.entry(l.trim().to_owned()).or_default() += 1;
    }
    m
}

/// `{id: 1}` for each of `ids`, as the expected [`line_counts`].
pub fn once_each(ids: impl IntoIterator<Item = usize>) -> BTreeMap<String, usize> {
    ids.into_iter().map(|i| (i.to_string(), 1)).collect()
}

/// `items.json` holding `[{"id":1},...,{"id":n}]`.
pub fn numbered_items(n: usize) -> String {
    let v: Vec<_> = (1..=n).map(|i| serde_json::json!({ "id": i })).collect();
    serde_json::to_string(&v).unwrap()
}

/// Recursively copy a directory.
pub fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).expect("mkdir");
    for e in std::fs::read_dir(src).expect("read_dir") {
        let e = e.expect("entry");
        let to = dst.join(e.file_name());
        if e.file_type().expect("file type").is_dir() {
            copy_dir(&e.path(), &to);
        } else {
            std::fs::copy(e.path(), &to).expect("copy");
        }
    }
}

/// `dlq list JOB --json` parsed.
pub fn dlq_list(p: &Project, job: &str) -> Vec<serde_json::Value> {
    let out = p.run(&["dlq", "list", job, "--json"]);
    assert!(
        out.status.success(),
        "dlq list failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("dlq list JSON");
    v.as_array().expect("dlq list is an array").clone()
}

/// The item ids in `dlq list --json`, sorted.
pub fn dlq_ids(p: &Project, job: &str) -> Vec<String> {
    let mut ids: Vec<String> = dlq_list(p, job)
        .iter()
        .map(|e| match &e["item_id"] {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect();
    ids.sort();
    ids
}
