//! `runner clean [--older-than DUR] [--completed | --all-states] [--dry-run]`

use indicatif::BinaryBytes;

use crate::cli::args::{CleanArgs, Global};
use crate::session::clean::{CleanRequest, clean as clean_jobs};
use crate::state::layout::StateDir;

pub fn clean(g: &Global, a: &CleanArgs) -> anyhow::Result<i32> {
    let state = StateDir::new(&g.state_dir);
    let report = clean_jobs(
        &state,
        &CleanRequest {
            older_than: a.older_than,
            completed_only: a.completed,
            all_states: a.all_states,
            dry_run: a.dry_run,
        },
    )?;
    for id in &report.removed {
        let verb = if a.dry_run { "would remove" } else { "removed" };
        if !crate::cli::out::line(&format!("{verb} {id}")) {
            break;
        }
    }
    crate::cli::out::errln!(
        "runner: {} {} job(s), {} {}; kept {}{}",
        if a.dry_run { "would remove" } else { "removed" },
        report.removed.len(),
        if a.dry_run { "would free" } else { "freed" },
        BinaryBytes(report.freed),
        report.kept,
        if report.temps > 0 {
            format!(", deleted {} stale temporary file(s)", report.temps)
        } else {
            String::new()
        }
    );
    Ok(0)
}
