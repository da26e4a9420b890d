//! Opening an existing job: id validation, metadata, the lock, the workflow it runs, and
//! waiting for a live job to confirm a request.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::session::error::SessionError;
use crate::state::atomic::{read_checksummed, write_atomic, write_checksummed};
use crate::state::job::{JobMeta, JobView};
use crate::state::layout::{JobDir, StateDir};
use crate::state::lock::{JobLock, LockError};
use crate::state::recover::recover;
use crate::workflow::load::load_str;
use crate::workflow::model::Workflow;

/// An existing job directory (a usage error when the id is invalid or unknown).
pub fn open_job(state: &StateDir, id: &str) -> Result<JobDir, SessionError> {
    let dir = state.job(id)?;
    if !dir.exists() {
        return Err(SessionError::Usage(format!(
            "unknown job id {id:?} in {} (list jobs with `runner status`, or pass --state-dir)",
            state.root().display()
        )));
    }
    Ok(dir)
}

pub fn read_meta(dir: &JobDir) -> Result<JobMeta, SessionError> {
    read_checksummed::<JobMeta>(&dir.meta())?.ok_or_else(|| {
        SessionError::Usage(format!(
            "{} is missing: this is not a complete job directory",
            dir.meta().display()
        ))
    })
}

/// Take the job lock, or fail naming its holder (exit 3).
pub fn lock(dir: &JobDir, command: &str) -> Result<JobLock, SessionError> {
    match JobLock::acquire(&dir.lock(), command) {
        Ok(l) => Ok(l),
        Err(LockError::Held(holder)) => Err(SessionError::Locked {
            job: dir.id().to_owned(),
            holder: Box::new(holder),
        }),
        Err(e) => Err(e.into()),
    }
}

/// The workflow file a job started from, compared with the job's fingerprint.
pub enum WorkflowFile {
    Unchanged,
    /// The file differs: its bytes now, and their fingerprint.
    Changed {
        bytes: Vec<u8>,
        fingerprint: String,
    },
    /// The file cannot be read any more.
    Gone,
}

/// Read (only) the job's workflow file and compare it with the fingerprint.
pub fn workflow_file(meta: &JobMeta) -> WorkflowFile {
    match std::fs::read(&meta.workflow_path) {
        Ok(bytes) => {
            let fingerprint = blake3::hash(&bytes).to_hex().to_string();
            if fingerprint == meta.fingerprint {
                WorkflowFile::Unchanged
            } else {
                WorkflowFile::Changed { bytes, fingerprint }
            }
        }
        Err(_) => WorkflowFile::Gone,
    }
}

/// The workflow a resumed job runs: the file it started from, unless it changed (refused
/// without `force`) or is gone (then the snapshot taken at start).
pub fn job_workflow(
    dir: &JobDir,
    meta: &mut JobMeta,
    force: bool,
    warnings: &mut Vec<String>,
) -> Result<Workflow, SessionError> {
    let snapshot = read_snapshot(dir, meta)?;
    match workflow_file(meta) {
        WorkflowFile::Changed { bytes, fingerprint } => {
            if !force {
                return Err(SessionError::Usage(format!(
                    "the workflow file {} changed since job {} started; resume with --force to run the changed workflow, or restore the file",
                    meta.workflow_path.display(),
                    meta.job_id
                )));
            }
            let text = String::from_utf8_lossy(&bytes).into_owned();
            let workflow = load_str(&text, &meta.workflow_path, &meta.workflow_dir)?;
            // The job now runs the changed file: it becomes the job's snapshot.
            write_atomic(&dir.workflow_snapshot(), text.as_bytes())?;
            meta.fingerprint = fingerprint;
            write_checksummed(&dir.meta(), &*meta)?;
            warnings.push(format!(
                "running the changed workflow {} (--force); it is now the job's workflow",
                meta.workflow_path.display()
            ));
            return Ok(workflow);
        }
        WorkflowFile::Gone => warnings.push(format!(
            "{} is gone; running the copy saved when the job started",
            meta.workflow_path.display()
        )),
        WorkflowFile::Unchanged => {}
    }
    Ok(load_str(
        &snapshot,
        &meta.workflow_path,
        &meta.workflow_dir,
    )?)
}

/// The workflow text saved when the job started, checked against the job's fingerprint.
fn read_snapshot(dir: &JobDir, meta: &JobMeta) -> Result<String, SessionError> {
    let path = dir.workflow_snapshot();
    let text = std::fs::read_to_string(&path)
        .map_err(|e| crate::state::error::StateError::io("read", &path, e))?;
    if blake3::hash(text.as_bytes()).to_hex().as_str() != meta.fingerprint {
        return Err(crate::state::error::StateError::Corrupt {
            path,
            detail: "the workflow snapshot does not match the fingerprint in job.json".into(),
        }
        .into());
    }
    Ok(text)
}

/// The job's workflow as snapshotted at start (for `status`, `dlq retry`, Slurm tasks).
pub fn snapshot_workflow(dir: &JobDir, meta: &JobMeta) -> Result<Workflow, SessionError> {
    let text = read_snapshot(dir, meta)?;
    Ok(load_str(
        &text,
        Path::new(&meta.workflow_path),
        &meta.workflow_dir,
    )?)
}

/// Poll the job's journal until `done(view)` holds or `timeout` passes.
pub fn wait_for(
    dir: &JobDir,
    timeout: Duration,
    done: impl Fn(&JobView) -> bool,
) -> Result<bool, SessionError> {
    let deadline = Instant::now() + timeout;
    loop {
        if done(&recover(dir, false)?) {
            return Ok(true);
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
