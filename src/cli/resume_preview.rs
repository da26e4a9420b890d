//! `runner resume JOB --dry-run [--json]`: what a resume would do, from the job's files
//! alone. Read-only: it takes no lock (and creates no lock file), appends nothing to the
//! journal, repairs no torn tail, kills no process; it works while another process holds
//! the job.

use std::io::Write;

use serde::Serialize;

use crate::cli::args::{Global, ResumeArgs};
use crate::cli::job_open::{
    WorkflowFile, display_state, heartbeat_age, open_job, read_meta, recover, snapshot_workflow,
    workflow_file,
};
use crate::engine::map::order::{BySource, resume_plan};
use crate::state::items_file;
use crate::state::job::JobView;
use crate::state::layout::{JobDir, StateDir};
use crate::state::lock::{LockInfo, is_held, read_info};
use crate::state::records::{JobState, Phase};
use crate::workflow::load::load_str;

/// What a resume would do first (in the order `runner resume` checks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum Action {
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
struct Holder {
    pid: Option<u32>,
    host: Option<String>,
    command: Option<String>,
    started_at: Option<String>,
    heartbeat_at: Option<String>,
    heartbeat_age_s: Option<f64>,
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
struct Leftover {
    pgid: i32,
    phase: Phase,
    /// Item index (map) or step index (setup/reduce), 0-based.
    index: usize,
    item_id: Option<String>,
    alive: bool,
}

/// The `resume --dry-run --json` document (fields documented in docs/cli.md).
#[derive(Debug, Serialize)]
struct Preview {
    job_id: String,
    state: JobState,
    action: Action,
    pending_only: bool,
    items_selected: bool,
    would_run: Option<BySource>,
    setup_steps: usize,
    reduce_steps: usize,
    workflow_changed: bool,
    workflow_missing: bool,
    force_required: bool,
    lock_holder: Option<Holder>,
    leftover_process_groups: Vec<Leftover>,
}

pub fn preview(g: &Global, a: &ResumeArgs) -> anyhow::Result<i32> {
    let state = StateDir::new(&g.state_dir);
    let dir = open_job(&state, &a.job)?;
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
        WorkflowFile::Changed { bytes, .. } if a.force => load_str(
            &String::from_utf8_lossy(&bytes),
            &meta.workflow_path,
            &meta.workflow_dir,
        )?,
        _ => snapshot_workflow(&dir, &meta)?,
    };
    let plan = resume_plan(
        &view,
        a.pending_only,
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
    } else if changed && !a.force {
        Action::NeedsForce
    } else {
        Action::Run
    };
    let p = Preview {
        job_id: meta.job_id.clone(),
        state: display_state(&dir, &view),
        action,
        pending_only: a.pending_only,
        items_selected: view.map_started,
        would_run: plan.items,
        setup_steps: plan.setup_steps,
        reduce_steps: plan.reduce_steps,
        workflow_changed: changed,
        workflow_missing: missing,
        force_required: changed && !a.force,
        lock_holder: held.then(|| Holder::from_info(read_info(&dir.lock()))),
        // A live holder's groups are its own; only a crashed run leaves groups behind.
        leftover_process_groups: if held {
            Vec::new()
        } else {
            leftovers(&dir, &view)
        },
    };
    let mut out = std::io::stdout().lock();
    if a.report.json {
        let _ = writeln!(out, "{}", serde_json::to_string_pretty(&p)?);
    } else {
        for l in human(&p) {
            if writeln!(out, "{l}").is_err() {
                break;
            }
        }
        crate::cli::out::errln!("runner: dry run: nothing was run or written");
    }
    Ok(0)
}

/// The process groups the journal records as running, and whether each still runs.
fn leftovers(dir: &JobDir, view: &JobView) -> Vec<Leftover> {
    let items = if view.live_groups.iter().any(|g| g.phase == Phase::Map) {
        items_file::read(&dir.items()).unwrap_or_default()
    } else {
        Vec::new()
    };
    view.live_groups
        .iter()
        .map(|g| Leftover {
            pgid: g.pgid,
            phase: g.phase,
            index: g.idx,
            item_id: (g.phase == Phase::Map)
                .then(|| items.get(g.idx).map(|it| it.id.clone()))
                .flatten(),
            alive: crate::engine::process::orphans::still_running(g),
        })
        .collect()
}

fn steps(n: usize, phase: &str) -> String {
    format!("{n} {phase} step{}", if n == 1 { "" } else { "s" })
}

/// The serialized name of an enum value (`interrupted`, `map`).
fn name(v: impl Serialize) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn human(p: &Preview) -> Vec<String> {
    let state = name(p.state);
    let holder = p.lock_holder.as_ref().map(|h| {
        let or = |v: &Option<String>| v.clone().unwrap_or_else(|| "?".into());
        format!(
            "held by pid {} on {} (`{}`) since {}, heartbeat {}",
            h.pid.map_or("?".into(), |p| p.to_string()),
            or(&h.host),
            or(&h.command),
            or(&h.started_at),
            h.heartbeat_age_s
                .map_or("unknown".into(), |a| format!("{a:.1}s ago"))
        )
    });
    let verdict = match p.action {
        Action::Unpause => "un-pause the live job (its process dispatches items again)".into(),
        Action::Locked => "exit 3: another process holds the job (wait for it or stop it)".into(),
        Action::NothingToDo => "nothing: the job is completed".into(),
        Action::NeedsForce => {
            "refuse (exit 2): the workflow file changed; --force runs the changed file".into()
        }
        Action::Run => "run the job as below".to_string(),
    };
    let items = match &p.would_run {
        None => "not selected yet: the map runs every item selected after setup".into(),
        Some(w) => format!(
            "{} would run: {} pending, {} failed, {} from the DLQ{}",
            w.total,
            w.pending,
            w.failed,
            w.dlq,
            if p.pending_only {
                " (--pending-only)"
            } else {
                ""
            }
        ),
    };
    let workflow = if p.workflow_changed && p.force_required {
        "changed since the job started: resume needs --force"
    } else if p.workflow_changed {
        "changed since the job started: --force runs the changed file"
    } else if p.workflow_missing {
        "gone: the copy saved when the job started runs"
    } else {
        "unchanged"
    };
    let alive: Vec<String> = p
        .leftover_process_groups
        .iter()
        .filter(|g| g.alive)
        .map(|g| match &g.item_id {
            Some(id) => format!("pgid {} (item {id})", g.pgid),
            None => format!("pgid {} ({} step {})", g.pgid, name(g.phase), g.index + 1),
        })
        .collect();
    let recorded = p.leftover_process_groups.len();
    let left = if recorded == 0 {
        "none".to_string()
    } else if alive.is_empty() {
        format!("{recorded} recorded by a crashed run, none still running")
    } else {
        format!(
            "{recorded} recorded by a crashed run, {} still running: {}; resume kills them first",
            alive.len(),
            alive.join(", ")
        )
    };
    vec![
        format!("job:        {} ({state})", p.job_id),
        format!("resume:     would {verdict}"),
        format!("items:      {items}"),
        format!(
            "steps:      {}, then {} once no item is pending",
            steps(p.setup_steps, "setup"),
            steps(p.reduce_steps, "reduce")
        ),
        format!("workflow:   {workflow}"),
        format!("lock:       {}", holder.unwrap_or_else(|| "free".into())),
        format!("leftovers:  {left}"),
    ]
}
