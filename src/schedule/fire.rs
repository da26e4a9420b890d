//! Starting a scheduled run as `runner run FILE` would (a child process in its own process
//! group, so that stopping the service stops no run), naming it, and seeing whether earlier
//! runs still hold their locks.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Stdio;

use jiff::Timestamp;

use crate::state::layout::StateDir;
use crate::state::lock::is_held;
use crate::state::records::JobState;

/// The job id of schedule `name`'s fire at `nominal`: `<name>-<YYYYmmdd-HHMMSS>` (UTC). A
/// fire has one id, so a restart that would start it again finds its job instead.
pub fn job_id(name: &str, nominal: Timestamp) -> String {
    format!("{name}-{}", nominal.strftime("%Y%m%d-%H%M%S"))
}

/// Is the job (or pipeline) `id` running: its lock held by a live process?
pub fn is_running(state: &StateDir, id: &str) -> bool {
    state.job(id).is_ok_and(|d| is_held(&d.lock()))
}

/// Does the job (or pipeline) `id` exist?
pub fn exists(state: &StateDir, id: &str) -> bool {
    state.job(id).is_ok_and(|d| d.exists())
}

/// The state of a scheduled run's job or pipeline (`None` when it is not there).
pub fn job_state(state: &StateDir, id: &str) -> Option<JobState> {
    let dir = state.job(id).ok().filter(|d| d.exists())?;
    if crate::pipeline::journal::is_pipeline(&dir) {
        return crate::pipeline::status::pipeline_status(state, &dir)
            .ok()
            .map(|s| s.state);
    }
    crate::session::status::job_status(&dir)
        .ok()
        .map(|s| s.state)
}

/// `runner --state-dir ROOT run FILE --job-id ID [--set K=V]...`, detached from the
/// caller's process group; its stderr is the caller's.
pub fn spawn_run(
    root: &Path,
    run: &Path,
    job_id: &str,
    set: &[(String, String)],
) -> std::io::Result<tokio::process::Child> {
    let exe = std::env::current_exe()?;
    let mut c = std::process::Command::new(exe);
    c.arg("--state-dir")
        .arg(root)
        .arg("run")
        .arg(run)
        .arg("--job-id")
        .arg(job_id);
    for (k, v) in set {
        c.arg("--set").arg(format!("{k}={v}"));
    }
    c.stdin(Stdio::null())
        .stdout(Stdio::null())
        .process_group(0);
    tokio::process::Command::from(c).spawn()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fire_has_one_job_id() {
        let t: Timestamp = "2026-03-29T01:30:00Z".parse().unwrap();
        assert_eq!(job_id("nightly", t), "nightly-20260329-013000");
    }
}
