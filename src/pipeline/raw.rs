//! The pipeline file as written. Unknown keys are rejected with their line and column.

use std::collections::BTreeMap;
use std::fmt;

use schemars::JsonSchema;
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
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
#[derive(Debug, Default)]
pub struct Nodes(pub Vec<(String, Spanned<RawNode>)>);

impl<'de> Deserialize<'de> for Nodes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Nodes;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map of job names to { workflow: FILE, needs: [...] }")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Nodes, A::Error> {
                let mut out: Vec<(String, Spanned<RawNode>)> = Vec::new();
                while let Some(k) = map.next_key::<String>()? {
                    if out.iter().any(|(n, _)| *n == k) {
                        return Err(de::Error::custom(format!("job `{k}` is defined twice")));
                    }
                    let v = map.next_value::<Spanned<RawNode>>()?;
                    out.push((k, v));
                }
                Ok(Nodes(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// Only looks whether a YAML document has a top-level `jobs:` key.
#[derive(Debug, Deserialize)]
pub struct Probe {
    #[serde(default)]
    pub jobs: Option<de::IgnoredAny>,
}
