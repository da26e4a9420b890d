//! The local map backend: each attempt is a task of this process running the item's steps
//! as local process groups, up to `max_parallel` at once.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::task::{Id, JoinSet};

use crate::engine::attempt::context::AttemptCtx;
use crate::engine::attempt::executor::Executor;
use crate::engine::attempt::run::run_attempt;
use crate::engine::error::EngineError;
use crate::engine::map::backend::{AttemptEnd, AttemptRun, BackendEvent, MapBackend};
use crate::engine::process::shell::SpawnHook;

/// A step of an attempt started in a process group.
struct Spawned {
    idx: usize,
    attempt: u32,
    pgid: i32,
    pid_start: u64,
}

pub struct LocalBackend<E> {
    ctx: Arc<AttemptCtx<E>>,
    max_parallel: usize,
    running: JoinSet<AttemptEnd>,
    /// Item index of each running task (to report a task that panicked).
    tasks: HashMap<Id, usize>,
    spawned_tx: mpsc::UnboundedSender<Spawned>,
    spawned: mpsc::UnboundedReceiver<Spawned>,
}

impl<E: Executor> LocalBackend<E> {
    pub fn new(ctx: AttemptCtx<E>, max_parallel: usize) -> Self {
        let (spawned_tx, spawned) = mpsc::unbounded_channel();
        LocalBackend {
            ctx: Arc::new(ctx),
            max_parallel: max_parallel.max(1),
            running: JoinSet::new(),
            tasks: HashMap::new(),
            spawned_tx,
            spawned,
        }
    }

    fn hook(&self, idx: usize, attempt: u32) -> SpawnHook {
        let tx = self.spawned_tx.clone();
        SpawnHook(Arc::new(move |pgid, pid_start| {
            let _ = tx.send(Spawned {
                idx,
                attempt,
                pgid,
                pid_start,
            });
        }))
    }

    fn joined(&mut self, joined: Result<(Id, AttemptEnd), tokio::task::JoinError>) -> BackendEvent {
        match joined {
            Ok((id, end)) => {
                self.tasks.remove(&id);
                BackendEvent::Ended(end)
            }
            // A task that panicked (a bug): its item stays pending.
            Err(e) => match self.tasks.remove(&e.id()) {
                Some(idx) => BackendEvent::Returned { idx },
                None => BackendEvent::Warning(format!("an item task failed: {e}")),
            },
        }
    }
}

fn spawned_event(s: Spawned) -> BackendEvent {
    BackendEvent::Spawned {
        idx: s.idx,
        attempt: s.attempt,
        pgid: s.pgid,
        pid_start: s.pid_start,
    }
}

impl<E: Executor> MapBackend for LocalBackend<E> {
    fn free_slots(&self) -> usize {
        self.max_parallel.saturating_sub(self.running.len())
    }

    fn in_flight(&self) -> usize {
        self.running.len()
    }

    /// Up to one slot's worth of ended attempts per slot: a crash re-runs at most twice
    /// `max_parallel` attempts.
    fn undurable_budget(&self) -> usize {
        self.max_parallel
    }

    async fn submit(&mut self, batch: Vec<AttemptRun>) -> Result<(), EngineError> {
        for run in batch {
            let ctx = self.ctx.clone();
            let hook = self.hook(run.idx, run.attempt);
            let idx = run.idx;
            let handle = self
                .running
                .spawn(async move { run_attempt(&ctx, &run, Some(hook)).await });
            self.tasks.insert(handle.id(), idx);
        }
        Ok(())
    }

    async fn next(&mut self) -> Result<BackendEvent, EngineError> {
        // A step's `Spawned` is sent before its attempt can end, and is taken first, so
        // the journal has an attempt's process group before its end.
        tokio::select! {
            biased;
            Some(s) = self.spawned.recv() => Ok(spawned_event(s)),
            Some(joined) = self.running.join_next_with_id() => Ok(self.joined(joined)),
        }
    }

    fn try_next(&mut self) -> Option<BackendEvent> {
        if let Ok(s) = self.spawned.try_recv() {
            return Some(spawned_event(s));
        }
        let joined = self.running.try_join_next_with_id()?;
        Some(self.joined(joined))
    }
}
