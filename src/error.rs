//! One error taxonomy with its exit codes (SPEC 3.1), as nextest's `ExpectedError`: every
//! error the library returns knows its [`ErrorKind`], every kind has its exit code, and a
//! job's end state and [`StopCause`] give the exit code of a run. The CLI is the only place
//! that turns these into a process exit; the numbers live here, once.

use nix::sys::signal::Signal;

use crate::state::records::JobState;

/// The exit codes of `runner` (SPEC 3.1).
pub mod exit_code {
    /// The job completed: setup and reduce succeeded and every item succeeded.
    pub const COMPLETED: i32 = 0;
    /// Failures: items in the DLQ, a failed setup/reduce step, an infrastructure failure.
    pub const FAILURES: i32 = 1;
    /// Bad usage or bad input.
    pub const USAGE: i32 = 2;
    /// The job is locked by another live process.
    pub const LOCKED: i32 = 3;
    /// Interrupted by SIGINT: state saved, resumable.
    pub const SIGINT: i32 = 130;
    /// Interrupted by SIGTERM or `runner stop`: state saved, resumable.
    pub const SIGTERM: i32 = 143;
}

/// What kind of failure an error is, which decides the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Bad usage or bad input the user can fix: an invalid workflow, an unknown job id, a
    /// broken items file (exit 2).
    Usage,
    /// The job is locked by another live process (exit 3).
    Locked,
    /// The environment failed: I/O, a damaged state file, a Slurm or PostgreSQL that refuses
    /// or does not answer (exit 1). The job stays resumable.
    Infra,
}

impl ErrorKind {
    pub fn exit_code(self) -> i32 {
        match self {
            ErrorKind::Usage => exit_code::USAGE,
            ErrorKind::Locked => exit_code::LOCKED,
            ErrorKind::Infra => exit_code::FAILURES,
        }
    }
}

/// Errors that know their kind.
pub trait Classify {
    fn kind(&self) -> ErrorKind;
}

/// Why a run stopped before its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopCause {
    /// SIGINT or SIGTERM (forwarded to the steps in flight).
    Signal(Signal),
    /// `runner stop`: graceful, exits as SIGTERM would.
    StopRequest,
}

/// The process exit code a run ends with, for `job_finished` and the CLI alike: 0 completed,
/// 1 completed with failures, 130/143 interrupted by SIGINT / SIGTERM or `runner stop`.
pub fn job_exit_code(state: JobState, stop: Option<StopCause>) -> i32 {
    match state {
        JobState::Completed => exit_code::COMPLETED,
        JobState::Interrupted => match stop {
            Some(StopCause::Signal(Signal::SIGINT)) => exit_code::SIGINT,
            _ => exit_code::SIGTERM,
        },
        _ => exit_code::FAILURES,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_exit_codes() {
        assert_eq!(job_exit_code(JobState::Completed, None), 0);
        assert_eq!(job_exit_code(JobState::Failed, None), 1);
        let int = Some(StopCause::Signal(Signal::SIGINT));
        let term = Some(StopCause::Signal(Signal::SIGTERM));
        assert_eq!(job_exit_code(JobState::Interrupted, int), 130);
        assert_eq!(job_exit_code(JobState::Interrupted, term), 143);
        assert_eq!(
            job_exit_code(JobState::Interrupted, Some(StopCause::StopRequest)),
            143
        );
        // A failed job stays 1 even if a signal came late.
        assert_eq!(job_exit_code(JobState::Failed, int), 1);
    }

    #[test]
    fn kinds_map_to_codes() {
        assert_eq!(ErrorKind::Usage.exit_code(), 2);
        assert_eq!(ErrorKind::Locked.exit_code(), 3);
        assert_eq!(ErrorKind::Infra.exit_code(), 1);
    }
}
