//! `runner exec-item` (hidden): one array task of the Slurm backend. Finds the task (the
//! submission and `$SLURM_ARRAY_TASK_ID`), opens the job, and runs the task's batch
//! (`engine::slurm::task`); exits 143 when a signal cut the batch short.

use anyhow::Context;

use crate::cli::args::ExecItemArgs;
use crate::engine::slurm::task::{TaskRun, run_task};
use crate::error::exit_code;
use crate::session::open::{read_meta, snapshot_workflow};
use crate::state::layout::JobDir;

pub fn exec_item(a: &ExecItemArgs) -> anyhow::Result<i32> {
    let index = match a.task {
        Some(t) => t,
        None => std::env::var("SLURM_ARRAY_TASK_ID")
            .ok()
            .and_then(|v| v.parse().ok())
            .context("no --task and no SLURM_ARRAY_TASK_ID")?,
    };
    let dir = JobDir::at(&a.job_dir);
    let meta = read_meta(&dir)?;
    // The job's workflow is its snapshot (`resume --force` makes a changed file the new
    // snapshot before any task is submitted).
    let workflow = snapshot_workflow(&dir, &meta)?;
    let end = run_task(TaskRun {
        dir: &dir,
        meta: &meta,
        workflow: &workflow,
        sub: a.submission,
        index,
    })?;
    Ok(if end.interrupted {
        exit_code::SIGTERM
    } else {
        exit_code::COMPLETED
    })
}
