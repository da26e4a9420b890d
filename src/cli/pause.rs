//! `runner pause JOB [--reason TEXT]`

use crate::cli::args::{Global, PauseArgs};
use crate::session::live::{Paused, pause as pause_job};
use crate::state::layout::StateDir;

pub fn pause(g: &Global, a: &PauseArgs) -> anyhow::Result<i32> {
    let state = StateDir::new(&g.state_dir);
    let paused = match state.job(&a.job) {
        Ok(dir) if crate::pipeline::journal::is_pipeline(&dir) => {
            crate::pipeline::live::pause(&dir, &a.job, a.reason.clone())?
        }
        _ => pause_job(&state, &a.job, a.reason.clone())?,
    };
    match paused {
        Paused::Already { since } => {
            crate::cli::out::errln!("runner: job {} is already paused (since {since})", a.job)
        }
        Paused::Now => crate::cli::out::errln!(
            "runner: job {} paused: no new item starts; items in flight finish; `runner resume {}` continues",
            a.job,
            a.job
        ),
    }
    Ok(0)
}
