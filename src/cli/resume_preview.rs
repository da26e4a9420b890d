//! `runner resume JOB --dry-run [--json]`: prints what a resume would do (see
//! [`crate::session::preview`]).

use std::io::Write;

use serde::Serialize;

use crate::cli::args::{Global, ResumeArgs};
use crate::session::preview::{Action, Preview, preview as plan};
use crate::state::layout::StateDir;

pub fn preview(g: &Global, a: &ResumeArgs) -> anyhow::Result<i32> {
    let state = StateDir::new(&g.state_dir);
    let p = plan(&state, &a.job, a.pending_only, a.force)?;
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
