//! The map phase: one dispatcher owning the queue, slots, pause/stop, the error policy,
//! retries and recording, over a [`backend::MapBackend`] that runs attempts somewhere
//! (local processes, Slurm arrays, ...).

pub mod backend;
pub mod dispatch;
pub mod local;
#[cfg(test)]
pub(crate) mod mock;
pub mod order;
pub mod policy;
pub mod retry;
pub mod stuck;
pub mod work;
