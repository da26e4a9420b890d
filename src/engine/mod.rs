//! The engine: phases, the one map dispatcher over pluggable map backends, the per-item
//! attempt executor, retries, timeouts, process groups and live control.

pub mod attempt;
pub mod controls;
pub mod error;
pub mod limits;
pub mod map;
pub mod phases;
pub mod postgres;
pub mod process;
pub mod recorder;
pub mod serial;
pub mod slurm;
pub mod worktree;
