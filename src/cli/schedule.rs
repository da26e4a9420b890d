//! `runner schedule FILE`, `runner schedule list FILE [--json]`, `runner schedule run-due FILE`.

use std::path::Path;

use crate::cli::args::{Global, NowArg, ScheduleArgs, ScheduleCommand};
use crate::cli::exit::usage;
use crate::cli::out::{errln, line};
use crate::schedule::clock::clock;
use crate::schedule::load::load_schedules_file;
use crate::schedule::service::{ScheduleEvent, run_due, serve};

fn now_of(a: &NowArg) -> anyhow::Result<Option<jiff::Timestamp>> {
    a.now
        .as_deref()
        .map(|t| {
            t.parse::<jiff::Timestamp>()
                .map_err(|e| usage(format!("--now {t:?}: {e}")))
        })
        .transpose()
}

fn root(g: &Global) -> anyhow::Result<std::path::PathBuf> {
    Ok(if g.state_dir.is_absolute() {
        g.state_dir.clone()
    } else {
        std::env::current_dir()?.join(&g.state_dir)
    })
}

pub fn schedule(g: &Global, a: &ScheduleArgs) -> anyhow::Result<i32> {
    match (&a.command, &a.file) {
        (Some(ScheduleCommand::List { file, json, now }), _) => list(g, file, *json, now),
        (Some(ScheduleCommand::RunDue { file, now }), _) => due(g, file, now),
        (None, Some(file)) => service(g, file, &a.now),
        (None, None) => Err(usage("runner schedule: give a schedules file")),
    }
}

fn say(ev: &ScheduleEvent) {
    let text = match ev {
        ScheduleEvent::Started { schedules } => {
            format!("runner: schedule service started with {schedules} schedule(s)")
        }
        ScheduleEvent::Fired {
            schedule,
            nominal,
            job_id,
            coalesced,
        } => format!(
            "runner: schedule {schedule}: started {job_id} for {nominal}{}",
            if *coalesced > 0 {
                format!(" ({coalesced} earlier fire(s) coalesced into it)")
            } else {
                String::new()
            }
        ),
        ScheduleEvent::Missed {
            schedule,
            first,
            last,
            count,
        } => format!(
            "warning: schedule {schedule}: missed {count} fire(s) from {first} to {last} (later than misfire_grace)"
        ),
        ScheduleEvent::Skipped {
            schedule,
            nominal,
            reason,
        } => format!("warning: schedule {schedule}: skipped the fire of {nominal}: {reason}"),
        ScheduleEvent::RunEnded {
            schedule,
            job_id,
            exit_code,
        } => format!(
            "runner: schedule {schedule}: {job_id} ended (exit {})",
            exit_code.map_or("?".to_owned(), |c| c.to_string())
        ),
        ScheduleEvent::Next { schedule, at } => {
            format!("runner: schedule {schedule}: next fire at {at}")
        }
        ScheduleEvent::Stopping { signal } => {
            format!("runner: {signal}: schedule service stopping; the runs it started go on")
        }
    };
    errln!("{text}");
}

fn command_line(what: &str, file: &Path) -> String {
    format!("runner schedule {what}{}", file.display())
}

fn service(g: &Global, file: &Path, now: &NowArg) -> anyhow::Result<i32> {
    let schedules = load_schedules_file(file)?;
    let clock = clock(now_of(now)?);
    serve(
        &root(g)?,
        &command_line("", file),
        &schedules,
        clock.as_ref(),
        &mut say,
    )?;
    Ok(0)
}

fn due(g: &Global, file: &Path, now: &NowArg) -> anyhow::Result<i32> {
    let schedules = load_schedules_file(file)?;
    let clock = clock(now_of(now)?);
    let out = run_due(
        &root(g)?,
        &command_line("run-due ", file),
        &schedules,
        clock.as_ref(),
        &mut say,
    )?;
    if out.started == 0 {
        errln!("runner: nothing was due");
    }
    Ok(if out.failed > 0 { 1 } else { 0 })
}

fn list(g: &Global, file: &Path, json: bool, now: &NowArg) -> anyhow::Result<i32> {
    let schedules = load_schedules_file(file)?;
    let now = clock(now_of(now)?).now();
    let rows = crate::schedule::list::list(&root(g)?, &schedules, now)?;
    if json {
        line(&serde_json::to_string_pretty(&rows)?);
        return Ok(0);
    }
    for r in &rows {
        let last = match &r.last {
            Some(l) => format!(
                "{} ({})",
                l.job_id,
                r.last_state
                    .map(crate::session::live::state_name)
                    .unwrap_or("gone")
            ),
            None => "-".into(),
        };
        let lines = [
            format!("{}: {}", r.name, r.trigger),
            format!("  runs:    {}", r.run.display()),
            format!("  next:    {}", r.next.join(", ")),
            format!("  last:    {last}"),
            format!(
                "  fired {}, missed {}, skipped {}",
                r.fired, r.missed, r.skipped
            ),
        ];
        for l in lines {
            if !line(&l) {
                return Ok(0);
            }
        }
    }
    Ok(0)
}
