//! `slurm/outcomes/<stem>.<N>.<A>.json`: how attempt `A` of an item ended in an array task
//! of submission `N`. Each is written atomically by the task as soon as the attempt ends,
//! read by the coordinator, and deleted once its record is in the journal.

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::paths::{OutcomeKey, SlurmPaths};
use crate::state::atomic::write_atomic_unsynced;
use crate::state::error::StateError;
use crate::state::records::Attempt;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    pub sub: u64,
    pub idx: usize,
    pub item_id: String,
    pub attempt: Attempt,
    /// Values its steps captured (when it succeeded).
    #[serde(default)]
    pub captured: Map<String, Value>,
    /// The node it ran on.
    #[serde(default)]
    pub host: String,
}

impl Outcome {
    pub fn key(&self) -> OutcomeKey {
        OutcomeKey::new(&self.item_id, self.sub, self.attempt.attempt)
    }

    /// Write the outcome file atomically (a reader sees all of it or nothing), without
    /// fsync: the coordinator records it durably in the journal before deleting it, and an
    /// outcome lost to a power cut only means the attempt runs again, never twice recorded.
    /// (Two fsyncs per item halved a task's throughput.)
    pub fn write(&self, paths: &SlurmPaths) -> Result<(), StateError> {
        let path = paths.outcome(&self.key());
        write_atomic_unsynced(&path, &super::submission::to_json(&path, self)?)
    }

    pub fn read(path: &Path) -> Result<Self, StateError> {
        super::submission::read_json(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::records::Failure;

    #[test]
    fn outcomes_are_found_by_their_key() {
        let d = tempfile::tempdir().unwrap();
        let paths = SlurmPaths::new(d.path());
        std::fs::create_dir_all(paths.outcomes()).unwrap();
        let o = Outcome {
            sub: 3,
            idx: 9,
            item_id: "a/b".into(),
            attempt: Attempt {
                attempt: 2,
                started_at: "2026-01-01T00:00:00Z".into(),
                duration_ms: 5,
                failure: Some(Failure::Exit { code: 4, step: 0 }),
                stderr_tail: "boom".into(),
                usage: None,
            },
            captured: Map::new(),
            host: "n1".into(),
        };
        o.write(&paths).unwrap();
        let path = paths.outcome(&OutcomeKey::new("a/b", 3, 2));
        assert_eq!(Outcome::read(&path).unwrap(), o);
    }
}
