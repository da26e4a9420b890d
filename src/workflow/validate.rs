//! From the file as written ([`RawWorkflow`]) to settings the engine runs ([`Workflow`]).
//!
//! Every rejection names the key, its line and column, and what to write instead.
//! Validation goes on after an error, so that `runner validate` reports all of them, in
//! file order.

mod ctx;
mod isolation;
mod map;
mod resources;
mod step_validation;
mod steps;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_saphyr::{Location, Spanned};

use crate::workflow::error::WorkflowError;
use crate::workflow::model::{
    ErrorPolicy, ExecutorKind, OnItemFailure, RetryPolicy, SettingKey, SlurmOptions, Workflow,
};
use crate::workflow::raw::{DurationValue, RawErrorPolicy, RawWorkflow};
use crate::workflow::template::scope::{Part, Scope};
use ctx::{Ctx, duration, duration_setting};
use map::map_spec;
use steps::{env_map, phase_steps};

/// Validate a parsed workflow; `start` is the directory runner was started in (or the one a
/// job recorded), where steps run and relative paths resolve unless the workflow's
/// `working_dir:` (relative to the file at `path`) says otherwise.
pub fn validate(raw: RawWorkflow, path: &Path, start: &Path) -> Result<Workflow, WorkflowError> {
    let cx = Ctx::new(path);
    let dir = &cx
        .keep(working_dir(&cx, raw.working_dir.as_ref(), path, start))
        .unwrap_or_else(|| start.to_path_buf());
    let prodigy_only = [
        (
            "secrets",
            &raw.secrets,
            "pass secrets through the environment instead",
        ),
        (
            "profiles",
            &raw.profiles,
            "use `env:` and `--set KEY=VALUE`",
        ),
        (
            "worktree",
            &raw.worktree,
            "use `isolation: worktree` (runner's worktrees live under the job's directory)",
        ),
        (
            "commit_required",
            &raw.commit_required,
            "set `commit_required: true` on the steps that must commit",
        ),
    ];
    cx.prodigy_only_keys(&prodigy_only);

    let name = raw.name.value.trim().to_owned();
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
    {
        cx.report(cx.err(
            raw.name.referenced,
            format!(
                "invalid workflow name {:?}: use letters, digits, '.', '_' and '-' only",
                raw.name.value
            ),
        ));
    }
    if let Some(mode) = &raw.mode
        && !mode.value.eq_ignore_ascii_case("mapreduce")
    {
        cx.report(cx.err(
            mode.referenced,
            format!(
                "`mode: {}` is not supported: runner runs MapReduce workflows (`mode: mapreduce`)",
                mode.value
            ),
        ));
    }

    let env_scope = Scope::new(Part::Env);
    let env = env_map(&cx, raw.env.as_ref(), &env_scope);
    let env_files = env_files(&cx, &raw, dir);

    let mut setup_scope = Scope::new(Part::Setup);
    let setup = match &raw.setup {
        Some(s) => phase_steps(&cx, s, &mut setup_scope),
        None => Vec::new(),
    };
    let setup_captures = setup_scope.captures().to_vec();
    let setup_timeout = match raw.setup.as_ref().and_then(|s| s.value.timeout.clone()) {
        Some(t) => cx
            .keep(duration_setting(
                &cx,
                SettingKey::SetupTimeout,
                "setup.timeout",
                &Spanned::new(
                    t,
                    raw.setup
                        .as_ref()
                        .map(|s| s.referenced)
                        .unwrap_or(Location::UNKNOWN),
                    Location::UNKNOWN,
                ),
            ))
            .flatten(),
        None => None,
    };

    let map = map_spec(&cx, &raw.map, dir, &setup_captures);

    let mut reduce_scope = Scope::new(Part::Reduce).with_captures(&setup_captures);
    let reduce = match &raw.reduce {
        Some(s) => phase_steps(&cx, s, &mut reduce_scope),
        None => Vec::new(),
    };

    let (error_policy, retry_items) = cx.keep(error_policy(&cx, &raw)).unwrap_or_default();
    let (executor, slurm) = cx.keep(executor(&cx, &raw)).unwrap_or_default();
    let isolation = cx
        .keep(isolation::isolation(&cx, &raw, executor))
        .unwrap_or_default();
    let merge = isolation::merge_spec(&cx, &raw, &setup_captures);
    let notify = cx
        .keep(crate::notify::spec::validate_notify(
            path,
            raw.notify.as_deref().unwrap_or_default(),
            &crate::notify::spec::NotifyOn::ALL,
            "",
        ))
        .unwrap_or_default();
    if let Some(e) = cx.failed() {
        return Err(e);
    }
    let Some(mut map) = map else {
        return Err(cx.err(raw.map.referenced, "the map phase is invalid"));
    };
    // Prodigy's `on_item_failure: retry`: items are retried (3 attempts) unless the map
    // says how.
    if retry_items && raw.map.value.retry.is_none() && raw.map.value.retry_on_failure.is_none() {
        map.retry.max_attempts = RetryPolicy::PRODIGY_RETRY_ATTEMPTS;
    }
    Ok(Workflow {
        name,
        dir: dir.to_path_buf(),
        env_files,
        prodigy: raw.mode.is_some(),
        env,
        setup,
        setup_timeout,
        map,
        reduce,
        error_policy,
        executor,
        slurm,
        notify,
        env_settings: cx.settings.take(),
        isolation,
        merge,
    })
}

/// The job's working directory: `working_dir:` relative to the workflow file's directory,
/// else `start`.
fn working_dir(
    cx: &Ctx,
    wd: Option<&Spanned<String>>,
    path: &Path,
    start: &Path,
) -> Result<PathBuf, WorkflowError> {
    let Some(wd) = wd else {
        return Ok(start.to_path_buf());
    };
    let rel = wd.value.trim();
    if rel.is_empty() {
        return Err(cx.err(
            wd.referenced,
            "working_dir is empty: give a directory (relative to the workflow file) or remove the key",
        ));
    }
    let file = start.join(path);
    let file_dir = match file.canonicalize() {
        Ok(f) => f.parent().map(Path::to_path_buf),
        Err(_) => file.parent().map(Path::to_path_buf),
    }
    .unwrap_or_else(|| start.to_path_buf());
    let dir = file_dir.join(rel);
    Ok(dir.canonicalize().unwrap_or(dir))
}

fn executor(cx: &Ctx, raw: &RawWorkflow) -> Result<(ExecutorKind, SlurmOptions), WorkflowError> {
    let kind = match &raw.executor {
        Some(e) => e
            .value
            .parse::<ExecutorKind>()
            .map_err(|m| cx.err(e.referenced, m))?,
        None => ExecutorKind::Local,
    };
    let mut o = SlurmOptions::default();
    if let Some(s) = &raw.slurm {
        let r = &s.value;
        o.partition = r.partition.clone();
        if let Some(t) = &r.time_limit {
            o.time_limit = Some(duration(cx, t)?);
        }
        let cpus = renamed(
            cx,
            "cpus_per_task",
            &r.cpus_per_task,
            "cpus_per_item",
            &r.cpus_per_item,
        )?;
        if let Some(c) = cpus {
            o.cpus_per_task = Some(at_least_one(cx, "cpus_per_task", c)?);
        }
        let mem = renamed(
            cx,
            "mem_per_task",
            &r.mem_per_task,
            "mem_per_item",
            &r.mem_per_item,
        )?;
        o.mem_per_task = mem.map(|m| m.value.0.clone());
        o.sbatch_args = r.sbatch_args.clone().unwrap_or_default();
        if let Some(p) = &r.poll_interval {
            let d = duration(cx, p)?;
            if d.is_zero() {
                return Err(cx.err(p.referenced, "slurm.poll_interval must be above zero"));
            }
            o.poll_interval = d;
        }
        if let Some(n) = &r.array_size {
            o.array_size = at_least_one(cx, "array_size", n)? as usize;
        }
        if let Some(n) = &r.items_per_task {
            o.items_per_task = Some(at_least_one(cx, "items_per_task", n)? as usize);
        }
        if let Some(n) = &r.parallel_per_task {
            o.parallel_per_task = Some(at_least_one(cx, "parallel_per_task", n)? as usize);
        }
        o.runner_path = r.runner_path.as_ref().map(std::path::PathBuf::from);
    }
    Ok((kind, o))
}

/// A `slurm:` key that also has an old name: either spelling, not both.
fn renamed<'a, T>(
    cx: &Ctx,
    name: &str,
    value: &'a Option<Spanned<T>>,
    old: &str,
    old_value: &'a Option<Spanned<T>>,
) -> Result<Option<&'a Spanned<T>>, WorkflowError> {
    match (value, old_value) {
        (Some(_), Some(o)) => Err(cx.err(
            o.referenced,
            format!("slurm.{old} is the old name of slurm.{name}: give only slurm.{name}"),
        )),
        (v, o) => Ok(v.as_ref().or(o.as_ref())),
    }
}

/// A `slurm:` count that must be at least 1.
fn at_least_one(cx: &Ctx, name: &str, n: &Spanned<u32>) -> Result<u32, WorkflowError> {
    if n.value == 0 {
        return Err(cx.err(n.referenced, format!("slurm.{name} must be at least 1")));
    }
    Ok(n.value)
}

/// The error policy, and whether items are retried (Prodigy's `on_item_failure: retry`).
fn error_policy(cx: &Ctx, raw: &RawWorkflow) -> Result<(ErrorPolicy, bool), WorkflowError> {
    let empty = RawErrorPolicy {
        on_item_failure: None,
        max_failures: None,
        failure_threshold: None,
        continue_on_failure: None,
        error_collection: None,
        circuit_breaker: None,
        retry_config: None,
    };
    let ep = raw
        .error_policy
        .as_ref()
        .map(|e| &e.value)
        .unwrap_or(&empty);
    cx.keep(cx.prodigy_only(
        "circuit_breaker",
        &ep.circuit_breaker,
        "use max_failures / failure_threshold",
    ));
    cx.keep(cx.prodigy_only("retry_config", &ep.retry_config, "use `map.retry`"));
    let mut p = ErrorPolicy::default();
    let mut retry_items = false;
    if let Some(s) = ep.on_item_failure.as_ref().or(raw.on_item_failure.as_ref()) {
        p.on_item_failure = match s.value.to_ascii_lowercase().as_str() {
            "dlq" => OnItemFailure::Dlq,
            "retry" => {
                retry_items = true;
                OnItemFailure::Dlq
            }
            "skip" | "continue" => OnItemFailure::Skip,
            "stop" | "fail" => OnItemFailure::Stop,
            other => {
                return Err(cx.err(
                    s.referenced,
                    format!("unknown on_item_failure {other:?}: use dlq, retry, skip or stop"),
                ));
            }
        };
    }
    if let Some(c) = ep
        .continue_on_failure
        .as_ref()
        .or(raw.continue_on_failure.as_ref())
        && !c.value
        && ep.on_item_failure.is_none()
        && raw.on_item_failure.is_none()
    {
        p.on_item_failure = OnItemFailure::Stop;
    }
    p.max_failures = ep
        .max_failures
        .as_ref()
        .or(raw.max_failures.as_ref())
        .map(|s| s.value);
    if let Some(t) = ep
        .failure_threshold
        .as_ref()
        .or(raw.failure_threshold.as_ref())
    {
        if !(t.value > 0.0 && t.value <= 1.0) {
            return Err(cx.err(
                t.referenced,
                "failure_threshold must be a fraction in (0, 1], e.g. 0.2",
            ));
        }
        p.failure_threshold = Some(t.value);
    }
    Ok((p, retry_items))
}

/// Prodigy's `env_files`, relative to the working directory; they are read when the job's
/// environment is built (a missing one is skipped, as Prodigy does).
fn env_files(cx: &Ctx, raw: &RawWorkflow, dir: &Path) -> Vec<PathBuf> {
    let Some(files) = &raw.env_files else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for f in &files.value {
        if f.trim().is_empty() {
            cx.report(cx.err(files.referenced, "env_files: an empty path"));
            continue;
        }
        out.push(dir.join(f.trim()));
    }
    out
}

/// A duration key (humantime text or seconds); errors name the file, line and column.
pub fn parse_duration(path: &Path, d: &Spanned<DurationValue>) -> Result<Duration, WorkflowError> {
    duration(&Ctx::new(path), d)
}
