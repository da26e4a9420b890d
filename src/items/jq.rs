//! Compile and run one jq expression (after the Prodigy rewrite) with jaq.
//!
//! The item is the input `.` and is also bound to the global variable `$item`.

use jaq_core::compile::{Filter, Undefined};
use jaq_core::load::{Arena, File, Loader, lex, parse};
use jaq_core::{Compiler, Ctx, Native, Vars, data, load, unwrap_valr};
use jaq_json::Val;

use super::error::ItemsError;
use super::prodigy_syntax;

type Data = data::JustLut<Val>;

/// Longest jq runtime error text kept in messages (errors embed the offending value).
const MAX_ERROR_LEN: usize = 300;

/// A compiled jq expression.
pub struct JqExpr {
    filter: Filter<Native<Data>>,
}

impl std::fmt::Debug for JqExpr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JqExpr")
    }
}

impl JqExpr {
    /// Compile `expr` (Prodigy syntax accepted); `key` names the workflow key in errors.
    pub fn compile(key: &'static str, expr: &str) -> Result<Self, ItemsError> {
        let fail = |message: String| ItemsError::Expression {
            key,
            expr: expr.to_string(),
            message,
        };
        if expr.trim().is_empty() {
            return Err(fail(
                "the expression is empty; write a jq expression such as `item.score > 5`"
                    .to_string(),
            ));
        }
        let code = prodigy_syntax::to_jq(expr);
        let rewritten = if code == expr {
            String::new()
        } else {
            format!(" (as jq: `{code}`)")
        };
        let defs = jaq_core::defs()
            .chain(jaq_std::defs())
            .chain(jaq_json::defs());
        let funs = jaq_core::funs()
            .chain(jaq_std::funs())
            .chain(jaq_json::funs());
        let loader = Loader::new(defs);
        let arena = Arena::default();
        let modules = loader
            .load(&arena, File { code: &code, path: () })
            .map_err(|errs| {
                let parts: Vec<String> = errs.iter().map(|(_, e)| describe_load(e)).collect();
                fail(format!(
                    "syntax error{rewritten}: {}; fix the jq syntax (the item is `.`, `item` or `$item`)",
                    parts.join("; ")
                ))
            })?;
        let filter = Compiler::default()
            .with_funs(funs)
            .with_global_vars(["$item"])
            .compile(modules)
            .map_err(|errs| {
                let parts: Vec<String> = errs
                    .iter()
                    .flat_map(|(_, es)| es.iter().map(|(name, u)| describe_undefined(name, u)))
                    .collect();
                fail(format!(
                    "{}{rewritten}; use jq builtins only (the item is `.`, `item` or `$item`)",
                    parts.join("; ")
                ))
            })?;
        Ok(Self { filter })
    }

    /// The first output of the expression for `input`: `None` when it produces nothing,
    /// `Some(Err(message))` when it fails.
    pub fn first(&self, input: &Val) -> Option<Result<Val, String>> {
        let ctx = Ctx::<Data>::new(&self.filter.lut, Vars::new([input.clone()]));
        let mut outputs = self.filter.id.run((ctx, input.clone())).map(unwrap_valr);
        outputs
            .next()
            .map(|r| r.map_err(|e| truncate(e.to_string())))
    }
}

fn truncate(mut s: String) -> String {
    if s.len() > MAX_ERROR_LEN {
        let mut cut = MAX_ERROR_LEN;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push_str("...");
    }
    s
}

fn describe_load(e: &load::Error<&str>) -> String {
    match e {
        load::Error::Io(errs) => errs
            .iter()
            .map(|(path, msg)| format!("cannot load module {path}: {msg}"))
            .collect::<Vec<_>>()
            .join("; "),
        load::Error::Lex(errs) => errs
            .iter()
            .map(|(expect, at)| format!("expected {} {}", describe_lex(expect), near(at)))
            .collect::<Vec<_>>()
            .join("; "),
        load::Error::Parse(errs) => errs
            .iter()
            .map(|(expect, found)| format!("expected {} {}", describe_parse(expect), near(found)))
            .collect::<Vec<_>>()
            .join("; "),
    }
}

fn describe_lex(e: &lex::Expect<&str>) -> String {
    match e {
        lex::Expect::Delim(open) => match *open {
            "(" => "a closing parenthesis `)`".to_string(),
            "[" => "a closing bracket `]`".to_string(),
            "{" => "a closing brace `}`".to_string(),
            "\"" => "a closing quote `\"`".to_string(),
            other => format!("a closing delimiter for `{other}`"),
        },
        other => other.as_str().to_string(),
    }
}

fn describe_parse(e: &parse::Expect<&str>) -> String {
    match e {
        parse::Expect::Just(s) => format!("`{s}`"),
        other => other.as_str().to_string(),
    }
}

fn near(at: &str) -> String {
    let snippet: String = at.chars().take(20).collect();
    if snippet.trim().is_empty() {
        "at the end of the expression".to_string()
    } else {
        format!("at `{snippet}`")
    }
}

fn describe_undefined(name: &str, u: &Undefined) -> String {
    match u {
        Undefined::Var => format!("undefined variable `{name}`"),
        Undefined::Filter(arity) => format!("undefined function `{name}/{arity}`"),
        Undefined::Mod => format!("undefined module `{name}`"),
        Undefined::Label => format!("undefined label `{name}`"),
        _ => format!("undefined name `{name}`"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::items::convert::{from_jaq, to_jaq};
    use serde_json::{Value, json};

    fn eval(expr: &str, input: Value) -> Option<Result<Value, String>> {
        let e = JqExpr::compile("filter", expr).expect("compiles");
        e.first(&to_jaq(&input)).map(|r| r.map(|v| from_jaq(&v)))
    }

    #[test]
    fn item_is_dot_item_and_dollar_item() {
        let v = json!({"a": 3});
        assert_eq!(eval(".a", v.clone()), Some(Ok(json!(3))));
        assert_eq!(eval("item.a", v.clone()), Some(Ok(json!(3))));
        assert_eq!(eval("$item.a", v), Some(Ok(json!(3))));
    }

    #[test]
    fn prodigy_operators_evaluate() {
        let v = json!({"score": 7, "kind": "png", "done": false, "tags": ["x"], "size": 9});
        assert_eq!(
            eval(r#"item.score >= 5 && item.kind == "png""#, v.clone()),
            Some(Ok(json!(true)))
        );
        assert_eq!(eval("!item.done", v.clone()), Some(Ok(json!(true))));
        assert_eq!(
            eval(r#"item.tags[0] == "y" || item.size < 3"#, v.clone()),
            Some(Ok(json!(false)))
        );
        assert_eq!(eval(r#"item.kind != "png""#, v), Some(Ok(json!(false))));
    }

    #[test]
    fn std_builtins_are_available() {
        assert_eq!(
            eval(r#".name | startswith("a")"#, json!({"name": "abc"})),
            Some(Ok(json!(true)))
        );
        assert_eq!(eval("length", json!([1, 2])), Some(Ok(json!(2))));
    }

    #[test]
    fn empty_output_and_runtime_errors() {
        assert_eq!(eval("empty", json!(1)), None);
        let err = eval(".a", json!("str"));
        assert!(
            matches!(err, Some(Err(ref m)) if m.contains("cannot index")),
            "{err:?}"
        );
    }

    #[test]
    fn syntax_errors_name_the_key_and_expression() {
        let err = JqExpr::compile("sort_by", "item.a ==").expect_err("fails");
        let msg = err.to_string();
        assert!(
            msg.contains("invalid sort_by expression `item.a ==`"),
            "{msg}"
        );
        assert!(msg.contains("syntax error"), "{msg}");
        assert!(msg.contains("as jq: `$item.a ==`"), "{msg}");
    }

    #[test]
    fn unbalanced_brackets_are_reported() {
        let msg = JqExpr::compile("filter", "(.a")
            .expect_err("fails")
            .to_string();
        assert!(msg.contains("invalid filter expression"), "{msg}");
        let msg = JqExpr::compile("filter", r#"."a"#)
            .expect_err("fails")
            .to_string();
        assert!(msg.contains("invalid filter expression"), "{msg}");
    }

    #[test]
    fn undefined_names_are_reported() {
        let msg = JqExpr::compile("filter", "nosuchfn(1)")
            .expect_err("fails")
            .to_string();
        assert!(msg.contains("undefined function `nosuchfn/1`"), "{msg}");
        let msg = JqExpr::compile("distinct", "$nope")
            .expect_err("fails")
            .to_string();
        assert!(msg.contains("undefined variable `$nope`"), "{msg}");
        assert!(msg.contains("invalid distinct expression"), "{msg}");
    }

    #[test]
    fn empty_expression_is_an_error() {
        let msg = JqExpr::compile("filter", "  ")
            .expect_err("fails")
            .to_string();
        assert!(msg.contains("empty"), "{msg}");
    }

    #[test]
    fn long_errors_are_truncated() {
        let long = "x".repeat(1000);
        let t = truncate(long);
        assert!(t.len() <= MAX_ERROR_LEN + 3);
        assert!(t.ends_with("..."));
    }
}
