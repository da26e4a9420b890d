//! From the file as written ([`RawWorkflow`]) to settings the engine runs ([`Workflow`]).
//!
//! Every rejection names the key, its line and column, and what to write instead.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde_saphyr::{Location, Spanned};

use crate::items::{Input, Selection};
use crate::workflow::error::WorkflowError;
use crate::workflow::model::{
    Backoff, CaptureFormat, ErrorPolicy, ExecutorKind, MapSpec, MaxParallel, OnItemFailure,
    Resources, RetryOn, RetryPolicy, SlurmOptions, Step, Workflow,
};
use crate::workflow::raw::{
    CaptureOutput, DurationValue, OnFailure, ProdigyOnly, RawErrorPolicy, RawInput, RawMap,
    RawResources, RawRetry, RawStep, RawWorkflow, Scalar, Steps,
};
use crate::workflow::template::Template;
use crate::workflow::template::scope::{Part, Scope};

struct Ctx<'a> {
    path: &'a Path,
}

impl Ctx<'_> {
    fn err(&self, loc: Location, msg: impl Into<String>) -> WorkflowError {
        WorkflowError::at(self.path, loc, msg)
    }

    fn template(&self, s: &Spanned<String>, scope: &Scope) -> Result<Template, WorkflowError> {
        self.template_str(&s.value, s.referenced, scope)
    }

    fn template_str(
        &self,
        text: &str,
        loc: Location,
        scope: &Scope,
    ) -> Result<Template, WorkflowError> {
        Template::parse(text, &|root| scope.knows(root)).map_err(|e| WorkflowError::At {
            path: self.path.to_path_buf(),
            line: loc.line() as usize,
            column: loc.column() as usize,
            message: format!("{e}{}", scope.hint()),
        })
    }

    fn prodigy_only(&self, key: &str, v: &ProdigyOnly, why: &str) -> Result<(), WorkflowError> {
        match v {
            Some(s) => Err(self.err(
                s.referenced,
                format!("`{key}` is a Prodigy-only key and runner does not support it: {why}"),
            )),
            None => Ok(()),
        }
    }
}

/// Validate a parsed workflow; `dir` is where steps run and relative paths resolve.
pub fn validate(raw: RawWorkflow, path: &Path, dir: &Path) -> Result<Workflow, WorkflowError> {
    let cx = Ctx { path };
    cx.prodigy_only(
        "merge",
        &raw.merge,
        "runner does not manage git worktrees; merge results in a reduce step",
    )?;
    cx.prodigy_only(
        "secrets",
        &raw.secrets,
        "pass secrets through the environment instead",
    )?;
    cx.prodigy_only(
        "profiles",
        &raw.profiles,
        "use `env:` and `--set KEY=VALUE`",
    )?;
    cx.prodigy_only(
        "worktree",
        &raw.worktree,
        "runner runs steps in the workflow's directory",
    )?;
    cx.prodigy_only(
        "commit_required",
        &raw.commit_required,
        "runner does not make git commits",
    )?;

    let name = raw.name.value.trim().to_owned();
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
    {
        return Err(cx.err(
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
        return Err(cx.err(
            mode.referenced,
            format!(
                "`mode: {}` is not supported: runner runs MapReduce workflows (`mode: mapreduce`)",
                mode.value
            ),
        ));
    }

    let env_scope = Scope::new(Part::Env);
    let env = env_map(&cx, raw.env.as_ref(), &env_scope)?;

    let mut setup_scope = Scope::new(Part::Setup);
    let setup = match &raw.setup {
        Some(s) => phase_steps(&cx, s, &mut setup_scope)?,
        None => Vec::new(),
    };
    let setup_captures = setup_scope.captures().to_vec();
    let setup_timeout = match raw.setup.as_ref().and_then(|s| s.value.timeout.clone()) {
        Some(t) => Some(duration(
            &cx,
            &Spanned::new(
                t,
                raw.setup
                    .as_ref()
                    .map(|s| s.referenced)
                    .unwrap_or(Location::UNKNOWN),
                Location::UNKNOWN,
            ),
        )?),
        None => None,
    };

    let map = map_spec(&cx, &raw.map, dir, &setup_captures)?;

    let mut reduce_scope = Scope::new(Part::Reduce).with_captures(&setup_captures);
    let reduce = match &raw.reduce {
        Some(s) => phase_steps(&cx, s, &mut reduce_scope)?,
        None => Vec::new(),
    };

    let error_policy = error_policy(&cx, &raw)?;
    let (executor, slurm) = executor(&cx, &raw)?;
    let notify = crate::notify::spec::validate_notify(
        path,
        raw.notify.as_deref().unwrap_or_default(),
        &crate::notify::spec::NotifyOn::ALL,
        "",
    )?;
    Ok(Workflow {
        name,
        dir: dir.to_path_buf(),
        env,
        setup,
        setup_timeout,
        map,
        reduce,
        error_policy,
        executor,
        slurm,
        notify,
    })
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

fn env_map(
    cx: &Ctx,
    env: Option<&BTreeMap<String, Spanned<Scalar>>>,
    scope: &Scope,
) -> Result<Vec<(String, Template)>, WorkflowError> {
    let Some(env) = env else {
        return Ok(Vec::new());
    };
    let mut out = Vec::with_capacity(env.len());
    for (k, v) in env {
        if k.is_empty()
            || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            || k.starts_with(|c: char| c.is_ascii_digit())
        {
            return Err(cx.err(
                v.referenced,
                format!("invalid environment variable name {k:?}: use letters, digits and '_'"),
            ));
        }
        out.push((k.clone(), cx.template_str(&v.value.0, v.referenced, scope)?));
    }
    Ok(out)
}

fn phase_steps(
    cx: &Ctx,
    s: &Spanned<Steps>,
    scope: &mut Scope,
) -> Result<Vec<Step>, WorkflowError> {
    let mut steps = Vec::with_capacity(s.value.steps.len());
    for (i, raw) in s.value.steps.iter().enumerate() {
        // Prodigy setup's `capture_outputs: {NAME: index}` names the capture of step `index`.
        let extra = s
            .value
            .capture_outputs
            .iter()
            .find(|(_, idx)| **idx == i)
            .map(|(n, _)| n.clone());
        steps.push(step(cx, &raw.value, raw.referenced, scope, extra)?);
    }
    for (name, idx) in &s.value.capture_outputs {
        if *idx >= steps.len() {
            return Err(cx.err(
                s.referenced,
                format!(
                    "capture_outputs: `{name}` names step {idx}, but there are {} steps",
                    steps.len()
                ),
            ));
        }
    }
    Ok(steps)
}

/// One step; `in_single_handler` allows Prodigy's `fail_workflow` (single-step `on_failure`).
fn step(
    cx: &Ctx,
    r: &RawStep,
    loc: Location,
    scope: &mut Scope,
    extra_capture: Option<String>,
) -> Result<Step, WorkflowError> {
    step_inner(cx, r, loc, scope, extra_capture, false)
}

fn step_inner(
    cx: &Ctx,
    r: &RawStep,
    loc: Location,
    scope: &mut Scope,
    extra_capture: Option<String>,
    in_single_handler: bool,
) -> Result<Step, WorkflowError> {
    reject_prodigy_step_keys(cx, r)?;
    let Some(shell) = &r.shell else {
        return Err(cx.err(loc, "a step needs `shell:` (the command to run)"));
    };
    if r.fail_workflow.is_some() && !in_single_handler {
        let l = r
            .fail_workflow
            .as_ref()
            .map(|f| f.referenced)
            .unwrap_or(loc);
        return Err(cx.err(
            l,
            "`fail_workflow` is only allowed in a single-step `on_failure:`",
        ));
    }
    let template = cx.template(shell, scope)?;
    let timeout = r.timeout.as_ref().map(|t| duration(cx, t)).transpose()?;
    let working_dir = r
        .working_dir
        .as_ref()
        .map(|w| cx.template(w, scope))
        .transpose()?;
    let env = env_map(cx, r.env.as_ref(), scope)?;
    let on_failure = match &r.on_failure {
        None => (Vec::new(), false),
        Some(of) => on_failure(cx, of, scope)?,
    };
    let capture = capture_name(cx, r, extra_capture)?;
    let prodigy_flag = r.capture.is_none()
        && matches!(
            r.capture_output.as_ref().map(|c| &c.value),
            Some(CaptureOutput::Flag(true))
        );
    let capture_key = prodigy_flag.then(|| "output".to_owned());
    let capture_format = match r.capture_format.as_ref().map(|f| f.value.as_str()) {
        Some("json") => CaptureFormat::Json,
        Some("lines") => CaptureFormat::Lines,
        Some("number") => CaptureFormat::Number,
        Some("boolean") => CaptureFormat::Boolean,
        _ => CaptureFormat::String,
    };
    if let Some(c) = &capture {
        scope.declare_capture(c);
    }
    Ok(Step {
        shell: template,
        source: shell.value.clone(),
        line: loc.line() as usize,
        timeout,
        capture,
        capture_format,
        capture_key,
        on_failure: on_failure.0,
        forgive_on_handled: on_failure.1,
        working_dir,
        env,
    })
}

fn on_failure(
    cx: &Ctx,
    of: &Spanned<OnFailure>,
    scope: &Scope,
) -> Result<(Vec<Step>, bool), WorkflowError> {
    // Handlers see the step's scope but cannot declare captures for later steps.
    let mut inner = scope.clone();
    match &of.value {
        OnFailure::List(list) => {
            let steps = list
                .iter()
                .map(|s| step(cx, &s.value, s.referenced, &mut inner, None))
                .collect::<Result<Vec<_>, _>>()?;
            Ok((steps, false))
        }
        OnFailure::One(one) => {
            let forgive = one
                .fail_workflow
                .as_ref()
                .map(|f| !f.value)
                .unwrap_or(false);
            let handler = step_inner(cx, one, of.referenced, &mut inner, None, true)?;
            Ok((vec![handler], forgive))
        }
    }
}

fn reject_prodigy_step_keys(cx: &Ctx, r: &RawStep) -> Result<(), WorkflowError> {
    cx.prodigy_only("claude", &r.claude, "runner runs `shell:` steps only")?;
    cx.prodigy_only("goal_seek", &r.goal_seek, "runner runs `shell:` steps only")?;
    cx.prodigy_only("foreach", &r.foreach, "use the map phase to fan out")?;
    cx.prodigy_only(
        "validate",
        &r.validate,
        "add a `shell:` step that checks the result",
    )?;
    cx.prodigy_only("test", &r.test, "use a `shell:` step")?;
    cx.prodigy_only("analyze", &r.analyze, "runner runs `shell:` steps only")?;
    cx.prodigy_only(
        "write_file",
        &r.write_file,
        "write the file from a `shell:` step",
    )?;
    cx.prodigy_only(
        "when",
        &r.when,
        "put the condition in the shell command (`if ...; then ...; fi`)",
    )?;
    cx.prodigy_only(
        "on_success",
        &r.on_success,
        "add the command as the next step",
    )?;
    cx.prodigy_only(
        "max_attempts",
        &r.max_attempts,
        "use `map.retry.max_attempts`",
    )?;
    if let Some(c) = &r.commit_required
        && c.value
    {
        return Err(cx.err(
            c.referenced,
            "`commit_required: true` is Prodigy-only: runner does not make git commits",
        ));
    }
    Ok(())
}

fn capture_name(
    cx: &Ctx,
    r: &RawStep,
    extra: Option<String>,
) -> Result<Option<String>, WorkflowError> {
    if let Some(f) = &r.capture_format {
        let ok = ["string", "json", "lines", "number", "boolean"];
        if !ok.contains(&f.value.as_str()) {
            return Err(cx.err(
                f.referenced,
                format!(
                    "unknown capture_format {:?}: use one of {}",
                    f.value,
                    ok.join(", ")
                ),
            ));
        }
    }
    let name = match (&r.capture, &r.capture_output) {
        (Some(c), _) => Some((c.value.clone(), c.referenced)),
        (
            None,
            Some(Spanned {
                value: CaptureOutput::Name(n),
                referenced,
                ..
            }),
        ) => Some((n.clone(), *referenced)),
        // Prodigy's `capture_output: true` is read back as `${shell.output}`.
        (
            None,
            Some(Spanned {
                value: CaptureOutput::Flag(true),
                referenced,
                ..
            }),
        ) => Some(("shell".to_owned(), *referenced)),
        _ => None,
    };
    let name = name.or(extra.map(|e| (e, Location::UNKNOWN)));
    if let Some((n, loc)) = &name {
        let valid = n.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !valid {
            return Err(cx.err(*loc, format!("invalid capture name {n:?}: use letters, digits, '_' and '-', starting with a letter")));
        }
        if Scope::is_reserved(n) {
            return Err(cx.err(
                *loc,
                format!("capture name `{n}` is a built-in variable; choose another name"),
            ));
        }
    }
    Ok(name.map(|(n, _)| n))
}

fn map_spec(
    cx: &Ctx,
    m: &Spanned<RawMap>,
    dir: &Path,
    setup_captures: &[String],
) -> Result<MapSpec, WorkflowError> {
    let r = &m.value;
    let input = match &r.input.value {
        RawInput::Bare(s) => Input::from_bare(s, dir),
        RawInput::File(f) => Input::File(dir.join(f)),
        RawInput::Command(c) => Input::Command(c.clone()),
    };
    let format = r
        .input_format
        .as_ref()
        .map(|f| f.value.parse().map_err(|e: String| cx.err(f.referenced, e)))
        .transpose()?;
    let selection = Selection {
        input,
        format,
        json_path: r.json_path.as_ref().map(|s| s.value.clone()),
        filter: r.filter.as_ref().map(|s| s.value.clone()),
        sort_by: r.sort_by.as_ref().map(|s| s.value.clone()),
        distinct: r.distinct.as_ref().map(|s| s.value.clone()),
        offset: r.offset.as_ref().map(|s| s.value as usize).unwrap_or(0),
        max_items: r.max_items.as_ref().map(|s| s.value as usize),
    };
    if let Err(e) = crate::items::compile(&selection) {
        let loc = selection_key_loc(r, &e.to_string()).unwrap_or(m.referenced);
        return Err(cx.err(loc, e.to_string()));
    }
    let item_scope = Scope::new(Part::ItemId);
    let id =
        r.id.as_ref()
            .map(|s| cx.template(s, &item_scope))
            .transpose()?;
    let max_parallel = match &r.max_parallel {
        None => MaxParallel::Cpus,
        Some(s) => {
            match s.value.0.trim().parse::<usize>() {
                Ok(0) => return Err(cx.err(s.referenced, "max_parallel must be at least 1")),
                Ok(n) => MaxParallel::Fixed(n),
                Err(_) => {
                    let t = cx.template_str(&s.value.0, s.referenced, &Scope::new(Part::Env))?;
                    if t.is_static() {
                        return Err(cx.err(s.referenced, format!("max_parallel must be a positive number or \"${{env.NAME}}\", not {:?}", s.value.0)));
                    }
                    MaxParallel::Template(t)
                }
            }
        }
    };
    let timeout = match (&r.timeout, &r.agent_timeout_secs, &r.timeout_per_agent) {
        (Some(t), _, _) => Some(duration(cx, t)?),
        (None, Some(s), _) => Some(Duration::from_secs(s.value)),
        (None, None, Some(t)) => Some(duration(cx, t)?),
        _ => None,
    };
    let kill_grace = match &r.kill_grace {
        Some(g) => duration(cx, g)?,
        None => Duration::from_secs(5),
    };
    let resources = match &r.resources {
        Some(rr) => resources(cx, &rr.value)?,
        None => Resources::default(),
    };
    let stuck_after = r
        .stuck_after
        .as_ref()
        .map(|d| duration(cx, d))
        .transpose()?;
    if let (Some(d), Some(s)) = (stuck_after, &r.stuck_after)
        && d.is_zero()
    {
        return Err(cx.err(s.referenced, "map.stuck_after must be above zero"));
    }
    let mut retry = match &r.retry {
        Some(rr) => retry_policy(cx, rr)?,
        None => RetryPolicy::default(),
    };
    if r.retry.is_none()
        && let Some(extra) = &r.retry_on_failure
    {
        retry.max_attempts = extra.value.saturating_add(1);
    }
    let steps_raw = match (&r.agent_template, &r.steps) {
        (Some(_), Some(s)) => {
            return Err(cx.err(
                s.referenced,
                "give either `agent_template:` or `steps:`, not both",
            ));
        }
        (Some(s), None) | (None, Some(s)) => s,
        (None, None) => {
            return Err(cx.err(
                m.referenced,
                "map needs `agent_template:` (or `steps:`): the steps to run for each item",
            ));
        }
    };
    let mut scope = Scope::new(Part::Map).with_captures(setup_captures);
    let steps = phase_steps(cx, steps_raw, &mut scope)?;
    if steps.is_empty() {
        return Err(cx.err(steps_raw.referenced, "map.agent_template has no steps"));
    }
    let bare_input = match &r.input.value {
        RawInput::Bare(s) => Some(s.clone()),
        _ => None,
    };
    Ok(MapSpec {
        selection,
        bare_input,
        id,
        max_parallel,
        timeout,
        kill_grace,
        resources,
        stuck_after,
        retry,
        steps,
    })
}

fn resources(cx: &Ctx, r: &RawResources) -> Result<Resources, WorkflowError> {
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

/// Point an expression error at the key it came from (the items module names the key).
fn selection_key_loc(r: &RawMap, message: &str) -> Option<Location> {
    let keys: [(&str, Option<Location>); 4] = [
        ("json_path", r.json_path.as_ref().map(|s| s.referenced)),
        ("filter", r.filter.as_ref().map(|s| s.referenced)),
        ("sort_by", r.sort_by.as_ref().map(|s| s.referenced)),
        ("distinct", r.distinct.as_ref().map(|s| s.referenced)),
    ];
    keys.iter()
        .find(|(k, l)| l.is_some() && message.contains(k))
        .and_then(|(_, l)| *l)
}

fn retry_policy(cx: &Ctx, r: &Spanned<RawRetry>) -> Result<RetryPolicy, WorkflowError> {
    let mut p = RetryPolicy::default();
    let v = &r.value;
    if let Some(m) = &v.max_attempts {
        if m.value == 0 {
            return Err(cx.err(
                m.referenced,
                "retry.max_attempts must be at least 1 (1 means no retry)",
            ));
        }
        p.max_attempts = m.value;
    } else {
        p.max_attempts = 3;
    }
    if let Some(b) = &v.backoff {
        p.backoff = match b.value.to_ascii_lowercase().as_str() {
            "fixed" | "constant" => Backoff::Fixed,
            "linear" => Backoff::Linear,
            "exponential" => Backoff::Exponential,
            other => {
                return Err(cx.err(
                    b.referenced,
                    format!("unknown retry.backoff {other:?}: use fixed, linear or exponential"),
                ));
            }
        };
    }
    if let Some(d) = &v.initial_delay {
        p.initial_delay = duration(cx, d)?;
    }
    if let Some(d) = &v.max_delay {
        p.max_delay = duration(cx, d)?;
    }
    if p.max_delay < p.initial_delay {
        p.max_delay = p.initial_delay;
    }
    if let Some(j) = &v.jitter {
        p.jitter = j.value;
    }
    if let Some(on) = &v.on {
        p.on = on.value.iter().map(|s| retry_on(s).ok_or_else(|| {
            cx.err(on.referenced, format!("unknown retry.on entry {s:?}: use any, timeout, signal, exit, exit:<code>, memory_limit, cpu_limit or process_limit"))
        })).collect::<Result<_, _>>()?;
        if p.on.is_empty() {
            return Err(cx.err(
                on.referenced,
                "retry.on is empty: list at least one failure class (e.g. [any])",
            ));
        }
    }
    Ok(p)
}

fn retry_on(s: &str) -> Option<RetryOn> {
    let s = s.trim();
    match s {
        "any" => Some(RetryOn::Any),
        "timeout" => Some(RetryOn::Timeout),
        "signal" => Some(RetryOn::Signal),
        "exit" => Some(RetryOn::AnyExit),
        "memory_limit" | "cpu_limit" | "process_limit" | "spawn" => {
            crate::state::records::Failure::CLASSES
                .iter()
                .find(|c| **c == s)
                .map(|c| RetryOn::Class(c))
        }
        _ => s
            .strip_prefix("exit:")
            .and_then(|c| c.trim().parse().ok())
            .map(RetryOn::Exit),
    }
}

fn error_policy(cx: &Ctx, raw: &RawWorkflow) -> Result<ErrorPolicy, WorkflowError> {
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
    cx.prodigy_only(
        "circuit_breaker",
        &ep.circuit_breaker,
        "use max_failures / failure_threshold",
    )?;
    cx.prodigy_only("retry_config", &ep.retry_config, "use `map.retry`")?;
    let mut p = ErrorPolicy::default();
    if let Some(s) = ep.on_item_failure.as_ref().or(raw.on_item_failure.as_ref()) {
        p.on_item_failure = match s.value.to_ascii_lowercase().as_str() {
            "dlq" => OnItemFailure::Dlq,
            "skip" | "continue" => OnItemFailure::Skip,
            "stop" | "fail" => OnItemFailure::Stop,
            other => {
                return Err(cx.err(
                    s.referenced,
                    format!("unknown on_item_failure {other:?}: use dlq, skip or stop"),
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
    Ok(p)
}

/// A duration key (humantime text or seconds); errors name the file, line and column.
pub fn parse_duration(path: &Path, d: &Spanned<DurationValue>) -> Result<Duration, WorkflowError> {
    duration(&Ctx { path }, d)
}

fn duration(cx: &Ctx, d: &Spanned<DurationValue>) -> Result<Duration, WorkflowError> {
    match &d.value {
        DurationValue::Seconds(s) if s.is_finite() && *s >= 0.0 => Ok(Duration::from_secs_f64(*s)),
        DurationValue::Seconds(s) => Err(cx.err(
            d.referenced,
            format!("invalid duration {s}: must be a non-negative number of seconds"),
        )),
        DurationValue::Text(t) => {
            let t = t.trim();
            if let Ok(secs) = t.parse::<f64>()
                && secs.is_finite()
                && secs >= 0.0
            {
                return Ok(Duration::from_secs_f64(secs));
            }
            humantime::parse_duration(t).map_err(|e| {
                cx.err(
                    d.referenced,
                    format!("invalid duration {t:?} ({e}): write e.g. \"30s\", \"5m\", \"1h 30m\""),
                )
            })
        }
    }
}
