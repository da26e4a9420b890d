//! Parse raw items input in its [`InputFormat`]: one JSON document, JSON lines, plain text
//! lines, or (`auto`) whichever of these the text is.

use serde_json::Value;

use super::error::{ItemsError, JsonHint};
use super::format::InputFormat;

/// The parsed items input.
#[cfg(test)]
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    /// The whole input is one JSON value.
    Document(Value),
    /// JSON lines or plain text lines (as strings), one value per non-empty line.
    Lines(Vec<Value>),
}

/// The parsed items input with its lines not parsed yet: they are parsed one at a time as
/// they are iterated ([`Lazy::values`]), so a million lines never exist as values at once.
#[derive(Debug)]
pub enum Lazy<'a> {
    /// The whole input is one JSON value.
    Document(Value),
    /// One JSON value per non-blank line; a line that is not JSON is an error when reached.
    JsonLines {
        /// The text.
        text: &'a str,
        /// Where it came from, for error messages.
        origin: &'a str,
        /// What the error messages suggest.
        hint: JsonHint,
    },
    /// One string per non-blank line.
    PlainLines(&'a str),
}

/// Parse `bytes` as `format`. A UTF-8 BOM is ignored; blank input gives no items in every
/// format. `auto` tries, in order: (1) the whole input is one JSON value; (2) JSON lines;
/// (3) plain lines, except that text whose first non-blank character is `[` or `{` is
/// never plain lines: it is JSON (or JSON lines) or an error. `origin` names the source in
/// error messages, which give the line and column.
#[cfg(test)]
pub fn parse_input(bytes: &[u8], format: InputFormat, origin: &str) -> Result<Parsed, ItemsError> {
    Ok(match parse_lazily(bytes, format, origin)? {
        Lazy::Document(doc) => Parsed::Document(doc),
        lines => Parsed::Lines(lines.values().collect::<Result<_, _>>()?),
    })
}

/// [`parse_input`] with the lines left to parse while they are iterated. Every syntax error
/// of a JSON document is found here; a JSON line's, when the iteration reaches it.
pub fn parse_lazily<'a>(
    bytes: &'a [u8],
    format: InputFormat,
    origin: &'a str,
) -> Result<Lazy<'a>, ItemsError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Lazy::PlainLines(""));
    }
    match format {
        InputFormat::Json => serde_json::from_slice(bytes)
            .map(Lazy::Document)
            .map_err(|e| invalid_document(bytes, &e, origin, JsonHint::Json)),
        InputFormat::Jsonl => Ok(Lazy::JsonLines {
            text: text(bytes, origin)?,
            origin,
            hint: JsonHint::Jsonl,
        }),
        InputFormat::Lines => Ok(Lazy::PlainLines(text(bytes, origin)?)),
        InputFormat::Auto => sniff(bytes, origin),
    }
}

fn sniff<'a>(bytes: &'a [u8], origin: &'a str) -> Result<Lazy<'a>, ItemsError> {
    let doc_err = match serde_json::from_slice::<Value>(bytes) {
        Ok(doc) => return Ok(Lazy::Document(doc)),
        Err(e) => e,
    };
    let text = text(bytes, origin)?;
    let json_lines = Lazy::JsonLines {
        text,
        origin,
        hint: JsonHint::Auto,
    };
    if text.trim_start().starts_with(['[', '{']) {
        // JSON lines when the first line is JSON on its own, else one (broken) document.
        let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
        if serde_json::from_str::<Value>(first).is_ok() {
            return Ok(json_lines);
        }
        return Err(invalid_document(bytes, &doc_err, origin, JsonHint::Auto));
    }
    // JSON lines only when every line is JSON (checked without keeping any value).
    let all_json = non_blank(text)
        .all(|(_, line)| serde_json::from_str::<serde::de::IgnoredAny>(line).is_ok());
    Ok(if all_json {
        json_lines
    } else {
        Lazy::PlainLines(text)
    })
}

impl<'a> Lazy<'a> {
    /// The values in input order: a document's single value, or one per non-blank line.
    pub fn values(self) -> Box<dyn Iterator<Item = Result<Value, ItemsError>> + 'a> {
        match self {
            Lazy::Document(doc) => Box::new(std::iter::once(Ok(doc))),
            Lazy::JsonLines { text, origin, hint } => {
                Box::new(non_blank(text).map(move |(n, line)| {
                    serde_json::from_str::<Value>(line).map_err(|e| {
                        invalid(
                            origin,
                            n + 1,
                            char_column(line.as_bytes(), e.column()),
                            &e,
                            hint,
                        )
                    })
                }))
            }
            Lazy::PlainLines(text) => Box::new(
                text.split('\n')
                    .map(|line| line.strip_suffix('\r').unwrap_or(line))
                    .filter(|line| !line.trim().is_empty())
                    .map(|line| Ok(Value::String(line.to_string()))),
            ),
        }
    }
}

/// The non-blank lines with their 0-based line numbers.
fn non_blank(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.split('\n')
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
}

/// The input as UTF-8 text, or an error naming the line and column of the first bad byte.
fn text<'a>(bytes: &'a [u8], origin: &str) -> Result<&'a str, ItemsError> {
    std::str::from_utf8(bytes).map_err(|e| {
        let offset = e.valid_up_to();
        let before = &bytes[..offset];
        let line_start = before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        ItemsError::NotUtf8 {
            origin: origin.to_string(),
            line: before.iter().filter(|&&b| b == b'\n').count() + 1,
            column: char_count(&before[line_start..]) + 1,
            offset,
        }
    })
}

/// The error for a whole document that does not parse, at serde's line and column.
fn invalid_document(
    bytes: &[u8],
    e: &serde_json::Error,
    origin: &str,
    hint: JsonHint,
) -> ItemsError {
    let line = e.line().max(1);
    let text_line = bytes.split(|&b| b == b'\n').nth(line - 1).unwrap_or(b"");
    invalid(origin, line, char_column(text_line, e.column()), e, hint)
}

fn invalid(
    origin: &str,
    line: usize,
    column: usize,
    e: &serde_json::Error,
    hint: JsonHint,
) -> ItemsError {
    // serde's message ends with its own " at line L column C"; the location is ours.
    let full = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    let message = full.strip_suffix(&suffix).unwrap_or(&full).to_string();
    ItemsError::InvalidJson {
        origin: origin.to_string(),
        line,
        column,
        message,
        hint,
    }
}

/// serde counts columns in bytes; people (and editors) count characters. 1-based.
fn char_column(line: &[u8], byte_column: usize) -> usize {
    char_count(&line[..byte_column.min(line.len())]).max(1)
}

fn char_count(bytes: &[u8]) -> usize {
    String::from_utf8_lossy(bytes).chars().count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse_as(format: InputFormat, s: &str) -> Parsed {
        parse_input(s.as_bytes(), format, "test").expect("parses")
    }

    fn parse(s: &str) -> Parsed {
        parse_as(InputFormat::Auto, s)
    }

    /// The error's (line, column, message) for `s` read as `format`.
    fn error(format: InputFormat, s: &str) -> (usize, usize, String) {
        match parse_input(s.as_bytes(), format, "items.json").expect_err("fails") {
            e @ ItemsError::InvalidJson { line, column, .. } => (line, column, e.to_string()),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn whole_document() {
        assert_eq!(parse(" [1, 2] \n"), Parsed::Document(json!([1, 2])));
        assert_eq!(parse(r#"{"a": 1}"#), Parsed::Document(json!({"a": 1})));
        assert_eq!(parse("123"), Parsed::Document(json!(123)));
        assert_eq!(parse("{\n\"a\":\n1}\n"), Parsed::Document(json!({"a": 1})));
    }

    #[test]
    fn json_lines_with_blank_lines_and_crlf() {
        assert_eq!(
            parse("{\"a\":1}\r\n\n  \n[2]\r\n\"s\"\n"),
            Parsed::Lines(vec![json!({"a": 1}), json!([2]), json!("s")])
        );
        assert_eq!(parse("1\n2\n"), Parsed::Lines(vec![json!(1), json!(2)]));
    }

    #[test]
    fn plain_lines_when_a_line_is_not_json_and_the_text_does_not_start_like_json() {
        assert_eq!(
            parse("123\nfoo.txt\r\n\n  bar baz \n"),
            Parsed::Lines(vec![json!("123"), json!("foo.txt"), json!("  bar baz ")])
        );
        assert_eq!(parse("just text"), Parsed::Lines(vec![json!("just text")]));
        assert_eq!(
            parse("alpha\n[beta]\n{gamma"),
            Parsed::Lines(vec![json!("alpha"), json!("[beta]"), json!("{gamma")])
        );
    }

    #[test]
    fn text_starting_like_json_is_never_plain_lines() {
        // The issue's file: a document broken on line 2 (column 9 is the `}`).
        let (line, column, msg) = error(InputFormat::Auto, "[{\"id\": \"a\"},\n {\"id\": }]\n");
        assert_eq!((line, column), (2, 9), "{msg}");
        assert!(
            msg.starts_with("items.json:2:9: invalid JSON: expected value;"),
            "{msg}"
        );
        assert!(msg.contains("map.input_format: lines"), "{msg}");
        // JSON lines with one bad line: that line, column within it.
        let (line, column, _) = error(
            InputFormat::Auto,
            "{\"id\": 1}\n\n{\"id\": 2\n{\"id\": 3}\n",
        );
        assert_eq!((line, column), (3, 8));
        // A truncated document, plain text in brackets, and leading blank lines.
        assert_eq!(error(InputFormat::Auto, "[{\"id\": 1}, {\"id\"").0, 1);
        assert_eq!(error(InputFormat::Auto, "[draft] notes\nmore").0, 1);
        assert_eq!(error(InputFormat::Auto, "\n  {broken").0, 2);
    }

    #[test]
    fn json_format_is_one_document() {
        assert_eq!(
            parse_as(InputFormat::Json, "[1,\n2]"),
            Parsed::Document(json!([1, 2]))
        );
        assert_eq!(
            parse_as(InputFormat::Json, "\"x\""),
            Parsed::Document(json!("x"))
        );
        // JSON lines are not one document: the second value is trailing characters.
        let (line, column, msg) = error(InputFormat::Json, "{\"a\":1}\n{\"a\":2}\n");
        assert_eq!((line, column), (2, 1), "{msg}");
        assert!(
            msg.contains("trailing characters") && msg.contains("jsonl"),
            "{msg}"
        );
        // Plain text is an error too, whatever it starts with.
        assert_eq!(error(InputFormat::Json, "a.txt\nb.txt").0, 1);
    }

    #[test]
    fn jsonl_format_is_one_value_per_line() {
        assert_eq!(
            parse_as(InputFormat::Jsonl, "[1, 2]\n"),
            Parsed::Lines(vec![json!([1, 2])])
        );
        assert_eq!(
            parse_as(InputFormat::Jsonl, "{\"a\":1}\r\n\n\"s\""),
            Parsed::Lines(vec![json!({"a": 1}), json!("s")])
        );
        // A pretty-printed document is not JSON lines.
        assert_eq!(error(InputFormat::Jsonl, "[\n1\n]").0, 1);
        let (line, column, msg) = error(InputFormat::Jsonl, "1\n2\n  x\n");
        assert_eq!((line, column), (3, 3), "{msg}");
    }

    #[test]
    fn lines_format_never_parses() {
        assert_eq!(
            parse_as(InputFormat::Lines, "{\"a\": 1}\n[x\r\n\n7\n"),
            Parsed::Lines(vec![json!("{\"a\": 1}"), json!("[x"), json!("7")])
        );
    }

    #[test]
    fn columns_count_characters_not_bytes() {
        let (line, column, _) = error(InputFormat::Json, "[\"é\", ]");
        assert_eq!((line, column), (1, 7));
        let (line, column, _) = error(InputFormat::Jsonl, "\"é\" x");
        assert_eq!((line, column), (1, 5));
    }

    #[test]
    fn empty_input_is_no_items_in_every_format() {
        for f in [
            InputFormat::Auto,
            InputFormat::Json,
            InputFormat::Jsonl,
            InputFormat::Lines,
        ] {
            assert_eq!(parse_as(f, ""), Parsed::Lines(vec![]));
            assert_eq!(parse_as(f, " \n\r\n"), Parsed::Lines(vec![]));
        }
    }

    #[test]
    fn byte_order_mark_is_ignored() {
        assert_eq!(
            parse_input(b"\xEF\xBB\xBF[1]", InputFormat::Json, "t").expect("parses"),
            Parsed::Document(json!([1]))
        );
    }

    #[test]
    fn invalid_utf8_is_an_error_naming_the_origin_and_position() {
        let err =
            parse_input(b"ok\nab\xFF\xFE\n", InputFormat::Auto, "items.txt").expect_err("fails");
        assert!(
            matches!(
                err,
                ItemsError::NotUtf8 {
                    line: 2,
                    column: 3,
                    offset: 5,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().starts_with("items.txt:2:3: "), "{err}");
    }
}
