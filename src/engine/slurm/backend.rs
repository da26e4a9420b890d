//! The Slurm map backend: the coordinator. It submits the dispatcher's attempts as job
//! arrays whose tasks each run a batch of them (`runner exec-item`), polls Slurm once per
//! poll interval for all arrays, turns outcome files and tasks that ended without them into
//! attempt ends, and takes over what a crashed run left (see `adopt.rs`). It never records,
//! retries or applies the error policy: the dispatcher does.
//!
//! Each submission is written to `slurm/sub-<N>.json` before `sbatch`, and its Slurm job id
//! appended (fsynced) to `slurm/submissions.jsonl` before the coordinator waits on it.

use std::collections::{HashSet, VecDeque};
use std::path::PathBuf;
use std::time::Duration;

use tokio::time::Instant;

use crate::engine::error::EngineError;
use crate::engine::map::backend::{AttemptRun, BackendEvent, MapBackend};
use crate::engine::map::work::Candidates;
use crate::engine::slurm::adopt::{adopt, sub_files};
use crate::engine::slurm::batch::{Durations, Sizing, tasks};
use crate::engine::slurm::client::{SbatchRequest, SlurmClient, TaskId};
use crate::engine::slurm::collect::{
    Found, Live, Task, Tasks, cancelled_end, lost_end, outcome_end,
};
use crate::state::error::StateError;
use crate::state::job::JobView;
use crate::state::layout::JobDir;
use crate::state::records::ItemStatus;
use crate::state::slurm::paths::{OutcomeKey, SlurmPaths};
use crate::state::slurm::submission::{
    self, NodeContext, SubmissionRecord, SubmissionSpec, TaskItem,
};
use crate::workflow::model::{SlurmOptions, Workflow};

/// What the coordinator of one job's map needs to know.
#[derive(Debug, Clone)]
pub struct SlurmJob {
    /// The job directory, absolute (the tasks find it at the same path).
    pub job_dir: PathBuf,
    /// `runner-<job id>`: the name of every array of the job.
    pub job_name: String,
    pub opts: SlurmOptions,
    /// `map.timeout` and `map.kill_grace` (for Slurm's time limit of a task).
    pub timeout: Option<Duration>,
    pub kill_grace: Duration,
    /// The runner binary the tasks run.
    pub runner: PathBuf,
    /// Items in flight at once (`map.max_parallel`).
    pub max_parallel: usize,
    /// Durations of items that succeeded in earlier runs (sizing's first guess).
    pub recorded: Durations,
}

impl SlurmJob {
    /// The map of `wf` in the job at `dir`, whose recorded state is `view`.
    pub fn new(
        dir: &JobDir,
        wf: &Workflow,
        view: &JobView,
        max_parallel: usize,
    ) -> Result<Self, EngineError> {
        let job_dir = std::fs::canonicalize(dir.path())
            .map_err(|e| StateError::io("resolve", dir.path(), e))?;
        let runner = match &wf.slurm.runner_path {
            Some(p) => p.clone(),
            None => std::env::current_exe().map_err(|e| {
                EngineError::Infra(format!(
                    "cannot find the runner binary for the Slurm tasks: {e}; set slurm.runner_path"
                ))
            })?,
        };
        let recorded = view
            .items
            .with_status(ItemStatus::Succeeded)
            .map(|i| view.items.duration_ms(i))
            .collect();
        Ok(SlurmJob {
            job_dir,
            job_name: format!("runner-{}", dir.id()),
            opts: wf.slurm.clone(),
            timeout: wf.map.timeout,
            kill_grace: wf.map.kill_grace,
            runner,
            max_parallel,
            recorded,
        })
    }
}

/// How many times a refused `sbatch` is tried.
const SBATCH_TRIES: u64 = 3;

pub struct SlurmBackend<C> {
    client: C,
    job: SlurmJob,
    paths: SlurmPaths,
    sizing: Sizing,
    next_sub: u64,
    tasks: Tasks,
    /// Events not handed out yet, with the outcome file each consumes.
    ready: VecDeque<(BackendEvent, Option<PathBuf>)>,
    /// Outcome files of events handed out: deleted once they are recorded.
    consumed: Vec<PathBuf>,
    next_poll: Instant,
    poll_failures: u32,
    /// A stop began: unstarted tasks were cancelled and are taken back.
    halted: bool,
    /// Items whose last attempt was lost with its task: the next one runs alone in its
    /// task, so an item that kills its task does not take its batch with it again.
    lost: HashSet<usize>,
}

impl<C: SlurmClient> SlurmBackend<C> {
    /// The coordinator of `job`; writes the context the tasks read (`captures`: setup's).
    pub fn new(
        client: C,
        job: SlurmJob,
        captures: serde_json::Map<String, serde_json::Value>,
    ) -> Result<Self, EngineError> {
        let paths = SlurmPaths::new(&job.job_dir);
        for d in [paths.root().to_path_buf(), paths.outcomes(), paths.logs()] {
            crate::state::atomic::create_dir_private(&d)?;
        }
        NodeContext { captures }.write(&paths.context())?;
        let logged = submission::read_log(&paths.submissions())?;
        let next_sub = logged
            .iter()
            .map(|r| r.sub)
            .chain(sub_files(&paths)?)
            .max()
            .unwrap_or(0)
            + 1;
        Ok(SlurmBackend {
            sizing: Sizing::new(&job.opts, job.max_parallel, job.recorded),
            client,
            paths,
            next_sub,
            tasks: Tasks::default(),
            ready: VecDeque::new(),
            consumed: Vec::new(),
            next_poll: Instant::now(),
            poll_failures: 0,
            halted: false,
            lost: HashSet::new(),
            job,
        })
    }

    /// How long a task that ended may still see its outcome files arrive.
    fn grace(&self) -> Duration {
        (self.job.opts.poll_interval * 3).max(Duration::from_secs(2))
    }

    fn warn(&mut self, message: String) {
        self.ready.push_back((BackendEvent::Warning(message), None));
    }

    fn found(&mut self, found: Vec<Found>) {
        for f in found {
            let ev = match f {
                Found::Outcome(o, path) => {
                    self.sizing.observe(o.attempt.duration_ms);
                    self.ready.push_back((outcome_end(o), Some(path)));
                    continue;
                }
                Found::Lost(l, state, task) => {
                    self.lost.insert(l.idx);
                    lost_end(&l, &state, &task, &self.paths)
                }
                Found::Returned(l) => BackendEvent::Returned { idx: l.idx },
            };
            self.ready.push_back((ev, None));
        }
    }

    fn pop(&mut self) -> Option<BackendEvent> {
        let (ev, file) = self.ready.pop_front()?;
        self.consumed.extend(file);
        Some(ev)
    }

    /// One poll: the states of every task (one squeue), then the outcome files (so an ended
    /// task's files are visible), then the tasks that ended without them.
    async fn poll(&mut self) {
        let ids = self.tasks.ids();
        let states = self.client.task_states(&self.job.job_name, &ids).await;
        // Nothing changed before this point: a dropped `next` loses nothing.
        self.next_poll = Instant::now() + self.job.opts.poll_interval;
        let states = match states {
            Ok(s) => {
                self.poll_failures = 0;
                Some(s)
            }
            Err(e) => {
                // Unknown is unknown: no task counts as ended meanwhile.
                self.poll_failures += 1;
                if self.poll_failures % 10 == 1 {
                    self.warn(format!("cannot poll Slurm ({e}); waiting for it to answer"));
                }
                None
            }
        };
        let mut warnings = Vec::new();
        let found = self.tasks.outcomes(&self.paths, |w| warnings.push(w));
        for w in warnings {
            self.warn(w);
        }
        self.found(found);
        if let Some(states) = states {
            let found = self
                .tasks
                .ended(&states, Instant::now(), self.grace(), self.halted);
            self.found(found);
        }
    }

    /// Submit one array; its Slurm job id. A refused `sbatch` is tried again (unless the
    /// array reached Slurm after all, which its comment tells), then the run stops.
    async fn sbatch(&mut self, req: &SbatchRequest) -> Result<String, EngineError> {
        let mut tries = 0;
        loop {
            tries += 1;
            let e = match self.client.sbatch(req).await {
                Ok(id) => return Ok(id),
                Err(e) => e,
            };
            if let Ok(listing) = self.client.comments(&req.job_name).await
                && let Some((job, _)) = listing.iter().find(|(_, c)| *c == req.comment)
            {
                return Ok(job.clone());
            }
            if tries >= SBATCH_TRIES {
                let _ = std::fs::remove_file(self.paths.sub_file(req.sub));
                let _ = self.client.cancel(&self.tasks.jobs(), false).await;
                return Err(EngineError::Infra(format!(
                    "submitting to Slurm failed: {e}; the items stay pending: fix the cause, \
                     then `runner resume` the job"
                )));
            }
            self.warn(format!("{e}; trying again"));
            tokio::time::sleep(Duration::from_secs(tries)).await;
        }
    }
}

impl<C: SlurmClient> MapBackend for SlurmBackend<C> {
    fn free_slots(&self) -> usize {
        self.sizing.room(self.tasks.in_flight())
    }

    fn in_flight(&self) -> usize {
        self.tasks.in_flight() + self.ready.len()
    }

    async fn adopt(&mut self, candidates: &Candidates<'_>) -> Result<Vec<usize>, EngineError> {
        let a = adopt(&self.client, &self.paths, &self.job.job_name, candidates).await?;
        if let Some(m) = a.message {
            self.warn(m);
        }
        for (o, path) in a.finished {
            self.found(vec![Found::Outcome(o, path)]);
        }
        for t in a.running {
            self.tasks.add(t);
        }
        Ok(a.items)
    }

    async fn submit(&mut self, batch: Vec<AttemptRun>) -> Result<(), EngineError> {
        if batch.is_empty() {
            return Ok(());
        }
        let per_task = self.sizing.per_task(batch.len());
        let (alone, items): (Vec<TaskItem>, Vec<TaskItem>) = batch
            .into_iter()
            .map(|r| TaskItem {
                idx: r.idx,
                item_id: r.item.id.clone(),
                item: r.item.value.clone(),
                attempt: r.attempt,
            })
            .partition(|t| self.lost.remove(&t.idx));
        let tasks = tasks(items, alone, per_task, self.sizing.max_tasks());
        let sub = self.next_sub;
        self.next_sub += 1;
        let spec = SubmissionSpec {
            sub,
            token: format!("{:016x}", fastrand::u64(..)),
            parallel: self.sizing.parallel(),
            tasks,
        };
        spec.write(&self.paths.sub_file(sub))?;
        let opts = &self.job.opts;
        let req = SbatchRequest {
            job_name: self.job.job_name.clone(),
            comment: spec.comment(),
            sub,
            tasks: spec.tasks.len(),
            throttle: self.sizing.throttle(),
            runner: self.job.runner.clone(),
            job_dir: self.job.job_dir.clone(),
            time_limit: self.sizing.time_limit(
                opts,
                self.job.timeout,
                self.job.kill_grace,
                per_task,
            ),
            partition: opts.partition.clone(),
            cpus_per_task: opts.cpus_per_task,
            mem: opts.mem_per_task.clone(),
            extra: opts.sbatch_args.clone(),
        };
        let job = self.sbatch(&req).await?;
        submission::append(
            &self.paths.submissions(),
            &SubmissionRecord::new(&spec, &job),
        )?;
        tracing::info!(
            "submitted {} tasks of {per_task} item(s) as Slurm job {job} (submission {sub})",
            spec.tasks.len()
        );
        for (index, items) in spec.tasks.into_iter().enumerate() {
            self.tasks.add(Task {
                id: TaskId {
                    job: job.clone(),
                    index,
                },
                live: items
                    .into_iter()
                    .map(|i| Live {
                        key: OutcomeKey::new(&i.item_id, sub, i.attempt),
                        idx: i.idx,
                        attempt: i.attempt,
                    })
                    .collect(),
                started: false,
                ended: None,
            });
        }
        Ok(())
    }

    async fn next(&mut self) -> Result<BackendEvent, EngineError> {
        loop {
            if let Some(ev) = self.pop() {
                return Ok(ev);
            }
            tokio::time::sleep_until(self.next_poll).await;
            self.poll().await;
        }
    }

    fn try_next(&mut self) -> Option<BackendEvent> {
        self.pop()
    }

    async fn stop_starting(&mut self) {
        self.halted = true;
        if let Err(e) = self.client.cancel(&self.tasks.jobs(), true).await {
            self.warn(format!(
                "could not take back the Slurm tasks that have not started: {e}"
            ));
        }
    }

    async fn cancel(&mut self) {
        if let Err(e) = self.client.cancel(&self.tasks.jobs(), false).await {
            self.warn(format!("could not cancel the Slurm tasks: {e}"));
        }
        // What finished is kept; the rest ends cancelled (its items stay pending).
        let found = self.tasks.outcomes(&self.paths, |_| {});
        self.found(found);
        for l in self.tasks.drain() {
            self.ready.push_back((cancelled_end(&l), None));
        }
    }

    fn recorded(&mut self) {
        for f in self.consumed.drain(..) {
            let _ = std::fs::remove_file(f);
        }
    }
}
