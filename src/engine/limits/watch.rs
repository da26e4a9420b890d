//! The limits the kernel cannot enforce for a whole step: one thread samples the running
//! steps every [`EVERY`] and kills a step (SIGKILL to its process group, or `cgroup.kill`)
//! whose processes together went over a limit. Without cgroups it sums the step's process
//! group from `/proc` (processes, resident memory, CPU time); with cgroups it reads the
//! step's `cpu.stat` (CPU time has no cgroup limit). Only steps with such limits are
//! watched; the thread sleeps while there are none.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use crate::engine::limits::LimitHit;
use crate::engine::limits::cgroup::keyed;
use crate::engine::process::reaper;

/// How often running steps are sampled.
pub const EVERY: Duration = Duration::from_millis(100);

/// What is summed for a step.
#[derive(Debug, Clone)]
pub enum Target {
    /// The step's process group, from `/proc`.
    Group(i32),
    /// The step's cgroup directory (CPU time from `cpu.stat`).
    Cgroup(PathBuf),
}

/// The sums a watched step may not go over.
#[derive(Debug, Clone, Copy, Default)]
pub struct Caps {
    pub memory_bytes: Option<u64>,
    pub cpu: Option<Duration>,
    pub processes: Option<u64>,
}

impl Caps {
    pub fn is_empty(&self) -> bool {
        self.memory_bytes.is_none() && self.cpu.is_none() && self.processes.is_none()
    }
}

/// What one sample found for a step.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sample {
    pub processes: u64,
    /// Resident memory not backed by files (heap, stacks), summed.
    pub rss_bytes: u64,
    pub cpu: Duration,
}

/// The first cap `s` is over, if any (processes first: many processes also add up to
/// much memory).
pub fn over(caps: &Caps, s: &Sample) -> Option<LimitHit> {
    if let Some(p) = caps.processes
        && s.processes > p
    {
        return Some(LimitHit::Processes { limit: p });
    }
    if let Some(m) = caps.memory_bytes
        && s.rss_bytes > m
    {
        return Some(LimitHit::Memory { limit_bytes: m });
    }
    if let Some(c) = caps.cpu
        && s.cpu >= c
    {
        return Some(LimitHit::Cpu {
            limit_ms: c.as_millis() as u64,
        });
    }
    None
}

struct Entry {
    target: Target,
    caps: Caps,
    hit: Arc<Mutex<Option<LimitHit>>>,
}

#[derive(Default)]
struct Registry {
    next: u64,
    entries: HashMap<u64, Entry>,
}

struct Shared {
    reg: Mutex<Registry>,
    wake: Condvar,
}

fn shared() -> &'static Shared {
    static SHARED: OnceLock<Shared> = OnceLock::new();
    SHARED.get_or_init(|| {
        std::thread::Builder::new()
            .name("runner-limits".into())
            .spawn(watch_loop)
            .ok();
        Shared {
            reg: Mutex::new(Registry::default()),
            wake: Condvar::new(),
        }
    })
}

fn lock(s: &Shared) -> MutexGuard<'_, Registry> {
    s.reg.lock().unwrap_or_else(|e| e.into_inner())
}

/// A watched step; dropping it stops the watch.
#[derive(Debug)]
pub struct Watch {
    id: u64,
    hit: Arc<Mutex<Option<LimitHit>>>,
}

impl Watch {
    /// The limit the watch killed the step for, if it did.
    pub fn hit(&self) -> Option<LimitHit> {
        *self.hit.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        lock(shared()).entries.remove(&self.id);
    }
}

/// Watch `target` against `caps` until the returned handle is dropped.
pub fn watch(target: Target, caps: Caps) -> Watch {
    let s = shared();
    let hit = Arc::new(Mutex::new(None));
    let mut reg = lock(s);
    reg.next += 1;
    let id = reg.next;
    reg.entries.insert(
        id,
        Entry {
            target,
            caps,
            hit: hit.clone(),
        },
    );
    drop(reg);
    s.wake.notify_all();
    Watch { id, hit }
}

fn watch_loop() {
    let s = shared();
    loop {
        {
            let mut reg = lock(s);
            while reg.entries.is_empty() {
                reg = s.wake.wait(reg).unwrap_or_else(|e| e.into_inner());
            }
        }
        std::thread::sleep(EVERY);
        sample_all(s);
    }
}

fn sample_all(s: &Shared) {
    let groups: Vec<i32> = lock(s)
        .entries
        .values()
        .filter_map(|e| match e.target {
            Target::Group(g) => Some(g),
            Target::Cgroup(_) => None,
        })
        .collect();
    let by_group = if groups.is_empty() {
        HashMap::new()
    } else {
        sum_groups(&groups)
    };
    let reg = lock(s);
    for e in reg.entries.values() {
        let sample = match &e.target {
            Target::Group(g) => by_group.get(g).copied().unwrap_or_default(),
            Target::Cgroup(dir) => Sample {
                cpu: std::fs::read_to_string(dir.join("cpu.stat"))
                    .ok()
                    .and_then(|t| keyed(&t, "usage_usec"))
                    .map(Duration::from_micros)
                    .unwrap_or_default(),
                ..Sample::default()
            },
        };
        let Some(hit) = over(&e.caps, &sample) else {
            continue;
        };
        let mut slot = e.hit.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_some() {
            continue;
        }
        *slot = Some(hit);
        match &e.target {
            Target::Group(g) => {
                let _ = killpg(Pid::from_raw(*g), Signal::SIGKILL);
            }
            Target::Cgroup(dir) => {
                let _ = std::fs::write(dir.join("cgroup.kill"), "1");
            }
        }
    }
}

/// One pass over `/proc`: the live processes, resident memory and CPU time of each group.
fn sum_groups(groups: &[i32]) -> HashMap<i32, Sample> {
    let tick = clock_ticks();
    let page = page_size();
    let mut out: HashMap<i32, Sample> = HashMap::new();
    for st in reaper::all_stats() {
        if st.state == 'Z' || st.state == 'X' || !groups.contains(&st.pgrp) {
            continue;
        }
        let e = out.entry(st.pgrp).or_default();
        e.processes += 1;
        e.rss_bytes += anon_pages(st.pid).unwrap_or(st.rss_pages) * page;
        e.cpu += Duration::from_millis(st.cpu_ticks * 1000 / tick);
    }
    out
}

/// Resident pages not backed by files (`resident - shared` of `/proc/PID/statm`): summing
/// plain RSS would count the shared libraries of every process again.
fn anon_pages(pid: i32) -> Option<u64> {
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    let mut f = statm.split_whitespace().skip(1);
    let resident: u64 = f.next()?.parse().ok()?;
    let shared: u64 = f.next()?.parse().ok()?;
    Some(resident.saturating_sub(shared))
}

fn clock_ticks() -> u64 {
    rustix::param::clock_ticks_per_second().max(1)
}

fn page_size() -> u64 {
    rustix::param::page_size() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_cap_gone_over_wins() {
        let caps = Caps {
            memory_bytes: Some(100),
            cpu: Some(Duration::from_secs(1)),
            processes: Some(3),
        };
        let ok = Sample {
            processes: 3,
            rss_bytes: 100,
            cpu: Duration::from_millis(999),
        };
        assert_eq!(over(&caps, &ok), None);
        let many = Sample { processes: 4, ..ok };
        assert_eq!(over(&caps, &many), Some(LimitHit::Processes { limit: 3 }));
        let big = Sample {
            rss_bytes: 101,
            ..ok
        };
        assert_eq!(
            over(&caps, &big),
            Some(LimitHit::Memory { limit_bytes: 100 })
        );
        let busy = Sample {
            cpu: Duration::from_secs(1),
            ..ok
        };
        assert_eq!(over(&caps, &busy), Some(LimitHit::Cpu { limit_ms: 1000 }));
        assert_eq!(over(&Caps::default(), &big), None);
    }

    #[test]
    fn sums_a_process_group() {
        let me = nix::unistd::getpgrp().as_raw();
        let sums = sum_groups(&[me]);
        let s = sums.get(&me).copied().unwrap_or_default();
        assert!(s.processes >= 1);
        assert!(s.rss_bytes > 0);
    }
}
