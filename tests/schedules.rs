//! Schedules (issue 13), with the clock injected through the hidden `--now` flag so that
//! misfire, coalesce, max_instances and DST cases take milliseconds.

mod common;
#[path = "common/crash.rs"]
mod crash;
#[path = "common/extra.rs"]
mod extra;

use std::time::Duration;

use common::*;
use crash::{spawn, spawn_with, wait_until};
use extra::run_expect;

fn project() -> Project {
    let p = Project::new();
    p.file("items.json", r#"[{"id":"a"}]"#);
    p.file(
        "wf.yml",
        "name: wf\nmap:\n  input: items.json\n  agent_template:\n    - shell: \"echo ${job.id} >> runs.log\"\n",
    );
    p
}

fn list(p: &Project, file: &str, now: &str) -> Vec<serde_json::Value> {
    let out = run_expect(p, &["schedule", "list", file, "--json", "--now", now], 0);
    serde_json::from_slice::<serde_json::Value>(&out.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn runs(p: &Project) -> Vec<String> {
    let mut v: Vec<String> = p.read("runs.log").lines().map(String::from).collect();
    v.sort();
    v
}

#[test]
fn cron_in_a_time_zone_across_daylight_saving_changes() {
    let p = project();
    p.file(
        "s.yml",
        "timezone: Europe/Berlin\nschedules:\n  nightly: { cron: \"30 2 * * *\", run: wf.yml }\n  halfhour: { cron: \"0,30 * * * *\", run: wf.yml }\n  secs: { cron: \"*/20 * * * * *\", run: wf.yml, timezone: UTC }\n  daily: { cron: \"@daily\", run: wf.yml }\n",
    );
    // Spring forward (29 March 2026, 02:00 -> 03:00): 02:30 does not exist and runs at the
    // first moment after the gap, 03:00 CEST.
    let l = list(&p, "s.yml", "2026-03-28T12:00:00Z");
    assert_eq!(
        l[0]["next"],
        serde_json::json!([
            "2026-03-29T01:00:00Z",
            "2026-03-30T00:30:00Z",
            "2026-03-31T00:30:00Z"
        ])
    );
    assert_eq!(
        l[2]["next"],
        serde_json::json!([
            "2026-03-28T12:00:20Z",
            "2026-03-28T12:00:40Z",
            "2026-03-28T12:01:00Z"
        ])
    );
    assert_eq!(l[3]["next"][0], "2026-03-28T23:00:00Z");
    // Fall back (25 October 2026, 03:00 -> 02:00): a fixed time runs once (the first
    // 02:30); a wildcard hour runs in both passes of the repeated hour.
    let l = list(&p, "s.yml", "2026-10-24T12:00:00Z");
    assert_eq!(
        l[0]["next"],
        serde_json::json!([
            "2026-10-25T00:30:00Z",
            "2026-10-26T01:30:00Z",
            "2026-10-27T01:30:00Z"
        ])
    );
    let l = list(&p, "s.yml", "2026-10-25T00:10:00Z");
    assert_eq!(
        l[1]["next"],
        serde_json::json!([
            "2026-10-25T00:30:00Z",
            "2026-10-25T01:00:00Z",
            "2026-10-25T01:30:00Z"
        ])
    );
    let text = stdout(&run_expect(
        &p,
        &["schedule", "list", "s.yml", "--now", "2026-01-01T00:00:00Z"],
        0,
    ));
    assert!(
        text.contains("nightly: cron 30 2 * * * (Europe/Berlin)"),
        "{text}"
    );
}

#[test]
fn errors_name_the_file_line_column_and_cron_field() {
    let p = project();
    p.file(
        "s.yml",
        "schedules:\n  ok: { every: 1m, run: wf.yml }\n  bad: { cron: \"0 25 * * *\", run: wf.yml }\n",
    );
    let err = stderr(&run_expect(&p, &["schedule", "list", "s.yml"], 2));
    assert!(
        err.contains("s.yml:3:") && err.contains("hour field `25`"),
        "{err}"
    );
    p.file(
        "s.yml",
        "timezone: Mars/Base\nschedules:\n  a: { every: 1m, run: wf.yml }\n",
    );
    let err = stderr(&run_expect(&p, &["schedule", "run-due", "s.yml"], 2));
    assert!(
        err.contains("s.yml:1:") && err.contains("unknown time zone"),
        "{err}"
    );
    p.file(
        "s.yml",
        "schedules:\n  a: { every: 1m, cron: \"* * * * *\", run: wf.yml }\n",
    );
    let err = stderr(&run_expect(&p, &["schedule", "list", "s.yml"], 2));
    assert!(err.contains("exactly one of"), "{err}");
    p.file(
        "s.yml",
        "schedules:\n  a: { every: 1m, run: missing.yml, bogus: 1 }\n",
    );
    let err = stderr(&run_expect(&p, &["schedule", "list", "s.yml"], 2));
    assert!(err.contains("s.yml:2:") && err.contains("bogus"), "{err}");
}

#[test]
fn misfires_beyond_the_grace_are_recorded_and_the_rest_coalesce_once() {
    let p = project();
    p.file(
        "s.yml",
        "schedules:\n  tick: { every: 1m, run: wf.yml }\ndefaults: { misfire_grace: 3m, coalesce: true }\n",
    );
    // First sight: nothing is owed for the past.
    run_expect(
        &p,
        &[
            "schedule",
            "run-due",
            "s.yml",
            "--now",
            "2026-01-01T00:00:00Z",
        ],
        0,
    );
    assert!(p.jobs().is_empty());
    // Down until 00:10:30: 00:01..00:07 are older than the grace, 00:08..00:10 run once.
    let err = stderr(&run_expect(
        &p,
        &[
            "schedule",
            "run-due",
            "s.yml",
            "--now",
            "2026-01-01T00:10:30Z",
        ],
        0,
    ));
    assert!(err.contains("missed 7 fire(s)"), "{err}");
    assert!(err.contains("2 earlier fire(s) coalesced"), "{err}");
    assert_eq!(runs(&p), ["tick-20260101-001000"]);
    // Persisted: the same moment again fires nothing (a restart does not double-fire).
    run_expect(
        &p,
        &[
            "schedule",
            "run-due",
            "s.yml",
            "--now",
            "2026-01-01T00:10:40Z",
        ],
        0,
    );
    assert_eq!(runs(&p).len(), 1);
    let l = list(&p, "s.yml", "2026-01-01T00:10:45Z");
    assert_eq!(l[0]["missed"], 7);
    assert_eq!(l[0]["fired"], 1);
    assert_eq!(l[0]["last"]["job_id"], "tick-20260101-001000");
    assert_eq!(l[0]["last_state"], "completed");
    assert_eq!(l[0]["next"][0], "2026-01-01T00:11:00Z");
}

#[test]
fn without_coalesce_each_fire_within_the_grace_runs() {
    let p = project();
    p.file(
        "s.yml",
        "schedules:\n  tick: { every: 1m, run: wf.yml, coalesce: false, max_instances: 5, misfire_grace: 3m }\n",
    );
    run_expect(
        &p,
        &[
            "schedule",
            "run-due",
            "s.yml",
            "--now",
            "2026-01-01T00:00:00Z",
        ],
        0,
    );
    run_expect(
        &p,
        &[
            "schedule",
            "run-due",
            "s.yml",
            "--now",
            "2026-01-01T00:03:30Z",
        ],
        0,
    );
    assert_eq!(
        runs(&p),
        [
            "tick-20260101-000100",
            "tick-20260101-000200",
            "tick-20260101-000300"
        ]
    );
}

#[test]
fn a_fire_while_the_previous_run_holds_its_lock_is_skipped() {
    let p = project();
    p.file(
        "slow.yml",
        "name: slow\nmap:\n  input: items.json\n  agent_template:\n    - shell: \"echo ${job.id} >> runs.log; while [ ! -f go ]; do sleep 0.05; done\"\n",
    );
    p.file(
        "s.yml",
        "schedules:\n  slow: { every: 1m, run: slow.yml, max_instances: 1 }\n",
    );
    run_expect(
        &p,
        &[
            "schedule",
            "run-due",
            "s.yml",
            "--now",
            "2026-01-01T00:00:00Z",
        ],
        0,
    );
    let mut first = spawn(
        &p,
        &[
            "schedule",
            "run-due",
            "s.yml",
            "--now",
            "2026-01-01T00:01:00Z",
        ],
    );
    wait_until("the first run", Duration::from_secs(20), || {
        !p.read("runs.log").is_empty()
    });
    let err = stderr(&run_expect(
        &p,
        &[
            "schedule",
            "run-due",
            "s.yml",
            "--now",
            "2026-01-01T00:02:00Z",
        ],
        0,
    ));
    assert!(
        err.contains("skipped the fire")
            && err.contains("max_instances (1) reached: slow-20260101-000100"),
        "{err}"
    );
    p.file("go", "");
    assert_eq!(
        first.wait_code(Duration::from_secs(20)),
        Some(0),
        "{}",
        first.stderr()
    );
    let l = list(&p, "s.yml", "2026-01-01T00:02:10Z");
    assert_eq!(l[0]["skipped"], 1);
    assert_eq!(l[0]["fired"], 1);
    assert_eq!(runs(&p), ["slow-20260101-000100"]);
}

#[test]
fn a_one_shot_date_fires_once() {
    let p = project();
    p.file(
        "s.yml",
        "timezone: Europe/Berlin\nschedules:\n  backfill: { at: \"2026-12-01 03:00:00\", run: wf.yml }\n",
    );
    run_expect(
        &p,
        &[
            "schedule",
            "run-due",
            "s.yml",
            "--now",
            "2026-11-30T00:00:00Z",
        ],
        0,
    );
    assert_eq!(
        list(&p, "s.yml", "2026-11-30T00:00:01Z")[0]["next"][0],
        "2026-12-01T02:00:00Z"
    );
    run_expect(
        &p,
        &[
            "schedule",
            "run-due",
            "s.yml",
            "--now",
            "2026-12-01T02:00:30Z",
        ],
        0,
    );
    run_expect(
        &p,
        &[
            "schedule",
            "run-due",
            "s.yml",
            "--now",
            "2026-12-05T00:00:00Z",
        ],
        0,
    );
    assert_eq!(runs(&p), ["backfill-20261201-020000"]);
    assert_eq!(
        list(&p, "s.yml", "2026-12-05T00:00:00Z")[0]["next"],
        serde_json::json!([])
    );
}

#[test]
fn the_service_fires_on_time_refuses_a_second_one_and_stops_on_sigterm_leaving_runs_alone() {
    let p = project();
    p.file(
        "slow.yml",
        "name: slow\nmap:\n  input: items.json\n  agent_template:\n    - shell: \"echo ${job.id} >> runs.log; while [ ! -f go ]; do sleep 0.05; done\"\n",
    );
    p.file(
        "s.yml",
        "schedules:\n  tick: { cron: \"0 3 * * *\", run: slow.yml }\n",
    );
    // First sight just before 03:00: the fire comes 300 ms later, by the (shifted) clock.
    let mut svc = spawn(
        &p,
        &["schedule", "s.yml", "--now", "2026-01-01T02:59:59.700Z"],
    );
    wait_until("the fire", Duration::from_secs(20), || {
        !p.read("runs.log").is_empty()
    });
    assert_eq!(runs(&p), ["tick-20260101-030000"]);
    // A second service on the same state directory refuses at once.
    let other = run_expect(&p, &["schedule", "s.yml"], 3);
    assert!(
        stderr(&other).contains("locked by pid"),
        "{}",
        stderr(&other)
    );
    let other = run_expect(&p, &["schedule", "run-due", "s.yml"], 3);
    drop(other);
    // SIGTERM: the service exits 0 and the run goes on.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(svc.pid() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert_eq!(
        svc.wait_code(Duration::from_secs(10)),
        Some(0),
        "{}",
        svc.stderr()
    );
    assert!(
        svc.stderr().contains("the runs it started go on"),
        "{}",
        svc.stderr()
    );
    assert_eq!(p.status("tick-20260101-030000")["state"], "running");
    p.file("go", "");
    wait_until("the run to complete", Duration::from_secs(20), || {
        p.status("tick-20260101-030000")["state"] == "completed"
    });
    // A restart within the grace does not fire 03:00 again.
    let mut again = spawn_with(
        &p,
        &p.state_dir(),
        &["schedule", "s.yml", "--now", "2026-01-01T03:00:20Z"],
        &[],
    );
    wait_until("the restarted service", Duration::from_secs(20), || {
        again.stderr().contains("next fire at 2026-01-02T03:00:00Z")
    });
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(again.pid() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert_eq!(again.wait_code(Duration::from_secs(10)), Some(0));
    assert_eq!(runs(&p), ["tick-20260101-030000"]);
}
