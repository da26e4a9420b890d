//! Quoting-context scanner: tracks where a position in a shell command string stands, as POSIX
//! `sh` would parse it, so that placeholders can be escaped for their context.
//!
//! The scanner follows: bare words; `'...'` (no escapes); `"..."` (backslash escapes only
//! `$` `` ` `` `"` `\` and newline); backslash escapes in bare context; `$(...)`, `$((...))`
//! and `` `...` `` which open a nested bare context (also inside double quotes); `#` comments
//! at the start of a word; `$$`; here-documents (`<<WORD`, `<<-WORD`, quoted or not), whose
//! bodies start after the end of the line holding the operator.
//!
//! Known limitations (documented, deliberately out of scope):
//! - `case` pattern parentheses inside `$(...)` are handled by counting the reserved words
//!   `case`/`esac` at command positions (after `;`, `&`, `|`, `(`, newline, `then`, `do`,
//!   ...); exotic layouts (a pattern named `esac`) may confuse the count.
//! - Shell parameter expansions `${...}` are followed (quotes inside them nest), and
//!   placeholders inside them (`${FOO:-${item.x}}`) are rejected by the parser: how their
//!   words are quoted varies between shells.
//! - Syntax where bash and dash part ways (`$'...'`, `$"..."`, arithmetic) is followed by
//!   [`bash`]; placeholders in arithmetic only take integers.
//! - In a `<<-` here-document the shell strips leading tabs from every body line, including
//!   the lines of an inserted value.
//! - Inside backquotes, `\${...}` is not recognised as a placeholder, and placeholders inside
//!   nested (escaped) backquotes, or after them in the same backquotes, are rejected by the
//!   parser.

use super::quote::Quoting;

mod bash;

/// A here-document whose body a position is in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HereDoc {
    /// The delimiter word, with quotes removed.
    pub delimiter: String,
    /// `<<-`: leading tabs are stripped from body lines (and the delimiter line).
    pub strip_tabs: bool,
    /// The delimiter was quoted: the body is literal text (no expansions).
    pub quoted: bool,
}

/// The context at one position of a command string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanContext {
    /// Quoting state of the innermost nesting level.
    pub quoting: Quoting,
    /// Inside a `#` comment (quoting is then [`Quoting::Bare`]).
    pub in_comment: bool,
    /// Inside (at least) one `` `...` `` command substitution.
    pub in_backquotes: bool,
    /// Inside an escaped, nested backquote (`` \`...\` `` within backquotes), after a `\"`
    /// in backquotes in a here-document (which dash and bash read differently), or in
    /// backquotes inside double quotes (`` "`...`" ``), whose text bash scans for quotes and
    /// substitutions before it removes the backquotes' backslashes, so that some values
    /// (`"{$(`) break the command.
    pub nested_backquotes: bool,
    /// Inside the word of a shell parameter expansion such as `${FOO:-...}`.
    pub in_shell_expansion: bool,
    /// In the target word of a `>&` / `<&` redirection, which bash expands twice.
    pub in_dup_target: bool,
    /// Earlier shell syntax the scanner does not model (the context is then unreliable).
    pub unsupported: Option<&'static str>,
    /// Inside a here-document body (quoting is then [`Quoting::Bare`]).
    pub heredoc: Option<HereDoc>,
    /// Every here-document body around the position, also through substitutions in it
    /// (`<<EOF` ... `$(echo ...)`): bash ends a body at its delimiter line before it reads
    /// what is inside.
    pub heredoc_bodies: Vec<HereDoc>,
    /// Inside bash-only quoting that other shells read differently: `$'...'` (ANSI-C
    /// escapes in bash, `$` and `'...'` in dash) or `$"..."` (a translated string in bash).
    pub bash_quote: Option<&'static str>,
    /// Directly inside shell arithmetic (`$((...))`, bash `((...))`, an array subscript,
    /// `let` arguments): the shell evaluates the text as an expression.
    pub arithmetic: Option<Arith>,
    /// Inside the bash `[[ ... ]]` test with this number (see [`Scanner::test_is_arithmetic`]).
    pub test: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Bare,
    Single,
    /// bash `$'...'` (ANSI-C quoting); `'...'` after a literal `$` in dash.
    AnsiC,
    Double,
    Comment,
    HereDoc,
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
        /// Opened in a here-document body, where shells disagree on `\"`; `ambiguous` once
        /// such a `\"` was seen, or once an inner (escaped) backquote was opened.
        heredoc: bool,
        ambiguous: bool,
    },
    /// A shell parameter expansion `${...}` (not a runner placeholder).
    Brace,
    /// Shell arithmetic, closed by `close` once `depth` open brackets are closed.
    Arith {
        what: Arith,
        close: u8,
        depth: u32,
    },
}

/// The constructs whose text the shell evaluates as arithmetic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arith {
    /// `$((...))`.
    Expansion,
    /// The bash `((...))` command; `for ((...))` when `for_loop`.
    Command { for_loop: bool },
    /// An array subscript in an assignment: `a[...]=`, `a=([...]=...)`.
    Subscript,
    /// The arguments of a bash `let` that starts a command.
    Let,
    /// A bash `[[ ... ]]` test that compares numbers (`-eq`, `-lt`, ...).
    Test,
}

impl Arith {
    /// How error messages name the construct.
    pub fn name(self) -> &'static str {
        match self {
            Arith::Expansion => "`$((...))`",
            Arith::Command { for_loop: false } => "`((...))`",
            Arith::Command { for_loop: true } => "`for ((...))`",
            Arith::Subscript => "an array subscript `a[...]=`",
            Arith::Let => "the arguments of `let`",
            Arith::Test => "a bash `[[ ... ]]` test comparing numbers (`-eq`, `-lt`, ...)",
        }
    }
}

#[derive(Debug, Clone)]
struct Frame {
    kind: Kind,
    state: State,
    word_start: bool,
    /// Here-documents whose operator was seen on the current line.
    pending: Vec<HereDoc>,
    /// The here-document whose body is being read (state `HereDoc`).
    body: Option<HereDoc>,
    /// At the start of a here-document body line.
    line_start: bool,
    /// Open `case ... esac` commands: their pattern `)` does not close a `$(`.
    cases: u32,
    /// At a command position, where reserved words (`case`, `esac`, ...) are recognised.
    cmd_pos: bool,
    /// The word after `>&` / `<&`: 1 while skipping blanks, 2 inside the word.
    dup_word: u8,
    /// That word starts with a bash process substitution (`>&>(...)`) opened at this
    /// parenthesis depth: everything inside it, and what follows its `)`, is still the word.
    dup_parens: Option<u32>,
    /// Open subshell parentheses in a frame that is not a `$(...)` (which counts its own).
    parens: u32,
    /// The current `"..."` is a bash `$"..."` locale string.
    locale: bool,
    /// Right after the reserved word `for` (bash: `for ((...))`).
    after_for: bool,
    /// In the arguments of bash `let`, which evaluates them as arithmetic.
    let_args: bool,
    /// Inside the bash `[[ ... ]]` test with this number.
    test: Option<usize>,
}

impl Frame {
    fn new(kind: Kind) -> Frame {
        Frame {
            kind,
            state: State::Bare,
            word_start: true,
            pending: Vec::new(),
            body: None,
            line_start: false,
            cases: 0,
            cmd_pos: true,
            dup_word: 0,
            dup_parens: None,
            parens: 0,
            locale: false,
            after_for: false,
            let_args: false,
            test: None,
        }
    }

    /// A newline ending a command line: start the next pending here-document body, if any.
    fn end_line(&mut self) {
        self.let_args = false;
        if self.pending.is_empty() {
            self.state = State::Bare;
            self.word_start = true;
            self.cmd_pos = true;
            self.body = None;
        } else {
            self.state = State::HereDoc;
            self.body = Some(self.pending.remove(0));
            self.line_start = true;
        }
    }
}

/// Reserved words after which a command position continues.
const KEEP_CMD_POS: &[&str] = &[
    "then", "do", "else", "elif", "if", "while", "until", "!", "{", "time",
];

/// Whether the reserved word `kw` stands at `i` (followed by a delimiter or the end).
fn is_word(s: &[u8], i: usize, kw: &[u8]) -> bool {
    s[i..].starts_with(kw)
        && s.get(i + kw.len()).is_none_or(|c| {
            matches!(
                c,
                b' ' | b'\t' | b'\n' | b';' | b'&' | b'|' | b'<' | b'>' | b'(' | b')'
            )
        })
}

/// Skip line continuations (backslash-newline) starting at `j`.
fn skip_cont(s: &[u8], mut j: usize) -> usize {
    while s.get(j) == Some(&b'\\') && s.get(j + 1) == Some(&b'\n') {
        j += 2;
    }
    j
}

/// Parse the word after `<<` / `<<-` starting at `j`; returns the here-doc and the index
/// after the word.
fn heredoc_word(s: &[u8], mut j: usize, strip_tabs: bool) -> Option<(HereDoc, usize)> {
    loop {
        j = skip_cont(s, j);
        if !matches!(s.get(j), Some(b' ') | Some(b'\t')) {
            break;
        }
        j += 1;
    }
    let mut word = Vec::new();
    let mut quoted = false;
    while let Some(&c) = s.get(j) {
        match c {
            b'\\' if s.get(j + 1) == Some(&b'\n') => j += 2,
            b' ' | b'\t' | b'\n' | b';' | b'&' | b'|' | b'<' | b'>' | b'(' | b')' => break,
            b'\'' => {
                quoted = true;
                let end = s[j + 1..].iter().position(|&c| c == b'\'')?;
                word.extend_from_slice(&s[j + 1..j + 1 + end]);
                j += end + 2;
            }
            b'"' => {
                quoted = true;
                j += 1;
                loop {
                    match s.get(j)? {
                        b'"' => break,
                        b'\\' if matches!(s.get(j + 1), Some(b'"' | b'\\' | b'$' | b'`')) => {
                            word.push(s[j + 1]);
                            j += 2;
                        }
                        &c => {
                            word.push(c);
                            j += 1;
                        }
                    }
                }
                j += 1;
            }
            b'\\' => {
                quoted = true;
                word.push(*s.get(j + 1)?);
                j += 2;
            }
            _ => {
                word.push(c);
                j += 1;
            }
        }
    }
    if word.is_empty() {
        return None;
    }
    Some((
        HereDoc {
            delimiter: String::from_utf8_lossy(&word).into_owned(),
            strip_tabs,
            quoted,
        },
        j,
    ))
}

/// Incremental scanner over the bytes of a command string.
#[derive(Debug, Clone)]
pub struct Scanner {
    frames: Vec<Frame>,
    /// Set once the scanner met syntax it does not model; later positions are unreliable.
    unsupported: Option<&'static str>,
    /// For each bash `[[ ... ]]` test seen: whether it compares numbers (`-eq`, `-lt`, ...),
    /// which makes bash evaluate its operands as arithmetic.
    tests: Vec<bool>,
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
            unsupported: None,
            tests: Vec::new(),
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
        let top = &self.frames[self.frames.len() - 1];
        let bq = self.bq_index();
        ScanContext {
            quoting: match top.state {
                State::Bare | State::Comment | State::HereDoc => Quoting::Bare,
                State::Single | State::AnsiC => Quoting::SingleQuoted,
                State::Double => Quoting::DoubleQuoted,
            },
            in_comment: top.state == State::Comment,
            heredoc: if top.state == State::HereDoc {
                top.body.clone()
            } else {
                None
            },
            in_backquotes: bq.is_some(),
            heredoc_bodies: self
                .frames
                .iter()
                .filter(|f| f.state == State::HereDoc)
                .filter_map(|f| f.body.clone())
                .collect(),
            bash_quote: if top.state == State::AnsiC {
                Some("`$'...'`")
            } else if self
                .frames
                .iter()
                .any(|f| f.state == State::Double && f.locale)
            {
                Some("`$\"...\"`")
            } else {
                None
            },
            arithmetic: match top.kind {
                Kind::Arith { what, .. } => Some(what),
                _ if top.let_args && top.state != State::Comment => Some(Arith::Let),
                _ => None,
            },
            test: top.test,
            in_shell_expansion: self.frames.iter().any(|f| f.kind == Kind::Brace),
            in_dup_target: self.frames.iter().any(|f| f.dup_word != 0),
            unsupported: self.unsupported,
            nested_backquotes: bq.is_some_and(|i| {
                matches!(
                    self.frames[i].kind,
                    Kind::Backquote { nested: true, .. }
                        | Kind::Backquote {
                            ambiguous: true,
                            ..
                        }
                        | Kind::Backquote {
                            in_double: true,
                            ..
                        }
                )
            }),
        }
    }

    /// Record that a placeholder (a word part) was inserted at the current position.
    pub fn after_placeholder(&mut self) {
        let f = self.top();
        f.word_start = false;
        f.line_start = false;
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
        let in_bq = self.bq_index().is_some();
        match s.get(j) {
            None => j,
            // A raw backquote after an inner `\` still ends the backquotes.
            Some(b'`') if in_bq => j,
            // `` \` `` is a backquote for the inner shell, which this backslash escapes.
            Some(b'\\') if in_bq && s.get(j + 1) == Some(&b'`') => j + 2,
            Some(_) => j + self.inner_char(s, j).1,
        }
    }

    /// Advance over the syntax unit starting at byte `i` (which must be `< s.len()`), and
    /// return the index of the next unit.
    pub fn step(&mut self, s: &[u8], i: usize) -> usize {
        if s[i] == b'\n' && self.delimiter_line_in_substitution(&s[i + 1..]) {
            self.unsupported = Some(
                "a here-document's delimiter line inside a substitution in its body (bash ends \
                 the body there, dash does not)",
            );
        }
        if let Some(bq) = self.bq_index() {
            if s[i] == b'\\' && s.get(i + 1) == Some(&b'\n') {
                // Removed when the backquoted text is read, whatever the inner state.
                return i + 2;
            }
            if s[i..].starts_with(b"\\\\\n") {
                // A line continuation for the inner shell, which the look-aheads over the
                // raw text (keywords, `$(`, here-document words) do not see.
                self.unsupported =
                    Some("a line continuation (`\\\\` and a newline) inside backquotes");
            }
            if s[i] == b'\\' && s.get(i + 1) == Some(&b'`') {
                if let Kind::Backquote {
                    nested, ambiguous, ..
                } = &mut self.frames[bq].kind
                {
                    *nested = !*nested;
                    // What follows an inner backquote pair depends on how each shell pairs
                    // them with the escaped quotes around them: no placeholder after it.
                    *ambiguous = true;
                }
                return i + 2;
            }
            if s[i] == b'\\'
                && s.get(i + 1) == Some(&b'"')
                && let Kind::Backquote {
                    heredoc: true,
                    ambiguous,
                    ..
                } = &mut self.frames[bq].kind
            {
                // dash turns this into `"`, bash keeps `\"`: the rest is ambiguous.
                *ambiguous = true;
                return i + 2;
            }
            if s[i] == b'`' {
                self.frames.truncate(bq);
                self.top().word_start = false;
                return i + 1;
            }
        }
        let (c, w) = self.inner_char(s, i);
        let state = self.top().state;
        // Line continuations between the characters of a token are removed by the shell.
        let jn = if matches!(state, State::Bare | State::Double) {
            skip_cont(s, i + w)
        } else {
            i + w
        };
        let next = s.get(jn).copied();
        if c == b'$' && next == Some(b'$') && state != State::Comment {
            // `$$` (the shell's PID) is one unit and never starts a placeholder.
            self.top().word_start = false;
            return jn + 1;
        }
        match state {
            State::Single => {
                if c == b'\'' {
                    self.top().state = State::Bare;
                }
                i + w
            }
            State::AnsiC => self.step_ansi_c(s, i, c, w),
            State::Comment => {
                if c == b'\n' {
                    self.top().end_line();
                }
                i + w
            }
            State::HereDoc => self.step_heredoc(s, i),
            State::Double => match c {
                b'\\' => self.skip_escaped(s, i + w),
                b'"' => {
                    let f = self.top();
                    f.state = State::Bare;
                    f.locale = false;
                    f.word_start = false;
                    i + w
                }
                b'$' if next == Some(b'(') => self.open_dollar_paren(s, jn),
                b'$' if next == Some(b'{') => self.open_brace(jn + 1),
                b'$' if next == Some(b'[') => self.dollar_bracket(i + w),
                b'`' => {
                    self.push_backquote(true, false);
                    i + w
                }
                _ => i + w,
            },
            State::Bare => {
                if let Kind::Arith { what, .. } = self.top().kind {
                    return self.step_arith(s, i, (c, w, jn), what);
                }
                if let Some(end) = self.bash_syntax(s, i, c, w, jn) {
                    return end;
                }
                let idx = self.frames.len() - 1;
                let f = self.top();
                if f.cmd_pos && f.word_start && w == 1 {
                    for kw in KEEP_CMD_POS.iter().chain([&"case", &"esac"]) {
                        if is_word(s, i, kw.as_bytes()) {
                            match *kw {
                                "case" => {
                                    f.cases += 1;
                                    f.cmd_pos = false;
                                }
                                "esac" => {
                                    f.cases = f.cases.saturating_sub(1);
                                    f.cmd_pos = false;
                                }
                                _ => {}
                            }
                            f.word_start = false;
                            return i + kw.len();
                        }
                    }
                }
                let mut word_start = false;
                let mut cmd_pos = false;
                // `>&-` closes a descriptor; bash ends the word after the `-` (dash rejects
                // anything longer).
                let closes_fd = self.top().dup_word == 1 && c == b'-';
                let dup = {
                    let f = self.top();
                    let depth = match f.kind {
                        Kind::Paren(d) => d,
                        _ => f.parens,
                    };
                    let procsub = f.dup_parens;
                    match (f.dup_word, c) {
                        // Inside a process substitution that is (the start of) the target.
                        (2, _) if procsub.is_some_and(|p| depth > p) => 2,
                        // bash reads `>(`/`<(` as a process substitution inside a word too.
                        (1 | 2, b'<' | b'>') if next == Some(b'(') => {
                            f.dup_parens = Some(depth);
                            2
                        }
                        (2, b'(')
                            if procsub == Some(depth)
                                && i > 0
                                && matches!(s[i - 1], b'<' | b'>') =>
                        {
                            2
                        }
                        (1, b'-') => 0,
                        (_, b'&') if i > 0 && matches!(s[i - 1], b'>' | b'<') => 1,
                        (1, b' ' | b'\t') => 1,
                        (
                            _,
                            b' ' | b'\t' | b'\n' | b';' | b'&' | b'|' | b'<' | b'>' | b'(' | b')',
                        ) => 0,
                        (0, _) => 0,
                        _ => 2,
                    }
                };
                self.top().dup_word = dup;
                if dup == 0 {
                    self.top().dup_parens = None;
                }
                let end = match c {
                    b'\\' => {
                        if s.get(i + w) == Some(&b'\n') {
                            // A line continuation is removed: the word state carries on.
                            word_start = self.top().word_start;
                            cmd_pos = self.top().cmd_pos;
                        }
                        self.skip_escaped(s, i + w)
                    }
                    b'\'' | b'"' | b'`' => self.open_in_bare(s, i, (c, w, jn)),
                    b'$' if matches!(next, Some(b'(' | b'{')) => {
                        self.open_in_bare(s, i, (c, w, jn))
                    }
                    b'}' if self.top().kind == Kind::Brace => {
                        self.frames.pop();
                        i + w
                    }
                    b'#' if self.top().word_start && self.top().kind != Kind::Brace => {
                        self.top().state = State::Comment;
                        cmd_pos = self.top().cmd_pos;
                        i + w
                    }
                    b'(' => {
                        match &mut self.top().kind {
                            Kind::Paren(d) => *d += 1,
                            _ => self.top().parens += 1,
                        }
                        word_start = true;
                        cmd_pos = true;
                        i + w
                    }
                    b')' => {
                        word_start = true;
                        let f = self.top();
                        f.let_args = false;
                        // In `case ... in`, `)` ends a pattern and a command follows.
                        let pattern = f.cases > 0
                            && match f.kind {
                                Kind::Paren(d) => d == 1,
                                _ => f.parens == 0,
                            };
                        cmd_pos = pattern;
                        match (&mut f.kind, pattern) {
                            (_, true) => {}
                            (Kind::Paren(d), false) => {
                                *d -= 1;
                                if *d == 0 {
                                    self.frames.pop();
                                    word_start = false;
                                }
                            }
                            (_, false) if f.parens > 0 => f.parens -= 1,
                            (Kind::Backquote { .. }, false) => {
                                // dash ends the backquoted command here and reads on.
                                self.unsupported =
                                    Some("a `)` that closes nothing inside backquotes");
                            }
                            _ => {}
                        }
                        i + w
                    }
                    b'\n' => {
                        self.top().end_line();
                        return i + w;
                    }
                    b'<' if next == Some(b'<') && s.get(skip_cont(s, jn + 1)) == Some(&b'<') => {
                        // `<<<`: a bash here-string, not a here-document.
                        word_start = true;
                        skip_cont(s, jn + 1) + 1
                    }
                    b'<' if next == Some(b'<') => {
                        let mut j = skip_cont(s, jn + 1);
                        let strip_tabs = s.get(j) == Some(&b'-');
                        if strip_tabs {
                            j += 1;
                        }
                        if let Some((doc, end)) = heredoc_word(s, j, strip_tabs) {
                            if s[j..end].iter().any(|c| matches!(c, b'`' | b'$')) {
                                self.unsupported =
                                    Some("a here-document delimiter containing `$` or backquotes");
                            }
                            if self.bq_index().is_some() && s[j..end].contains(&b'\\') {
                                self.unsupported = Some(
                                    "a here-document delimiter with a backslash inside backquotes",
                                );
                            }
                            self.top().pending.push(doc);
                            j = end;
                        }
                        j
                    }
                    b' ' | b'\t' => {
                        word_start = true;
                        cmd_pos = self.top().cmd_pos;
                        i + w
                    }
                    b'<' | b'>' => {
                        // The next word is a file name, and reserved words after a
                        // redirection are plain words.
                        word_start = true;
                        i + w
                    }
                    b'&' | b'|' if i > 0 && matches!(s[i - 1], b'<' | b'>') => {
                        // `>&`, `<&`, `>|`: part of a redirection operator.
                        word_start = true;
                        i + w
                    }
                    b';' | b'&' | b'|' => {
                        word_start = true;
                        cmd_pos = true;
                        self.top().let_args = false;
                        i + w
                    }
                    _ => i + w,
                };
                if closes_fd {
                    word_start = true;
                }
                // Update the frame this step started in (or its parent if it was closed).
                let n = idx.min(self.frames.len() - 1);
                self.frames[n].word_start = word_start;
                self.frames[n].cmd_pos = cmd_pos;
                if !matches!(c, b' ' | b'\t') {
                    self.frames[n].after_for = false;
                }
                end
            }
        }
    }
}

impl Scanner {
    /// Whether `rest` (the text after a newline) starts with the delimiter line of a
    /// here-document whose body holds the current, nested position: bash finds that line
    /// before it reads the substitution, dash reads the substitution first.
    fn delimiter_line_in_substitution(&self, rest: &[u8]) -> bool {
        let n = self.frames.len();
        let line = &rest[..rest.iter().position(|&c| c == b'\n').unwrap_or(rest.len())];
        self.frames[..n - 1]
            .iter()
            .filter(|f| f.state == State::HereDoc)
            .filter_map(|f| f.body.as_ref())
            .any(|doc| {
                let line = if doc.strip_tabs {
                    let tabs = line.iter().take_while(|&&c| c == b'\t').count();
                    &line[tabs..]
                } else {
                    line
                };
                line == doc.delimiter.as_bytes()
            })
    }

    /// Open a quote or substitution in bare context: `'`, `"`, `` ` ``, `$(`, `${` (`c` and
    /// `w`: the character at `i` and its width; `jn`: the index after it and any line
    /// continuations). Returns the index after the opener.
    fn open_in_bare(&mut self, s: &[u8], i: usize, (c, w, jn): (u8, usize, usize)) -> usize {
        match c {
            b'\'' => self.top().state = State::Single,
            b'"' => self.top().state = State::Double,
            b'`' => self.push_backquote(false, false),
            _ if s.get(jn) == Some(&b'(') => return self.open_dollar_paren(s, jn),
            _ => return self.open_brace(jn + 1),
        }
        i + w
    }

    fn push_backquote(&mut self, in_double: bool, heredoc: bool) {
        self.frames.push(Frame::new(Kind::Backquote {
            nested: false,
            in_double,
            heredoc,
            ambiguous: false,
        }));
    }

    /// Enter a shell `${...}` expansion whose body starts at `j`.
    fn open_brace(&mut self, j: usize) -> usize {
        let mut f = Frame::new(Kind::Brace);
        f.word_start = false;
        f.cmd_pos = false;
        self.frames.push(f);
        j
    }

    fn step_heredoc(&mut self, s: &[u8], i: usize) -> usize {
        let f = self.top();
        let Some(doc) = f.body.clone() else {
            f.state = State::Bare;
            return i;
        };
        if f.line_start {
            f.line_start = false;
            let line_end = s[i..].iter().position(|&c| c == b'\n').map(|p| i + p);
            let mut line = &s[i..line_end.unwrap_or(s.len())];
            if doc.strip_tabs {
                while let [b'\t', rest @ ..] = line {
                    line = rest;
                }
            }
            if line == doc.delimiter.as_bytes() {
                f.end_line();
                return line_end.map_or(s.len(), |e| e + 1);
            }
        }
        let (c, w) = self.inner_char(s, i);
        if c == b'\n' {
            self.top().line_start = true;
            return i + w;
        }
        if doc.quoted {
            return i + w;
        }
        let jn = skip_cont(s, i + w);
        match c {
            b'\\' => self.skip_escaped(s, i + w),
            b'$' if s.get(jn) == Some(&b'(') => self.open_dollar_paren(s, jn),
            b'$' if s.get(jn) == Some(&b'[') => self.dollar_bracket(i + w),
            b'$' if s.get(jn) == Some(&b'{') => self.open_brace(jn + 1),
            b'`' => {
                self.push_backquote(false, true);
                i + w
            }
            _ => i + w,
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
        // After an inner pair, too: shells pair inner backquotes and escaped quotes around
        // them differently (found by the property test under bash --posix).
        let c = context_after("echo `echo \\`echo\\` ");
        assert!(c.in_backquotes && c.nested_backquotes);
        let c = context_after("cat <<EOF\n`echo \\\"");
        assert!(c.in_backquotes && c.nested_backquotes);
        let c = context_after("cat <<EOF\n`echo ");
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
    fn heredocs() {
        let c = context_after("cat <<EOF\nhello '");
        let doc = c.heredoc.expect("in here-doc");
        assert_eq!(doc.delimiter, "EOF");
        assert!(!doc.quoted && !doc.strip_tabs);
        assert_eq!(c.quoting, Quoting::Bare);
        // Still on the operator's line: not yet in the body.
        assert_eq!(context_after("cat <<EOF '").quoting, Quoting::SingleQuoted);
        let c = context_after("cat <<EOF\na\nEOF\necho '");
        assert!(c.heredoc.is_none());
        assert_eq!(c.quoting, Quoting::SingleQuoted);
        let doc = context_after("cat <<-'E O'; echo\n\tE O x\n")
            .heredoc
            .unwrap();
        assert_eq!(doc.delimiter, "E O");
        assert!(doc.quoted && doc.strip_tabs);
        assert!(context_after("cat <<-'E O'\n\t\tE O\n").heredoc.is_none());
        assert!(context_after("cat <<E\\OF\nEOF\n").heredoc.is_none());
        // Command substitution inside an unquoted body.
        let c = context_after("cat <<EOF\n$(echo ");
        assert!(c.heredoc.is_none());
        let c = context_after("cat <<EOF\n$(echo x) ");
        assert!(c.heredoc.is_some());
        // Two here-docs on one line.
        let c = context_after("cat <<A <<'B'\nA\nx");
        assert_eq!(c.heredoc.unwrap().delimiter, "B");
        // `<<<` is a bash here-string, not a here-doc.
        assert!(context_after("cat <<<x\n").heredoc.is_none());
        // In a comment line, the here-doc body starts after it.
        assert!(context_after("cat <<EOF # c\n").heredoc.is_some());
    }

    #[test]
    fn case_patterns_in_command_substitution() {
        assert_eq!(q("x=\"$(case a in a) echo '"), Quoting::SingleQuoted);
        assert_eq!(q("x=\"$(case a in (a) echo '"), Quoting::SingleQuoted);
        assert_eq!(q("x=\"$(case a in a) echo;; esac) "), Quoting::DoubleQuoted);
        assert_eq!(q("x=\"$(echo case) '"), Quoting::DoubleQuoted);
        assert_eq!(
            q("x=\"$(echo a; case a in a) echo '"),
            Quoting::SingleQuoted
        );
        assert_eq!(
            q("x=\"$(if true; then case a in a) echo '"),
            Quoting::SingleQuoted
        );
        assert_eq!(
            q("x=\"$(case a in a) case b in b) :;; esac;; esac) '"),
            Quoting::DoubleQuoted
        );
        assert_eq!(q("x=\"$(echo a case b) '"), Quoting::DoubleQuoted);
        assert_eq!(q("x=\"$(echo esac) '"), Quoting::DoubleQuoted);
        assert!(context_after("x=$(#").in_comment);
        assert!(context_after("x=`#").in_comment);
    }

    #[test]
    fn line_continuation_keeps_word_start() {
        assert!(context_after("echo a \\\n# c").in_comment);
        assert!(!context_after("echo a\\\n# c").in_comment);
    }

    #[test]
    fn shell_expansions() {
        let c = context_after("echo \"${FOO:-\"");
        assert!(c.in_shell_expansion);
        assert_eq!(c.quoting, Quoting::DoubleQuoted);
        let c = context_after("echo \"${FOO:-\"a\"} '");
        assert!(!c.in_shell_expansion);
        assert_eq!(c.quoting, Quoting::DoubleQuoted);
        let c = context_after("echo ${#x} ${x#a} ${x:-'}'} '");
        assert!(!c.in_shell_expansion && !c.in_comment);
        assert_eq!(c.quoting, Quoting::SingleQuoted);
        assert!(context_after("echo ${x:- #").in_shell_expansion);
        assert!(!context_after("echo ${x:- #").in_comment);
    }

    #[test]
    fn line_continuations_inside_tokens() {
        assert_eq!(q("echo \"$\\\n(echo "), Quoting::Bare);
        assert!(
            context_after("cat <<\\\nE\\\nOF\n")
                .heredoc
                .is_some_and(|d| d.delimiter == "EOF" && !d.quoted)
        );
        assert!(context_after("cat <\\\n<EOF\n").heredoc.is_some());
        assert!(context_after("cat < \\\n<EOF\n").heredoc.is_none());
        assert!(context_after("cat <<EOF\na\\\nEOF\n").heredoc.is_some());
    }

    #[test]
    fn fd_close_ends_the_word_in_bash() {
        assert!(context_after("echo a <&-#").in_comment);
        assert!(context_after("echo a >& -#").in_comment);
        assert!(!context_after("echo a >&2#").in_comment);
    }

    #[test]
    fn dup_redirection_targets() {
        assert!(context_after("echo >&").in_dup_target);
        assert!(context_after("echo >& \"").in_dup_target);
        assert!(context_after("echo 2<&a").in_dup_target);
        assert!(!context_after("echo >&a ").in_dup_target);
        assert!(!context_after("echo >&a;").in_dup_target);
        assert!(!context_after("echo a& ").in_dup_target);
        assert!(!context_after("echo >a").in_dup_target);
        assert!(context_after("echo >&\"$(echo ").in_dup_target);
        assert!(!context_after("echo >&a $(echo ").in_dup_target);
        // bash: a process substitution can start the target; the word goes on after it.
        assert!(context_after("echo 2>&>(a)").in_dup_target);
        assert!(context_after("echo 2>&<(a b").in_dup_target);
        assert!(!context_after("echo 2>&>(a) ").in_dup_target);
        assert!(context_after("echo 2>&a>(b)").in_dup_target);
    }

    #[test]
    fn unsupported_syntax_is_flagged() {
        assert!(context_after("cat <<`x`\n").unsupported.is_some());
        assert!(context_after("cat <<$x\n").unsupported.is_some());
        assert!(context_after("cat <<'EOF'\n").unsupported.is_none());
    }

    #[test]
    fn backquote_line_continuation_in_comment() {
        assert!(context_after("echo `echo a #\\\necho ").in_comment);
        assert!(!context_after("echo a #\\\necho ").in_comment);
    }

    #[test]
    fn escaped_backquote_after_inner_backslash() {
        // `\\` is `\` for the inner shell and escapes the `` \` `` that follows: a literal
        // backquote, still inside the substitution.
        assert!(context_after("echo `a\\\\\\` '").in_backquotes);
        // A raw backquote after `\\` ends it.
        assert!(!context_after("echo `a\\\\` '").in_backquotes);
    }

    #[test]
    fn unbalanced_paren_in_backquotes_is_flagged() {
        // dash ends the backquoted command at such a `)` and reads on in another state.
        assert!(context_after("echo `a<<s) ").unsupported.is_some());
        assert!(context_after("echo `(a) ").unsupported.is_none());
        assert!(
            context_after("echo `case a in a) (b) ;; esac` ")
                .unsupported
                .is_none()
        );
        assert!(context_after("echo a) ").unsupported.is_none());
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
