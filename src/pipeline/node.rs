//! Running one node: as a child `runner run` (a new job) or `runner resume` (its job exists),
//! in its own process group (terminal signals reach the coordinator, which forwards them
//! once), dying with the coordinator (so a `kill -9` of the pipeline is a crash of every
//! node, which `resume` repairs as it does for any job).

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};

use crate::error::exit_code;
use crate::pipeline::dag::NodeState;
use crate::session::error::SessionError;
use crate::session::open::read_meta;
use crate::state::layout::StateDir;
use crate::state::lock::is_held;
use crate::state::records::JobState;
use crate::state::recover::{recorded_state, recover};

/// How a node's job is started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeStart {
    /// No job yet: `runner run`.
    Run,
    /// The job exists (interrupted or failed): `runner resume`.
    Resume,
    /// The job completed already (a crash lost the pipeline's record of it).
    AlreadyCompleted,
}

/// Look at the node's job: none, finished, or to be resumed. A directory left without its
/// metadata by a crash during creation (no item ever ran in it) is removed.
pub fn how_to_start(state: &StateDir, job_id: &str) -> Result<NodeStart, SessionError> {
    let dir = state.job(job_id)?;
    if !dir.exists() {
        return Ok(NodeStart::Run);
    }
    if read_meta(&dir).is_err() && !is_held(&dir.lock()) {
        std::fs::remove_dir_all(dir.path())
            .map_err(|e| crate::state::error::StateError::io("remove", dir.path(), e))?;
        return Ok(NodeStart::Run);
    }
    let view = recover(&dir, false)?;
    if !is_held(&dir.lock()) && recorded_state(&view) == JobState::Completed {
        return Ok(NodeStart::AlreadyCompleted);
    }
    Ok(NodeStart::Resume)
}

/// What a node's child process is asked to do.
pub struct NodeCommand<'a> {
    pub state_dir: &'a Path,
    pub job_id: &'a str,
    pub workflow: &'a Path,
    pub start: NodeStart,
    /// `--set` pairs (the node's, then the pipeline run's).
    pub set: &'a [(String, String)],
    pub max_parallel: Option<usize>,
    /// `resume --force` (the workflow file changed).
    pub force: bool,
    pub quiet: bool,
}

impl NodeCommand<'_> {
    /// The child process, ready to spawn (stderr piped, stdout and stdin closed).
    pub fn command(&self) -> std::io::Result<tokio::process::Command> {
        let exe: PathBuf = std::env::current_exe()?;
        let mut c = std::process::Command::new(exe);
        c.arg("--state-dir").arg(self.state_dir);
        c.args(["--color", "never"]);
        if self.quiet {
            c.arg("-q");
        }
        match self.start {
            NodeStart::Run => {
                c.arg("run")
                    .arg(self.workflow)
                    .arg("--job-id")
                    .arg(self.job_id);
                for (k, v) in self.set {
                    c.arg("--set").arg(format!("{k}={v}"));
                }
            }
            NodeStart::Resume | NodeStart::AlreadyCompleted => {
                c.arg("resume").arg(self.job_id);
                if self.force {
                    c.arg("--force");
                }
            }
        }
        if let Some(n) = self.max_parallel {
            c.arg("--max-parallel").arg(n.to_string());
        }
        c.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0);
        die_with_parent(&mut c);
        Ok(tokio::process::Command::from(c))
    }
}

/// The child gets SIGKILL when the coordinator dies (its watchdog then kills its items'
/// process groups, and `resume` cleans up after it like after any crashed job).
fn die_with_parent(c: &mut std::process::Command) {
    let parent = nix::unistd::getpid();
    // SAFETY: the hook runs in the forked child before exec and only makes two system
    // calls (prctl, getppid), both async-signal-safe; it allocates nothing.
    unsafe {
        c.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
                .map_err(std::io::Error::from)?;
            if nix::unistd::getppid() != parent {
                // The coordinator died before the hook ran.
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
}

/// A node's end from its process's exit status.
pub fn outcome(status: &ExitStatus) -> (NodeState, Option<i32>, Option<String>) {
    use std::os::unix::process::ExitStatusExt;
    match status.code() {
        Some(exit_code::COMPLETED) => (NodeState::Completed, Some(0), None),
        Some(c @ (exit_code::SIGINT | exit_code::SIGTERM)) => {
            (NodeState::Interrupted, Some(c), None)
        }
        Some(c @ exit_code::LOCKED) => (
            NodeState::Failed,
            Some(c),
            Some("its job is locked by another process".into()),
        ),
        Some(c @ exit_code::USAGE) => (
            NodeState::Failed,
            Some(c),
            Some("bad usage or input (see its output)".into()),
        ),
        Some(c) => (NodeState::Failed, Some(c), None),
        None => (
            NodeState::Failed,
            None,
            Some(format!(
                "its runner was killed by signal {}",
                status.signal().unwrap_or(0)
            )),
        ),
    }
}
