//! A validated pipeline: what the coordinator runs.

use std::path::PathBuf;

use crate::notify::spec::Notify;

#[derive(Debug)]
pub struct Pipeline {
    pub name: String,
    /// The pipeline file's directory (workflow paths are relative to it).
    pub dir: PathBuf,
    pub max_parallel_jobs: usize,
    /// In file order.
    pub nodes: Vec<Node>,
    pub notify: Vec<Notify>,
}

#[derive(Debug, Clone)]
pub struct Node {
    pub name: String,
    /// Absolute path of the workflow file.
    pub workflow: PathBuf,
    /// Indexes of the nodes it needs.
    pub needs: Vec<usize>,
    pub when: When,
    /// Higher starts first among ready nodes.
    pub priority: i64,
    /// `--set KEY=VALUE` for its job.
    pub set: Vec<(String, String)>,
}

/// When a node runs once its needs have ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// Only if every need completed (default).
    OnSuccess,
    /// Whatever its needs' outcome.
    Always,
    /// Only if a need failed (or was skipped).
    OnFailure,
}

impl Pipeline {
    pub fn index(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.name == name)
    }
}

/// The named priorities.
pub fn named_priority(s: &str) -> Option<i64> {
    match s.trim().to_ascii_lowercase().as_str() {
        "critical" => Some(3),
        "high" => Some(2),
        "normal" => Some(1),
        "low" => Some(0),
        _ => None,
    }
}
