//! Live control of a running job through the built binary: `runner pause` / `resume` /
//! `stop`, SIGINT/SIGTERM, cleanup of a crashed run's processes, and the lock heartbeat.
//!
//! Synchronisation is by polling for marker files, the job's log or journal, or `status`
//! with a deadline. The only fixed waits are observation windows ("nothing happens during
//! N ms").

mod common;
#[path = "common/crash.rs"]
mod crash;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::*;
use crash::*;
use nix::sys::signal::Signal;

const LIMIT: Duration = Duration::from_secs(10);

/// Alive and not a zombie. pid 1 here does not reap, so `kill -0` is no proof of life.
fn proc_running(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !matches!(
            s.rsplit_once(')')
                .and_then(|(_, rest)| rest.trim_start().chars().next()),
            Some('Z') | Some('X') | None
        ),
        Err(_) => false,
    }
}

fn pids(p: &Project, name: &str) -> Vec<i32> {
    p.read(name)
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

fn signal(bg: &Bg, sig: Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(bg.pid() as i32), sig).expect("kill");
}

/// Send SIGINT until the runner exits (the first asks for a graceful stop, any later one
/// kills at once); returns the exit code. Two SIGINTs sent within microseconds of each other
/// merge into one in the kernel (standard signals do not queue), so a second one is only
/// "a second Ctrl-C" if it is sent after the first was delivered: repeat every 50 ms.
fn interrupt_twice(bg: &mut Bg) -> i32 {
    let deadline = Instant::now() + LIMIT;
    loop {
        if let Some(st) = bg.child.try_wait().expect("try_wait") {
            return st.code().unwrap_or(-1);
        }
        assert!(Instant::now() < deadline, "runner ignored repeated SIGINT");
        signal(bg, Signal::SIGINT);
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `(word, id)` pairs of a log where items append `start <id> ...` and `end <id>` lines.
fn log_events(p: &Project, name: &str) -> Vec<(String, String)> {
    p.read(name)
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            Some((w.next()?.to_owned(), w.next()?.to_owned()))
        })
        .collect()
}

fn count_of(p: &Project, name: &str, word: &str) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for (w, id) in log_events(p, name) {
        if w == word {
            *m.entry(id).or_default() += 1;
        }
    }
    m
}

fn total(m: &BTreeMap<String, usize>) -> usize {
    m.values().sum()
}

fn journal_count(p: &Project, job: &str, t: &str) -> usize {
    journal_records(&p.job_dir(job).join("journal.log"))
        .iter()
        .filter(|r| r["t"] == t)
        .count()
}

/// A runner command bounded in time: a hang is a test failure, not a stuck suite.
fn run_bounded(p: &Project, args: &[&str]) -> std::process::Output {
    p.cmd()
        .args(args)
        .timeout(Duration::from_secs(20))
        .output()
        .expect("runner finished in time")
}

const START_END: &str = r#"'echo "start $RUNNER_ITEM_ID $(date +%s%N)" >> log.txt; sleep 0.4; echo "end $RUNNER_ITEM_ID" >> log.txt'"#;

#[test]
fn pause_holds_dispatch_and_resume_continues_the_live_process() {
    let p = Project::new();
    p.file("items.json", &numbered_items(12));
    p.file(
        "wf.yml",
        &format!(
            "name: pz\nmap:\n  input: items.json\n  max_parallel: 2\n  agent_template:\n    - shell: {START_END}\n"
        ),
    );
    let mut bg = spawn(&p, &["run", "wf.yml", "--job-id", "pz"]);
    wait_until("the first item to start", LIMIT, || {
        total(&count_of(&p, "log.txt", "start")) >= 1
    });

    let out = run_bounded(&p, &["pause", "pz", "--reason", "maint"]);
    assert_eq!(code(&out), 0, "pause: {}", stderr(&out));
    let st = p.status("pz");
    assert_eq!(st["state"], "paused", "{st}");
    assert_eq!(st["paused"]["reason"], "maint", "{st}");

    // Items in flight finish and are recorded; then the log is frozen.
    wait_until("in-flight items to finish and be recorded", LIMIT, || {
        let (s, e) = (
            total(&count_of(&p, "log.txt", "start")),
            total(&count_of(&p, "log.txt", "end")),
        );
        s == e
            && journal_count(&p, "pz", "item_started") == journal_count(&p, "pz", "item_done")
            && journal_count(&p, "pz", "item_done") == e
    });
    let frozen = p.read("log.txt");
    let done_at_pause = total(&count_of(&p, "log.txt", "end"));
    assert!(
        done_at_pause < 12,
        "the pause came after every item ran; nothing was tested"
    );

    let again = run_bounded(&p, &["pause", "pz", "--reason", "other"]);
    assert_eq!(code(&again), 0, "second pause: {}", stderr(&again));
    assert!(
        stderr(&again).contains("already paused"),
        "second pause should be a no-op: {}",
        stderr(&again)
    );

    // Observation window: while paused, no item starts.
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(p.read("log.txt"), frozen, "an item started while paused");
    assert!(
        bg.child.try_wait().unwrap().is_none(),
        "the paused process must stay alive"
    );
    let st = p.status("pz");
    assert_eq!(st["state"], "paused");
    assert_eq!(st["paused"]["reason"], "maint", "the first reason is kept");

    let t = Instant::now();
    let out = run_bounded(&p, &["resume", "pz"]);
    assert_eq!(code(&out), 0, "resume: {}", stderr(&out));
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "resume of a paused job returns at once, took {:?}",
        t.elapsed()
    );
    assert_eq!(
        bg.wait_code(Duration::from_secs(20)),
        Some(0),
        "{}",
        bg.stderr()
    );

    let want: BTreeMap<String, usize> = (1..=12).map(|i| (i.to_string(), 1)).collect();
    assert_eq!(
        count_of(&p, "log.txt", "start"),
        want,
        "{}",
        p.read("log.txt")
    );
    assert_eq!(count_of(&p, "log.txt", "end"), want);

    let st = p.status("pz");
    assert_eq!(st["state"], "completed", "{st}");
    assert_eq!(st["successful"], 12);
    assert!(st["paused"].is_null(), "{st}");
    let h = st["pause_history"].as_array().expect("pause_history");
    assert_eq!(h.len(), 1, "{st}");
    assert_eq!(h[0]["reason"], "maint");
    assert!(h[0]["paused_at"].is_string(), "{}", h[0]);
    assert!(h[0]["resumed_at"].is_string(), "{}", h[0]);
    let d = h[0]["duration_s"].as_f64().expect("duration_s");
    assert!(
        (0.6..60.0).contains(&d),
        "paused for at least the 600 ms window: {d}"
    );
}

#[test]
fn pause_and_stop_of_a_job_that_is_not_running_exit_2() {
    let p = Project::new();
    p.file("items.json", &numbered_items(2));
    p.file(
        "ok.yml",
        "name: ok\nmap:\n  input: items.json\n  agent_template:\n    - shell: 'true'\n",
    );
    p.file(
        "slow.yml",
        "name: slow\nmap:\n  input: items.json\n  max_parallel: 1\n  agent_template:\n    - shell: 'echo $RUNNER_ITEM_ID >> started.txt; exec sleep 30'\n",
    );
    assert_eq!(code(&p.run(&["run", "ok.yml", "--job-id", "done"])), 0);
    let mut bg = spawn(&p, &["run", "slow.yml", "--job-id", "cut"]);
    wait_until("the slow item to start", LIMIT, || {
        !p.read("started.txt").is_empty()
    });
    bg.kill9();

    for (job, state) in [("done", "completed"), ("cut", "interrupted")] {
        for cmd in ["pause", "stop"] {
            let t = Instant::now();
            let out = run_bounded(&p, &[cmd, job]);
            let err = stderr(&out);
            assert_eq!(code(&out), 2, "{cmd} {job}: {err}");
            assert!(
                err.contains("not running") && err.contains(state),
                "{cmd} {job}: the message says why: {err}"
            );
            assert!(t.elapsed() < Duration::from_secs(5), "{cmd} {job} hung");
        }
    }
    for cmd in ["pause", "stop"] {
        let out = run_bounded(&p, &[cmd, "no-such-job"]);
        assert_eq!(code(&out), 2, "{cmd} of an unknown job: {}", stderr(&out));
        assert!(stderr(&out).contains("no-such-job"), "{}", stderr(&out));
    }
}

#[test]
fn stop_with_grace_cancels_in_flight_items_and_resume_finishes_the_rest() {
    let p = Project::new();
    p.file("items.json", &numbered_items(12));
    p.file("slow", "");
    // Items 1 and 2 are quick; with `slow` present the others hang until cancelled.
    p.file(
        "wf.yml",
        r#"name: st
map:
  input: items.json
  max_parallel: 2
  agent_template:
    - shell: 'echo "start $RUNNER_ITEM_ID" >> log.txt; echo $$ >> sh.pids; if [ -f slow ] && [ "$RUNNER_ITEM_ID" -gt 2 ]; then sleep 30; fi; echo "end $RUNNER_ITEM_ID" >> log.txt'
"#,
    );
    let mut bg = spawn(&p, &["run", "wf.yml", "--job-id", "st"]);
    wait_until("items 1-2 done and 3-4 running", LIMIT, || {
        total(&count_of(&p, "log.txt", "end")) == 2 && pids(&p, "sh.pids").len() == 4
    });

    let t = Instant::now();
    let out = run_bounded(&p, &["stop", "st", "--grace", "1s"]);
    assert_eq!(code(&out), 0, "stop: {}", stderr(&out));
    assert!(
        t.elapsed() < Duration::from_secs(6),
        "stop with a 1s grace took {:?}",
        t.elapsed()
    );
    assert_eq!(bg.wait_code(LIMIT), Some(143), "{}", bg.stderr());
    let starts = count_of(&p, "log.txt", "start");
    assert_eq!(
        starts.keys().cloned().collect::<Vec<_>>(),
        ["1", "2", "3", "4"],
        "no item starts after the stop: {}",
        p.read("log.txt")
    );
    assert_eq!(total(&count_of(&p, "log.txt", "end")), 2);
    for pid in pids(&p, "sh.pids") {
        wait_until(&format!("item shell {pid} to be gone"), LIMIT, || {
            !proc_running(pid)
        });
    }
    let st = p.status("st");
    assert_eq!(st["state"], "interrupted", "{st}");
    assert_eq!(st["successful"], 2, "{st}");
    assert_eq!(st["pending"], 10, "{st}");

    std::fs::remove_file(p.path().join("slow")).unwrap();
    let out = run_bounded(&p, &["resume", "st"]);
    assert_eq!(code(&out), 0, "resume: {}", stderr(&out));
    let want: BTreeMap<String, usize> = (1..=12).map(|i| (i.to_string(), 1)).collect();
    assert_eq!(
        count_of(&p, "log.txt", "end"),
        want,
        "each item completes exactly once overall: {}",
        p.read("log.txt")
    );
    let starts = count_of(&p, "log.txt", "start");
    assert_eq!(starts["1"], 1, "a completed item is not re-run");
    assert_eq!(starts["3"], 2, "a cancelled item runs again");
    assert_eq!(p.status("st")["state"], "completed");
}

const BG_ITEM: &str = "'echo $$ >> sh.pids; sleep 300 & echo $! >> bg.pids; sleep 300'";

#[test]
fn double_sigint_kills_every_item_process_at_once() {
    let p = Project::new();
    p.file("items.json", &numbered_items(3));
    p.file(
        "wf.yml",
        &format!(
            "name: si\nmap:\n  input: items.json\n  max_parallel: 3\n  agent_template:\n    - shell: {BG_ITEM}\n"
        ),
    );
    let mut bg = spawn(&p, &["run", "wf.yml", "--job-id", "si"]);
    wait_until("3 items with a background child each", LIMIT, || {
        pids(&p, "bg.pids").len() == 3 && pids(&p, "sh.pids").len() == 3
    });
    let all: Vec<i32> = [pids(&p, "sh.pids"), pids(&p, "bg.pids")].concat();
    for &pid in &all {
        assert!(proc_running(pid), "precondition: {pid} runs");
    }
    let t = Instant::now();
    assert_eq!(interrupt_twice(&mut bg), 130, "{}", bg.stderr());
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "a second SIGINT skips the 10 s grace; took {:?}",
        t.elapsed()
    );
    for &pid in &all {
        wait_until(&format!("item process {pid} to be gone"), LIMIT, || {
            !proc_running(pid)
        });
    }
    let st = p.status("si");
    assert_eq!(st["state"], "interrupted", "{st}");
    assert_eq!(st["pending"], 3, "{st}");
}

/// One signal with items in flight: it is forwarded to them at once (their traps run), the
/// job exits 130/143 within the kill grace with those items pending, items finished before
/// are recorded successful, and a resume runs each of the rest exactly once.
fn one_signal_is_forwarded_to_items_in_flight(sig: Signal, want_code: i32) {
    let p = Project::new();
    p.file("items.json", &numbered_items(20));
    p.file(
        "wf.yml",
        r#"name: sg
map:
  input: items.json
  max_parallel: 2
  agent_template:
    - shell: 'echo "start $RUNNER_ITEM_ID" >> log.txt; trap "echo \"got $RUNNER_ITEM_ID\" >> log.txt; exit 1" INT TERM; sleep 0.2; if [ -f slow ]; then echo "waiting $RUNNER_ITEM_ID" >> log.txt; sleep 30 & wait $!; fi; echo "end $RUNNER_ITEM_ID" >> log.txt'
"#,
    );
    let mut bg = spawn(&p, &["run", "wf.yml", "--job-id", "sg"]);
    wait_until("a few items to end", LIMIT, || {
        total(&count_of(&p, "log.txt", "end")) >= 3
    });
    // From now on items hang until signalled.
    p.file("slow", "");
    wait_until("both items in flight to hang", LIMIT, || {
        total(&count_of(&p, "log.txt", "waiting")) == 2
    });
    let t = Instant::now();
    signal(&bg, sig);
    assert_eq!(bg.wait_code(LIMIT), Some(want_code), "{}", bg.stderr());
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "the first signal ends the job within the 2 s kill grace; took {:?}",
        t.elapsed()
    );
    let starts = count_of(&p, "log.txt", "start");
    let ends = count_of(&p, "log.txt", "end");
    let got = count_of(&p, "log.txt", "got");
    let in_flight: Vec<&String> = starts.keys().filter(|k| !ends.contains_key(*k)).collect();
    assert!(!in_flight.is_empty(), "{}", p.read("log.txt"));
    for id in &in_flight {
        assert_eq!(
            got.get(*id),
            Some(&1),
            "item {id} in flight got the signal: {}",
            p.read("log.txt")
        );
    }
    let err = bg.stderr();
    let word = if sig == Signal::SIGINT {
        "interrupted"
    } else {
        "terminated"
    };
    assert!(
        err.contains(&format!(
            "{word}: stopping {} running item",
            in_flight.len()
        )),
        "{err}"
    );
    let st = p.status("sg");
    assert_eq!(st["state"], "interrupted", "{st}");
    assert_eq!(st["successful"].as_u64(), Some(total(&ends) as u64), "{st}");
    assert_eq!(
        st["pending"].as_u64(),
        Some(20 - total(&ends) as u64),
        "{st}"
    );
    assert_eq!(
        st["failed"], 0,
        "an interrupted item is pending, not failed: {st}"
    );

    std::fs::remove_file(p.path().join("slow")).unwrap();
    let out = run_bounded(&p, &["resume", "sg"]);
    assert_eq!(code(&out), 0, "resume: {}", stderr(&out));
    let want: BTreeMap<String, usize> = (1..=20).map(|i| (i.to_string(), 1)).collect();
    assert_eq!(
        count_of(&p, "log.txt", "end"),
        want,
        "every item ends once, none finished before the signal again: {}",
        p.read("log.txt")
    );
}

#[test]
fn one_sigint_is_forwarded_and_exits_130() {
    one_signal_is_forwarded_to_items_in_flight(Signal::SIGINT, 130);
}

#[test]
fn one_sigterm_is_forwarded_and_exits_143() {
    one_signal_is_forwarded_to_items_in_flight(Signal::SIGTERM, 143);
}

#[test]
fn resume_after_kill9_kills_the_crashed_runs_item_processes() {
    let p = Project::new();
    p.file("items.json", &numbered_items(4));
    p.file("slow", "");
    p.file("wf.yml", K9_WORKFLOW);
    let state = p.state_dir();
    let mut bg = spawn_with(
        &p,
        &state,
        &["run", "wf.yml", "--job-id", "k9"],
        &[("PIDS", "old.pids")],
    );
    wait_until("2 items running and recorded as started", LIMIT, || {
        pids(&p, "old.pids").len() == 2 && journal_count(&p, "k9", "item_started") == 2
    });
    // Kill the runner and its watchdog together, so that only the resume can clean up.
    kill9_with_watchdog(&mut bg);
    let old = pids(&p, "old.pids");
    for &pid in &old {
        assert!(
            proc_running(pid),
            "precondition: grandchild {pid} outlives a kill -9 of the runner and its watchdog"
        );
    }

    let mut res = spawn_with(&p, &state, &["resume", "k9"], &[("PIDS", "new.pids")]);
    wait_until("the resumed items to run", LIMIT, || {
        pids(&p, "new.pids").len() == 2
    });
    for &pid in &old {
        wait_until(
            &format!("crashed run's process {pid} to be gone"),
            Duration::from_secs(3),
            || !proc_running(pid),
        );
    }
    assert!(
        res.stderr()
            .contains("killed 2 process group(s) left running by a crashed run"),
        "{}",
        res.stderr()
    );
    assert_eq!(interrupt_twice(&mut res), 130, "{}", res.stderr());
    for pid in pids(&p, "new.pids") {
        wait_until(&format!("process {pid} to be gone"), LIMIT, || {
            !proc_running(pid)
        });
    }

    std::fs::remove_file(p.path().join("slow")).unwrap();
    let out = run_bounded(&p, &["resume", "k9"]);
    assert_eq!(code(&out), 0, "final resume: {}", stderr(&out));
    assert_eq!(line_counts(&p.read("done.txt")), once_each(1..=4));
}

const K9_WORKFLOW: &str = r#"name: k9
map:
  input: items.json
  max_parallel: 2
  agent_template:
    - shell: 'if [ -f slow ]; then sleep 300 & echo $! >> "$PIDS"; sleep 300; fi; echo $RUNNER_ITEM_ID >> done.txt'
"#;

#[test]
fn kill9_of_the_runner_alone_leaves_no_item_process_behind() {
    let p = Project::new();
    p.file("items.json", &numbered_items(4));
    p.file("slow", "");
    p.file("wf.yml", K9_WORKFLOW);
    let state = p.state_dir();
    let mut bg = spawn_with(
        &p,
        &state,
        &["run", "wf.yml", "--job-id", "k9w"],
        &[("PIDS", "old.pids")],
    );
    // `item_started` is recorded after the watchdog was told about the group.
    wait_until("2 items running and recorded as started", LIMIT, || {
        pids(&p, "old.pids").len() == 2 && journal_count(&p, "k9w", "item_started") == 2
    });
    bg.kill9();
    // No resume: the watchdog sees the runner die and kills its process groups.
    for pid in pids(&p, "old.pids") {
        wait_until(
            &format!("item process {pid} to be gone"),
            Duration::from_secs(5),
            || !proc_running(pid),
        );
    }
}

#[test]
fn heartbeat_is_fresh_while_a_job_runs() {
    let p = Project::new();
    p.file("items.json", &numbered_items(1));
    p.file(
        "wf.yml",
        "name: hb\nmap:\n  input: items.json\n  agent_template:\n    - shell: 'touch started; while [ ! -f release ]; do sleep 0.05; done'\n",
    );
    let mut bg = spawn(&p, &["run", "wf.yml", "--job-id", "hb"]);
    wait_until("the item to start", LIMIT, || {
        p.path().join("started").exists()
    });
    let host = nix::unistd::gethostname()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let first = p.status("hb");
    assert_eq!(first["state"], "running", "{first}");
    assert_eq!(
        first["lock"]["pid"].as_u64(),
        Some(bg.pid() as u64),
        "{first}"
    );
    assert_eq!(first["lock"]["host"], host.as_str(), "{first}");
    let age = first["heartbeat_age_s"].as_f64().expect("heartbeat_age_s");
    assert!((0.0..5.0).contains(&age), "heartbeat age {age}");
    // The heartbeat moves on while the job runs.
    let beat0 = first["lock"]["heartbeat_at"].clone();
    let mut last = first;
    wait_until("the heartbeat to be renewed", LIMIT, || {
        last = p.status("hb");
        last["lock"]["heartbeat_at"] != beat0
    });
    let age = last["heartbeat_age_s"].as_f64().expect("heartbeat_age_s");
    assert!((0.0..5.0).contains(&age), "heartbeat age {age}: {last}");
    assert_eq!(last["state"], "running");

    p.file("release", "");
    assert_eq!(bg.wait_code(LIMIT), Some(0), "{}", bg.stderr());
    let st = p.status("hb");
    assert!(st["lock"].is_null(), "no lock holder after the end: {st}");
    assert!(st["heartbeat_age_s"].is_null(), "{st}");
}

/// A paused job whose in-flight items all finished; returns the background run.
fn paused_job(p: &Project, job: &str) -> Bg {
    p.file("items.json", &numbered_items(6));
    p.file(
        "wf.yml",
        &format!(
            "name: pj\nmap:\n  input: items.json\n  max_parallel: 1\n  agent_template:\n    - shell: {START_END}\n"
        ),
    );
    let bg = spawn(p, &["run", "wf.yml", "--job-id", job]);
    wait_until("the first item to start", LIMIT, || {
        total(&count_of(p, "log.txt", "start")) >= 1
    });
    let out = run_bounded(p, &["pause", job]);
    assert_eq!(code(&out), 0, "pause: {}", stderr(&out));
    wait_until("in-flight items to be recorded", LIMIT, || {
        journal_count(p, job, "item_started") == journal_count(p, job, "item_done")
            && total(&count_of(p, "log.txt", "start")) == total(&count_of(p, "log.txt", "end"))
    });
    assert_eq!(p.status(job)["state"], "paused");
    bg
}

#[test]
fn stop_of_a_paused_job_exits_143_and_resume_finishes_it() {
    let p = Project::new();
    let mut bg = paused_job(&p, "ps");
    let out = run_bounded(&p, &["stop", "ps", "--grace", "1s"]);
    assert_eq!(code(&out), 0, "stop: {}", stderr(&out));
    assert_eq!(bg.wait_code(LIMIT), Some(143), "{}", bg.stderr());
    assert_eq!(p.status("ps")["state"], "interrupted");
    let out = run_bounded(&p, &["resume", "ps"]);
    assert_eq!(code(&out), 0, "resume: {}", stderr(&out));
    let want: BTreeMap<String, usize> = (1..=6).map(|i| (i.to_string(), 1)).collect();
    assert_eq!(count_of(&p, "log.txt", "end"), want);
}

#[test]
fn sigint_of_a_paused_job_exits_130() {
    let p = Project::new();
    let mut bg = paused_job(&p, "pi");
    signal(&bg, Signal::SIGINT);
    assert_eq!(bg.wait_code(LIMIT), Some(130), "{}", bg.stderr());
    assert_eq!(p.status("pi")["state"], "interrupted");
}

#[test]
fn resume_after_kill9_of_a_paused_job_runs_the_rest() {
    let p = Project::new();
    let mut bg = paused_job(&p, "pk");
    bg.kill9();
    let mut res = spawn(&p, &["resume", "pk"]);
    let code = res.wait_code(LIMIT);
    assert_eq!(
        code,
        Some(0),
        "resume of a crashed paused job: {}",
        res.stderr()
    );
    let want: BTreeMap<String, usize> = (1..=6).map(|i| (i.to_string(), 1)).collect();
    assert_eq!(count_of(&p, "log.txt", "end"), want);
}
