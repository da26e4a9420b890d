//! Quoting-context scanner: tracks where a position in a shell command string stands, as POSIX
//! `sh` would parse it, so that placeholders can be escaped for their context.
//!
//! The scanner follows: bare words; `'...'` (no escapes); `"..."` (backslash escapes only
//! `$` `` ` `` `"` `\` and newline); backslash escapes in bare context; `$(...)`, `$((...))`
//! and `` `...` `` which open a nested bare context (also inside double quotes); `#` comments
//! at the start of a word; `$$`.
//!
//! Known limitations (documented, deliberately out of scope):
//! - Here-documents are not recognised: a placeholder in a here-doc body is quoted as a bare
//!   word (`'...'`), so the body receives the quotes literally (but nothing is executed).
//! - An unbalanced `)` inside `$(...)` (e.g. a `case` pattern `a)`) closes the substitution
//!   early in the scanner's view.
//! - Inside backquotes, `\${...}` is not recognised as a placeholder, and placeholders inside
//!   nested (escaped) backquotes are rejected by the parser.

use super::shell_quote::Quoting;

/// The context at one position of a command string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanContext {
    /// Quoting state of the innermost nesting level.
    pub quoting: Quoting,
    /// Inside a `#` comment (quoting is then [`Quoting::Bare`]).
    pub in_comment: bool,
    /// Inside (at least) one `` `...` `` command substitution.
    pub in_backquotes: bool,
    /// Inside an escaped, nested backquote (`` \`...\` `` within backquotes).
    pub nested_backquotes: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Bare,
    Single,
    Double,
    Comment,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Top,
    /// `$(` ... `)`, with the count of open parentheses (the `$(` included).
    Paren(u32),
    /// `` ` `` ... `` ` ``; `nested` while inside an escaped inner backquote; `in_double`
    /// when opened inside `"..."` (then `\"` also loses its backslash first).
    Backquote {
        nested: bool,
        in_double: bool,
    },
}

#[derive(Debug, Clone, Copy)]
struct Frame {
    kind: Kind,
    state: State,
    word_start: bool,
}

impl Frame {
    fn new(kind: Kind) -> Frame {
        Frame {
            kind,
            state: State::Bare,
            word_start: true,
        }
    }
}

/// Incremental scanner over the bytes of a command string.
#[derive(Debug, Clone)]
pub struct Scanner {
    frames: Vec<Frame>,
}

impl Default for Scanner {
    fn default() -> Self {
        Scanner::new()
    }
}

impl Scanner {
    pub fn new() -> Scanner {
        Scanner {
            frames: vec![Frame::new(Kind::Top)],
        }
    }

    fn top(&mut self) -> &mut Frame {
        // The Top frame is never popped.
        let n = self.frames.len();
        &mut self.frames[n - 1]
    }

    fn bq_index(&self) -> Option<usize> {
        self.frames
            .iter()
            .rposition(|f| matches!(f.kind, Kind::Backquote { .. }))
    }

    /// The context at the current position.
    pub fn context(&self) -> ScanContext {
        let top = self.frames[self.frames.len() - 1];
        let bq = self.bq_index();
        ScanContext {
            quoting: match top.state {
                State::Bare | State::Comment => Quoting::Bare,
                State::Single => Quoting::SingleQuoted,
                State::Double => Quoting::DoubleQuoted,
            },
            in_comment: top.state == State::Comment,
            in_backquotes: bq.is_some(),
            nested_backquotes: bq.is_some_and(|i| {
                matches!(self.frames[i].kind, Kind::Backquote { nested: true, .. })
            }),
        }
    }

    /// Record that a placeholder (a word part) was inserted at the current position.
    pub fn after_placeholder(&mut self) {
        self.top().word_start = false;
    }

    /// The character the inner shell sees at `i`: inside backquotes the outer level first
    /// turns `\\` into `\` and `\$` into `$` (and `\"` into `"` within double quotes).
    fn inner_char(&self, s: &[u8], i: usize) -> (u8, usize) {
        let Some(bq) = self.bq_index() else {
            return (s[i], 1);
        };
        let in_double = matches!(
            self.frames[bq].kind,
            Kind::Backquote {
                in_double: true,
                ..
            }
        );
        match (s[i], s.get(i + 1)) {
            (b'\\', Some(b'\\')) => (b'\\', 2),
            (b'\\', Some(b'$')) => (b'$', 2),
            (b'\\', Some(b'"')) if in_double => (b'"', 2),
            _ => (s[i], 1),
        }
    }

    /// Skip the inner character after an escaping backslash that ends at `j`.
    fn skip_escaped(&self, s: &[u8], j: usize) -> usize {
        if j < s.len() {
            j + self.inner_char(s, j).1
        } else {
            j
        }
    }

    /// Advance over the syntax unit starting at byte `i` (which must be `< s.len()`), and
    /// return the index of the next unit.
    pub fn step(&mut self, s: &[u8], i: usize) -> usize {
        if let Some(bq) = self.bq_index() {
            if s[i] == b'\\' && s.get(i + 1) == Some(&b'`') {
                if let Kind::Backquote { nested, .. } = &mut self.frames[bq].kind {
                    *nested = !*nested;
                }
                return i + 2;
            }
            if s[i] == b'`' {
                self.frames.truncate(bq);
                self.top().word_start = false;
                return i + 1;
            }
        }
        let (c, w) = self.inner_char(s, i);
        let next = s.get(i + w).copied();
        let state = self.top().state;
        if c == b'$' && next == Some(b'$') && state != State::Comment {
            // `$$` (the shell's PID) is one unit and never starts a placeholder.
            self.top().word_start = false;
            return i + w + 1;
        }
        match state {
            State::Single => {
                if c == b'\'' {
                    self.top().state = State::Bare;
                }
                i + w
            }
            State::Comment => {
                if c == b'\n' {
                    let f = self.top();
                    f.state = State::Bare;
                    f.word_start = true;
                }
                i + w
            }
            State::Double => match c {
                b'\\' => self.skip_escaped(s, i + w),
                b'"' => {
                    let f = self.top();
                    f.state = State::Bare;
                    f.word_start = false;
                    i + w
                }
                b'$' if next == Some(b'(') => {
                    self.frames.push(Frame::new(Kind::Paren(1)));
                    i + w + 1
                }
                b'`' => {
                    self.frames.push(Frame::new(Kind::Backquote {
                        nested: false,
                        in_double: true,
                    }));
                    i + w
                }
                _ => i + w,
            },
            State::Bare => {
                let mut word_start = false;
                let end = match c {
                    b'\\' => self.skip_escaped(s, i + w),
                    b'\'' => {
                        self.top().state = State::Single;
                        i + w
                    }
                    b'"' => {
                        self.top().state = State::Double;
                        i + w
                    }
                    b'`' => {
                        self.frames.push(Frame::new(Kind::Backquote {
                            nested: false,
                            in_double: false,
                        }));
                        i + w
                    }
                    b'$' if next == Some(b'(') => {
                        self.frames.push(Frame::new(Kind::Paren(1)));
                        i + w + 1
                    }
                    b'#' if self.top().word_start => {
                        self.top().state = State::Comment;
                        i + w
                    }
                    b'(' => {
                        if let Kind::Paren(d) = &mut self.top().kind {
                            *d += 1;
                        }
                        word_start = true;
                        i + w
                    }
                    b')' => {
                        word_start = true;
                        if let Kind::Paren(d) = &mut self.top().kind {
                            *d -= 1;
                            if *d == 0 {
                                self.frames.pop();
                                word_start = false;
                            }
                        }
                        i + w
                    }
                    b' ' | b'\t' | b'\n' | b';' | b'&' | b'|' | b'<' | b'>' => {
                        word_start = true;
                        i + w
                    }
                    _ => i + w,
                };
                self.top().word_start = word_start;
                end
            }
        }
    }
}

/// The context at the end of `prefix` (the position right after it).
pub fn context_after(prefix: &str) -> ScanContext {
    let s = prefix.as_bytes();
    let mut sc = Scanner::new();
    let mut i = 0;
    while i < s.len() {
        i = sc.step(s, i);
    }
    sc.context()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(prefix: &str) -> Quoting {
        context_after(prefix).quoting
    }

    #[test]
    fn basic_quotes() {
        assert_eq!(q("echo "), Quoting::Bare);
        assert_eq!(q("echo '"), Quoting::SingleQuoted);
        assert_eq!(q("echo 'a'"), Quoting::Bare);
        assert_eq!(q("echo \""), Quoting::DoubleQuoted);
        assert_eq!(q("echo \"a\" "), Quoting::Bare);
        assert_eq!(q("echo \"it's "), Quoting::DoubleQuoted);
        assert_eq!(q("echo 'say \"hi "), Quoting::SingleQuoted);
    }

    #[test]
    fn backslashes() {
        assert_eq!(q(r"echo \'"), Quoting::Bare);
        assert_eq!(q(r#"echo \""#), Quoting::Bare);
        assert_eq!(q(r#"echo "a\"b"#), Quoting::DoubleQuoted);
        assert_eq!(q(r#"echo "a\\"#), Quoting::DoubleQuoted);
        assert_eq!(q(r#"echo "a\\" "#), Quoting::Bare);
        // No escapes inside single quotes.
        assert_eq!(q(r"echo 'a\' "), Quoting::Bare);
    }

    #[test]
    fn command_substitution_nests() {
        assert_eq!(q("echo \"$(echo "), Quoting::Bare);
        assert_eq!(q("echo \"$(echo 'x' \"y"), Quoting::DoubleQuoted);
        assert_eq!(q("echo \"$(echo (a) "), Quoting::Bare);
        assert_eq!(q("echo \"$(echo x) "), Quoting::DoubleQuoted);
        assert_eq!(q("echo \"$(echo ')' "), Quoting::Bare);
        assert_eq!(q("echo \"$(echo ')' ) "), Quoting::DoubleQuoted);
        assert_eq!(q("echo '$(' "), Quoting::Bare);
        assert_eq!(q("echo $(( 1 + "), Quoting::Bare);
        assert_eq!(q("echo \"$(( 1 + 2 )) "), Quoting::DoubleQuoted);
    }

    #[test]
    fn backquotes() {
        let c = context_after("echo \"`echo ");
        assert_eq!(c.quoting, Quoting::Bare);
        assert!(c.in_backquotes);
        let c = context_after("echo \"`echo x` ");
        assert_eq!(c.quoting, Quoting::DoubleQuoted);
        assert!(!c.in_backquotes);
        // A backquote closes the substitution even inside quotes within it.
        let c = context_after("echo `echo '` ");
        assert_eq!(c.quoting, Quoting::Bare);
        assert!(!c.in_backquotes);
        let c = context_after("echo `echo \\`echo ");
        assert!(c.nested_backquotes);
        let c = context_after("echo `echo \\`echo\\` ");
        assert!(c.in_backquotes && !c.nested_backquotes);
    }

    #[test]
    fn comments() {
        let c = context_after("echo a # it's ");
        assert!(c.in_comment);
        assert_eq!(c.quoting, Quoting::Bare);
        let c = context_after("echo a # it's\necho '");
        assert!(!c.in_comment);
        assert_eq!(c.quoting, Quoting::SingleQuoted);
        assert!(!context_after("echo a#b ").in_comment);
        assert!(!context_after("echo $# ").in_comment);
        assert!(!context_after("echo ${#x} '").in_comment);
        assert!(context_after("x;#").in_comment);
        assert!(context_after("#").in_comment);
    }

    #[test]
    fn dollar_dollar() {
        assert_eq!(q("echo $$("), Quoting::Bare);
        assert!(!context_after("echo $$(").in_backquotes);
        assert_eq!(context_after("echo \"$$").quoting, Quoting::DoubleQuoted);
    }

    #[test]
    fn unicode_passes_through() {
        assert_eq!(q("echo 'é ☃ "), Quoting::SingleQuoted);
        assert_eq!(q("echo \\é '"), Quoting::SingleQuoted);
    }
}
