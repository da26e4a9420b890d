//! The Slurm backend's files in a job directory (`slurm/`): where they live, the
//! submission files and log, and the outcome files array tasks leave for the coordinator.

pub mod outcome;
pub mod paths;
pub mod submission;
