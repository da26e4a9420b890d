//! `runner pause|resume|stop <pipeline-id>`: requests to a live pipeline through its control
//! channel. The pipeline records the pause (or stop) and passes it on to its running jobs.

use std::time::{Duration, Instant};

use crate::pipeline::journal::{PipelineView, read_view};
use crate::session::error::SessionError;
use crate::session::live::{ACK_TIMEOUT, Paused};
use crate::state::layout::JobDir;
use crate::state::lock::is_held;
use crate::state::mailbox::{ControlRequest, send};

fn live(dir: &JobDir, id: &str) -> Result<(), SessionError> {
    if !is_held(&dir.lock()) {
        let st = read_view(dir)?.recorded_state();
        return Err(SessionError::Usage(format!(
            "pipeline {id} is not running (state: {}); nothing to control",
            crate::session::live::state_name(st)
        )));
    }
    Ok(())
}

fn wait_for(
    dir: &JobDir,
    id: &str,
    what: &str,
    done: impl Fn(&PipelineView) -> bool,
) -> Result<(), SessionError> {
    let deadline = Instant::now() + ACK_TIMEOUT;
    loop {
        if done(&read_view(dir)?) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(SessionError::Infra(format!(
                "pipeline {id} did not confirm the {what} within {}s",
                ACK_TIMEOUT.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Pause a live pipeline: no new job starts and its running jobs pause.
pub fn pause(dir: &JobDir, id: &str, reason: Option<String>) -> Result<Paused, SessionError> {
    live(dir, id)?;
    if let Some((since, _)) = read_view(dir)?.paused {
        return Ok(Paused::Already { since });
    }
    send(&dir.control(), &ControlRequest::Pause { reason })?;
    wait_for(dir, id, "pause", |v| v.paused.is_some())?;
    Ok(Paused::Now)
}

/// Un-pause a live paused pipeline.
pub fn unpause(dir: &JobDir, id: &str) -> Result<(), SessionError> {
    send(&dir.control(), &ControlRequest::Resume)?;
    wait_for(dir, id, "resume", |v| v.paused.is_none())
}

/// Stop a live pipeline: its running jobs stop (items in flight get `grace`), no new job
/// starts. With `wait`, return once the pipeline released its lock.
pub fn stop(dir: &JobDir, id: &str, grace: Duration, wait: bool) -> Result<(), SessionError> {
    live(dir, id)?;
    send(
        &dir.control(),
        &ControlRequest::Stop {
            grace_ms: grace.as_millis() as u64,
        },
    )?;
    if !wait {
        return Ok(());
    }
    crate::session::live::wait_released(dir, &format!("pipeline {id}"), grace)
}
