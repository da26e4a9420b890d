//! Validated `notify:` entries.

use std::path::Path;
use std::time::Duration;

use serde_saphyr::{Location, Spanned};

use crate::notify::raw::RawNotify;
use crate::workflow::error::WorkflowError;
use crate::workflow::template::Template;
use crate::workflow::validate::parse_duration;

/// What a notification is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotifyOn {
    /// The job (or pipeline) completed.
    Success,
    /// The job (or pipeline) failed.
    Failure,
    /// An item failed for good and went to the DLQ.
    Dlq,
    /// An item attempt timed out.
    Timeout,
    /// An item runs longer than `map.stuck_after`.
    Stale,
}

impl NotifyOn {
    pub const ALL: [NotifyOn; 5] = [
        NotifyOn::Success,
        NotifyOn::Failure,
        NotifyOn::Dlq,
        NotifyOn::Timeout,
        NotifyOn::Stale,
    ];

    pub fn name(self) -> &'static str {
        match self {
            NotifyOn::Success => "success",
            NotifyOn::Failure => "failure",
            NotifyOn::Dlq => "dlq",
            NotifyOn::Timeout => "timeout",
            NotifyOn::Stale => "stale",
        }
    }

    fn parse(s: &str) -> Option<NotifyOn> {
        NotifyOn::ALL.into_iter().find(|k| k.name() == s.trim())
    }
}

/// Where a notification goes.
#[derive(Debug, Clone)]
pub enum Target {
    /// `sh -c` of the template (rendered with `${event.*}`), the event JSON on stdin.
    Command(Template),
    /// POST of the event JSON.
    Webhook(String),
}

impl Target {
    /// How the target is named in warnings and records (never the webhook's full URL, which
    /// often holds a secret token).
    pub fn label(&self) -> String {
        match self {
            Target::Command(t) => format!("command `{}`", t.source()),
            Target::Webhook(url) => format!("webhook {}", redact_url(url)),
        }
    }
}

/// `scheme://host/…`: the URL without its path and query.
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = host.rsplit('@').next().unwrap_or(host);
    if rest.len() > host.len() {
        format!("{scheme}://{host}/…")
    } else {
        format!("{scheme}://{host}")
    }
}

/// One validated `notify:` entry with one target.
#[derive(Debug, Clone)]
pub struct Notify {
    pub on: Vec<NotifyOn>,
    pub target: Target,
    pub timeout: Duration,
    pub retries: u32,
    pub backoff: Duration,
}

pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_RETRIES: u32 = 2;
pub const DEFAULT_BACKOFF: Duration = Duration::from_secs(1);

/// Validate `notify:` entries; `allowed` are the events this kind of file can raise. An
/// entry with both `command` and `webhook` becomes two notifications.
pub fn validate_notify(
    path: &Path,
    entries: &[Spanned<RawNotify>],
    allowed: &[NotifyOn],
    why_not: &str,
) -> Result<Vec<Notify>, WorkflowError> {
    let mut out = Vec::new();
    for e in entries {
        let r = &e.value;
        let mut on = Vec::new();
        if r.on.value.is_empty() {
            return Err(WorkflowError::at(
                path,
                r.on.referenced,
                "notify.on is empty: list the events, e.g. [failure, dlq]",
            ));
        }
        for name in &r.on.value {
            let kind = NotifyOn::parse(&name.value).ok_or_else(|| {
                WorkflowError::at(
                    path,
                    name.referenced,
                    format!(
                        "unknown notify event {:?}: use success, failure, dlq, timeout or stale",
                        name.value
                    ),
                )
            })?;
            if !allowed.contains(&kind) {
                return Err(WorkflowError::at(
                    path,
                    name.referenced,
                    format!(
                        "notify event `{}` is not raised here: {why_not}",
                        kind.name()
                    ),
                ));
            }
            if !on.contains(&kind) {
                on.push(kind);
            }
        }
        let timeout = opt_duration(path, &r.timeout)?.unwrap_or(DEFAULT_TIMEOUT);
        if timeout.is_zero() {
            let loc = r.timeout.as_ref().map(|t| t.referenced);
            return Err(at(
                path,
                loc,
                e.referenced,
                "notify.timeout must be above zero",
            ));
        }
        let backoff = opt_duration(path, &r.backoff)?.unwrap_or(DEFAULT_BACKOFF);
        let retries = r.retries.unwrap_or(DEFAULT_RETRIES);
        let mut targets = Vec::new();
        if let Some(c) = &r.command {
            let t = Template::parse(&c.value, &|root| root == "event").map_err(|err| {
                WorkflowError::at(
                    path,
                    c.referenced,
                    format!("{err} (a notification command knows `${{event.*}}`)"),
                )
            })?;
            targets.push(Target::Command(t));
        }
        if let Some(w) = &r.webhook {
            let url = w.value.trim();
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(WorkflowError::at(
                    path,
                    w.referenced,
                    "notify.webhook must be an http:// or https:// URL",
                ));
            }
            targets.push(Target::Webhook(url.to_owned()));
        }
        if targets.is_empty() {
            return Err(WorkflowError::at(
                path,
                e.referenced,
                "a notify entry needs `command:` or `webhook:` (or both)",
            ));
        }
        for target in targets {
            out.push(Notify {
                on: on.clone(),
                target,
                timeout,
                retries,
                backoff,
            });
        }
    }
    Ok(out)
}

fn opt_duration(
    path: &Path,
    d: &Option<Spanned<crate::workflow::raw::DurationValue>>,
) -> Result<Option<Duration>, WorkflowError> {
    d.as_ref().map(|d| parse_duration(path, d)).transpose()
}

fn at(path: &Path, loc: Option<Location>, fallback: Location, msg: &str) -> WorkflowError {
    WorkflowError::at(path, loc.unwrap_or(fallback), msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_urls_are_shown_without_their_secret_path() {
        assert_eq!(
            redact_url("https://hooks.slack.com/services/T0/B0/secret"),
            "https://hooks.slack.com/…"
        );
        assert_eq!(redact_url("http://127.0.0.1:8080"), "http://127.0.0.1:8080");
        assert_eq!(
            redact_url("https://user:pw@example.com/x?token=1"),
            "https://example.com/…"
        );
    }
}
