//! `runner exec-item` (hidden): one array task of the Slurm executor. Runs one item of a
//! job from its frozen job directory (on a filesystem shared with the coordinator) with the
//! same per-item code as the local executor, and writes the outcome file atomically.

use std::sync::Arc;

use anyhow::Context;

use crate::cli::args::ExecItemArgs;
use crate::cli::job_open::{read_meta, snapshot_workflow};
use crate::engine::control::{Controls, watch_signals};
use crate::engine::executor::ProcessExecutor;
use crate::engine::item::{ItemRun, MapCtx, run_item};
use crate::engine::phases::wf_env_pairs;
use crate::engine::slurm::{NodeContext, Outcome, SlurmPaths, read_sub_file};
use crate::engine::vars::JobVars;
use crate::items::Item;
use crate::state::atomic::write_atomic;
use crate::state::layout::JobDir;

pub fn exec_item(a: &ExecItemArgs) -> anyhow::Result<i32> {
    let task = match a.task {
        Some(t) => t,
        None => std::env::var("SLURM_ARRAY_TASK_ID")
            .ok()
            .and_then(|v| v.parse().ok())
            .context("no --task and no SLURM_ARRAY_TASK_ID")?,
    };
    let dir = JobDir::at(&a.job_dir);
    let meta = read_meta(&dir)?;
    let paths = SlurmPaths::new(dir.path());
    let sub = read_sub_file(&paths.sub_file(a.submission))?;
    let spec = sub
        .tasks
        .get(task)
        .with_context(|| format!("submission {} has no task {task}", a.submission))?
        .clone();
    // The job's workflow is its snapshot (`resume --force` makes a changed file the new
    // snapshot before any task is submitted).
    let wf = snapshot_workflow(&dir, &meta)?;
    let node: NodeContext = std::fs::read(paths.context())
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let mut vars =
        JobVars::build(&meta.job_id, &wf, &meta.overrides).map_err(|e| anyhow::anyhow!(e))?;
    vars.captures = node.captures;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    crate::engine::reaper::become_subreaper();
    let controls = Controls::default();
    let result = rt.block_on(async {
        // scancel / the time limit send SIGTERM: kill the item's process groups at once.
        watch_signals(controls.clone(), std::time::Duration::ZERO, None);
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
        let ctx = Arc::new(MapCtx {
            exec: ProcessExecutor,
            steps: Arc::new(wf.map.steps.clone()),
            env: wf_env_pairs(&vars, &wf),
            vars,
            dir: wf.dir.clone(),
            timeout: wf.map.timeout,
            kill_grace: wf.map.kill_grace,
            retry: wf.map.retry.clone(),
            logs_dir: Some(dir.logs_dir().join("items")),
            cancel: controls.cancel.clone(),
            kill: controls.kill.clone(),
            notes: tx,
        });
        let run = ItemRun {
            idx: spec.idx,
            item: Arc::new(Item {
                id: spec.item_id.clone(),
                value: spec.item.clone(),
            }),
            prior_attempts: spec.prior_attempts,
        };
        let r = run_item(ctx, run).await;
        controls.cancel.cancel();
        r
    });
    rt.shutdown_timeout(std::time::Duration::from_secs(1));
    if result.cancelled {
        // No outcome: the coordinator treats the task as taken back (or failed).
        return Ok(143);
    }
    let outcome = Outcome::from_result(a.submission, &result);
    let bytes = serde_json::to_vec(&outcome)?;
    write_atomic(&paths.outcome(&spec.item_id, a.submission), &bytes)?;
    Ok(0)
}
