//! The PostgreSQL server stops and starts while a job runs on workers: the coordinator and
//! the workers reconnect with backoff and the job goes on, nothing lost (issue 12). A test
//! binary of its own, since it restarts the server every test shares: cargo runs test
//! binaries one at a time. Needs `RUNNER_POSTGRES_DIR` (scripts/ci-postgres-setup.sh) to
//! stop and start the server with scripts/postgres-ctl.sh.

mod common;
#[path = "common/crash.rs"]
mod crash;
#[path = "common/pg.rs"]
mod pg;

use std::time::Duration;

use common::*;
use crash::*;
use nix::sys::signal::Signal;
use pg::*;

fn ctl(what: &str) {
    let dir = std::env::var("RUNNER_POSTGRES_DIR").unwrap_or_default();
    assert!(
        !dir.is_empty(),
        "RUNNER_REQUIRE_POSTGRES=1 but RUNNER_POSTGRES_DIR is not set: start the server with \
         scripts/ci-postgres-setup.sh"
    );
    let out = std::process::Command::new("bash")
        .arg(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/postgres-ctl.sh"))
        .args([what, &dir])
        .output()
        .expect("bash");
    assert!(
        out.status.success(),
        "postgres-ctl.sh {what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
#[cfg_attr(
    not(runner_require_postgres),
    ignore = "needs PostgreSQL: RUNNER_REQUIRE_POSTGRES=1 (see scripts/ci-postgres-setup.sh)"
)]
fn the_server_restarts_mid_run_and_the_job_goes_on() {
    let p = Project::new();
    let db = PgDb::new(&p);
    p.file("items.json", &numbered_items(30));
    p.file(
        "wf.yml",
        "name: restart\nexecutor: postgres\nmap:\n  input: items.json\n  agent_template:\n    - shell: 'sleep 0.2; echo ${item.id} >> ran.log'\n",
    );
    let mut workers: Vec<Bg> = (0..2)
        .map(|_| db.worker(&p, 2, Duration::from_secs(8)))
        .collect();
    db.wait_workers(2);
    let mut coord = db.spawn(&p, &["run", "wf.yml"]);
    wait_until("5 items to run", Duration::from_secs(20), || {
        p.read("ran.log").lines().count() >= 5
    });
    ctl("stop");
    ctl("start");
    assert_eq!(
        coord.wait_code(Duration::from_secs(60)),
        Some(0),
        "{}",
        coord.stderr()
    );
    assert!(
        coord.stderr().contains("lost the connection to PostgreSQL"),
        "{}",
        coord.stderr()
    );
    let job = p.only_job();
    let st = p.status(&job);
    assert_eq!(st["successful"], 30, "{st}");
    assert_eq!(
        item_done_count(&p.job_dir(&job).join("journal.log")),
        30,
        "each item recorded once"
    );
    // Every item ran; one whose claim was lost in the restart may have run again.
    let ran = line_counts(&p.read("ran.log"));
    assert_eq!(ran.len(), 30, "{ran:?}");
    for w in &mut workers {
        signal(w, Signal::SIGTERM);
        assert_eq!(
            w.wait_code(Duration::from_secs(20)),
            Some(0),
            "{}",
            w.stderr()
        );
        assert!(!w.stderr().contains(PASSWORD));
    }
    assert!(!coord.stderr().contains(PASSWORD));
}
