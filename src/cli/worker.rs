//! `runner worker`

use crate::cli::args::{Global, WorkerArgs};
use crate::cli::exit::usage;
use crate::cli::out::errln;
use crate::engine::postgres::lease::Lease;
use crate::engine::postgres::url::{PgUrl, URL_VAR};
use crate::engine::postgres::worker::WorkerOptions;

pub fn worker(g: &Global, a: &WorkerArgs) -> anyhow::Result<i32> {
    let url = PgUrl::from_env()?;
    // The items this worker runs must not see the database's credentials.
    // SAFETY: no other thread runs yet (the runtime starts below).
    unsafe { std::env::remove_var(URL_VAR) };
    let lease = Lease::new(a.lease, a.heartbeat).map_err(usage)?;
    let slots = a.slots.map(|n| n as usize).unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(4)
    });
    let report = crate::engine::postgres::workers::worker(WorkerOptions {
        url,
        slots,
        lease,
        poll: a.poll,
        tail_cap: a.tail_bytes,
        grace: a.grace,
    })?;
    if !g.quiet {
        let waits = report
            .claim_wait_ms
            .map(|(p50, p95)| format!("; claim wait p50 {p50:.1} ms, p95 {p95:.1} ms"))
            .unwrap_or_default();
        errln!(
            "runner worker: {} outcome(s) written, {} rejected, {} item(s) handed back{waits}",
            report.ran,
            report.rejected,
            report.handed_back
        );
    }
    Ok(0)
}
