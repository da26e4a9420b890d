//! Per-process limits set on a step's shell right after it is spawned (`prlimit`, nothing
//! in the child before `exec`: the spawn stays a vfork, see `process::vfork`). Every
//! process the shell starts inherits them. What the shell does in the microseconds before they are set is not limited
//! (docs/resources.md, "The spawn race").

use std::io;
use std::time::Duration;

use rustix::process::{Pid, Resource, Rlimit, prlimit, setpriority_process};

/// The address-space limit (`RLIMIT_AS`), in bytes.
pub fn address_space(pid: i32, bytes: u64) -> io::Result<()> {
    set(pid, Resource::As, bytes, bytes)
}

/// The CPU time limit (`RLIMIT_CPU`): SIGXCPU at `left` (whole seconds, rounded up), then
/// SIGKILL a second later for a process that ignores it.
pub fn cpu_time(pid: i32, left: Duration) -> io::Result<()> {
    let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
    let secs = secs.max(1);
    set(pid, Resource::Cpu, secs, secs + 1)
}

/// The scheduling priority (`setpriority`); raising it (a negative value) needs root or
/// CAP_SYS_NICE.
pub fn nice(pid: i32, value: i32) -> io::Result<()> {
    let pid = Pid::from_raw(pid).ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
    setpriority_process(Some(pid), value).map_err(io::Error::from)
}

fn set(pid: i32, resource: Resource, soft: u64, hard: u64) -> io::Result<()> {
    let pid = Pid::from_raw(pid).ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
    prlimit(
        Some(pid),
        resource,
        Rlimit {
            current: Some(soft),
            maximum: Some(hard),
        },
    )
    .map(|_| ())
    .map_err(io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_land_on_the_child() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        address_space(pid, 512 << 20).unwrap();
        cpu_time(pid, Duration::from_millis(1500)).unwrap();
        nice(pid, 5).unwrap();
        let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
        let _ = child.kill();
        let _ = child.wait();
        let line = |name: &str| {
            limits
                .lines()
                .find(|l| l.starts_with(name))
                .unwrap()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert!(line("Max address space").contains("536870912 536870912"));
        assert!(line("Max cpu time").contains("2 3"));
    }
}
