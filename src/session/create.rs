//! `runner run`: a new job from a workflow file, created and locked, ready to run.

use std::path::PathBuf;

use crate::engine::attempt::vars::JobVars;
use crate::engine::limits::enforcer::Enforcer;
use crate::engine::phases::{RunKind, select_items};
use crate::session::error::SessionError;
use crate::session::open::lock;
use crate::session::runtime::OpenRun;
use crate::state::atomic::{write_atomic, write_checksummed};
use crate::state::error::StateError;
use crate::state::executor::choose_executor;
use crate::state::job::{JobMeta, JobView};
use crate::state::layout::{StateDir, new_job_id, validate_job_id};
use crate::workflow::load::Loaded;
use crate::workflow::model::ExecutorKind;

/// What `runner run` asks for.
pub struct CreateRequest {
    /// The workflow as loaded from `path`.
    pub loaded: Loaded,
    pub path: PathBuf,
    /// `--job-id` (else a fresh id from the workflow's name).
    pub job_id: Option<String>,
    /// `--set KEY=VALUE`.
    pub overrides: Vec<(String, String)>,
    /// `--max-parallel`, stored with the job.
    pub max_parallel: Option<usize>,
    /// `--executor`.
    pub executor: Option<ExecutorKind>,
}

/// Create the job: its directory, lock, workflow snapshot and metadata. Without setup the
/// items are selected first, so that bad input leaves no job behind.
pub fn create(state: &StateDir, req: CreateRequest) -> Result<OpenRun, SessionError> {
    let CreateRequest {
        mut loaded,
        path,
        job_id,
        overrides,
        max_parallel,
        executor,
    } = req;
    let job_id = match job_id {
        Some(id) => {
            validate_job_id(&id)?;
            id
        }
        None => new_job_id(&loaded.workflow.name),
    };
    if !loaded.workflow.dir.is_dir() {
        return Err(SessionError::Usage(format!(
            "the working directory {} does not exist; create it, or fix `working_dir:` in {}",
            loaded.workflow.dir.display(),
            path.display()
        )));
    }
    // Limits this machine cannot enforce (`cpu` without cgroups) leave no job behind.
    if loaded.workflow.executor == ExecutorKind::Local && executor != Some(ExecutorKind::Slurm) {
        Enforcer::probe(&loaded.workflow.map.resources)
            .map_err(|e| SessionError::Usage(format!("{}: {e}", path.display())))?;
    }
    if state.job(&job_id)?.exists() {
        return Err(SessionError::Usage(format!(
            "job {job_id} already exists; pick another --job-id or resume it with `runner resume {job_id}`"
        )));
    }
    // Git isolation: refused outside a git work tree; items come from the job's worktree.
    let isolated = crate::engine::worktree::job::wanted(&loaded.workflow)
        .map_err(|e| SessionError::Usage(format!("{}: {e}", path.display())))?
        .is_some();
    // Without setup nothing comes before item selection: select first, so that bad input
    // (exit 2) leaves no job behind. With setup the items are selected after it, in the job.
    let mut warnings = Vec::new();
    let preselected = if loaded.workflow.setup.is_empty() && !isolated {
        let vars =
            JobVars::build(&job_id, &loaded.workflow, &overrides).map_err(SessionError::Usage)?;
        let wf = loaded
            .workflow
            .with_env(&vars.env)
            .map_err(SessionError::Usage)?;
        let (items, warning) = select_items(&wf, &vars, state.scratch_dir()?)?;
        warnings.extend(warning);
        Some(items)
    } else {
        None
    };
    let workflow_path = path
        .canonicalize()
        .map_err(|e| StateError::io("resolve", &path, e))?;
    let dir = state.create_job(&job_id)?;
    loaded.workflow.executor = choose_executor(dir.path(), loaded.workflow.executor, executor)?;
    let meta = JobMeta {
        job_id,
        workflow_name: loaded.workflow.name.clone(),
        workflow_path,
        workflow_dir: loaded.workflow.dir.clone(),
        fingerprint: blake3::hash(loaded.text.as_bytes()).to_hex().to_string(),
        created_at: crate::state::time::Timestamp::now(),
        overrides,
        max_parallel,
    };
    let lock = lock(&dir, "run")?;
    write_atomic(&dir.workflow_snapshot(), loaded.text.as_bytes())?;
    write_checksummed(&dir.meta(), &meta)?;
    Ok(OpenRun {
        dir,
        meta,
        workflow: loaded.workflow,
        view: JobView::default(),
        lock,
        kind: RunKind::Run,
        preselected,
        warnings,
    })
}
