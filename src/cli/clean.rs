//! `runner clean [--older-than DUR] [--completed | --all-states] [--dry-run]`

use std::path::Path;
use std::time::SystemTime;

use indicatif::BinaryBytes;

use crate::cli::args::{CleanArgs, Global};
use crate::cli::job_open::{recorded_state, recover};
use crate::state::atomic::remove_stale_temp_files;
use crate::state::layout::{JobDir, StateDir};
use crate::state::lock::is_held;
use crate::state::records::JobState;

pub fn clean(g: &Global, a: &CleanArgs) -> anyhow::Result<i32> {
    let state = StateDir::new(&g.state_dir);
    let (mut removed, mut kept, mut temps, mut freed) = (0, 0, 0, 0u64);
    for id in state.list_jobs()? {
        let dir = state.job(&id)?;
        if is_held(&dir.lock()) {
            kept += 1;
            continue; // never touch a live job
        }
        if !a.dry_run {
            temps += remove_stale_temp_files(dir.path()).unwrap_or(0);
        }
        if !removable(&dir, a) {
            kept += 1;
            continue;
        }
        let size = size_of(dir.path());
        if a.dry_run {
            crate::cli::out::line(&format!("would remove {id}"));
        } else {
            // Hold the job's lock while removing, so a resume cannot start meanwhile; and
            // look again under the lock: a resume may have run since.
            let Ok(lock) = crate::state::lock::JobLock::acquire(&dir.lock(), "clean") else {
                kept += 1;
                continue;
            };
            if !removable(&dir, a) {
                kept += 1;
                continue;
            }
            std::fs::remove_dir_all(dir.path())?;
            drop(lock);
            crate::cli::out::line(&format!("removed {id}"));
        }
        removed += 1;
        freed += size;
    }
    crate::cli::out::errln!(
        "runner: {} {removed} job(s), {} {}; kept {kept}{}",
        if a.dry_run { "would remove" } else { "removed" },
        if a.dry_run { "would free" } else { "freed" },
        BinaryBytes(freed),
        if temps > 0 {
            format!(", deleted {temps} stale temporary file(s)")
        } else {
            String::new()
        }
    );
    Ok(0)
}

/// Is the job in a state `a` removes, and old enough? (The caller saw its lock free, or
/// holds it.)
fn removable(dir: &JobDir, a: &CleanArgs) -> bool {
    let Ok(view) = recover(dir, false) else {
        return false;
    };
    let wanted = match recorded_state(&view) {
        JobState::Completed => true,
        JobState::Failed => !a.completed,
        // Waiting for a resume: only on request, and never while a crashed run's process
        // groups still run.
        JobState::Interrupted => {
            a.all_states
                && !view
                    .live_groups
                    .iter()
                    .any(crate::engine::process::orphans::still_running)
        }
        JobState::Running | JobState::Paused | JobState::Stale => false,
    };
    let Some(min_age) = a.older_than else {
        return wanted;
    };
    // The later of the last recorded time and the journal's modification time (a crashed
    // run records nothing at its end).
    let recorded = view
        .updated_at
        .as_deref()
        .and_then(|t| humantime::parse_rfc3339_weak(t).ok());
    let touched = std::fs::metadata(dir.journal())
        .and_then(|m| m.modified())
        .ok();
    let Some(last) = recorded.max(touched) else {
        return false;
    };
    wanted
        && SystemTime::now()
            .duration_since(last)
            .is_ok_and(|age| age >= min_age)
}

/// Bytes of the files under `path` (their apparent size; symbolic links are not followed).
fn size_of(path: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(path) else {
        return 0;
    };
    rd.filter_map(Result::ok)
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => size_of(&e.path()),
            _ => e.metadata().map(|m| m.len()).unwrap_or(0),
        })
        .sum()
}
