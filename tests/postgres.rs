//! The PostgreSQL executor with real workers on a real PostgreSQL (issue 12). `.ci/run`
//! starts a throwaway server (scripts/ci-postgres-setup.sh) and sets
//! `RUNNER_REQUIRE_POSTGRES=1`: these tests then run, each in its own database, and fail when
//! the server is unusable. Without that variable they are `ignored`; run them with
//! `eval "$(bash scripts/ci-postgres-setup.sh)"; RUNNER_REQUIRE_POSTGRES=1 cargo test --test postgres`.

mod common;
#[path = "common/crash.rs"]
mod crash;
#[path = "common/extra.rs"]
mod extra;
#[path = "common/pg.rs"]
mod pg;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use crash::*;
use nix::sys::signal::Signal;
use pg::*;

const SHORT: Duration = Duration::from_millis(1200);

fn workflow(name: &str, step: &str, extra: &str) -> String {
    format!(
        "name: {name}\nexecutor: postgres\nmap:\n  input: items.json\n  agent_template:\n    - shell: '{step}'\n{extra}"
    )
}

fn no_password(outputs: &[&str]) {
    for o in outputs {
        assert!(!o.contains(PASSWORD), "the password leaked: {o}");
    }
}

fn journal(p: &Project, job: &str) -> Vec<serde_json::Value> {
    journal_records(&p.job_dir(job).join("journal.log"))
}

/// Per item index: how often it was recorded as done, and the failure classes of its
/// failed attempts (a success is recorded with the item's end).
fn per_item(records: &[serde_json::Value]) -> BTreeMap<u64, (usize, Vec<String>)> {
    let mut m: BTreeMap<u64, (usize, Vec<String>)> = BTreeMap::new();
    for r in records {
        let idx = r["idx"].as_u64().unwrap_or(u64::MAX);
        match r["t"].as_str() {
            Some("item_done") => {
                assert_eq!(r["status"], "succeeded", "{r}");
                m.entry(idx).or_default().0 += 1
            }
            Some("attempt") => m.entry(idx).or_default().1.push(
                r["attempt"]["failure"]["class"]
                    .as_str()
                    .unwrap_or("?")
                    .to_owned(),
            ),
            _ => {}
        }
    }
    m
}

fn stop_worker(w: &mut Bg) -> String {
    signal(w, Signal::SIGTERM);
    assert_eq!(
        w.wait_code(Duration::from_secs(20)),
        Some(0),
        "{}",
        w.stderr()
    );
    w.stderr()
}

#[test]
#[cfg_attr(
    not(runner_require_postgres),
    ignore = "needs PostgreSQL: RUNNER_REQUIRE_POSTGRES=1 (see scripts/ci-postgres-setup.sh)"
)]
fn failures_reach_the_dlq_and_dlq_retry_runs_them_through_workers() {
    let p = Project::new();
    let db = PgDb::new(&p);
    p.file("items.json", &numbered_items(30));
    p.file(
        "wf.yml",
        &workflow(
            "seed",
            r#"echo "out ${item.id}"; echo ${item.id} >> ran.log; case ${item.id} in *3) test -e fixed || { echo "bad ${item.id}" >&2; exit 3; };; esac"#,
            "  retry:\n    max_attempts: 2\n    initial_delay: 50ms\n",
        ),
    );
    let mut w1 = db.worker(&p, 4, SHORT * 10);
    let mut w2 = db.worker(&p, 4, SHORT * 10);
    db.wait_workers(2);
    let listed = db.run(&p, &["workers", "--json"]);
    let workers: serde_json::Value = serde_json::from_slice(&listed.stdout).expect("workers json");
    assert_eq!(workers.as_array().map(Vec::len), Some(2), "{workers}");
    assert!(
        workers
            .as_array()
            .unwrap()
            .iter()
            .all(|w| w["state"] == "alive" && w["slots"] == 4)
    );

    let out = db.run(&p, &["run", "wf.yml", "--json"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let job = p.only_job();
    let st = p.status(&job);
    assert_eq!(st["successful"], 27, "{st}");
    assert_eq!(st["dlq"], 3, "{st}");
    // Each failing item ran twice, every other item once.
    let ran = line_counts(&p.read("ran.log"));
    for id in 1..=30 {
        let want = if id % 10 == 3 { 2 } else { 1 };
        assert_eq!(ran.get(&id.to_string()), Some(&want), "item {id}: {ran:?}");
    }
    let list = db.run(&p, &["dlq", "list", &job, "--json"]);
    let entries: serde_json::Value = serde_json::from_slice(&list.stdout).expect("dlq json");
    let mut ids: Vec<&str> = entries
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["item_id"].as_str().unwrap())
        .collect();
    ids.sort();
    assert_eq!(ids, ["13", "23", "3"]);
    assert!(
        entries
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["exit_code"] == 3)
    );
    // The worker's output reached the job's logs.
    let logs = db.run(&p, &["logs", &job, "13"]);
    assert!(stdout(&logs).contains("out 13"), "{}", stdout(&logs));
    assert!(stdout(&logs).contains("bad 13"), "{}", stdout(&logs));

    p.file("fixed", "");
    let retry = db.run(&p, &["dlq", "retry", &job]);
    assert_eq!(code(&retry), 0, "{}", stderr(&retry));
    let st = p.status(&job);
    assert_eq!(
        (st["successful"].as_u64(), st["dlq"].as_u64()),
        (Some(30), Some(0)),
        "{st}"
    );
    // The job's rows are gone once its map is done.
    assert_eq!(db.sql("SELECT count(*) FROM runner.items"), "0");
    let (e1, e2) = (stop_worker(&mut w1), stop_worker(&mut w2));
    no_password(&[&stderr(&out), &stdout(&out), &stderr(&retry), &e1, &e2]);
    assert_eq!(
        db.sql("SELECT count(*) FROM runner.workers"),
        "0",
        "workers deregister"
    );
}

/// Workers enforce `map.resources` on their own machine, and what each attempt used comes
/// back with its outcome into the job's journal.
#[test]
#[cfg_attr(
    not(runner_require_postgres),
    ignore = "needs PostgreSQL: RUNNER_REQUIRE_POSTGRES=1 (see scripts/ci-postgres-setup.sh)"
)]
fn workers_enforce_resources_and_send_what_attempts_used() {
    let p = Project::new();
    let db = PgDb::new(&p);
    p.file("items.json", &numbered_items(4));
    p.file(
        "wf.yml",
        &workflow(
            "limits",
            "case ${item.id} in 2) tail /dev/zero ;; *) true ;; esac",
            "  resources: { memory: 64M }\n",
        ),
    );
    let mut w = db.worker(&p, 2, SHORT * 10);
    db.wait_workers(1);
    let out = db.run(&p, &["run", "wf.yml"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let job = p.only_job();
    let list = db.run(&p, &["dlq", "list", &job, "--json"]);
    let entries: serde_json::Value = serde_json::from_slice(&list.stdout).expect("dlq json");
    assert_eq!(entries[0]["item_id"], "2", "{entries}");
    assert_eq!(entries[0]["failure_class"], "memory_limit", "{entries}");
    let done: Vec<serde_json::Value> = journal(&p, &job)
        .into_iter()
        .filter(|r| r["t"] == "item_done" && r["status"] == "succeeded")
        .collect();
    assert_eq!(done.len(), 3);
    for r in &done {
        assert!(r["ran"]["peak_rss_kb"].as_u64().unwrap_or(0) > 0, "{r}");
        assert!(r["ran"]["cpu_ms"].is_u64(), "{r}");
    }
    stop_worker(&mut w);
}

#[test]
#[cfg_attr(
    not(runner_require_postgres),
    ignore = "needs PostgreSQL: RUNNER_REQUIRE_POSTGRES=1 (see scripts/ci-postgres-setup.sh)"
)]
fn a_killed_worker_loses_its_item_after_the_lease_and_it_is_recorded_once() {
    let p = Project::new();
    let db = PgDb::new(&p);
    p.file("items.json", &numbered_items(3));
    // Attempt 1 of item 2 hangs (on the worker that is killed); everything else is quick.
    p.file(
        "wf.yml",
        &workflow(
            "killw",
            r#"echo ${item.id}-${attempt} >> ran.log; if [ ${item.id} = 2 ] && [ ${attempt} = 1 ]; then echo $$ > hang.pid; sleep 60; fi"#,
            "",
        ),
    );
    let mut a = db.worker(&p, 1, SHORT);
    db.wait_workers(1);
    let mut coord = db.spawn(&p, &["run", "wf.yml"]);
    extra::wait_for_file(&p.path().join("hang.pid"), Duration::from_secs(20));
    a.kill9();
    let mut b = db.worker(&p, 2, SHORT);
    assert_eq!(
        coord.wait_code(Duration::from_secs(30)),
        Some(0),
        "{}",
        coord.stderr()
    );
    let job = p.only_job();
    let items = per_item(&journal(&p, &job));
    // idx 1 is item 2: lost once, then done; recorded done once like the others.
    assert_eq!(items[&1], (1, vec!["worker_lost".into()]), "{items:?}");
    assert_eq!(items[&0].0, 1);
    assert_eq!(items[&2].0, 1);
    let ran = line_counts(&p.read("ran.log"));
    assert_eq!(ran.get("2-2"), Some(&1), "{ran:?}");
    // The killed worker's item did not outlive it (its watchdog killed the group).
    let hang: i32 = p.read("hang.pid").trim().parse().unwrap();
    wait_until(
        "the lost item's process to die",
        Duration::from_secs(10),
        || !extra::pid_alive(hang),
    );
    stop_worker(&mut b);
}

#[test]
#[cfg_attr(
    not(runner_require_postgres),
    ignore = "needs PostgreSQL: RUNNER_REQUIRE_POSTGRES=1 (see scripts/ci-postgres-setup.sh)"
)]
fn a_killed_coordinator_is_resumed_and_records_what_the_workers_did_once() {
    let p = Project::new();
    let db = PgDb::new(&p);
    p.file("items.json", &numbered_items(40));
    p.file(
        "wf.yml",
        &workflow("killc", "echo ${item.id} >> ran.log; sleep 0.05", ""),
    );
    let mut w1 = db.worker(&p, 3, SHORT * 10);
    let mut w2 = db.worker(&p, 3, SHORT * 10);
    db.wait_workers(2);
    let mut coord = db.spawn(&p, &["run", "wf.yml"]);
    wait_until("10 items to run", Duration::from_secs(20), || {
        p.read("ran.log").lines().count() >= 10
    });
    coord.kill9();
    // The workers go on without the coordinator: every item runs, its outcome waits.
    wait_until(
        "the workers to run every item",
        Duration::from_secs(30),
        || {
            p.read("ran.log").lines().count() >= 40
                && db.sql("SELECT count(*) FROM runner.items WHERE status IN ('ready', 'claimed')")
                    == "0"
        },
    );
    let job = p.only_job();
    let resumed = db.run(&p, &["resume", &job]);
    assert_eq!(code(&resumed), 0, "{}", stderr(&resumed));
    let items = per_item(&journal(&p, &job));
    assert_eq!(items.len(), 40, "{items:?}");
    assert!(items.values().all(|(done, _)| *done == 1), "{items:?}");
    // Nothing ran twice.
    assert_eq!(line_counts(&p.read("ran.log")), once_each(1..=40));
    assert_eq!(p.status(&job)["successful"], 40);
    stop_worker(&mut w1);
    stop_worker(&mut w2);
}

#[test]
#[cfg_attr(
    not(runner_require_postgres),
    ignore = "needs PostgreSQL: RUNNER_REQUIRE_POSTGRES=1 (see scripts/ci-postgres-setup.sh)"
)]
fn a_worker_stopped_past_its_lease_has_its_late_outcome_rejected() {
    let p = Project::new();
    let db = PgDb::new(&p);
    p.file("items.json", &numbered_items(1));
    // Attempt 1 runs on worker A, which is stopped past its lease; attempt 2 runs on B and
    // holds the claim until `go` exists, so A's late outcome meets B's claim.
    p.file(
        "wf.yml",
        &workflow(
            "fence",
            "echo ${attempt} >> ran.log; if [ ${attempt} = 1 ]; then touch started; sleep 1; else touch second; while [ ! -e go ]; do sleep 0.05; done; fi",
            "",
        ),
    );
    let mut a = db.worker(&p, 1, SHORT);
    db.wait_workers(1);
    let mut coord = db.spawn(&p, &["run", "wf.yml"]);
    wait_for_file_exists(&p.path().join("started"));
    signal(&a, Signal::SIGSTOP);
    let mut b = db.worker(&p, 1, SHORT);
    wait_for_file_exists(&p.path().join("second"));
    signal(&a, Signal::SIGCONT);
    wait_until(
        "the late outcome to be rejected",
        Duration::from_secs(20),
        || a.stderr().contains("was rejected"),
    );
    p.file("go", "");
    assert_eq!(
        coord.wait_code(Duration::from_secs(30)),
        Some(0),
        "{}",
        coord.stderr()
    );
    let job = p.only_job();
    let items = per_item(&journal(&p, &job));
    assert_eq!(items[&0], (1, vec!["worker_lost".into()]), "{items:?}");
    let e = stop_worker(&mut a);
    assert!(e.contains("1 rejected"), "{e}");
    stop_worker(&mut b);
}

#[test]
#[cfg_attr(
    not(runner_require_postgres),
    ignore = "needs PostgreSQL: RUNNER_REQUIRE_POSTGRES=1 (see scripts/ci-postgres-setup.sh)"
)]
fn four_workers_race_for_a_thousand_items_and_each_is_recorded_once() {
    let p = Project::new();
    let db = PgDb::new(&p);
    p.file("items.json", &numbered_items(1000));
    p.file(
        "wf.yml",
        &workflow("race", "echo ${item.id} >> ran.log", ""),
    );
    let mut workers: Vec<Bg> = (0..4).map(|_| db.worker(&p, 3, SHORT * 10)).collect();
    db.wait_workers(4);
    let out = db.run(&p, &["run", "wf.yml"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let job = p.only_job();
    let items = per_item(&journal(&p, &job));
    assert_eq!(items.len(), 1000);
    assert!(
        items.values().all(|(done, a)| *done == 1 && a.is_empty()),
        "{items:?}"
    );
    assert_eq!(line_counts(&p.read("ran.log")), once_each(1..=1000));
    let mut written = 0;
    for w in &mut workers {
        let e = stop_worker(w);
        let n: usize = e
            .split("runner worker: ")
            .nth(1)
            .and_then(|s| s.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no summary in {e}"));
        written += n;
    }
    assert_eq!(written, 1000);
}

#[test]
#[cfg_attr(
    not(runner_require_postgres),
    ignore = "needs PostgreSQL: RUNNER_REQUIRE_POSTGRES=1 (see scripts/ci-postgres-setup.sh)"
)]
fn pause_and_stop_reach_the_workers_and_a_stopped_worker_hands_its_item_back() {
    let p = Project::new();
    let db = PgDb::new(&p);
    p.file("items.json", &numbered_items(4));
    p.file(
        "wf.yml",
        &workflow(
            "control",
            "echo ${item.id} >> ran.log; test -e quick || { touch started.${item.id}; sleep 60; }",
            "",
        ),
    );
    let mut a = db.worker(&p, 2, SHORT * 10);
    db.wait_workers(1);
    let mut coord = db.spawn(&p, &["run", "wf.yml"]);
    wait_for_file_exists(&p.path().join("started.1"));
    wait_for_file_exists(&p.path().join("started.2"));
    let job = p.only_job();
    // Pause: the job's rows stop being claimable.
    let paused = db.run(&p, &["pause", &job]);
    assert_eq!(code(&paused), 0, "{}", stderr(&paused));
    wait_until(
        "the job to be paused in PostgreSQL",
        Duration::from_secs(10),
        || db.sql("SELECT state FROM runner.jobs") == "paused",
    );
    let unpaused = db.run(&p, &["resume", &job]);
    assert_eq!(code(&unpaused), 0, "{}", stderr(&unpaused));
    wait_until(
        "the job to run again in PostgreSQL",
        Duration::from_secs(10),
        || db.sql("SELECT state FROM runner.jobs") == "running",
    );
    // Stop: the coordinator cancels the items running on the worker and exits 143.
    let stopped = db.run(&p, &["stop", &job, "--grace", "200ms"]);
    assert_eq!(code(&stopped), 0, "{}", stderr(&stopped));
    assert_eq!(
        coord.wait_code(Duration::from_secs(20)),
        Some(143),
        "{}",
        coord.stderr()
    );
    assert_eq!(p.status(&job)["pending"], 4);
    assert!(
        !p.path().join("started.3").exists(),
        "a stopped job's item started"
    );

    // A worker's own SIGTERM hands back what it cannot finish within its grace.
    let mut coord = db.spawn(&p, &["resume", &job]);
    wait_until("two items to start again", Duration::from_secs(20), || {
        p.read("ran.log").lines().count() >= 4
    });
    let e = stop_worker(&mut a);
    assert!(e.contains("2 item(s) handed back"), "{e}");
    p.file("quick", "");
    let mut b = db.worker(&p, 4, SHORT * 10);
    assert_eq!(
        coord.wait_code(Duration::from_secs(30)),
        Some(0),
        "{}",
        coord.stderr()
    );
    assert_eq!(p.status(&job)["successful"], 4);
    stop_worker(&mut b);
}

#[test]
#[cfg_attr(
    not(runner_require_postgres),
    ignore = "needs PostgreSQL: RUNNER_REQUIRE_POSTGRES=1 (see scripts/ci-postgres-setup.sh)"
)]
fn bad_urls_servers_that_are_down_and_wrong_schemas_are_clear_errors() {
    let p = Project::new();
    p.file("items.json", &numbered_items(2));
    p.file("wf.yml", &workflow("errors", "true", ""));
    let run = |url: &str, args: &[&str]| {
        run_with(&p, &p.state_dir(), args, &[("RUNNER_POSTGRES_URL", url)])
    };
    // A malformed URL: exit 2, password redacted.
    let bad = format!("postgres://runner:{PASSWORD}@127.0.0.1:notaport/x");
    for args in [&["workers"][..], &["worker"], &["postgres", "migrate"]] {
        let out = run(&bad, args);
        assert_eq!(code(&out), 2, "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("runner:***@127.0.0.1"),
            "{}",
            stderr(&out)
        );
        no_password(&[&stderr(&out)]);
    }
    // A server that is down: exit 1.
    let down = format!("postgres://runner:{PASSWORD}@127.0.0.1:1/x");
    let out = run(&down, &["workers"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("cannot connect to PostgreSQL"),
        "{}",
        stderr(&out)
    );
    no_password(&[&stderr(&out)]);
    // A job on a server that is down fails (exit 1) and stays resumable.
    let out = run(&down, &["run", "wf.yml"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    no_password(&[&stderr(&out), &stdout(&out)]);
    // No URL at all: exit 2, saying what to set.
    let out = run_with(
        &p,
        &p.state_dir(),
        &["workers"],
        &[("RUNNER_POSTGRES_URL", "")],
    );
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("RUNNER_POSTGRES_URL is not set"),
        "{}",
        stderr(&out)
    );

    // A database without the schema, then an older and a newer one.
    let db = PgDb::empty();
    let out = run(&db.url, &["worker"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("run `runner postgres migrate`"),
        "{}",
        stderr(&out)
    );
    let m = run(&db.url, &["postgres", "migrate"]);
    assert_eq!(code(&m), 0, "{}", stderr(&m));
    assert!(stdout(&m).contains("from version 0 to 1"), "{}", stdout(&m));
    let again = run(&db.url, &["postgres", "migrate"]);
    assert!(
        stdout(&again).contains("up to date (version 1)"),
        "{}",
        stdout(&again)
    );
    db.sql("UPDATE runner.schema_version SET version = 0");
    let out = run(&db.url, &["workers"]);
    assert!(
        stderr(&out).contains("version 0; this runner needs version 1"),
        "{}",
        stderr(&out)
    );
    db.sql("UPDATE runner.schema_version SET version = 99");
    for args in [&["workers"][..], &["postgres", "migrate"]] {
        let out = run(&db.url, args);
        assert_eq!(code(&out), 1, "{}", stderr(&out));
        assert!(stderr(&out).contains("upgrade runner"), "{}", stderr(&out));
    }
}

/// Wait for a file to exist (it may be empty).
fn wait_for_file_exists(path: &std::path::Path) {
    wait_until(
        &format!("{} to exist", path.display()),
        Duration::from_secs(20),
        || path.exists(),
    );
}
