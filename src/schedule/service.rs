//! The schedule service (`runner schedule FILE`) and its one-shot form (`runner schedule
//! run-due FILE`): under the state directory's schedules lock, plan each schedule's due
//! fires, record what becomes of them, start the runs; the service then sleeps until the
//! next fire, and stops at SIGTERM/SIGINT without stopping the runs it started.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::Timestamp;
use serde::Serialize;
use tokio::task::JoinSet;

use crate::schedule::clock::Clock;
use crate::schedule::fire::{exists, is_running, job_id, spawn_run};
use crate::schedule::model::{Schedule, Schedules};
use crate::schedule::plan::{Due, plan, start_of};
use crate::schedule::store::{ScheduleRecord, Store, dir};
use crate::session::error::SessionError;
use crate::state::atomic::create_dir_private;
use crate::state::layout::StateDir;
use crate::state::lock::{JobLock, LockError};

/// What the service says as it goes.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum ScheduleEvent {
    Started {
        schedules: usize,
    },
    Fired {
        schedule: String,
        nominal: String,
        job_id: String,
        coalesced: u32,
    },
    Missed {
        schedule: String,
        first: String,
        last: String,
        count: u64,
    },
    Skipped {
        schedule: String,
        nominal: String,
        reason: String,
    },
    RunEnded {
        schedule: String,
        job_id: String,
        exit_code: Option<i32>,
    },
    Next {
        schedule: String,
        at: String,
    },
    Stopping {
        signal: String,
    },
}

/// Longest sleep between looks at the clock (it may be changed under us).
const MAX_SLEEP: Duration = Duration::from_secs(60);

type Runs = JoinSet<(String, String, Option<i32>)>;

struct Engine<'a> {
    schedules: &'a Schedules,
    root: PathBuf,
    state: StateDir,
    store: Store,
    /// Runs started by this process that have not ended: job id -> schedule.
    children: HashMap<String, String>,
}

impl<'a> Engine<'a> {
    fn new(schedules: &'a Schedules, root: &Path) -> Result<Self, SessionError> {
        Ok(Engine {
            schedules,
            root: root.to_path_buf(),
            state: StateDir::new(root),
            store: Store::open(root)?,
            children: HashMap::new(),
        })
    }

    /// Handle what is due at `now`; returns when the next fire starts.
    fn tick(
        &mut self,
        now: Timestamp,
        runs: &mut Runs,
        sink: &mut dyn FnMut(&ScheduleEvent),
    ) -> Result<Option<Timestamp>, SessionError> {
        let mut wake: Option<Timestamp> = None;
        for s in &self.schedules.schedules {
            let rem = self.store.get(&s.name);
            let seen = match rem.seen() {
                Some(t) => t,
                None => {
                    // Whole seconds: intervals are anchored here.
                    let at = Timestamp::from_second(now.as_second()).unwrap_or(now);
                    self.store.record(ScheduleRecord::Seen {
                        schedule: s.name.clone(),
                        at: at.to_string(),
                    })?;
                    at
                }
            };
            let from = rem.last_nominal().unwrap_or(seen).max(seen);
            let planned = plan(&s.name, &s.trigger, &s.policy, from, seen, now);
            let next = planned.next.map(|t| t.to_string());
            for d in planned.due {
                self.handle(s, d, next.clone(), runs, sink)?;
            }
            if let Some(n) = planned.next {
                let start = start_of(&s.name, n, &s.policy);
                wake = Some(wake.map_or(start, |w| w.min(start)));
            }
        }
        Ok(wake)
    }

    fn handle(
        &mut self,
        s: &Schedule,
        d: Due,
        next: Option<String>,
        runs: &mut Runs,
        sink: &mut dyn FnMut(&ScheduleEvent),
    ) -> Result<(), SessionError> {
        match d {
            Due::Missed { first, last, count } => {
                self.store.record(ScheduleRecord::Missed {
                    schedule: s.name.clone(),
                    first: first.to_string(),
                    last: last.to_string(),
                    count,
                    next,
                })?;
                sink(&ScheduleEvent::Missed {
                    schedule: s.name.clone(),
                    first: first.to_string(),
                    last: last.to_string(),
                    count,
                });
            }
            Due::Fire { nominal, coalesced } => {
                let id = job_id(&s.name, nominal);
                let mut running: Vec<String> = self
                    .store
                    .get(&s.name)
                    .recent_jobs
                    .into_iter()
                    .filter(|j| is_running(&self.state, j))
                    .collect();
                for (j, sched) in &self.children {
                    if *sched == s.name && !running.contains(j) {
                        running.push(j.clone());
                    }
                }
                let skip = if exists(&self.state, &id) {
                    // Started before a crash lost its record: it is this fire's run.
                    None
                } else if running.len() >= s.policy.max_instances {
                    Some(format!(
                        "max_instances ({}) reached: {} still running",
                        s.policy.max_instances,
                        running.join(", ")
                    ))
                } else {
                    match spawn_run(&self.root, &s.run, &id, &s.set) {
                        Ok(mut child) => {
                            self.children.insert(id.clone(), s.name.clone());
                            let (name, job) = (s.name.clone(), id.clone());
                            runs.spawn(async move {
                                let code = child.wait().await.ok().and_then(|st| st.code());
                                (name, job, code)
                            });
                            None
                        }
                        Err(e) => Some(format!("could not start the run: {e}")),
                    }
                };
                match skip {
                    Some(reason) => {
                        self.store.record(ScheduleRecord::Skipped {
                            schedule: s.name.clone(),
                            nominal: nominal.to_string(),
                            reason: reason.clone(),
                            next,
                        })?;
                        sink(&ScheduleEvent::Skipped {
                            schedule: s.name.clone(),
                            nominal: nominal.to_string(),
                            reason,
                        });
                    }
                    None => {
                        self.store.record(ScheduleRecord::Fired {
                            schedule: s.name.clone(),
                            nominal: nominal.to_string(),
                            at: Timestamp::now().to_string(),
                            job_id: id.clone(),
                            coalesced,
                            next,
                        })?;
                        sink(&ScheduleEvent::Fired {
                            schedule: s.name.clone(),
                            nominal: nominal.to_string(),
                            job_id: id,
                            coalesced,
                        });
                    }
                }
            }
        }
        Ok(())
    }

    fn ended(
        &mut self,
        joined: (String, String, Option<i32>),
        sink: &mut dyn FnMut(&ScheduleEvent),
    ) {
        let (schedule, job_id, exit_code) = joined;
        self.children.remove(&job_id);
        sink(&ScheduleEvent::RunEnded {
            schedule,
            job_id,
            exit_code,
        });
    }
}

/// Take the state directory's schedules lock (exit 3 when another service holds it).
fn lock(root: &Path, command: &str) -> Result<JobLock, SessionError> {
    create_dir_private(&dir(root))?;
    match JobLock::acquire(&dir(root).join("lock"), command) {
        Ok(l) => Ok(l),
        Err(LockError::Held(holder)) => Err(SessionError::Locked {
            job: format!("the schedules of {}", root.display()),
            holder: Box::new(holder),
        }),
        Err(e) => Err(e.into()),
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, SessionError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| SessionError::Infra(format!("cannot start the async runtime: {e}")))
}

/// `runner schedule FILE`: run until SIGTERM/SIGINT.
pub fn serve(
    root: &Path,
    command: &str,
    schedules: &Schedules,
    clock: &dyn Clock,
    sink: &mut dyn FnMut(&ScheduleEvent),
) -> Result<(), SessionError> {
    let lock = lock(root, command)?;
    let store = Store::open(root)?;
    store.compact()?;
    let mut engine = Engine::new(schedules, root)?;
    let rt = runtime()?;
    let result = rt.block_on(async {
        use tokio::signal::unix::{SignalKind, signal};
        let (mut int, mut term) = (
            signal(SignalKind::interrupt())
                .map_err(|e| SessionError::Infra(format!("cannot watch SIGINT: {e}")))?,
            signal(SignalKind::terminate())
                .map_err(|e| SessionError::Infra(format!("cannot watch SIGTERM: {e}")))?,
        );
        sink(&ScheduleEvent::Started {
            schedules: schedules.schedules.len(),
        });
        let mut runs = Runs::new();
        let mut announced: HashMap<String, String> = HashMap::new();
        loop {
            let now = clock.now();
            let wake = engine.tick(now, &mut runs, sink)?;
            for s in &schedules.schedules {
                if let Some(n) = engine.store.get(&s.name).next.or_else(|| {
                    s.trigger
                        .next_after(now, engine.store.get(&s.name).seen().unwrap_or(now))
                        .map(|t| t.to_string())
                }) && announced.get(&s.name) != Some(&n)
                {
                    announced.insert(s.name.clone(), n.clone());
                    sink(&ScheduleEvent::Next {
                        schedule: s.name.clone(),
                        at: n,
                    });
                }
            }
            let sleep = wake
                .map(|w| {
                    Duration::try_from(w.duration_since(clock.now())).unwrap_or(Duration::ZERO)
                })
                .unwrap_or(MAX_SLEEP)
                .min(MAX_SLEEP);
            tokio::select! {
                _ = tokio::time::sleep(sleep) => {}
                Some(Ok(joined)) = runs.join_next(), if !runs.is_empty() => engine.ended(joined, sink),
                _ = term.recv() => {
                    sink(&ScheduleEvent::Stopping { signal: "SIGTERM".into() });
                    break;
                }
                _ = int.recv() => {
                    sink(&ScheduleEvent::Stopping { signal: "SIGINT".into() });
                    break;
                }
            }
        }
        Ok::<(), SessionError>(())
    });
    // The runs started go on: they are in their own process groups and are not waited for.
    rt.shutdown_background();
    let released = lock.release();
    result?;
    released?;
    Ok(())
}

/// What `run-due` started and how its runs ended.
#[derive(Debug, Default)]
pub struct RunDue {
    pub started: usize,
    pub failed: usize,
}

/// `runner schedule run-due FILE`: fire what is due now, release the lock, wait for the runs.
pub fn run_due(
    root: &Path,
    command: &str,
    schedules: &Schedules,
    clock: &dyn Clock,
    sink: &mut dyn FnMut(&ScheduleEvent),
) -> Result<RunDue, SessionError> {
    let lock = lock(root, command)?;
    let mut engine = Engine::new(schedules, root)?;
    let rt = runtime()?;
    let mut runs = Runs::new();
    let ticked = rt.block_on(async { engine.tick(clock.now(), &mut runs, sink) });
    let released = lock.release();
    ticked?;
    released?;
    let mut out = RunDue {
        started: runs.len(),
        failed: 0,
    };
    rt.block_on(async {
        while let Some(joined) = runs.join_next().await {
            if let Ok(j) = joined {
                if j.2 != Some(0) {
                    out.failed += 1;
                }
                engine.ended(j, sink);
            }
        }
    });
    Ok(out)
}
