//! The selection settings of a workflow and their compiled, runnable form.

use std::path::Path;

#[cfg(test)]
use serde_json::Value;
use serde_json_path::JsonPath;

use super::error::ItemsError;
use super::expr::ItemExpr;
use super::format::InputFormat;
use super::input::Input;
use super::json_path::{compile_json_path, select_lazily};
use super::parse::{Lazy, parse_lazily};
#[cfg(test)]
use super::pipeline::collect_values;
use super::pipeline::{Named, Sink, Stages};
use super::sort_spec::parse_sort_by;

/// Which items to process: plain data, filled by the workflow loader.
#[derive(Debug, Clone, PartialEq)]
pub struct Selection {
    /// Where the items come from.
    pub input: Input,
    /// `map.input_format`; when `None` the input's extension decides ([`InputFormat::resolve`]).
    pub format: Option<InputFormat>,
    /// RFC 9535 JSONPath selecting the items, e.g. `$.items[*]`.
    pub json_path: Option<String>,
    /// jq boolean expression; items for which it is false or null are dropped.
    pub filter: Option<String>,
    /// Comma-separated jq sort keys, each optionally followed by `ASC` or `DESC`.
    pub sort_by: Option<String>,
    /// jq expression; later items with an equal value are dropped.
    pub distinct: Option<String>,
    /// Items to skip after sorting and deduplication.
    pub offset: usize,
    /// Most items to keep after the offset.
    pub max_items: Option<usize>,
}

impl Selection {
    /// A selection of every item of `input`, with no expressions.
    pub fn new(input: Input) -> Self {
        Self {
            input,
            format: None,
            json_path: None,
            filter: None,
            sort_by: None,
            distinct: None,
            offset: 0,
            max_items: None,
        }
    }
}

/// A selection whose expressions are compiled and ready to run. It is `Send + Sync`.
#[derive(Debug)]
pub struct CompiledSelection {
    input: Input,
    format: InputFormat,
    json_path: Option<JsonPath>,
    stages: Stages,
}

/// Compile every expression of `sel`; the error names the offending key and expression.
/// Nothing is read or run.
pub fn compile(sel: &Selection) -> Result<CompiledSelection, ItemsError> {
    let json_path = sel
        .json_path
        .as_deref()
        .map(compile_json_path)
        .transpose()?;
    let filter = sel
        .filter
        .as_deref()
        .map(|e| -> Result<Named, ItemsError> {
            Ok(Named {
                expr: e.to_string(),
                jq: ItemExpr::filter("filter", e)?,
            })
        })
        .transpose()?;
    let sort = match sel.sort_by.as_deref() {
        Some(spec) => parse_sort_by(spec)?
            .into_iter()
            .map(|key| {
                let jq = ItemExpr::value("sort_by", &key.expr)?;
                Ok((key, jq))
            })
            .collect::<Result<Vec<_>, ItemsError>>()?,
        None => Vec::new(),
    };
    let distinct = sel
        .distinct
        .as_deref()
        .map(|e| -> Result<Named, ItemsError> {
            Ok(Named {
                expr: e.to_string(),
                jq: ItemExpr::value("distinct", e)?,
            })
        })
        .transpose()?;
    Ok(CompiledSelection {
        input: sel.input.clone(),
        format: InputFormat::resolve(sel.format, &sel.input),
        json_path,
        stages: Stages {
            filter,
            sort,
            distinct,
            offset: sel.offset,
            max_items: sel.max_items,
        },
    })
}

impl CompiledSelection {
    /// Where the items come from.
    pub fn input(&self) -> &Input {
        &self.input
    }

    /// The format the input is read in (`map.input_format`, else by extension).
    pub fn format(&self) -> InputFormat {
        self.format
    }

    /// Read the file (or run the command in `base_dir` with `env` added), parse it, and run
    /// json_path -> filter -> sort -> distinct -> offset -> max_items.
    #[cfg(test)]
    pub fn load(
        &self,
        base_dir: &Path,
        env: &[(String, String)],
    ) -> Result<Vec<Value>, ItemsError> {
        collect_values(|sink| self.stream(base_dir, env, sink))
    }

    /// [`CompiledSelection::load`], passing each selected item to `sink` in order instead of
    /// collecting them. Lines are parsed one at a time, so without `sort_by` or `distinct`
    /// memory holds the input's bytes and one item, not every item.
    pub fn stream(
        &self,
        base_dir: &Path,
        env: &[(String, String)],
        sink: Sink<'_>,
    ) -> Result<(), ItemsError> {
        let bytes = self.input.read(base_dir, env)?;
        self.stream_bytes(bytes, &self.input.origin(), sink)
    }

    /// The same pipeline on already-read bytes; `origin` names them in error messages.
    #[cfg(test)]
    pub fn select_from_bytes(&self, bytes: &[u8], origin: &str) -> Result<Vec<Value>, ItemsError> {
        collect_values(|sink| self.stream_bytes(bytes.to_vec(), origin, sink))
    }

    fn stream_bytes(&self, bytes: Vec<u8>, origin: &str, sink: Sink<'_>) -> Result<(), ItemsError> {
        let path = self.json_path.as_ref();
        match parse_lazily(&bytes, self.format, origin)? {
            Lazy::Document(doc) => {
                drop(bytes); // a document is parsed whole: keep peak memory down
                self.stages
                    .stream(select_lazily(Lazy::Document(doc), path), sink)
            }
            lines => self.stages.stream(select_lazily(lines, path), sink),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sel() -> Selection {
        Selection::new(Input::Command("unused".to_string()))
    }

    fn run(s: &Selection, input: &str) -> Vec<Value> {
        compile(s)
            .expect("compiles")
            .select_from_bytes(input.as_bytes(), "test")
            .expect("selects")
    }

    #[test]
    fn compiled_selection_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<CompiledSelection>();
    }

    #[test]
    fn compile_errors_name_the_key() {
        let cases: [(&str, Selection); 4] = [
            (
                "json_path",
                Selection {
                    json_path: Some("$[".into()),
                    ..sel()
                },
            ),
            (
                "filter",
                Selection {
                    filter: Some("item.a ==".into()),
                    ..sel()
                },
            ),
            (
                "sort_by",
                Selection {
                    sort_by: Some(".a, nosuch(1)".into()),
                    ..sel()
                },
            ),
            (
                "distinct",
                Selection {
                    distinct: Some("(".into()),
                    ..sel()
                },
            ),
        ];
        for (key, s) in cases {
            let err = compile(&s).expect_err(key);
            assert!(
                matches!(&err, ItemsError::Expression { key: k, .. } | ItemsError::Syntax { key: k, .. } if *k == key),
                "{err:?}"
            );
            assert!(
                err.to_string()
                    .contains(&format!("invalid {key} expression"))
            );
        }
    }

    #[test]
    fn full_pipeline_in_order() {
        let input = json!({"items": [
            {"id": 1, "kind": "png", "score": 9, "group": "a"},
            {"id": 2, "kind": "jpg", "score": 8, "group": "a"},
            {"id": 3, "kind": "png", "score": 7, "group": "b"},
            {"id": 4, "kind": "png", "score": 7, "group": "a"},
            {"id": 5, "kind": "png", "score": 6, "group": "c"},
            {"id": 6, "kind": "png", "score": 1, "group": "d"}
        ]})
        .to_string();
        let s = Selection {
            json_path: Some("$.items[*]".into()),
            filter: Some(r#"item.kind == "png" && item.score >= 5"#.into()),
            sort_by: Some("item.score ASC, item.id DESC".into()),
            distinct: Some("item.group".into()),
            offset: 1,
            max_items: Some(2),
            ..sel()
        };
        // filter: 1,3,4,5; sort: 5(6),4(7),3(7),1(9); distinct group: 5c,4a,3b (1a dropped);
        // offset 1 -> 4,3; max 2 -> 4,3
        let ids: Vec<Value> = run(&s, &input).iter().map(|v| v["id"].clone()).collect();
        assert_eq!(ids, vec![json!(4), json!(3)]);
    }

    #[test]
    fn json_lines_and_plain_lines() {
        let s = Selection {
            filter: Some("item.n > 1".into()),
            ..sel()
        };
        assert_eq!(run(&s, "{\"n\":1}\n{\"n\":2}\n"), vec![json!({"n": 2})]);
        let s = Selection {
            filter: Some(r#"endswith(".rs")"#.into()),
            ..sel()
        };
        assert_eq!(
            run(&s, "a.rs\nb.txt\nc.rs\n"),
            vec![json!("a.rs"), json!("c.rs")]
        );
    }

    #[test]
    fn empty_input_gives_no_items() {
        let s = Selection {
            filter: Some(".x".into()),
            ..sel()
        };
        assert!(run(&s, "").is_empty());
    }

    #[test]
    fn parse_errors_surface() {
        let c = compile(&sel()).expect("compiles");
        let err = c
            .select_from_bytes(b"a\n\xFF", "items.txt")
            .expect_err("bad utf8");
        assert!(matches!(err, ItemsError::NotUtf8 { .. }));
    }

    #[test]
    fn load_reads_a_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("items.json"), r#"[{"a":1},{"a":2}]"#).expect("write");
        let s = Selection {
            filter: Some("item.a == 2".into()),
            ..Selection::new(Input::from_bare("items.json", dir.path()))
        };
        let c = compile(&s).expect("compiles");
        assert!(matches!(c.input(), Input::File(_)));
        assert_eq!(
            c.load(dir.path(), &[]).expect("loads"),
            vec![json!({"a": 2})]
        );
    }

    #[test]
    fn load_reads_in_the_resolved_format() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("a.ndjson"), "[1,2]\n").expect("write");
        std::fs::write(dir.path().join("a.txt"), "{x}\n").expect("write");
        let load = |name: &str, format: Option<InputFormat>| {
            let s = Selection {
                format,
                ..Selection::new(Input::File(dir.path().join(name)))
            };
            compile(&s).expect("compiles").load(dir.path(), &[])
        };
        // By extension: JSON lines, so the array line is one item.
        assert_eq!(load("a.ndjson", None).expect("loads"), vec![json!([1, 2])]);
        // Given: it overrides the extension.
        let json = Some(InputFormat::Json);
        assert_eq!(
            load("a.ndjson", json).expect("loads"),
            vec![json!(1), json!(2)]
        );
        assert_eq!(
            load("a.txt", Some(InputFormat::Lines)).expect("loads"),
            vec![json!("{x}")]
        );
        let err = load("a.txt", None).expect_err("auto: starts like JSON");
        assert!(
            matches!(err, ItemsError::InvalidJson { line: 1, .. }),
            "{err:?}"
        );
    }

    #[test]
    fn load_runs_a_command_with_env() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = Selection {
            json_path: Some("$[*]".into()),
            ..Selection::new(Input::Command(r#"printf '[%s,2]' "$FIRST""#.into()))
        };
        let env = [("FIRST".to_string(), "1".to_string())];
        let got = compile(&s)
            .expect("compiles")
            .load(dir.path(), &env)
            .expect("loads");
        assert_eq!(got, vec![json!(1), json!(2)]);
    }

    #[test]
    fn load_reports_command_and_file_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let failing = compile(&Selection::new(Input::Command(
            "echo boom >&2; exit 2".into(),
        )))
        .expect("compiles");
        let err = failing.load(dir.path(), &[]).expect_err("fails");
        assert!(
            matches!(err, ItemsError::Command { code: Some(2), .. }),
            "{err:?}"
        );
        let missing =
            compile(&Selection::new(Input::File(dir.path().join("nope.json")))).expect("compiles");
        let err = missing.load(dir.path(), &[]).expect_err("fails");
        assert!(matches!(err, ItemsError::Io { .. }), "{err:?}");
    }
}
