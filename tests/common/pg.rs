//! A private database per test on the PostgreSQL that CI started (`RUNNER_POSTGRES_URL`,
//! see scripts/ci-postgres-setup.sh), migrated with `runner postgres migrate`, and workers
//! started against it. With `RUNNER_REQUIRE_POSTGRES=1` a missing or unusable server fails
//! the test, naming what is wrong.
#![allow(dead_code)]

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::common::Project;
use crate::crash::{Bg, run_with, spawn_with};

/// A password that must never appear in any output (trust authentication ignores it).
pub const PASSWORD: &str = "pw-Secret-4711";

static DBS: AtomicUsize = AtomicUsize::new(0);

pub struct PgDb {
    /// The test's database, with [`PASSWORD`] in it.
    pub url: String,
    admin: String,
    name: String,
}

fn with_db(url: &str, db: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("a postgres:// URL");
    let (rest, query) = match rest.split_once('?') {
        Some((r, q)) => (r, format!("?{q}")),
        None => (rest, String::new()),
    };
    let authority = rest.split('/').next().unwrap_or(rest);
    format!("{scheme}://{authority}/{db}{query}")
}

fn with_password(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("a postgres:// URL");
    match rest.split_once('@') {
        Some((user, host)) if !user.contains(':') => {
            format!("{scheme}://{user}:{PASSWORD}@{host}")
        }
        _ => url.to_owned(),
    }
}

/// `psql URL -Atc SQL`, its output (panics when it fails).
pub fn psql(url: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args([url, "-v", "ON_ERROR_STOP=1", "-Atc", sql])
        .output()
        .expect("psql (Debian's postgresql-client) must be installed");
    assert!(
        out.status.success(),
        "psql {sql:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

impl PgDb {
    /// A new empty database (no runner schema).
    pub fn empty() -> PgDb {
        let admin = std::env::var("RUNNER_POSTGRES_URL").unwrap_or_default();
        assert!(
            !admin.is_empty(),
            "RUNNER_REQUIRE_POSTGRES=1 but RUNNER_POSTGRES_URL is not set: start one with \
             `eval \"$(bash scripts/ci-postgres-setup.sh)\"`"
        );
        let name = format!(
            "runner_test_{}_{}_{:x}",
            std::process::id(),
            DBS.fetch_add(1, Ordering::SeqCst),
            fastrand::u32(..)
        );
        psql(&admin, &format!("CREATE DATABASE {name}"));
        PgDb {
            url: with_password(&with_db(&admin, &name)),
            admin,
            name,
        }
    }

    /// A new database with the runner schema.
    pub fn new(p: &Project) -> PgDb {
        let db = PgDb::empty();
        let out = run_with(p, &p.state_dir(), &["postgres", "migrate"], &db.env());
        assert!(
            out.status.success(),
            "runner postgres migrate failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        db
    }

    pub fn env(&self) -> Vec<(&'static str, &str)> {
        vec![
            ("RUNNER_POSTGRES_URL", self.url.as_str()),
            ("RUNNER_POSTGRES_POLL", "200ms"),
        ]
    }

    pub fn sql(&self, sql: &str) -> String {
        psql(&with_db(&self.admin, &self.name), sql)
    }

    /// Run `runner <args>` against this database.
    pub fn run(&self, p: &Project, args: &[&str]) -> std::process::Output {
        run_with(p, &p.state_dir(), args, &self.env())
    }

    /// Start `runner <args>` in the background against this database.
    pub fn spawn(&self, p: &Project, args: &[&str]) -> Bg {
        spawn_with(p, &p.state_dir(), args, &self.env())
    }

    /// Start a worker with short leases: `lease` (heartbeat a quarter of it).
    pub fn worker(&self, p: &Project, slots: usize, lease: Duration) -> Bg {
        let slots = slots.to_string();
        let lease_s = format!("{}ms", lease.as_millis());
        let beat = format!("{}ms", lease.as_millis() / 4);
        self.spawn(
            p,
            &[
                "worker",
                "--slots",
                &slots,
                "--lease",
                &lease_s,
                "--heartbeat",
                &beat,
                "--poll",
                "200ms",
                "--grace",
                "1s",
            ],
        )
    }

    /// Wait until `n` workers are registered.
    pub fn wait_workers(&self, n: usize) {
        crate::crash::wait_until("workers to register", Duration::from_secs(20), || {
            self.sql("SELECT count(*) FROM runner.workers")
                .parse::<usize>()
                .unwrap_or(0)
                >= n
        });
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args([
                self.admin.as_str(),
                "-Atc",
                &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            ])
            .output();
    }
}

/// SIGTERM (or another signal) to a background process.
pub fn signal(bg: &Bg, sig: nix::sys::signal::Signal) {
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(bg.pid() as i32), sig);
}
