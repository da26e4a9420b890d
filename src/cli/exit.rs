//! The exit code of an error that reached `main`: its kind's (see [`crate::error`]), so
//! every failure maps to one of SPEC 3.1's codes the same way.

use crate::error::{Classify, exit_code};

/// Bad usage the command line itself detects (flags or values that do not fit together).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Bad usage or bad input (exit 2).
pub fn usage(message: impl Into<String>) -> anyhow::Error {
    UsageError(message.into()).into()
}

/// The exit code for an error that reached `main`.
pub fn code_for(err: &anyhow::Error) -> i32 {
    if err.downcast_ref::<UsageError>().is_some() {
        return exit_code::USAGE;
    }
    macro_rules! classified {
        ($($t:ty),*) => {
            $(if let Some(e) = err.downcast_ref::<$t>() {
                return e.kind().exit_code();
            })*
        };
    }
    classified!(
        crate::session::error::SessionError,
        crate::workflow::error::WorkflowError,
        crate::items::ItemsError,
        crate::state::error::StateError,
        crate::state::lock::LockError,
        crate::engine::error::EngineError,
        crate::engine::postgres::error::PgError
    );
    exit_code::FAILURES
}
