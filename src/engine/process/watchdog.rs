//! Parent-death cleanup without `fork`: a small watchdog process (`runner __watchdog`,
//! started once per run) learns every process group a step starts and ends over a pipe;
//! when the runner dies — even by SIGKILL — the pipe closes and the watchdog kills the
//! groups that are still running, grandchildren included.
//!
//! A step that is killed together with the runner before its group reached the watchdog
//! (the runner spawns it, then writes `+pgid`: a SIGKILL in between) is found another way:
//! every step is started with `RUNNER_WATCHDOG_TOKEN=<this run's random token>` in its
//! environment, which everything it starts inherits, and after the runner died the watchdog
//! also kills the process groups of processes carrying that token.
//!
//! Setting `PR_SET_PDEATHSIG` on each child would need a `pre_exec` hook, which forces
//! `fork` instead of `vfork` (`process::vfork`) for every item: measured at ~40% of dispatch
//! throughput on 2,000 `true` items. It would also only cover the direct `sh`, not what it
//! starts. The watchdog costs two short lines per step, written together with those of
//! the other steps started or ended in the same turn of the runtime (one write, one
//! wake-up of the watchdog, per turn).

use std::io::{BufRead, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};

use crate::engine::process::orphans::{kill_leftovers, kill_marked};
use crate::state::job::LiveGroup;
use crate::state::records::Phase;

struct Link {
    stdin: ChildStdin,
    _child: Child,
    /// Lines not written yet, and whether a task to write them is scheduled.
    pending: Vec<u8>,
    flush_scheduled: bool,
}

impl Link {
    /// Write the pending lines; false once the watchdog is gone.
    fn flush(&mut self) -> bool {
        self.flush_scheduled = false;
        let ok = self.pending.is_empty() || self.stdin.write_all(&self.pending).is_ok();
        self.pending.clear();
        ok
    }
}

/// The variable that marks the processes of this run's steps.
pub const TOKEN_VAR: &str = "RUNNER_WATCHDOG_TOKEN";

fn token() -> &'static OnceLock<String> {
    static TOKEN: OnceLock<String> = OnceLock::new();
    &TOKEN
}

/// `(TOKEN_VAR, token)` for a step's environment, once the watchdog runs.
pub fn marker() -> Option<(&'static str, &'static str)> {
    token().get().map(|t| (TOKEN_VAR, t.as_str()))
}

fn link() -> &'static Mutex<Option<Link>> {
    static LINK: OnceLock<Mutex<Option<Link>>> = OnceLock::new();
    LINK.get_or_init(|| Mutex::new(None))
}

/// Start the watchdog for this process (best effort: without it, a resume still cleans up).
pub fn start() {
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let spawned = {
        use std::os::unix::process::CommandExt;
        Command::new(exe)
            .arg("__watchdog")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0) // terminal signals (Ctrl-C) are for the runner, not for it
            .spawn()
    };
    if let Ok(mut child) = spawned
        && let Some(mut stdin) = child.stdin.take()
        && let Ok(mut l) = link().lock()
    {
        let t = format!(
            "{:016x}{:016x}{:x}",
            fastrand::u64(..),
            fastrand::u64(..),
            std::process::id()
        );
        if stdin.write_all(format!("token {t}\n").as_bytes()).is_ok() {
            let _ = token().set(t);
        }
        *l = Some(Link {
            stdin,
            _child: child,
            pending: Vec::new(),
            flush_scheduled: false,
        });
    }
}

/// Queue `line`; it is written by a task that runs once the tasks ready now have run (at
/// once outside a runtime).
fn send(line: &str) {
    let Ok(mut l) = link().lock() else { return };
    let Some(link) = l.as_mut() else { return };
    link.pending.extend_from_slice(line.as_bytes());
    if link.flush_scheduled {
        return;
    }
    match tokio::runtime::Handle::try_current() {
        Ok(rt) => {
            link.flush_scheduled = true;
            rt.spawn(async { flush() });
        }
        Err(_) => {
            if !link.flush() {
                *l = None; // the watchdog is gone; nothing more to tell it
            }
        }
    }
}

/// Write the queued lines now.
fn flush() {
    if let Ok(mut l) = link().lock()
        && let Some(link) = l.as_mut()
        && !link.flush()
    {
        *l = None;
    }
}

/// A step's process group started.
pub fn track(pgid: i32, start: u64) {
    send(&format!("+{pgid} {start}\n"));
}

/// A step's process group is gone.
pub fn untrack(pgid: i32) {
    send(&format!("-{pgid}\n"));
}

/// Stop the watchdog normally (nothing left to kill).
pub fn stop() {
    if let Ok(mut l) = link().lock()
        && let Some(mut link) = l.take()
    {
        link.pending.extend_from_slice(b"exit\n");
        let _ = link.flush();
        drop(link.stdin);
        let _ = link._child.wait();
    }
}

/// Body of `runner __watchdog`: read the group registry from stdin until it closes; if it
/// closed without `exit`, the runner died: kill what is still running.
pub fn watchdog_main() -> i32 {
    // SAFETY: ignoring SIGINT/SIGTERM/SIGHUP has no memory effects.
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_IGN);
        libc::signal(libc::SIGTERM, libc::SIG_IGN);
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
    }
    let mut live: Vec<LiveGroup> = Vec::new();
    let mut marker = None;
    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        if line == "exit" {
            return 0;
        }
        if let Some(t) = line.strip_prefix("token ") {
            marker = Some(format!("{TOKEN_VAR}={t}"));
        } else if let Some(rest) = line.strip_prefix('+') {
            let mut it = rest.split_whitespace();
            if let (Some(Ok(pgid)), Some(Ok(pid_start))) =
                (it.next().map(str::parse), it.next().map(str::parse))
            {
                live.push(LiveGroup {
                    phase: Phase::Map,
                    idx: 0,
                    pgid,
                    pid_start,
                });
            }
        } else if let Some(Ok(pgid)) = line.strip_prefix('-').map(str::parse::<i32>) {
            live.retain(|g| g.pgid != pgid);
        }
    }
    kill_leftovers(&live);
    if let Some(marker) = marker {
        kill_marked(marker.as_bytes());
    }
    0
}
