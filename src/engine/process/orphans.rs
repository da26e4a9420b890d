//! Cleaning up after a crashed run: the process groups it recorded as running are killed
//! before a new run starts, unless their leader's pid now belongs to another process.

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use crate::engine::process::reaper;
use crate::state::job::LiveGroup;

/// Is the recorded group still the one the crashed run started?
fn still_ours(g: &LiveGroup) -> bool {
    if g.pgid <= 1 || killpg(Pid::from_raw(g.pgid), None).is_err() {
        return false; // no such group any more
    }
    match reaper::stat_of(g.pgid) {
        // The leader lives: its start time must match (a reused pid never does).
        Some(s) => s.start == g.pid_start && s.pgrp == g.pgid,
        // The leader is gone but the group exists: the kernel does not hand out a pid
        // that is still in use as a process group id, so the group is the recorded one.
        None => reaper::group_has_live_members(g.pgid),
    }
}

/// Does the recorded group still run a (non-zombie) process of the crashed run? Only looks.
pub fn still_running(g: &LiveGroup) -> bool {
    still_ours(g) && reaper::group_has_live_members(g.pgid)
}

/// KILL every recorded group that is still ours; returns how many were killed.
pub fn kill_leftovers(groups: &[LiveGroup]) -> usize {
    let mut n = 0;
    for g in groups {
        if still_ours(g) && killpg(Pid::from_raw(g.pgid), Signal::SIGKILL).is_ok() {
            n += 1;
        }
    }
    n
}

/// Kill the process group of every process whose environment holds `marker`
/// (`NAME=value`): the steps of a runner that died, found even when their groups were never
/// recorded. Repeats while it finds some, so a process forked meanwhile is caught too.
/// Returns how many groups were killed.
pub fn kill_marked(marker: &[u8]) -> usize {
    let own = nix::unistd::getpgrp().as_raw();
    let mut killed = std::collections::HashSet::new();
    for _ in 0..5 {
        let mut found = false;
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return killed.len();
        };
        for entry in dir.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<i32>().ok())
            else {
                continue;
            };
            let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) else {
                continue;
            };
            if !env.split(|b| *b == 0).any(|v| v == marker) {
                continue;
            }
            if let Some(stat) = reaper::stat_of(pid)
                && stat.pgrp > 1
                && stat.pgrp != own
                && stat.state != 'Z'
                && killpg(Pid::from_raw(stat.pgrp), Signal::SIGKILL).is_ok()
            {
                killed.insert(stat.pgrp);
                found = true;
            }
        }
        if !found {
            break;
        }
    }
    killed.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::records::Phase;

    /// `sleep 30` leading its own process group.
    fn sleeper() -> (std::process::Child, i32) {
        use std::os::unix::process::CommandExt;
        let child = std::process::Command::new("sleep")
            .arg("30")
            .process_group(0)
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        (child, pid)
    }

    #[test]
    fn kills_the_groups_of_marked_processes_only() {
        use std::os::unix::process::CommandExt;
        let marker = format!("RUNNER_WATCHDOG_TOKEN=test{}", fastrand::u64(..));
        let spawn = |env: Option<&str>| {
            let mut c = std::process::Command::new("sleep");
            c.arg("30").process_group(0);
            if let Some(m) = env {
                let (k, v) = m.split_once('=').unwrap();
                c.env(k, v);
            }
            c.spawn().unwrap()
        };
        let mut marked = spawn(Some(&marker));
        let mut other = spawn(None);
        // The child has exec'd once its environ shows the marker.
        let environ = format!("/proc/{}/environ", marked.id());
        while !std::fs::read(&environ)
            .unwrap_or_default()
            .split(|b| *b == 0)
            .any(|v| v == marker.as_bytes())
        {
            std::thread::yield_now();
        }
        assert_eq!(kill_marked(marker.as_bytes()), 1);
        assert!(
            !marked.wait().unwrap().success(),
            "the marked group is killed"
        );
        assert!(
            other.try_wait().unwrap().is_none(),
            "an unmarked one is not"
        );
        other.kill().unwrap();
        other.wait().unwrap();
    }

    #[test]
    fn kills_a_recorded_group_but_not_a_reused_pid() {
        let (mut child, pid) = sleeper();
        let start = reaper::stat_of(pid).unwrap().start;
        let wrong = LiveGroup {
            phase: Phase::Map,
            idx: 0,
            pgid: pid,
            pid_start: start + 1,
        };
        assert_eq!(
            kill_leftovers(&[wrong]),
            0,
            "a different start time means a reused pid"
        );
        let right = LiveGroup {
            phase: Phase::Map,
            idx: 0,
            pgid: pid,
            pid_start: start,
        };
        assert_eq!(kill_leftovers(&[right]), 1);
        let status = child.wait().unwrap();
        assert!(!status.success());
    }

    #[test]
    fn a_zombie_group_is_not_running() {
        let (mut child, pid) = sleeper();
        let g = LiveGroup {
            phase: Phase::Map,
            idx: 0,
            pgid: pid,
            pid_start: reaper::stat_of(pid).unwrap().start,
        };
        assert!(still_running(&g));
        killpg(Pid::from_raw(pid), Signal::SIGKILL).unwrap();
        // Wait for its death but leave it a zombie: still "ours", running nothing.
        use nix::sys::wait::{Id, WaitPidFlag, waitid};
        waitid(
            Id::Pid(Pid::from_raw(pid)),
            WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT,
        )
        .unwrap();
        assert_eq!(reaper::stat_of(pid).map(|s| s.state), Some('Z'));
        assert!(still_ours(&g));
        assert!(!still_running(&g));
        child.wait().unwrap();
        assert!(!still_running(&g));
    }
}
