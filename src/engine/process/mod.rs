//! Processes and their cleanup: a step's shell in its own process group (killed TERM ->
//! grace -> KILL), its output, the reaper of orphans, the watchdog that outlives a killed
//! runner, and the cleanup of groups a crashed run left.

pub mod child;
pub mod direct;
pub mod launch;
pub mod orphans;
pub mod output;
pub mod reaper;
pub mod shell;
pub mod vfork;
pub mod watchdog;
