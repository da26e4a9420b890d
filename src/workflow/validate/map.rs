//! The map phase: where the items come from and how they are selected, the per-item
//! steps, time limits (Prodigy's `timeout_config` included) and retries.

use std::path::Path;
use std::time::Duration;

use serde_saphyr::Spanned;

use super::ctx::{Ctx, duration, duration_setting};
use super::steps::phase_steps;
use crate::items::{Input, Selection};
use crate::workflow::error::WorkflowError;
use crate::workflow::model::{
    Backoff, MapSpec, MaxParallel, Resources, RetryOn, RetryPolicy, SettingKey, Step, StepKind,
};
use crate::workflow::raw::{RawInput, RawMap, RawRetry, RawTimeoutConfig};
use crate::workflow::template::scope::{Part, Scope};

/// The map phase; `None` when it has errors (all of them recorded).
pub(super) fn map_spec(
    cx: &Ctx,
    m: &Spanned<RawMap>,
    dir: &Path,
    setup_captures: &[String],
) -> Option<MapSpec> {
    let r = &m.value;
    let loc = r.input.referenced;
    let input = match &r.input.value {
        // A single word is a path, which may name environment variables; a command is the
        // shell's to expand.
        RawInput::Bare(s) if !s.trim().contains(char::is_whitespace) => {
            cx.keep(cx.setting(SettingKey::BareInput, "map.input", s, loc));
            Input::from_bare(s, dir)
        }
        RawInput::Bare(s) => Input::from_bare(s, dir),
        RawInput::File(f) => {
            cx.keep(cx.setting(SettingKey::FileInput, "map.input.file", f, loc));
            Input::File(dir.join(f))
        }
        RawInput::Command(c) => Input::Command(c.clone()),
    };
    let format = r
        .input_format
        .as_ref()
        .and_then(|f| cx.keep(f.value.parse().map_err(|e: String| cx.err(f.referenced, e))));
    let selection = Selection {
        input,
        format,
        json_path: r.json_path.as_ref().map(|s| s.value.clone()),
        filter: r.filter.as_ref().map(|s| s.value.clone()),
        sort_by: r.sort_by.as_ref().map(|s| s.value.clone()),
        distinct: r.distinct.as_ref().map(|s| s.value.clone()),
        offset: cx
            .keep(cx.count_setting(SettingKey::Offset, "map.offset", r.offset.as_ref()))
            .flatten()
            .unwrap_or(0),
        max_items: cx
            .keep(cx.count_setting(SettingKey::MaxItems, "map.max_items", r.max_items.as_ref()))
            .flatten(),
    };
    check_selection(cx, r, &selection);
    let item_scope = Scope::new(Part::ItemId);
    let id =
        r.id.as_ref()
            .and_then(|s| cx.keep(cx.template(s, &item_scope)));
    let max_parallel = match &r.max_parallel {
        None => MaxParallel::Cpus,
        Some(s) => {
            match cx.keep(cx.count_setting(SettingKey::MaxParallel, "map.max_parallel", Some(s))) {
                Some(Some(0)) => {
                    cx.report(cx.err(s.referenced, "max_parallel must be at least 1"));
                    MaxParallel::Cpus
                }
                Some(Some(n)) => MaxParallel::Fixed(n),
                _ => MaxParallel::Cpus,
            }
        }
    };
    let tc = r.timeout_config.as_ref().map(|t| &t.value);
    let agent_secs = r
        .agent_timeout_secs
        .as_ref()
        .or(tc.and_then(|t| t.agent_timeout_secs.as_ref()));
    let timeout = match (&r.timeout, agent_secs, &r.timeout_per_agent) {
        (Some(t), _, _) => cx
            .keep(duration_setting(
                cx,
                SettingKey::MapTimeout,
                "map.timeout",
                t,
            ))
            .flatten(),
        (None, Some(s), _) => cx
            .keep(cx.count_setting(
                SettingKey::AgentTimeoutSecs,
                "map.agent_timeout_secs",
                Some(s),
            ))
            .flatten()
            .map(|n| Duration::from_secs(n as u64)),
        (None, None, Some(t)) => cx
            .keep(duration_setting(
                cx,
                SettingKey::MapTimeout,
                "map.timeout_per_agent",
                t,
            ))
            .flatten(),
        _ => None,
    };
    let kill_grace = match (
        &r.kill_grace,
        tc.and_then(|t| t.cleanup_grace_period_secs.as_ref()),
    ) {
        (Some(g), _) => cx.keep(duration(cx, g)).unwrap_or(Duration::from_secs(5)),
        (None, Some(s)) => Duration::from_secs(s.value),
        (None, None) => Duration::from_secs(5),
    };
    let resources = match &r.resources {
        Some(rr) => cx
            .keep(super::resources::resources(cx, &rr.value))
            .unwrap_or_default(),
        None => Resources::default(),
    };
    let stuck_after = r
        .stuck_after
        .as_ref()
        .and_then(|d| cx.keep(duration(cx, d)));
    if let (Some(d), Some(s)) = (stuck_after, &r.stuck_after)
        && d.is_zero()
    {
        cx.report(cx.err(s.referenced, "map.stuck_after must be above zero"));
    }
    let mut retry = match &r.retry {
        Some(rr) => cx.keep(retry_policy(cx, rr)).unwrap_or_default(),
        None => RetryPolicy::default(),
    };
    if r.retry.is_none()
        && let Some(extra) = &r.retry_on_failure
    {
        retry.max_attempts = extra.value.saturating_add(1);
    }
    let steps_raw = match (&r.agent_template, &r.steps) {
        (Some(_), Some(s)) => {
            cx.report(cx.err(
                s.referenced,
                "give either `agent_template:` or `steps:`, not both",
            ));
            return None;
        }
        (Some(s), None) | (None, Some(s)) => s,
        (None, None) => {
            cx.report(cx.err(
                m.referenced,
                "map needs `agent_template:` (or `steps:`): the steps to run for each item",
            ));
            return None;
        }
    };
    let mut scope = Scope::new(Part::Map).with_captures(setup_captures);
    let mut steps = phase_steps(cx, steps_raw, &mut scope);
    if steps_raw.value.steps.is_empty() {
        cx.report(cx.err(steps_raw.referenced, "map.agent_template has no steps"));
    }
    let timeout = match tc {
        Some(t) => timeout_config(cx, t, timeout, &mut steps),
        None => timeout,
    };
    let bare_input = match &r.input.value {
        RawInput::Bare(s) => Some(s.clone()),
        _ => None,
    };
    Some(MapSpec {
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

/// Compile each selection expression on its own, so that each error is reported at its
/// key.
fn check_selection(cx: &Ctx, r: &RawMap, sel: &Selection) {
    let only = |f: &dyn Fn(&mut Selection)| {
        let mut one = Selection {
            json_path: None,
            filter: None,
            sort_by: None,
            distinct: None,
            ..sel.clone()
        };
        f(&mut one);
        one
    };
    let keys: [(Option<&Spanned<String>>, Selection); 4] = [
        (
            r.json_path.as_ref(),
            only(&|s| s.json_path = sel.json_path.clone()),
        ),
        (r.filter.as_ref(), only(&|s| s.filter = sel.filter.clone())),
        (
            r.sort_by.as_ref(),
            only(&|s| s.sort_by = sel.sort_by.clone()),
        ),
        (
            r.distinct.as_ref(),
            only(&|s| s.distinct = sel.distinct.clone()),
        ),
    ];
    for (key, one) in keys {
        if let (Some(k), Err(e)) = (key, crate::items::compile(&one)) {
            cx.report(cx.err(k.referenced, e.to_string()));
        }
    }
}

/// Prodigy's `map.timeout_config` on top of the map's time limit `timeout` (given by
/// `timeout`/`agent_timeout_secs` or by `timeout_config.agent_timeout_secs`): with
/// `timeout_policy: per_command` it limits each step instead of the item;
/// `command_timeouts` limit steps (`shell`/`claude`: every step of that kind, `shell_N`/`claude_N`:
/// the N-th).
fn timeout_config(
    cx: &Ctx,
    t: &RawTimeoutConfig,
    timeout: Option<Duration>,
    steps: &mut [Step],
) -> Option<Duration> {
    let per_command = match t.timeout_policy.as_ref() {
        None => false,
        Some(p) => match p.value.as_str() {
            "per_agent" | "hybrid" => false,
            "per_command" => true,
            other => {
                cx.report(cx.err(
                    p.referenced,
                    format!(
                        "unknown timeout_policy {other:?}: use per_agent, per_command or hybrid"
                    ),
                ));
                false
            }
        },
    };
    if let Some(a) = &t.timeout_action
        && !matches!(a.value.as_str(), "dlq" | "graceful_terminate")
    {
        cx.report(cx.err(
            a.referenced,
            format!(
                "timeout_action {:?} is not supported: a timed-out item is killed (TERM, then KILL) and follows the error policy; use dlq or graceful_terminate, and `on_item_failure` for skip or stop",
                a.value
            ),
        ));
    }
    if let Some(ct) = &t.command_timeouts {
        // As Prodigy: `shell` / `claude` limit every step of that kind; `shell_N` /
        // `claude_N` the N-th step (0-based, among all steps), which must be of that kind.
        // A step's own `timeout` wins over a kind's limit, not over its numbered one.
        let kind_name = |st: &Step| match st.kind {
            StepKind::Shell => "shell",
            StepKind::Claude => "claude",
            _ => "other",
        };
        for (key, secs) in &ct.value {
            let d = Duration::from_secs(*secs);
            let (kind, index) = match key.split_once('_') {
                None => (key.as_str(), None),
                Some((kind, n)) => (kind, n.parse::<usize>().ok().or(Some(usize::MAX))),
            };
            let bad = |why: String| {
                cx.report(cx.err(ct.referenced, format!("command_timeouts: `{key}`: {why}")))
            };
            if !matches!(kind, "shell" | "claude") {
                bad(format!(
                    "unknown key: use shell, claude, shell_N or claude_N (N from 0 to {})",
                    steps.len().saturating_sub(1)
                ));
                continue;
            }
            match index {
                None => steps
                    .iter_mut()
                    .filter(|st| kind_name(st) == kind && st.timeout.is_none())
                    .for_each(|st| st.timeout = Some(d)),
                Some(n) => match steps.get_mut(n) {
                    Some(st) if kind_name(st) == kind => st.timeout = Some(d),
                    Some(_) => bad(format!("step {n} is not a {kind} step")),
                    None => bad(format!(
                        "there is no step {n} (steps are numbered from 0 to {})",
                        steps.len().saturating_sub(1)
                    )),
                },
            }
        }
    }
    if per_command {
        for st in steps.iter_mut().filter(|s| s.timeout.is_none()) {
            st.timeout = timeout;
        }
        return None;
    }
    timeout
}

pub(super) fn retry_policy(cx: &Ctx, r: &Spanned<RawRetry>) -> Result<RetryPolicy, WorkflowError> {
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
            cx.err(on.referenced, format!("unknown retry.on entry {s:?}: use any, timeout, signal, exit, exit:<code>, memory_limit, cpu_limit, process_limit, validation, no_commit or merge_conflict"))
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
        "memory_limit" | "cpu_limit" | "process_limit" | "spawn" | "validation" | "no_commit"
        | "merge_conflict" => crate::state::records::Failure::CLASSES
            .iter()
            .find(|c| **c == s)
            .map(|c| RetryOn::Class(c)),
        _ => s
            .strip_prefix("exit:")
            .and_then(|c| c.trim().parse().ok())
            .map(RetryOn::Exit),
    }
}
