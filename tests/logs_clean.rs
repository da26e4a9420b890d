//! `runner logs` (setup/reduce output, an item's attempts, `--follow`) and `runner clean`
//! (which job directories go, which stay; retention with `--all-states`; bytes freed),
//! through the built binary.

mod common;
#[path = "common/crash.rs"]
mod crash;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use crash::*;

const LIMIT: Duration = Duration::from_secs(10);

fn run_bounded(p: &Project, args: &[&str]) -> std::process::Output {
    p.cmd()
        .args(args)
        .timeout(Duration::from_secs(20))
        .output()
        .expect("runner finished in time")
}

/// Positions of `needles` in `hay`, asserting each is present and they come in order.
fn assert_in_order(hay: &str, needles: &[&str]) {
    let mut from = 0;
    for n in needles {
        match hay[from..].find(n) {
            Some(i) => from += i + n.len(),
            None => panic!("{n:?} missing or out of order in:\n{hay}"),
        }
    }
}

#[test]
fn logs_show_setup_reduce_and_each_attempt_of_an_item() {
    let p = Project::new();
    p.file("items.json", r#"[{"id":"a"},{"id":"b"}]"#);
    p.file(
        "wf.yml",
        r#"name: lg
setup:
  - shell: 'echo setup says hi; echo setup warns >&2'
map:
  input: items.json
  max_parallel: 1
  retry:
    max_attempts: 2
    initial_delay: 10ms
  agent_template:
    - shell: 'echo "out $RUNNER_ITEM_ID try $RUNNER_ATTEMPT"; echo "err $RUNNER_ITEM_ID try $RUNNER_ATTEMPT" >&2; [ "$RUNNER_ATTEMPT" -ge 2 ] || [ "$RUNNER_ITEM_ID" = b ]'
reduce:
  - shell: 'echo reduce saw ${map.successful} of ${map.total}'
"#,
    );
    let out = run_bounded(&p, &["run", "wf.yml", "--job-id", "lg"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));

    let out = run_bounded(&p, &["logs", "lg"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = stdout(&out);
    assert_in_order(
        &text,
        &[
            "==> setup step 1 stdout",
            "setup says hi",
            "==> setup step 1 stderr",
            "setup warns",
            "==> reduce step 1 stdout",
            "reduce saw 2 of 2",
        ],
    );
    assert!(
        !text.contains("out a try"),
        "item output is not in the job log: {text}"
    );

    let out = run_bounded(&p, &["logs", "lg", "a"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = stdout(&out);
    assert_in_order(
        &text,
        &[
            "==> attempt 1 stdout",
            "out a try 1",
            "==> attempt 1 stderr",
            "err a try 1",
            "==> attempt 2 stdout",
            "out a try 2",
            "==> attempt 2 stderr",
            "err a try 2",
        ],
    );
    assert!(!text.contains(" b "), "only item a: {text}");

    let out = run_bounded(&p, &["logs", "lg", "b"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = stdout(&out);
    assert_in_order(&text, &["==> attempt 1 stdout", "out b try 1"]);
    assert!(!text.contains("attempt 2"), "b succeeded at once: {text}");

    let out = run_bounded(&p, &["logs", "lg", "zz"]);
    assert_eq!(code(&out), 2, "unknown item: {}", stderr(&out));
    assert!(stderr(&out).contains("zz"), "{}", stderr(&out));
    let out = run_bounded(&p, &["logs", "nope"]);
    assert_eq!(code(&out), 2, "unknown job: {}", stderr(&out));
}

#[test]
fn logs_follow_streams_while_the_job_runs_and_returns_when_it_ends() {
    let p = Project::new();
    p.file("items.json", r#"[{"id":"a"}]"#);
    p.file(
        "wf.yml",
        r#"name: fo
setup:
  - shell: 'echo alpha; touch started; while [ ! -f go ]; do sleep 0.05; done; echo omega'
map:
  input: items.json
  agent_template:
    - shell: 'true'
"#,
    );
    let mut job = spawn(&p, &["run", "wf.yml", "--job-id", "fo"]);
    wait_until("setup to start", LIMIT, || {
        p.path().join("started").exists()
    });
    let mut follow = spawn(&p, &["logs", "fo", "--follow"]);
    wait_until("--follow to print the output so far", LIMIT, || {
        follow.stdout().contains("alpha")
    });
    assert!(
        follow.child.try_wait().unwrap().is_none(),
        "--follow keeps going while the job runs: {}",
        follow.stdout()
    );
    assert!(!follow.stdout().contains("omega"));
    p.file("go", "");
    assert_eq!(job.wait_code(LIMIT), Some(0), "{}", job.stderr());
    assert_eq!(
        follow.wait_code(LIMIT),
        Some(0),
        "--follow returns when the job ends: {}",
        follow.stderr()
    );
    assert_in_order(
        &follow.stdout(),
        &["==> setup step 1 stdout", "alpha", "omega"],
    );
}

/// A project with four jobs: `ok` completed, `bad` failed, `cut` interrupted (kill -9)
/// and `live` running (returned; it ends once the file `release` exists).
fn four_jobs(p: &Project) -> Bg {
    p.file("items.json", &numbered_items(2));
    p.file(
        "ok.yml",
        "name: ok\nmap:\n  input: items.json\n  agent_template:\n    - shell: 'true'\n",
    );
    p.file(
        "bad.yml",
        "name: bad\nmap:\n  input: items.json\n  agent_template:\n    - shell: 'exit 1'\n",
    );
    p.file(
        "cut.yml",
        "name: cut\nmap:\n  input: items.json\n  max_parallel: 1\n  agent_template:\n    - shell: 'touch cut-started; exec sleep 30'\n",
    );
    p.file(
        "live.yml",
        "name: live\nmap:\n  input: items.json\n  max_parallel: 1\n  agent_template:\n    - shell: 'touch live-started; while [ ! -f release ]; do sleep 0.05; done'\n",
    );
    assert_eq!(code(&p.run(&["run", "ok.yml", "--job-id", "ok"])), 0);
    assert_eq!(code(&p.run(&["run", "bad.yml", "--job-id", "bad"])), 1);
    let mut cut = spawn(p, &["run", "cut.yml", "--job-id", "cut"]);
    wait_until("cut to start", LIMIT, || {
        p.path().join("cut-started").exists()
    });
    cut.kill9();
    let live = spawn(p, &["run", "live.yml", "--job-id", "live"]);
    wait_until("live to start", LIMIT, || {
        p.path().join("live-started").exists()
    });
    for (job, state) in [
        ("ok", "completed"),
        ("bad", "failed"),
        ("cut", "interrupted"),
        ("live", "running"),
    ] {
        assert_eq!(p.status(job)["state"], state, "precondition for {job}");
    }
    live
}

fn temp_file(dir: &Path) -> std::path::PathBuf {
    let t = dir.join(".checkpoint.json.tmp-999999-abc123");
    std::fs::write(&t, "half a write").unwrap();
    t
}

fn finish(p: &Project, mut live: Bg) {
    p.file("release", "");
    assert_eq!(live.wait_code(LIMIT), Some(0), "{}", live.stderr());
}

#[test]
fn clean_removes_finished_jobs_keeps_interrupted_and_running_ones() {
    let p = Project::new();
    let live = four_jobs(&p);
    let cut_tmp = temp_file(&p.job_dir("cut"));
    let live_tmp = temp_file(&p.job_dir("live"));

    let out = run_bounded(&p, &["clean"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(p.jobs(), ["cut", "live"], "{}", stderr(&out));
    let listed = stdout(&out);
    assert!(
        listed.contains("ok") && listed.contains("bad"),
        "clean names what it removed: {listed}"
    );
    assert!(
        !cut_tmp.exists(),
        "a stale temp file in a kept job is deleted"
    );
    assert!(
        live_tmp.exists(),
        "nothing inside a running job's directory is touched"
    );
    assert_eq!(p.status("cut")["state"], "interrupted");
    assert_eq!(p.status("live")["state"], "running");

    finish(&p, live);
    std::fs::remove_file(&live_tmp).unwrap();
    let out = run_bounded(&p, &["clean"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(p.jobs(), ["cut"], "the finished job goes once it ended");
}

#[test]
fn clean_dry_run_completed_and_older_than_filters() {
    let p = Project::new();
    let live = four_jobs(&p);
    let all = ["bad", "cut", "live", "ok"];
    let cut_tmp = temp_file(&p.job_dir("cut"));

    let out = run_bounded(&p, &["clean", "--dry-run"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(p.jobs(), all, "--dry-run removes nothing");
    assert!(cut_tmp.exists(), "--dry-run deletes no temp file");
    let listed = stdout(&out);
    let mut would: Vec<&str> = listed
        .lines()
        .filter_map(|l| l.strip_prefix("would remove "))
        .map(str::trim)
        .collect();
    would.sort();
    assert_eq!(would, ["bad", "ok"], "{}", stdout(&out));

    let out = run_bounded(&p, &["clean", "--older-than", "1h"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(p.jobs(), all, "recent jobs are kept by --older-than 1h");

    let out = run_bounded(&p, &["clean", "--completed"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        p.jobs(),
        ["bad", "cut", "live"],
        "--completed keeps failed jobs"
    );
    finish(&p, live);
}

#[test]
fn clean_older_than_zero_removes_just_finished_jobs() {
    let p = Project::new();
    p.file("items.json", &numbered_items(1));
    p.file(
        "ok.yml",
        "name: ok\nmap:\n  input: items.json\n  agent_template:\n    - shell: 'true'\n",
    );
    assert_eq!(code(&p.run(&["run", "ok.yml", "--job-id", "ok"])), 0);
    let t = Instant::now();
    let out = run_bounded(&p, &["clean", "--older-than", "0s"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(p.jobs().is_empty(), "{}", stderr(&out));
    assert!(t.elapsed() < LIMIT);
}

/// Bytes of the files under `dir` (what `clean` reports as freed).
fn size_of(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| {
            let m = e.metadata().unwrap();
            if m.is_dir() {
                size_of(&e.path())
            } else {
                m.len()
            }
        })
        .sum()
}

/// The crashed run's process groups of `job` are gone (the watchdog kills them).
fn wait_no_leftovers(p: &Project, job: &str) {
    wait_until("the crashed run's process groups to be gone", LIMIT, || {
        let out = run_bounded(p, &["resume", job, "--dry-run", "--json"]);
        let d: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        d["leftover_process_groups"]
            .as_array()
            .unwrap()
            .iter()
            .all(|g| g["alive"] == false)
    });
}

#[test]
fn clean_all_states_removes_old_interrupted_jobs_and_reports_bytes_freed() {
    let p = Project::new();
    let live = four_jobs(&p);
    let all = ["bad", "cut", "live", "ok"];

    let out = run_bounded(&p, &["clean", "--all-states"]);
    assert_eq!(code(&out), 2, "--all-states requires --older-than");
    assert!(stderr(&out).contains("--older-than"), "{}", stderr(&out));
    let out = run_bounded(
        &p,
        &["clean", "--all-states", "--completed", "--older-than", "0s"],
    );
    assert_eq!(code(&out), 2, "--all-states conflicts with --completed");
    assert_eq!(p.jobs(), all);

    let out = run_bounded(&p, &["clean", "--all-states", "--older-than", "1h"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(p.jobs(), all, "recent jobs are kept");

    wait_no_leftovers(&p, "cut");
    let bytes: u64 = ["bad", "cut", "ok"]
        .iter()
        .map(|j| size_of(&p.job_dir(j)))
        .sum();
    assert!(bytes > 0);
    let freed = indicatif::BinaryBytes(bytes).to_string();

    let out = run_bounded(
        &p,
        &["clean", "--all-states", "--older-than", "0s", "--dry-run"],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(p.jobs(), all, "--dry-run removes nothing");
    let listed = stdout(&out);
    let mut would: Vec<&str> = listed
        .lines()
        .filter_map(|l| l.strip_prefix("would remove "))
        .collect();
    would.sort();
    assert_eq!(would, ["bad", "cut", "ok"]);
    assert!(
        stderr(&out).contains(&format!(
            "would remove 3 job(s), would free {freed}; kept 1"
        )),
        "{}",
        stderr(&out)
    );

    let out = run_bounded(&p, &["clean", "--all-states", "--older-than", "0s"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(p.jobs(), ["live"], "never a locked job");
    assert!(
        stderr(&out).contains(&format!("removed 3 job(s), freed {freed}; kept 1")),
        "{}",
        stderr(&out)
    );
    assert_eq!(p.status("live")["state"], "running");
    finish(&p, live);
}

#[test]
fn clean_keeps_an_interrupted_job_whose_crashed_run_still_runs_processes() {
    let p = Project::new();
    let pids = crash_leaving_groups(&p, "k", 1);
    let out = run_bounded(&p, &["clean", "--all-states", "--older-than", "0s"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(p.jobs(), ["k"], "its processes still run: kept");

    nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(pids[0]),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    wait_no_leftovers(&p, "k");
    let out = run_bounded(&p, &["clean", "--all-states", "--older-than", "0s"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(p.jobs().is_empty(), "{}", stderr(&out));
}
