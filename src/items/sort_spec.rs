//! Parse a `sort_by` specification: `item.priority DESC, item.name`, or Prodigy's
//! `priority DESC NULLS LAST, path ASC`.

use super::error::ItemsError;
use super::tokens::{Kind, tokenize};

/// One sort key: an expression, its direction and where nulls go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortKey {
    /// The expression (Prodigy's dialect or jq), without the direction words.
    pub expr: String,
    /// `DESC` was given.
    pub descending: bool,
    /// `NULLS FIRST` was given (default: nulls last, for both directions).
    pub nulls_first: bool,
}

/// Split `spec` at top-level commas (not inside brackets or strings) into keys, each an
/// expression optionally followed by `ASC`/`ASCENDING` or `DESC`/`DESCENDING`, then by
/// `NULLS FIRST` or `NULLS LAST` (any case).
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
        let (expr, nulls_first) = split_nulls(part.trim());
        let (expr, descending) = split_direction(expr);
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
            nulls_first,
        });
    }
    Ok(keys)
}

/// The key without its last word when that word is one of `words` (any case) and stands
/// apart from the expression; and which word it was.
fn strip_word<'a>(key: &'a str, words: &[&str]) -> Option<(&'a str, usize)> {
    let tokens = tokenize(key);
    let last = tokens.last().filter(|t| t.kind == Kind::Ident)?;
    let head = key[..key.len() - last.text.len()].trim_end();
    let separated = head.len() < key.len() - last.text.len() || head.is_empty();
    let which = words
        .iter()
        .position(|w| last.text.eq_ignore_ascii_case(w))?;
    separated.then_some((head, which))
}

/// Strip a trailing `NULLS FIRST` / `NULLS LAST`; true for `FIRST`.
fn split_nulls(key: &str) -> (&str, bool) {
    if let Some((head, which)) = strip_word(key, &["first", "last"])
        && let Some((head, _)) = strip_word(head, &["nulls"])
    {
        return (head, which == 0);
    }
    (key, false)
}

/// Strip a trailing `ASC`/`DESC` word (any case) from a key.
fn split_direction(key: &str) -> (&str, bool) {
    match strip_word(key, &["desc", "asc", "descending", "ascending"]) {
        // A lone `descending` is a field of that name; a lone `DESC` an empty key.
        Some((head, which)) if which < 2 || !head.is_empty() => (head, which % 2 == 0),
        _ => (key, false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(expr: &str, descending: bool) -> SortKey {
        SortKey {
            expr: expr.to_string(),
            descending,
            nulls_first: false,
        }
    }

    #[test]
    fn prodigy_nulls_and_long_words() {
        let keys =
            parse_sort_by("priority DESC NULLS LAST, path ASC, score descending nulls first")
                .expect("parses");
        assert_eq!(keys[0], key("priority", true));
        assert_eq!(keys[1], key("path", false));
        assert_eq!(
            keys[2],
            SortKey {
                expr: "score".into(),
                descending: true,
                nulls_first: true
            }
        );
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
