//! The Slurm map backend, by role: the Slurm client and its parsing (`client`), the
//! coordinator (`backend`), adoption after a crash (`adopt`), outcome collection
//! (`collect`), task sizing (`batch`), and what one array task runs (`task`). Slurm's files
//! live in `state::slurm`.

pub mod adopt;
pub mod backend;
#[cfg(test)]
mod backend_tests;
pub mod batch;
pub mod client;
pub mod collect;
#[cfg(test)]
mod fake;
pub mod task;
