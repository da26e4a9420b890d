//! `runner pause JOB` and `runner stop JOB`: requests to the live process of a job, through
//! its control channel.

use std::time::{Duration, Instant};

use crate::cli::args::{Global, PauseArgs, StopArgs};
use crate::cli::exit::{Exit, FAILURES, usage};
use crate::cli::job_open::{display_state, open_job, recover, wait_for};
use crate::state::control::{ControlRequest, send};
use crate::state::layout::{JobDir, StateDir};
use crate::state::lock::is_held;

const ACK_TIMEOUT: Duration = Duration::from_secs(10);

fn live_job(g: &Global, id: &str) -> anyhow::Result<JobDir> {
    let dir = open_job(&StateDir::new(&g.state_dir), id)?;
    if !is_held(&dir.lock()) {
        let view = recover(&dir, false)?;
        let state = serde_json::to_value(display_state(&dir, &view))?;
        return Err(usage(format!(
            "job {id} is not running (state: {}); nothing to {}",
            state.as_str().unwrap_or("?"),
            "control"
        )));
    }
    Ok(dir)
}

pub fn pause(g: &Global, a: &PauseArgs) -> anyhow::Result<i32> {
    let dir = live_job(g, &a.job)?;
    if let Some(p) = recover(&dir, false)?.paused() {
        crate::cli::out::errln!(
            "runner: job {} is already paused (since {})",
            a.job,
            p.paused_at
        );
        return Ok(0);
    }
    send(
        &dir.control(),
        &ControlRequest::Pause {
            reason: a.reason.clone(),
        },
    )?;
    if !wait_for(&dir, ACK_TIMEOUT, |v| v.paused().is_some())? {
        return Err(Exit {
            code: FAILURES,
            message: format!(
                "job {} did not confirm the pause within {}s",
                a.job,
                ACK_TIMEOUT.as_secs()
            ),
        }
        .into());
    }
    crate::cli::out::errln!(
        "runner: job {} paused: no new item starts; items in flight finish; `runner resume {}` continues",
        a.job,
        a.job
    );
    Ok(0)
}

/// `runner resume` of a paused live job: un-pause it in place.
pub fn unpause_live(dir: &JobDir, id: &str) -> anyhow::Result<i32> {
    send(&dir.control(), &ControlRequest::Resume)?;
    if !wait_for(dir, ACK_TIMEOUT, |v| v.paused().is_none())? {
        return Err(Exit {
            code: FAILURES,
            message: format!(
                "job {id} did not confirm the resume within {}s",
                ACK_TIMEOUT.as_secs()
            ),
        }
        .into());
    }
    crate::cli::out::errln!("runner: job {id} resumed: the running process dispatches items again");
    Ok(0)
}

pub fn stop(g: &Global, a: &StopArgs) -> anyhow::Result<i32> {
    let dir = live_job(g, &a.job)?;
    send(
        &dir.control(),
        &ControlRequest::Stop {
            grace_ms: a.grace.as_millis() as u64,
        },
    )?;
    if a.no_wait {
        crate::cli::out::errln!(
            "runner: asked job {} to stop (grace {})",
            a.job,
            humantime::format_duration(a.grace)
        );
        return Ok(0);
    }
    crate::cli::out::errln!(
        "runner: stopping job {} (items in flight get {})...",
        a.job,
        humantime::format_duration(a.grace)
    );
    let deadline = Instant::now() + a.grace + Duration::from_secs(60);
    while is_held(&dir.lock()) {
        if Instant::now() >= deadline {
            return Err(Exit {
                code: FAILURES,
                message: format!("job {} is still running after the grace period", a.job),
            }
            .into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    crate::cli::out::errln!(
        "runner: job {} stopped; `runner resume {}` continues it",
        a.job,
        a.job
    );
    Ok(0)
}
