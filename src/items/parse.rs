//! Parse raw items input: one JSON document, else JSON lines, else plain text lines.

use serde_json::Value;

use super::error::ItemsError;

/// The parsed items input.
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    /// The whole input is one JSON value.
    Document(Value),
    /// JSON lines or plain text lines (as strings), one value per non-empty line.
    Lines(Vec<Value>),
}

/// Parse `bytes`, tried in order: (1) the whole input is one JSON value; (2) JSON lines:
/// every non-empty line is JSON (and there are at least two); (3) plain lines: every
/// non-empty line (without its trailing `\r`) is a string. Blank input gives no items.
/// `origin` names the source in error messages.
pub fn parse_input(bytes: &[u8], origin: &str) -> Result<Parsed, ItemsError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Parsed::Lines(Vec::new()));
    }
    let doc_err = match serde_json::from_slice::<Value>(bytes) {
        Ok(doc) => return Ok(Parsed::Document(doc)),
        Err(e) => e,
    };
    let text = std::str::from_utf8(bytes).map_err(|e| ItemsError::NotUtf8 {
        origin: origin.to_string(),
        offset: e.valid_up_to(),
    })?;
    if let Some(values) = json_lines(text) {
        return Ok(Parsed::Lines(values));
    }
    if let Some(e) = broken_json(text, &doc_err, origin) {
        return Err(e);
    }
    Ok(Parsed::Lines(plain_lines(text)))
}

/// Every non-blank line parsed as JSON, or `None` as soon as one line is not JSON or when
/// there are fewer than two lines.
fn json_lines(text: &str) -> Option<Vec<Value>> {
    let mut values = Vec::with_capacity(text.bytes().filter(|&b| b == b'\n').count() + 1);
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        values.push(serde_json::from_str::<Value>(line).ok()?);
    }
    values.shrink_to_fit();
    (values.len() >= 2).then_some(values)
}

/// Text that is JSON gone wrong, rather than plain lines: a document that opens like an array
/// or object and ends early (a truncated file), or JSON lines with one bad line.
fn broken_json(text: &str, doc_err: &serde_json::Error, origin: &str) -> Option<ItemsError> {
    let err = |line: usize, column: usize, message: String| ItemsError::InvalidJson {
        origin: origin.to_string(),
        line,
        column,
        message,
    };
    if text.trim_start().starts_with(['[', '{']) && doc_err.is_eof() {
        return Some(err(doc_err.line(), doc_err.column(), doc_err.to_string()));
    }
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let (_, first) = lines.next()?;
    let first = first.trim();
    if !(first.starts_with(['[', '{']) && serde_json::from_str::<Value>(first).is_ok()) {
        return None; // does not look like JSON lines
    }
    lines.find_map(|(n, l)| {
        serde_json::from_str::<Value>(l.trim()).err().map(|e| {
            err(
                n + 1,
                e.column(),
                format!("line {} is not JSON: {e}", n + 1),
            )
        })
    })
}

fn plain_lines(text: &str) -> Vec<Value> {
    text.split('\n')
        .map(|line| line.strip_suffix('\r').unwrap_or(line))
        .filter(|line| !line.trim().is_empty())
        .map(|line| Value::String(line.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(s: &str) -> Parsed {
        parse_input(s.as_bytes(), "test").expect("parses")
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
    fn plain_lines_when_any_line_is_not_json() {
        assert_eq!(
            parse("123\nfoo.txt\r\n\n  bar baz \n"),
            Parsed::Lines(vec![json!("123"), json!("foo.txt"), json!("  bar baz ")])
        );
        assert_eq!(parse("just text"), Parsed::Lines(vec![json!("just text")]));
        assert_eq!(parse("{broken"), Parsed::Lines(vec![json!("{broken")]));
    }

    #[test]
    fn broken_json_is_an_error_not_plain_lines() {
        for bad in [
            "[{\"id\": 1}, {\"id\"",
            "{\"id\": 1}\n{\"id\": 2\n{\"id\": 3}\n",
        ] {
            let e = parse_input(bad.as_bytes(), "items.json").unwrap_err();
            assert!(e.to_string().contains("invalid JSON"), "{e}");
        }
        assert_eq!(
            parse("[draft] notes\nmore"),
            Parsed::Lines(vec![json!("[draft] notes"), json!("more")])
        );
    }

    #[test]
    fn empty_input_is_no_items() {
        assert_eq!(parse(""), Parsed::Lines(vec![]));
        assert_eq!(parse(" \n\r\n"), Parsed::Lines(vec![]));
    }

    #[test]
    fn byte_order_mark_is_ignored() {
        assert_eq!(
            parse_input(b"\xEF\xBB\xBF[1]", "t").expect("parses"),
            Parsed::Document(json!([1]))
        );
    }

    #[test]
    fn invalid_utf8_is_an_error_naming_the_origin() {
        let err = parse_input(b"ok\n\xFF\xFE\n", "items.txt").expect_err("fails");
        assert!(
            matches!(err, ItemsError::NotUtf8 { offset: 3, .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("items.txt"));
    }
}
