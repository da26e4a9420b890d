//! Reading and validating a schedules file; errors name the file, line and column (and, for
//! cron expressions, the field).

use std::path::Path;

use jiff::tz::TimeZone;
use serde_saphyr::Spanned;

use crate::schedule::model::{Policy, Schedule, Schedules};
use crate::schedule::raw::{RawPolicy, RawSchedules};
use crate::schedule::trigger::{Trigger, parse_cron, parse_instant, parse_tz};
use crate::workflow::error::WorkflowError;
use crate::workflow::raw::DurationValue;
use crate::workflow::validate::parse_duration;

/// Longest schedule name (it starts the job ids of its runs).
pub const MAX_NAME_LEN: usize = 64;

pub fn load_schedules_file(path: &Path) -> Result<Schedules, WorkflowError> {
    let (text, dir) = crate::workflow::load::read_yaml_file(path, "schedules")?;
    load_schedules_str(&text, path, &dir)
}

fn policy_keys(
    path: &Path,
    base: &mut Policy,
    grace: &Option<Spanned<DurationValue>>,
    coalesce: &Option<Spanned<bool>>,
    max_instances: &Option<Spanned<u32>>,
    jitter: &Option<Spanned<DurationValue>>,
) -> Result<(), WorkflowError> {
    if let Some(g) = grace {
        base.misfire_grace = parse_duration(path, g)?;
    }
    if let Some(c) = coalesce {
        base.coalesce = c.value;
    }
    if let Some(m) = max_instances {
        if m.value == 0 {
            return Err(WorkflowError::at(
                path,
                m.referenced,
                "max_instances must be at least 1",
            ));
        }
        base.max_instances = m.value as usize;
    }
    if let Some(j) = jitter {
        base.jitter = parse_duration(path, j)?;
    }
    Ok(())
}

pub fn load_schedules_str(text: &str, path: &Path, dir: &Path) -> Result<Schedules, WorkflowError> {
    let raw: RawSchedules =
        serde_saphyr::from_str(text).map_err(|e| crate::workflow::load::yaml_error(path, &e))?;
    let err = |loc, msg: String| WorkflowError::at(path, loc, msg);
    let file_tz = match &raw.timezone {
        Some(t) => parse_tz(&t.value).map_err(|m| err(t.referenced, m))?,
        None => TimeZone::UTC,
    };
    let mut defaults = Policy::default();
    if let Some(d) = &raw.defaults {
        let RawPolicy {
            misfire_grace,
            coalesce,
            max_instances,
            jitter,
        } = &d.value;
        policy_keys(
            path,
            &mut defaults,
            misfire_grace,
            coalesce,
            max_instances,
            jitter,
        )?;
    }
    if raw.schedules.value.0.is_empty() {
        return Err(err(
            raw.schedules.referenced,
            "no schedules: add at least one under `schedules:`".into(),
        ));
    }
    let mut schedules = Vec::new();
    for (name, s) in &raw.schedules.value.0 {
        let r = &s.value;
        if !crate::workflow::ordered::is_entry_name(name, MAX_NAME_LEN) {
            return Err(err(
                s.referenced,
                format!(
                    "invalid schedule name {name:?}: use up to {MAX_NAME_LEN} letters, digits, '_' and '-'"
                ),
            ));
        }
        let tz = match &r.timezone {
            Some(t) => parse_tz(&t.value).map_err(|m| err(t.referenced, m))?,
            None => file_tz.clone(),
        };
        let trigger = match (&r.cron, &r.every, &r.at) {
            (Some(c), None, None) => Trigger::Cron {
                expr: c.value.trim().to_owned(),
                cron: Box::new(parse_cron(&c.value).map_err(|m| err(c.referenced, m))?),
                tz,
            },
            (None, Some(e), None) => {
                let every = parse_duration(path, e)?;
                if every.is_zero() {
                    return Err(err(e.referenced, "`every` must be above zero".into()));
                }
                let start = r
                    .start
                    .as_ref()
                    .map(|st| parse_instant(&st.value, &tz).map_err(|m| err(st.referenced, m)))
                    .transpose()?;
                Trigger::Every { every, start }
            }
            (None, None, Some(a)) => {
                Trigger::At(parse_instant(&a.value, &tz).map_err(|m| err(a.referenced, m))?)
            }
            _ => {
                return Err(err(
                    s.referenced,
                    format!("schedule `{name}` needs exactly one of `cron:`, `every:` or `at:`"),
                ));
            }
        };
        if let (Some(st), false) = (&r.start, matches!(trigger, Trigger::Every { .. })) {
            return Err(err(st.referenced, "`start` only goes with `every:`".into()));
        }
        let mut policy = defaults.clone();
        policy_keys(
            path,
            &mut policy,
            &r.misfire_grace,
            &r.coalesce,
            &r.max_instances,
            &r.jitter,
        )?;
        let run = dir.join(r.run.value.trim());
        if !run.is_file() {
            return Err(err(
                r.run.referenced,
                format!(
                    "schedule `{name}` runs {}, which is not a file",
                    r.run.value
                ),
            ));
        }
        if crate::pipeline::load::is_pipeline_file(&run) {
            crate::pipeline::load::load_pipeline_file(&run).map(|_| ())
        } else {
            crate::workflow::load::load_file(&run).map(|_| ())
        }
        .map_err(|e| {
            err(
                r.run.referenced,
                format!("schedule `{name}`: {}: {e}", r.run.value),
            )
        })?;
        let set = crate::workflow::ordered::set_pairs(path, r.set.as_ref())?;
        schedules.push(Schedule {
            name: name.clone(),
            trigger,
            run,
            set,
            policy,
        });
    }
    Ok(Schedules { schedules })
}
