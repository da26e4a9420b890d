//! `runner dlq list|show|retry|purge`

use std::collections::BTreeMap;
use std::io::Write;

use serde_json::json;

use crate::cli::args::{DlqCommand, Global, ReportArgs};
use crate::cli::exit::usage;
use crate::cli::job_open::{lock, open_job, read_meta, recover, snapshot_workflow};
use crate::cli::session::{Session, run_session};
use crate::engine::phases::RunKind;
use crate::state::dlq::{self, DlqEntry};
use crate::state::items_file;
use crate::state::journal::JournalWriter;
use crate::state::layout::StateDir;
use crate::state::records::{ItemStatus, Record};

pub fn dlq(g: &Global, c: &DlqCommand) -> anyhow::Result<i32> {
    let state = StateDir::new(&g.state_dir);
    match c {
        DlqCommand::List { job, json } => list(&state, job, *json),
        DlqCommand::Show { job, item } => show(&state, job, item),
        DlqCommand::Retry {
            job,
            items,
            max_parallel,
            executor,
            interrupt,
            report,
        } => retry(
            g,
            &state,
            job,
            items,
            max_parallel.map(|n| n as usize),
            executor.map(Into::into),
            interrupt.kill_grace,
            report,
        ),
        DlqCommand::Purge { job, items } => purge(&state, job, items),
    }
}

fn entry_json(e: &DlqEntry) -> serde_json::Value {
    let last = e.last_error();
    json!({
        "item_id": e.item_id,
        "attempts": e.attempts.last().map(|a| a.attempt).unwrap_or(0),
        "failure_class": last.map(|f| f.class()),
        "last_error": last,
        "message": last.map(|f| f.to_string()),
        "exit_code": last.and_then(|f| f.exit_code()),
        "stderr_tail": e.attempts.last().map(|a| a.stderr_tail.as_str()).unwrap_or(""),
        "first_failure_at": e.first_failure_at,
        "last_failure_at": e.last_failure_at,
    })
}

fn list(state: &StateDir, job: &str, json_out: bool) -> anyhow::Result<i32> {
    let dir = open_job(state, job)?;
    let entries = dlq::load(&dir.dlq())?;
    let mut out = std::io::stdout().lock();
    if json_out {
        let docs: Vec<_> = entries.iter().map(entry_json).collect();
        let _ = writeln!(out, "{}", serde_json::to_string_pretty(&docs)?);
        return Ok(0);
    }
    if entries.is_empty() {
        crate::cli::out::errln!("runner: the DLQ of job {job} is empty");
        return Ok(0);
    }
    let mut classes: BTreeMap<String, usize> = BTreeMap::new();
    for e in &entries {
        let class = match e.last_error() {
            Some(f) => match f.exit_code() {
                Some(c) => format!("exit {c}"),
                None => f.class().to_owned(),
            },
            None => "unknown".into(),
        };
        *classes.entry(class).or_default() += 1;
    }
    let summary: Vec<String> = classes.iter().map(|(k, v)| format!("{v} x {k}")).collect();
    let _ = writeln!(
        out,
        "{} item(s) in the DLQ of job {job}: {}",
        entries.len(),
        summary.join(", ")
    );
    for e in &entries {
        let v = entry_json(e);
        let tail = e
            .attempts
            .last()
            .and_then(|a| a.stderr_tail.lines().last())
            .unwrap_or("");
        if writeln!(
            out,
            "{}  attempts={}  {}  last={}{}",
            e.item_id,
            v["attempts"],
            v["message"].as_str().unwrap_or("?"),
            e.last_failure_at,
            if tail.is_empty() {
                String::new()
            } else {
                format!("\n    stderr: {tail}")
            }
        )
        .is_err()
        {
            break;
        }
    }
    Ok(0)
}

fn show(state: &StateDir, job: &str, item: &str) -> anyhow::Result<i32> {
    let dir = open_job(state, job)?;
    let entries = dlq::load(&dir.dlq())?;
    let Some(e) = entries.iter().find(|e| e.item_id == item) else {
        return Err(usage(format!(
            "item {item:?} is not in the DLQ of job {job} (see `runner dlq list {job}`)"
        )));
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "item:      {}", e.item_id);
    let _ = writeln!(out, "value:     {}", e.item);
    let _ = writeln!(
        out,
        "failures:  first {}, last {}",
        e.first_failure_at, e.last_failure_at
    );
    for a in &e.attempts {
        let what = a
            .failure
            .as_ref()
            .map(|f| f.to_string())
            .unwrap_or_else(|| "succeeded".into());
        let _ = writeln!(
            out,
            "attempt {}: {} ({} ms, started {})",
            a.attempt, what, a.duration_ms, a.started_at
        );
        for l in a.stderr_tail.lines() {
            let _ = writeln!(out, "    | {l}");
        }
    }
    Ok(0)
}

fn check_known(entries: &[DlqEntry], wanted: &[String], job: &str) -> anyhow::Result<()> {
    for w in wanted {
        if !entries.iter().any(|e| &e.item_id == w) {
            return Err(usage(format!(
                "item {w:?} is not in the DLQ of job {job} (see `runner dlq list {job}`)"
            )));
        }
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)] // TODO(merge): take the retry args struct
fn retry(
    g: &Global,
    state: &StateDir,
    job: &str,
    items: &[String],
    max_parallel: Option<usize>,
    executor: Option<crate::workflow::model::ExecutorKind>,
    kill_grace: std::time::Duration,
    report: &ReportArgs,
) -> anyhow::Result<i32> {
    let dir = open_job(state, job)?;
    let meta = read_meta(&dir)?;
    let lock = lock(&dir, "dlq retry")?;
    let view = recover(&dir, true)?;
    check_known(&dlq::load(&dir.dlq())?, items, job)?;
    if view.counts.dlq == 0 {
        let _ = lock.release();
        crate::cli::out::errln!("runner: the DLQ of job {job} is empty; nothing to retry");
        return Ok(0);
    }
    let mut workflow = snapshot_workflow(&dir, &meta)?;
    workflow.executor =
        crate::engine::slurm::choose_executor(dir.path(), workflow.executor, executor)?;
    run_session(
        g,
        report,
        Session {
            dir,
            meta: &meta,
            workflow: &workflow,
            view,
            kind: RunKind::DlqRetry {
                items: items.to_vec(),
            },
            preselected: None,
            max_parallel,
            lock,
            warnings: Vec::new(),
            kill_grace,
        },
    )
}

fn purge(state: &StateDir, job: &str, items: &[String]) -> anyhow::Result<i32> {
    let dir = open_job(state, job)?;
    let lock = lock(&dir, "dlq purge")?;
    let view = recover(&dir, true)?;
    let entries = dlq::load(&dir.dlq())?;
    check_known(&entries, items, job)?;
    let ids: Vec<String> = if items.is_empty() {
        entries.iter().map(|e| e.item_id.clone()).collect()
    } else {
        items.to_vec()
    };
    if view.map_started {
        let all = items_file::read(&dir.items())?;
        let journal = JournalWriter::<Record>::open(&dir.journal())?;
        for (idx, it) in all.iter().enumerate() {
            if ids.contains(&it.id)
                && view
                    .items
                    .get(idx)
                    .is_some_and(|s| s.status == ItemStatus::Dlq)
            {
                journal.append(Record::ItemReset {
                    idx,
                    status: ItemStatus::Purged,
                })?;
            }
        }
        journal.close()?;
    }
    let removed = dlq::remove(&dir.dlq(), &ids)?;
    lock.release()?;
    crate::cli::out::errln!(
        "runner: removed {removed} item(s) from the DLQ of job {job}; they will not be run again"
    );
    Ok(0)
}
