//! Prodigy's step-level `validate:` block as written: a list of commands, or a map with one
//! command (`shell:`, its old name `command:`, or `claude:`) or `commands:`, the result's
//! `threshold` and `result_file`, and `on_incomplete` (a list of commands, or a map).

use std::fmt;

use schemars::JsonSchema;
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

use crate::workflow::raw::{DurationValue, HandlerEntry, ProdigyOnly};

/// `validate:` on a step.
#[derive(Debug)]
pub enum RawValidation {
    /// `validate: [ {shell: ...}, ... ]`: Prodigy's short form of `commands:`.
    List(Vec<Spanned<HandlerEntry>>),
    One(Box<RawValidationMap>),
}

/// The map form of `validate:`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawValidationMap {
    /// A shell command whose output (or `result_file`) is the JSON result.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub shell: Option<Spanned<String>>,
    /// Prodigy's old name of `shell`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub command: Option<Spanned<String>>,
    /// A Claude command whose output (or `result_file`) is the JSON result.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub claude: Option<Spanned<String>>,
    /// Commands run in order; the result comes from `result_file` (complete without one).
    #[serde(default)]
    #[schemars(with = "Option<Vec<HandlerEntry>>")]
    pub commands: Option<Spanned<Vec<Spanned<HandlerEntry>>>>,
    /// The completion percentage needed (default 100).
    #[serde(default)]
    #[schemars(with = "Option<f64>")]
    pub threshold: Option<Spanned<f64>>,
    /// Limit of each validation command.
    #[serde(default)]
    #[schemars(with = "Option<DurationValue>")]
    pub timeout: Option<Spanned<DurationValue>>,
    /// Read the JSON result from this file (relative to the step's directory).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub result_file: Option<Spanned<String>>,
    /// Prodigy: accepted, no effect (Prodigy does not check it either).
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub expected_schema: ProdigyOnly,
    #[serde(default)]
    #[schemars(with = "Option<RawOnIncomplete>")]
    pub on_incomplete: Option<Spanned<RawOnIncomplete>>,
}

/// `on_incomplete:` of a `validate:` block.
#[derive(Debug)]
pub enum RawOnIncomplete {
    List(Vec<Spanned<HandlerEntry>>),
    One(Box<RawOnIncompleteMap>),
}

/// The map form of `on_incomplete:`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawOnIncompleteMap {
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub shell: Option<Spanned<String>>,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub claude: Option<Spanned<String>>,
    #[serde(default)]
    #[schemars(with = "Option<Vec<HandlerEntry>>")]
    pub commands: Option<Spanned<Vec<Spanned<HandlerEntry>>>>,
    /// Times the handlers run, each followed by validation again (default 2).
    #[serde(default)]
    #[schemars(with = "Option<u32>")]
    pub max_attempts: Option<Spanned<u32>>,
    /// Still incomplete at the end: the step fails (default true), or goes on with a warning.
    #[serde(default)]
    #[schemars(with = "Option<bool>")]
    pub fail_workflow: Option<Spanned<bool>>,
    #[serde(default)]
    #[schemars(with = "Option<bool>")]
    pub commit_required: Option<Spanned<bool>>,
    /// Prodigy's interactive prompt: rejected by name.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub prompt: ProdigyOnly,
}

/// A list of handler entries, or a map deserialized as `M`.
fn list_or_map<'de, D, M, T>(
    d: D,
    list: fn(Vec<Spanned<HandlerEntry>>) -> T,
    one: fn(Box<M>) -> T,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    M: Deserialize<'de>,
{
    struct V<M, T> {
        list: fn(Vec<Spanned<HandlerEntry>>) -> T,
        one: fn(Box<M>) -> T,
    }
    impl<'de, M: Deserialize<'de>, T> Visitor<'de> for V<M, T> {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a list of commands, or a map")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<T, A::Error> {
            Ok((self.list)(Vec::deserialize(
                de::value::SeqAccessDeserializer::new(seq),
            )?))
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
            Ok((self.one)(Box::new(M::deserialize(
                de::value::MapAccessDeserializer::new(map),
            )?)))
        }
    }
    d.deserialize_any(V { list, one })
}

impl<'de> Deserialize<'de> for RawValidation {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        list_or_map(d, RawValidation::List, RawValidation::One)
    }
}

impl<'de> Deserialize<'de> for RawOnIncomplete {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        list_or_map(d, RawOnIncomplete::List, RawOnIncomplete::One)
    }
}

/// The schema of a list-or-map type: an array of handler entries, or the map `M`.
fn list_or_map_schema<M: JsonSchema>(
    generator: &mut schemars::SchemaGenerator,
    description: &str,
) -> schemars::Schema {
    let entry = generator.subschema_for::<HandlerEntry>();
    let map = generator.subschema_for::<M>();
    schemars::json_schema!({
        "description": description,
        "anyOf": [ { "type": "array", "items": entry }, map ]
    })
}

impl JsonSchema for RawValidation {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Validate".into()
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        list_or_map_schema::<RawValidationMap>(
            generator,
            "Prodigy's step validation: a list of commands, or { shell or claude or commands, threshold, result_file, timeout, on_incomplete }",
        )
    }
}

impl JsonSchema for RawOnIncomplete {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "OnIncomplete".into()
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        list_or_map_schema::<RawOnIncompleteMap>(
            generator,
            "What runs while validation is below its threshold: a list of commands, or { shell or claude or commands, max_attempts, fail_workflow }",
        )
    }
}
