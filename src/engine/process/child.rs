//! A spawned step shell and its end. Spawned by [`vfork::spawn`] (see docs/performance.md),
//! its exit awaited on a pidfd and reaped with `wait4`,
//! which also hands back what it used: the shell's own rusage plus that of every
//! descendant that was waited for (docs/resources.md says what that leaves out).

use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::time::Duration;

use tokio::io::unix::AsyncFd;
use tokio::process::{ChildStderr, ChildStdout};

use crate::engine::process::launch::Launch;
use crate::engine::process::{reaper, vfork};
use crate::state::records::Usage;

/// How a reaped child ended and what it (and its waited-for descendants) used.
#[derive(Debug, Clone, Copy)]
pub struct Waited {
    pub status: ExitStatus,
    pub usage: Usage,
}

pub struct ShellChild {
    pid: i32,
    /// Readable once the child exited; `None` where pidfds are unavailable (then the exit
    /// is polled).
    pidfd: Option<AsyncFd<OwnedFd>>,
    waited: Option<Waited>,
    /// Its start time in clock ticks since boot (`/proc/<pid>/stat` field 22).
    start_ticks: Option<u64>,
    /// The gate of a limited step (see `shell::GATE`): a line here lets it start.
    gate: Option<std::process::ChildStdin>,
    pub stdout: Option<ChildStdout>,
    pub stderr: Option<ChildStderr>,
}

impl ShellChild {
    /// Spawn `l` (registered with the reaper until it is waited for).
    pub fn spawn(l: &Launch) -> io::Result<ShellChild> {
        let spawned = reaper::spawn_registered(|| vfork::spawn(l), |s| Some(s.pid as u32))?;
        let pid = spawned.pid;
        let pidfd = spawned
            .pidfd
            .or_else(|| {
                let p = rustix::process::Pid::from_raw(pid)?;
                rustix::process::pidfd_open(p, rustix::process::PidfdFlags::NONBLOCK).ok()
            })
            // SAFETY: the AsyncFd owns the OwnedFd, so the fd stays open while registered.
            .and_then(|fd| unsafe { AsyncFd::register(fd) }.ok());
        let stdout = ChildStdout::from_std(std::process::ChildStdout::from(spawned.stdout));
        let stderr = ChildStderr::from_std(std::process::ChildStderr::from(spawned.stderr));
        let (stdout, stderr) = match (stdout, stderr) {
            (Ok(o), Ok(e)) => (o, e),
            (Err(e), _) | (_, Err(e)) => {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
                let mut status = 0;
                // SAFETY: waitpid on our own child, just killed.
                unsafe { libc::waitpid(pid, &mut status, 0) };
                reaper::forget(pid);
                return Err(e);
            }
        };
        Ok(ShellChild {
            pid,
            pidfd,
            waited: None,
            start_ticks: spawned.start_ticks,
            gate: spawned.stdin.map(std::process::ChildStdin::from),
            stdout: Some(stdout),
            stderr: Some(stderr),
        })
    }

    /// The start time of the child (its group's leader) in clock ticks since boot, as
    /// `/proc/<pid>/stat` has it; 0 if it cannot be known.
    pub fn start_ticks(&self) -> u64 {
        self.start_ticks
            .or_else(|| reaper::stat_of(self.pid).map(|s| s.start))
            .unwrap_or(0)
    }

    /// Let a gated child start (nothing for an ungated one).
    pub fn open_gate(&mut self) {
        use std::io::Write;
        if let Some(mut gate) = self.gate.take() {
            // A pipe with room for a line: this does not block. A child that is already
            // gone makes it fail, which its exit status tells.
            let _ = gate.write_all(b"\n");
        }
    }

    pub fn id(&self) -> i32 {
        self.pid
    }

    /// Wait for the child to exit and reap it (again: the first result is kept).
    pub async fn wait(&mut self) -> io::Result<Waited> {
        loop {
            if let Some(w) = self.waited {
                return Ok(w);
            }
            // The pidfd turns readable once the child exited (at once if it already has).
            let ready = match &self.pidfd {
                Some(fd) => Some(fd.readable().await?),
                None => None,
            };
            if let Some(w) = reap(self.pid)? {
                reaper::forget(self.pid);
                self.waited = Some(w);
                continue;
            }
            match ready {
                Some(mut ready) => ready.clear_ready(),
                None => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
    }
}

impl Drop for ShellChild {
    /// A child dropped before it was reaped (a task that panicked) is left to the reaper,
    /// which collects it once it is a zombie.
    fn drop(&mut self) {
        if self.waited.is_none() {
            reaper::forget(self.pid);
        }
    }
}

/// `wait4(pid, WNOHANG)`: the status and usage once the child has exited.
fn reap(pid: i32) -> io::Result<Option<Waited>> {
    let mut status = 0;
    // SAFETY: rusage is plain old data; all zeroes is a valid value.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: wait4 on our own child; `status` and `ru` are valid for writes during the call.
    let r = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut ru) };
    match r {
        0 => Ok(None),
        r if r == pid => Ok(Some(Waited {
            status: ExitStatus::from_raw(status),
            usage: usage_of(&ru),
        })),
        _ => {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                Ok(None)
            } else {
                Err(e)
            }
        }
    }
}

fn usage_of(ru: &libc::rusage) -> Usage {
    let ms = |t: libc::timeval| t.tv_sec.max(0) as u64 * 1000 + t.tv_usec.max(0) as u64 / 1000;
    Usage {
        // Linux reports ru_maxrss in KiB.
        peak_rss_kb: ru.ru_maxrss.max(0) as u64,
        cpu_ms: ms(ru.ru_utime) + ms(ru.ru_stime),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Launch {
        let mut c = Launch::new("/bin/sh");
        c.arg("-c").arg(script);
        c
    }

    #[tokio::test]
    async fn waits_and_measures_descendants() {
        // The shell burns some CPU before it exits.
        let mut c = ShellChild::spawn(&sh(
            "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done; exit 3",
        ))
        .unwrap();
        let w = c.wait().await.unwrap();
        assert_eq!(w.status.code(), Some(3));
        assert!(w.usage.peak_rss_kb > 100, "{:?}", w.usage);
        assert!(w.usage.cpu_ms > 0, "{:?}", w.usage);
        // A second wait returns the same result.
        assert_eq!(c.wait().await.unwrap().status.code(), Some(3));
    }
}
