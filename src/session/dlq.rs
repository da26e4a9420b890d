//! `runner dlq list|show|retry|purge`: a job's dead-letter queue, counted by the journal
//! (an entry counts only while its item is in the `dlq` state), filtered, retried under the
//! job lock, or purged through the job's [`Recorder`].

use std::collections::{HashMap, HashSet};
use std::time::SystemTime;

use serde::Serialize;

use crate::engine::phases::RunKind;
use crate::engine::recorder::Recorder;
use crate::report::reporter::Fanout;
use crate::session::error::SessionError;
use crate::session::open::{lock, open_job, read_meta, snapshot_workflow};
use crate::session::runtime::OpenRun;
use crate::state::dlq::{self, DlqEntry};
use crate::state::dlq_select::{Counted, DlqFilter, by_journal};
use crate::state::executor::choose_executor;
use crate::state::items_file::ItemStore;
use crate::state::job::JobView;
use crate::state::layout::{JobDir, StateDir};
use crate::state::records::{Failure, ItemStatus};
use crate::state::recover::recover;
use crate::state::time::Timestamp;
use crate::workflow::model::ExecutorKind;

/// One entry as `dlq list --json` prints it (field names are documented in docs/cli.md).
#[derive(Debug, Clone, Serialize)]
pub struct EntryDoc<'a> {
    pub item_id: &'a str,
    /// The last attempt's number (attempts of earlier runs count).
    pub attempts: u32,
    pub failure_class: Option<&'static str>,
    pub last_error: Option<&'a Failure>,
    pub message: Option<String>,
    pub exit_code: Option<i32>,
    pub stderr_tail: &'a str,
    pub first_failure_at: Timestamp,
    pub last_failure_at: Timestamp,
}

impl<'a> EntryDoc<'a> {
    pub fn of(e: &'a DlqEntry) -> Self {
        let last = e.last_error();
        EntryDoc {
            item_id: &e.item_id,
            attempts: e.attempts.last().map(|a| a.attempt).unwrap_or(0),
            failure_class: last.map(Failure::class),
            last_error: last,
            message: last.map(|f| f.to_string()),
            exit_code: last.and_then(Failure::exit_code),
            stderr_tail: e
                .attempts
                .last()
                .map(|a| a.stderr_tail.as_str())
                .unwrap_or(""),
            first_failure_at: e.first_failure_at,
            last_failure_at: e.last_failure_at,
        }
    }
}

/// The entries of `dlq.jsonl` split by the journal's view of their items.
fn counted(dir: &JobDir, view: &JobView) -> Result<Counted, SessionError> {
    let entries = dlq::load(&dir.dlq())?;
    let index = item_index(dir, view, entries.iter().map(|e| e.item_id.as_str()))?;
    Ok(by_journal(entries, &index, view))
}

/// The indexes of the items with these ids (one pass over the frozen items).
fn item_index<'a>(
    dir: &JobDir,
    view: &JobView,
    ids: impl Iterator<Item = &'a str>,
) -> Result<HashMap<String, usize>, SessionError> {
    let ids: HashSet<&str> = ids.collect();
    if !view.map_started || ids.is_empty() {
        return Ok(HashMap::new());
    }
    Ok(ItemStore::open(&dir.items(), None, None)?.find_ids(&ids)?)
}

/// What `dlq list` shows.
pub struct Listing {
    /// Entries counted as the DLQ (before the filter).
    pub in_dlq: usize,
    /// Counted entries that match the filter.
    pub entries: Vec<DlqEntry>,
    /// Entries of `dlq.jsonl` that do not count, with their item's state.
    pub stray: Vec<(DlqEntry, Option<ItemStatus>)>,
}

pub fn list(state: &StateDir, job: &str, filter: &DlqFilter) -> Result<Listing, SessionError> {
    let dir = open_job(state, job)?;
    let counted = counted(&dir, &recover(&dir, false)?)?;
    Ok(Listing {
        in_dlq: counted.in_dlq.len(),
        entries: filter.select(counted.in_dlq, SystemTime::now()),
        stray: counted.stray,
    })
}

/// One entry of `dlq.jsonl`, with every attempt.
pub fn show(state: &StateDir, job: &str, item: &str) -> Result<DlqEntry, SessionError> {
    let dir = open_job(state, job)?;
    dlq::load(&dir.dlq())?
        .into_iter()
        .find(|e| e.item_id == item)
        .ok_or_else(|| not_in_dlq(item, job))
}

fn not_in_dlq(item: &str, job: &str) -> SessionError {
    SessionError::Usage(format!(
        "item {item:?} is not in the DLQ of job {job} (see `runner dlq list {job}`)"
    ))
}

fn check_known(entries: &[DlqEntry], wanted: &[String], job: &str) -> Result<(), SessionError> {
    match wanted
        .iter()
        .find(|w| !entries.iter().any(|e| &e.item_id == *w))
    {
        Some(w) => Err(not_in_dlq(w, job)),
        None => Ok(()),
    }
}

/// What `dlq retry` asks for: the named items (all when none) that also match the filter.
pub struct RetryRequest {
    pub job: String,
    pub items: Vec<String>,
    pub filter: DlqFilter,
    pub executor: Option<ExecutorKind>,
}

/// What a `dlq retry` found to do.
pub enum RetryStart {
    Run(Box<OpenRun>),
    /// The DLQ is empty.
    Empty,
    /// No entry matches the filter.
    NoMatch,
}

pub fn retry(state: &StateDir, req: RetryRequest) -> Result<RetryStart, SessionError> {
    let dir = open_job(state, &req.job)?;
    let meta = read_meta(&dir)?;
    let lock = lock(&dir, "dlq retry")?;
    let view = recover(&dir, true)?;
    let counted = counted(&dir, &view)?;
    check_known(&counted.in_dlq, &req.items, &req.job)?;
    if view.counts.dlq == 0 {
        let _ = lock.release();
        return Ok(RetryStart::Empty);
    }
    let items = if req.filter.is_empty() {
        req.items
    } else {
        let ids: Vec<String> = req
            .filter
            .select(counted.in_dlq, SystemTime::now())
            .into_iter()
            .map(|e| e.item_id)
            .filter(|id| req.items.is_empty() || req.items.contains(id))
            .collect();
        if ids.is_empty() {
            let _ = lock.release();
            return Ok(RetryStart::NoMatch);
        }
        ids
    };
    let mut workflow = snapshot_workflow(&dir, &meta)?;
    workflow.executor = choose_executor(dir.path(), workflow.executor, req.executor)?;
    Ok(RetryStart::Run(Box::new(OpenRun {
        dir,
        meta,
        workflow,
        view,
        lock,
        kind: RunKind::DlqRetry { items },
        preselected: None,
        warnings: Vec::new(),
    })))
}

/// Give up on DLQ items (all, or the named ones): the journal marks them `purged` and their
/// entries leave `dlq.jsonl`. Returns how many items were purged.
pub fn purge(state: &StateDir, job: &str, items: &[String]) -> Result<usize, SessionError> {
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
    let idxs: Vec<usize> = item_index(&dir, &view, ids.iter().map(String::as_str))?
        .into_values()
        .filter(|idx| view.items.status(*idx) == ItemStatus::Dlq)
        .collect();
    // Entries of items already purged (a purge cut short by a crash) go too.
    let unfinished = counted
        .stray
        .iter()
        .filter(|(_, st)| *st == Some(ItemStatus::Purged))
        .map(|(e, _)| e.item_id.clone());
    let remove: Vec<String> = ids.iter().cloned().chain(unfinished).collect();
    let mut rec = Recorder::new(dir, view, Box::new(Fanout::default()))?;
    rec.purge(&idxs, &remove)?;
    drop(rec);
    lock.release()?;
    Ok(ids.len())
}
