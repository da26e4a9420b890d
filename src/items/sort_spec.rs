//! Parse a `sort_by` specification: `item.priority DESC, item.name`.

use super::error::ItemsError;
use super::tokens::{Kind, tokenize};

/// One sort key: a jq expression and its direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortKey {
    /// The jq (or Prodigy-style) expression, without the direction word.
    pub expr: String,
    /// `DESC` was given.
    pub descending: bool,
}

/// Split `spec` at top-level commas (not inside brackets or strings) into keys, each an
/// expression optionally followed by `ASC` or `DESC` (any case).
pub fn parse_sort_by(spec: &str) -> Result<Vec<SortKey>, ItemsError> {
    let fail = |message: String| ItemsError::Expression {
        key: "sort_by",
        expr: spec.to_string(),
        message,
    };
    let mut parts: Vec<&str> = Vec::new();
    let mut depth = 0usize;
    let mut part_start = 0;
    let mut offset = 0;
    for tok in tokenize(spec) {
        match tok.kind {
            Kind::Open => depth += 1,
            Kind::Close => depth = depth.saturating_sub(1),
            Kind::Op if tok.text == "," && depth == 0 => {
                parts.push(&spec[part_start..offset]);
                part_start = offset + tok.text.len();
            }
            _ => {}
        }
        offset += tok.text.len();
    }
    parts.push(&spec[part_start..]);

    let mut keys = Vec::with_capacity(parts.len());
    for (n, part) in parts.iter().enumerate() {
        let (expr, descending) = split_direction(part.trim());
        if expr.is_empty() {
            return Err(fail(format!(
                "sort key #{} is empty; write comma-separated keys such as \
                 `item.priority DESC, item.name`",
                n + 1
            )));
        }
        keys.push(SortKey {
            expr: expr.to_string(),
            descending,
        });
    }
    Ok(keys)
}

/// Strip a trailing `ASC`/`DESC` word (any case) from a key.
fn split_direction(key: &str) -> (&str, bool) {
    let tokens = tokenize(key);
    if let Some(last) = tokens.last().filter(|t| t.kind == Kind::Ident) {
        let head = key[..key.len() - last.text.len()].trim_end();
        let separated = head.len() < key.len() - last.text.len() || head.is_empty();
        if separated && last.text.eq_ignore_ascii_case("desc") {
            return (head, true);
        }
        if separated && last.text.eq_ignore_ascii_case("asc") {
            return (head, false);
        }
    }
    (key, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(expr: &str, descending: bool) -> SortKey {
        SortKey {
            expr: expr.to_string(),
            descending,
        }
    }

    #[test]
    fn keys_and_directions() {
        assert_eq!(
            parse_sort_by("item.priority DESC, item.name").expect("parses"),
            vec![key("item.priority", true), key("item.name", false)]
        );
        assert_eq!(
            parse_sort_by(".a asc,.b desc , .c Desc").expect("parses"),
            vec![key(".a", false), key(".b", true), key(".c", true)]
        );
    }

    #[test]
    fn commas_inside_brackets_and_strings_do_not_split() {
        assert_eq!(
            parse_sort_by(r#"[.a, .b] DESC, (.c // "x, y")"#).expect("parses"),
            vec![key("[.a, .b]", true), key(r#"(.c // "x, y")"#, false)]
        );
    }

    #[test]
    fn direction_words_inside_names_are_not_directions() {
        assert_eq!(
            parse_sort_by("item.desc, descending").expect("parses"),
            vec![key("item.desc", false), key("descending", false)]
        );
    }

    #[test]
    fn empty_keys_are_errors() {
        for spec in ["", "a,,b", "a,", "DESC"] {
            let err = parse_sort_by(spec).expect_err(spec);
            let msg = err.to_string();
            assert!(msg.contains("invalid sort_by expression"), "{msg}");
            assert!(msg.contains("is empty"), "{msg}");
        }
    }
}
