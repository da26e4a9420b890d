//! Apply the optional RFC 9535 `json_path` to the parsed input.

use std::collections::HashSet;

use serde_json::Value;
use serde_json_path::JsonPath;

use super::error::ItemsError;
use super::parse::Lazy;
#[cfg(test)]
use super::parse::Parsed;

/// Compile a `json_path` expression.
pub fn compile_json_path(expr: &str) -> Result<JsonPath, ItemsError> {
    JsonPath::parse(expr).map_err(|e| ItemsError::Expression {
        key: "json_path",
        expr: expr.to_string(),
        message: format!(
            "{e}; write an RFC 9535 JSONPath starting with `$`, such as `$.items[*]` or `$[*]`"
        ),
    })
}

/// The candidate items. Without a path: the elements of a top-level array, each line of
/// JSON lines / text lines, or the single non-array document. With a path: the nodes it
/// selects in the document, or in each line in turn.
#[cfg(test)]
pub fn select(parsed: Parsed, path: Option<&JsonPath>) -> Vec<Value> {
    match (parsed, path) {
        (Parsed::Document(doc), path) => in_document(doc, path),
        (Parsed::Lines(lines), None) => lines,
        (Parsed::Lines(lines), Some(path)) => {
            lines.into_iter().flat_map(|l| query(l, path)).collect()
        }
    }
}

/// The candidates of a whole JSON document.
fn in_document(doc: Value, path: Option<&JsonPath>) -> Vec<Value> {
    match (doc, path) {
        (Value::Array(items), None) => items,
        (doc, None) => vec![doc],
        (doc, Some(path)) => query(doc, path),
    }
}

/// [`select`] one line at a time: lines are parsed and queried as they are iterated.
pub fn select_lazily<'a>(
    parsed: Lazy<'a>,
    path: Option<&'a JsonPath>,
) -> Box<dyn Iterator<Item = Result<Value, ItemsError>> + 'a> {
    match (parsed, path) {
        (Lazy::Document(doc), path) => Box::new(in_document(doc, path).into_iter().map(Ok)),
        (lines, None) => lines.values(),
        (lines, Some(path)) => Box::new(lines.values().flat_map(move |line| {
            let nodes: Box<dyn Iterator<Item = Result<Value, ItemsError>>> = match line {
                Ok(v) => Box::new(query(v, path).into_iter().map(Ok)),
                Err(e) => Box::new(std::iter::once(Err(e))),
            };
            nodes
        })),
    }
}

/// The nodes `path` selects in `doc`, in order. When they do not overlap (the usual case,
/// e.g. `$.items[*]`) they are moved out of the document instead of copied, so selecting
/// a million items does not double the memory.
fn query(mut doc: Value, path: &JsonPath) -> Vec<Value> {
    let pointers: Vec<String> = path
        .query_located(&doc)
        .locations()
        .map(|loc| loc.to_json_pointer())
        .collect();
    if !disjoint(&pointers) {
        return path.query(&doc).all().into_iter().cloned().collect();
    }
    pointers
        .iter()
        .map(|p| doc.pointer_mut(p).map(Value::take).unwrap_or(Value::Null))
        .collect()
}

/// True when no pointer repeats or lies inside another one.
fn disjoint(pointers: &[String]) -> bool {
    if pointers.len() < 2 {
        return true;
    }
    let mut set: HashSet<&str> = HashSet::with_capacity(pointers.len());
    if !pointers.iter().all(|p| set.insert(p.as_str())) || set.contains("") {
        return false;
    }
    !pointers.iter().any(|p| {
        p.char_indices()
            .skip(1)
            .any(|(i, c)| c == '/' && set.contains(&p[..i]))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn path(p: &str) -> JsonPath {
        compile_json_path(p).expect("valid path")
    }

    #[test]
    fn defaults_without_a_path() {
        assert_eq!(
            select(Parsed::Document(json!([1, 2])), None),
            vec![json!(1), json!(2)]
        );
        assert_eq!(
            select(Parsed::Document(json!({"a": 1})), None),
            vec![json!({"a": 1})]
        );
        assert_eq!(select(Parsed::Document(json!(5)), None), vec![json!(5)]);
        assert_eq!(
            select(Parsed::Lines(vec![json!(1), json!("x")]), None),
            vec![json!(1), json!("x")]
        );
    }

    #[test]
    fn path_on_a_document() {
        let doc = json!({"items": [{"n": 1}, {"n": 2}], "other": 3});
        assert_eq!(
            select(Parsed::Document(doc.clone()), Some(&path("$.items[*]"))),
            vec![json!({"n": 1}), json!({"n": 2})]
        );
        assert_eq!(
            select(Parsed::Document(doc.clone()), Some(&path("$.items[*].n"))),
            vec![json!(1), json!(2)]
        );
        assert_eq!(
            select(Parsed::Document(doc), Some(&path("$.missing[*]"))),
            Vec::<Value>::new()
        );
        assert_eq!(
            select(Parsed::Document(json!([3, 4])), Some(&path("$[*]"))),
            vec![json!(3), json!(4)]
        );
    }

    #[test]
    fn path_on_each_line_is_concatenated() {
        let lines = vec![json!({"xs": [1, 2]}), json!({"xs": []}), json!({"xs": [3]})];
        assert_eq!(
            select(Parsed::Lines(lines), Some(&path("$.xs[*]"))),
            vec![json!(1), json!(2), json!(3)]
        );
    }

    #[test]
    fn overlapping_or_repeated_nodes_are_copied() {
        let doc = json!({"a": {"b": 1}});
        assert_eq!(
            select(Parsed::Document(doc.clone()), Some(&path("$..*"))),
            vec![json!({"b": 1}), json!(1)]
        );
        assert_eq!(
            select(Parsed::Document(json!([7, 8])), Some(&path("$[0, 0, 1]"))),
            vec![json!(7), json!(7), json!(8)]
        );
        assert_eq!(
            select(Parsed::Document(doc.clone()), Some(&path("$"))),
            vec![doc]
        );
    }

    #[test]
    fn disjointness() {
        let v = |xs: &[&str]| xs.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(disjoint(&v(&["/a/0", "/a/1", "/b"])));
        assert!(disjoint(&v(&["/a", "/ab"])));
        assert!(!disjoint(&v(&["/a", "/a/b"])));
        assert!(!disjoint(&v(&["/x", "/x"])));
        assert!(!disjoint(&v(&["", "/x"])));
    }

    #[test]
    fn invalid_path_names_the_key() {
        let msg = compile_json_path("items[*")
            .expect_err("invalid")
            .to_string();
        assert!(
            msg.contains("invalid json_path expression `items[*`"),
            "{msg}"
        );
        assert!(msg.contains("$.items[*]"), "{msg}");
    }
}
