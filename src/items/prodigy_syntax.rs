//! Rewrite Prodigy-style expressions into plain jq.
//!
//! Prodigy workflows write filters such as `item.score >= 5 && !item.done`. jq has no `&&`,
//! `||`, prefix `!` nor an `item` name, so before compiling we rewrite (outside string literals
//! and comments):
//!
//! * `&&` -> `and`, `||` -> `or` (`!=` and `//` are untouched);
//! * `!operand` -> `(operand | not)`, where the operand is a primary (a path, variable,
//!   literal, call or bracketed group) with its postfix accesses, like in JavaScript;
//! * the bare identifier `item` -> `$item` (not `.item`, `$item`, `items`, `item(...)`,
//!   `def item` or an object key `item:`).
//!
//! Interpolations inside strings (`"\(item.name)"`) are rewritten too.

use super::tokens::{Kind, Token, matching_close, scan_interpolation, tokenize};

/// Rewrite a Prodigy-style expression into jq. Plain jq comes back unchanged, except that a
/// bare `item` names the current item.
pub fn to_jq(src: &str) -> String {
    let tokens = tokenize(src);
    emit(&tokens, 0, tokens.len())
}

fn emit(tokens: &[Token<'_>], start: usize, end: usize) -> String {
    let mut out = String::new();
    let mut i = start;
    while i < end {
        let tok = tokens[i];
        match (tok.kind, tok.text) {
            (Kind::Op, "&&") => out.push_str(" and "),
            (Kind::Op, "||") => out.push_str(" or "),
            (Kind::Op, "!") => {
                if let Some(operand_end) = operand_end(tokens, i + 1, end) {
                    out.push('(');
                    out.push_str(emit(tokens, i + 1, operand_end).trim());
                    out.push_str(" | not)");
                    i = operand_end;
                    continue;
                }
                out.push('!');
            }
            (Kind::Ident, "item") if is_item_reference(tokens, i) => out.push_str("$item"),
            (Kind::Str, text) => out.push_str(&rewrite_string(text)),
            (_, text) => out.push_str(text),
        }
        i += 1;
    }
    out
}

/// The index just past the operand of a prefix `!` that starts at `start`.
fn operand_end(tokens: &[Token<'_>], start: usize, end: usize) -> Option<usize> {
    let first = next_non_space(tokens, start, end)?;
    let tok = tokens[first];
    let mut j = match (tok.kind, tok.text) {
        (Kind::Op, "!" | "-") => return operand_end(tokens, first + 1, end),
        (Kind::Open, _) => matching_close(tokens, first, end)? + 1,
        (Kind::Ident, _) if tokens.get(first + 1).is_some_and(|t| t.text == "(") => {
            matching_close(tokens, first + 1, end)? + 1
        }
        (Kind::Dot, _) if first + 1 < end && tokens[first + 1].kind == Kind::Str => first + 2,
        (Kind::Str | Kind::Num | Kind::Var | Kind::Field | Kind::Dot | Kind::DotDot, _)
        | (Kind::Ident, _) => first + 1,
        _ => return None,
    };
    // Postfix accesses directly attached to the primary: `.x`, `[..]`, `."x"`, `.[..]`, `?`.
    while j < end {
        let tok = tokens[j];
        j = match (tok.kind, tok.text) {
            (Kind::Field, _) | (Kind::Op, "?") => j + 1,
            (Kind::Open, "[") => matching_close(tokens, j, end)? + 1,
            (Kind::Dot, _) => match tokens.get(j + 1) {
                Some(t) if t.kind == Kind::Str && j + 1 < end => j + 2,
                Some(t) if t.text == "[" && j + 1 < end => matching_close(tokens, j + 1, end)? + 1,
                _ => break,
            },
            _ => break,
        };
    }
    Some(j)
}

fn next_non_space(tokens: &[Token<'_>], start: usize, end: usize) -> Option<usize> {
    (start..end).find(|&j| !matches!(tokens[j].kind, Kind::Space | Kind::Comment))
}

fn prev_non_space<'a>(tokens: &[Token<'a>], before: usize) -> Option<Token<'a>> {
    tokens[..before]
        .iter()
        .rev()
        .find(|t| !matches!(t.kind, Kind::Space | Kind::Comment))
        .copied()
}

/// Whether the identifier `item` at `i` refers to the current item.
fn is_item_reference(tokens: &[Token<'_>], i: usize) -> bool {
    if tokens.get(i + 1).is_some_and(|t| t.text == "(") {
        return false; // a call of a user-defined `item` filter
    }
    if prev_non_space(tokens, i).is_some_and(|t| t.kind == Kind::Ident && t.text == "def") {
        return false;
    }
    let next = next_non_space(tokens, i + 1, tokens.len()).map(|j| tokens[j].text);
    next != Some(":") // `{item: ...}` object key
}

/// Rewrite the code inside `\(...)` interpolations of a string literal.
fn rewrite_string(text: &str) -> String {
    if !text.contains("\\(") {
        return text.to_string();
    }
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut i = 1; // skip the opening quote
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if bytes.get(i + 1) == Some(&b'(') => {
                let code_start = i + 2;
                let code_end = scan_interpolation(text, code_start);
                out.push_str(&text[copied..code_start]);
                out.push_str(&to_jq(&text[code_start..code_end]));
                copied = code_end;
                i = code_end + 1;
            }
            b'\\' => i += 2,
            _ => i += 1,
        }
    }
    out.push_str(&text[copied.min(text.len())..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Collapse runs of whitespace so tests do not depend on padding.
    fn norm(s: &str) -> String {
        s.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    fn rw(s: &str) -> String {
        norm(&to_jq(s))
    }

    #[test]
    fn logical_operators() {
        assert_eq!(
            rw(r#"item.score >= 5 && item.kind == "png""#),
            r#"$item.score >= 5 and $item.kind == "png""#
        );
        assert_eq!(
            rw(r#"item.tags[0] == "x" || item.size < 3"#),
            r#"$item.tags[0] == "x" or $item.size < 3"#
        );
        assert_eq!(rw("a&&b||c"), "a and b or c");
    }

    #[test]
    fn negation() {
        assert_eq!(rw("!item.done"), "($item.done | not)");
        assert_eq!(rw("!item.tags[0]"), "($item.tags[0] | not)");
        assert_eq!(rw("! .a.b?"), "(.a.b? | not)");
        assert_eq!(rw("!(item.a || item.b)"), "(($item.a or $item.b) | not)");
        assert_eq!(rw("!!item.x"), "(($item.x | not) | not)");
        assert_eq!(
            rw(r#"!contains("x") && .y"#),
            r#"(contains("x") | not) and .y"#
        );
        assert_eq!(rw(".a and !.b"), ".a and (.b | not)");
        assert_eq!(rw(r#"!."a b".c"#), r#"(."a b".c | not)"#);
        assert_eq!(rw("!.[0]"), "(.[0] | not)");
        assert_eq!(rw("!$x"), "($x | not)");
    }

    #[test]
    fn not_equal_and_alternative_stay() {
        assert_eq!(rw("item.a != 1"), "$item.a != 1");
        assert_eq!(rw(".a // .b"), ".a // .b");
    }

    #[test]
    fn dangling_negation_is_left_for_jaq() {
        assert_eq!(rw("!"), "!");
        assert_eq!(rw("!)"), "!)");
    }

    #[test]
    fn strings_and_comments_are_untouched() {
        assert_eq!(
            rw(r#"."a && !b || item" == "item""#),
            r#"."a && !b || item" == "item""#
        );
        assert_eq!(to_jq("1 # !item && x"), "1 # !item && x");
    }

    #[test]
    fn interpolations_are_rewritten() {
        assert_eq!(
            to_jq(r#""n=\(item.name) \("x")" == "y""#),
            r#""n=\($item.name) \("x")" == "y""#
        );
    }

    #[test]
    fn item_only_as_a_whole_identifier() {
        assert_eq!(rw("item"), "$item");
        assert_eq!(rw("$item.x"), "$item.x");
        assert_eq!(rw(".item"), ".item");
        assert_eq!(rw("items + myitem + item_x"), "items + myitem + item_x");
        assert_eq!(rw("def item: 1; item(1)"), "def item: 1; item(1)");
        assert_eq!(rw("{item: 1}"), "{item: 1}");
        assert_eq!(rw("[item, item.a]"), "[$item, $item.a]");
    }

    #[test]
    fn plain_jq_is_unchanged() {
        let src = r#"select(.a > 1) | .b[] | tostring"#;
        assert_eq!(to_jq(src), src);
    }
}
