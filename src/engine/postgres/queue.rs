//! The queue's SQL, one function per statement: jobs, enqueue (idempotent per job, item and
//! attempt), claims (`FOR UPDATE SKIP LOCKED`, each with a new fencing token), fenced
//! outcomes, heartbeats, lease expiry, collection, hand-backs, and the worker registry.
//! Every statement runs on its own (autocommit): a claim or an outcome is one transaction.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::engine::postgres::client::Conn;
use crate::engine::postgres::error::PgError;
use crate::engine::postgres::lease::millis;
use crate::engine::postgres::spec::JobSpec;
use crate::items::Item;
use crate::state::records::Attempt;

/// Workers listen here for new ready items (and un-paused jobs).
pub const READY_CHANNEL: &str = "runner_ready";
/// Workers listen here for job state changes (payload: the job's row id).
pub const CONTROL_CHANNEL: &str = "runner_control";

/// The coordinator of job `job` listens here for outcomes.
pub fn done_channel(job: i64) -> String {
    format!("runner_done_{job}")
}

/// Rows enqueued per statement.
const ENQUEUE_CHUNK: usize = 5000;

/// A job's state in the queue: workers claim only from `running` jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueState {
    Running,
    Paused,
    /// A stop: nothing new is claimed; claims in flight finish.
    Stopping,
    /// Claims in flight are cancelled by their workers.
    Cancelled,
    /// No run of the job is going on.
    Idle,
}

impl QueueState {
    pub fn as_str(self) -> &'static str {
        match self {
            QueueState::Running => "running",
            QueueState::Paused => "paused",
            QueueState::Stopping => "stopping",
            QueueState::Cancelled => "cancelled",
            QueueState::Idle => "idle",
        }
    }
}

/// An attempt's result as a worker writes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    pub attempt: Attempt,
    #[serde(default)]
    pub captured: Map<String, Value>,
}

fn idx_i32(idx: usize) -> i32 {
    i32::try_from(idx).unwrap_or(i32::MAX)
}

fn as_u32(v: i32) -> u32 {
    u32::try_from(v).unwrap_or(0)
}

/// Create or re-open the job's row (a resume re-attaches to it); returns its id.
pub async fn upsert_job(
    conn: &Conn,
    key: &str,
    spec: &JobSpec,
    state: QueueState,
    coordinator: &str,
) -> Result<i64, PgError> {
    let spec = serde_json::to_value(spec).map_err(|e| PgError::Query(e.to_string()))?;
    let row = conn
        .query_opt(
            "INSERT INTO runner.jobs (key, job_id, spec, state, coordinator)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (key) DO UPDATE SET spec = EXCLUDED.spec,
                 spec_version = runner.jobs.spec_version + 1, state = EXCLUDED.state,
                 coordinator = EXCLUDED.coordinator, updated_at = now()
             RETURNING id",
            &[
                &key,
                &spec["job_id"].as_str().unwrap_or(""),
                &spec,
                &state.as_str(),
                &coordinator,
            ],
            "register the job",
        )
        .await?;
    row.map(|r| r.get(0))
        .ok_or_else(|| PgError::Query("register the job: no row returned".into()))
}

/// Set the job's state and tell the workers.
pub async fn set_state(conn: &Conn, job: i64, state: QueueState) -> Result<(), PgError> {
    conn.query(
        "WITH u AS (UPDATE runner.jobs SET state = $2, updated_at = now() WHERE id = $1 RETURNING id)
         SELECT pg_notify('runner_control', $1::text), pg_notify('runner_ready', '') FROM u",
        &[&job, &state.as_str()],
        "set the job's state",
    )
    .await?;
    Ok(())
}

/// The map run is over: drop the job's rows (and the job itself when `forget`).
pub async fn close_job(conn: &Conn, job: i64, forget: bool) -> Result<(), PgError> {
    conn.execute(
        "DELETE FROM runner.items WHERE job = $1",
        &[&job],
        "drop the job's items",
    )
    .await?;
    if forget {
        conn.execute(
            "DELETE FROM runner.jobs WHERE id = $1",
            &[&job],
            "drop the job",
        )
        .await?;
    } else {
        set_state(conn, job, QueueState::Idle).await?;
    }
    Ok(())
}

/// One attempt to enqueue.
#[derive(Debug, Clone)]
pub struct Enqueue {
    pub idx: usize,
    pub item: Arc<Item>,
    pub attempt: u32,
    pub priority: i32,
}

/// Queue attempts, idempotently: a row is (re)set only for a higher attempt of its item, so
/// enqueueing the same attempt twice changes nothing. Returns how many rows changed.
pub async fn enqueue(conn: &Conn, job: i64, runs: &[Enqueue]) -> Result<u64, PgError> {
    let mut changed = 0;
    for chunk in runs.chunks(ENQUEUE_CHUNK) {
        let idxs: Vec<i32> = chunk.iter().map(|r| idx_i32(r.idx)).collect();
        let ids: Vec<&str> = chunk.iter().map(|r| r.item.id.as_str()).collect();
        let values: Vec<&Value> = chunk.iter().map(|r| &r.item.value).collect();
        let attempts: Vec<i32> = chunk.iter().map(|r| r.attempt as i32).collect();
        let priorities: Vec<i32> = chunk.iter().map(|r| r.priority).collect();
        changed += conn
            .execute(
                "INSERT INTO runner.items (job, idx, item_id, item, attempt, priority, status)
                 SELECT $1, u.idx, u.id, u.item, u.attempt, u.priority, 'ready'
                 FROM unnest($2::int4[], $3::text[], $4::json[], $5::int4[], $6::int4[])
                      AS u(idx, id, item, attempt, priority)
                 ON CONFLICT (job, idx) DO UPDATE SET item_id = EXCLUDED.item_id,
                     item = EXCLUDED.item, attempt = EXCLUDED.attempt,
                     priority = EXCLUDED.priority, status = 'ready', available_at = now(),
                     enqueued_at = clock_timestamp(), worker = NULL, fence = NULL,
                     claimed_at = NULL, lease_until = NULL, outcome = NULL, stdout = NULL,
                     stderr = NULL
                 WHERE runner.items.attempt < EXCLUDED.attempt",
                &[&job, &idxs, &ids, &values, &attempts, &priorities],
                "enqueue items",
            )
            .await?;
    }
    conn.execute("NOTIFY runner_ready", &[], "wake the workers")
        .await?;
    Ok(changed)
}

/// A claimed attempt.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub job: i64,
    pub idx: usize,
    pub item_id: String,
    pub item: Value,
    pub attempt: u32,
    pub fence: i64,
    pub spec_version: i32,
    /// From the item being enqueued to its claim.
    pub waited: Duration,
}

/// Claim up to `n` ready items of running jobs, by priority then readiness, each with a
/// new fencing token and a lease of `lease`.
pub async fn claim(
    conn: &Conn,
    worker: i64,
    n: usize,
    lease: Duration,
) -> Result<Vec<Claimed>, PgError> {
    let rows = conn
        .query(
            "WITH c AS (
                 SELECT i.job, i.idx FROM runner.items i
                 WHERE i.status = 'ready' AND i.available_at <= now()
                   AND i.job IN (SELECT id FROM runner.jobs WHERE state = 'running')
                 ORDER BY i.priority DESC, i.available_at, i.job, i.idx
                 LIMIT $2 FOR UPDATE SKIP LOCKED)
             UPDATE runner.items i SET status = 'claimed', worker = $1,
                 fence = nextval('runner.fence'), claimed_at = clock_timestamp(),
                 lease_until = now() + $3::int8 * interval '1 millisecond'
             FROM c WHERE i.job = c.job AND i.idx = c.idx
             RETURNING i.job, i.idx, i.item_id, i.item, i.attempt, i.fence,
                 (SELECT spec_version FROM runner.jobs j WHERE j.id = i.job),
                 extract(epoch FROM i.claimed_at - i.enqueued_at)::float8",
            &[&worker, &(n as i64), &millis(lease)],
            "claim items",
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| Claimed {
            job: r.get(0),
            idx: r.get::<_, i32>(1) as usize,
            item_id: r.get(2),
            item: r.get(3),
            attempt: as_u32(r.get(4)),
            fence: r.get(5),
            spec_version: r.get::<_, Option<i32>>(6).unwrap_or(0),
            waited: Duration::from_secs_f64(r.get::<_, f64>(7).max(0.0)),
        })
        .collect())
}

/// A finished attempt, as a worker writes it back.
#[derive(Debug, Clone)]
pub struct Finished {
    pub claim: Claimed,
    pub outcome: Outcome,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// Write attempts' outcomes and end their claims, in one statement, each only if its claim
/// is still the one with its fencing token. Returns the fencing tokens whose outcomes were
/// taken; the others were rejected (the lease expired and the item was taken back, or the
/// run ended).
pub async fn finish(conn: &Conn, done: &[Finished]) -> Result<Vec<i64>, PgError> {
    let jobs: Vec<i64> = done.iter().map(|f| f.claim.job).collect();
    let idxs: Vec<i32> = done.iter().map(|f| idx_i32(f.claim.idx)).collect();
    let fences: Vec<i64> = done.iter().map(|f| f.claim.fence).collect();
    let outcomes = done
        .iter()
        .map(|f| serde_json::to_value(&f.outcome))
        .collect::<Result<Vec<Value>, _>>()
        .map_err(|e| PgError::Query(e.to_string()))?;
    let stdouts: Vec<&[u8]> = done.iter().map(|f| f.stdout.as_slice()).collect();
    let stderrs: Vec<&[u8]> = done.iter().map(|f| f.stderr.as_slice()).collect();
    // One notification per job: identical ones in a transaction are delivered once.
    let rows = conn
        .query(
            "WITH u AS (
                 UPDATE runner.items i SET status = 'done', outcome = v.outcome,
                     stdout = v.stdout, stderr = v.stderr, lease_until = NULL
                 FROM unnest($1::int8[], $2::int4[], $3::int8[], $4::json[], $5::bytea[],
                             $6::bytea[]) AS v(job, idx, fence, outcome, stdout, stderr)
                 WHERE i.job = v.job AND i.idx = v.idx AND i.fence = v.fence
                   AND i.status = 'claimed'
                 RETURNING i.job, i.fence)
             SELECT fence, pg_notify('runner_done_' || job, '') FROM u",
            &[&jobs, &idxs, &fences, &outcomes, &stdouts, &stderrs],
            "write outcomes",
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Hand a claim back unrun (a worker shutting down): the item is ready again, same attempt.
pub async fn release(conn: &Conn, c: &Claimed) -> Result<bool, PgError> {
    let n = conn
        .execute(
            "UPDATE runner.items SET status = 'ready', worker = NULL, fence = NULL,
                 claimed_at = NULL, lease_until = NULL
             WHERE job = $1 AND idx = $2 AND fence = $3 AND status = 'claimed'",
            &[&c.job, &idx_i32(c.idx), &c.fence],
            "hand an item back",
        )
        .await?;
    conn.execute("NOTIFY runner_ready", &[], "wake the workers")
        .await?;
    Ok(n > 0)
}

/// What a heartbeat found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Beat {
    /// The worker's row still exists.
    pub registered: bool,
    /// The claims (fencing tokens) still held, now extended.
    pub held: Vec<i64>,
}

/// Heartbeat: the worker's row, and the leases of the claims it still holds.
pub async fn heartbeat(
    conn: &Conn,
    worker: i64,
    busy: usize,
    fences: &[i64],
    lease: Duration,
) -> Result<Beat, PgError> {
    let row = conn
        .query_opt(
            "WITH w AS (UPDATE runner.workers SET heartbeat_at = now(), busy = $2
                        WHERE id = $1 RETURNING id),
                  e AS (UPDATE runner.items SET lease_until = now() + $3::int8 * interval '1 millisecond'
                        WHERE fence = ANY($4) AND status = 'claimed' RETURNING fence)
             SELECT (SELECT count(*) FROM w), array(SELECT fence FROM e)",
            &[&worker, &(busy as i32), &millis(lease), &fences],
            "heartbeat",
        )
        .await?;
    Ok(match row {
        Some(r) => Beat {
            registered: r.get::<_, i64>(0) > 0,
            held: r.get(1),
        },
        None => Beat {
            registered: false,
            held: Vec::new(),
        },
    })
}

/// The states of these jobs (a job that is gone is absent).
pub async fn job_states(conn: &Conn, jobs: &[i64]) -> Result<Vec<(i64, String)>, PgError> {
    let rows = conn
        .query(
            "SELECT id, state FROM runner.jobs WHERE id = ANY($1)",
            &[&jobs],
            "read job states",
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// A job's spec and its version.
pub async fn load_spec(conn: &Conn, job: i64) -> Result<Option<(JobSpec, i32)>, PgError> {
    let Some(row) = conn
        .query_opt(
            "SELECT spec, spec_version FROM runner.jobs WHERE id = $1",
            &[&job],
            "read the job",
        )
        .await?
    else {
        return Ok(None);
    };
    let spec: JobSpec = serde_json::from_value(row.get(0))
        .map_err(|e| PgError::Query(format!("job {job} has an unreadable spec: {e}")))?;
    Ok(Some((spec, row.get(1))))
}

/// An outcome taken by the coordinator.
#[derive(Debug, Clone)]
pub struct Collected {
    pub idx: usize,
    pub item_id: String,
    pub outcome: Outcome,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// Take up to `limit` outcomes of the job (they stay, as `collected`, until the run ends).
pub async fn collect(conn: &Conn, job: i64, limit: usize) -> Result<Vec<Collected>, PgError> {
    let rows = conn
        .query(
            "WITH d AS (
                 SELECT idx, outcome, stdout, stderr FROM runner.items
                 WHERE job = $1 AND status = 'done' ORDER BY idx LIMIT $2 FOR UPDATE)
             UPDATE runner.items i SET status = 'collected', stdout = NULL, stderr = NULL
             FROM d WHERE i.job = $1 AND i.idx = d.idx
             RETURNING d.idx, d.outcome, d.stdout, d.stderr, i.item_id",
            &[&job, &(limit as i64)],
            "collect outcomes",
        )
        .await?;
    rows.iter()
        .map(|r| {
            let outcome: Option<Value> = r.get(1);
            let outcome: Outcome = outcome
                .and_then(|v| serde_json::from_value(v).ok())
                .ok_or_else(|| PgError::Query("an outcome row is unreadable".into()))?;
            Ok(Collected {
                idx: r.get::<_, i32>(0) as usize,
                item_id: r.get(4),
                outcome,
                stdout: r.get::<_, Option<Vec<u8>>>(2).unwrap_or_default(),
                stderr: r.get::<_, Option<Vec<u8>>>(3).unwrap_or_default(),
            })
        })
        .collect()
}

/// A claim whose lease expired.
#[derive(Debug, Clone)]
pub struct Lost {
    pub idx: usize,
    pub attempt: u32,
    /// `host pid N` of the worker that held it, if it is still registered.
    pub worker: Option<String>,
}

/// Take back the job's claims whose lease expired (their workers stopped heartbeating).
pub async fn reap(conn: &Conn, job: i64) -> Result<Vec<Lost>, PgError> {
    let rows = conn
        .query(
            "UPDATE runner.items i SET status = 'lost', lease_until = NULL
             WHERE job = $1 AND status = 'claimed' AND lease_until < now()
             RETURNING idx, attempt,
                 (SELECT host || ' pid ' || pid FROM runner.workers w WHERE w.id = i.worker)",
            &[&job],
            "take back expired claims",
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| Lost {
            idx: r.get::<_, i32>(0) as usize,
            attempt: as_u32(r.get(1)),
            worker: r.get(2),
        })
        .collect())
}

/// Remove the job's unclaimed items (a stop takes them back); returns their indexes.
pub async fn take_back_ready(conn: &Conn, job: i64) -> Result<Vec<usize>, PgError> {
    let rows = conn
        .query(
            "DELETE FROM runner.items WHERE job = $1 AND status = 'ready' RETURNING idx",
            &[&job],
            "take back unclaimed items",
        )
        .await?;
    Ok(rows.iter().map(|r| r.get::<_, i32>(0) as usize).collect())
}

/// A row as a re-attaching coordinator sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowState {
    pub idx: usize,
    pub attempt: u32,
    pub status: String,
}

/// The job's rows by item index.
pub async fn rows(
    conn: &Conn,
    job: i64,
) -> Result<std::collections::HashMap<usize, RowState>, PgError> {
    let rows = conn
        .query(
            "SELECT idx, attempt, status FROM runner.items WHERE job = $1",
            &[&job],
            "read the job's items",
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            let idx = r.get::<_, i32>(0) as usize;
            let row = RowState {
                idx,
                attempt: as_u32(r.get(1)),
                status: r.get(2),
            };
            (idx, row)
        })
        .collect())
}

/// Re-attach: outcomes taken but not recorded become `done` again, and claims reported
/// lost but not recorded are expired again, so both are reported once more.
pub async fn reopen(conn: &Conn, job: i64, idxs: &[usize]) -> Result<(), PgError> {
    let idxs: Vec<i32> = idxs.iter().map(|i| idx_i32(*i)).collect();
    conn.execute(
        "UPDATE runner.items SET
             status = CASE status WHEN 'collected' THEN 'done' ELSE 'claimed' END,
             lease_until = CASE status WHEN 'lost' THEN '-infinity'::timestamptz ELSE lease_until END
         WHERE job = $1 AND idx = ANY($2) AND status IN ('collected', 'lost')",
        &[&job, &idxs],
        "re-open items",
    )
    .await?;
    Ok(())
}

/// A registered worker.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkerRow {
    pub id: i64,
    pub host: String,
    pub pid: i32,
    pub slots: i32,
    pub busy: i32,
    pub lease_ms: i64,
    pub heartbeat_ms: i64,
    pub version: String,
    pub started_at: String,
    pub heartbeat_age_s: f64,
}

/// Register a worker; returns its id. Workers silent for a day are forgotten.
pub async fn register(
    conn: &Conn,
    host: &str,
    slots: usize,
    lease: Duration,
    heartbeat: Duration,
) -> Result<i64, PgError> {
    conn.execute(
        "DELETE FROM runner.workers WHERE heartbeat_at < now() - interval '1 day'",
        &[],
        "forget old workers",
    )
    .await?;
    let row = conn
        .query_opt(
            "INSERT INTO runner.workers (host, pid, slots, lease_ms, heartbeat_ms, version)
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            &[
                &host,
                &(std::process::id() as i32),
                &(slots as i32),
                &millis(lease),
                &millis(heartbeat),
                &env!("CARGO_PKG_VERSION"),
            ],
            "register the worker",
        )
        .await?;
    row.map(|r| r.get(0))
        .ok_or_else(|| PgError::Query("register the worker: no row returned".into()))
}

pub async fn deregister(conn: &Conn, worker: i64) -> Result<(), PgError> {
    conn.execute(
        "DELETE FROM runner.workers WHERE id = $1",
        &[&worker],
        "deregister",
    )
    .await?;
    Ok(())
}

pub async fn list_workers(conn: &Conn) -> Result<Vec<WorkerRow>, PgError> {
    let rows = conn
        .query(
            "SELECT id, host, pid, slots, busy, lease_ms, heartbeat_ms, version,
                 to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'),
                 greatest(extract(epoch FROM now() - heartbeat_at), 0)::float8
             FROM runner.workers ORDER BY host, pid, id",
            &[],
            "list workers",
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| WorkerRow {
            id: r.get(0),
            host: r.get(1),
            pid: r.get(2),
            slots: r.get(3),
            busy: r.get(4),
            lease_ms: r.get(5),
            heartbeat_ms: r.get(6),
            version: r.get(7),
            started_at: r.get(8),
            heartbeat_age_s: r.get(9),
        })
        .collect())
}
