//! `runner resume JOB`

use crate::cli::args::{Global, ResumeArgs};
use crate::cli::reporting::{run as run_reported, run_options};
use crate::error::exit_code;
use crate::report::event::Event;
use crate::session::resume::{ResumeRequest, ResumeStart, resume as open_resume};
use crate::state::layout::StateDir;
use crate::state::records::JobState;

pub fn resume(g: &Global, a: &ResumeArgs) -> anyhow::Result<i32> {
    let state = StateDir::new(&g.state_dir);
    if let Ok(dir) = state.job(&a.job)
        && crate::pipeline::journal::is_pipeline(&dir)
    {
        return resume_pipeline(g, a, &state);
    }
    if a.dry_run {
        return crate::cli::resume_preview::preview(g, a);
    }
    let start = open_resume(
        &state,
        ResumeRequest {
            job: a.job.clone(),
            pending_only: a.pending_only,
            force: a.force,
            executor: a.executor.map(Into::into),
        },
    )?;
    match start {
        ResumeStart::Run(job) => {
            let mut opts = run_options(g, a.max_parallel, a.interrupt.kill_grace);
            opts.merge |= a.merge;
            run_reported(g, &a.report, *job, opts)
        }
        ResumeStart::Unpaused => {
            crate::cli::out::errln!(
                "runner: job {} resumed: the running process dispatches items again",
                a.job
            );
            Ok(exit_code::COMPLETED)
        }
        ResumeStart::AlreadyCompleted(c) => {
            crate::cli::out::errln!(
                "runner: job {} already completed: {}/{} items succeeded; nothing to do",
                a.job,
                c.successful,
                c.total
            );
            if a.report.json {
                // Scripts waiting for `job_finished` get it, with nothing run in between.
                let ev = Event::JobFinished {
                    job_id: a.job.clone(),
                    state: JobState::Completed,
                    exit_code: exit_code::COMPLETED,
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
            Ok(exit_code::COMPLETED)
        }
    }
}

fn resume_pipeline(g: &Global, a: &ResumeArgs, state: &StateDir) -> anyhow::Result<i32> {
    use crate::pipeline::run::{PipelineStart, resume};
    if a.dry_run || a.pending_only || a.executor.is_some() {
        return Err(crate::cli::exit::usage(
            "--dry-run, --pending-only and --executor apply to jobs; resume a pipeline's job by its id (`<pipeline-id>.<job>`) for those",
        ));
    }
    match resume(state, &a.job, a.force)? {
        PipelineStart::Run(open) => crate::cli::pipeline::run(
            *open,
            crate::cli::pipeline::options(g, a.max_parallel)?,
            a.report.json,
        ),
        PipelineStart::Unpaused => {
            crate::cli::out::errln!("runner: pipeline {} resumed: its jobs run again", a.job);
            Ok(exit_code::COMPLETED)
        }
        PipelineStart::AlreadyCompleted => {
            crate::cli::out::errln!(
                "runner: pipeline {} already completed; nothing to do",
                a.job
            );
            Ok(exit_code::COMPLETED)
        }
    }
}
