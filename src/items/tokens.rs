//! A small jq tokenizer, just precise enough to rewrite Prodigy-style expressions and to split
//! `sort_by` keys: it knows string literals (with `\(...)` interpolation), comments, brackets,
//! identifiers, variables, field accesses and operators. It never fails: anything it does not
//! understand becomes a one-character [`Kind::Op`] token and is left for jaq to report.

/// What a token is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A run of whitespace.
    Space,
    /// `# ...` up to the end of the line.
    Comment,
    /// A string literal including its quotes (possibly unterminated).
    Str,
    /// A number literal.
    Num,
    /// An identifier or keyword, including `a::b` module paths.
    Ident,
    /// A variable such as `$item`.
    Var,
    /// A field access such as `.name`.
    Field,
    /// A lone `.`.
    Dot,
    /// `..`.
    DotDot,
    /// `(`, `[` or `{`.
    Open,
    /// `)`, `]` or `}`.
    Close,
    /// Any operator or other punctuation.
    Op,
}

/// One token: its kind and its exact source text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token<'a> {
    /// What the token is.
    pub kind: Kind,
    /// The exact source text of the token.
    pub text: &'a str,
}

const OPERATORS: [&str; 16] = [
    "?//", "//=", "&&", "||", "==", "!=", "<=", ">=", "//", "|=", "+=", "-=", "*=", "/=", "%=", "?",
];

/// Split `src` into tokens; concatenating their texts gives back `src` exactly.
pub fn tokenize(src: &str) -> Vec<Token<'_>> {
    let bytes = src.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let (kind, end) = next_token(src, i);
        tokens.push(Token {
            kind,
            text: &src[i..end],
        });
        i = end;
    }
    tokens
}

fn next_token(src: &str, i: usize) -> (Kind, usize) {
    let bytes = src.as_bytes();
    let c = bytes[i];
    match c {
        b' ' | b'\t' | b'\r' | b'\n' => (
            Kind::Space,
            skip_while(bytes, i, |b| b.is_ascii_whitespace()),
        ),
        b'#' => (Kind::Comment, skip_while(bytes, i, |b| b != b'\n')),
        b'"' => (Kind::Str, scan_string(src, i)),
        b'0'..=b'9' => (Kind::Num, scan_number(bytes, i)),
        b'$' if bytes.get(i + 1).is_some_and(|b| is_ident_start(*b)) => {
            (Kind::Var, scan_ident(bytes, i + 1))
        }
        b'.' if bytes.get(i + 1) == Some(&b'.') => (Kind::DotDot, i + 2),
        b'.' if bytes.get(i + 1).is_some_and(|b| is_ident_start(*b)) => {
            (Kind::Field, skip_while(bytes, i + 1, is_ident_char))
        }
        b'.' => (Kind::Dot, i + 1),
        b'(' | b'[' | b'{' => (Kind::Open, i + 1),
        b')' | b']' | b'}' => (Kind::Close, i + 1),
        _ if is_ident_start(c) => (Kind::Ident, scan_ident(bytes, i)),
        _ => {
            let rest = &src[i..];
            let len = OPERATORS
                .iter()
                .find(|op| rest.starts_with(**op))
                .map_or_else(
                    || rest.chars().next().map_or(1, char::len_utf8),
                    |op| op.len(),
                );
            (Kind::Op, i + len)
        }
    }
}

fn skip_while(bytes: &[u8], mut i: usize, pred: impl Fn(u8) -> bool) -> usize {
    while i < bytes.len() && pred(bytes[i]) {
        i += 1;
    }
    i
}

fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

fn is_ident_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// An identifier, with `::`-separated module path segments.
fn scan_ident(bytes: &[u8], i: usize) -> usize {
    let mut end = skip_while(bytes, i, is_ident_char);
    while bytes.get(end) == Some(&b':')
        && bytes.get(end + 1) == Some(&b':')
        && bytes.get(end + 2).is_some_and(|b| is_ident_start(*b))
    {
        end = skip_while(bytes, end + 2, is_ident_char);
    }
    end
}

fn scan_number(bytes: &[u8], i: usize) -> usize {
    let mut end = skip_while(bytes, i, |b| b.is_ascii_digit() || b == b'.');
    if matches!(bytes.get(end), Some(b'e' | b'E')) {
        end += 1;
        if matches!(bytes.get(end), Some(b'+' | b'-')) {
            end += 1;
        }
        end = skip_while(bytes, end, |b| b.is_ascii_digit());
    }
    end
}

/// End (exclusive) of the string literal whose opening quote is at `start`; the end of the
/// input when it is unterminated.
pub fn scan_string(src: &str, start: usize) -> usize {
    let bytes = src.as_bytes();
    let mut i = start + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => return i + 1,
            b'\\' if bytes.get(i + 1) == Some(&b'(') => {
                i = scan_interpolation(src, i + 2);
                if i < bytes.len() {
                    i += 1; // the closing ')'
                }
            }
            b'\\' => i += 2,
            _ => i += 1,
        }
    }
    bytes.len()
}

/// Index of the `)` closing an interpolation whose code starts at `start`; the end of the
/// input when it is unterminated.
pub fn scan_interpolation(src: &str, start: usize) -> usize {
    let bytes = src.as_bytes();
    let mut depth = 0usize;
    let mut i = start;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                i = scan_string(src, i);
                continue;
            }
            b'(' => depth += 1,
            b')' if depth == 0 => return i,
            b')' => depth -= 1,
            _ => {}
        }
        i += 1;
    }
    bytes.len()
}

/// Index of the token closing the bracket opened at `open`, if it is closed before `end`.
pub fn matching_close(tokens: &[Token<'_>], open: usize, end: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (j, tok) in tokens.iter().enumerate().take(end).skip(open) {
        match tok.kind {
            Kind::Open => depth += 1,
            Kind::Close => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return Some(j);
                }
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(src: &str) -> Vec<(Kind, &str)> {
        tokenize(src)
            .into_iter()
            .map(|t| (t.kind, t.text))
            .collect()
    }

    #[test]
    fn round_trips_the_source() {
        let src = r#"item.a[0] != "x\"y" && !$v.b // 1.5e3 | a::b(.c; ..) # c"#;
        let joined: String = tokenize(src).iter().map(|t| t.text).collect();
        assert_eq!(joined, src);
    }

    #[test]
    fn classifies_tokens() {
        assert_eq!(
            kinds(r#"item.a!=$x&&"s""#),
            vec![
                (Kind::Ident, "item"),
                (Kind::Field, ".a"),
                (Kind::Op, "!="),
                (Kind::Var, "$x"),
                (Kind::Op, "&&"),
                (Kind::Str, r#""s""#),
            ]
        );
        assert_eq!(
            kinds(". .. .[1]"),
            vec![
                (Kind::Dot, "."),
                (Kind::Space, " "),
                (Kind::DotDot, ".."),
                (Kind::Space, " "),
                (Kind::Dot, "."),
                (Kind::Open, "["),
                (Kind::Num, "1"),
                (Kind::Close, "]"),
            ]
        );
    }

    #[test]
    fn strings_with_interpolation_and_escapes_are_one_token() {
        let src = r#""a \"q\" \(item.x + "y)") z" | !x"#;
        let toks = tokenize(src);
        assert_eq!(toks[0].kind, Kind::Str);
        assert_eq!(toks[0].text, r#""a \"q\" \(item.x + "y)") z""#);
    }

    #[test]
    fn unterminated_string_runs_to_the_end() {
        let toks = tokenize(r#"."a && b"#);
        assert_eq!(toks.last().map(|t| t.kind), Some(Kind::Str));
    }

    #[test]
    fn comments_and_non_ascii() {
        assert_eq!(
            kinds("x # é && y\n!"),
            vec![
                (Kind::Ident, "x"),
                (Kind::Space, " "),
                (Kind::Comment, "# é && y"),
                (Kind::Space, "\n"),
                (Kind::Op, "!"),
            ]
        );
        assert_eq!(kinds("é"), vec![(Kind::Op, "é")]);
    }

    #[test]
    fn matching_close_handles_nesting() {
        let toks = tokenize("(a[(b)]) c");
        assert_eq!(matching_close(&toks, 0, toks.len()), Some(7));
        let open = tokenize("(a");
        assert_eq!(matching_close(&open, 0, open.len()), None);
    }
}
