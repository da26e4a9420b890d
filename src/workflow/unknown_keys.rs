//! Every unknown key of a workflow file at once. Reading the file stops at the first unknown
//! key; then the file is walked along the JSON Schema of the format (`runner schema`) and
//! each key the schema does not list where it stands is reported with its line and column.

use std::path::Path;

use serde_json::Value;
use serde_saphyr::granit_parser::{Event, Parser};

use crate::workflow::error::WorkflowError;

/// Prodigy's keys that runner reads (to reject them by name) but leaves out of the schema.
const PRODIGY_ONLY: &[&str] = &[
    "secrets",
    "profiles",
    "worktree",
    "commit_required",
    "claude",
    "goal_seek",
    "foreach",
    "test",
    "analyze",
    "write_file",
    "when",
    "on_success",
];

/// A YAML node: a mapping's keys with their positions (1-based line and column), a
/// sequence, or anything else.
enum Node {
    Map(Vec<(String, usize, usize, Node)>),
    Seq(Vec<Node>),
    Other,
}

/// The unknown keys of `text` (empty when it cannot be parsed as YAML).
pub fn unknown_keys(text: &str, path: &Path) -> Vec<WorkflowError> {
    let Some(root) = tree(text) else {
        return Vec::new();
    };
    let schema = schemars::schema_for!(crate::workflow::raw::RawWorkflow);
    let schema = schema.as_value();
    let mut out = Vec::new();
    walk(&root, schema, schema, path, &mut out);
    out
}

fn tree(text: &str) -> Option<Node> {
    let mut events = Parser::new_from_str(text).filter_map(|e| match e {
        Ok((Event::Comment(..), _)) => None,
        other => Some(other),
    });
    loop {
        match events.next()?.ok()? {
            (Event::StreamStart | Event::DocumentStart(..), _) => {}
            (event, _) => return node(event, &mut events),
        }
    }
}

type Events<'a> = dyn Iterator<
        Item = Result<
            (Event<'a>, serde_saphyr::granit_parser::Span),
            serde_saphyr::granit_parser::ScanError,
        >,
    > + 'a;

fn node<'a>(event: Event<'a>, events: &mut Events<'a>) -> Option<Node> {
    match event {
        Event::MappingStart(..) => {
            let mut entries = Vec::new();
            loop {
                let (key, span) = events.next()?.ok()?;
                let name = match key {
                    Event::MappingEnd => return Some(Node::Map(entries)),
                    Event::Scalar(s, ..) => s.into_owned(),
                    other => {
                        // A complex key: skip it.
                        node(other, events)?;
                        String::new()
                    }
                };
                let (value, _) = events.next()?.ok()?;
                let v = node(value, events)?;
                entries.push((name, span.start.line(), span.start.col() + 1, v));
            }
        }
        Event::SequenceStart(..) => {
            let mut items = Vec::new();
            loop {
                let (e, _) = events.next()?.ok()?;
                if matches!(e, Event::SequenceEnd) {
                    return Some(Node::Seq(items));
                }
                items.push(node(e, events)?);
            }
        }
        _ => Some(Node::Other),
    }
}

/// `s` with its `$ref` followed.
fn resolve<'a>(s: &'a Value, root: &'a Value) -> &'a Value {
    match s.get("$ref").and_then(Value::as_str) {
        Some(r) => r
            .strip_prefix("#/")
            .map(|p| p.split('/').fold(root, |v, k| &v[k]))
            .unwrap_or(s),
        None => s,
    }
}

/// The alternatives of `s` (itself, or those of `anyOf`/`oneOf`), resolved.
fn alternatives<'a>(s: &'a Value, root: &'a Value) -> Vec<&'a Value> {
    let s = resolve(s, root);
    let alts: Vec<&Value> = ["anyOf", "oneOf"]
        .iter()
        .filter_map(|k| s.get(*k).and_then(Value::as_array))
        .flatten()
        .collect();
    if alts.is_empty() {
        vec![s]
    } else {
        alts.into_iter()
            .flat_map(|a| alternatives(a, root))
            .collect()
    }
}

fn walk(node: &Node, schema: &Value, root: &Value, path: &Path, out: &mut Vec<WorkflowError>) {
    let alts = alternatives(schema, root);
    match node {
        Node::Map(entries) => {
            let objects: Vec<&Value> = alts
                .into_iter()
                .filter(|a| {
                    a.get("properties").is_some() || a.get("additionalProperties").is_some()
                })
                .collect();
            if objects.is_empty() {
                return;
            }
            let open = objects
                .iter()
                .find_map(|o| match o.get("additionalProperties") {
                    Some(Value::Bool(false)) => None,
                    Some(v) => Some(v),
                    None if o.get("properties").is_none() => Some(&Value::Bool(true)),
                    None => None,
                });
            for (key, line, column, value) in entries {
                let prop = objects
                    .iter()
                    .find_map(|o| o.get("properties").and_then(|p| p.get(key)));
                match (prop, open) {
                    (Some(p), _) => walk(value, p, root, path, out),
                    (None, Some(extra)) => walk(value, extra, root, path, out),
                    (None, None) if PRODIGY_ONLY.contains(&key.as_str()) => {}
                    (None, None) => {
                        let mut expected: Vec<&str> = objects
                            .iter()
                            .filter_map(|o| o.get("properties").and_then(Value::as_object))
                            .flat_map(|p| p.keys().map(String::as_str))
                            .collect();
                        expected.dedup();
                        out.push(WorkflowError::At {
                            path: path.to_path_buf(),
                            line: *line,
                            column: *column,
                            message: format!(
                                "unknown field `{key}`, expected one of {}",
                                expected.join(", ")
                            ),
                        });
                    }
                }
            }
        }
        Node::Seq(items) => {
            let Some(item_schema) = alts.iter().find_map(|a| a.get("items")) else {
                return;
            };
            for it in items {
                walk(it, item_schema, root, path, out);
            }
        }
        Node::Other => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(text: &str) -> Vec<(usize, String)> {
        unknown_keys(text, Path::new("w.yml"))
            .into_iter()
            .map(|e| (e.position().0, e.to_string()))
            .collect()
    }

    #[test]
    fn every_unknown_key_with_its_line() {
        let got = keys(
            "name: x\nnmae: y\nenv:\n  ANY_NAME: 1\nmap:\n  input: i.json\n  tmeout: 5\n  agent_template:\n    - shell: \"true\"\n      captur: x\n      claude: \"/x\"\n",
        );
        let lines: Vec<usize> = got.iter().map(|g| g.0).collect();
        assert_eq!(lines, [2, 7, 10], "{got:?}");
        assert!(
            got[1].1.contains("unknown field `tmeout`, expected one of"),
            "{got:?}"
        );
    }

    #[test]
    fn known_forms_are_quiet() {
        let got = keys(
            "name: x\nsetup:\n  commands:\n    - shell: a\n  timeout: 5\nmap:\n  input: { file: i.json }\n  agent_template:\n    - shell: b\n      on_failure: [\"c\", { shell: d, continue_on_error: true }]\n    - shell: e\n      on_failure: { commands: [f], fail_workflow: true }\nerror_collection: { batched: { size: 3 } }\n",
        );
        assert!(got.is_empty(), "{got:?}");
    }
}
