//! Exit codes (SPEC 3.1) and the error type that carries one to `main`.

pub const COMPLETED: i32 = 0;
pub const FAILURES: i32 = 1;
pub const USAGE: i32 = 2;
pub const LOCKED: i32 = 3;
pub const SIGINT: i32 = 130;
pub const SIGTERM: i32 = 143;

/// An error with the exit code it maps to; its message is printed as `runner: <message>`.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Exit {
    pub code: i32,
    pub message: String,
}

/// Bad usage or bad input (exit 2).
pub fn usage(message: impl Into<String>) -> anyhow::Error {
    Exit {
        code: USAGE,
        message: message.into(),
    }
    .into()
}

/// The exit code for an error that reached `main`.
pub fn code_for(err: &anyhow::Error) -> i32 {
    if let Some(e) = err.downcast_ref::<Exit>() {
        return e.code;
    }
    if err
        .downcast_ref::<crate::workflow::error::WorkflowError>()
        .is_some()
    {
        return USAGE;
    }
    if let Some(crate::state::lock::LockError::Held(_)) =
        err.downcast_ref::<crate::state::lock::LockError>()
    {
        return LOCKED;
    }
    if let Some(
        crate::engine::error::EngineError::Items(_) | crate::engine::error::EngineError::Config(_),
    ) = err.downcast_ref::<crate::engine::error::EngineError>()
    {
        return USAGE;
    }
    if let Some(crate::state::error::StateError::InvalidJobId { .. }) =
        err.downcast_ref::<crate::state::error::StateError>()
    {
        return USAGE;
    }
    FAILURES
}
