//! `notify:` entries as written (shared by workflow and pipeline files).

use schemars::JsonSchema;
use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::workflow::raw::DurationValue;

/// One `notify:` entry: when (`on`), and how (`command`, `webhook`, or both).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawNotify {
    /// Events that trigger it: success, failure, dlq, timeout, stale.
    #[schemars(with = "Vec<NotifyOnName>")]
    pub on: Spanned<Vec<Spanned<String>>>,
    /// A shell command; the event is on its stdin as JSON and in `${event.*}` variables.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub command: Option<Spanned<String>>,
    /// An http(s) URL that receives the event as a JSON POST (with a Slack-compatible `text`).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub webhook: Option<Spanned<String>>,
    /// Time limit of one delivery attempt (default 10s).
    #[serde(default)]
    #[schemars(with = "Option<DurationValue>")]
    pub timeout: Option<Spanned<DurationValue>>,
    /// Attempts after the first when a delivery fails (default 2).
    #[serde(default)]
    pub retries: Option<u32>,
    /// Wait before the first retry, doubled for each further one (default 1s).
    #[serde(default)]
    #[schemars(with = "Option<DurationValue>")]
    pub backoff: Option<Spanned<DurationValue>>,
}

/// Schema only: the event names `notify.on` accepts.
pub struct NotifyOnName;

impl JsonSchema for NotifyOnName {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "NotifyOn".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "success (the job completed), failure (it failed), dlq (an item went to the DLQ), timeout (an item attempt timed out), stale (an item runs longer than map.stuck_after)",
            "type": "string",
            "enum": ["success", "failure", "dlq", "timeout", "stale"]
        })
    }
}
