//! `runner resume JOB --dry-run`: what a resume would do, from the job's files alone.
//! Read-only: it takes no lock (and creates no lock file), appends nothing to the journal,
//! repairs no torn tail, kills no process; it works while another process holds the job.

use serde::Serialize;

use crate::engine::map::order::{BySource, resume_plan};
use crate::session::error::SessionError;
use crate::session::open::{WorkflowFile, open_job, read_meta, snapshot_workflow, workflow_file};
use crate::state::items_file::ItemStore;
use crate::state::job::JobView;
use crate::state::layout::{JobDir, StateDir};
use crate::state::lock::{LockInfo, is_held, read_info};
use crate::state::records::{JobState, Phase};
use crate::state::recover::{display_state, heartbeat_age, recover};
use crate::workflow::load::load_str;

/// What a resume would do first (in the order `runner resume` checks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// A live process holds the job and it is paused: resume un-pauses it (exit 0).
    Unpause,
    /// Another live process holds the job: resume exits 3.
    Locked,
    /// The job is completed: resume says so and exits 0.
    NothingToDo,
    /// The workflow file changed: resume refuses without `--force` (exit 2).
    NeedsForce,
    /// Resume runs the job.
    Run,
}

#[derive(Debug, Serialize)]
pub struct Holder {
    pub pid: Option<u32>,
    pub host: Option<String>,
    pub command: Option<String>,
    pub started_at: Option<String>,
    pub heartbeat_at: Option<String>,
    pub heartbeat_age_s: Option<f64>,
}

impl Holder {
    fn from_info(info: Option<LockInfo>) -> Self {
        let age = info.as_ref().and_then(heartbeat_age);
        Holder {
            pid: info.as_ref().map(|i| i.pid),
            host: info.as_ref().map(|i| i.host.clone()),
            command: info.as_ref().map(|i| i.command.clone()),
            started_at: info.as_ref().map(|i| i.started_at.clone()),
            heartbeat_at: info.map(|i| i.heartbeat_at),
            heartbeat_age_s: age.map(|d| (d.as_secs_f64() * 10.0).round() / 10.0),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Leftover {
    pub pgid: i32,
    pub phase: Phase,
    /// Item index (map) or step index (setup/reduce), 0-based.
    pub index: usize,
    pub item_id: Option<String>,
    pub alive: bool,
}

/// The `resume --dry-run --json` document (fields documented in docs/cli.md).
#[derive(Debug, Serialize)]
pub struct Preview {
    pub job_id: String,
    pub state: JobState,
    pub action: Action,
    pub pending_only: bool,
    pub items_selected: bool,
    pub would_run: Option<BySource>,
    pub setup_steps: usize,
    pub reduce_steps: usize,
    pub workflow_changed: bool,
    pub workflow_missing: bool,
    pub force_required: bool,
    pub lock_holder: Option<Holder>,
    pub leftover_process_groups: Vec<Leftover>,
}

/// What `runner resume JOB [--pending-only] [--force]` would do, from the job's files alone.
pub fn preview(
    state: &StateDir,
    job: &str,
    pending_only: bool,
    force: bool,
) -> Result<Preview, SessionError> {
    let dir = open_job(state, job)?;
    let meta = read_meta(&dir)?;
    let view = recover(&dir, false)?;
    let held = is_held(&dir.lock());
    let file = workflow_file(&meta);
    let (changed, missing) = match &file {
        WorkflowFile::Unchanged => (false, false),
        WorkflowFile::Changed { .. } => (true, false),
        WorkflowFile::Gone => (false, true),
    };
    let workflow = match file {
        WorkflowFile::Changed { bytes, .. } if force => load_str(
            &String::from_utf8_lossy(&bytes),
            &meta.workflow_path,
            &meta.workflow_dir,
        )?,
        _ => snapshot_workflow(&dir, &meta)?,
    };
    let plan = resume_plan(
        &view,
        pending_only,
        workflow.setup.len(),
        workflow.reduce.len(),
    );
    let completed = !view.run_open && view.last_state == Some(JobState::Completed);
    let action = if held && view.paused().is_some() {
        Action::Unpause
    } else if held {
        Action::Locked
    } else if completed {
        Action::NothingToDo
    } else if changed && !force {
        Action::NeedsForce
    } else {
        Action::Run
    };
    let p = Preview {
        job_id: meta.job_id.clone(),
        state: display_state(&dir, &view),
        action,
        pending_only,
        items_selected: view.map_started,
        would_run: plan.items,
        setup_steps: plan.setup_steps,
        reduce_steps: plan.reduce_steps,
        workflow_changed: changed,
        workflow_missing: missing,
        force_required: changed && !force,
        lock_holder: held.then(|| Holder::from_info(read_info(&dir.lock()))),
        // A live holder's groups are its own; only a crashed run leaves groups behind.
        leftover_process_groups: if held {
            Vec::new()
        } else {
            leftovers(&dir, &view)
        },
    };
    Ok(p)
}

/// The process groups the journal records as running, and whether each still runs.
fn leftovers(dir: &JobDir, view: &JobView) -> Vec<Leftover> {
    let items = if view.live_groups.iter().any(|g| g.phase == Phase::Map) {
        ItemStore::open(&dir.items(), None, None).ok()
    } else {
        None
    };
    view.live_groups
        .iter()
        .map(|g| Leftover {
            pgid: g.pgid,
            phase: g.phase,
            index: g.idx,
            item_id: (g.phase == Phase::Map)
                .then(|| {
                    items
                        .as_ref()
                        .and_then(|s| s.get(g.idx).ok())
                        .map(|it| it.id.clone())
                })
                .flatten(),
            alive: crate::engine::process::orphans::still_running(g),
        })
        .collect()
}
