//! Resource limits per item attempt (`map.resources`) and usage measurement: cgroup v2
//! where runner can create cgroups, rlimits and a sampling watch elsewhere.

pub mod cgroup;
pub mod cgroup_path;
pub mod classify;
pub mod enforcer;
pub mod meter;
pub mod rlimit;
pub mod watch;

pub use classify::LimitHit;
