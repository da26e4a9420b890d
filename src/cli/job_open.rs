//! Opening an existing job: id validation, metadata, recovery of its recorded state
//! (checkpoint + journal replay), the workflow it runs, and the lock.

use std::path::Path;

use anyhow::Context;

use crate::cli::exit::{Exit, LOCKED, usage};
use crate::state::atomic::read_checksummed;
use crate::state::job::{Checkpoint, JobMeta, JobView};
use crate::state::journal::{replay, truncate_torn_tail};
use crate::state::layout::{JobDir, StateDir};
use crate::state::lock::{JobLock, LockError};
use crate::state::records::{JobState, Record};
use crate::workflow::load::load_str;
use crate::workflow::model::Workflow;

/// An existing job directory (exit 2 when the id is invalid or unknown).
pub fn open_job(state: &StateDir, id: &str) -> anyhow::Result<JobDir> {
    let dir = state.job(id)?;
    if !dir.exists() {
        return Err(usage(format!(
            "unknown job id {id:?} in {} (list jobs with `runner status`, or pass --state-dir)",
            state.root().display()
        )));
    }
    Ok(dir)
}

pub fn read_meta(dir: &JobDir) -> anyhow::Result<JobMeta> {
    read_checksummed::<JobMeta>(&dir.meta())?.ok_or_else(|| {
        usage(format!(
            "{} is missing: this is not a complete job directory",
            dir.meta().display()
        ))
    })
}

/// The job's state as recorded: the checkpoint, then the journal after it. With `repair`
/// (only while holding the lock) a torn last record is cut off so appends can follow.
pub fn recover(dir: &JobDir, repair: bool) -> anyhow::Result<JobView> {
    let journal = dir.journal();
    let (mut view, offset) = match read_checksummed::<Checkpoint>(&dir.checkpoint()) {
        Ok(Some(c)) => (c.view, c.journal_offset),
        Ok(None) => (JobView::default(), 0),
        Err(e) => {
            tracing::warn!("ignoring the checkpoint and replaying the whole journal: {e}");
            (JobView::default(), 0)
        }
    };
    let apply =
        |v: &mut JobView, from: u64| replay::<Record>(&journal, from, |_, rec| v.apply(&rec));
    let end = match apply(&mut view, offset) {
        Ok(end) => end,
        Err(crate::state::error::StateError::BadOffset { .. }) => {
            // The checkpoint is ahead of the journal (journal restored or cut): trust the journal.
            view = JobView::default();
            apply(&mut view, 0)?
        }
        Err(e) => return Err(e.into()),
    };
    if repair && end.torn_tail.is_some() {
        truncate_torn_tail(&journal, end.valid_len)
            .context("repairing the journal's torn last record")?;
    }
    Ok(view)
}

/// A live job whose heartbeat is older than this is reported as `stale`.
pub const STALE_AFTER: std::time::Duration = std::time::Duration::from_secs(30);

/// The job's state for display: a live holder of the lock means running (or paused, or
/// stale when its heartbeat stopped); a free lock with an open run means it crashed.
pub fn display_state(dir: &JobDir, view: &JobView) -> JobState {
    if crate::state::lock::is_held(&dir.lock()) {
        let beat = crate::state::lock::read_info(&dir.lock()).and_then(|i| heartbeat_age(&i));
        if beat.is_some_and(|age| age > STALE_AFTER) {
            return JobState::Stale;
        }
        if view.paused().is_some() {
            return JobState::Paused;
        }
        return JobState::Running;
    }
    recorded_state(view)
}

/// How long ago the lock's holder last wrote its heartbeat.
pub fn heartbeat_age(info: &crate::state::lock::LockInfo) -> Option<std::time::Duration> {
    let t = humantime::parse_rfc3339_weak(&info.heartbeat_at).ok()?;
    std::time::SystemTime::now().duration_since(t).ok()
}

/// The state the journal leaves when no process holds the lock: an open run crashed.
pub fn recorded_state(view: &JobView) -> JobState {
    if view.run_open {
        return JobState::Interrupted;
    }
    view.last_state.unwrap_or(JobState::Interrupted)
}

/// Take the job lock or exit 3 naming the holder.
pub fn lock(dir: &JobDir, command: &str) -> anyhow::Result<JobLock> {
    match JobLock::acquire(&dir.lock(), command) {
        Ok(l) => Ok(l),
        Err(LockError::Held(info)) => Err(Exit {
            code: LOCKED,
            message: format!(
                "job {} is locked by pid {} on host {} since {} (`{}`); wait for it to finish or stop it",
                dir.id(),
                info.pid,
                info.host,
                info.started_at,
                info.command
            ),
        }
        .into()),
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
) -> anyhow::Result<Workflow> {
    let snapshot = read_snapshot(dir, meta)?;
    match workflow_file(meta) {
        WorkflowFile::Changed { bytes, fingerprint } => {
            if !force {
                return Err(usage(format!(
                    "the workflow file {} changed since job {} started; resume with --force to run the changed workflow, or restore the file",
                    meta.workflow_path.display(),
                    meta.job_id
                )));
            }
            let text = String::from_utf8_lossy(&bytes).into_owned();
            let workflow = load_str(&text, &meta.workflow_path, &meta.workflow_dir)?;
            // The job now runs the changed file: it becomes the job's snapshot.
            crate::state::atomic::write_atomic(&dir.workflow_snapshot(), text.as_bytes())?;
            meta.fingerprint = fingerprint;
            crate::state::atomic::write_checksummed(&dir.meta(), &*meta)?;
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
fn read_snapshot(dir: &JobDir, meta: &JobMeta) -> anyhow::Result<String> {
    let path = dir.workflow_snapshot();
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    if blake3::hash(text.as_bytes()).to_hex().as_str() != meta.fingerprint {
        return Err(crate::state::error::StateError::Corrupt {
            path,
            detail: "the workflow snapshot does not match the fingerprint in job.json".into(),
        }
        .into());
    }
    Ok(text)
}

/// The job's workflow as snapshotted at start (for `status`, `dlq retry`).
pub fn snapshot_workflow(dir: &JobDir, meta: &JobMeta) -> anyhow::Result<Workflow> {
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
    timeout: std::time::Duration,
    done: impl Fn(&JobView) -> bool,
) -> anyhow::Result<bool> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if done(&recover(dir, false)?) {
            return Ok(true);
        }
        if std::time::Instant::now() >= deadline {
            return Ok(false);
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
