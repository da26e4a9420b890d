//! The Slurm executor: the map's items run as Slurm job arrays instead of local processes.
//!
//! The coordinator (this process) writes each chunk of items to `slurm/sub-<N>.json`, submits
//! it with `sbatch --array=0-K%max_parallel`, and appends `{sub, slurm_job_id, items}` to
//! `slurm/submissions.jsonl` (fsynced) before it waits on the tasks. Each array task runs
//! `runner exec-item`, which runs the item with the same per-item code as the local executor
//! (attempts, retries, timeouts) and writes the outcome to
//! `slurm/outcomes/<item-file-stem>.<N>.json` atomically. The coordinator polls `squeue`
//! (and `sacct` for tasks squeue forgot), collects outcome files and records them through
//! [`Recorder::item_finished`], so the journal, the DLQ and the error policy are the same as
//! for local runs. A task that ended without an outcome file counts as a failed attempt.
//!
//! On resume, tasks of earlier submissions whose items are still to do are adopted when
//! they are still queued or running, or when their outcome file is there; only the other
//! items are submitted again.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::engine::dispatch::{MapEnd, MapIo, PolicyCounter};
use crate::engine::error::EngineError;
use crate::engine::item::{ItemResult, ItemRun, MapCtx};
use crate::engine::recorder::Recorder;
use crate::items::Item;
use crate::report::event::Event;
use crate::state::atomic::write_atomic;
use crate::state::error::StateError;
use crate::state::layout::item_file_stem;
use crate::state::records::{Attempt, Failure, ItemStatus};
use crate::workflow::model::{ErrorPolicy, ExecutorKind, RetryPolicy, SlurmOptions};

/// Paths of the Slurm executor inside a job directory (`slurm/`).
#[derive(Debug, Clone)]
pub struct SlurmPaths {
    root: PathBuf,
}

impl SlurmPaths {
    pub fn new(job_dir: &Path) -> Self {
        SlurmPaths {
            root: job_dir.join("slurm"),
        }
    }
    pub fn root(&self) -> &Path {
        &self.root
    }
    /// One line per `sbatch`: the Slurm job id and the items of each array index.
    pub fn submissions(&self) -> PathBuf {
        self.root.join("submissions.jsonl")
    }
    /// The tasks of submission `n` (read by `exec-item`).
    pub fn sub_file(&self, n: u64) -> PathBuf {
        self.root.join(format!("sub-{n}.json"))
    }
    pub fn outcomes(&self) -> PathBuf {
        self.root.join("outcomes")
    }
    pub fn outcome(&self, item_id: &str, sub: u64) -> PathBuf {
        self.outcomes()
            .join(format!("{}.{sub}.json", item_file_stem(item_id)))
    }
    /// Slurm's own stdout/stderr of each task (`%A_%a.out`).
    pub fn logs(&self) -> PathBuf {
        self.root.join("logs")
    }
    /// Job-wide values the tasks need that are not in the job files (setup captures).
    pub fn context(&self) -> PathBuf {
        self.root.join("context.json")
    }
    /// Present when the job was started or resumed with `--executor slurm`.
    pub fn executor_marker(&self) -> PathBuf {
        self.root.join("executor")
    }
}

/// `slurm/sub-<N>.json`: array index `i` runs `tasks[i]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SubmissionTasks {
    pub sub: u64,
    pub tasks: Vec<TaskSpec>,
    /// Random tag passed as `--comment`: finds this array on the cluster if the
    /// coordinator died before recording its job id (job names repeat across job dirs).
    #[serde(default)]
    pub token: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskSpec {
    pub idx: usize,
    pub item_id: String,
    pub item: Value,
    /// Attempts made by earlier runs (numbering continues after them).
    pub prior_attempts: u32,
}

/// One line of `slurm/submissions.jsonl`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SubmissionRecord {
    pub sub: u64,
    pub slurm_job_id: String,
    /// Item index of each array index.
    pub items: Vec<usize>,
    pub at: String,
}

/// `slurm/context.json`
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NodeContext {
    pub captures: Map<String, Value>,
}

/// `slurm/outcomes/<stem>.<N>.json`: what one task did with its item.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Outcome {
    pub sub: u64,
    pub idx: usize,
    pub item_id: String,
    pub attempts: Vec<Attempt>,
    pub succeeded: bool,
    #[serde(default)]
    pub captured: Map<String, Value>,
    pub duration_ms: u64,
    #[serde(default)]
    pub host: String,
}

impl Outcome {
    pub fn from_result(sub: u64, r: &ItemResult) -> Self {
        Outcome {
            sub,
            idx: r.idx,
            item_id: r.item.id.clone(),
            attempts: r.attempts.clone(),
            succeeded: r.succeeded,
            captured: r.captured.clone(),
            duration_ms: r.duration.as_millis() as u64,
            host: nix::unistd::gethostname()
                .map(|h| h.to_string_lossy().into_owned())
                .unwrap_or_default(),
        }
    }
}

/// The executor of a run: `--executor` wins (and is remembered for later resumes and DLQ
/// retries of the job), then what an earlier `--executor slurm` left, then the workflow.
pub fn choose_executor(
    job_dir: &Path,
    workflow: ExecutorKind,
    flag: Option<ExecutorKind>,
) -> Result<ExecutorKind, StateError> {
    let marker = SlurmPaths::new(job_dir).executor_marker();
    match flag {
        Some(ExecutorKind::Slurm) => {
            std::fs::create_dir_all(marker.parent().unwrap_or(job_dir))
                .map_err(|e| StateError::io("create directory", &marker, e))?;
            write_atomic(&marker, b"slurm\n")?;
            Ok(ExecutorKind::Slurm)
        }
        Some(ExecutorKind::Local) => {
            let _ = std::fs::remove_file(&marker);
            Ok(ExecutorKind::Local)
        }
        None if marker.exists() => Ok(ExecutorKind::Slurm),
        None => Ok(workflow),
    }
}

fn now() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}

/// The `--comment` that names a submission on the cluster.
fn sub_comment(sub: u64, token: &str) -> String {
    format!("runner-sub-{sub}-{token}")
}

fn infra_err(msg: impl Into<String>) -> EngineError {
    EngineError::Infra(msg.into())
}

// ------------------------------------------------------------------ Slurm commands

/// Run a Slurm client command; `Err` carries a one-line reason.
async fn slurm_cmd(prog: &str, args: &[String]) -> Result<String, String> {
    let mut c = tokio::process::Command::new(prog);
    c.args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let child = crate::engine::reaper::spawn_registered(|| c.spawn(), |ch| ch.id())
        .map_err(|e| format!("{prog}: {e}"))?;
    let pid = child.id().map(|p| p as i32);
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output()).await;
    if let Some(pid) = pid {
        crate::engine::reaper::forget(pid);
    }
    let out = match out {
        Ok(Ok(o)) => o,
        Ok(Err(e)) => return Err(format!("{prog}: {e}")),
        Err(_) => return Err(format!("{prog} did not answer within 60s")),
    };
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        Err(format!(
            "{prog} failed ({}): {}",
            out.status,
            err.lines().last().unwrap_or("").trim()
        ))
    }
}

/// Whether a Slurm job state is final.
fn is_terminal(state: &str) -> bool {
    !matches!(
        state,
        "PENDING"
            | "RUNNING"
            | "CONFIGURING"
            | "COMPLETING"
            | "SUSPENDED"
            | "REQUEUED"
            | "REQUEUE_HOLD"
            | "REQUEUE_FED"
            | "RESIZING"
            | "SIGNALING"
            | "STAGE_OUT"
            | "STOPPED"
            | "RESV_DEL_HOLD"
            | "POWER_UP_NODE"
    )
}

/// The array index standing for an array's tasks that were never split off.
const REST: usize = usize::MAX;

fn state_of<'a>(
    states: &'a HashMap<(String, usize), String>,
    job: &str,
    k: usize,
) -> Option<&'a str> {
    states
        .get(&(job.to_owned(), k))
        .or_else(|| states.get(&(job.to_owned(), REST)))
        .map(String::as_str)
}

/// How often a Slurm query whose answer decides between adopting and submitting again is
/// tried before the run stops (with waits of 1, 2, 4... seconds in between).
const CERTAIN_TRIES: u32 = 4;

/// Run a Slurm query whose answer must be known: retried with backoff, then an
/// infrastructure error. An unknown answer is never taken for "nothing there" (that would
/// submit items that may already run a second time).
async fn slurm_cmd_certain(prog: &str, args: &[String], why: &str) -> Result<String, EngineError> {
    let mut wait = Duration::from_secs(1);
    let mut tries = 0;
    loop {
        tries += 1;
        match slurm_cmd(prog, args).await {
            Ok(out) => return Ok(out),
            Err(e) if tries >= CERTAIN_TRIES => {
                return Err(EngineError::Infra(format!(
                    "{why}, but {e} ({tries} tries); nothing was submitted again, so no item runs twice: fix Slurm and resume the job"
                )));
            }
            Err(e) => {
                tracing::warn!("{e}; trying again in {}s", wait.as_secs());
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
        }
    }
}

fn squeue_args(name: &str, format: &str) -> Vec<String> {
    ["-h", "-r", "-t", "all", "-n", name, "-o", format]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

/// States of the array tasks of our Slurm jobs, keyed by (job id, array index). `Err` when
/// squeue could not be asked. Tasks squeue no longer knows are looked up with sacct when
/// accounting works; tasks neither knows are absent from the map (they ended: squeue lists
/// every task that is queued or running).
async fn task_states(
    name: &str,
    wanted: &HashSet<(String, usize)>,
) -> Result<HashMap<(String, usize), String>, String> {
    let out = slurm_cmd("squeue", &squeue_args(name, "%F %K %T")).await?;
    parse_task_states(wanted, &out).await
}

/// [`task_states`], but a failing squeue is retried and then an error.
async fn task_states_certain(
    name: &str,
    wanted: &HashSet<(String, usize)>,
    why: &str,
) -> Result<HashMap<(String, usize), String>, EngineError> {
    let out = slurm_cmd_certain("squeue", &squeue_args(name, "%F %K %T"), why).await?;
    parse_task_states(wanted, &out)
        .await
        .map_err(EngineError::Infra)
}

/// squeue's `%F %K %T` lines as states, completed with sacct for the tasks it forgot.
async fn parse_task_states(
    wanted: &HashSet<(String, usize)>,
    out: &str,
) -> Result<HashMap<(String, usize), String>, String> {
    let mut states = HashMap::new();
    for line in out.lines() {
        let mut f = line.split_whitespace();
        if let (Some(job), Some(k), Some(state)) = (f.next(), f.next(), f.next()) {
            // Tasks that never started are one record (`N/A` or `[3-49%4]`): the rest.
            let k = k.parse::<usize>().unwrap_or(REST);
            states.insert((job.to_owned(), k), state.to_owned());
        }
    }
    let missing: HashSet<&String> = wanted
        .iter()
        .filter(|t| state_of(&states, &t.0, t.1).is_none())
        .map(|(j, _)| j)
        .collect();
    if !missing.is_empty() {
        let ids: Vec<&str> = missing.iter().map(|s| s.as_str()).collect();
        if let Ok(out) = slurm_cmd(
            "sacct",
            &[
                "-n".into(),
                "-X".into(),
                "-P".into(),
                "-j".into(),
                ids.join(","),
                "-o".into(),
                "JobID,State".into(),
            ],
        )
        .await
        {
            for line in out.lines() {
                let Some((id, state)) = line.split_once('|') else {
                    continue;
                };
                let Some((job, k)) = id.split_once('_') else {
                    continue;
                };
                if let Ok(k) = k.parse::<usize>() {
                    let state = state.split_whitespace().next().unwrap_or("").to_owned();
                    states.entry((job.to_owned(), k)).or_insert(state);
                }
            }
        }
    }
    Ok(states)
}

async fn scancel(job_ids: &[String], only_pending: bool) -> Result<(), String> {
    if job_ids.is_empty() {
        return Ok(());
    }
    let mut args: Vec<String> = Vec::new();
    if only_pending {
        args.push("--state=PENDING".into());
    }
    args.extend(job_ids.iter().cloned());
    slurm_cmd("scancel", &args).await.map(|_| ())
}

/// `--time` in whole minutes (Slurm's granularity), at least 1.
fn slurm_minutes(d: Duration) -> u64 {
    d.as_secs().div_ceil(60).max(1)
}

/// The Slurm time limit of one item: `slurm.time_limit`, else enough for every attempt of
/// `map.timeout` plus retry delays and a minute of slack; `None` without either.
pub fn item_time_limit(
    opts: &SlurmOptions,
    timeout: Option<Duration>,
    kill_grace: Duration,
    retry: &RetryPolicy,
) -> Option<Duration> {
    if let Some(t) = opts.time_limit {
        return Some(t);
    }
    let t = timeout?;
    let n = retry.max_attempts.max(1);
    Some((t + kill_grace) * n + retry.max_delay * (n - 1) + Duration::from_secs(60))
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

// ------------------------------------------------------------------ the coordinator

/// One array task the coordinator waits for.
struct Task {
    slurm_job: String,
    array_index: usize,
    idx: usize,
    item: Arc<Item>,
    prior_attempts: u32,
    /// When squeue/sacct first said the task ended while no outcome was there yet.
    ended: Option<(Instant, String)>,
}

struct Coordinator<'a> {
    paths: SlurmPaths,
    opts: &'a SlurmOptions,
    job_dir: PathBuf,
    job_name: String,
    time_limit: Option<Duration>,
    next_sub: u64,
    /// Keyed by (item file stem, submission).
    active: HashMap<(String, u64), Task>,
    submissions: usize,
}

pub async fn dispatch<E>(
    ctx: Arc<MapCtx<E>>,
    queue: Vec<ItemRun>,
    max_parallel: usize,
    policy: &ErrorPolicy,
    opts: &SlurmOptions,
    rec: &mut Recorder,
    io: MapIo<'_>,
) -> Result<MapEnd, EngineError> {
    let paths = SlurmPaths::new(rec.dir.path());
    for d in [paths.root().to_path_buf(), paths.outcomes(), paths.logs()] {
        std::fs::create_dir_all(&d).map_err(|e| StateError::io("create directory", &d, e))?;
    }
    let job_dir = std::fs::canonicalize(rec.dir.path())
        .map_err(|e| StateError::io("resolve", rec.dir.path(), e))?;
    let ctx_bytes = serde_json::to_vec(&NodeContext {
        captures: ctx.vars.captures.clone(),
    })
    .map_err(|e| infra_err(e.to_string()))?;
    write_atomic(&paths.context(), &ctx_bytes)?;
    let mut co = Coordinator {
        opts,
        job_name: format!("runner-{}", rec.dir.id()),
        time_limit: item_time_limit(opts, ctx.timeout, ctx.kill_grace, &ctx.retry),
        next_sub: 1,
        active: HashMap::new(),
        submissions: 0,
        job_dir,
        paths,
    };
    let mut queue = co.adopt(queue, rec).await?;
    queue.reverse(); // pop from the end = the queue's order
    let max_parallel = max_parallel.max(1);
    let mut counter = PolicyCounter::default();
    let mut stopped: Option<String> = None;
    let mut cancelled = false;
    let mut paused = rec.view.paused().is_some();
    let mut halted_seen = false;
    let mut poll_failures = 0u32;
    let grace = (co.opts.poll_interval * 3).max(Duration::from_secs(2));
    loop {
        let halted = stopped.is_some() || io.stop.is_cancelled() || ctx.cancel.is_cancelled();
        if ctx.cancel.is_cancelled() {
            // Forced stop: cancel every task; their items stay pending.
            let jobs = co.job_ids();
            if let Err(e) = scancel(&jobs, false).await {
                rec.report(&Event::Warning {
                    message: format!("could not cancel the Slurm tasks: {e}"),
                });
            }
            if !co.active.is_empty() {
                cancelled = true;
            }
            co.active.clear();
            break;
        }
        if halted && !halted_seen {
            halted_seen = true;
            // Tasks that have not started are not in flight: take them back.
            let _ = scancel(&co.job_ids(), true).await;
        }
        if !halted && !paused && !queue.is_empty() && co.active.len() <= max_parallel {
            let n = co.opts.array_size.min(queue.len());
            let chunk: Vec<ItemRun> = (0..n).filter_map(|_| queue.pop()).collect();
            co.submit(chunk, max_parallel, rec).await?;
            continue;
        }
        if co.active.is_empty() && (halted || queue.is_empty()) {
            break;
        }
        tokio::select! {
            biased;
            Some(msg) = io.control.recv() => paused = rec.apply_control(msg, co.active.len())?,
            _ = io.stop.cancelled(), if !halted => continue,
            _ = ctx.cancel.cancelled() => continue,
            _ = tokio::time::sleep(co.opts.poll_interval) => {}
        }
        // Poll: states first, outcome files second, so an ended task's file is visible.
        let wanted: HashSet<(String, usize)> = co
            .active
            .values()
            .map(|t| (t.slurm_job.clone(), t.array_index))
            .collect();
        let states = match task_states(&co.job_name, &wanted).await {
            Ok(s) => {
                poll_failures = 0;
                Some(s)
            }
            Err(e) => {
                // Unknown is unknown: no task counts as ended; outcome files are still
                // collected. Say so now and then.
                poll_failures += 1;
                if poll_failures % 10 == 1 {
                    rec.report(&Event::Warning {
                        message: format!("cannot poll Slurm ({e}); waiting for it to answer"),
                    });
                }
                None
            }
        };
        let results = co.collect(halted, grace, states.as_ref(), rec)?;
        let mut consumed = Vec::new();
        for (result, file) in results {
            let Some(result) = result else {
                // Taken back after a stop: the item stays pending.
                cancelled = true;
                continue;
            };
            let status = rec.item_finished(&result, policy.on_item_failure)?;
            if let Some(reason) = counter.count(policy, status != ItemStatus::Succeeded)
                && stopped.is_none()
            {
                rec.report(&Event::Warning {
                    message: format!(
                        "stopping the map: {reason}; Slurm tasks already running finish, the rest stay pending"
                    ),
                });
                stopped = Some(reason);
            }
            consumed.extend(file);
        }
        if !consumed.is_empty() {
            rec.flush()?;
            for f in consumed {
                let _ = std::fs::remove_file(f);
            }
        }
    }
    rec.flush()?;
    let unfinished = !queue.is_empty();
    Ok(MapEnd::decide(
        ctx.cancel.is_cancelled() || cancelled || (io.stop.is_cancelled() && unfinished),
        stopped,
    ))
}

impl Coordinator<'_> {
    fn job_ids(&self) -> Vec<String> {
        let set: HashSet<&String> = self.active.values().map(|t| &t.slurm_job).collect();
        set.into_iter().cloned().collect()
    }

    /// Take over the tasks of earlier submissions whose items are in `queue`: those still
    /// queued or running, and those whose outcome file waits to be collected. Returns the
    /// items left to submit.
    async fn adopt(
        &mut self,
        queue: Vec<ItemRun>,
        rec: &mut Recorder,
    ) -> Result<Vec<ItemRun>, EngineError> {
        let mut records = read_submissions(&self.paths.submissions())?;
        self.next_sub = records.iter().map(|r| r.sub).max().unwrap_or(0) + 1;
        // Submission files written before a crash that hid their sbatch.
        let mut orphans = Vec::new();
        if let Ok(rd) = std::fs::read_dir(self.paths.root()) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if let Some(n) = name
                    .strip_prefix("sub-")
                    .and_then(|r| r.strip_suffix(".json"))
                    .and_then(|n| n.parse::<u64>().ok())
                {
                    self.next_sub = self.next_sub.max(n + 1);
                    if !records.iter().any(|r| r.sub == n) {
                        orphans.push(n);
                    }
                }
            }
        }
        if !orphans.is_empty() {
            records.extend(self.recover_orphans(&orphans).await?);
            records.sort_by_key(|r| r.sub);
        }
        if records.is_empty() || queue.is_empty() {
            return Ok(queue);
        }
        let todo: HashMap<usize, usize> = queue
            .iter()
            .enumerate()
            .map(|(pos, r)| (r.idx, pos))
            .collect();
        let wanted: HashSet<(String, usize)> = records
            .iter()
            .flat_map(|r| {
                r.items
                    .iter()
                    .enumerate()
                    .filter(|(_, idx)| todo.contains_key(idx))
                    .map(|(k, _)| (r.slurm_job_id.clone(), k))
            })
            .collect();
        if wanted.is_empty() {
            return Ok(queue);
        }
        let states = task_states_certain(
            &self.job_name,
            &wanted,
            "resuming needs to know which Slurm tasks of the earlier run are still queued or running",
        )
        .await?;
        let mut taken: HashSet<usize> = HashSet::new();
        let (mut running, mut finished) = (0usize, 0usize);
        // Newest submissions first: an item submitted twice is adopted from the later one.
        for r in records.iter().rev() {
            let mut tasks: Option<SubmissionTasks> = None;
            for (k, idx) in r.items.iter().enumerate() {
                let Some(&pos) = todo.get(idx) else { continue };
                if taken.contains(idx) {
                    continue;
                }
                let run = &queue[pos];
                let has_outcome = self.paths.outcome(&run.item.id, r.sub).exists();
                let live = state_of(&states, &r.slurm_job_id, k).is_some_and(|st| !is_terminal(st));
                if !has_outcome && !live {
                    continue;
                }
                if tasks.is_none() {
                    tasks = read_sub_file(&self.paths.sub_file(r.sub)).ok();
                }
                let prior = tasks
                    .as_ref()
                    .and_then(|t| t.tasks.get(k))
                    .map(|t| t.prior_attempts)
                    .unwrap_or(run.prior_attempts);
                taken.insert(*idx);
                if has_outcome {
                    finished += 1;
                } else {
                    running += 1;
                }
                self.active.insert(
                    (item_file_stem(&run.item.id), r.sub),
                    Task {
                        slurm_job: r.slurm_job_id.clone(),
                        array_index: k,
                        idx: *idx,
                        item: run.item.clone(),
                        prior_attempts: prior,
                        ended: None,
                    },
                );
            }
        }
        if !taken.is_empty() {
            rec.report(&Event::Warning {
                message: format!(
                    "adopted {} Slurm task(s) of an earlier run ({running} queued or running, {finished} finished); not submitting them again",
                    taken.len()
                ),
            });
        }
        Ok(queue
            .into_iter()
            .filter(|r| !taken.contains(&r.idx))
            .collect())
    }

    /// Submissions whose `sbatch` may have run but whose job id was never recorded (the
    /// coordinator died during or right after `sbatch`): find their Slurm job by the
    /// `--comment` each submission carries, and record them now, so their tasks are
    /// adopted and their outcome files collected instead of submitted twice.
    async fn recover_orphans(&self, subs: &[u64]) -> Result<Vec<SubmissionRecord>, EngineError> {
        let listing = slurm_cmd_certain(
            "squeue",
            &squeue_args(&self.job_name, "%F %k"),
            "a submission of the earlier run may have reached Slurm without its job id being recorded; finding it",
        )
        .await?;
        let mut found = Vec::new();
        for &sub in subs {
            let Ok(tasks) = read_sub_file(&self.paths.sub_file(sub)) else {
                continue;
            };
            if tasks.token.is_empty() {
                continue; // written by a version without tokens: cannot be identified
            }
            let tag = sub_comment(sub, &tasks.token);
            let slurm_job_id = listing
                .lines()
                .filter_map(|l| l.split_once(' '))
                .find(|(_, comment)| comment.trim() == tag)
                .map(|(id, _)| id.to_owned())
                .unwrap_or_default();
            // Not on the cluster and nothing collected: `sbatch` never submitted it, so its
            // items are simply submitted again. Otherwise it becomes a normal submission.
            let has_outcome = tasks
                .tasks
                .iter()
                .any(|t| self.paths.outcome(&t.item_id, sub).exists());
            if slurm_job_id.is_empty() && !has_outcome {
                continue;
            }
            let record = SubmissionRecord {
                sub,
                slurm_job_id,
                items: tasks.tasks.iter().map(|t| t.idx).collect(),
                at: now(),
            };
            append_durable(&self.paths.submissions(), &record)?;
            found.push(record);
        }
        Ok(found)
    }

    /// Write the submission file, sbatch it, and record the Slurm job id durably.
    async fn submit(
        &mut self,
        chunk: Vec<ItemRun>,
        max_parallel: usize,
        rec: &mut Recorder,
    ) -> Result<(), EngineError> {
        let sub = self.next_sub;
        self.next_sub += 1;
        let tasks = SubmissionTasks {
            sub,
            tasks: chunk
                .iter()
                .map(|r| TaskSpec {
                    idx: r.idx,
                    item_id: r.item.id.clone(),
                    item: r.item.value.clone(),
                    prior_attempts: r.prior_attempts,
                })
                .collect(),
            token: format!("{:016x}", fastrand::u64(..)),
        };
        let bytes = serde_json::to_vec(&tasks).map_err(|e| infra_err(e.to_string()))?;
        write_atomic(&self.paths.sub_file(sub), &bytes)?;
        let runner = match &self.opts.runner_path {
            Some(p) => p.clone(),
            None => std::env::current_exe()
                .map_err(|e| infra_err(format!("cannot find the runner binary: {e}")))?,
        };
        let wrap = format!(
            "exec {} exec-item --job-dir {} --submission {sub}",
            shell_quote(&runner.to_string_lossy()),
            shell_quote(&self.job_dir.to_string_lossy()),
        );
        let mut args: Vec<String> = vec![
            "--parsable".into(),
            format!("--job-name={}", self.job_name),
            format!("--comment={}", sub_comment(sub, &tasks.token)),
            format!("--array=0-{}%{}", chunk.len() - 1, max_parallel),
            "--no-requeue".into(),
            format!(
                "--output={}/%A_%a.out",
                self.job_dir.join("slurm/logs").to_string_lossy()
            ),
            format!("--chdir={}", self.job_dir.to_string_lossy()),
        ];
        if let Some(t) = self.time_limit {
            args.push(format!("--time={}", slurm_minutes(t)));
        }
        if let Some(p) = &self.opts.partition {
            args.push(format!("--partition={p}"));
        }
        if let Some(c) = self.opts.cpus_per_item {
            args.push(format!("--cpus-per-task={c}"));
        }
        if let Some(m) = &self.opts.mem_per_item {
            args.push(format!("--mem={m}"));
        }
        args.extend(self.opts.sbatch_args.iter().cloned());
        args.push(format!("--wrap={wrap}"));
        let mut tries = 0;
        let out = loop {
            tries += 1;
            match slurm_cmd("sbatch", &args).await {
                Ok(out) => break out,
                Err(e) if tries < 3 => {
                    rec.report(&Event::Warning {
                        message: format!("{e}; trying again"),
                    });
                    tokio::time::sleep(Duration::from_secs(tries)).await;
                }
                Err(e) => {
                    let _ = scancel(&self.job_ids(), false).await;
                    return Err(infra_err(format!("submitting to Slurm failed: {e}")));
                }
            }
        };
        let slurm_job = out.trim().split(';').next().unwrap_or("").trim().to_owned();
        if slurm_job.is_empty() || !slurm_job.chars().all(|c| c.is_ascii_digit()) {
            return Err(infra_err(format!(
                "sbatch printed {out:?} instead of a job id"
            )));
        }
        let record = SubmissionRecord {
            sub,
            slurm_job_id: slurm_job.clone(),
            items: chunk.iter().map(|r| r.idx).collect(),
            at: now(),
        };
        append_durable(&self.paths.submissions(), &record)?;
        self.submissions += 1;
        tracing::info!(
            "submitted {} items as Slurm job {slurm_job} (submission {sub})",
            chunk.len()
        );
        for (k, r) in chunk.into_iter().enumerate() {
            self.active.insert(
                (item_file_stem(&r.item.id), sub),
                Task {
                    slurm_job: slurm_job.clone(),
                    array_index: k,
                    idx: r.idx,
                    item: r.item,
                    prior_attempts: r.prior_attempts,
                    ended: None,
                },
            );
        }
        Ok(())
    }

    /// Results ready to record: outcome files, and tasks that ended without one (a failed
    /// attempt; `None` for tasks taken back by a stop). Each comes with the file to delete
    /// once the record is on disk.
    #[allow(clippy::type_complexity)]
    fn collect(
        &mut self,
        halted: bool,
        grace: Duration,
        states: Option<&HashMap<(String, usize), String>>,
        rec: &mut Recorder,
    ) -> Result<Vec<(Option<ItemResult>, Option<PathBuf>)>, EngineError> {
        let mut out = Vec::new();
        let mut found: Vec<((String, u64), PathBuf)> = Vec::new();
        if let Ok(rd) = std::fs::read_dir(self.paths.outcomes()) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let Some(base) = name.strip_suffix(".json") else {
                    continue;
                };
                let Some((stem, sub)) = base.rsplit_once('.') else {
                    continue;
                };
                let Ok(sub) = sub.parse::<u64>() else {
                    continue;
                };
                let key = (stem.to_owned(), sub);
                if self.active.contains_key(&key) {
                    found.push((key, e.path()));
                }
            }
        }
        for (key, path) in found {
            let outcome: Outcome = match std::fs::read(&path)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
            {
                Some(o) => o,
                None => {
                    rec.report(&Event::Warning {
                        message: format!("unreadable outcome file {}", path.display()),
                    });
                    continue;
                }
            };
            let Some(task) = self.active.remove(&key) else {
                continue;
            };
            out.push((
                Some(ItemResult {
                    idx: task.idx,
                    item: task.item,
                    attempts: outcome.attempts,
                    succeeded: outcome.succeeded,
                    cancelled: false,
                    captured: outcome.captured,
                    duration: Duration::from_millis(outcome.duration_ms),
                }),
                Some(path),
            ));
        }
        let Some(states) = states else {
            return Ok(out);
        };
        let mut gone = Vec::new();
        for (key, t) in self.active.iter_mut() {
            let state = state_of(states, &t.slurm_job, t.array_index).unwrap_or("UNKNOWN");
            if !is_terminal(state) {
                t.ended = None;
                continue;
            }
            match &t.ended {
                None => t.ended = Some((Instant::now(), state.to_owned())),
                Some((since, _)) if since.elapsed() >= grace => gone.push(key.clone()),
                Some(_) => {}
            }
        }
        for key in gone {
            let Some(t) = self.active.remove(&key) else {
                continue;
            };
            let state = t.ended.as_ref().map(|(_, s)| s.clone()).unwrap_or_default();
            // After a stop, tasks taken back before they started are no failures.
            if halted && (state == "CANCELLED" || state == "UNKNOWN") {
                out.push((None, None));
                continue;
            }
            let failure = match state.as_str() {
                "TIMEOUT" | "DEADLINE" => Failure::Timeout {
                    after_ms: self.time_limit.map(|d| d.as_millis() as u64).unwrap_or(0),
                    step: 0,
                },
                _ => Failure::Signal { signal: 9, step: 0 },
            };
            let log = self
                .paths
                .logs()
                .join(format!("{}_{}.out", t.slurm_job, t.array_index));
            let tail = std::fs::read_to_string(&log)
                .map(|s| {
                    let lines: Vec<&str> = s.lines().collect();
                    lines[lines.len().saturating_sub(5)..].join("\n")
                })
                .unwrap_or_default();
            let stderr_tail = format!(
                "Slurm task {}_{} ended {state} without an outcome (log: {})\n{tail}",
                t.slurm_job,
                t.array_index,
                log.display()
            );
            out.push((
                Some(ItemResult {
                    idx: t.idx,
                    item: t.item,
                    attempts: vec![Attempt {
                        attempt: t.prior_attempts + 1,
                        started_at: now(),
                        duration_ms: 0,
                        failure: Some(failure),
                        stderr_tail: stderr_tail.trim_end().to_owned(),
                    }],
                    succeeded: false,
                    cancelled: false,
                    captured: Map::new(),
                    duration: Duration::ZERO,
                }),
                None,
            ));
        }
        Ok(out)
    }
}

pub fn read_submissions(path: &Path) -> Result<Vec<SubmissionRecord>, StateError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(StateError::io("read", path, e)),
    };
    // A torn last line (crash while appending) is skipped.
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect())
}

pub fn read_sub_file(path: &Path) -> Result<SubmissionTasks, StateError> {
    let bytes = std::fs::read(path).map_err(|e| StateError::io("read", path, e))?;
    serde_json::from_slice(&bytes).map_err(|e| StateError::Corrupt {
        path: path.to_path_buf(),
        detail: e.to_string(),
    })
}

fn append_durable<T: Serialize>(path: &Path, value: &T) -> Result<(), StateError> {
    let mut line = serde_json::to_vec(value).map_err(|e| StateError::Corrupt {
        path: path.to_path_buf(),
        detail: e.to_string(),
    })?;
    line.push(b'\n');
    let new = !path.exists();
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| StateError::io("open", path, e))?;
    f.write_all(&line)
        .and_then(|_| f.sync_data())
        .map_err(|e| StateError::io("append", path, e))?;
    if new && let Some(dir) = path.parent() {
        crate::state::atomic::fsync_dir(dir)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_limits() {
        let o = SlurmOptions::default();
        let r = RetryPolicy::default();
        assert_eq!(item_time_limit(&o, None, Duration::from_secs(5), &r), None);
        let t = item_time_limit(
            &o,
            Some(Duration::from_secs(30)),
            Duration::from_secs(5),
            &r,
        );
        assert_eq!(t, Some(Duration::from_secs(95)));
        assert_eq!(slurm_minutes(t.unwrap()), 2);
        assert_eq!(slurm_minutes(Duration::from_secs(1)), 1);
        let o = SlurmOptions {
            time_limit: Some(Duration::from_secs(600)),
            ..SlurmOptions::default()
        };
        assert_eq!(
            item_time_limit(&o, Some(Duration::from_secs(30)), Duration::ZERO, &r),
            Some(Duration::from_secs(600))
        );
    }

    #[test]
    fn states() {
        assert!(!is_terminal("PENDING"));
        assert!(!is_terminal("RUNNING"));
        assert!(is_terminal("COMPLETED"));
        assert!(is_terminal("TIMEOUT"));
        assert!(is_terminal("UNKNOWN"));
    }

    #[test]
    fn executor_choice_is_remembered() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path();
        assert_eq!(
            choose_executor(p, ExecutorKind::Local, None).unwrap(),
            ExecutorKind::Local
        );
        assert_eq!(
            choose_executor(p, ExecutorKind::Local, Some(ExecutorKind::Slurm)).unwrap(),
            ExecutorKind::Slurm
        );
        assert_eq!(
            choose_executor(p, ExecutorKind::Local, None).unwrap(),
            ExecutorKind::Slurm
        );
        assert_eq!(
            choose_executor(p, ExecutorKind::Slurm, Some(ExecutorKind::Local)).unwrap(),
            ExecutorKind::Local
        );
    }

    #[test]
    fn submissions_skip_torn_lines() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("s.jsonl");
        let r = SubmissionRecord {
            sub: 1,
            slurm_job_id: "7".into(),
            items: vec![3, 4],
            at: now(),
        };
        append_durable(&p, &r).unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(&p)
            .unwrap()
            .write_all(b"{\"sub\":2,\"slu")
            .unwrap();
        let all = read_submissions(&p).unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].items, vec![3, 4]);
    }
}
