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

/// The `runner __watchdog` child of `runner_pid`.
pub fn watchdog_of(runner_pid: i32) -> Option<i32> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        for e in std::fs::read_dir("/proc").ok()?.flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let ppid = stat
                .rsplit(')')
                .next()
                .and_then(|r| r.split_whitespace().nth(1))
                .and_then(|p| p.parse::<i32>().ok());
            if ppid == Some(runner_pid) && String::from_utf8_lossy(&cmdline).contains("__watchdog")
            {
                return Some(pid);
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// SIGKILL the runner and its watchdog together, so that the process groups of its steps
/// survive it (only a resume cleans them up then).
pub fn kill9_with_watchdog(bg: &mut Bg) {
    let watchdog = watchdog_of(bg.pid() as i32).expect("the runner starts a watchdog");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(watchdog),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill the watchdog");
    bg.kill9();
}

/// Job `s`: item `a` fails into the DLQ (until the file `fixed` exists) and stops the map
/// (`on_item_failure: stop`), so `b`, `c`, `d` stay pending; then `dlq.jsonl` gets an
/// entry for the pending `b` too, as a crash between the DLQ write and the journal record
/// leaves it. Items append their id to `ran.log`; the workflow has one reduce step.
pub fn stopped_job_with_stray_dlq_entry(p: &Project) {
    p.file(
        "items.json",
        r#"[{"id":"a"},{"id":"b"},{"id":"c"},{"id":"d"}]"#,
    );
    p.file(
        "s.yml",
        "name: s\nerror_policy:\n  on_item_failure: stop\nmap:\n  input: items.json\n  max_parallel: 1\n  agent_template:\n    - shell: 'echo ${item.id} >> ran.log; [ ${item.id} != a ] || [ -f fixed ]'\nreduce:\n  - shell: 'true'\n",
    );
    let out = run_with(p, &p.state_dir(), &["run", "s.yml", "--job-id", "s"], &[]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let path = p.job_dir("s").join("dlq.jsonl");
    let line = std::fs::read_to_string(&path).expect("dlq.jsonl");
    let mut e: serde_json::Value = serde_json::from_str(line.trim()).expect("one DLQ entry");
    e["item_id"] = "b".into();
    e["item"] = serde_json::json!({ "id": "b" });
    std::fs::write(&path, format!("{line}{e}\n")).expect("write dlq.jsonl");
}

/// Job `job` of `k.yml` (`n + 1` items, `n` at a time; while the file `slow` exists each
/// item writes its pid to `pids` and sleeps): once `n` items run, the runner and its
/// watchdog are killed with SIGKILL, leaving the items' process groups running. Returns
/// their pids (each the leader of its group). Removing `slow` lets items finish at once.
pub fn crash_leaving_groups(p: &Project, job: &str, n: usize) -> Vec<i32> {
    p.file("items.json", &numbered_items(n + 1));
    p.file("slow", "");
    p.file(
        "k.yml",
        &format!("name: k\nmap:\n  input: items.json\n  max_parallel: {n}\n  agent_template:\n    - shell: 'if [ -f slow ]; then echo $$ >> pids; exec sleep 300; fi'\n"),
    );
    let mut bg = spawn(p, &["run", "k.yml", "--job-id", job]);
    let journal = p.job_dir(job).join("journal.log");
    let pids = || -> Vec<i32> {
        std::fs::read_to_string(p.path().join("pids"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    };
    wait_until(
        "the items to run and be recorded as started",
        Duration::from_secs(10),
        || {
            pids().len() == n
                && journal_records(&journal)
                    .iter()
                    .filter(|r| r["t"] == "item_started")
                    .count()
                    == n
        },
    );
    kill9_with_watchdog(&mut bg);
    pids()
}
