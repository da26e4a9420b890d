//! `runner resume JOB`: continue an interrupted or failed job, or un-pause a live one.

use crate::engine::phases::RunKind;
use crate::session::error::SessionError;
use crate::session::live::{is_live_and_paused, unpause};
use crate::session::open::{job_workflow, lock, open_job, read_meta};
use crate::session::runtime::OpenRun;
use crate::state::executor::choose_executor;
use crate::state::job::Counts;
use crate::state::layout::StateDir;
use crate::state::records::JobState;
use crate::state::recover::recover;
use crate::workflow::model::ExecutorKind;

/// What `runner resume` asks for.
pub struct ResumeRequest {
    pub job: String,
    pub pending_only: bool,
    pub force: bool,
    pub executor: Option<ExecutorKind>,
}

/// What a resume found to do.
pub enum ResumeStart {
    /// Run the job (the caller calls `run_job`).
    Run(Box<OpenRun>),
    /// The job had already completed; nothing was done.
    AlreadyCompleted(Counts),
    /// The job was live and paused; it was un-paused in place.
    Unpaused,
}

pub fn resume(state: &StateDir, req: ResumeRequest) -> Result<ResumeStart, SessionError> {
    let dir = open_job(state, &req.job)?;
    let mut meta = read_meta(&dir)?;
    if is_live_and_paused(&dir)? {
        unpause(&dir, &req.job)?;
        return Ok(ResumeStart::Unpaused);
    }
    let lock = lock(&dir, "resume")?;
    let view = recover(&dir, true)?;
    if !view.run_open && view.last_state == Some(JobState::Completed) {
        let _ = lock.release();
        return Ok(ResumeStart::AlreadyCompleted(view.counts));
    }
    let mut warnings = Vec::new();
    let mut workflow = job_workflow(&dir, &mut meta, req.force, &mut warnings)?;
    workflow.executor = choose_executor(dir.path(), workflow.executor, req.executor)?;
    Ok(ResumeStart::Run(Box::new(OpenRun {
        dir,
        meta,
        workflow,
        view,
        lock,
        kind: RunKind::Resume {
            pending_only: req.pending_only,
        },
        preselected: None,
        warnings,
    })))
}
