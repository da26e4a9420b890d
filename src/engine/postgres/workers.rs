//! `runner workers` and `runner postgres migrate`: what the registry and the schema say,
//! as documents the command line prints.

use serde::Serialize;

use crate::engine::postgres::client::{block_on, connect};
use crate::engine::postgres::error::PgError;
use crate::engine::postgres::lease::Lease;
use crate::engine::postgres::queue::{WorkerRow, list_workers};
use crate::engine::postgres::schema::{self, Migrated};
use crate::engine::postgres::url::PgUrl;

/// One worker as `runner workers --json` prints it (field names are documented in
/// docs/cli.md).
#[derive(Debug, Clone, Serialize)]
pub struct WorkerDoc {
    pub id: i64,
    pub host: String,
    pub pid: i32,
    pub slots: i32,
    /// Items running at its last heartbeat.
    pub busy: i32,
    pub heartbeat_age_s: f64,
    /// `alive` while its last heartbeat is within its lease, else `lost`.
    pub state: &'static str,
    pub lease_s: f64,
    pub heartbeat_s: f64,
    pub started_at: String,
    pub version: String,
}

impl WorkerDoc {
    fn of(r: WorkerRow) -> Self {
        let lease = std::time::Duration::from_millis(r.lease_ms.max(0) as u64);
        let age = std::time::Duration::from_secs_f64(r.heartbeat_age_s.max(0.0));
        let alive = Lease {
            lease,
            heartbeat: std::time::Duration::from_millis(r.heartbeat_ms.max(0) as u64),
        }
        .alive(age);
        WorkerDoc {
            id: r.id,
            host: r.host,
            pid: r.pid,
            slots: r.slots,
            busy: r.busy,
            heartbeat_age_s: (r.heartbeat_age_s * 10.0).round() / 10.0,
            state: if alive { "alive" } else { "lost" },
            lease_s: r.lease_ms as f64 / 1000.0,
            heartbeat_s: r.heartbeat_ms as f64 / 1000.0,
            started_at: r.started_at,
            version: r.version,
        }
    }
}

/// The registered workers.
pub fn workers(url: &PgUrl) -> Result<Vec<WorkerDoc>, PgError> {
    block_on(async {
        let conn = connect(url, &[]).await?;
        schema::check(&conn).await?;
        Ok(list_workers(&conn)
            .await?
            .into_iter()
            .map(WorkerDoc::of)
            .collect())
    })?
}

/// `runner postgres migrate`.
pub fn migrate(url: &PgUrl) -> Result<Migrated, PgError> {
    block_on(async {
        let conn = connect(url, &[]).await?;
        schema::migrate(&conn).await
    })?
}

/// `runner worker`: the worker on its own runtime, with the subreaper and watchdog that
/// keep its items' processes from outliving it.
pub fn worker(
    opts: crate::engine::postgres::worker::WorkerOptions,
) -> Result<crate::engine::postgres::worker::WorkerReport, PgError> {
    crate::engine::process::reaper::become_subreaper();
    crate::engine::process::watchdog::start();
    let r = block_on(crate::engine::postgres::worker::run_worker(opts));
    crate::engine::process::watchdog::stop();
    r?
}
