//! No orphans, no zombies. The runner is a child subreaper (Linux), so processes that a step
//! leaves behind are re-parented to it instead of to init; [`reap_orphans`] collects their
//! exit statuses, group by group: only those of a step's process group, so the child of a
//! notification, of git or of a Slurm command, which are waited for by whoever started them,
//! is never taken from them. Direct children (the `sh` of each step) are waited for by
//! their step: their pids are registered here from spawn until they are waited for.
//!
//! [`group_has_live_members`] tells whether a process group still has a running (non-zombie)
//! process, by scanning `/proc`; `kill(-pgid, 0)` cannot tell, since zombies count for it.

use std::collections::HashSet;
use std::sync::{Mutex, MutexGuard, OnceLock};

fn spawned() -> MutexGuard<'static, HashSet<i32>> {
    static SPAWNED: OnceLock<Mutex<HashSet<i32>>> = OnceLock::new();
    SPAWNED
        .get_or_init(|| Mutex::new(HashSet::new()))
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

/// Make this process the reaper of its descendants' orphans (best effort).
pub fn become_subreaper() {
    // SAFETY: prctl with integer arguments has no memory effects.
    unsafe {
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1 as libc::c_ulong, 0, 0, 0);
    }
}

/// Spawn a direct child while holding the registry, so that [`reap_orphans`] never waits for
/// it in tokio's place.
pub fn spawn_registered<T>(
    spawn: impl FnOnce() -> std::io::Result<T>,
    pid_of: impl Fn(&T) -> Option<u32>,
) -> std::io::Result<T> {
    let mut reg = spawned();
    let child = spawn()?;
    if let Some(pid) = pid_of(&child) {
        reg.insert(pid as i32);
    }
    Ok(child)
}

/// The direct child `pid` has been waited for.
pub fn forget(pid: i32) {
    spawned().remove(&pid);
}

/// One `/proc/<pid>/stat` line, the fields we need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    pub pid: i32,
    pub state: char,
    pub ppid: i32,
    pub pgrp: i32,
    /// Start time in clock ticks since boot (field 22).
    pub start: u64,
    /// CPU time in clock ticks: own user + system, and that of waited-for children
    /// (fields 14 to 17).
    pub cpu_ticks: u64,
    /// Resident set size in pages (field 24).
    pub rss_pages: u64,
}

/// Parse a `/proc/<pid>/stat` line (the command name may hold spaces and parentheses).
pub fn parse_stat(line: &str) -> Option<ProcStat> {
    let pid = line.split_whitespace().next()?.parse().ok()?;
    let rest = &line[line.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): field N is f[N - 3].
    let num = |n: usize| f.get(n - 3).and_then(|v| v.parse::<u64>().ok());
    Some(ProcStat {
        pid,
        state: f.first()?.chars().next()?,
        ppid: f.get(1)?.parse().ok()?,
        pgrp: f.get(2)?.parse().ok()?,
        start: num(22)?,
        cpu_ticks: (14..=17).filter_map(num).sum(),
        rss_pages: num(24).unwrap_or(0),
    })
}

pub fn stat_of(pid: i32) -> Option<ProcStat> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// Every process's stat line that can be read now.
pub fn all_stats() -> impl Iterator<Item = ProcStat> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()))
        .filter_map(stat_of)
}

/// Does any process of group `pgid` still run (zombies do not count)?
pub fn group_has_live_members(pgid: i32) -> bool {
    all_stats().any(|s| s.pgrp == pgid && s.state != 'Z' && s.state != 'X')
}

/// Wait for our zombie children of process group `pgid` (a step's) that are not waited for
/// by their step; returns how many were reaped.
pub fn reap_orphans(pgid: i32) -> usize {
    let me = std::process::id() as i32;
    let reg = spawned();
    let mut n = 0;
    let orphan = |s: &ProcStat| s.ppid == me && s.pgrp == pgid && s.state == 'Z';
    for s in all_stats().filter(|s| orphan(s) && !reg.contains(&s.pid)) {
        let mut status = 0;
        // SAFETY: waitpid on a specific pid of our own zombie child.
        if unsafe { libc::waitpid(s.pid, &mut status, libc::WNOHANG) } == s.pid {
            n += 1;
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_odd_names() {
        let line = "4242 (we ird) name)) S 1 4242 4242 0 -1 4194560 100 0 0 0 5 6 7 8 20 0 1 0 987654 1000 10";
        let s = parse_stat(line).unwrap();
        assert_eq!(
            s,
            ProcStat {
                pid: 4242,
                state: 'S',
                ppid: 1,
                pgrp: 4242,
                start: 987654,
                cpu_ticks: 26,
                rss_pages: 10,
            }
        );
    }

    #[test]
    fn only_the_named_groups_orphans_are_reaped() {
        use std::os::unix::process::CommandExt;
        // Someone else's child (a notification's, git's): exited, not yet waited for.
        let mut other = std::process::Command::new("sh")
            .args(["-c", "exit 7"])
            .process_group(0)
            .spawn()
            .unwrap();
        let pid = other.id() as i32;
        // Wait until it exited, leaving it a zombie.
        use nix::sys::wait::{Id, WaitPidFlag, waitid};
        waitid(
            Id::Pid(nix::unistd::Pid::from_raw(pid)),
            WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT,
        )
        .unwrap();
        // A step's group is cleaned up: that child is not taken.
        assert_eq!(reap_orphans(pid + 1_000_000), 0);
        assert_eq!(other.wait().unwrap().code(), Some(7));
    }

    #[test]
    fn own_stat_is_readable() {
        let me = std::process::id() as i32;
        let s = stat_of(me).unwrap();
        assert_eq!(s.pid, me);
        assert!(s.start > 0);
    }
}
