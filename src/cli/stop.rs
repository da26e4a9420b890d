//! `runner stop JOB [--grace DUR] [--no-wait]`

use crate::cli::args::{Global, StopArgs};
use crate::session::live::stop as stop_job;
use crate::state::layout::StateDir;

pub fn stop(g: &Global, a: &StopArgs) -> anyhow::Result<i32> {
    let grace = humantime::format_duration(a.grace);
    if !a.no_wait {
        crate::cli::out::errln!(
            "runner: stopping job {} (items in flight get {grace})...",
            a.job
        );
    }
    let state = StateDir::new(&g.state_dir);
    match state.job(&a.job) {
        Ok(dir) if crate::pipeline::journal::is_pipeline(&dir) => {
            crate::pipeline::live::stop(&dir, &a.job, a.grace, !a.no_wait)?
        }
        _ => stop_job(&state, &a.job, a.grace, !a.no_wait)?,
    }
    if a.no_wait {
        crate::cli::out::errln!("runner: asked job {} to stop (grace {grace})", a.job);
    } else {
        crate::cli::out::errln!(
            "runner: job {} stopped; `runner resume {}` continues it",
            a.job,
            a.job
        );
    }
    Ok(0)
}
