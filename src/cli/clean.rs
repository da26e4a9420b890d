//! `runner clean [--older-than DUR] [--completed] [--dry-run]`

use std::time::SystemTime;

use crate::cli::args::{CleanArgs, Global};
use crate::cli::job_open::{display_state, recover};
use crate::state::atomic::remove_stale_temp_files;
use crate::state::layout::StateDir;
use crate::state::lock::is_held;
use crate::state::records::JobState;

pub fn clean(g: &Global, a: &CleanArgs) -> anyhow::Result<i32> {
    let state = StateDir::new(&g.state_dir);
    let (mut removed, mut kept, mut temps) = (0, 0, 0);
    for id in state.list_jobs()? {
        let dir = state.job(&id)?;
        if is_held(&dir.lock()) {
            kept += 1;
            continue; // never touch a live job
        }
        if !a.dry_run {
            temps += remove_stale_temp_files(dir.path()).unwrap_or(0);
        }
        let Ok(view) = recover(&dir, false) else {
            kept += 1;
            continue;
        };
        let st = display_state(&dir, &view);
        let finished = match st {
            JobState::Completed => true,
            JobState::Failed => !a.completed,
            _ => false,
        };
        let old_enough = match (
            a.older_than,
            view.updated_at
                .as_deref()
                .and_then(|t| humantime::parse_rfc3339_weak(t).ok()),
        ) {
            (None, _) => true,
            (Some(d), Some(t)) => SystemTime::now()
                .duration_since(t)
                .is_ok_and(|age| age >= d),
            (Some(_), None) => false,
        };
        if !(finished && old_enough) {
            kept += 1;
            continue;
        }
        if a.dry_run {
            crate::cli::out::line(&format!("would remove {id}"));
        } else {
            // Hold the job's lock while removing, so a resume cannot start meanwhile.
            let Ok(lock) = crate::state::lock::JobLock::acquire(&dir.lock(), "clean") else {
                kept += 1;
                continue;
            };
            std::fs::remove_dir_all(dir.path())?;
            drop(lock);
            crate::cli::out::line(&format!("removed {id}"));
        }
        removed += 1;
    }
    crate::cli::out::errln!(
        "runner: {} {removed} job(s), kept {kept}{}",
        if a.dry_run { "would remove" } else { "removed" },
        if temps > 0 {
            format!(", deleted {temps} stale temporary file(s)")
        } else {
            String::new()
        }
    );
    Ok(0)
}
