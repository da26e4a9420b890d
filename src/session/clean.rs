//! `runner clean`: remove finished job directories (never one whose lock is held).

use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::session::error::SessionError;
use crate::state::atomic::remove_stale_temp_files;
use crate::state::layout::{JobDir, StateDir};
use crate::state::lock::{JobLock, is_held};
use crate::state::records::JobState;
use crate::state::recover::{recorded_state, recover};
use crate::state::time::Timestamp;

/// Which jobs `clean` removes.
#[derive(Debug, Clone, Default)]
pub struct CleanRequest {
    /// Only jobs last updated longer ago than this.
    pub older_than: Option<Duration>,
    /// Only completed jobs (not failed ones).
    pub completed_only: bool,
    /// Interrupted jobs too.
    pub all_states: bool,
    /// Say what would go; remove nothing.
    pub dry_run: bool,
}

/// What `clean` did (or, with `dry_run`, would do).
#[derive(Debug, Default)]
pub struct CleanReport {
    pub removed: Vec<String>,
    pub kept: usize,
    /// Bytes of the removed job directories.
    pub freed: u64,
    /// Stale temporary files deleted from jobs that stay.
    pub temps: usize,
}

pub fn clean(state: &StateDir, req: &CleanRequest) -> Result<CleanReport, SessionError> {
    let mut report = CleanReport::default();
    for id in state.list_jobs()? {
        let dir = state.job(&id)?;
        if is_held(&dir.lock()) {
            report.kept += 1;
            continue; // never touch a live job
        }
        if !req.dry_run {
            report.temps += remove_stale_temp_files(dir.path()).unwrap_or(0);
        }
        if !removable(&dir, req) {
            report.kept += 1;
            continue;
        }
        let size = size_of(dir.path());
        if !req.dry_run {
            // Hold the job's lock while removing, so a resume cannot start meanwhile; and
            // look again under the lock: a resume may have run since.
            let Ok(lock) = JobLock::acquire(&dir.lock(), "clean") else {
                report.kept += 1;
                continue;
            };
            if !removable(&dir, req) {
                report.kept += 1;
                continue;
            }
            crate::engine::worktree::finish::remove_job(&dir).map_err(|e| {
                SessionError::Infra(format!(
                    "job {id}: removing its git worktrees and branches failed: {e}"
                ))
            })?;
            std::fs::remove_dir_all(dir.path())
                .map_err(|e| crate::state::error::StateError::io("remove", dir.path(), e))?;
            drop(lock);
        }
        report.removed.push(id);
        report.freed += size;
    }
    Ok(report)
}

/// Is the job in a state `req` removes, and old enough? (The caller saw its lock free, or
/// holds it.)
fn removable(dir: &JobDir, req: &CleanRequest) -> bool {
    if crate::pipeline::journal::is_pipeline(dir) {
        return pipeline_removable(dir, req);
    }
    let Ok(view) = recover(dir, false) else {
        return false;
    };
    let wanted = match recorded_state(&view) {
        JobState::Completed => true,
        JobState::Failed => !req.completed_only,
        // Waiting for a resume: only on request, and never while a crashed run's process
        // groups still run.
        JobState::Interrupted => {
            req.all_states
                && !view
                    .live_groups
                    .iter()
                    .any(crate::engine::process::orphans::still_running)
        }
        JobState::Running | JobState::Paused | JobState::Stale => false,
    };
    let Some(min_age) = req.older_than else {
        return wanted;
    };
    // The later of the last recorded time and the journal's modification time (a crashed
    // run records nothing at its end).
    let recorded = view.updated_at.map(Timestamp::system_time);
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

/// A pipeline's directory (its jobs are job directories of their own, cleaned as jobs).
fn pipeline_removable(dir: &JobDir, req: &CleanRequest) -> bool {
    let Ok(view) = crate::pipeline::journal::read_view(dir) else {
        return false;
    };
    let wanted = match view.recorded_state() {
        JobState::Completed => true,
        JobState::Failed => !req.completed_only,
        JobState::Interrupted => req.all_states,
        JobState::Running | JobState::Paused | JobState::Stale => false,
    };
    let touched = std::fs::metadata(crate::pipeline::journal::journal_path(dir))
        .and_then(|m| m.modified())
        .ok();
    wanted
        && req.older_than.is_none_or(|min| {
            touched.is_some_and(|t| {
                SystemTime::now()
                    .duration_since(t)
                    .is_ok_and(|age| age >= min)
            })
        })
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
