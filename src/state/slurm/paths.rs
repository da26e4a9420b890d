//! Where the Slurm backend's files live inside a job directory:
//!
//! ```text
//! slurm/
//!   context.json               setup captures, for the tasks
//!   sub-<N>.json               submission N: each array task's batch of item attempts
//!   submissions.jsonl          one line per sbatch: the Slurm job id and the batches
//!   outcomes/<stem>.<N>.<A>.json   attempt A of an item, run in submission N
//!   logs/<jobid>_<i>.out       Slurm's stdout/stderr of each array task
//! ```

use std::path::{Path, PathBuf};

use crate::state::layout::item_file_stem;

#[derive(Debug, Clone)]
pub struct SlurmPaths {
    root: PathBuf,
}

/// What an outcome file's name says: the item (its file stem), the submission and the
/// attempt.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OutcomeKey {
    pub stem: String,
    pub sub: u64,
    pub attempt: u32,
}

impl OutcomeKey {
    pub fn new(item_id: &str, sub: u64, attempt: u32) -> Self {
        OutcomeKey {
            stem: item_file_stem(item_id),
            sub,
            attempt,
        }
    }

    /// The key of an outcome file name, `None` for any other file (temporary files of
    /// atomic writes end in `.tmp-<pid>-<random>`).
    pub fn parse(file_name: &str) -> Option<Self> {
        let base = file_name.strip_suffix(".json")?;
        let mut parts = base.rsplitn(3, '.');
        let attempt = parts.next()?.parse().ok()?;
        let sub = parts.next()?.parse().ok()?;
        let stem = parts.next()?.to_owned();
        Some(OutcomeKey { stem, sub, attempt })
    }

    pub fn file_name(&self) -> String {
        format!("{}.{}.{}.json", self.stem, self.sub, self.attempt)
    }
}

impl SlurmPaths {
    pub fn new(job_dir: &Path) -> Self {
        SlurmPaths {
            root: job_dir.join("slurm"),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// One line per `sbatch` (`state::jsonl`, plain framing).
    pub fn submissions(&self) -> PathBuf {
        self.root.join("submissions.jsonl")
    }

    /// The batches of submission `n` (read by each array task).
    pub fn sub_file(&self, n: u64) -> PathBuf {
        self.root.join(format!("sub-{n}.json"))
    }

    /// The submission number of a `sub-<N>.json` file name.
    pub fn parse_sub_file(file_name: &str) -> Option<u64> {
        file_name
            .strip_prefix("sub-")?
            .strip_suffix(".json")?
            .parse()
            .ok()
    }

    pub fn outcomes(&self) -> PathBuf {
        self.root.join("outcomes")
    }

    pub fn outcome(&self, key: &OutcomeKey) -> PathBuf {
        self.outcomes().join(key.file_name())
    }

    /// Slurm's own stdout/stderr of each task (`%A_%a.out`).
    pub fn logs(&self) -> PathBuf {
        self.root.join("logs")
    }

    pub fn task_log(&self, slurm_job: &str, index: usize) -> PathBuf {
        self.logs().join(format!("{slurm_job}_{index}.out"))
    }

    /// Job-wide values the tasks need that are not in the job's files (setup captures).
    pub fn context(&self) -> PathBuf {
        self.root.join("context.json")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_names_round_trip_even_with_dots_in_the_stem() {
        for id in ["a.b.c", "x", "../etc/passwd", "ünï cödé", ".hidden"] {
            let key = OutcomeKey::new(id, 12, 3);
            let name = key.file_name();
            assert!(!name.contains('/'), "{name}");
            assert_eq!(OutcomeKey::parse(&name), Some(key));
        }
        assert_eq!(OutcomeKey::parse(".x-1.2.3.json.tmp-4-5"), None);
        assert_eq!(OutcomeKey::parse("x.json"), None);
        assert_eq!(SlurmPaths::parse_sub_file("sub-17.json"), Some(17));
        assert_eq!(SlurmPaths::parse_sub_file("sub-x.json"), None);
    }
}
