//! `runner resume JOB`

use crate::cli::args::{Global, ResumeArgs};
use crate::cli::job_open::{job_workflow, lock, open_job, read_meta, recover};
use crate::cli::session::{Session, run_session};
use crate::engine::phases::RunKind;
use crate::state::layout::StateDir;
use crate::state::records::JobState;

pub fn resume(g: &Global, a: &ResumeArgs) -> anyhow::Result<i32> {
    if a.dry_run {
        return crate::cli::resume_preview::preview(g, a);
    }
    let state = StateDir::new(&g.state_dir);
    let dir = open_job(&state, &a.job)?;
    let mut meta = read_meta(&dir)?;
    if crate::state::lock::is_held(&dir.lock()) && recover(&dir, false)?.paused().is_some() {
        return crate::cli::control::unpause_live(&dir, &a.job);
    }
    let lock = lock(&dir, "resume")?;
    let view = recover(&dir, true)?;
    if !view.run_open && view.last_state == Some(JobState::Completed) {
        let _ = lock.release();
        crate::cli::out::errln!(
            "runner: job {} already completed: {}/{} items succeeded; nothing to do",
            a.job,
            view.counts.successful,
            view.counts.total
        );
        if a.report.json {
            // Scripts waiting for `job_finished` get it, with nothing run in between.
            let c = view.counts;
            let ev = crate::report::event::Event::JobFinished {
                job_id: a.job.clone(),
                state: JobState::Completed,
                exit_code: 0,
                total: c.total,
                successful: c.successful,
                failed: c.failed_total(),
                dlq: c.dlq,
                pending: c.pending,
                duration_ms: 0,
                reason: None,
            };
            crate::cli::out::line(&serde_json::to_string(&ev)?);
        }
        return Ok(crate::cli::exit::COMPLETED);
    }
    let mut warnings = Vec::new();
    let mut workflow = job_workflow(&dir, &mut meta, a.force, &mut warnings)?;
    workflow.executor = crate::state::executor::choose_executor(
        dir.path(),
        workflow.executor,
        a.executor.map(Into::into),
    )?;
    run_session(
        g,
        &a.report,
        Session {
            dir,
            meta: &meta,
            workflow: &workflow,
            view,
            kind: RunKind::Resume {
                pending_only: a.pending_only,
            },
            preselected: None,
            max_parallel: a.max_parallel.map(|n| n as usize),
            lock,
            warnings,
            kill_grace: a.interrupt.kill_grace,
        },
    )
}
