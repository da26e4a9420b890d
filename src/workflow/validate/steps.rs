//! Steps of every phase: `shell:`, captures, `env`, `working_dir`, and `on_failure` in all
//! its forms (runner's and Prodigy's). Errors are recorded in the context and validation
//! goes on with the next step.

use std::collections::BTreeMap;

use serde_saphyr::{Location, Spanned};

use super::ctx::{Ctx, duration};
use crate::workflow::error::WorkflowError;
use crate::workflow::model::{CaptureFormat, OnFailure, Step, StepKind, WriteFile, WriteFormat};
use crate::workflow::raw::{
    CaptureOutput, HandlerEntry, OnFailure as RawOnFailure, RawStep, RawWriteFile, Scalar, Steps,
};
use crate::workflow::template::Template;
use crate::workflow::template::scope::Scope;

/// Prodigy's `capture: shell.output`: no variable of its own (every step's output is
/// `${shell.output}` of the next).
const PRODIGY_SHELL_CAPTURE: &str = "shell.output";

/// Where a step stands: its keys differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A step of a phase.
    Phase,
    /// A handler in an `on_failure` list or `commands:`.
    Handler,
    /// The map form of `on_failure` itself (a handler with the handling keys).
    OnFailureMap,
}

pub(super) fn env_map(
    cx: &Ctx,
    env: Option<&BTreeMap<String, Spanned<Scalar>>>,
    scope: &Scope,
) -> Vec<(String, Template)> {
    let Some(env) = env else {
        return Vec::new();
    };
    let mut out = Vec::with_capacity(env.len());
    for (k, v) in env {
        if k.is_empty()
            || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            || k.starts_with(|c: char| c.is_ascii_digit())
        {
            cx.report(cx.err(
                v.referenced,
                format!("invalid environment variable name {k:?}: use letters, digits and '_'"),
            ));
            continue;
        }
        if let Some(t) = cx.keep(cx.parse_template(&v.value.0, v.referenced, scope, true)) {
            out.push((k.clone(), t));
        }
    }
    out
}

/// The steps of a phase (`scope` gains their captures). A step with an error is left out,
/// its error recorded.
pub(super) fn phase_steps(cx: &Ctx, s: &Spanned<Steps>, scope: &mut Scope) -> Vec<Step> {
    let mut steps = Vec::with_capacity(s.value.steps.len());
    for (i, raw) in s.value.steps.iter().enumerate() {
        // Prodigy setup's `capture_outputs: {NAME: index}` names the capture of step `index`.
        let extra = s
            .value
            .capture_outputs
            .iter()
            .find(|(_, idx)| **idx == i)
            .map(|(n, _)| n.clone());
        match step(cx, &raw.value, raw.referenced, scope, extra, Kind::Phase) {
            Some(st) => steps.push(st),
            None => {
                // Later steps may use its capture: no second error for that.
                if let Some(c) = &raw.value.capture {
                    scope.declare_capture(&c.value);
                }
            }
        }
        scope.after_shell_step();
    }
    keep_output_for_shell(&mut steps);
    for (name, idx) in &s.value.capture_outputs {
        if *idx >= s.value.steps.len() {
            cx.report(cx.err(
                s.referenced,
                format!(
                    "capture_outputs: `{name}` names step {idx}, but there are {} steps",
                    s.value.steps.len()
                ),
            ));
        }
    }
    steps
}

/// One step; `None` when it has errors (all of them recorded).
fn step(
    cx: &Ctx,
    r: &RawStep,
    loc: Location,
    scope: &mut Scope,
    extra_capture: Option<String>,
    kind: Kind,
) -> Option<Step> {
    let other_kind = reject_prodigy_step_keys(cx, r);
    misplaced_keys(cx, r, kind);
    let given: Vec<(&str, Location)> = [
        ("shell", r.shell.as_ref().map(|s| s.referenced)),
        ("claude", r.claude.as_ref().map(|s| s.referenced)),
        ("write_file", r.write_file.as_ref().map(|s| s.referenced)),
    ]
    .into_iter()
    .filter_map(|(k, at)| at.map(|at| (k, at)))
    .collect();
    if let [_, (second, at), ..] = given.as_slice() {
        cx.report(cx.err(
            *at,
            format!(
                "a step has one of `shell:`, `claude:` or `write_file:`; this one also has `{second}`: split it into two steps"
            ),
        ));
        return None;
    }
    let (step_kind, text, source) = if let Some(sh) = &r.shell {
        (Some(StepKind::Shell), sh, sh.value.clone())
    } else if let Some(c) = &r.claude {
        (Some(StepKind::Claude), c, format!("claude: {}", c.value))
    } else if let Some(w) = &r.write_file {
        (
            write_file(cx, &w.value, scope).map(StepKind::WriteFile),
            &w.value.content,
            format!("write_file: {}", w.value.path.value),
        )
    } else {
        if other_kind {
            // Already reported by its name.
            return None;
        }
        let what = match kind {
            Kind::Phase => "a step needs `shell:` (the command to run), `claude:` or `write_file:`",
            _ => "an `on_failure` handler needs `shell:` or `claude:` (or `commands:`)",
        };
        cx.report(cx.err(loc, what));
        return None;
    };
    // Only a shell step's text is read by a shell.
    let template = cx.keep(match r.shell {
        Some(_) => cx.template(text, scope),
        None => cx.plain_template(text, scope),
    });
    let timeout = r.timeout.as_ref().and_then(|t| cx.keep(duration(cx, t)));
    let working_dir = r
        .working_dir
        .as_ref()
        .and_then(|w| cx.keep(cx.plain_template(w, scope)));
    let env = env_map(cx, r.env.as_ref(), scope);
    let on_failure = match kind {
        Kind::Phase => on_failure(cx, r, scope),
        _ => {
            if let Some(of) = &r.on_failure {
                cx.report(cx.err(
                    of.referenced,
                    "an `on_failure` handler cannot have an `on_failure` of its own",
                ));
            }
            None
        }
    };
    let validate = match (&r.validate, kind) {
        (Some(v), Kind::Phase) => {
            super::step_validation::validation(cx, v, scope, (&working_dir, env.as_slice()))
        }
        (Some(v), _) => {
            cx.report(cx.err(
                v.referenced,
                "`validate:` belongs to a step of a phase, not to a handler",
            ));
            None
        }
        (None, _) => None,
    };
    let capture = cx.keep(capture_name(cx, r, extra_capture)).flatten();
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
    Some(Step {
        kind: step_kind?,
        shell: template?,
        source,
        line: loc.line() as usize,
        timeout,
        capture,
        capture_format,
        keep_output: false,
        on_failure,
        continue_on_error: r.continue_on_error.as_ref().is_some_and(|c| c.value),
        working_dir,
        env,
        validate,
        commit_required: r.commit_required.as_ref().is_some_and(|c| c.value),
    })
}

/// When a step of a phase uses `${shell.output}` or `${shell.stderr}` (the previous shell
/// step's), every step of the phase keeps its output for it.
fn keep_output_for_shell(steps: &mut [Step]) {
    fn mark(steps: &mut [Step]) {
        for s in steps {
            s.keep_output = true;
            if let Some(o) = &mut s.on_failure {
                mark(&mut o.handlers);
            }
        }
    }
    if steps.iter().any(|s| s.uses(&|v| v.root == "shell")) {
        mark(steps);
    }
}

/// The step's `on_failure` (and the step-level `fail_workflow` / `max_attempts` that go
/// with it), in Prodigy's forms:
///
/// * `true`: the failure is ignored; `false`: the step fails (no handler);
/// * a command string: one handler, and the step is forgiven when it succeeds;
/// * a list of commands: the same with several handlers; a list with steps (runner's form):
///   the handlers run and the step still fails;
/// * a map: one handler step, or `commands:`, with `fail_workflow` (default false) and
///   `max_attempts` / `max_retries` (attempts of the failed step, default 1).
fn on_failure(cx: &Ctx, r: &RawStep, scope: &Scope) -> Option<OnFailure> {
    // Handlers see the step's scope (and the failed step's `${shell.output}`) but cannot
    // declare captures for later steps.
    let mut inner = scope.clone();
    inner.after_shell_step();
    let attempts_of = |s: &RawStep| -> Option<u32> {
        let a = s.max_attempts.as_ref().or(s.max_retries.as_ref())?;
        if a.value == 0 {
            cx.report(cx.err(
                a.referenced,
                "max_attempts must be at least 1 (1 means no retry)",
            ));
        }
        Some(a.value.max(1))
    };
    let step_fail = r.fail_workflow.as_ref().map(|f| f.value);
    let step_attempts = attempts_of(r);
    let Some(of) = &r.on_failure else {
        if let Some(f) = &r.fail_workflow {
            cx.report(cx.err(
                f.referenced,
                "`fail_workflow` goes with `on_failure:` (it says whether the step still fails after its handlers)",
            ));
        }
        // `max_attempts` alone: the step is tried again, then fails.
        return step_attempts.map(|attempts| OnFailure {
            handlers: Vec::new(),
            fail: true,
            attempts,
            handler_failure_fatal: true,
        });
    };
    let mut fatal = false;
    let (handlers, fail, attempts) = match &of.value {
        RawOnFailure::Flag(ignore) => (Vec::new(), !*ignore, None),
        RawOnFailure::Command(c) => (
            command_handler(cx, c, of.referenced, &mut inner)
                .into_iter()
                .collect(),
            false,
            None,
        ),
        RawOnFailure::List(list) => {
            let prodigy = list
                .iter()
                .all(|e| matches!(e.value, HandlerEntry::Command(_)));
            fatal = !prodigy;
            (handler_list(cx, list, &mut inner), !prodigy, None)
        }
        RawOnFailure::One(one) => {
            let handlers = match (&one.commands, &one.shell) {
                (Some(cmds), None) => {
                    misplaced_keys(cx, one, Kind::OnFailureMap);
                    let mut hs = handler_list(cx, &cmds.value, &mut inner);
                    // The map's `timeout` is the handlers'.
                    if let Some(t) = one.timeout.as_ref().and_then(|t| cx.keep(duration(cx, t))) {
                        hs.iter_mut()
                            .filter(|h| h.timeout.is_none())
                            .for_each(|h| h.timeout = Some(t));
                    }
                    hs
                }
                (Some(cmds), Some(_)) => {
                    cx.report(cx.err(
                        cmds.referenced,
                        "give either `shell:` or `commands:` in `on_failure`, not both",
                    ));
                    Vec::new()
                }
                (None, _) => step(cx, one, of.referenced, &mut inner, None, Kind::OnFailureMap)
                    .into_iter()
                    .collect(),
            };
            let fail = one.fail_workflow.as_ref().is_some_and(|f| f.value);
            fatal = one.handler_failure_fatal.as_ref().is_some_and(|f| f.value);
            (handlers, fail, attempts_of(one))
        }
    };
    Some(OnFailure {
        handlers,
        fail: step_fail.unwrap_or(fail),
        attempts: step_attempts.or(attempts).unwrap_or(1),
        handler_failure_fatal: fatal,
    })
}

/// A handler given as a command string (a Claude command starts with `/`, as in Prodigy).
fn command_handler(cx: &Ctx, c: &str, loc: Location, scope: &mut Scope) -> Option<Step> {
    command_step(cx, c, loc, scope, c.trim_start().starts_with('/'))
}

/// A step of a command string: a Claude command, or a shell command.
pub(super) fn command_step(
    cx: &Ctx,
    c: &str,
    loc: Location,
    scope: &Scope,
    claude: bool,
) -> Option<Step> {
    let template = cx.keep(cx.parse_template(c, loc, scope, claude))?;
    Some(Step {
        kind: if claude {
            StepKind::Claude
        } else {
            StepKind::Shell
        },
        shell: template,
        source: if claude {
            format!("claude: {c}")
        } else {
            c.to_owned()
        },
        line: loc.line() as usize,
        timeout: None,
        capture: None,
        capture_format: CaptureFormat::String,
        keep_output: false,
        on_failure: None,
        continue_on_error: false,
        working_dir: None,
        env: Vec::new(),
        validate: None,
        commit_required: false,
    })
}

pub(super) fn handler_list(
    cx: &Ctx,
    list: &[Spanned<HandlerEntry>],
    scope: &mut Scope,
) -> Vec<Step> {
    list.iter()
        .filter_map(|e| match &e.value {
            HandlerEntry::Command(c) => command_handler(cx, c, e.referenced, scope),
            HandlerEntry::Step(s) => step(cx, s, e.referenced, scope, None, Kind::Handler),
        })
        .collect()
}

/// Keys that belong elsewhere: the handling keys outside `on_failure` (and outside a step
/// with one), `continue_on_error` outside a handler.
fn misplaced_keys(cx: &Ctx, r: &RawStep, kind: Kind) {
    let only_on_failure: [(&str, Option<Location>); 4] = [
        (
            "retry_original",
            r.retry_original.as_ref().map(|s| s.referenced),
        ),
        (
            "handler_failure_fatal",
            r.handler_failure_fatal.as_ref().map(|s| s.referenced),
        ),
        ("strategy", r.strategy.as_ref().map(|s| s.referenced)),
        ("commands", r.commands.as_ref().map(|s| s.referenced)),
    ];
    if kind != Kind::OnFailureMap {
        for (key, at) in only_on_failure {
            if let Some(at) = at {
                cx.report(cx.err(
                    at,
                    format!("`{key}` is only allowed in an `on_failure:` map"),
                ));
            }
        }
    }
    if kind == Kind::Handler {
        for (key, at) in [
            (
                "fail_workflow",
                r.fail_workflow.as_ref().map(|s| s.referenced),
            ),
            (
                "max_attempts",
                r.max_attempts.as_ref().map(|s| s.referenced),
            ),
            ("max_retries", r.max_retries.as_ref().map(|s| s.referenced)),
        ] {
            if let Some(at) = at {
                cx.report(cx.err(
                    at,
                    format!("`{key}` belongs to the `on_failure:` map or its step, not to one of its handlers"),
                ));
            }
        }
    }
    if kind == Kind::Phase
        && let Some(c) = &r.continue_on_error
    {
        cx.report(cx.err(
            c.referenced,
            "`continue_on_error` is only allowed on an `on_failure` handler",
        ));
    }
}

/// Report Prodigy-only keys; true when the step is of a kind runner does not run
/// (`goal_seek`, `foreach`...).
fn reject_prodigy_step_keys(cx: &Ctx, r: &RawStep) -> bool {
    let keys: [(&str, &crate::workflow::raw::ProdigyOnly, &str); 6] = [
        (
            "goal_seek",
            &r.goal_seek,
            "runner runs `shell:`, `claude:` and `write_file:` steps only",
        ),
        ("foreach", &r.foreach, "use the map phase to fan out"),
        ("test", &r.test, "use a `shell:` step"),
        (
            "analyze",
            &r.analyze,
            "runner runs `shell:`, `claude:` and `write_file:` steps only",
        ),
        (
            "when",
            &r.when,
            "put the condition in the shell command (`if ...; then ...; fi`)",
        ),
        (
            "on_success",
            &r.on_success,
            "add the command as the next step",
        ),
    ];
    cx.prodigy_only_keys(&keys);
    [&r.goal_seek, &r.foreach, &r.test, &r.analyze]
        .iter()
        .any(|k| k.is_some())
}

/// A `write_file:` step's settings (its content is the step's text); `None` on errors.
fn write_file(cx: &Ctx, w: &RawWriteFile, scope: &Scope) -> Option<WriteFile> {
    let path = cx.keep(cx.plain_template(&w.path, scope));
    if w.path.value.trim().is_empty() {
        cx.report(cx.err(w.path.referenced, "write_file: `path` is empty"));
    }
    let format = match w.format.as_ref().map(|f| (f.value.as_str(), f.referenced)) {
        None | Some(("text", _)) => Some(WriteFormat::Text),
        Some(("json", _)) => Some(WriteFormat::Json),
        Some(("yaml", _)) => Some(WriteFormat::Yaml),
        Some((other, at)) => {
            cx.report(cx.err(
                at,
                format!("unknown write_file format {other:?}: use text, json or yaml"),
            ));
            None
        }
    };
    let mode = match &w.mode {
        None => Some(0o644),
        Some(m) => match u32::from_str_radix(m.value.trim(), 8) {
            Ok(v) if v <= 0o7777 => Some(v),
            _ => {
                cx.report(cx.err(
                    m.referenced,
                    format!(
                        "write_file: mode {:?} is not an octal permission such as \"0644\"",
                        m.value
                    ),
                ));
                None
            }
        },
    };
    Some(WriteFile {
        path: path?,
        format: format?,
        create_dirs: w.create_dirs.as_ref().is_some_and(|c| c.value),
        mode: mode?,
    })
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
        (Some(c), _) if c.value.trim() == PRODIGY_SHELL_CAPTURE => None,
        (Some(c), _) => Some((c.value.clone(), c.referenced)),
        (
            None,
            Some(Spanned {
                value: CaptureOutput::Name(n),
                referenced,
                ..
            }),
        ) => Some((n.clone(), *referenced)),
        // Prodigy's `capture_output: true`: the output is `${shell.output}` of the next
        // steps, as every step's is.
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
