//! The coordinator's map backend: attempts become queue rows that workers claim; their
//! outcomes, lost leases and take-backs come back as [`BackendEvent`]s. All database work
//! happens in one task that owns the connection (so the dispatcher's `next` is a channel
//! read, safe to cancel), reconnects with backoff when the server goes away, and applies
//! the dispatcher's requests in order, retrying them after a reconnect (each is idempotent).

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::Map;
use tokio::sync::{mpsc, oneshot};

use crate::engine::error::EngineError;
use crate::engine::map::backend::{AttemptEnd, AttemptRun, BackendEvent, MapBackend};
use crate::engine::map::work::Candidates;

/// A queued item, as adoption compares it with the rows an earlier run left.
struct Queued {
    idx: usize,
    prior_attempts: u32,
}
use crate::engine::postgres::client::{self, Conn};
use crate::engine::postgres::error::PgError;
use crate::engine::postgres::lease::{Backoff, sleep_until};
use crate::engine::postgres::queue::{self, Enqueue, QueueState};
use crate::engine::postgres::tail;
use crate::engine::postgres::url::PgUrl;
use crate::state::records::{Attempt, Failure};

/// Outcomes taken per statement.
const COLLECT_BATCH: usize = 500;
/// With no `max_parallel` window nothing waits for the coordinator, so it lets outcomes
/// gather this long after a notification and takes them in one statement (measured: about
/// a third of the server's CPU per item went to taking outcomes one by one).
const COLLECT_DELAY: Duration = Duration::from_millis(10);

/// Where and how the coordinator of one job works.
#[derive(Debug, Clone)]
pub struct CoordinatorCfg {
    pub url: PgUrl,
    /// The job's row id.
    pub job: i64,
    /// `logs/items` of the job.
    pub items_dir: PathBuf,
    /// How often expired leases are looked for (and outcomes, should a notification be lost).
    pub poll: Duration,
    /// Attempts queued or running at once (`max_parallel`, or unbounded).
    pub window: usize,
}

enum Cmd {
    Enqueue(Vec<Enqueue>),
    Adopt(
        Vec<Queued>,
        oneshot::Sender<Result<Vec<(usize, u32)>, PgError>>,
    ),
    StopStarting,
    Cancel,
    Pause(bool),
    /// The run is over: drop the job's rows (and the job when `forget`).
    Close(bool, oneshot::Sender<Result<(), PgError>>),
}

type Event = Result<BackendEvent, EngineError>;

/// Tells the coordinator about pauses (they reach the workers as the job's state).
#[derive(Clone)]
pub struct Pauser(mpsc::UnboundedSender<Cmd>);

impl Pauser {
    pub fn pause(&self, paused: bool) {
        let _ = self.0.send(Cmd::Pause(paused));
    }
}

pub struct PostgresBackend {
    cmds: mpsc::UnboundedSender<Cmd>,
    events: mpsc::UnboundedReceiver<Event>,
    in_flight: usize,
    window: usize,
    /// The highest attempt queued (or adopted) per item in this run: a later attempt of
    /// the item is numbered above it, so no attempt number is queued twice.
    last: HashMap<usize, u32>,
    /// An error seen by `try_next`, returned by the next `next`.
    failed: Option<EngineError>,
    actor: tokio::task::JoinHandle<()>,
}

impl Drop for PostgresBackend {
    fn drop(&mut self) {
        self.actor.abort();
    }
}

impl PostgresBackend {
    /// Start the coordinator task on an open connection (listening on the job's channel).
    pub fn start(cfg: CoordinatorCfg, conn: Conn) -> Self {
        let (cmds, cmd_rx) = mpsc::unbounded_channel();
        let (ev_tx, events) = mpsc::unbounded_channel();
        let window = cfg.window.max(1);
        let actor = Actor {
            cfg,
            conn: Some(conn),
            cmds: cmd_rx,
            events: ev_tx,
            pending: VecDeque::new(),
            flight: HashMap::new(),
            halted: false,
            dirty: true,
            resync: false,
            down_since: None,
            backoff: Backoff::default(),
        };
        PostgresBackend {
            cmds,
            events,
            in_flight: 0,
            window,
            last: HashMap::new(),
            failed: None,
            actor: tokio::spawn(actor.run()),
        }
    }

    pub fn pauser(&self) -> Pauser {
        Pauser(self.cmds.clone())
    }

    /// Drop the job's rows once the run is over (waits at most `limit`).
    pub async fn close(&self, forget: bool, limit: Duration) -> Result<(), PgError> {
        let (tx, rx) = oneshot::channel();
        let _ = self.cmds.send(Cmd::Close(forget, tx));
        match tokio::time::timeout(limit, rx).await {
            Ok(Ok(r)) => r,
            _ => Err(PgError::Down(
                "PostgreSQL did not answer in time to drop the job's rows".into(),
            )),
        }
    }

    fn gone() -> EngineError {
        EngineError::Infra("the PostgreSQL coordinator stopped unexpectedly".into())
    }

    fn delivered(&mut self, ev: &BackendEvent) {
        if matches!(ev, BackendEvent::Ended(_) | BackendEvent::Returned { .. }) {
            self.in_flight = self.in_flight.saturating_sub(1);
        }
    }
}

impl MapBackend for PostgresBackend {
    fn free_slots(&self) -> usize {
        self.window.saturating_sub(self.in_flight)
    }

    fn in_flight(&self) -> usize {
        self.in_flight
    }

    async fn adopt(&mut self, candidates: &Candidates<'_>) -> Result<Vec<usize>, EngineError> {
        let queued = candidates
            .iter()
            .map(|idx| Queued {
                idx,
                prior_attempts: candidates.prior_attempts(idx),
            })
            .collect();
        let (tx, rx) = oneshot::channel();
        self.cmds
            .send(Cmd::Adopt(queued, tx))
            .map_err(|_| Self::gone())?;
        let adopted = rx.await.map_err(|_| Self::gone())??;
        self.in_flight += adopted.len();
        for (idx, attempt) in &adopted {
            self.last.insert(*idx, *attempt);
        }
        Ok(adopted.into_iter().map(|(idx, _)| idx).collect())
    }

    async fn submit(&mut self, batch: Vec<AttemptRun>) -> Result<(), EngineError> {
        let mut runs = Vec::with_capacity(batch.len());
        for run in batch {
            let before = self.last.get(&run.idx).copied();
            let attempt = attempt_number(before, run.attempt);
            self.last.insert(run.idx, attempt);
            runs.push(Enqueue {
                idx: run.idx,
                item: run.item,
                attempt,
                // A retry goes before items that have not started, as locally.
                priority: i32::from(before.is_some()),
            });
        }
        self.in_flight += runs.len();
        self.cmds.send(Cmd::Enqueue(runs)).map_err(|_| Self::gone())
    }

    async fn next(&mut self) -> Result<BackendEvent, EngineError> {
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        match self.events.recv().await {
            Some(Ok(ev)) => {
                self.delivered(&ev);
                Ok(ev)
            }
            Some(Err(e)) => Err(e),
            None => Err(Self::gone()),
        }
    }

    fn try_next(&mut self) -> Option<BackendEvent> {
        match self.events.try_recv() {
            Ok(Ok(ev)) => {
                self.delivered(&ev);
                Some(ev)
            }
            // An error is kept for `next` (it cannot be returned from here).
            Ok(Err(e)) => {
                self.failed = Some(e);
                None
            }
            Err(_) => None,
        }
    }

    async fn stop_starting(&mut self) {
        let _ = self.cmds.send(Cmd::StopStarting);
    }

    async fn cancel(&mut self) {
        let _ = self.cmds.send(Cmd::Cancel);
    }
}

/// The number of an item's next attempt: the dispatcher's, unless this run already queued
/// (or adopted) that number or a higher one. An adopted attempt carries the number an
/// earlier run gave it, which the dispatcher does not know.
fn attempt_number(queued_before: Option<u32>, wanted: u32) -> u32 {
    queued_before.map_or(wanted, |b| wanted.max(b + 1))
}

/// The task that owns the connection.
struct Actor {
    cfg: CoordinatorCfg,
    conn: Option<Conn>,
    cmds: mpsc::UnboundedReceiver<Cmd>,
    events: mpsc::UnboundedSender<Event>,
    /// Requests not applied yet (kept across a lost connection).
    pending: VecDeque<Cmd>,
    /// Attempts queued and not reported yet: item index -> attempt number.
    flight: HashMap<usize, u32>,
    /// A stop began: nothing more is claimed, unclaimed rows are taken back.
    halted: bool,
    /// Outcomes may be waiting.
    dirty: bool,
    /// After a reconnect: compare what is in flight with the rows.
    resync: bool,
    down_since: Option<Instant>,
    backoff: Backoff,
}

enum Wake {
    Cmd(Cmd),
    Note,
    Collect,
    Tick,
    Closed,
    Quit,
}

impl Actor {
    async fn run(mut self) {
        let mut tick = tokio::time::interval(self.cfg.poll);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut reap = true;
        let delay = if self.cfg.window == usize::MAX {
            COLLECT_DELAY
        } else {
            Duration::ZERO
        };
        let mut collect_at: Option<tokio::time::Instant> = None;
        loop {
            if self.conn.is_none() && !self.reconnect().await {
                return;
            }
            match self.work(std::mem::take(&mut reap)).await {
                Ok(()) => {}
                Err(e) if e.is_transient() => {
                    self.went_down(&e);
                    continue;
                }
                Err(e) => {
                    let _ = self.events.send(Err(e.into()));
                    return;
                }
            }
            let wake = {
                let Some(conn) = self.conn.as_mut() else {
                    continue;
                };
                tokio::select! {
                    cmd = self.cmds.recv() => cmd.map_or(Wake::Quit, Wake::Cmd),
                    note = conn.notes.recv() => note.map_or(Wake::Closed, |_| Wake::Note),
                    _ = sleep_until(collect_at), if collect_at.is_some() => Wake::Collect,
                    _ = tick.tick() => Wake::Tick,
                }
            };
            match wake {
                Wake::Cmd(c) => self.take(c),
                Wake::Note if delay.is_zero() => self.dirty = true,
                Wake::Note => {
                    collect_at.get_or_insert_with(|| tokio::time::Instant::now() + delay);
                }
                Wake::Collect => {
                    collect_at = None;
                    self.dirty = true;
                }
                Wake::Tick => {
                    self.dirty = true;
                    reap = true;
                }
                Wake::Closed => self.went_down(&PgError::Down("the connection closed".into())),
                Wake::Quit => return,
            }
        }
    }

    /// A request arrived: note what it puts in flight, and queue it.
    fn take(&mut self, cmd: Cmd) {
        if let Cmd::Enqueue(runs) = &cmd {
            for r in runs {
                self.flight.insert(r.idx, r.attempt);
            }
        }
        self.pending.push_back(cmd);
    }

    fn went_down(&mut self, e: &PgError) {
        self.conn = None;
        self.resync = true;
        if self.down_since.is_none() {
            self.down_since = Some(Instant::now());
            self.emit(BackendEvent::Warning(format!(
                "lost the connection to PostgreSQL ({e}); reconnecting with backoff, the job \
                 goes on when it is back"
            )));
        }
    }

    /// Connect again (waiting with backoff, taking requests meanwhile). False: quit.
    async fn reconnect(&mut self) -> bool {
        loop {
            let channel = queue::done_channel(self.cfg.job);
            match client::connect(&self.cfg.url, &[&channel]).await {
                Ok(c) => {
                    self.conn = Some(c);
                    self.backoff.reset();
                    self.dirty = true;
                    if let Some(since) = self.down_since.take() {
                        tracing::info!(
                            "reconnected to PostgreSQL after {:.1}s",
                            since.elapsed().as_secs_f64()
                        );
                    }
                    return true;
                }
                Err(e) if e.is_transient() => {
                    self.went_down(&e);
                    let wait = self.backoff.next_wait();
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        cmd = self.cmds.recv() => match cmd {
                            Some(c) => self.take(c),
                            None => return false,
                        },
                    }
                    self.cancel_while_down();
                }
                Err(e) => {
                    let _ = self.events.send(Err(e.into()));
                    return false;
                }
            }
        }
    }

    /// A cancel (or a close) cannot wait for a server that is down: everything in flight
    /// is handed back (the items stay pending; a resume re-attaches to what the workers did).
    fn cancel_while_down(&mut self) {
        let mut keep = VecDeque::new();
        while let Some(cmd) = self.pending.pop_front() {
            match cmd {
                Cmd::Cancel => {
                    self.halted = true;
                    for (idx, _) in std::mem::take(&mut self.flight) {
                        self.emit(BackendEvent::Returned { idx });
                    }
                }
                Cmd::Close(_, reply) => {
                    let _ = reply.send(Err(PgError::Down("PostgreSQL is down".into())));
                }
                Cmd::Adopt(_, reply) => {
                    let _ = reply.send(Err(PgError::Down("PostgreSQL is down".into())));
                }
                other => keep.push_back(other),
            }
        }
        self.pending = keep;
    }

    fn emit(&self, ev: BackendEvent) {
        let _ = self.events.send(Ok(ev));
    }

    fn conn(&self) -> Result<&Conn, PgError> {
        self.conn
            .as_ref()
            .ok_or_else(|| PgError::Down("not connected".into()))
    }

    /// Apply the requests, then report outcomes, expired leases and take-backs.
    async fn work(&mut self, reap: bool) -> Result<(), PgError> {
        while let Some(cmd) = self.pending.pop_front() {
            if let Err((cmd, e)) = self.apply(cmd).await {
                if let Some(cmd) = cmd {
                    self.pending.push_front(cmd);
                }
                return Err(e);
            }
        }
        if self.resync {
            self.resync_flight().await?;
            self.resync = false;
        }
        if self.dirty {
            self.dirty = false;
            self.collect().await?;
        }
        if reap {
            self.reap().await?;
            if self.halted {
                // A worker that shut down handed its claim back: take it back too.
                self.take_back().await?;
            }
        }
        Ok(())
    }

    /// Apply one request; on failure, the request (if it is to be retried) and the error.
    async fn apply(&mut self, cmd: Cmd) -> Result<(), (Option<Cmd>, PgError)> {
        let job = self.cfg.job;
        match cmd {
            Cmd::Enqueue(runs) => {
                let r = match self.conn() {
                    Ok(c) => queue::enqueue(c, job, &runs).await,
                    Err(e) => Err(e),
                };
                r.map(|_| ()).map_err(|e| (Some(Cmd::Enqueue(runs)), e))
            }
            Cmd::Adopt(candidates, reply) => match self.adopt(&candidates).await {
                Ok(adopted) => {
                    let _ = reply.send(Ok(adopted));
                    Ok(())
                }
                Err(e) if e.is_transient() => Err((Some(Cmd::Adopt(candidates, reply)), e)),
                Err(e) => {
                    let _ = reply.send(Err(e));
                    Ok(())
                }
            },
            Cmd::StopStarting | Cmd::Cancel => {
                let state = if matches!(cmd, Cmd::Cancel) {
                    QueueState::Cancelled
                } else {
                    QueueState::Stopping
                };
                self.halted = true;
                let r = match self.conn() {
                    Ok(c) => queue::set_state(c, job, state).await,
                    Err(e) => Err(e),
                };
                if let Err(e) = r {
                    return Err((Some(cmd), e));
                }
                self.take_back().await.map_err(|e| (None, e))
            }
            Cmd::Pause(paused) => {
                if self.halted {
                    return Ok(());
                }
                let state = if paused {
                    QueueState::Paused
                } else {
                    QueueState::Running
                };
                let r = match self.conn() {
                    Ok(c) => queue::set_state(c, job, state).await,
                    Err(e) => Err(e),
                };
                r.map_err(|e| (Some(Cmd::Pause(paused)), e))
            }
            Cmd::Close(forget, reply) => {
                let r = match self.conn() {
                    Ok(c) => queue::close_job(c, job, forget).await,
                    Err(e) => Err(e),
                };
                let _ = reply.send(r);
                Ok(())
            }
        }
    }

    /// Take over the rows an earlier run of the job queued but did not record: those of a
    /// pending item with an attempt above the journal's.
    async fn adopt(&mut self, candidates: &[Queued]) -> Result<Vec<(usize, u32)>, PgError> {
        let conn = self.conn()?;
        let rows = queue::rows(conn, self.cfg.job).await?;
        let mut adopted = Vec::new();
        let mut reopen = Vec::new();
        for c in candidates {
            let Some(r) = rows.get(&c.idx) else { continue };
            if r.attempt <= c.prior_attempts {
                continue; // recorded already: a new attempt replaces the row
            }
            match r.status.as_str() {
                "ready" | "claimed" | "done" => {}
                "collected" | "lost" => reopen.push(c.idx),
                _ => continue,
            }
            adopted.push((c.idx, r.attempt));
        }
        if !reopen.is_empty() {
            queue::reopen(conn, self.cfg.job, &reopen).await?;
        }
        for (idx, attempt) in &adopted {
            self.flight.insert(*idx, *attempt);
        }
        self.dirty = true;
        Ok(adopted)
    }

    /// After a lost connection, a statement may have taken effect without its answer
    /// arriving: outcomes marked taken are taken again, lost claims reported again, and
    /// rows taken back are reported as handed back.
    async fn resync_flight(&mut self) -> Result<(), PgError> {
        if self.flight.is_empty() {
            return Ok(());
        }
        let conn = self.conn()?;
        let rows = queue::rows(conn, self.cfg.job).await?;
        let mut reopen = Vec::new();
        let mut gone = Vec::new();
        for (idx, attempt) in &self.flight {
            match rows.get(idx) {
                Some(r) if r.attempt == *attempt => {
                    if matches!(r.status.as_str(), "collected" | "lost") {
                        reopen.push(*idx);
                    }
                }
                Some(_) => {}
                None => gone.push(*idx),
            }
        }
        if !reopen.is_empty() {
            queue::reopen(conn, self.cfg.job, &reopen).await?;
        }
        for idx in gone {
            self.flight.remove(&idx);
            self.emit(BackendEvent::Returned { idx });
        }
        self.dirty = true;
        Ok(())
    }

    async fn collect(&mut self) -> Result<(), PgError> {
        loop {
            let got = queue::collect(self.conn()?, self.cfg.job, COLLECT_BATCH).await?;
            let n = got.len();
            for c in got {
                if self.flight.get(&c.idx) != Some(&c.outcome.attempt.attempt) {
                    continue; // not an attempt this run waits for
                }
                self.flight.remove(&c.idx);
                let attempt = c.outcome.attempt.attempt;
                if let Err(e) = tail::write_logs(
                    &self.cfg.items_dir,
                    &c.item_id,
                    attempt,
                    &c.stdout,
                    &c.stderr,
                ) {
                    self.emit(BackendEvent::Warning(format!(
                        "could not write the logs of item {}: {e}",
                        c.item_id
                    )));
                }
                self.emit(BackendEvent::Ended(AttemptEnd {
                    idx: c.idx,
                    attempt: c.outcome.attempt,
                    captured: c.outcome.captured,
                    warnings: Vec::new(),
                }));
            }
            if n < COLLECT_BATCH {
                return Ok(());
            }
        }
    }

    async fn reap(&mut self) -> Result<(), PgError> {
        if self.flight.is_empty() {
            return Ok(());
        }
        let lost = queue::reap(self.conn()?, self.cfg.job).await?;
        for l in lost {
            if self.flight.get(&l.idx) != Some(&l.attempt) {
                continue;
            }
            self.flight.remove(&l.idx);
            let who = l.worker.unwrap_or_else(|| "its worker".into());
            self.emit(BackendEvent::Ended(AttemptEnd {
                idx: l.idx,
                attempt: Attempt {
                    attempt: l.attempt,
                    started_at: crate::state::time::Timestamp::now(),
                    duration_ms: 0,
                    failure: Some(Failure::WorkerLost {
                        message: format!("{who} stopped heartbeating and its lease expired"),
                    }),
                    stderr_tail: String::new(),
                    usage: None,
                },
                captured: Map::new(),
                warnings: Vec::new(),
            }));
        }
        Ok(())
    }

    async fn take_back(&mut self) -> Result<(), PgError> {
        let idxs = queue::take_back_ready(self.conn()?, self.cfg.job).await?;
        for idx in idxs {
            if self.flight.remove(&idx).is_some() {
                self.emit(BackendEvent::Returned { idx });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_attempt_number_is_never_queued_twice() {
        assert_eq!(attempt_number(None, 1), 1);
        assert_eq!(attempt_number(Some(1), 2), 2);
        // An adopted attempt 3 (the journal knew of 2): the dispatcher's next is 3 again.
        assert_eq!(attempt_number(Some(3), 3), 4);
        assert_eq!(attempt_number(Some(4), 4), 5);
    }
}
