//! POSIX `sh` quoting primitives.
//!
//! Each function turns arbitrary text (without NUL bytes) into shell source that, placed in the
//! given quoting context, makes `sh` see exactly the original bytes as literal text.

/// The quoting context a placeholder stands in, as seen by `sh`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Quoting {
    /// Unquoted word context (including inside `$(...)`, backquotes and comments).
    Bare,
    /// Inside an open `'...'`.
    SingleQuoted,
    /// Inside an open `"..."`.
    DoubleQuoted,
}

/// Characters that are never special to `sh` in an unquoted word (like Python's
/// `shlex.quote`, but without `=`, which can turn a leading word into an assignment).
fn is_safe_word(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_@%+:,./-".contains(&b))
}

/// Quote `s` as a complete bare word: `'...'`, with each `'` written as `'\''`.
/// The empty string becomes `''` so that it still forms an (empty) argument. A word made
/// only of safe characters (letters, digits, `_@%+:,./-`) is left as it is, so numbers work
/// in arithmetic (`$(( ${item.n} * 2 ))`) and commands read naturally in logs.
pub fn quote_bare(s: &str) -> String {
    if is_safe_word(s) {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    out.push_str(&quote_in_single(s));
    out.push('\'');
    out
}

/// Escape `s` for insertion inside an already open `'...'`: each `'` closes the quote, adds an
/// escaped quote and reopens it (`'\''`). Nothing else is special inside single quotes, but a
/// backslash before a newline is followed by `''` (close and reopen): bash removes `\`+newline
/// line continuations in here-document bodies even inside quotes within `$(...)`.
pub fn quote_in_single(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => out.push_str(r"'\''"),
            '\\' if chars.peek() == Some(&'\n') => out.push_str(r"\''"),
            _ => out.push(c),
        }
    }
    out
}

/// Escape `s` for insertion inside an already open `"..."`: a backslash goes before each of
/// `$`, `` ` ``, `"` and `\`, the only characters that keep a special meaning there.
pub fn quote_in_double(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '$' | '`' | '"' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Escape `s` for the given quoting context.
pub fn escape_for(q: Quoting, s: &str) -> String {
    match q {
        Quoting::Bare => quote_bare(s),
        Quoting::SingleQuoted => quote_in_single(s),
        Quoting::DoubleQuoted => quote_in_double(s),
    }
}

/// Protect already-quoted shell text placed inside an old-style `` `...` `` command
/// substitution: the shell first removes a backslash before `\`, `` ` `` and `$` there, so
/// each of those gets one more backslash.
pub fn escape_backquoted(s: &str) -> String {
    backslash_before(s, |c| matches!(c, '$' | '`' | '\\'))
}

/// `s` with a backslash before every character `special` accepts.
pub fn backslash_before(s: &str, special: impl Fn(char) -> bool) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if special(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_quoting() {
        assert_eq!(quote_bare(""), "''");
        assert_eq!(quote_bare("abc"), "abc", "safe words stay as they are");
        assert_eq!(quote_bare("-1.5e3"), "-1.5e3");
        assert_eq!(quote_bare("a=b"), "'a=b'", "could become an assignment");
        assert_eq!(quote_bare("a b"), "'a b'");
        assert_eq!(quote_bare("~"), "'~'");
        assert_eq!(quote_bare("it's"), r"'it'\''s'");
        assert_eq!(quote_bare("$(x) `y` \\"), "'$(x) `y` \\'");
    }

    #[test]
    fn single_quoting() {
        assert_eq!(quote_in_single(""), "");
        assert_eq!(quote_in_single("'"), r"'\''");
        assert_eq!(quote_in_single("a\"b$c"), "a\"b$c");
        assert_eq!(quote_in_single("a\\\nb\\"), "a\\''\nb\\");
    }

    #[test]
    fn double_quoting() {
        assert_eq!(quote_in_double(r#"a$b`c"d\e'f"#), r#"a\$b\`c\"d\\e'f"#);
        assert_eq!(quote_in_double("x\ny"), "x\ny");
    }

    #[test]
    fn escape_for_dispatches() {
        assert_eq!(escape_for(Quoting::Bare, "a'b"), r"'a'\''b'");
        assert_eq!(escape_for(Quoting::SingleQuoted, "a'b"), r"a'\''b");
        assert_eq!(escape_for(Quoting::DoubleQuoted, "a$b"), r"a\$b");
    }

    #[test]
    fn backquoted() {
        assert_eq!(escape_backquoted(r"'a\b`c$d'"), r"'a\\b\`c\$d'");
    }
}
