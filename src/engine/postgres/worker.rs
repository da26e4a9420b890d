//! `runner worker`: registers, heartbeats, claims ready items of running jobs in batches,
//! runs each with the same attempt code as the local backend (timeouts, process groups,
//! env, captures), and writes its outcome with its output's tail under the claim's fencing
//! token. It follows its jobs' states (a cancelled job's items are cancelled), reconnects
//! with backoff when the server goes away (outcomes wait in memory meanwhile), and on
//! SIGTERM/SIGINT stops claiming, lets its items finish for a grace period, hands the rest
//! back and deregisters.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::engine::attempt::context::AttemptCtx;
use crate::engine::attempt::executor::ProcessExecutor;
use crate::engine::attempt::run::run_attempt;
use crate::engine::controls::Controls;
use crate::engine::limits::enforcer::Enforcer;
use crate::engine::map::backend::{AttemptEnd, AttemptRun};
use crate::engine::postgres::client::{self, Conn, Note};
use crate::engine::postgres::error::PgError;
use crate::engine::postgres::lease::{Backoff, Lease, sleep_until};
use crate::engine::postgres::queue::{
    self, CONTROL_CHANNEL, Claimed, Finished, Outcome, READY_CHANNEL,
};
use crate::engine::postgres::schema;
use crate::engine::postgres::tail::{read_tail, remove_logs};
use crate::engine::postgres::url::PgUrl;
use crate::items::Item;
use crate::state::records::{Attempt, Failure};

/// How a worker runs.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    pub url: PgUrl,
    /// Items run at once.
    pub slots: usize,
    pub lease: Lease,
    /// How often the queue is looked at should a notification be missed.
    pub poll: Duration,
    /// Bytes of each output stream sent with an outcome.
    pub tail_cap: usize,
    /// After SIGTERM/SIGINT, how long running items may finish before they are handed back.
    pub grace: Duration,
}

/// What a worker did, said when it exits.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WorkerReport {
    pub ran: u64,
    pub rejected: u64,
    pub handed_back: u64,
    /// From an item being queued to its claim, p50 and p95 (ms), over the claims made.
    pub claim_wait_ms: Option<(f64, f64)>,
}

/// One job's attempt context on this worker.
struct JobCtx {
    spec_version: i32,
    ctx: Arc<AttemptCtx<ProcessExecutor>>,
    cancel: CancellationToken,
}

struct Worker {
    opts: WorkerOptions,
    conn: Option<Conn>,
    id: i64,
    jobs: HashMap<i64, JobCtx>,
    running: JoinSet<(Claimed, AttemptEnd)>,
    /// Claims running, by fencing token.
    claims: HashMap<i64, Claimed>,
    /// Outcomes still to be written (kept while the connection is down).
    unsent: Vec<Finished>,
    /// Claims of cancelled attempts still to be handed back.
    releases: VecDeque<Claimed>,
    /// Claims already reported as lost (said once).
    lost_said: HashSet<i64>,
    /// Cancels every attempt (shutdown); each job's token is a child of it.
    shutdown: CancellationToken,
    logs: tempfile::TempDir,
    draining: bool,
    /// Ready items may be waiting.
    maybe_ready: bool,
    report: WorkerReport,
    /// Claim waits in microseconds.
    waits: Vec<u64>,
    backoff: Backoff,
}

/// Run a worker until SIGTERM/SIGINT (then drain, hand back, deregister).
pub async fn run_worker(opts: WorkerOptions) -> Result<WorkerReport, PgError> {
    use tokio::signal::unix::{SignalKind, signal};
    let conn = client::connect(&opts.url, &[READY_CHANNEL, CONTROL_CHANNEL]).await?;
    schema::check(&conn).await?;
    let host = client::hostname();
    let id = queue::register(
        &conn,
        &host,
        opts.slots,
        opts.lease.lease,
        opts.lease.heartbeat,
    )
    .await?;
    tracing::info!("worker {id} registered: {} slots", opts.slots);
    let logs = tempfile::Builder::new()
        .prefix("runner-worker-")
        .tempdir()
        .map_err(|e| PgError::Query(format!("cannot create a temporary directory: {e}")))?;
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return Err(PgError::Query("cannot install signal handlers".into()));
    };
    let mut w = Worker {
        opts,
        conn: Some(conn),
        id,
        jobs: HashMap::new(),
        running: JoinSet::new(),
        claims: HashMap::new(),
        unsent: Vec::new(),
        releases: VecDeque::new(),
        lost_said: HashSet::new(),
        shutdown: CancellationToken::new(),
        logs,
        draining: false,
        maybe_ready: true,
        report: WorkerReport::default(),
        waits: Vec::new(),
        backoff: Backoff::default(),
    };
    let mut heartbeat = tokio::time::interval(w.opts.lease.heartbeat);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut poll = tokio::time::interval(w.opts.poll);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut drain_until: Option<Instant> = None;
    let mut down_until: Option<Instant> = None;
    loop {
        if w.conn.is_none() && down_until.is_none_or(|t| Instant::now() >= t) {
            match client::connect(&w.opts.url, &[READY_CHANNEL, CONTROL_CHANNEL]).await {
                Ok(c) => {
                    tracing::info!("reconnected to PostgreSQL");
                    w.conn = Some(c);
                    w.backoff.reset();
                    w.maybe_ready = true;
                    down_until = None;
                    w.beat().await;
                }
                Err(e) if e.is_transient() => {
                    down_until = Some(Instant::now() + w.backoff.next_wait());
                }
                Err(e) => return Err(e),
            }
        }
        w.sync().await;
        let idle = w.unsent.is_empty() && w.releases.is_empty();
        if w.draining && w.running.is_empty() && (idle || w.conn.is_none()) {
            break;
        }
        let since_down = down_until;
        tokio::select! {
            Some(joined) = w.running.join_next(), if !w.running.is_empty() => {
                w.ended(joined);
                // Take every attempt that ended meanwhile: one statement writes them all.
                while let Some(more) = w.running.try_join_next() {
                    w.ended(more);
                }
            }
            note = next_note(&mut w.conn) => match note {
                Some(n) => w.note(n).await,
                None => w.down(&PgError::Down("the connection closed".into())),
            },
            _ = heartbeat.tick() => w.beat().await,
            _ = poll.tick() => w.maybe_ready = true,
            _ = int.recv() => w.signal(&mut drain_until),
            _ = term.recv() => w.signal(&mut drain_until),
            _ = sleep_until(drain_until), if drain_until.is_some() => {
                drain_until = None;
                w.shutdown.cancel();
            }
            _ = sleep_until(since_down), if since_down.is_some() && w.conn.is_none() => {}
        }
    }
    if let Some(conn) = &w.conn
        && let Err(e) = queue::deregister(conn, w.id).await
    {
        tracing::warn!("could not deregister worker {}: {e}", w.id);
    }
    w.report.claim_wait_ms = percentiles(&mut w.waits);
    Ok(w.report)
}

async fn next_note(conn: &mut Option<Conn>) -> Option<Note> {
    match conn {
        Some(c) => c.notes.recv().await,
        None => std::future::pending().await,
    }
}

/// p50 and p95 of waits in microseconds, as milliseconds.
fn percentiles(v: &mut [u64]) -> Option<(f64, f64)> {
    use crate::report::stats::percentile;
    v.sort_unstable();
    let ms = |us: u64| us as f64 / 1000.0;
    Some((ms(percentile(v, 0.5)?), ms(percentile(v, 0.95)?)))
}

impl Worker {
    fn down(&mut self, e: &PgError) {
        if self.conn.take().is_some() {
            tracing::warn!("lost the connection to PostgreSQL ({e}); reconnecting with backoff");
        }
    }

    fn signal(&mut self, drain_until: &mut Option<Instant>) {
        if self.draining {
            // A second signal: hand everything back now.
            *drain_until = None;
            self.shutdown.cancel();
            return;
        }
        self.draining = true;
        tracing::info!(
            "stopping: no new claims; {} item(s) running get {} to finish",
            self.running.len(),
            humantime::format_duration(self.opts.grace)
        );
        if self.running.is_empty() {
            return;
        }
        *drain_until = Some(Instant::now() + self.opts.grace);
    }

    /// An attempt ended: queue its outcome, or hand its claim back if the worker is
    /// shutting down and cancelled it.
    fn ended(&mut self, joined: Result<(Claimed, AttemptEnd), tokio::task::JoinError>) {
        let Ok((claim, end)) = joined else {
            return; // a panicked task: its lease expires and the item goes back
        };
        self.claims.remove(&claim.fence);
        let cancelled = matches!(end.attempt.failure, Some(Failure::Cancelled { .. }));
        if cancelled && self.shutdown.is_cancelled() {
            remove_logs(self.logs.path(), &claim.item_id, claim.attempt);
            self.releases.push_back(claim);
            return;
        }
        let [out, err] = crate::engine::postgres::tail::log_paths(
            self.logs.path(),
            &claim.item_id,
            claim.attempt,
        );
        let stdout = read_tail(&out, self.opts.tail_cap);
        let stderr = read_tail(&err, self.opts.tail_cap);
        remove_logs(self.logs.path(), &claim.item_id, claim.attempt);
        let outcome = Outcome {
            attempt: end.attempt,
            captured: end.captured,
        };
        self.unsent.push(Finished {
            claim,
            outcome,
            stdout,
            stderr,
        });
        self.maybe_ready = true;
    }

    /// Write the finished outcomes and claim for the free slots, pipelined on the one
    /// connection (a single round trip), then hand back cancelled claims and claim on while
    /// items are ready. What cannot be written waits for the connection to come back.
    async fn sync(&mut self) {
        let Some(conn) = &self.conn else { return };
        let free = self.opts.slots.saturating_sub(self.running.len());
        let claiming = !self.draining && self.maybe_ready && free > 0;
        let (id, lease) = (self.id, self.opts.lease.lease);
        let unsent = &self.unsent;
        let (written, claimed) = tokio::join!(
            async {
                if unsent.is_empty() {
                    None
                } else {
                    Some(queue::finish(conn, unsent).await)
                }
            },
            async {
                if claiming {
                    Some(queue::claim(conn, id, free, lease).await)
                } else {
                    None
                }
            },
        );
        if let Some(w) = written {
            self.written(w);
        }
        if let Some(c) = claimed {
            self.claimed(c, free).await;
        }
        self.release_all().await;
        if !self.draining {
            self.claim().await;
        }
    }

    /// The answer to writing the queued outcomes.
    fn written(&mut self, result: Result<Vec<i64>, PgError>) {
        match result {
            Ok(taken) => {
                for f in std::mem::take(&mut self.unsent) {
                    if taken.contains(&f.claim.fence) {
                        self.report.ran += 1;
                        continue;
                    }
                    self.report.rejected += 1;
                    tracing::warn!(
                        "the outcome of item {:?} (job {}, attempt {}) was rejected: its claim \
                         (fencing token {}) is no longer held, the lease expired and the item \
                         went back to the queue",
                        f.claim.item_id,
                        f.claim.job,
                        f.claim.attempt,
                        f.claim.fence
                    );
                }
            }
            Err(e) if e.is_transient() => self.down(&e),
            Err(e) => {
                tracing::error!("{e}");
                self.unsent.clear();
            }
        }
    }

    /// Hand back the claims of attempts cancelled by the shutdown.
    async fn release_all(&mut self) {
        while let Some(claim) = self.releases.pop_front() {
            let Some(conn) = &self.conn else {
                self.releases.push_front(claim);
                return;
            };
            match queue::release(conn, &claim).await {
                Ok(_) => self.report.handed_back += 1,
                Err(e) if e.is_transient() => {
                    self.releases.push_front(claim);
                    return self.down(&e);
                }
                Err(e) => tracing::error!("{e}"),
            }
        }
    }

    /// Claim as many items as there are free slots, and start them.
    async fn claim(&mut self) {
        while self.maybe_ready {
            let free = self.opts.slots.saturating_sub(self.running.len());
            if free == 0 {
                return;
            }
            let Some(conn) = &self.conn else { return };
            let claimed = queue::claim(conn, self.id, free, self.opts.lease.lease).await;
            self.claimed(claimed, free).await;
        }
    }

    /// Start what a claim for `asked` slots returned.
    async fn claimed(&mut self, result: Result<Vec<Claimed>, PgError>, asked: usize) {
        let claimed = match result {
            Ok(c) => c,
            Err(e) => {
                if e.is_transient() {
                    self.down(&e);
                } else {
                    tracing::error!("{e}");
                }
                self.maybe_ready = false;
                return;
            }
        };
        if claimed.len() < asked {
            self.maybe_ready = false;
        }
        for c in claimed {
            self.start(c).await;
        }
    }

    async fn start(&mut self, claim: Claimed) {
        let waited = claim.waited.as_secs_f64() * 1000.0;
        tracing::debug!(
            "claimed item {:?} of job {} (attempt {}) {waited:.1} ms after it was queued",
            claim.item_id,
            claim.job,
            claim.attempt
        );
        if self.waits.len() < 1_000_000 {
            self.waits.push(claim.waited.as_micros() as u64);
        }
        let ctx = match self.job_ctx(claim.job, claim.spec_version).await {
            Ok(Some(ctx)) => ctx,
            Ok(None) => return, // the job is gone: so is the claim
            Err(failure) => {
                let outcome = Outcome {
                    attempt: Attempt {
                        attempt: claim.attempt,
                        started_at: crate::state::time::Timestamp::now(),
                        duration_ms: 0,
                        failure: Some(failure),
                        stderr_tail: String::new(),
                        usage: None,
                    },
                    captured: serde_json::Map::new(),
                };
                self.unsent.push(Finished {
                    claim,
                    outcome,
                    stdout: Vec::new(),
                    stderr: Vec::new(),
                });
                return;
            }
        };
        let run = AttemptRun {
            idx: claim.idx,
            item: Arc::new(Item {
                id: claim.item_id.clone(),
                value: claim.item.clone(),
            }),
            attempt: claim.attempt,
        };
        self.claims.insert(claim.fence, claim.clone());
        self.running.spawn(async move {
            let end = run_attempt(&ctx, &run, None).await;
            (claim, end)
        });
    }

    /// The attempt context of a job (loaded on its first claim, and again when the
    /// coordinator re-attached with a new spec). `Ok(None)`: the job is gone.
    async fn job_ctx(
        &mut self,
        job: i64,
        spec_version: i32,
    ) -> Result<Option<Arc<AttemptCtx<ProcessExecutor>>>, Failure> {
        if let Some(j) = self.jobs.get(&job)
            && j.spec_version == spec_version
            && !j.cancel.is_cancelled()
        {
            return Ok(Some(j.ctx.clone()));
        }
        let Some(conn) = &self.conn else {
            return Ok(None);
        };
        let (spec, version) = match queue::load_spec(conn, job).await {
            Ok(Some(s)) => s,
            Ok(None) => return Ok(None),
            Err(e) => {
                return Err(Failure::Spawn {
                    message: format!("the worker could not read the job: {e}"),
                    step: 0,
                });
            }
        };
        let mut wf = crate::workflow::load::load_str(
            &spec.workflow,
            &spec.workflow_path,
            &spec.workflow_dir,
        )
        .map_err(|e| Failure::Spawn {
            message: format!("the worker could not load the job's workflow: {e}"),
            step: 0,
        })?;
        if !wf.dir.is_dir() {
            let here = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
            tracing::warn!(
                "job {}: the workflow directory {} does not exist on this machine; its items \
                 run in {}",
                spec.job_id,
                wf.dir.display(),
                here.display()
            );
            wf.dir = here;
        }
        let vars = spec.vars(&wf);
        let wf = wf.with_env(&vars.env).map_err(|e| Failure::Spawn {
            message: format!("the worker could not set the job's configuration: {e}"),
            step: 0,
        })?;
        // `map.resources` are enforced here, on the machine that runs the items.
        let limits = Enforcer::probe(&wf.map.resources).map_err(|message| Failure::Spawn {
            message: format!("the worker cannot enforce map.resources: {message}"),
            step: 0,
        })?;
        if let Some(l) = &limits {
            tracing::info!("job {}: {}", spec.job_id, l.describe());
        }
        let cancel = self.shutdown.child_token();
        let mut controls = Controls::default();
        controls.cancel = cancel.clone();
        let ctx = Arc::new(
            AttemptCtx::new(
                ProcessExecutor,
                &wf,
                vars,
                Some(self.logs.path().to_path_buf()),
                &controls,
            )
            .with_limits(limits),
        );
        self.jobs.insert(
            job,
            JobCtx {
                spec_version: version,
                ctx: ctx.clone(),
                cancel,
            },
        );
        Ok(Some(ctx))
    }

    async fn note(&mut self, n: Note) {
        if n.channel == READY_CHANNEL {
            self.maybe_ready = true;
        } else if n.channel == CONTROL_CHANNEL
            && let Ok(job) = n.payload.parse::<i64>()
            && self.claims.values().any(|c| c.job == job)
        {
            self.follow_jobs().await;
        }
    }

    /// Cancel the running items of jobs that were cancelled or are gone.
    async fn follow_jobs(&mut self) {
        let mut jobs: Vec<i64> = self.claims.values().map(|c| c.job).collect();
        jobs.sort_unstable();
        jobs.dedup();
        if jobs.is_empty() {
            return;
        }
        let Some(conn) = &self.conn else { return };
        let states = match queue::job_states(conn, &jobs).await {
            Ok(s) => s,
            Err(e) if e.is_transient() => return self.down(&e),
            Err(e) => return tracing::error!("{e}"),
        };
        for job in jobs {
            let state = states
                .iter()
                .find(|(j, _)| *j == job)
                .map(|(_, s)| s.as_str());
            if matches!(state, None | Some("cancelled"))
                && let Some(j) = self.jobs.remove(&job)
            {
                tracing::info!("job {job} was cancelled: cancelling its items here");
                j.cancel.cancel();
            }
        }
    }

    /// Heartbeat: extend the leases still held, say which were lost, follow job states.
    async fn beat(&mut self) {
        let Some(conn) = &self.conn else { return };
        let fences: Vec<i64> = self.claims.keys().copied().collect();
        let beat = match queue::heartbeat(
            conn,
            self.id,
            self.running.len(),
            &fences,
            self.opts.lease.lease,
        )
        .await
        {
            Ok(b) => b,
            Err(e) if e.is_transient() => return self.down(&e),
            Err(e) => return tracing::error!("{e}"),
        };
        if !beat.registered {
            // Forgotten (e.g. silent for a day): register again.
            let host = client::hostname();
            match queue::register(
                conn,
                &host,
                self.opts.slots,
                self.opts.lease.lease,
                self.opts.lease.heartbeat,
            )
            .await
            {
                Ok(id) => self.id = id,
                Err(e) => tracing::warn!("could not register again: {e}"),
            }
        }
        for f in fences {
            if !beat.held.contains(&f)
                && self.lost_said.insert(f)
                && let Some(c) = self.claims.get(&f)
            {
                tracing::warn!(
                    "lost the claim on item {:?} (job {}, attempt {}): its lease expired; its \
                     outcome will be rejected",
                    c.item_id,
                    c.job,
                    c.attempt
                );
            }
        }
        if !self.claims.is_empty() {
            self.follow_jobs().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claim_wait_percentiles() {
        assert_eq!(percentiles(&mut []), None);
        let mut v: Vec<u64> = (1..=100).rev().map(|ms| ms * 1000).collect();
        assert_eq!(percentiles(&mut v), Some((50.0, 95.0)));
        assert_eq!(percentiles(&mut [1500]), Some((1.5, 1.5)));
    }
}
