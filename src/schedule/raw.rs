//! The schedules file as written. Unknown keys are rejected with their line and column.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::workflow::ordered::Ordered;
use crate::workflow::raw::{DurationValue, Scalar};

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawSchedules {
    /// IANA time zone of cron expressions and dates without an offset (default UTC).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub timezone: Option<Spanned<String>>,
    #[schemars(with = "BTreeMap<String, RawSchedule>")]
    pub schedules: Spanned<Ordered<RawSchedule>>,
    /// Defaults of every schedule's misfire_grace, coalesce, max_instances, jitter.
    #[serde(default)]
    #[schemars(with = "Option<RawPolicy>")]
    pub defaults: Option<Spanned<RawPolicy>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawSchedule {
    /// A cron expression: 5 fields, or 6 with seconds first; `@daily`-style aliases.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub cron: Option<Spanned<String>>,
    /// An interval, e.g. `15m`.
    #[serde(default)]
    #[schemars(with = "Option<DurationValue>")]
    pub every: Option<Spanned<DurationValue>>,
    /// One date: RFC 3339, or a local date-time in the time zone.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub at: Option<Spanned<String>>,
    /// The workflow or pipeline file to run (relative to the schedules file).
    #[schemars(with = "String")]
    pub run: Spanned<String>,
    /// Workflow env overrides (`--set KEY=VALUE`).
    #[serde(default)]
    #[schemars(with = "Option<BTreeMap<String, Scalar>>")]
    pub set: Option<BTreeMap<String, Spanned<Scalar>>>,
    /// This schedule's time zone (default: the file's).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub timezone: Option<Spanned<String>>,
    /// `every:` only: the first fire is at start + every (default: when first seen).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub start: Option<Spanned<String>>,
    #[serde(default)]
    #[schemars(with = "Option<DurationValue>")]
    pub jitter: Option<Spanned<DurationValue>>,
    #[serde(default)]
    #[schemars(with = "Option<DurationValue>")]
    pub misfire_grace: Option<Spanned<DurationValue>>,
    #[serde(default)]
    #[schemars(with = "Option<bool>")]
    pub coalesce: Option<Spanned<bool>>,
    #[serde(default)]
    #[schemars(with = "Option<u32>")]
    pub max_instances: Option<Spanned<u32>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawPolicy {
    /// A fire missed by more than this (the service was down, busy) is skipped and recorded.
    #[serde(default)]
    #[schemars(with = "Option<DurationValue>")]
    pub misfire_grace: Option<Spanned<DurationValue>>,
    /// Several missed fires within the grace run once.
    #[serde(default)]
    #[schemars(with = "Option<bool>")]
    pub coalesce: Option<Spanned<bool>>,
    /// Runs of one schedule at once; a fire beyond it is skipped and recorded.
    #[serde(default)]
    #[schemars(with = "Option<u32>")]
    pub max_instances: Option<Spanned<u32>>,
    /// Start each fire up to this much later (the same delay for a fire every time).
    #[serde(default)]
    #[schemars(with = "Option<DurationValue>")]
    pub jitter: Option<Spanned<DurationValue>>,
}
