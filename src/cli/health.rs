//! `runner health [--json]`: exit 0 when healthy, 1 otherwise.

use crate::cli::args::{Global, HealthArgs};
use crate::cli::exit::usage;
use crate::cli::out::{errln, line};
use crate::error::exit_code;
use crate::session::health::{HealthRequest, health as check};
use crate::state::layout::StateDir;

pub fn health(g: &Global, a: &HealthArgs) -> anyhow::Result<i32> {
    if !(0.0..=1.0).contains(&a.max_error_rate) {
        return Err(usage("--max-error-rate must be a fraction between 0 and 1"));
    }
    let report = check(
        &StateDir::new(&g.state_dir),
        &HealthRequest {
            stale_after: a.stale_after,
            window: a.window,
            max_error_rate: a.max_error_rate,
            min_items: a.min_items,
        },
    )?;
    if a.json {
        line(&serde_json::to_string_pretty(&report)?);
    } else if report.healthy {
        errln!(
            "runner: healthy: {} job(s), {} running; no stale job, no stuck item, error rates within {:.0}%",
            report.jobs,
            report.running,
            a.max_error_rate * 100.0
        );
    } else {
        errln!("runner: unhealthy:");
        for p in &report.problems {
            errln!("  {p}");
        }
    }
    Ok(if report.healthy {
        exit_code::COMPLETED
    } else {
        exit_code::FAILURES
    })
}
