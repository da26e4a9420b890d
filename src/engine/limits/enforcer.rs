//! Limits per attempt (`map.resources`): which mechanism a run uses, and applying it to
//! each step right after its shell is spawned. cgroup v2 when runner can create cgroups
//! with the controllers the limits need; rlimits and the watch otherwise (docs/resources.md).

use std::io;
use std::sync::Arc;
use std::time::Duration;

use crate::engine::limits::LimitHit;
use crate::engine::limits::cgroup::{CgroupParent, StepCgroup, controllers_for, usage_over};
use crate::engine::limits::classify::{Ending, Seen, classify};
use crate::engine::limits::rlimit;
use crate::engine::limits::watch::{self, Caps, Target, Watch};
use crate::state::records::Usage;
use crate::workflow::model::Resources;

/// How the limits are enforced.
#[derive(Debug)]
pub enum Mechanism {
    Cgroup(CgroupParent),
    /// No usable cgroup v2, and why.
    Rlimit {
        why: String,
    },
}

/// The limits of a run and how they are enforced.
#[derive(Debug)]
pub struct Enforcer {
    res: Resources,
    mechanism: Mechanism,
}

/// `RUNNER_LIMITS`: `auto` (default), `cgroup` (fail without) or `rlimit` (never cgroups).
pub const MODE_VAR: &str = "RUNNER_LIMITS";

impl Enforcer {
    /// The enforcer for `res` on this machine (`None` without limits). An error when the
    /// limits cannot be enforced here (`cpu` without cgroups): the message says what to do.
    pub fn probe(res: &Resources) -> Result<Option<Arc<Enforcer>>, String> {
        if res.is_empty() {
            return Ok(None);
        }
        let mode = std::env::var(MODE_VAR).unwrap_or_default();
        let cgroup = match mode.as_str() {
            "rlimit" => Err(format!("{MODE_VAR}=rlimit")),
            "" | "auto" | "cgroup" => CgroupParent::create(&controllers_for(res)),
            other => {
                return Err(format!(
                    "{MODE_VAR}={other:?} is not a mechanism: use auto, cgroup or rlimit"
                ));
            }
        };
        let mechanism = match cgroup {
            Ok(parent) => Mechanism::Cgroup(parent),
            Err(why) if mode == "cgroup" => {
                return Err(format!("{MODE_VAR}=cgroup, but {why}"));
            }
            Err(why) if res.cpu.is_some() => {
                return Err(format!(
                    "map.resources.cpu (a CPU share) needs cgroup v2, and {why}; remove `cpu` \
                     (the other limits work without cgroups) or run runner where it can create \
                     cgroups (docs/resources.md)"
                ));
            }
            Err(why) => Mechanism::Rlimit { why },
        };
        Ok(Some(Arc::new(Enforcer {
            res: res.clone(),
            mechanism,
        })))
    }

    pub fn resources(&self) -> &Resources {
        &self.res
    }

    pub fn mechanism(&self) -> &Mechanism {
        &self.mechanism
    }

    /// One line for `run -v`: the mechanism and what it means.
    pub fn describe(&self) -> String {
        match &self.mechanism {
            Mechanism::Cgroup(p) => format!(
                "resource limits: cgroup v2, one cgroup per step below {} (memory.max, \
                 pids.max, cpu.max; usage from memory.peak and cpu.stat)",
                p.dir().display()
            ),
            Mechanism::Rlimit { why } => format!(
                "resource limits: rlimits on each step's processes (no cgroup v2: {why}); \
                 memory is address space per process, CPU time per process, and runner sums \
                 each step's process group every {} ms",
                watch::EVERY.as_millis()
            ),
        }
    }
}

/// The limits of one step: its attempt's, with the CPU time the attempt has left.
#[derive(Debug, Clone)]
pub struct StepLimits {
    pub enforcer: Arc<Enforcer>,
    pub cpu_left: Option<Duration>,
}

impl StepLimits {
    /// What must exist before the step is spawned (its cgroup).
    pub fn prepare(&self) -> io::Result<Prepared> {
        let cgroup = match &self.enforcer.mechanism {
            Mechanism::Cgroup(parent) => Some(parent.step(&self.enforcer.res)?),
            Mechanism::Rlimit { .. } => None,
        };
        Ok(Prepared {
            limits: self.clone(),
            cgroup,
        })
    }
}

/// A step's limits, ready for its shell.
#[derive(Debug)]
pub struct Prepared {
    limits: StepLimits,
    cgroup: Option<StepCgroup>,
}

impl Prepared {
    /// Apply the limits to the just-spawned shell `pid` (the leader of process group
    /// `pid`). An error means the step cannot run limited (kill it).
    pub fn attach(self, pid: i32) -> Result<Applied, String> {
        let res = &self.limits.enforcer.res;
        let cpu_left = self.limits.cpu_left;
        let gone = |e: &io::Error| e.raw_os_error() == Some(libc::ESRCH);
        let mut applied = Applied {
            limits: self.limits.clone(),
            cgroup: self.cgroup,
            watch: None,
        };
        if let Some(cg) = &applied.cgroup {
            cg.attach(pid)
                .map_err(|e| format!("cannot move the step into {}: {e}", cg.dir().display()))?;
        }
        let result = (|| {
            if applied.cgroup.is_none()
                && let Some(bytes) = res.memory
            {
                rlimit::address_space(pid, bytes)?;
            }
            if let Some(left) = cpu_left {
                rlimit::cpu_time(pid, left)?;
            }
            if let Some(n) = res.nice {
                rlimit::nice(pid, n)?;
            }
            Ok::<(), io::Error>(())
        })();
        match result {
            Err(e) if !gone(&e) => {
                return Err(format!(
                    "cannot apply map.resources to the step: {e}{}",
                    if res.nice.is_some_and(|n| n < 0) {
                        " (a negative nice needs root or CAP_SYS_NICE)"
                    } else {
                        ""
                    }
                ));
            }
            _ => {}
        }
        let (target, caps) = match &applied.cgroup {
            Some(cg) => (
                Target::Cgroup(cg.dir().to_path_buf()),
                Caps {
                    cpu: cpu_left,
                    ..Caps::default()
                },
            ),
            None => (
                Target::Group(pid),
                Caps {
                    memory_bytes: res.memory,
                    cpu: cpu_left,
                    processes: res.processes,
                },
            ),
        };
        if !caps.is_empty() {
            applied.watch = Some(watch::watch(target, caps));
        }
        Ok(applied)
    }
}

/// A running step's limits.
#[derive(Debug)]
pub struct Applied {
    limits: StepLimits,
    cgroup: Option<StepCgroup>,
    watch: Option<Watch>,
}

impl Applied {
    /// After the step's processes are gone: which limit ended it, and its usage (the
    /// cgroup's measurements where there is one, else `rusage`). Removes its cgroup.
    pub fn finish(
        self,
        ending: Ending,
        rusage: Option<Usage>,
        stderr_tail: &str,
    ) -> (Option<LimitHit>, Option<Usage>) {
        let watched = self.watch.as_ref().and_then(Watch::hit);
        drop(self.watch);
        let usage = match &self.cgroup {
            Some(cg) => usage_over(cg, rusage),
            None => rusage,
        };
        let seen = Seen {
            watched,
            oom_killed: self.cgroup.as_ref().is_some_and(StepCgroup::oom_killed),
            pids_max_hit: self.cgroup.as_ref().is_some_and(StepCgroup::pids_max_hit),
            cpu: usage.map(|u| Duration::from_millis(u.cpu_ms)),
            stderr_tail,
        };
        let hit = classify(
            &self.limits.enforcer.res,
            self.limits.cpu_left,
            ending,
            &seen,
        );
        drop(self.cgroup);
        (hit, usage)
    }
}
