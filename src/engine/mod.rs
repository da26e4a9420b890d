//! The engine: phases, the map dispatcher, the per-item executor, retries, timeouts and
//! process groups.

pub mod control;
pub mod dispatch;
pub mod error;
pub mod executor;
pub mod item;
pub mod orphans;
pub mod output;
pub mod phases;
pub mod process;
pub mod queue;
pub mod reaper;
pub mod recorder;
pub mod retry;
pub mod slurm;
pub mod step;
pub mod vars;
pub mod watchdog;
