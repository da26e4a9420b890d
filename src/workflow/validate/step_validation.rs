//! A step's `validate:` block (Prodigy's step validation): its commands, `result_file`,
//! `threshold` and `on_incomplete`, with Prodigy's defaults. Its commands and handlers run in
//! the step's directory with the step's `env`; `${validation.*}` exists in the handlers only.

use serde_saphyr::{Location, Spanned};

use super::ctx::{Ctx, duration};
use super::steps::{command_step, handler_list};
use crate::workflow::model::{CaptureFormat, Step, StepKind};
use crate::workflow::raw::HandlerEntry;
use crate::workflow::raw_validation::{RawOnIncomplete, RawValidation, RawValidationMap};
use crate::workflow::step_validation::{
    DEFAULT_ATTEMPTS, DEFAULT_THRESHOLD, OnIncomplete, Validation,
};
use crate::workflow::template::Template;
use crate::workflow::template::scope::Scope;

/// What validation commands and handlers take from their step.
pub(super) type Inherited<'a> = (&'a Option<Template>, &'a [(String, Template)]);

/// The validation of a step whose `working_dir` and `env` are `from`; `None` on errors (all
/// of them recorded).
pub(super) fn validation(
    cx: &Ctx,
    v: &Spanned<RawValidation>,
    scope: &Scope,
    from: Inherited<'_>,
) -> Option<Box<Validation>> {
    // Like `on_failure` handlers: `${shell.output}` is the step's own output.
    let mut inner = scope.clone();
    inner.after_shell_step();
    // Errors are recorded and the rest is still checked, so that all are reported at once.
    let (commands, map) = match &v.value {
        RawValidation::List(list) => (
            list_of(cx, list, v.referenced, &inner).map(|c| (c, true)),
            None,
        ),
        RawValidation::One(m) => (commands(cx, m, v.referenced, &inner), Some(m)),
    };
    let timeout = map
        .and_then(|m| m.timeout.as_ref())
        .and_then(|t| cx.keep(duration(cx, t)));
    let result_file = map
        .and_then(|m| m.result_file.as_ref())
        .and_then(|f| result_file(cx, f, &inner));
    let threshold = match map.and_then(|m| m.threshold.as_ref()) {
        None => DEFAULT_THRESHOLD,
        Some(t) if (0.0..=100.0).contains(&t.value) => t.value,
        Some(t) => {
            cx.report(cx.err(
                t.referenced,
                format!(
                    "threshold {} is not a percentage: use a number from 0 to 100",
                    t.value
                ),
            ));
            DEFAULT_THRESHOLD
        }
    };
    let handler_scope = inner.clone().with_validation();
    let on_incomplete = map
        .and_then(|m| m.on_incomplete.as_ref())
        .and_then(|o| on_incomplete(cx, o, &handler_scope));
    let (mut commands, list) = commands?;
    for c in &mut commands {
        c.keep_output = true;
        c.timeout = c.timeout.or(timeout);
    }
    let mut out = Validation {
        commands,
        list,
        result_file,
        threshold,
        on_incomplete,
    };
    inherit(&mut out, from);
    Some(Box::new(out))
}

/// The commands of the map form: one of `shell:` (or its old name `command:`), `claude:` or
/// `commands:`; true for `commands:`.
fn commands(
    cx: &Ctx,
    m: &RawValidationMap,
    at: Location,
    scope: &Scope,
) -> Option<(Vec<Step>, bool)> {
    let mut given: Vec<(&str, Location)> = [
        ("shell", m.shell.as_ref().map(|s| s.referenced)),
        ("command", m.command.as_ref().map(|s| s.referenced)),
        ("claude", m.claude.as_ref().map(|s| s.referenced)),
        ("commands", m.commands.as_ref().map(|s| s.referenced)),
    ]
    .into_iter()
    .filter_map(|(k, at)| at.map(|at| (k, at)))
    .collect();
    given.sort_by_key(|(_, at)| (at.line(), at.column()));
    match given.as_slice() {
        [] => {
            cx.report(cx.err(
                at,
                "`validate:` needs `shell:`, `claude:` or `commands:` (the command whose JSON result is checked)",
            ));
            None
        }
        [_, (second, at), ..] => {
            cx.report(cx.err(
                *at,
                format!(
                    "`validate:` has one of `shell:`, `claude:` or `commands:`; this one also has `{second}`"
                ),
            ));
            None
        }
        [_] => {
            if let Some(list) = &m.commands {
                return Some((list_of(cx, &list.value, list.referenced, scope)?, true));
            }
            let (text, claude) = match (&m.shell, &m.command, &m.claude) {
                (Some(s), _, _) | (_, Some(s), _) => (s, false),
                (_, _, Some(c)) => (c, true),
                _ => return None,
            };
            let step = command_step(cx, &text.value, text.referenced, scope, claude)?;
            Some((vec![step], false))
        }
    }
}

/// A non-empty list of commands.
fn list_of(
    cx: &Ctx,
    list: &[Spanned<HandlerEntry>],
    at: Location,
    scope: &Scope,
) -> Option<Vec<Step>> {
    if list.is_empty() {
        cx.report(cx.err(at, "`commands:` lists no commands"));
        return None;
    }
    Some(handler_list(cx, list, &mut scope.clone()))
}

/// The internal step that reads `result_file`.
fn result_file(cx: &Ctx, f: &Spanned<String>, scope: &Scope) -> Option<Step> {
    if f.value.trim().is_empty() {
        cx.report(cx.err(f.referenced, "`result_file` is empty"));
        return None;
    }
    Some(Step {
        kind: StepKind::ReadFile,
        shell: cx.keep(cx.plain_template(f, scope))?,
        source: format!("result_file: {}", f.value),
        commit_required: false,
        line: f.referenced.line() as usize,
        timeout: None,
        capture: None,
        capture_format: CaptureFormat::String,
        keep_output: true,
        on_failure: None,
        continue_on_error: false,
        working_dir: None,
        env: Vec::new(),
        validate: None,
    })
}

/// `on_incomplete:` in both of Prodigy's forms, with its defaults (2 attempts, then the step
/// fails).
fn on_incomplete(cx: &Ctx, o: &Spanned<RawOnIncomplete>, scope: &Scope) -> Option<OnIncomplete> {
    let m = match &o.value {
        RawOnIncomplete::List(list) => {
            return Some(OnIncomplete {
                handlers: list_of(cx, list, o.referenced, scope)?,
                attempts: DEFAULT_ATTEMPTS,
                fail: true,
            });
        }
        RawOnIncomplete::One(m) => m,
    };
    cx.keep(cx.prodigy_only(
        "prompt",
        &m.prompt,
        "runner does not ask while it runs; `fail_workflow: false` goes on with a warning",
    ));
    let attempts = match &m.max_attempts {
        None => DEFAULT_ATTEMPTS,
        Some(a) if a.value == 0 => {
            cx.report(cx.err(
                a.referenced,
                "max_attempts must be at least 1 (the rounds of handlers, each followed by validation)",
            ));
            DEFAULT_ATTEMPTS
        }
        Some(a) => a.value,
    };
    let mut handlers = match (&m.shell, &m.claude, &m.commands) {
        (Some(s), None, None) => vec![command_step(cx, &s.value, s.referenced, scope, false)?],
        (None, Some(c), None) => vec![command_step(cx, &c.value, c.referenced, scope, true)?],
        (None, None, Some(list)) => list_of(cx, &list.value, list.referenced, scope)?,
        (None, None, None) => {
            cx.report(cx.err(
                o.referenced,
                "`on_incomplete` needs `shell:`, `claude:` or `commands:` (what completes the step)",
            ));
            return None;
        }
        _ => {
            cx.report(cx.err(
                o.referenced,
                "`on_incomplete` has one of `shell:`, `claude:` or `commands:`, not several",
            ));
            return None;
        }
    };
    // Prodigy's `commit_required: true`: each handler command must make a git commit.
    if m.commit_required.as_ref().is_some_and(|c| c.value) {
        handlers.iter_mut().for_each(|h| h.commit_required = true);
    }
    Some(OnIncomplete {
        handlers,
        attempts,
        fail: m.fail_workflow.as_ref().is_none_or(|f| f.value),
    })
}

/// Commands and handlers run where their step runs, with its `env` (their own win).
fn inherit(v: &mut Validation, (dir, env): Inherited<'_>) {
    let steps = v.commands.iter_mut().chain(v.result_file.iter_mut()).chain(
        v.on_incomplete
            .iter_mut()
            .flat_map(|o| o.handlers.iter_mut()),
    );
    for s in steps {
        if s.working_dir.is_none() {
            s.working_dir = dir.clone();
        }
        let own = std::mem::take(&mut s.env);
        s.env = env.iter().cloned().chain(own).collect();
    }
}
