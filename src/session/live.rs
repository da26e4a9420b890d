//! Requests to the live process of a job through its control channel: pause, un-pause,
//! stop, each waiting for the job to confirm.

use std::time::{Duration, Instant};

use crate::session::error::SessionError;
use crate::session::open::{open_job, wait_for};
use crate::state::layout::{JobDir, StateDir};
use crate::state::lock::is_held;
use crate::state::mailbox::{ControlRequest, send};
use crate::state::records::JobState;
use crate::state::recover::{display_state, recover};
use crate::state::time::Timestamp;

/// How long a live job gets to confirm a pause or an un-pause.
pub const ACK_TIMEOUT: Duration = Duration::from_secs(10);

/// A job whose process holds its lock (a usage error naming its state otherwise).
pub fn live_job(state: &StateDir, id: &str) -> Result<JobDir, SessionError> {
    let dir = open_job(state, id)?;
    if !is_held(&dir.lock()) {
        let view = recover(&dir, false)?;
        let st = serde_json::to_value(display_state(&dir, &view))
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_else(|| "?".into());
        return Err(SessionError::Usage(format!(
            "job {id} is not running (state: {st}); nothing to control"
        )));
    }
    Ok(dir)
}

/// What a pause request found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Paused {
    Now,
    /// It already was, since this time.
    Already {
        since: Timestamp,
    },
}

/// Ask the live job to pause and wait for it to record the pause.
pub fn pause(state: &StateDir, id: &str, reason: Option<String>) -> Result<Paused, SessionError> {
    let dir = live_job(state, id)?;
    if let Some(p) = recover(&dir, false)?.paused() {
        return Ok(Paused::Already { since: p.paused_at });
    }
    send(&dir.control(), &ControlRequest::Pause { reason })?;
    if !wait_for(&dir, ACK_TIMEOUT, |v| v.paused().is_some())? {
        return Err(unconfirmed(id, "pause"));
    }
    Ok(Paused::Now)
}

/// Ask a paused live job to go on (what `runner resume` of a paused job does).
pub fn unpause(dir: &JobDir, id: &str) -> Result<(), SessionError> {
    send(&dir.control(), &ControlRequest::Resume)?;
    if !wait_for(dir, ACK_TIMEOUT, |v| v.paused().is_none())? {
        return Err(unconfirmed(id, "resume"));
    }
    Ok(())
}

/// Is the job live and paused (so `resume` means "un-pause it")?
pub fn is_live_and_paused(dir: &JobDir) -> Result<bool, SessionError> {
    Ok(is_held(&dir.lock()) && recover(dir, false)?.paused().is_some())
}

fn unconfirmed(id: &str, what: &str) -> SessionError {
    SessionError::Infra(format!(
        "job {id} did not confirm the {what} within {}s",
        ACK_TIMEOUT.as_secs()
    ))
}

/// Ask the live job to stop: items in flight get `grace` to finish. With `wait`, return once
/// the job released its lock (an error if it still runs after the grace and a minute).
pub fn stop(state: &StateDir, id: &str, grace: Duration, wait: bool) -> Result<(), SessionError> {
    let dir = live_job(state, id)?;
    send(
        &dir.control(),
        &ControlRequest::Stop {
            grace_ms: grace.as_millis() as u64,
        },
    )?;
    if !wait {
        return Ok(());
    }
    wait_released(&dir, &format!("job {id}"), grace)
}

/// Wait until `dir`'s lock is free: up to `grace` and a minute, then an error naming `what`.
pub fn wait_released(dir: &JobDir, what: &str, grace: Duration) -> Result<(), SessionError> {
    let deadline = Instant::now() + grace + Duration::from_secs(60);
    while is_held(&dir.lock()) {
        if Instant::now() >= deadline {
            return Err(SessionError::Infra(format!(
                "{what} is still running after the grace period"
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// The display state name of a job (`running`, `interrupted`, ...).
pub fn state_name(s: JobState) -> &'static str {
    match s {
        JobState::Running => "running",
        JobState::Paused => "paused",
        JobState::Interrupted => "interrupted",
        JobState::Completed => "completed",
        JobState::Failed => "failed",
        JobState::Stale => "stale",
    }
}
