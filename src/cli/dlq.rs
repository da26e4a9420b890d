//! `runner dlq list|show|retry|purge`

use std::collections::BTreeMap;
use std::io::Write;

use crate::cli::args::{DlqCommand, DlqFilterArgs, Global};
use crate::cli::reporting::{run as run_reported, run_options};
use crate::session::dlq::{EntryDoc, RetryRequest, RetryStart, list, purge, retry, show};
use crate::state::dlq::DlqEntry;
use crate::state::dlq_select::DlqFilter;
use crate::state::layout::StateDir;
use crate::state::records::ItemStatus;

pub fn dlq(g: &Global, c: &DlqCommand) -> anyhow::Result<i32> {
    let state = StateDir::new(&g.state_dir);
    match c {
        DlqCommand::List { job, json, filter } => print_list(&state, job, *json, filter),
        DlqCommand::Show { job, item } => print_entry(&show(&state, job, item)?),
        DlqCommand::Retry {
            job,
            items,
            filter,
            max_parallel,
            executor,
            interrupt,
            report,
        } => {
            let start = retry(
                &state,
                RetryRequest {
                    job: job.clone(),
                    items: items.clone(),
                    filter: filter.into(),
                    executor: executor.map(Into::into),
                },
            )?;
            match start {
                RetryStart::Run(open) => run_reported(
                    g,
                    report,
                    *open,
                    run_options(g, *max_parallel, interrupt.kill_grace),
                ),
                RetryStart::Empty => {
                    crate::cli::out::errln!(
                        "runner: the DLQ of job {job} is empty; nothing to retry"
                    );
                    Ok(0)
                }
                RetryStart::NoMatch => {
                    crate::cli::out::errln!(
                        "runner: no item in the DLQ of job {job} matches the filter; nothing to retry"
                    );
                    Ok(0)
                }
            }
        }
        DlqCommand::Purge { job, items } => {
            let n = purge(&state, job, items)?;
            crate::cli::out::errln!(
                "runner: removed {n} item(s) from the DLQ of job {job}; they will not be run again"
            );
            Ok(0)
        }
    }
}

/// One stderr note per kind of `dlq.jsonl` entry that does not count.
fn note_stray(stray: &[(DlqEntry, Option<ItemStatus>)]) {
    let mut by_state: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (e, st) in stray {
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

fn print_list(
    state: &StateDir,
    job: &str,
    json_out: bool,
    f: &DlqFilterArgs,
) -> anyhow::Result<i32> {
    let filter = DlqFilter::from(f);
    let listing = list(state, job, &filter)?;
    note_stray(&listing.stray);
    let entries = &listing.entries;
    let in_dlq = listing.in_dlq;
    let mut out = std::io::stdout().lock();
    if json_out {
        let docs: Vec<EntryDoc<'_>> = entries.iter().map(EntryDoc::of).collect();
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
    for e in entries {
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
    for e in entries {
        let doc = EntryDoc::of(e);
        let tail = e
            .attempts
            .last()
            .and_then(|a| a.stderr_tail.lines().last())
            .unwrap_or("");
        if writeln!(
            out,
            "{}  attempts={}  {}  last={}{}",
            e.item_id,
            doc.attempts,
            doc.message.as_deref().unwrap_or("?"),
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

fn print_entry(e: &DlqEntry) -> anyhow::Result<i32> {
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
