//! cgroup v2: one cgroup per step, below a parent cgroup the runner creates in its own
//! (root, or delegated) cgroup. The kernel enforces `memory.max`, `pids.max` and `cpu.max`
//! on everything the step starts; `cgroup.kill` ends them all; `memory.peak` and `cpu.stat`
//! say what they used, background processes included.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::engine::limits::cgroup_path::own_cgroup_dir;
use crate::state::records::Usage;
use crate::workflow::model::Resources;

/// The cgroup runner creates for the steps of one run (removed when dropped).
#[derive(Debug)]
pub struct CgroupParent {
    dir: PathBuf,
    next: AtomicU64,
}

/// The controllers the limits in `res` need.
pub fn controllers_for(res: &Resources) -> Vec<&'static str> {
    let mut c = Vec::new();
    if res.memory.is_some() {
        c.push("memory");
    }
    if res.processes.is_some() {
        c.push("pids");
    }
    if res.cpu.is_some() {
        c.push("cpu");
    }
    c
}

impl CgroupParent {
    /// Make the parent cgroup in this process's cgroup with `controllers` enabled for its
    /// children; the error says why not (and is what `run -v` shows).
    pub fn create(controllers: &[&str]) -> Result<CgroupParent, String> {
        let own = own_cgroup_dir()?;
        let available = read(&own.join("cgroup.controllers")).unwrap_or_default();
        let missing: Vec<&str> = controllers
            .iter()
            .copied()
            .filter(|c| !available.split_whitespace().any(|a| a == *c))
            .collect();
        if !missing.is_empty() {
            return Err(format!(
                "cgroup v2 at {} lacks the {} controller{} (available: {})",
                own.display(),
                missing.join(", "),
                if missing.len() == 1 { "" } else { "s" },
                if available.trim().is_empty() {
                    "none"
                } else {
                    available.trim()
                }
            ));
        }
        // One per enforcer: a worker running several jobs has several at once.
        static PARENTS: AtomicU64 = AtomicU64::new(0);
        let n = PARENTS.fetch_add(1, Ordering::Relaxed);
        let name = match n {
            0 => format!("runner-{}", std::process::id()),
            n => format!("runner-{}-{n}", std::process::id()),
        };
        let dir = own.join(name);
        match std::fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                return Err(format!(
                    "cannot create a cgroup in {}: {e} (runner needs root or a delegated cgroup)",
                    own.display()
                ));
            }
        }
        let parent = CgroupParent {
            dir,
            next: AtomicU64::new(0),
        };
        if !controllers.is_empty() {
            enable(&own, controllers).map_err(|e| {
                format!(
                    "cannot enable {} for the cgroups below {}: {e} (its processes keep it from \
                     delegating; start runner in a cgroup of its own, e.g. `systemd-run --scope \
                     -p Delegate=yes runner ...`)",
                    controllers.join(", "),
                    own.display()
                )
            })?;
            enable(&parent.dir, controllers).map_err(|e| {
                format!("cannot enable controllers in {}: {e}", parent.dir.display())
            })?;
        }
        Ok(parent)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A fresh cgroup for one step with the limits of `res`.
    pub fn step(&self, res: &Resources) -> io::Result<StepCgroup> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let dir = self.dir.join(format!("s{n}"));
        std::fs::create_dir(&dir)?;
        let cg = StepCgroup {
            dir,
            leader: std::sync::atomic::AtomicI32::new(0),
        };
        let set = |file: &str, value: String| std::fs::write(cg.dir.join(file), value);
        if let Some(bytes) = res.memory {
            set("memory.max", bytes.to_string())?;
            // Without this the step would swap instead of meeting its limit.
            if cg.dir.join("memory.swap.max").exists() {
                set("memory.swap.max", "0".into())?;
            }
            // One OOM kill ends every process of the step, not just the largest.
            if cg.dir.join("memory.oom.group").exists() {
                set("memory.oom.group", "1".into())?;
            }
        }
        if let Some(p) = res.processes {
            set("pids.max", p.to_string())?;
        }
        if let Some(cpus) = res.cpu {
            set("cpu.max", cpu_max(cpus))?;
        }
        Ok(cg)
    }
}

impl Drop for CgroupParent {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// `cpu.max` for a share of `cpus` CPUs: quota and period in microseconds.
pub fn cpu_max(cpus: f64) -> String {
    const PERIOD: u64 = 100_000;
    let quota = ((cpus * PERIOD as f64).round() as u64).max(1000);
    format!("{quota} {PERIOD}")
}

fn enable(dir: &Path, controllers: &[&str]) -> io::Result<()> {
    let line: Vec<String> = controllers.iter().map(|c| format!("+{c}")).collect();
    std::fs::write(dir.join("cgroup.subtree_control"), line.join(" "))
}

fn read(p: &Path) -> io::Result<String> {
    std::fs::read_to_string(p)
}

/// The value of `key` in a flat-keyed cgroup file (`memory.events`, `cpu.stat`, ...).
pub fn keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

/// The cgroup of one step.
#[derive(Debug)]
pub struct StepCgroup {
    dir: PathBuf,
    /// The step's shell once attached: its process group's orphans are reaped on drop.
    leader: std::sync::atomic::AtomicI32,
}

impl StepCgroup {
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Move `pid` (the step's shell, just spawned) in.
    pub fn attach(&self, pid: i32) -> io::Result<()> {
        self.leader.store(pid, std::sync::atomic::Ordering::Relaxed);
        std::fs::write(self.dir.join("cgroup.procs"), pid.to_string())
    }

    /// SIGKILL every process in the cgroup.
    pub fn kill(&self) {
        let _ = std::fs::write(self.dir.join("cgroup.kill"), "1");
    }

    fn file(&self, name: &str) -> Option<String> {
        read(&self.dir.join(name)).ok()
    }

    /// The kernel's OOM killer acted here.
    pub fn oom_killed(&self) -> bool {
        self.file("memory.events")
            .and_then(|t| keyed(&t, "oom_kill"))
            .is_some_and(|n| n > 0)
    }

    /// A fork failed because `pids.max` was reached.
    pub fn pids_max_hit(&self) -> bool {
        self.file("pids.events")
            .and_then(|t| keyed(&t, "max"))
            .is_some_and(|n| n > 0)
    }

    /// CPU time of everything that ran here, in microseconds.
    pub fn cpu_usec(&self) -> Option<u64> {
        keyed(&self.file("cpu.stat")?, "usage_usec")
    }

    /// Peak memory (`memory.peak`, which counts page cache too) and CPU time; each `None`
    /// when the kernel does not offer it here.
    pub fn usage(&self) -> (Option<u64>, Option<u64>) {
        let peak_kb = self
            .file("memory.peak")
            .and_then(|t| t.trim().parse::<u64>().ok())
            .map(|b| b / 1024);
        (peak_kb, self.cpu_usec().map(|us| us / 1000))
    }

    fn populated(&self) -> bool {
        self.file("cgroup.events")
            .and_then(|t| keyed(&t, "populated"))
            .is_some_and(|n| n > 0)
    }
}

impl Drop for StepCgroup {
    /// Kill what is left and remove the cgroup (waiting briefly for it to empty).
    fn drop(&mut self) {
        if self.populated() {
            self.kill();
            let until = Instant::now() + Duration::from_millis(500);
            while self.populated() && Instant::now() < until {
                let pgid = self.leader.load(std::sync::atomic::Ordering::Relaxed);
                crate::engine::process::reaper::reap_orphans(pgid);
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// Fill in what the cgroup measured over what `wait4` said.
pub fn usage_over(cg: &StepCgroup, rusage: Option<Usage>) -> Option<Usage> {
    let (peak, cpu) = cg.usage();
    match (rusage, peak, cpu) {
        (r, None, None) => r,
        (r, p, c) => Some(Usage {
            peak_rss_kb: p.or(r.map(|r| r.peak_rss_kb)).unwrap_or(0),
            cpu_ms: c.or(r.map(|r| r.cpu_ms)).unwrap_or(0),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::limits::cgroup_path::{v2_mount, v2_path};

    #[test]
    fn finds_the_v2_cgroup_and_mount() {
        let cg = "9:name=systemd:/\n4:memory:/x\n0::/user.slice/app.scope\n";
        assert_eq!(v2_path(cg).as_deref(), Some("/user.slice/app.scope"));
        assert_eq!(v2_path("4:memory:/x\n"), None);
        let mi = "31 1 0:27 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n\
                  41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
        assert_eq!(
            v2_mount(mi),
            Some(("/".into(), "/sys/fs/cgroup/unified".into()))
        );
    }

    #[test]
    fn reads_flat_keyed_files() {
        let events = "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\noom_group_kill 0\n";
        assert_eq!(keyed(events, "oom_kill"), Some(1));
        assert_eq!(keyed(events, "max"), Some(3));
        assert_eq!(keyed(events, "nope"), None);
        assert_eq!(
            keyed("usage_usec 1234\nuser_usec 1000\n", "usage_usec"),
            Some(1234)
        );
    }

    #[test]
    fn cpu_share_to_cpu_max() {
        assert_eq!(cpu_max(1.5), "150000 100000");
        assert_eq!(cpu_max(0.25), "25000 100000");
        assert_eq!(cpu_max(0.001), "1000 100000");
    }

    #[test]
    fn controllers_follow_the_limits() {
        let res = Resources {
            memory: Some(1 << 30),
            cpu: Some(1.0),
            ..Resources::default()
        };
        assert_eq!(controllers_for(&res), ["memory", "cpu"]);
        assert!(controllers_for(&Resources::default()).is_empty());
    }

    #[test]
    fn step_cgroups_write_their_limits() {
        // A directory standing in for cgroupfs: the files the limits go to.
        let dir = tempfile::tempdir().unwrap();
        let parent = CgroupParent {
            dir: dir.path().join("runner-1"),
            next: AtomicU64::new(0),
        };
        std::fs::create_dir(parent.dir()).unwrap();
        let res = Resources {
            memory: Some(64 << 20),
            processes: Some(10),
            cpu: Some(0.5),
            ..Resources::default()
        };
        let cg = parent.step(&res).unwrap();
        let read = |f: &str| std::fs::read_to_string(cg.dir().join(f)).unwrap();
        assert_eq!(read("memory.max"), (64u64 << 20).to_string());
        assert_eq!(read("pids.max"), "10");
        assert_eq!(read("cpu.max"), "50000 100000");
        assert!(cg.dir().ends_with("runner-1/s0"));
    }
}
