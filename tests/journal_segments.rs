//! The journal rotates into segments at checkpoints, so a long job's state directory stays
//! bounded. With tiny segments (`RUNNER_JOURNAL_SEGMENT_BYTES`, hidden, for tests) a
//! 1,000-item run rotates dozens of times: `kill -9` at random moments (many inside a
//! rotation or a checkpoint write) and resume still finish every item, each re-run bounded
//! by the attempts in flight; a missing segment the checkpoint does not cover is a clear
//! error; a damaged segment it covers is ignored.

mod common;
#[path = "common/crash.rs"]
mod crash;

use std::time::{Duration, Instant};

use common::*;
use crash::*;

const ITEMS: usize = 1000;
const MAX_PARALLEL: usize = 8;
const SEGMENT: (&str, &str) = ("RUNNER_JOURNAL_SEGMENT_BYTES", "3000");

fn workflow(p: &Project) {
    p.file("items.json", &numbered_items(ITEMS));
    p.file(
        "wf.yml",
        &format!(
            "name: seg\nmap:\n  input: items.json\n  max_parallel: {MAX_PARALLEL}\n  agent_template:\n    - shell: \"echo ${{item_id}} >> exec.log\"\nreduce:\n  - shell: \"echo ${{map.successful}}/${{map.total}} > summary.txt\"\n"
        ),
    );
}

fn segment_files(p: &Project, job: &str) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(p.job_dir(job)) else {
        return Vec::new();
    };
    let mut v: Vec<String> = rd
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("journal."))
        .collect();
    v.sort();
    v
}

#[test]
fn kill9_during_rotations_then_resume_finishes_every_item() {
    let seed: u64 = std::env::var("RUNNER_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5e6_0002);
    eprintln!("crash seed: {seed}");
    let mut rng = fastrand::Rng::with_seed(seed);
    let p = Project::new();
    workflow(&p);
    let state = p.state_dir();
    let mut kills = 0;
    for k in 0..40 {
        let args: &[&str] = if k == 0 {
            &["run", "wf.yml", "--job-id", "s"]
        } else {
            &["resume", "s"]
        };
        let mut bg = spawn_with(&p, &state, args, &[SEGMENT]);
        if k == 0 {
            wait_until("the job to exist", Duration::from_secs(10), || {
                p.job_dir("s").join("job.json").exists()
            });
        }
        std::thread::sleep(Duration::from_millis(rng.u64(20..200)));
        match bg.child.try_wait().expect("try_wait") {
            Some(st) => {
                assert_eq!(st.code(), Some(0), "run {k}: {}", bg.stderr());
                break;
            }
            None => {
                bg.kill9();
                kills += 1;
                // The next run needs the lock: a child spawned at the very moment of the kill
                // may hold the lock's descriptor until it execs, so wait for the release
                // (as tests/crash_kill9.rs does).
                wait_until("the lock to be released", Duration::from_secs(5), || {
                    p.status("s")["state"] != "running"
                });
            }
        }
    }
    // Whatever is left finishes now.
    let out = run_with(&p, &state, &["resume", "s"], &[SEGMENT]);
    assert!(code(&out) == 0, "final resume: {}", stderr(&out));
    let st = p.status("s");
    assert_eq!(st["successful"], ITEMS as u64, "{st}");
    assert_eq!(st["pending"], 0, "{st}");
    assert_eq!(p.read("summary.txt").trim(), format!("{ITEMS}/{ITEMS}"));
    let runs = line_counts(&p.read("exec.log"));
    assert_eq!(runs.len(), ITEMS, "every item ran");
    let extra: usize = runs.values().map(|n| n - 1).sum();
    // A kill re-runs at most the attempts in flight and those whose record was not durable.
    assert!(
        extra <= kills * 2 * MAX_PARALLEL,
        "{extra} re-runs for {kills} kills"
    );
    assert!(
        kills >= 3,
        "the run finished before the test could kill it enough ({kills})"
    );
    // Bounded: the covered segments are gone.
    let segs = segment_files(&p, "s");
    assert!(segs.len() <= 2, "{segs:?}");
}

#[test]
fn a_needed_segment_that_is_missing_is_a_clear_error_and_a_covered_damaged_one_is_ignored() {
    let p = Project::new();
    workflow(&p);
    let state = p.state_dir();
    // Interrupt after a few rotations so that sealed segments exist.
    let mut bg = spawn_with(&p, &state, &["run", "wf.yml", "--job-id", "m"], &[SEGMENT]);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let segs = segment_files(&p, "m");
        if segs.len() >= 2 && p.read("exec.log").lines().count() > 300 {
            break;
        }
        assert!(Instant::now() < deadline, "no rotation: {segs:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
    bg.kill9();

    // A sealed segment the checkpoint covers may be damaged: resume does not read it. (A
    // kill between sealing a segment and writing the next checkpoint leaves a sealed
    // segment that is still needed: it stays intact.)
    let dir = p.job_dir("m");
    let ckpt = std::fs::read(dir.join("checkpoint.bin")).expect("a checkpoint");
    let header: serde_json::Value =
        serde_json::from_slice(ckpt.split(|&b| b == b'\n').nth(1).unwrap()).unwrap();
    let from = header["segment"].as_u64().unwrap();
    let covered: Vec<String> = segment_files(&p, "m")
        .into_iter()
        .filter(|n| {
            n.strip_prefix("journal.")
                .and_then(|r| r.strip_suffix(".log"))
                .and_then(|r| r.parse::<u64>().ok())
                .is_some_and(|seq| seq < from)
        })
        .collect();
    // A crash right after a checkpoint leaves the segments it covers until the next
    // rotation deletes them: make one (damaged) if the kill did not.
    assert!(from > 0, "the run rotated");
    let leftover = format!("journal.{}.log", from - 1);
    for name in covered.iter().chain([&leftover]) {
        std::fs::write(dir.join(name), "garbage\n").unwrap();
    }
    let out = run_with(&p, &state, &["resume", "m"], &[SEGMENT]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(p.status("m")["successful"], ITEMS as u64);

    // Without the checkpoint, every segment since the first is needed: the first one that
    // is gone is named.
    let p2 = Project::new();
    workflow(&p2);
    let state2 = p2.state_dir();
    let mut bg = spawn_with(
        &p2,
        &state2,
        &["run", "wf.yml", "--job-id", "n"],
        &[SEGMENT],
    );
    wait_until("two segments", Duration::from_secs(20), || {
        segment_files(&p2, "n").len() >= 2 && p2.read("exec.log").lines().count() > 200
    });
    bg.kill9();
    std::fs::remove_file(p2.job_dir("n").join("checkpoint.bin")).unwrap();
    let out = run_with(&p2, &state2, &["resume", "n"], &[SEGMENT]);
    let err = stderr(&out);
    assert_eq!(code(&out), 1, "{err}");
    assert!(
        err.contains("journal.") && err.contains("missing"),
        "names the missing segment: {err}"
    );
}
