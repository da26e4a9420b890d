//! Job sessions, below the command line: creating, opening, locking, recovering, running,
//! resuming, retrying and controlling jobs. The `cli` modules map arguments to these
//! requests and their outcomes to output and exit codes, nothing more.

pub mod clean;
pub mod create;
pub mod dlq;
pub mod error;
pub mod health;
pub mod live;
pub mod open;
pub mod preview;
pub mod resume;
pub mod runtime;
pub mod status;
