//! Where things live in the state directory.
//!
//! ```text
//! <root>/jobs/<job-id>/
//!     job.json  workflow.yml  items.jsonl  journal.log  checkpoint.json
//!     dlq.jsonl  results.jsonl  lock  control/  logs/items/<item-stem>/
//!     worktree.json  worktrees/job/  worktrees/items/<item-stem>/   (git isolation)
//! ```
//!
//! Item ids never become raw file names: see [`item_file_stem`].

use std::fs::{self, DirBuilder};
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::atomic::{DIR_MODE, create_dir_private, fsync_dir};
use super::error::StateError;

/// Longest allowed job id.
pub const MAX_JOB_ID_LEN: usize = 128;

fn is_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
}

/// Check that `id` matches `[A-Za-z0-9][A-Za-z0-9._-]{0,127}`.
pub fn validate_job_id(id: &str) -> Result<(), StateError> {
    let mut chars = id.chars();
    let ok = match chars.next() {
        Some(first) => {
            first.is_ascii_alphanumeric() && id.len() <= MAX_JOB_ID_LEN && chars.all(is_id_char)
        }
        None => false,
    };
    if ok {
        Ok(())
    } else {
        Err(StateError::InvalidJobId { id: id.to_string() })
    }
}

/// `YYYYmmdd-HHMMSS` in UTC for `t`.
fn compact_utc(t: SystemTime) -> String {
    // "2024-01-02T03:04:05Z" -> "20240102-030405"
    let text = humantime::format_rfc3339_seconds(t).to_string();
    let (date, time) = text.split_once('T').unwrap_or((&text, ""));
    let date: String = date.chars().filter(char::is_ascii_digit).collect();
    let time: String = time.chars().filter(char::is_ascii_digit).collect();
    format!("{date}-{time}")
}

/// A fresh job id: `<name>-<YYYYmmdd-HHMMSS>-<4 hex random>` (UTC), with the workflow name
/// reduced to the allowed characters and shortened so the whole id fits in 128 characters.
pub fn new_job_id(workflow_name: &str) -> String {
    new_job_id_at(workflow_name, SystemTime::now(), fastrand::u16(..))
}

fn new_job_id_at(workflow_name: &str, now: SystemTime, rand: u16) -> String {
    let suffix = format!("-{}-{rand:04x}", compact_utc(now));
    let sanitized: String = workflow_name
        .chars()
        .map(|c| if is_id_char(c) { c } else { '_' })
        .skip_while(|c| !c.is_ascii_alphanumeric())
        .take(MAX_JOB_ID_LEN - suffix.len())
        .collect();
    let name = if sanitized.is_empty() {
        "job".to_string()
    } else {
        sanitized
    };
    format!("{name}{suffix}")
}

/// A file-name-safe, deterministic, collision-resistant stem for an item id: up to 32 chars of
/// the id with everything outside `[A-Za-z0-9._-]` replaced by `_`, then `-`, then the first
/// 16 hex chars of blake3(id). Never `.`/`..`, never contains `/`.
pub fn item_file_stem(item_id: &str) -> String {
    let mut stem: String = item_id
        .chars()
        .take(32)
        .map(|c| if is_id_char(c) { c } else { '_' })
        .collect();
    stem.push('-');
    let hash = blake3::hash(item_id.as_bytes()).to_hex();
    stem.push_str(&hash[..16]);
    stem
}

/// The state directory (holds `jobs/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateDir {
    root: PathBuf,
}

impl StateDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        StateDir { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `<root>/jobs`
    pub fn jobs_dir(&self) -> PathBuf {
        self.root.join("jobs")
    }

    /// The directory of job `id` (which need not exist). Validates the id.
    pub fn job(&self, id: &str) -> Result<JobDir, StateError> {
        validate_job_id(id)?;
        Ok(JobDir {
            path: self.jobs_dir().join(id),
        })
    }

    /// Create the directory of a new job (mode 0700, parents as needed). Fails with
    /// [`StateError::JobExists`] if it is already there.
    pub fn create_job(&self, id: &str) -> Result<JobDir, StateError> {
        let job = self.job(id)?;
        let jobs = self.jobs_dir();
        create_dir_private(&jobs)?;
        match DirBuilder::new().mode(DIR_MODE).create(&job.path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(StateError::JobExists { path: job.path });
            }
            Err(e) => return Err(StateError::io("create job directory", &job.path, e)),
        }
        fsync_dir(&jobs)?;
        Ok(job)
    }

    /// The root, created (private) when missing: where anonymous temporary files that belong
    /// to no job yet go (the selected items of a job being created), on the state's disk
    /// rather than in a `/tmp` that may be memory.
    pub fn scratch_dir(&self) -> Result<&Path, StateError> {
        create_dir_private(&self.root)?;
        Ok(&self.root)
    }

    /// Ids of the existing jobs, sorted. A missing state directory has no jobs; entries that
    /// are not directories or not valid ids are ignored.
    pub fn list_jobs(&self) -> Result<Vec<String>, StateError> {
        let jobs = self.jobs_dir();
        let entries = match fs::read_dir(&jobs) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(StateError::io("list jobs in", &jobs, e)),
        };
        let mut ids = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| StateError::io("list jobs in", &jobs, e))?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
            if is_dir && validate_job_id(&name).is_ok() {
                ids.push(name);
            }
        }
        ids.sort();
        Ok(ids)
    }
}

/// One job's directory and the paths inside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobDir {
    path: PathBuf,
}

impl JobDir {
    /// A job directory at an explicit path (no validation).
    pub fn at(path: impl Into<PathBuf>) -> Self {
        JobDir { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The job id (the directory's name).
    pub fn id(&self) -> String {
        self.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    pub fn exists(&self) -> bool {
        self.path.is_dir()
    }

    /// `job.json`: the job's metadata.
    pub fn meta(&self) -> PathBuf {
        self.path.join("job.json")
    }

    /// `workflow.yml`: the workflow as it was when the job started.
    pub fn workflow_snapshot(&self) -> PathBuf {
        self.path.join("workflow.yml")
    }

    /// `items.jsonl`: the frozen item list.
    pub fn items(&self) -> PathBuf {
        self.path.join("items.jsonl")
    }

    /// `journal.log`: the active journal segment (the one appended to).
    pub fn journal(&self) -> PathBuf {
        self.path.join("journal.log")
    }

    /// `journal.<seq>.log`: a sealed journal segment.
    pub fn journal_segment(&self, seq: u64) -> PathBuf {
        self.path.join(format!("journal.{seq}.log"))
    }

    /// `checkpoint.bin`: the compressed, checksummed checkpoint.
    pub fn checkpoint(&self) -> PathBuf {
        self.path.join("checkpoint.bin")
    }

    /// `checkpoint.json`: the checkpoint of jobs made by earlier versions (read only).
    pub fn checkpoint_v1(&self) -> PathBuf {
        self.path.join("checkpoint.json")
    }

    /// `timeline.bin`: what `runner report` draws, for the job's whole life.
    pub fn timeline(&self) -> PathBuf {
        self.path.join("timeline.bin")
    }

    /// `dlq.jsonl`
    pub fn dlq(&self) -> PathBuf {
        self.path.join("dlq.jsonl")
    }

    /// `lock`
    pub fn lock(&self) -> PathBuf {
        self.path.join("lock")
    }

    /// `logs/`
    pub fn logs_dir(&self) -> PathBuf {
        self.path.join("logs")
    }

    /// `results.jsonl`
    pub fn results(&self) -> PathBuf {
        self.path.join("results.jsonl")
    }

    /// `control/`
    pub fn control(&self) -> PathBuf {
        self.path.join("control")
    }

    /// `logs/items/<item_file_stem(item_id)>/`
    pub fn item_log_dir(&self, item_id: &str) -> PathBuf {
        self.logs_dir().join("items").join(item_file_stem(item_id))
    }

    /// `worktree.json`: the job's git isolation (repository, branches), when it has one.
    pub fn worktree_record(&self) -> PathBuf {
        self.path.join("worktree.json")
    }

    /// `worktrees/`: the job's git worktrees.
    pub fn worktrees(&self) -> PathBuf {
        self.path.join("worktrees")
    }

    /// `worktrees/job`: the job's worktree (setup and reduce run there).
    pub fn job_worktree(&self) -> PathBuf {
        self.worktrees().join("job")
    }

    /// `worktrees/items/`: the items' worktrees.
    pub fn item_worktrees(&self) -> PathBuf {
        self.worktrees().join("items")
    }

    /// `worktrees/items/<item_file_stem(item_id)>`: an item's worktree.
    pub fn item_worktree(&self, item_id: &str) -> PathBuf {
        self.item_worktrees().join(item_file_stem(item_id))
    }

    /// `worktrees/items/<item_file_stem(item_id)>.base`: the commit an item's branch
    /// started from.
    pub fn item_worktree_base(&self, item_id: &str) -> PathBuf {
        self.item_worktrees()
            .join(format!("{}.base", item_file_stem(item_id)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn job_ids() {
        for ok in ["a", "A1", "9", "job-1.2_3", &"x".repeat(128)] {
            validate_job_id(ok).unwrap();
        }
        for bad in [
            "",
            ".",
            "..",
            "-a",
            "_a",
            ".hidden",
            "a/b",
            "a b",
            "é",
            "a\0",
            &"x".repeat(129),
        ] {
            let e = validate_job_id(bad).unwrap_err();
            assert!(e.to_string().contains("A-Z a-z 0-9 . _ -"), "{e}");
        }
    }

    #[test]
    fn new_job_ids() {
        let t = UNIX_EPOCH + Duration::from_secs(1_704_164_645); // 2024-01-02T03:04:05Z
        assert_eq!(new_job_id_at("etl", t, 0xbeef), "etl-20240102-030405-beef");
        assert_eq!(
            new_job_id_at("../my flow!", t, 1),
            "my_flow_-20240102-030405-0001"
        );
        assert_eq!(new_job_id_at("", t, 1), "job-20240102-030405-0001");
        assert_eq!(new_job_id_at("ünï", t, 1), "n_-20240102-030405-0001");
        let long = new_job_id_at(&"w".repeat(500), t, 1);
        assert_eq!(long.len(), 128);
        validate_job_id(&long).unwrap();
        for name in ["x", "a/b/c", "", "---", "日本", &"é".repeat(300)] {
            validate_job_id(&new_job_id(name)).unwrap();
        }
    }

    #[test]
    fn item_stems() {
        let s = item_file_stem("../../etc/passwd");
        assert!(s.starts_with(".._.._etc_passwd-"), "{s}");
        assert_eq!(s.len(), "../../etc/passwd".len() + 1 + 16);
        assert!(!s.contains('/'));

        let e = item_file_stem("");
        assert_eq!(e.len(), 17);
        assert!(e.starts_with('-'));

        let u = item_file_stem("日本語-ü");
        assert!(u.starts_with("___-_-"), "{u}");

        let long = "a".repeat(10_000);
        let l = item_file_stem(&long);
        assert_eq!(l.len(), 32 + 1 + 16);

        // Deterministic and distinct for ids that sanitize the same way.
        assert_eq!(item_file_stem("a/b"), item_file_stem("a/b"));
        assert_ne!(item_file_stem("a/b"), item_file_stem("a_b"));
        assert_ne!(item_file_stem(&long), item_file_stem(&format!("{long}b")));
        for id in [".", "..", "/", "\0", "a\nb"] {
            let s = item_file_stem(id);
            assert!(s != "." && s != ".." && !s.contains('/') && !s.contains('\0'));
            assert!(s.chars().all(is_id_char), "{s:?}");
        }
        // Stable across versions (the on-disk layout depends on it).
        let h = blake3::hash(b"x").to_hex();
        assert_eq!(item_file_stem("x"), format!("x-{}", &h[..16]));
    }

    #[test]
    fn state_dir_and_jobs() {
        let dir = tempfile::tempdir().unwrap();
        let sd = StateDir::new(dir.path().join("state"));
        assert_eq!(sd.list_jobs().unwrap(), Vec::<String>::new());
        assert!(sd.job("../x").is_err());
        let j = sd.job("b").unwrap();
        assert!(!j.exists());
        let j = sd.create_job("b").unwrap();
        assert!(j.exists());
        assert_eq!(j.id(), "b");
        let mode = fs::metadata(j.path()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        sd.create_job("a").unwrap();
        let e = sd.create_job("a").unwrap_err();
        assert!(matches!(e, StateError::JobExists { .. }), "{e}");
        fs::write(sd.jobs_dir().join("stray-file"), b"").unwrap();
        fs::create_dir(sd.jobs_dir().join(".hidden")).unwrap();
        assert_eq!(sd.list_jobs().unwrap(), vec!["a", "b"]);

        let root = sd.jobs_dir().join("b");
        assert_eq!(j.meta(), root.join("job.json"));
        assert_eq!(j.workflow_snapshot(), root.join("workflow.yml"));
        assert_eq!(j.items(), root.join("items.jsonl"));
        assert_eq!(j.journal(), root.join("journal.log"));
        assert_eq!(j.checkpoint(), root.join("checkpoint.bin"));
        assert_eq!(j.dlq(), root.join("dlq.jsonl"));
        assert_eq!(j.lock(), root.join("lock"));
        assert_eq!(j.logs_dir(), root.join("logs"));
        assert_eq!(j.results(), root.join("results.jsonl"));
        assert_eq!(j.control(), root.join("control"));
        assert_eq!(
            j.item_log_dir("../x"),
            root.join("logs/items").join(item_file_stem("../x"))
        );
    }
}
