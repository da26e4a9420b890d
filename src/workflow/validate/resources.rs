//! `map.resources`: what one attempt of an item may use.

use std::time::Duration;

use super::ctx::{Ctx, duration};
use crate::workflow::error::WorkflowError;
use crate::workflow::model::Resources;
use crate::workflow::raw::RawResources;

pub(super) fn resources(cx: &Ctx, r: &RawResources) -> Result<Resources, WorkflowError> {
    let memory = match &r.memory {
        Some(m) => {
            let bytes = crate::workflow::size::parse_size(&m.value.0)
                .map_err(|e| cx.err(m.referenced, format!("resources.memory: {e}")))?;
            if bytes < 1 << 20 {
                return Err(cx.err(
                    m.referenced,
                    "resources.memory must be at least 1M: a shell alone needs more",
                ));
            }
            Some(bytes)
        }
        None => None,
    };
    let cpu_time = match &r.cpu_time {
        Some(t) => {
            let d = duration(cx, t)?;
            if d < Duration::from_secs(1) {
                return Err(cx.err(
                    t.referenced,
                    "resources.cpu_time must be at least 1s (CPU time limits count whole seconds)",
                ));
            }
            Some(d)
        }
        None => None,
    };
    if let Some(p) = &r.processes
        && p.value == 0
    {
        return Err(cx.err(p.referenced, "resources.processes must be at least 1"));
    }
    if let Some(c) = &r.cpu
        && !(c.value.is_finite() && c.value >= 0.01 && c.value <= 4096.0)
    {
        return Err(cx.err(
            c.referenced,
            format!(
                "resources.cpu is a share in CPUs, e.g. 0.5 or 1.5 (at least 0.01), not {}",
                c.value
            ),
        ));
    }
    let nice = match &r.nice {
        Some(n) if (-20..=19).contains(&n.value) => Some(n.value as i32),
        Some(n) => {
            return Err(cx.err(
                n.referenced,
                format!(
                    "resources.nice must be from -20 (highest priority) to 19 (lowest), not {}",
                    n.value
                ),
            ));
        }
        None => None,
    };
    Ok(Resources {
        memory,
        cpu_time,
        processes: r.processes.as_ref().map(|p| p.value),
        cpu: r.cpu.as_ref().map(|c| c.value),
        nice,
    })
}
