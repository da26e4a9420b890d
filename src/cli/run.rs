//! `runner run WORKFLOW`

use anyhow::Context;

use crate::cli::args::{Global, RunArgs};
use crate::cli::exit::usage;
use crate::cli::session::{Session, run_session};
use crate::engine::attempt::vars::JobVars;
use crate::engine::phases::{RunKind, select_items};
use crate::state::atomic::{write_atomic, write_checksummed};
use crate::state::job::{JobMeta, JobView};
use crate::state::layout::{StateDir, new_job_id, validate_job_id};
use crate::workflow::load::load_file;

pub fn run(g: &Global, a: &RunArgs) -> anyhow::Result<i32> {
    let mut loaded = load_file(&a.workflow)?;
    let overrides = parse_sets(&a.set)?;
    if a.dry_run {
        return crate::cli::dry_run::print(&loaded.workflow, &overrides);
    }
    let state = StateDir::new(&g.state_dir);
    let job_id = match &a.job_id {
        Some(id) => {
            validate_job_id(id)?;
            id.clone()
        }
        None => new_job_id(&loaded.workflow.name),
    };
    if state.job(&job_id)?.exists() {
        return Err(usage(format!(
            "job {job_id} already exists; pick another --job-id or resume it with `runner resume {job_id}`"
        )));
    }
    // Without setup nothing comes before item selection: select first, so that bad input
    // (exit 2) leaves no job behind. With setup the items are selected after it, in the job.
    let preselected = if loaded.workflow.setup.is_empty() {
        let vars = JobVars::build(&job_id, &loaded.workflow, &overrides).map_err(usage)?;
        Some(select_items(&loaded.workflow, &vars)?)
    } else {
        None
    };
    let dir = state.create_job(&job_id)?;
    loaded.workflow.executor = crate::state::executor::choose_executor(
        dir.path(),
        loaded.workflow.executor,
        a.executor.map(Into::into),
    )?;
    let workflow_path = a
        .workflow
        .canonicalize()
        .with_context(|| format!("resolving {}", a.workflow.display()))?;
    let meta = JobMeta {
        job_id: job_id.clone(),
        workflow_name: loaded.workflow.name.clone(),
        workflow_path,
        workflow_dir: loaded.workflow.dir.clone(),
        fingerprint: blake3::hash(loaded.text.as_bytes()).to_hex().to_string(),
        created_at: humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
        overrides,
        max_parallel: a.max_parallel.map(|n| n as usize),
    };
    let lock = crate::cli::job_open::lock(&dir, "run")?;
    write_atomic(&dir.workflow_snapshot(), loaded.text.as_bytes())?;
    write_checksummed(&dir.meta(), &meta)?;
    run_session(
        g,
        &a.report,
        Session {
            dir,
            meta: &meta,
            workflow: &loaded.workflow,
            view: JobView::default(),
            kind: RunKind::Run,
            preselected,
            max_parallel: None,
            lock,
            warnings: Vec::new(),
            kill_grace: a.interrupt.kill_grace,
        },
    )
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
