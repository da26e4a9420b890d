//! Which limit, if any, ended a step: what the watch or the kernel's cgroup counters saw,
//! or, where only per-process rlimits acted, what the ending looks like.

use std::time::Duration;

use crate::state::records::Failure;
use crate::workflow::model::Resources;

/// A limit a step went over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitHit {
    Memory { limit_bytes: u64 },
    Cpu { limit_ms: u64 },
    Processes { limit: u64 },
}

impl LimitHit {
    /// The failure of step `step` (0-based).
    pub fn failure(self, step: usize) -> Failure {
        match self {
            LimitHit::Memory { limit_bytes } => Failure::MemoryLimit { limit_bytes, step },
            LimitHit::Cpu { limit_ms } => Failure::CpuLimit { limit_ms, step },
            LimitHit::Processes { limit } => Failure::ProcessLimit { limit, step },
        }
    }
}

/// How a limited step ended, as far as classification cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    Success,
    Code(i32),
    Signal(i32),
    /// Timed out, cancelled or never started: not a limit's doing.
    Other,
}

/// What was seen of a step that had limits.
#[derive(Debug, Clone, Copy, Default)]
pub struct Seen<'a> {
    /// The watch killed the step for this limit.
    pub watched: Option<LimitHit>,
    /// The cgroup's OOM killer acted.
    pub oom_killed: bool,
    /// A fork failed at the cgroup's `pids.max`.
    pub pids_max_hit: bool,
    /// CPU time the step used.
    pub cpu: Option<Duration>,
    pub stderr_tail: &'a str,
}

/// The limit that ended a step, given its limits `res` and the CPU time it had left.
pub fn classify(
    res: &Resources,
    cpu_left: Option<Duration>,
    ending: Ending,
    seen: &Seen<'_>,
) -> Option<LimitHit> {
    if let Some(hit) = seen.watched {
        // The runner killed it: the limit is the cause, whatever the exit looks like.
        return Some(hit);
    }
    if matches!(ending, Ending::Success | Ending::Other) {
        return None;
    }
    if let Some(limit_bytes) = res.memory
        && (seen.oom_killed || says_out_of_memory(seen.stderr_tail))
    {
        return Some(LimitHit::Memory { limit_bytes });
    }
    if let Some(limit) = res.processes
        && seen.pids_max_hit
    {
        return Some(LimitHit::Processes { limit });
    }
    if let Some(left) = cpu_left {
        let xcpu = libc::SIGXCPU;
        let by_signal = matches!(ending, Ending::Signal(s) if s == xcpu)
            || matches!(ending, Ending::Code(c) if c == 128 + xcpu);
        if by_signal || seen.cpu.is_some_and(|c| c >= left) {
            return Some(LimitHit::Cpu {
                limit_ms: res
                    .cpu_time
                    .map(|t| t.as_millis() as u64)
                    .unwrap_or(left.as_millis() as u64),
            });
        }
    }
    None
}

/// Does a failed step's stderr say an allocation failed? (Under an address-space rlimit a
/// program is not killed: its allocation fails and it exits, usually saying so.)
pub fn says_out_of_memory(stderr_tail: &str) -> bool {
    const SAYINGS: [&str; 7] = [
        "out of memory",
        "cannot allocate memory",
        "memory exhausted",
        "memoryerror",
        "bad_alloc",
        "memory allocation of",
        "outofmemory",
    ];
    let t = stderr_tail.to_ascii_lowercase();
    SAYINGS.iter().any(|s| t.contains(s)) || t.contains("cannot allocate")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res() -> Resources {
        Resources {
            memory: Some(64 << 20),
            cpu_time: Some(Duration::from_secs(2)),
            processes: Some(10),
            ..Resources::default()
        }
    }

    fn seen(tail: &str) -> Seen<'_> {
        Seen {
            stderr_tail: tail,
            ..Seen::default()
        }
    }

    const LEFT: Option<Duration> = Some(Duration::from_secs(2));

    #[test]
    fn what_the_runner_killed_for_wins() {
        let s = Seen {
            watched: Some(LimitHit::Processes { limit: 10 }),
            ..seen("")
        };
        assert_eq!(
            classify(&res(), LEFT, Ending::Signal(9), &s),
            Some(LimitHit::Processes { limit: 10 })
        );
        assert_eq!(
            classify(&res(), LEFT, Ending::Success, &s),
            Some(LimitHit::Processes { limit: 10 })
        );
    }

    #[test]
    fn successes_and_timeouts_are_not_limits() {
        let s = Seen {
            oom_killed: true,
            ..seen("out of memory")
        };
        assert_eq!(classify(&res(), LEFT, Ending::Success, &s), None);
        assert_eq!(classify(&res(), LEFT, Ending::Other, &s), None);
    }

    #[test]
    fn kernel_counters_and_endings() {
        let oom = Seen {
            oom_killed: true,
            ..seen("")
        };
        assert_eq!(
            classify(&res(), LEFT, Ending::Signal(9), &oom),
            Some(LimitHit::Memory {
                limit_bytes: 64 << 20
            })
        );
        assert_eq!(
            classify(
                &res(),
                LEFT,
                Ending::Code(1),
                &seen("tail: memory exhausted")
            ),
            Some(LimitHit::Memory {
                limit_bytes: 64 << 20
            })
        );
        let pids = Seen {
            pids_max_hit: true,
            ..seen("sh: 1: Cannot fork")
        };
        assert_eq!(
            classify(&res(), LEFT, Ending::Code(2), &pids),
            Some(LimitHit::Processes { limit: 10 })
        );
        let cpu = Some(LimitHit::Cpu { limit_ms: 2000 });
        assert_eq!(
            classify(&res(), LEFT, Ending::Signal(libc::SIGXCPU), &seen("")),
            cpu
        );
        assert_eq!(
            classify(&res(), LEFT, Ending::Code(128 + libc::SIGXCPU), &seen("")),
            cpu
        );
        let used = Seen {
            cpu: Some(Duration::from_millis(2100)),
            ..seen("")
        };
        assert_eq!(classify(&res(), LEFT, Ending::Signal(9), &used), cpu);
        assert_eq!(classify(&res(), LEFT, Ending::Code(3), &seen("boom")), None);
    }

    #[test]
    fn a_memory_message_needs_a_memory_limit() {
        let only_cpu = Resources {
            cpu_time: Some(Duration::from_secs(5)),
            ..Resources::default()
        };
        assert_eq!(
            classify(&only_cpu, LEFT, Ending::Code(1), &seen("MemoryError")),
            None
        );
        assert!(says_out_of_memory("Traceback...\nMemoryError"));
        assert!(says_out_of_memory("fatal error: runtime: out of memory"));
        assert!(says_out_of_memory(
            "bash: xmalloc: cannot allocate 1024 bytes"
        ));
        assert!(!says_out_of_memory("disk full"));
    }
}
