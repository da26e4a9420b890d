//! Tokens of Prodigy's filter and sort dialect (`severity == 'high' AND score > 5`), each
//! with its byte span so that errors point at the right token.

/// What a token is.
#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    /// A number literal, e.g. `5`, `-2.5`.
    Num(f64),
    /// A string literal: `'raw text'` (no escapes, as Prodigy reads it) or `"json string"`.
    Str(String),
    /// A name: a field, a keyword (`AND`, `in`, `true`...), a function.
    Ident(String),
    /// `$name` (only `$item` means something).
    Var(String),
    Dot,
    LBracket,
    RBracket,
    LParen,
    RParen,
    Comma,
    /// `==`, `=`, `!=`, `<`, `<=`, `>`, `>=`, `&&`, `||`, `!`.
    Op(&'static str),
}

/// A token and where it is in the expression (byte offsets).
#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    pub tok: Tok,
    pub start: usize,
    pub end: usize,
}

/// A lexing error: what is wrong, at which byte offset.
#[derive(Debug, Clone, PartialEq)]
pub struct LexError {
    pub offset: usize,
    pub message: String,
}

const OPS: [&str; 10] = ["==", "!=", "<=", ">=", "&&", "||", "=", "<", ">", "!"];

/// The token of a one-character punctuation mark.
fn punct(c: u8) -> Tok {
    match c {
        b'.' => Tok::Dot,
        b'[' => Tok::LBracket,
        b']' => Tok::RBracket,
        b'(' => Tok::LParen,
        b')' => Tok::RParen,
        _ => Tok::Comma,
    }
}

/// Split `src` into tokens.
pub fn lex(src: &str) -> Result<Vec<Token>, LexError> {
    let b = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let start = i;
        let tok = match c {
            b' ' | b'\t' | b'\r' | b'\n' => {
                i += 1;
                continue;
            }
            b'\'' => {
                let close = src[i + 1..].find('\'').ok_or_else(|| LexError {
                    offset: start,
                    message: "this string has no closing `'`".into(),
                })?;
                i += close + 2;
                Tok::Str(src[start + 1..i - 1].to_string())
            }
            b'"' => {
                let end = json_string_end(b, i).ok_or_else(|| LexError {
                    offset: start,
                    message: "this string has no closing `\"`".into(),
                })?;
                let s: String = serde_json::from_str(&src[i..end]).map_err(|e| LexError {
                    offset: start,
                    message: format!("invalid string: {e}"),
                })?;
                i = end;
                Tok::Str(s)
            }
            b'0'..=b'9' => {
                i = number_end(b, i);
                Tok::Num(parse_num(&src[start..i], start)?)
            }
            b'-' if b.get(i + 1).is_some_and(u8::is_ascii_digit) && !ends_operand(&out) => {
                i = number_end(b, i + 1);
                Tok::Num(parse_num(&src[start..i], start)?)
            }
            b'$' if b.get(i + 1).is_some_and(|c| is_ident_start(*c)) => {
                i = ident_end(b, i + 1);
                Tok::Var(src[start + 1..i].to_string())
            }
            b'.' | b'[' | b']' | b'(' | b')' | b',' => {
                i += 1;
                punct(c)
            }
            _ if is_ident_start(c) => {
                i = ident_end(b, i);
                Tok::Ident(src[start..i].to_string())
            }
            _ => match OPS.iter().find(|op| src[i..].starts_with(**op)) {
                Some(op) => {
                    i += op.len();
                    Tok::Op(op)
                }
                None => {
                    let ch = src[i..].chars().next().unwrap_or('?');
                    return Err(LexError {
                        offset: start,
                        message: format!("unexpected character `{ch}`"),
                    });
                }
            },
        };
        out.push(Token { tok, start, end: i });
    }
    Ok(out)
}

/// After a value a `-` is subtraction (which the dialect does not have), not a sign.
fn ends_operand(out: &[Token]) -> bool {
    matches!(
        out.last().map(|t| &t.tok),
        Some(Tok::Num(_) | Tok::Str(_) | Tok::Ident(_) | Tok::RParen | Tok::RBracket)
    )
}

fn is_ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_'
}

fn ident_end(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
        i += 1;
    }
    i
}

fn number_end(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'.') {
        i += 1;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
    }
    i
}

fn parse_num(text: &str, offset: usize) -> Result<f64, LexError> {
    text.parse::<f64>().map_err(|_| LexError {
        offset,
        message: format!("`{text}` is not a number"),
    })
}

/// End (exclusive) of the JSON string starting at `start`, if it is closed.
fn json_string_end(b: &[u8], start: usize) -> Option<usize> {
    let mut i = start + 1;
    while i < b.len() {
        match b[i] {
            b'"' => return Some(i + 1),
            b'\\' => i += 2,
            _ => i += 1,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<Tok> {
        lex(s).expect("lexes").into_iter().map(|t| t.tok).collect()
    }

    #[test]
    fn operators_strings_and_numbers() {
        assert_eq!(
            toks("a.b[0] >= -2.5 && c != 'x y' || !d == \"q\\\"\""),
            vec![
                Tok::Ident("a".into()),
                Tok::Dot,
                Tok::Ident("b".into()),
                Tok::LBracket,
                Tok::Num(0.0),
                Tok::RBracket,
                Tok::Op(">="),
                Tok::Num(-2.5),
                Tok::Op("&&"),
                Tok::Ident("c".into()),
                Tok::Op("!="),
                Tok::Str("x y".into()),
                Tok::Op("||"),
                Tok::Op("!"),
                Tok::Ident("d".into()),
                Tok::Op("=="),
                Tok::Str("q\"".into()),
            ]
        );
    }

    #[test]
    fn single_quotes_are_raw() {
        assert_eq!(
            toks(r"p matches '\.rs$'"),
            vec![
                Tok::Ident("p".into()),
                Tok::Ident("matches".into()),
                Tok::Str(r"\.rs$".into()),
            ]
        );
    }

    #[test]
    fn spans_and_errors() {
        let t = lex("ab  == 1").expect("lexes");
        assert_eq!((t[1].start, t[1].end), (4, 6));
        assert_eq!(lex("a == 'x").unwrap_err().offset, 5);
        assert_eq!(lex("a | b").unwrap_err().offset, 2);
        assert_eq!(toks("$item"), vec![Tok::Var("item".into())]);
    }
}
