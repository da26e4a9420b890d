//! A selection expression (filter, sort key, `distinct`): Prodigy's dialect when it reads as
//! one, else jq. An expression valid in both (`item.a > 1 && !item.b`) means the same in both;
//! a bare name (`severity`) is a field of the item in the dialect, where jq would call a
//! function of that name.

use jaq_json::Val;
use serde_json::Value;

use super::convert::to_jaq;
use super::dialect::{Node, SyntaxError, parse_filter, parse_value};
use super::dialect_eval::eval;
use super::dialect_lex::{Tok, lex};
use super::error::ItemsError;
use super::jq::JqExpr;

/// A compiled expression.
#[derive(Debug)]
pub enum ItemExpr {
    Dialect(Node),
    Jq(JqExpr),
}

impl ItemExpr {
    /// A filter (`key` names the workflow key in errors).
    pub fn filter(key: &'static str, src: &str) -> Result<Self, ItemsError> {
        Self::compile(key, src, parse_filter)
    }

    /// A sort key or `distinct` value.
    pub fn value(key: &'static str, src: &str) -> Result<Self, ItemsError> {
        Self::compile(key, src, parse_value)
    }

    fn compile(
        key: &'static str,
        src: &str,
        dialect: fn(&str) -> Result<Node, SyntaxError>,
    ) -> Result<Self, ItemsError> {
        let dialect_err = match dialect(src) {
            Ok(node) => return Ok(ItemExpr::Dialect(node)),
            Err(e) => e,
        };
        match JqExpr::compile(key, src) {
            Ok(jq) => Ok(ItemExpr::Jq(jq)),
            Err(_) if looks_like_dialect(src) => Err(ItemsError::Syntax {
                key,
                expr: src.to_string(),
                token: src[dialect_err.start.min(src.len())..dialect_err.end.min(src.len())]
                    .to_string(),
                offset: dialect_err.start,
                message: dialect_err.message,
            }),
            Err(jq_err) => Err(jq_err),
        }
    }

    /// The first output for an item (`value`, and `val`, the same item for jq): `None` when
    /// there is none, `Some(Err(message))` when the expression fails.
    pub fn first(&self, value: &Value, val: &Val) -> Option<Result<Val, String>> {
        match self {
            ItemExpr::Dialect(node) => Some(Ok(to_jaq(&eval(node, value)))),
            ItemExpr::Jq(jq) => jq.first(val),
        }
    }
}

/// Whether an expression that is neither valid dialect nor valid jq was meant as the dialect
/// (so that its error is the dialect's): single-quoted strings, `AND`/`OR`/`NOT`, `in [`,
/// a lone `=`, infix `contains`/`starts_with`/`ends_with`/`matches`, or Prodigy's functions.
fn looks_like_dialect(src: &str) -> bool {
    let Ok(toks) = lex(src) else {
        return src.contains('\'') && !src.contains('|');
    };
    toks.iter().enumerate().any(|(i, t)| {
        let next = toks.get(i + 1).map(|n| &n.tok);
        match &t.tok {
            Tok::Str(_) => src.as_bytes()[t.start] == b'\'',
            Tok::Op("=") => true,
            Tok::Ident(w) => {
                matches!(w.as_str(), "AND" | "OR" | "NOT")
                    || (w.eq_ignore_ascii_case("in") && next == Some(&Tok::LBracket))
                    || (matches!(
                        w.to_ascii_lowercase().as_str(),
                        "contains" | "starts_with" | "ends_with" | "matches"
                    ) && next != Some(&Tok::LParen))
                    || w.starts_with("is_")
                    || w == "starts_with"
                    || w == "ends_with"
            }
            _ => false,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(src: &str) -> &'static str {
        match ItemExpr::filter("filter", src) {
            Ok(ItemExpr::Dialect(_)) => "dialect",
            Ok(ItemExpr::Jq(_)) => "jq",
            Err(ItemsError::Syntax { .. }) => "dialect error",
            Err(_) => "jq error",
        }
    }

    #[test]
    fn chooses_the_dialect_or_jq() {
        assert_eq!(kind("severity == 'high'"), "dialect");
        assert_eq!(kind("item.a > 1 && !item.b"), "dialect");
        assert_eq!(kind(".a | length > 1"), "jq");
        assert_eq!(kind("select(.a > 1) | true"), "jq");
        assert_eq!(kind("severity == 'high' AND"), "dialect error");
        assert_eq!(kind("item.a =="), "jq error");
    }

    #[test]
    fn dialect_errors_name_the_token() {
        let e = ItemExpr::filter("filter", "severity in ['a', b] AND x").unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("`b`") && msg.contains("character 19"), "{msg}");
    }
}
