//! Ctrl-C feels immediate: the first SIGINT prints its line at once (while the items it was
//! forwarded to are still being given their kill grace), `--kill-grace` bounds how long
//! they get, and steps never inherit an ignored SIGINT/SIGQUIT from a parent shell that
//! started runner in the background.

mod common;
#[path = "common/crash.rs"]
mod crash;

use std::time::{Duration, Instant};

use common::*;
use crash::*;
use nix::sys::signal::Signal;

const LIMIT: Duration = Duration::from_secs(15);

fn sigint(bg: &Bg) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(bg.pid() as i32), Signal::SIGINT)
        .expect("kill");
}

#[test]
fn the_first_sigint_is_reported_at_once_and_items_are_killed_after_the_kill_grace() {
    let p = Project::new();
    p.file("items.json", &numbered_items(3));
    // The items ignore SIGINT: only the KILL at the end of the grace ends them.
    p.file(
        "wf.yml",
        "name: ig\nmap:\n  input: items.json\n  max_parallel: 3\n  agent_template:\n    - shell: 'trap \"\" INT; echo $$ >> started; sleep 60'\n",
    );
    let mut bg = spawn(
        &p,
        &["run", "wf.yml", "--job-id", "ig", "--kill-grace", "3s"],
    );
    wait_until("3 items to start", LIMIT, || {
        p.read("started").lines().count() == 3
    });
    let t = Instant::now();
    sigint(&bg);
    wait_until("the interrupt line", Duration::from_secs(2), || {
        bg.stderr()
            .contains("interrupted: stopping 3 running items")
    });
    assert!(
        bg.child.try_wait().expect("try_wait").is_none(),
        "the line comes at once, while the items still get their grace: {}",
        bg.stderr()
    );
    assert!(
        bg.stderr().contains("press Ctrl-C again"),
        "{}",
        bg.stderr()
    );
    assert_eq!(bg.wait_code(LIMIT), Some(130), "{}", bg.stderr());
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(2900) && took < Duration::from_secs(8),
        "items that ignore SIGINT are killed after --kill-grace 3s; took {took:?}"
    );
    let st = p.status("ig");
    assert_eq!(st["state"], "interrupted", "{st}");
    assert_eq!(st["pending"], 3, "{st}");
}

#[test]
fn the_interrupt_is_an_ndjson_event() {
    let p = Project::new();
    p.file("items.json", &numbered_items(2));
    p.file(
        "wf.yml",
        "name: ev\nmap:\n  input: items.json\n  max_parallel: 2\n  agent_template:\n    - shell: 'echo $$ >> started; sleep 60'\n",
    );
    let mut bg = spawn(&p, &["run", "wf.yml", "--job-id", "ev", "--json"]);
    wait_until("2 items to start", LIMIT, || {
        p.read("started").lines().count() == 2
    });
    sigint(&bg);
    assert_eq!(bg.wait_code(LIMIT), Some(130), "{}", bg.stderr());
    let events: Vec<serde_json::Value> = bg
        .stdout()
        .lines()
        .map(|l| serde_json::from_str(l).expect("NDJSON"))
        .collect();
    let ev = events
        .iter()
        .find(|e| e["event"] == "interrupted")
        .unwrap_or_else(|| panic!("no interrupted event: {events:?}"));
    assert_eq!(ev["signal"], "SIGINT");
    assert_eq!(ev["in_flight"], 2);
    assert_eq!(ev["kill_grace_ms"], 2000);
    assert_eq!(events.last().unwrap()["event"], "job_finished");
    assert_eq!(events.last().unwrap()["exit_code"], 130);
}

/// A non-interactive shell starts background commands with SIGINT and SIGQUIT ignored; the
/// steps must still start with both at their defaults, so forwarded signals work.
#[test]
fn steps_do_not_inherit_ignored_sigint_or_sigquit() {
    let p = Project::new();
    p.file(
        "wf.yml",
        "name: ign\nmap:\n  input: { command: 'echo 1' }\n  agent_template:\n    - shell: 'grep SigIgn /proc/$$/status > sigign.txt'\n",
    );
    let runner = assert_cmd::cargo::cargo_bin("runner");
    let out = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(format!(
            "'{}' run wf.yml --job-id ign & wait $!",
            runner.display()
        ))
        .current_dir(p.path())
        .env("RUNNER_STATE_DIR", p.state_dir())
        .output()
        .expect("sh");
    assert!(out.status.success(), "{}", stderr(&out));
    let line = p.read("sigign.txt");
    let mask = u64::from_str_radix(line.trim().trim_start_matches("SigIgn:").trim(), 16)
        .unwrap_or_else(|_| panic!("SigIgn line: {line:?}"));
    assert_eq!(
        mask & (1 << (2 - 1)),
        0,
        "SIGINT is ignored in the step: {line}"
    );
    assert_eq!(
        mask & (1 << (3 - 1)),
        0,
        "SIGQUIT is ignored in the step: {line}"
    );
}
