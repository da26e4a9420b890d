//! `runner health`: is the state directory healthy? Unhealthy when a live job's heartbeat
//! is stale (its process hangs), when items run longer than their workflow's
//! `map.stuck_after`, or when a workflow's recent error rate is too high.

use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::engine::process::{orphans, reaper};
use crate::session::error::SessionError;
use crate::session::open::{read_meta, snapshot_workflow};
use crate::session::status::{Row, all_jobs};
use crate::state::layout::{JobDir, StateDir};
use crate::state::lock::{is_held, read_info};
use crate::state::records::{JobState, Phase};
use crate::state::recover::{heartbeat_age, recover};

/// What `health` checks against.
#[derive(Debug, Clone)]
pub struct HealthRequest {
    /// A live lock whose heartbeat is older than this is stale.
    pub stale_after: Duration,
    /// Jobs updated within this window count for error rates.
    pub window: Duration,
    /// A workflow whose failed / finished items exceed this is unhealthy.
    pub max_error_rate: f64,
    /// Error rates need at least this many finished items to count.
    pub min_items: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct StaleJob {
    pub job_id: String,
    pub pid: u32,
    pub host: String,
    pub heartbeat_at: String,
    pub heartbeat_age_s: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct StuckItem {
    pub job_id: String,
    pub item_id: String,
    pub running_s: f64,
    pub stuck_after_s: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ErrorRate {
    pub workflow: String,
    pub jobs: usize,
    pub finished: usize,
    pub failed: usize,
    pub failed_jobs: usize,
    pub rate: f64,
    pub unhealthy: bool,
}

/// The `health --json` document.
#[derive(Debug, Clone, Serialize)]
pub struct HealthReport {
    pub healthy: bool,
    pub checked_at: String,
    pub jobs: usize,
    pub running: usize,
    pub stale_jobs: Vec<StaleJob>,
    pub stuck_items: Vec<StuckItem>,
    pub error_rates: Vec<ErrorRate>,
    /// One line per problem found.
    pub problems: Vec<String>,
}

pub fn health(state: &StateDir, req: &HealthRequest) -> Result<HealthReport, SessionError> {
    let mut report = HealthReport {
        healthy: true,
        checked_at: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        jobs: 0,
        running: 0,
        stale_jobs: Vec::new(),
        stuck_items: Vec::new(),
        error_rates: Vec::new(),
        problems: Vec::new(),
    };
    let mut rates: std::collections::BTreeMap<String, ErrorRate> = Default::default();
    for row in all_jobs(state)? {
        report.jobs += 1;
        let (job_id, workflow, st, finished, failed, updated) = match &row {
            Row::Job(j) => (
                j.job_id.clone(),
                Some(j.workflow.clone()),
                j.state,
                j.successful + j.failed,
                j.failed,
                j.updated_at,
            ),
            Row::Pipeline(p) => (p.job_id.clone(), None, p.state, 0, 0, p.updated_at),
            Row::Unreadable { job_id, .. } => {
                report
                    .problems
                    .push(format!("job {job_id} cannot be read (see `runner status`)"));
                continue;
            }
        };
        let dir = state.job(&job_id)?;
        if is_held(&dir.lock()) {
            report.running += 1;
            if let Some(info) = read_info(&dir.lock())
                && let Some(age) = heartbeat_age(&info).filter(|a| *a > req.stale_after)
            {
                report.problems.push(format!(
                    "job {job_id} is stale: pid {} on {} last wrote its heartbeat {}s ago",
                    info.pid,
                    info.host,
                    age.as_secs()
                ));
                report.stale_jobs.push(StaleJob {
                    job_id: job_id.clone(),
                    pid: info.pid,
                    host: info.host,
                    heartbeat_at: info.heartbeat_at,
                    heartbeat_age_s: age.as_secs_f64().round(),
                });
            }
            if workflow.is_some() {
                for s in stuck_items(&dir)? {
                    report.problems.push(format!(
                        "job {}: item {} has been running for {:.0}s (map.stuck_after {:.0}s)",
                        s.job_id, s.item_id, s.running_s, s.stuck_after_s
                    ));
                    report.stuck_items.push(s);
                }
            }
        }
        let Some(workflow) = workflow else { continue };
        let recent = updated.is_some_and(|t| t.age() <= req.window);
        if !recent {
            continue;
        }
        let r = rates.entry(workflow.clone()).or_insert(ErrorRate {
            workflow,
            jobs: 0,
            finished: 0,
            failed: 0,
            failed_jobs: 0,
            rate: 0.0,
            unhealthy: false,
        });
        r.jobs += 1;
        r.finished += finished;
        r.failed += failed;
        if st == JobState::Failed {
            r.failed_jobs += 1;
        }
    }
    for (_, mut r) in rates {
        if r.finished > 0 {
            r.rate = (r.failed as f64 / r.finished as f64 * 1000.0).round() / 1000.0;
        }
        r.unhealthy = r.finished >= req.min_items && r.rate > req.max_error_rate;
        if r.unhealthy {
            report.problems.push(format!(
                "workflow {}: {} of {} items failed recently ({:.0}% > {:.0}%)",
                r.workflow,
                r.failed,
                r.finished,
                r.rate * 100.0,
                req.max_error_rate * 100.0
            ));
        }
        report.error_rates.push(r);
    }
    report.healthy = report.problems.is_empty();
    Ok(report)
}

/// Items of a live job running longer than its `map.stuck_after`, from the process groups
/// the journal says are running (their start time is the group leader's).
fn stuck_items(dir: &JobDir) -> Result<Vec<StuckItem>, SessionError> {
    let meta = read_meta(dir)?;
    let Some(after) = snapshot_workflow(dir, &meta)
        .ok()
        .and_then(|w| w.map.stuck_after)
    else {
        return Ok(Vec::new());
    };
    let view = recover(dir, false)?;
    let mut out = Vec::new();
    let mut items = None;
    for g in view.live_groups.iter().filter(|g| g.phase == Phase::Map) {
        let Some(running) = running_for(g.pgid, g.pid_start) else {
            continue;
        };
        if running < after || !orphans::still_running(g) {
            continue;
        }
        let items = match &mut items {
            Some(i) => i,
            None => items.insert(crate::state::items_file::ItemStore::open(
                &dir.items(),
                None,
                None,
            )),
        };
        out.push(StuckItem {
            job_id: meta.job_id.clone(),
            item_id: items
                .as_ref()
                .ok()
                .and_then(|s| s.get(g.idx).ok())
                .map(|i| i.id.clone())
                .unwrap_or_else(|| format!("#{}", g.idx)),
            running_s: running.as_secs_f64().round(),
            stuck_after_s: after.as_secs_f64(),
        });
    }
    Ok(out)
}

/// How long the process `pid` (started `start` clock ticks after boot) has been running.
fn running_for(pid: i32, start: u64) -> Option<Duration> {
    let s = reaper::stat_of(pid)?;
    if s.start != start {
        return None;
    }
    let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .filter(|t| *t > 0)? as f64;
    let uptime: f64 = std::fs::read_to_string("/proc/uptime")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let secs = uptime - start as f64 / ticks;
    (secs >= 0.0).then(|| Duration::from_secs_f64(secs))
}
