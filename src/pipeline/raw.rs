//! The pipeline file as written. Unknown keys are rejected with their line and column.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;
use serde::de;
use serde_saphyr::Spanned;

use crate::notify::raw::RawNotify;
use crate::workflow::raw::Scalar;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawPipeline {
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    /// Jobs running at once (default: the number of CPUs).
    #[serde(default)]
    #[schemars(with = "Option<u64>")]
    pub max_parallel_jobs: Option<Spanned<u64>>,
    /// The nodes, by name, in file order.
    #[schemars(with = "BTreeMap<String, RawNode>")]
    pub jobs: Spanned<Nodes>,
    #[serde(default)]
    #[schemars(with = "Option<Vec<RawNotify>>")]
    pub notify: Option<Vec<Spanned<RawNotify>>>,
}

/// One node: a workflow and when it runs.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawNode {
    /// The workflow file (relative to the pipeline file).
    #[schemars(with = "String")]
    pub workflow: Spanned<String>,
    /// Nodes that must end first.
    #[serde(default)]
    #[schemars(with = "Option<Vec<String>>")]
    pub needs: Option<Spanned<Vec<Spanned<String>>>>,
    /// `on_success` (default), `always` or `on_failure`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub when: Option<Spanned<String>>,
    /// `critical`, `high`, `normal` (default), `low`, or an integer (higher starts first).
    #[serde(default)]
    #[schemars(with = "Option<Scalar>")]
    pub priority: Option<Spanned<Scalar>>,
    /// Workflow env overrides (`--set KEY=VALUE`).
    #[serde(default)]
    #[schemars(with = "Option<BTreeMap<String, Scalar>>")]
    pub set: Option<BTreeMap<String, Spanned<Scalar>>>,
}

/// `jobs:` in file order.
pub type Nodes = crate::workflow::ordered::Ordered<RawNode>;

/// Only looks whether a YAML document has a top-level `jobs:` key.
#[derive(Debug, Deserialize)]
pub struct Probe {
    #[serde(default)]
    pub jobs: Option<de::IgnoredAny>,
}
