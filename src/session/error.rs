//! The error of a job session: everything opening, locking, creating, resuming or
//! controlling a job can fail with, each knowing its kind (and so its exit code).

use crate::engine::error::EngineError;
use crate::error::{Classify, ErrorKind};
use crate::items::ItemsError;
use crate::state::error::StateError;
use crate::state::lock::{LockError, LockInfo};
use crate::workflow::error::WorkflowError;

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(transparent)]
    Workflow(#[from] WorkflowError),
    #[error(transparent)]
    Items(#[from] ItemsError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// Another live process holds the job's lock.
    #[error(
        "job {job} is locked by pid {} on host {} since {} (`{}`); wait for it to finish or stop it",
        holder.pid, holder.host, holder.started_at, holder.command
    )]
    Locked { job: String, holder: Box<LockInfo> },
    /// A request the user can correct (unknown job, changed workflow without --force, ...).
    #[error("{0}")]
    Usage(String),
    /// The environment did not do what was asked (a live job that did not answer, ...).
    #[error("{0}")]
    Infra(String),
}

impl Classify for SessionError {
    fn kind(&self) -> ErrorKind {
        match self {
            SessionError::Workflow(e) => e.kind(),
            SessionError::Items(e) => e.kind(),
            SessionError::State(e) => e.kind(),
            SessionError::Lock(e) => e.kind(),
            SessionError::Engine(e) => e.kind(),
            SessionError::Locked { .. } => ErrorKind::Locked,
            SessionError::Usage(_) => ErrorKind::Usage,
            SessionError::Infra(_) => ErrorKind::Infra,
        }
    }
}

impl Classify for WorkflowError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Usage
    }
}

impl Classify for ItemsError {
    fn kind(&self) -> ErrorKind {
        match self {
            // The machine, not the workflow: a full disk, say.
            ItemsError::Spill { .. } => ErrorKind::Infra,
            _ => ErrorKind::Usage,
        }
    }
}

impl Classify for StateError {
    fn kind(&self) -> ErrorKind {
        match self {
            StateError::InvalidJobId { .. } | StateError::JobExists { .. } => ErrorKind::Usage,
            _ => ErrorKind::Infra,
        }
    }
}

impl Classify for LockError {
    fn kind(&self) -> ErrorKind {
        match self {
            LockError::Held(_) => ErrorKind::Locked,
            LockError::Unstable { .. } => ErrorKind::Infra,
            LockError::State(e) => e.kind(),
        }
    }
}

impl Classify for EngineError {
    fn kind(&self) -> ErrorKind {
        match self {
            EngineError::State(e) => e.kind(),
            EngineError::Items(e) => e.kind(),
            EngineError::Config(_) => ErrorKind::Usage,
            EngineError::Infra(_) => ErrorKind::Infra,
        }
    }
}
