//! Git worktree isolation (Prodigy's model): the job's worktree and branch, one worktree per
//! item merged back one at a time, the final merge, and cleanup.

pub mod exclude;
pub mod finish;
pub mod git;
pub mod isolation;
pub mod item;
pub mod job;
pub mod merge_block;
