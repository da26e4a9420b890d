//! The in-memory selection stages: filter -> sort -> distinct -> offset -> max_items.

use std::collections::HashSet;

use jaq_core::ValT;
use jaq_json::Val;
use serde_json::Value;

use super::canonical::canonical_json;
use super::convert::{from_jaq, to_jaq};
use super::error::ItemsError;
use super::expr::ItemExpr;
use super::ordering::{Order, compare_keys};
use super::sort_spec::SortKey;

/// A compiled expression with its source, for error messages.
#[derive(Debug)]
pub struct Named {
    /// The expression as written.
    pub expr: String,
    /// Its compiled form.
    pub jq: ItemExpr,
}

/// The compiled in-memory stages of a selection.
#[derive(Debug)]
pub struct Stages {
    /// Keep items whose first filter output is truthy (neither false nor null).
    pub filter: Option<Named>,
    /// Sort keys with their compiled expressions.
    pub sort: Vec<(SortKey, ItemExpr)>,
    /// Keep the first item of each distinct value of this expression.
    pub distinct: Option<Named>,
    /// Items to skip after sorting and deduplication.
    pub offset: usize,
    /// Most items to keep after the offset.
    pub max_items: Option<usize>,
}

/// One surviving item and what the later stages need from it.
/// Sorting needs every item at once: each is kept as its compact JSON text (a parsed object
/// or array costs several times its text) and parsed again when it is passed on; a scalar
/// stays a value, which costs less than its text.
struct Row {
    value: Kept,
    keys: Vec<Val>,
    /// The blake3 hash of the canonical JSON of the `distinct` key.
    distinct: Option<[u8; 16]>,
}

/// An item kept in memory for sorting.
enum Kept {
    Scalar(Value),
    Text(Box<str>),
}

impl Kept {
    fn new(value: Value) -> Self {
        match value {
            Value::Array(_) | Value::Object(_) => match serde_json::to_string(&value) {
                Ok(text) => Kept::Text(text.into_boxed_str()),
                Err(_) => Kept::Scalar(value), // never: a `Value`'s keys are strings
            },
            scalar => Kept::Scalar(scalar),
        }
    }

    fn into_value(self) -> Value {
        match self {
            Kept::Scalar(v) => v,
            // Text serde_json wrote always parses back.
            Kept::Text(t) => serde_json::from_str(&t).unwrap_or(Value::Null),
        }
    }
}

/// Where the selected items go, one at a time, in order.
pub type Sink<'s> = &'s mut dyn FnMut(Value) -> Result<(), ItemsError>;

/// Everything `run` passes to its sink, in a vector.
#[cfg(test)]
pub fn collect_values(
    run: impl FnOnce(Sink<'_>) -> Result<(), ItemsError>,
) -> Result<Vec<Value>, ItemsError> {
    let mut out = Vec::new();
    run(&mut |v| {
        out.push(v);
        Ok(())
    })?;
    Ok(out)
}

impl Stages {
    /// Run the stages over the candidate items (positions in errors are 0-based indexes into
    /// `values`). Each item is converted for jq at most once, and only when an expression
    /// needs it.
    #[cfg(test)]
    pub fn run(&self, values: Vec<Value>) -> Result<Vec<Value>, ItemsError> {
        collect_values(|sink| self.stream(values.into_iter().map(Ok), sink))
    }

    /// [`Stages::run`] over a stream of candidates, passing the survivors to `sink` in
    /// order. Without `sort_by` and `distinct` nothing is held: each candidate is filtered,
    /// paged and passed on (or dropped) before the next is read. Every candidate is read,
    /// even past `max_items`, so that an error anywhere in the input is still reported.
    pub fn stream(
        &self,
        values: impl Iterator<Item = Result<Value, ItemsError>>,
        sink: Sink<'_>,
    ) -> Result<(), ItemsError> {
        let limit = self.max_items.unwrap_or(usize::MAX);
        let mut kept = 0usize;
        let mut page = |value: Value| -> Result<(), ItemsError> {
            kept += 1;
            if kept > self.offset && kept - self.offset <= limit {
                sink(value)?;
            }
            Ok(())
        };
        if self.sort.is_empty() && self.distinct.is_none() {
            for (position, value) in values.enumerate() {
                let value = value?;
                if let Some(filter) = &self.filter
                    && !keep(filter, &value, &to_jaq(&value), position)?
                {
                    continue;
                }
                page(value)?;
            }
            return Ok(());
        }
        let mut rows = Vec::new();
        for (position, value) in values.enumerate() {
            let value = value?;
            let val = to_jaq(&value);
            if let Some(filter) = &self.filter
                && !keep(filter, &value, &val, position)?
            {
                continue;
            }
            let keys = self
                .sort
                .iter()
                .map(|(_, e)| sort_key(e, &value, &val))
                .collect();
            let distinct = match &self.distinct {
                Some(d) => Some(distinct_key(d, &value, &val, position)?),
                None => None,
            };
            rows.push(Row {
                value: Kept::new(value),
                keys,
                distinct,
            });
        }
        if !self.sort.is_empty() {
            let orders: Vec<Order> = self
                .sort
                .iter()
                .map(|(k, _)| Order {
                    descending: k.descending,
                    nulls_first: k.nulls_first,
                })
                .collect();
            rows.sort_by(|a, b| compare_keys(&a.keys, &b.keys, &orders));
        }
        let mut seen = HashSet::new();
        for row in rows {
            if row.distinct.is_none_or(|key| seen.insert(key)) {
                page(row.value.into_value())?;
            }
        }
        Ok(())
    }
}

fn keep(filter: &Named, value: &Value, val: &Val, position: usize) -> Result<bool, ItemsError> {
    match filter.jq.first(value, val) {
        None => Ok(false),
        Some(Ok(out)) => Ok(out.as_bool()),
        Some(Err(message)) => Err(ItemsError::FilterRuntime {
            position,
            message: format!("`{}`: {message}", filter.expr),
        }),
    }
}

/// The first output of a sort key expression; null when it has none or fails.
fn sort_key(expr: &ItemExpr, value: &Value, val: &Val) -> Val {
    expr.first(value, val)
        .and_then(Result::ok)
        .unwrap_or(Val::Null)
}

/// The hash of the canonical JSON of the first output of the distinct expression (of `null`
/// when it has none): 16 bytes per item, whatever the key's size.
fn distinct_key(
    d: &Named,
    value: &Value,
    val: &Val,
    position: usize,
) -> Result<[u8; 16], ItemsError> {
    let hash = |json: &str| {
        let mut key = [0u8; 16];
        key.copy_from_slice(&blake3::hash(json.as_bytes()).as_bytes()[..16]);
        key
    };
    match d.jq.first(value, val) {
        None => Ok(hash("null")),
        Some(Ok(out)) => Ok(hash(&canonical_json(&from_jaq(&out)))),
        Some(Err(message)) => Err(ItemsError::ExpressionRuntime {
            key: "distinct",
            expr: d.expr.clone(),
            position,
            message,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::items::sort_spec::parse_sort_by;
    use serde_json::json;

    fn named(key: &'static str, expr: &str) -> Named {
        Named {
            expr: expr.to_string(),
            jq: if key == "filter" {
                ItemExpr::filter(key, expr)
            } else {
                ItemExpr::value(key, expr)
            }
            .expect("compiles"),
        }
    }

    fn stages(filter: Option<&str>, sort: Option<&str>, distinct: Option<&str>) -> Stages {
        Stages {
            filter: filter.map(|e| named("filter", e)),
            sort: sort
                .map(|s| {
                    parse_sort_by(s)
                        .expect("parses")
                        .into_iter()
                        .map(|k| {
                            let jq = ItemExpr::value("sort_by", &k.expr).expect("compiles");
                            (k, jq)
                        })
                        .collect()
                })
                .unwrap_or_default(),
            distinct: distinct.map(|e| named("distinct", e)),
            offset: 0,
            max_items: None,
        }
    }

    #[test]
    fn no_stages_passes_everything_through() {
        let vals = vec![json!(1), json!("a"), json!(null)];
        assert_eq!(
            stages(None, None, None).run(vals.clone()).expect("ok"),
            vals
        );
    }

    #[test]
    fn filter_uses_jq_truthiness() {
        let vals = vec![
            json!({"v": true}),
            json!({"v": false}),
            json!({"v": null}),
            json!({"v": 0}),
            json!({}),
        ];
        let got = stages(Some(".v"), None, None).run(vals).expect("ok");
        assert_eq!(got, vec![json!({"v": true}), json!({"v": 0})]);
    }

    #[test]
    fn filter_without_output_excludes_the_item() {
        let vals = vec![json!(1), json!(2), json!(3)];
        let got = stages(Some("select(. != 2) | true"), None, None)
            .run(vals)
            .expect("ok");
        assert_eq!(got, vec![json!(1), json!(3)]);
        let got = stages(Some("empty"), None, None)
            .run(vec![json!(1)])
            .expect("ok");
        assert!(got.is_empty());
    }

    #[test]
    fn filter_runtime_error_names_position_and_expression() {
        let vals = vec![json!({"a": 1}), json!("oops")];
        let err = stages(Some("(item.a | length) > 0"), None, None)
            .run(vals)
            .expect_err("fails");
        assert!(
            matches!(err, ItemsError::FilterRuntime { position: 1, .. }),
            "{err:?}"
        );
        let msg = err.to_string();
        assert!(
            msg.contains("item #1") && msg.contains("`(item.a | length) > 0`"),
            "{msg}"
        );
    }

    #[test]
    fn sort_ascending_descending_with_nulls_last() {
        let vals = vec![
            json!({"p": 2}),
            json!({}),
            json!({"p": null}),
            json!({"p": 3}),
            json!({"p": 1}),
        ];
        let ps = |got: Vec<Value>| got.iter().map(|v| v.get("p").cloned()).collect::<Vec<_>>();
        let asc = stages(None, Some("item.p"), None)
            .run(vals.clone())
            .expect("ok");
        assert_eq!(
            ps(asc),
            vec![
                Some(json!(1)),
                Some(json!(2)),
                Some(json!(3)),
                None,
                Some(Value::Null)
            ]
        );
        let desc = stages(None, Some("item.p DESC"), None)
            .run(vals)
            .expect("ok");
        assert_eq!(
            ps(desc),
            vec![
                Some(json!(3)),
                Some(json!(2)),
                Some(json!(1)),
                None,
                Some(Value::Null)
            ]
        );
    }

    #[test]
    fn sort_is_stable_and_multi_key() {
        let vals = vec![
            json!({"g": 1, "n": "b", "i": 0}),
            json!({"g": 2, "n": "a", "i": 1}),
            json!({"g": 1, "n": "a", "i": 2}),
            json!({"g": 1, "n": "b", "i": 3}),
        ];
        let got = stages(None, Some("item.g DESC, item.n"), None)
            .run(vals)
            .expect("ok");
        let order: Vec<Value> = got.iter().map(|v| v["i"].clone()).collect();
        assert_eq!(order, vec![json!(1), json!(2), json!(0), json!(3)]);
    }

    #[test]
    fn sort_key_errors_count_as_null() {
        let vals = vec![json!("str"), json!({"a": 1})];
        let got = stages(None, Some(".a"), None).run(vals).expect("ok");
        assert_eq!(got, vec![json!({"a": 1}), json!("str")]);
    }

    #[test]
    fn distinct_keeps_the_first_of_each_value() {
        let vals = vec![
            json!({"k": {"x": 1, "y": 2}, "i": 0}),
            json!({"k": {"y": 2, "x": 1}, "i": 1}),
            json!({"k": 1, "i": 2}),
            json!({"i": 3}),
            json!({"i": 4}),
        ];
        let got = stages(None, None, Some("item.k")).run(vals).expect("ok");
        let order: Vec<Value> = got.iter().map(|v| v["i"].clone()).collect();
        assert_eq!(order, vec![json!(0), json!(2), json!(3)]);
        let got = stages(None, None, Some("empty"))
            .run(vec![json!(1), json!(2)])
            .expect("ok");
        assert_eq!(got, vec![json!(1)]);
    }

    #[test]
    fn distinct_applies_after_sort() {
        let vals = vec![json!({"g": "a", "s": 1}), json!({"g": "a", "s": 5})];
        let got = stages(None, Some(".s DESC"), Some(".g"))
            .run(vals)
            .expect("ok");
        assert_eq!(got, vec![json!({"g": "a", "s": 5})]);
    }

    #[test]
    fn distinct_runtime_error_is_reported() {
        let err = stages(None, None, Some(".k | tostring"))
            .run(vec![json!({}), json!(3)])
            .expect_err("fails");
        assert!(
            matches!(
                &err,
                ItemsError::ExpressionRuntime {
                    key: "distinct",
                    position: 1,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(
            err.to_string()
                .contains("distinct expression `.k | tostring` failed for item #1")
        );
    }

    #[test]
    fn offset_and_max_items() {
        let vals: Vec<Value> = (0..5).map(|i| json!(i)).collect();
        let mut s = stages(None, None, None);
        s.offset = 1;
        s.max_items = Some(2);
        assert_eq!(s.run(vals.clone()).expect("ok"), vec![json!(1), json!(2)]);
        s.offset = 10;
        assert!(s.run(vals.clone()).expect("ok").is_empty());
        let mut s = stages(Some("true"), None, None);
        s.offset = 3;
        assert_eq!(s.run(vals.clone()).expect("ok"), vec![json!(3), json!(4)]);
        s.max_items = Some(0);
        assert!(s.run(vals).expect("ok").is_empty());
    }
}
