//! Adoption after a crash: a coordinator can die while its array tasks go on running on
//! the cluster. For every item still to do, the newest attempt an earlier run submitted
//! and did not record is looked at: its outcome file is there (it finished: collected), or
//! its task is still queued or running (adopted: waited for); otherwise the item is
//! submitted again. Submission files without a line in the submissions log (the crash hit
//! between writing one and recording its `sbatch`) are looked up on the cluster by their
//! comment. A Slurm that cannot answer is never taken for "nothing there": that would run
//! items twice.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use crate::engine::error::EngineError;
use crate::engine::map::work::Candidates;
use crate::engine::slurm::client::{ClientError, SlurmClient, TaskId, is_terminal};
use crate::engine::slurm::collect::{Live, Task};
use crate::state::error::StateError;
use crate::state::slurm::outcome::Outcome;
use crate::state::slurm::paths::{OutcomeKey, SlurmPaths};
use crate::state::slurm::submission::{self, SubmissionRecord, SubmissionSpec};

/// How often a Slurm query whose answer decides between adopting and submitting again is
/// tried before the run stops (waiting 1, 2, 4... seconds in between).
pub const CERTAIN_TRIES: u32 = 4;

/// Run a Slurm query whose answer must be known: retried with backoff, then an
/// infrastructure error saying that nothing was submitted again.
pub async fn certain<T>(
    mut query: impl AsyncFnMut() -> Result<T, ClientError>,
    why: &str,
) -> Result<T, EngineError> {
    let mut wait = Duration::from_secs(1);
    let mut tries = 0;
    loop {
        tries += 1;
        match query().await {
            Ok(v) => return Ok(v),
            Err(e) if tries >= CERTAIN_TRIES => {
                return Err(EngineError::Infra(format!(
                    "{why}, but {e} ({tries} tries); nothing was submitted again, so no item \
                     runs twice: fix Slurm and resume the job"
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

/// What an earlier run left that this one takes over.
#[derive(Debug, Default)]
pub struct Adoption {
    /// Tasks still queued or running, with the adopted attempts they run.
    pub running: Vec<Task>,
    /// Outcomes of adopted attempts that finished.
    pub finished: Vec<(Outcome, std::path::PathBuf)>,
    /// The items adopted.
    pub items: Vec<usize>,
    /// What to tell the user, when anything was adopted.
    pub message: Option<String>,
}

/// The submissions of earlier runs, including those found by their comment.
async fn submissions(
    client: &impl SlurmClient,
    paths: &SlurmPaths,
    job_name: &str,
) -> Result<Vec<SubmissionRecord>, EngineError> {
    let mut records = submission::read_log(&paths.submissions())?;
    let known: HashSet<u64> = records.iter().map(|r| r.sub).collect();
    let mut orphans: Vec<u64> = sub_files(paths)?
        .into_iter()
        .filter(|s| !known.contains(s))
        .collect();
    if orphans.is_empty() {
        return Ok(records);
    }
    orphans.sort_unstable();
    let listing = certain(
        async || client.comments(job_name).await,
        "a submission of the earlier run may have reached Slurm without its job id being \
         recorded; finding it",
    )
    .await?;
    for sub in orphans {
        let Ok(spec) = SubmissionSpec::read(&paths.sub_file(sub)) else {
            continue; // written by an older version, or torn: cannot be identified
        };
        let tag = spec.comment();
        let job = listing.iter().find(|(_, c)| *c == tag).map(|(j, _)| j);
        let has_outcome = spec.tasks.iter().flatten().any(|t| {
            paths
                .outcome(&OutcomeKey::new(&t.item_id, sub, t.attempt))
                .exists()
        });
        // Not on the cluster and nothing collected: `sbatch` never submitted it.
        if job.is_none() && !has_outcome {
            continue;
        }
        let record = SubmissionRecord::new(&spec, job.map_or("", String::as_str));
        submission::append(&paths.submissions(), &record)?;
        records.push(record);
    }
    records.sort_by_key(|r| r.sub);
    Ok(records)
}

/// The numbers of the submission files in `slurm/`.
pub fn sub_files(paths: &SlurmPaths) -> Result<Vec<u64>, StateError> {
    let dir = match std::fs::read_dir(paths.root()) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(StateError::io("list", paths.root(), e)),
    };
    Ok(dir
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(SlurmPaths::parse_sub_file))
        .collect())
}

/// An attempt an earlier run submitted and did not record.
struct Candidate {
    idx: usize,
    attempt: u32,
    key: OutcomeKey,
    task: TaskId,
}

/// Take over what earlier runs left of the `queue`'s items.
pub async fn adopt(
    client: &impl SlurmClient,
    paths: &SlurmPaths,
    job_name: &str,
    queue: &Candidates<'_>,
) -> Result<Adoption, EngineError> {
    let records = submissions(client, paths, job_name).await?;
    // The newest unrecorded attempt of each item (a later submission wins a tie: the
    // earlier one ended unrecorded, so it was submitted again).
    let mut newest: HashMap<usize, Candidate> = HashMap::new();
    for rec in records.iter().rev() {
        for (index, task) in rec.tasks.iter().enumerate() {
            for r in task {
                if !queue.contains(r.idx)
                    || r.attempt <= queue.prior_attempts(r.idx)
                    || newest.get(&r.idx).is_some_and(|c| c.attempt >= r.attempt)
                {
                    continue;
                }
                let item_id = queue.item(r.idx)?.id.clone();
                newest.insert(
                    r.idx,
                    Candidate {
                        idx: r.idx,
                        attempt: r.attempt,
                        key: OutcomeKey::new(&item_id, rec.sub, r.attempt),
                        task: TaskId {
                            job: rec.slurm_job_id.clone(),
                            index,
                        },
                    },
                );
            }
        }
    }
    if newest.is_empty() {
        return Ok(Adoption::default());
    }
    let mut wanted: Vec<TaskId> = newest.values().map(|c| c.task.clone()).collect();
    wanted.sort();
    wanted.dedup();
    let states = certain(
        async || client.task_states(job_name, &wanted).await,
        "resuming needs to know which Slurm tasks of the earlier run are still queued or running",
    )
    .await?;
    let mut candidates: Vec<Candidate> = newest.into_values().collect();
    candidates.sort_by_key(|c| c.idx);
    let mut a = Adoption::default();
    let mut running: HashMap<TaskId, Task> = HashMap::new();
    let mut tasks_seen: HashSet<TaskId> = HashSet::new();
    for c in candidates {
        let path = paths.outcome(&c.key);
        if let Ok(o) = Outcome::read(&path) {
            a.finished.push((o, path));
        } else {
            let Some(state) = states.get(&c.task).filter(|s| !is_terminal(s)) else {
                continue;
            };
            let started = state != "PENDING";
            running
                .entry(c.task.clone())
                .or_insert_with(|| Task {
                    id: c.task.clone(),
                    live: Vec::new(),
                    started,
                    ended: None,
                })
                .live
                .push(Live {
                    idx: c.idx,
                    attempt: c.attempt,
                    key: c.key,
                });
        }
        tasks_seen.insert(c.task);
        a.items.push(c.idx);
    }
    if !a.items.is_empty() {
        let live: usize = running.values().map(|t| t.live.len()).sum();
        a.message = Some(format!(
            "adopted {} Slurm task(s) of an earlier run ({} item(s): {live} queued or running, \
             {} finished); not submitting them again",
            tasks_seen.len(),
            a.items.len(),
            a.finished.len()
        ));
    }
    a.running = running.into_values().collect();
    a.running.sort_by(|x, y| x.id.cmp(&y.id));
    Ok(a)
}
