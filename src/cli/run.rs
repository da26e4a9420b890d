//! `runner run WORKFLOW`

use crate::cli::args::{Global, RunArgs};
use crate::cli::exit::usage;
use crate::cli::reporting::{run as run_reported, run_options};
use crate::session::create::{CreateRequest, create};
use crate::state::layout::StateDir;
use crate::workflow::load::load_file_with;

pub fn run(g: &Global, a: &RunArgs) -> anyhow::Result<i32> {
    if crate::pipeline::load::is_pipeline_file(&a.workflow) {
        return run_pipeline(g, a);
    }
    let overrides = parse_sets(&a.set)?;
    let set_keys: Vec<String> = overrides.iter().map(|(k, _)| k.clone()).collect();
    let loaded = load_file_with(&a.workflow, &set_keys)?;
    if a.dry_run {
        return crate::cli::dry_run::print(&loaded.workflow, &overrides);
    }
    let job = create(
        &StateDir::new(&g.state_dir),
        CreateRequest {
            loaded,
            path: a.workflow.clone(),
            job_id: a.job_id.clone(),
            overrides,
            max_parallel: a.max_parallel.map(|n| n as usize),
            executor: a.executor.map(Into::into),
        },
    )?;
    // `--max-parallel` is stored with the job, so this run needs no override of its own.
    let mut opts = run_options(g, None, a.interrupt.kill_grace);
    opts.merge |= a.merge;
    run_reported(g, &a.report, job, opts)
}

/// `runner run PIPELINE.yml`: `--set` and `--max-parallel` go to every job.
fn run_pipeline(g: &Global, a: &RunArgs) -> anyhow::Result<i32> {
    if a.dry_run
        || a.executor.is_some()
        || a.report.junit.is_some()
        || a.report.metrics_file.is_some()
    {
        return Err(usage(
            "--dry-run, --executor, --junit and --metrics-file apply to workflows, not to a pipeline; give them in the jobs' workflows",
        ));
    }
    let loaded = crate::pipeline::load::load_pipeline_file(&a.workflow)?;
    let open = crate::pipeline::run::create(
        &StateDir::new(&g.state_dir),
        crate::pipeline::run::CreatePipeline {
            loaded,
            path: a.workflow.clone(),
            job_id: a.job_id.clone(),
            overrides: parse_sets(&a.set)?,
            max_parallel: a.max_parallel.map(|n| n as usize),
        },
    )?;
    crate::cli::pipeline::run(open, crate::cli::pipeline::options(g, None)?, a.report.json)
}

/// `--set KEY=VALUE` pairs.
pub fn parse_sets(sets: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    sets.iter()
        .map(|s| match s.split_once('=') {
            Some((k, v))
                if !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') =>
            {
                Ok((k.to_owned(), v.to_owned()))
            }
            _ => Err(usage(format!(
                "--set {s:?}: expected KEY=VALUE with KEY made of letters, digits and '_'"
            ))),
        })
        .collect()
}
