//! The job lock: an exclusive OS file lock (`flock`) on `<job>/lock`, held for the holder's
//! whole life. The kernel drops it when the holder dies, even by `kill -9`, so a lock file
//! left behind is never mistaken for a live holder. The file's JSON content ([`LockInfo`]) only
//! says who holds it; a background thread refreshes `heartbeat_at` every few seconds.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::atomic::FILE_MODE;
use super::error::StateError;

/// How often the holder refreshes `heartbeat_at`.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(2);

/// How many times `acquire` retries when the lock file is replaced under it.
const MAX_ATTEMPTS: usize = 16;

/// What the lock file says about its holder.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct LockInfo {
    pub pid: u32,
    pub host: String,
    pub command: String,
    pub started_at: String,
    pub heartbeat_at: String,
}

impl LockInfo {
    fn unknown() -> Self {
        let u = || "unknown".to_string();
        LockInfo {
            pid: 0,
            host: u(),
            command: u(),
            started_at: u(),
            heartbeat_at: u(),
        }
    }
}

/// Why the lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another live process holds the lock.
    #[error(
        "job is locked by pid {} on host {} since {} (command {}; last heartbeat {}); wait for it or stop it",
        .0.pid, .0.host, .0.started_at, .0.command, .0.heartbeat_at
    )]
    Held(LockInfo),
    /// The lock file kept being replaced while we locked it.
    #[error(
        "could not lock {}: the lock file kept being replaced by another process; try again",
        path.display()
    )]
    Unstable { path: PathBuf },
    #[error(transparent)]
    State(#[from] StateError),
}

fn now() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

fn hostname() -> String {
    nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "unknown".to_string())
}

/// Does `path` still name the file open as `file` (same device and inode)? `false` when the
/// path no longer exists.
pub(crate) fn same_file(file: &File, path: &Path) -> io::Result<bool> {
    let held = file.metadata()?;
    match fs::metadata(path) {
        Ok(now) => Ok(held.dev() == now.dev() && held.ino() == now.ino()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Overwrite the file's content with `info` through the held descriptor.
fn write_info(file: &File, info: &LockInfo, path: &Path) -> Result<(), StateError> {
    let json = serde_json::to_vec(info).map_err(|source| StateError::Encode {
        path: path.to_path_buf(),
        source,
    })?;
    file.write_all_at(&json, 0)
        .and_then(|()| file.set_len(json.len() as u64))
        .map_err(|e| StateError::io("write lock file", path, e))
}

fn parse_info(file: &File) -> Option<LockInfo> {
    let len = file.metadata().ok()?.len();
    if len == 0 || len > 1 << 20 {
        return None;
    }
    let mut buf = vec![0u8; len as usize];
    let n = file.read_at(&mut buf, 0).ok()?;
    serde_json::from_slice(&buf[..n]).ok()
}

/// The holder's info, read through our own descriptor (the holder may not have written it
/// yet, so retry briefly).
fn holder_info(file: &File) -> LockInfo {
    // A new holder locks first and writes its info right after: until then the file may be
    // empty, or still name a previous holder that was killed. Wait briefly for live info.
    let mut last = None;
    for _ in 0..40 {
        if let Some(info) = parse_info(file) {
            if pid_alive(info.pid) {
                return info;
            }
            last = Some(info);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    last.unwrap_or_else(LockInfo::unknown)
}

/// Is `pid` a live (non-zombie) process on this host?
fn pid_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit(')')
                .next()
                .and_then(|r| r.split_whitespace().next())
                .map(|st| st != "Z" && st != "X")
        })
        .unwrap_or(false)
}

/// What the lock file at `path` says (possibly stale: check [`is_held`]). `None` if it is
/// missing or unreadable.
pub fn read_info(path: &Path) -> Option<LockInfo> {
    let file = File::open(path).ok()?;
    parse_info(&file)
}

/// Does some process hold the lock at `path` right now? Takes and drops a shared lock, so it
/// never creates the file and only briefly conflicts with a concurrent `acquire`.
pub fn is_held(path: &Path) -> bool {
    let Ok(file) = File::open(path) else {
        return false;
    };
    match file.try_lock_shared() {
        Ok(()) => {
            let _ = file.unlock();
            false
        }
        Err(TryLockError::WouldBlock) => true,
        Err(TryLockError::Error(_)) => false,
    }
}

/// A held job lock. Release it with [`JobLock::release`]; dropping it also releases it (best
/// effort).
#[derive(Debug)]
pub struct JobLock {
    path: PathBuf,
    file: Option<Arc<File>>,
    info: LockInfo,
    stop: Option<mpsc::Sender<()>>,
    heartbeat: Option<JoinHandle<()>>,
}

impl JobLock {
    /// Take the lock at `path` without blocking. `Err(LockError::Held(info))` at once when
    /// another live process holds it.
    pub fn acquire(path: &Path, command: &str) -> Result<JobLock, LockError> {
        Self::acquire_with_interval(path, command, HEARTBEAT_INTERVAL)
    }

    /// [`JobLock::acquire`] with a custom heartbeat interval.
    pub fn acquire_with_interval(
        path: &Path,
        command: &str,
        interval: Duration,
    ) -> Result<JobLock, LockError> {
        for _ in 0..MAX_ATTEMPTS {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(FILE_MODE)
                .open(path)
                .map_err(|e| StateError::io("open lock file", path, e))?;
            match file.try_lock() {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => return Err(LockError::Held(holder_info(&file))),
                Err(TryLockError::Error(e)) => {
                    return Err(StateError::io("lock", path, e).into());
                }
            }
            // The previous holder may have unlinked the file between our open and our lock
            // (release unlinks before unlocking); then we locked an orphan inode. Retry.
            let current =
                same_file(&file, path).map_err(|e| StateError::io("stat lock file", path, e))?;
            if !current {
                continue;
            }
            let started = now();
            let info = LockInfo {
                pid: std::process::id(),
                host: hostname(),
                command: command.to_string(),
                started_at: started.clone(),
                heartbeat_at: started,
            };
            write_info(&file, &info, path)?;
            file.sync_data()
                .map_err(|e| StateError::io("fsync lock file", path, e))?;
            let file = Arc::new(file);
            let (stop, heartbeat) =
                spawn_heartbeat(Arc::clone(&file), info.clone(), path, interval)?;
            return Ok(JobLock {
                path: path.to_path_buf(),
                file: Some(file),
                info,
                stop: Some(stop),
                heartbeat: Some(heartbeat),
            });
        }
        Err(LockError::Unstable {
            path: path.to_path_buf(),
        })
    }

    /// The lock file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What we wrote into the lock file when we took it.
    pub fn info(&self) -> &LockInfo {
        &self.info
    }

    /// Stop the heartbeat, unlink the lock file, then close it (which drops the OS lock).
    pub fn release(mut self) -> Result<(), StateError> {
        self.teardown()
    }

    fn teardown(&mut self) -> Result<(), StateError> {
        drop(self.stop.take());
        if let Some(h) = self.heartbeat.take() {
            let _ = h.join();
        }
        let Some(file) = self.file.take() else {
            return Ok(());
        };
        // Unlink first, while still locked, so nobody can lock this inode and believe it is
        // the job's lock; only unlink if the path is still ours.
        let result = match same_file(&file, &self.path) {
            Ok(true) => match fs::remove_file(&self.path) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(StateError::io("remove lock file", &self.path, e)),
            },
            Ok(false) => Ok(()),
            Err(e) => Err(StateError::io("stat lock file", &self.path, e)),
        };
        drop(file); // closes the descriptor: the OS lock is released here
        result
    }
}

impl Drop for JobLock {
    fn drop(&mut self) {
        let _ = self.teardown();
    }
}

fn spawn_heartbeat(
    file: Arc<File>,
    mut info: LockInfo,
    path: &Path,
    interval: Duration,
) -> Result<(mpsc::Sender<()>, JoinHandle<()>), StateError> {
    let (tx, rx) = mpsc::channel::<()>();
    let thread_path = path.to_path_buf();
    let handle = std::thread::Builder::new()
        .name("lock-heartbeat".into())
        .spawn(move || {
            loop {
                match rx.recv_timeout(interval) {
                    Err(RecvTimeoutError::Timeout) => {
                        info.heartbeat_at = now();
                        // Best effort: the OS lock, not the heartbeat, is what protects the job.
                        let _ = write_info(&file, &info, &thread_path);
                    }
                    Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
                }
            }
        })
        .map_err(|e| StateError::io("start the heartbeat thread for", path, e))?;
    Ok((tx, handle))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn acquire_writes_info_and_release_removes_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("lock");
        assert!(!is_held(&p));
        assert_eq!(read_info(&p), None);
        let lock = JobLock::acquire(&p, "runner run wf.yml").unwrap();
        assert!(is_held(&p));
        let info = read_info(&p).unwrap();
        assert_eq!(info.pid, std::process::id());
        assert_eq!(info.command, "runner run wf.yml");
        assert_eq!(&info, lock.info());
        humantime::parse_rfc3339(&info.started_at).unwrap();
        let mode = fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        lock.release().unwrap();
        assert!(!p.exists());
        assert!(!is_held(&p));
        // is_held never creates the file.
        assert!(!p.exists());
    }

    #[test]
    fn second_acquire_in_same_process_is_held() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("lock");
        let lock = JobLock::acquire(&p, "first").unwrap();
        let t = std::time::Instant::now();
        match JobLock::acquire(&p, "second") {
            Err(LockError::Held(info)) => {
                assert_eq!(info.pid, std::process::id());
                assert_eq!(info.command, "first");
                let e = LockError::Held(info).to_string();
                assert!(e.contains(&format!("pid {}", std::process::id())), "{e}");
                assert!(e.contains("wait for it or stop it"), "{e}");
            }
            other => panic!("{other:?}"),
        }
        assert!(t.elapsed() < Duration::from_secs(1), "not blocking");
        drop(lock);
        assert!(!p.exists(), "drop releases too");
        JobLock::acquire(&p, "third").unwrap().release().unwrap();
    }

    #[test]
    fn stale_lock_file_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("lock");
        fs::write(
            &p,
            br#"{"pid":1,"host":"h","command":"c","started_at":"x","heartbeat_at":"x"}"#,
        )
        .unwrap();
        assert!(!is_held(&p));
        assert_eq!(read_info(&p).unwrap().pid, 1);
        let lock = JobLock::acquire(&p, "new").unwrap();
        assert_eq!(read_info(&p).unwrap().command, "new");
        lock.release().unwrap();
    }

    #[test]
    fn garbage_lock_file_does_not_panic() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("lock");
        fs::write(&p, b"\xff\x00garbage").unwrap();
        assert_eq!(read_info(&p), None);
        // Held by another handle with garbage content: Held with unknown info.
        let other = File::open(&p).unwrap();
        other.lock().unwrap();
        match JobLock::acquire(&p, "x") {
            Err(LockError::Held(info)) => assert_eq!(info, LockInfo::unknown()),
            other => panic!("{other:?}"),
        }
        other.unlock().unwrap();
        JobLock::acquire(&p, "x").unwrap().release().unwrap();
    }

    #[test]
    fn heartbeat_advances_and_release_is_prompt() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("lock");
        let lock = JobLock::acquire_with_interval(&p, "hb", Duration::from_millis(20)).unwrap();
        let first = read_info(&p).unwrap();
        let mut advanced = false;
        for _ in 0..100 {
            std::thread::sleep(Duration::from_millis(20));
            if let Some(now) = read_info(&p)
                && humantime::parse_rfc3339(&now.heartbeat_at).unwrap()
                    > humantime::parse_rfc3339(&first.heartbeat_at).unwrap()
            {
                assert_eq!(now.started_at, first.started_at);
                advanced = true;
                break;
            }
        }
        assert!(advanced);
        drop(lock);

        let lock = JobLock::acquire_with_interval(&p, "slow", Duration::from_secs(60)).unwrap();
        let t = std::time::Instant::now();
        lock.release().unwrap();
        assert!(t.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn unlink_race_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("lock");
        // B opens the file while A holds the lock...
        let a = JobLock::acquire(&p, "a").unwrap();
        let b = OpenOptions::new().read(true).write(true).open(&p).unwrap();
        assert!(matches!(b.try_lock(), Err(TryLockError::WouldBlock)));
        // ...A releases (unlink, then unlock)...
        a.release().unwrap();
        // ...so B can lock, but it holds an orphan inode, which same_file reveals.
        b.try_lock().unwrap();
        assert!(!same_file(&b, &p).unwrap());
        // C creates a new file at the path: still not B's.
        let c = JobLock::acquire(&p, "c").unwrap();
        assert!(!same_file(&b, &p).unwrap());
        assert!(same_file(&File::open(&p).unwrap(), &p).unwrap());
        drop(b);
        c.release().unwrap();
    }

    #[test]
    fn drop_does_not_unlink_a_replaced_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("lock");
        let a = JobLock::acquire(&p, "a").unwrap();
        fs::remove_file(&p).unwrap();
        fs::write(&p, b"someone else's").unwrap();
        a.release().unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"someone else's");
    }

    #[test]
    fn missing_directory_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("no-such-job").join("lock");
        let e = JobLock::acquire(&p, "x").unwrap_err();
        assert!(e.to_string().contains("no-such-job"), "{e}");
    }
}
