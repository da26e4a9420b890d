//! An in-memory Slurm for the coordinator's tests. Arrays are kept with their tasks'
//! batches (read from the submission files, as real tasks do); each `squeue` advances the
//! cluster one step: pending tasks start (within the array's throttle), and running tasks
//! run their batch in-process, writing outcome files as a real task would, as the test's
//! script says each attempt ends. Tests can also make Slurm refuse or fail to answer, and
//! set a task's state by hand.

use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::Map;

use crate::engine::slurm::client::{ClientError, SbatchRequest, SlurmClient, TaskId, TaskStates};
use crate::state::records::{Attempt, Failure};
use crate::state::slurm::outcome::Outcome;
use crate::state::slurm::paths::SlurmPaths;
use crate::state::slurm::submission::{SubmissionSpec, TaskItem};

/// How an attempt ends in the fake cluster.
#[derive(Debug, Clone, PartialEq)]
pub enum Act {
    /// Succeeds, having taken this many milliseconds.
    Ok(u64),
    /// Fails with this exit code.
    Exit(i32),
    /// Kills its task: this attempt and the rest of the batch leave no outcome.
    KillTask,
    /// Runs until the task is cancelled.
    Hang,
}

#[derive(Debug, Clone)]
pub struct FakeTask {
    pub state: String,
    pub batch: Vec<TaskItem>,
}

#[derive(Debug, Clone)]
pub struct FakeArray {
    pub job: String,
    pub name: String,
    pub comment: String,
    pub sub: u64,
    pub throttle: usize,
    pub tasks: Vec<FakeTask>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Calls {
    pub sbatch: usize,
    pub squeue: usize,
    pub scancel: usize,
    pub scancel_pending: usize,
}

type Script = Box<dyn FnMut(&TaskItem) -> Act + Send>;

pub struct Cluster {
    paths: SlurmPaths,
    next_job: u64,
    script: Script,
    pub arrays: Vec<FakeArray>,
    pub requests: Vec<SbatchRequest>,
    pub calls: Calls,
    /// `sbatch` fails with this message.
    pub refuse: Option<String>,
    /// The next this many `squeue`s fail.
    pub squeue_errors: usize,
    /// Tasks do not move on their own.
    pub frozen: bool,
}

/// A handle on the fake cluster (clones share it).
#[derive(Clone)]
pub struct FakeSlurm(Arc<Mutex<Cluster>>);

impl FakeSlurm {
    /// A cluster whose tasks read their batches from the job at `paths`.
    pub fn new(paths: SlurmPaths, script: impl FnMut(&TaskItem) -> Act + Send + 'static) -> Self {
        FakeSlurm(Arc::new(Mutex::new(Cluster {
            paths,
            next_job: 100,
            script: Box::new(script),
            arrays: Vec::new(),
            requests: Vec::new(),
            calls: Calls::default(),
            refuse: None,
            squeue_errors: 0,
            frozen: false,
        })))
    }

    pub fn lock(&self) -> MutexGuard<'_, Cluster> {
        self.0.lock().unwrap()
    }

    /// The items of every task submitted through `sbatch`, by submission.
    pub fn submitted(&self) -> Vec<Vec<Vec<usize>>> {
        let c = self.lock();
        let subs: Vec<u64> = c.requests.iter().map(|r| r.sub).collect();
        c.arrays
            .iter()
            .filter(|a| subs.contains(&a.sub))
            .map(|a| {
                a.tasks
                    .iter()
                    .map(|t| t.batch.iter().map(|i| i.idx).collect())
                    .collect()
            })
            .collect()
    }
}

impl Cluster {
    /// Put an array on the cluster as if an earlier run had submitted it; its job id.
    pub fn add_array(&mut self, name: &str, spec: &SubmissionSpec, states: &[&str]) -> String {
        let job = self.next_job.to_string();
        self.next_job += 1;
        self.arrays.push(FakeArray {
            job: job.clone(),
            name: name.to_owned(),
            comment: spec.comment(),
            sub: spec.sub,
            throttle: usize::MAX,
            tasks: spec
                .tasks
                .iter()
                .zip(states)
                .map(|(batch, s)| FakeTask {
                    state: (*s).to_owned(),
                    batch: batch.clone(),
                })
                .collect(),
        });
        job
    }

    /// One step of the cluster: running tasks run their batch, pending ones start.
    fn advance(&mut self) {
        if self.frozen {
            return;
        }
        let mut arrays = std::mem::take(&mut self.arrays);
        for a in &mut arrays {
            for t in a.tasks.iter_mut().filter(|t| t.state == "RUNNING") {
                t.state = self.run(a.sub, &t.batch);
            }
            let running = a.tasks.iter().filter(|t| t.state == "RUNNING").count();
            let room = a.throttle.saturating_sub(running);
            for t in a
                .tasks
                .iter_mut()
                .filter(|t| t.state == "PENDING")
                .take(room)
            {
                t.state = "RUNNING".into();
            }
        }
        self.arrays = arrays;
    }

    /// Run a batch as a task would; the task's state afterwards.
    fn run(&mut self, sub: u64, batch: &[TaskItem]) -> String {
        for item in batch {
            let (duration_ms, failure) = match (self.script)(item) {
                Act::Ok(ms) => (ms, None),
                Act::Exit(code) => (1, Some(Failure::Exit { code, step: 0 })),
                Act::KillTask => return "FAILED".into(),
                Act::Hang => return "RUNNING".into(),
            };
            let o = Outcome {
                sub,
                idx: item.idx,
                item_id: item.item_id.clone(),
                attempt: Attempt {
                    attempt: item.attempt,
                    started_at: crate::state::time::Timestamp::now(),
                    duration_ms,
                    failure,
                    stderr_tail: String::new(),
                    usage: None,
                },
                captured: Map::new(),
                host: "fake".into(),
            };
            o.write(&self.paths).expect("outcome written");
        }
        "COMPLETED".into()
    }
}

impl SlurmClient for FakeSlurm {
    async fn sbatch(&self, req: &SbatchRequest) -> Result<String, ClientError> {
        let mut c = self.lock();
        c.calls.sbatch += 1;
        if let Some(why) = &c.refuse {
            return Err(ClientError(format!(
                "sbatch failed (exit status: 1): sbatch: error: {why}"
            )));
        }
        let spec = SubmissionSpec::read(&c.paths.sub_file(req.sub))
            .map_err(|e| ClientError(e.to_string()))?;
        assert_eq!(spec.tasks.len(), req.tasks, "one array task per batch");
        c.requests.push(req.clone());
        let states = vec!["PENDING"; req.tasks];
        let job = c.add_array(&req.job_name, &spec, &states);
        if let Some(a) = c.arrays.last_mut() {
            a.throttle = req.throttle;
        }
        Ok(job)
    }

    async fn task_states(
        &self,
        job_name: &str,
        _wanted: &[TaskId],
    ) -> Result<TaskStates, ClientError> {
        let mut c = self.lock();
        c.calls.squeue += 1;
        if c.squeue_errors > 0 {
            c.squeue_errors -= 1;
            return Err(ClientError(
                "squeue failed (exit status: 1): squeue: error: Unable to contact slurm controller"
                    .into(),
            ));
        }
        c.advance();
        let mut states = TaskStates::default();
        for a in c.arrays.iter().filter(|a| a.name == job_name) {
            for (index, t) in a.tasks.iter().enumerate() {
                let id = TaskId {
                    job: a.job.clone(),
                    index,
                };
                states.set(id, &t.state);
            }
        }
        Ok(states)
    }

    async fn comments(&self, job_name: &str) -> Result<Vec<(String, String)>, ClientError> {
        let mut c = self.lock();
        c.calls.squeue += 1;
        if c.squeue_errors > 0 {
            c.squeue_errors -= 1;
            return Err(ClientError(
                "squeue: Unable to contact slurm controller".into(),
            ));
        }
        Ok(c.arrays
            .iter()
            .filter(|a| a.name == job_name)
            .map(|a| (a.job.clone(), a.comment.clone()))
            .collect())
    }

    async fn cancel(&self, jobs: &[String], only_pending: bool) -> Result<(), ClientError> {
        let mut c = self.lock();
        if only_pending {
            c.calls.scancel_pending += 1;
        } else {
            c.calls.scancel += 1;
        }
        for a in c.arrays.iter_mut().filter(|a| jobs.contains(&a.job)) {
            for t in &mut a.tasks {
                if t.state == "PENDING" || (!only_pending && t.state == "RUNNING") {
                    t.state = "CANCELLED".into();
                }
            }
        }
        Ok(())
    }
}
