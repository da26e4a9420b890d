//! `runner dlq list|show|retry|purge`

use std::collections::BTreeMap;
use std::io::Write;
use std::time::SystemTime;

use serde_json::json;

use crate::cli::args::{DlqCommand, DlqFilterArgs, Global, ReportArgs};
use crate::cli::exit::usage;
use crate::cli::job_open::{lock, open_job, read_meta, recover, snapshot_workflow};
use crate::cli::session::{Session, run_session};
use crate::engine::phases::RunKind;
use crate::state::dlq::{self, DlqEntry};
use crate::state::dlq_select::{Counted, DlqFilter, by_journal};
use crate::state::items_file;
use crate::state::job::JobView;
use crate::state::journal::JournalWriter;
use crate::state::layout::{JobDir, StateDir};
use crate::state::records::{ItemStatus, Record};

pub fn dlq(g: &Global, c: &DlqCommand) -> anyhow::Result<i32> {
    let state = StateDir::new(&g.state_dir);
    match c {
        DlqCommand::List { job, json, filter } => list(&state, job, *json, filter),
        DlqCommand::Show { job, item } => show(&state, job, item),
        DlqCommand::Retry {
            job,
            items,
            filter,
            max_parallel,
            executor,
            interrupt,
            report,
        } => retry(
            g,
            &state,
            job,
            Selection {
                items,
                filter: filter.into(),
            },
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

/// The entries of `dlq.jsonl` split by the journal's view of their items: only items in
/// the `dlq` state count (the number `status` shows).
fn counted(dir: &JobDir, view: &JobView) -> anyhow::Result<Counted> {
    let entries = dlq::load(&dir.dlq())?;
    let items = if view.map_started && !entries.is_empty() {
        items_file::read(&dir.items())?
    } else {
        Vec::new()
    };
    Ok(by_journal(entries, &items, view))
}

/// One stderr note per kind of entry that does not count.
fn note_stray(c: &Counted) {
    let mut by_state: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (e, st) in &c.stray {
        let what = match st {
            Some(ItemStatus::Pending) => "pending (`runner resume` runs them)",
            Some(ItemStatus::Purged) => "purged (they never run again)",
            Some(ItemStatus::Succeeded) => "succeeded",
            Some(ItemStatus::Failed) => "failed (skipped)",
            Some(ItemStatus::Dlq) | None => "not items of this job",
        };
        by_state.entry(what).or_default().push(&e.item_id);
    }
    for (what, ids) in by_state {
        let shown: Vec<&str> = ids.iter().take(5).copied().collect();
        crate::cli::out::errln!(
            "runner: note: not listed: {} entr{} of dlq.jsonl ({}{}) whose item is {what}",
            ids.len(),
            if ids.len() == 1 { "y" } else { "ies" },
            shown.join(", "),
            if ids.len() > shown.len() { ", ..." } else { "" }
        );
    }
}

fn list(state: &StateDir, job: &str, json_out: bool, f: &DlqFilterArgs) -> anyhow::Result<i32> {
    let dir = open_job(state, job)?;
    let counted = counted(&dir, &recover(&dir, false)?)?;
    note_stray(&counted);
    let in_dlq = counted.in_dlq.len();
    let filter = DlqFilter::from(f);
    let entries = filter.select(counted.in_dlq, SystemTime::now());
    let mut out = std::io::stdout().lock();
    if json_out {
        let docs: Vec<_> = entries.iter().map(entry_json).collect();
        let _ = writeln!(out, "{}", serde_json::to_string_pretty(&docs)?);
        return Ok(0);
    }
    if in_dlq == 0 {
        crate::cli::out::errln!("runner: the DLQ of job {job} is empty");
        return Ok(0);
    }
    if entries.is_empty() {
        crate::cli::out::errln!(
            "runner: none of the {in_dlq} item(s) in the DLQ of job {job} match the filter"
        );
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
    let matching = if filter.is_empty() {
        String::new()
    } else {
        format!("{} of ", entries.len())
    };
    let _ = writeln!(
        out,
        "{matching}{in_dlq} item(s) in the DLQ of job {job}{}: {}",
        if filter.is_empty() { "" } else { " match" },
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

/// Which DLQ items `dlq retry` takes: the named ones (`--item`, all when none) that also
/// match the filter (`--class`, `--since`).
struct Selection<'a> {
    items: &'a [String],
    filter: DlqFilter,
}

impl Selection<'_> {
    /// The item ids to retry (empty: all), or `None` when the filter matches nothing.
    fn resolve(&self, in_dlq: Vec<DlqEntry>) -> Option<Vec<String>> {
        if self.filter.is_empty() {
            return Some(self.items.to_vec());
        }
        let ids: Vec<String> = self
            .filter
            .select(in_dlq, SystemTime::now())
            .into_iter()
            .map(|e| e.item_id)
            .filter(|id| self.items.is_empty() || self.items.contains(id))
            .collect();
        (!ids.is_empty()).then_some(ids)
    }
}

#[allow(clippy::too_many_arguments)] // TODO(merge): take the retry args struct
fn retry(
    g: &Global,
    state: &StateDir,
    job: &str,
    sel: Selection<'_>,
    max_parallel: Option<usize>,
    executor: Option<crate::workflow::model::ExecutorKind>,
    kill_grace: std::time::Duration,
    report: &ReportArgs,
) -> anyhow::Result<i32> {
    let dir = open_job(state, job)?;
    let meta = read_meta(&dir)?;
    let lock = lock(&dir, "dlq retry")?;
    let view = recover(&dir, true)?;
    let counted = counted(&dir, &view)?;
    check_known(&counted.in_dlq, sel.items, job)?;
    if view.counts.dlq == 0 {
        let _ = lock.release();
        crate::cli::out::errln!("runner: the DLQ of job {job} is empty; nothing to retry");
        return Ok(0);
    }
    let Some(items) = sel.resolve(counted.in_dlq) else {
        let _ = lock.release();
        crate::cli::out::errln!(
            "runner: no item in the DLQ of job {job} matches the filter; nothing to retry"
        );
        return Ok(0);
    };
    let mut workflow = snapshot_workflow(&dir, &meta)?;
    workflow.executor =
        crate::state::executor::choose_executor(dir.path(), workflow.executor, executor)?;
    run_session(
        g,
        report,
        Session {
            dir,
            meta: &meta,
            workflow: &workflow,
            view,
            kind: RunKind::DlqRetry { items },
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
    let counted = counted(&dir, &view)?;
    check_known(&counted.in_dlq, items, job)?;
    let ids: Vec<String> = if items.is_empty() {
        counted.in_dlq.iter().map(|e| e.item_id.clone()).collect()
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
    // Entries of items already purged (a purge cut short by a crash) go too.
    let unfinished = counted
        .stray
        .iter()
        .filter(|(_, st)| *st == Some(ItemStatus::Purged))
        .map(|(e, _)| e.item_id.clone());
    let remove: Vec<String> = ids.iter().cloned().chain(unfinished).collect();
    dlq::remove(&dir.dlq(), &remove)?;
    lock.release()?;
    crate::cli::out::errln!(
        "runner: removed {} item(s) from the DLQ of job {job}; they will not be run again",
        ids.len()
    );
    Ok(0)
}
