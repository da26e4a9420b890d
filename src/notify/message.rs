//! The event a notification carries: one JSON document (the command's stdin, the webhook's
//! body, `${event.*}`), with a one-line `text` that Slack-compatible webhooks display.

use serde::Serialize;

use crate::notify::spec::NotifyOn;

/// Longest error text carried (the rest is cut, so a payload stays small).
const MAX_ERROR: usize = 2000;

/// What happened. Field names are documented in docs/operating.md and kept stable.
#[derive(Debug, Clone, Serialize)]
pub struct NotifyEvent {
    /// `success`, `failure`, `dlq`, `timeout` or `stale`.
    pub event: NotifyOn,
    /// `job` or `pipeline`.
    pub kind: &'static str,
    pub job_id: String,
    /// The workflow's (or pipeline's) name.
    pub workflow: String,
    /// The job's state at the end (success/failure events).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// The item concerned (dlq, timeout, stale).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub item_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    /// How long the item has been running (stale).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub running_ms: Option<u64>,
    /// Item counts at the end (success/failure of a job).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub counts: Option<EventCounts>,
    /// Pipeline nodes that failed (failure of a pipeline).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failed_nodes: Vec<String>,
    /// Why: the failing step or error policy, the item's error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub host: String,
    /// RFC 3339.
    pub at: String,
    /// One human line (Slack's `text`).
    pub text: String,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct EventCounts {
    pub total: usize,
    pub successful: usize,
    pub failed: usize,
    pub dlq: usize,
    pub pending: usize,
}

impl NotifyEvent {
    /// A new event with `text` filled in from the other fields.
    pub fn new(event: NotifyOn, kind: &'static str, job_id: &str, workflow: &str) -> Self {
        NotifyEvent {
            event,
            kind,
            job_id: job_id.to_owned(),
            workflow: workflow.to_owned(),
            state: None,
            exit_code: None,
            item_id: None,
            attempt: None,
            running_ms: None,
            counts: None,
            failed_nodes: Vec::new(),
            error: None,
            host: nix::unistd::gethostname()
                .map(|h| h.to_string_lossy().into_owned())
                .unwrap_or_default(),
            at: humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
            text: String::new(),
        }
    }

    pub fn with_error(mut self, error: Option<String>) -> Self {
        self.error = error.map(|mut e| {
            if e.len() > MAX_ERROR {
                let mut cut = MAX_ERROR;
                while !e.is_char_boundary(cut) {
                    cut -= 1;
                }
                e.truncate(cut);
                e.push('…');
            }
            e
        });
        self
    }

    /// Fill in `text` (call last).
    pub fn finish(mut self) -> Self {
        self.text = self.describe();
        self
    }

    fn describe(&self) -> String {
        let what = format!("{} {} ({})", self.kind, self.job_id, self.workflow);
        let why = self
            .error
            .as_deref()
            .map(|e| format!(": {}", e.lines().next().unwrap_or("")))
            .unwrap_or_default();
        let counts = self
            .counts
            .map(|c| {
                format!(
                    " ({}/{} items succeeded, {} failed, {} in the DLQ)",
                    c.successful, c.total, c.failed, c.dlq
                )
            })
            .unwrap_or_default();
        let item = self.item_id.as_deref().unwrap_or("?");
        match self.event {
            NotifyOn::Success => format!("runner: {what} completed{counts}"),
            NotifyOn::Failure if !self.failed_nodes.is_empty() => format!(
                "runner: {what} failed: node(s) {} failed{why}",
                self.failed_nodes.join(", ")
            ),
            NotifyOn::Failure => format!("runner: {what} failed{counts}{why}"),
            NotifyOn::Dlq => format!("runner: {what}: item {item} went to the DLQ{why}"),
            NotifyOn::Timeout => format!(
                "runner: {what}: item {item} attempt {} timed out{why}",
                self.attempt.unwrap_or(0)
            ),
            NotifyOn::Stale => format!(
                "runner: {what}: item {item} has been running for {}",
                humantime::format_duration(std::time::Duration::from_secs(
                    self.running_ms.unwrap_or(0) / 1000
                ))
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_names_the_job_and_what_happened() {
        let mut e = NotifyEvent::new(NotifyOn::Failure, "job", "j1", "wf");
        e.counts = Some(EventCounts {
            total: 10,
            successful: 7,
            failed: 3,
            dlq: 3,
            pending: 0,
        });
        let e = e.with_error(Some("x".repeat(3000))).finish();
        assert!(
            e.text
                .starts_with("runner: job j1 (wf) failed (7/10 items succeeded")
        );
        assert!(e.error.as_ref().unwrap().len() <= MAX_ERROR + 3);
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["event"], "failure");
        assert_eq!(v["text"], e.text);
    }
}
