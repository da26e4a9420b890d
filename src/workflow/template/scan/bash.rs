//! Syntax where bash and POSIX shells such as dash part ways, followed so that a placeholder
//! is safe whichever shell `/bin/sh` is:
//! - `$'...'` (bash: ANSI-C escapes; dash: `$` then `'...'`) and `$"..."` (bash: a translated
//!   string; dash: `$` then `"..."`). Placeholders inside them are rejected by the parser; a
//!   `\'` inside `$'...'` ends the string at different places, so later positions are
//!   unreliable.
//! - Arithmetic, where the shell evaluates the text as an expression whatever its quotes
//!   (bash even runs command substitutions found in array subscripts): `$((...))`, bash's
//!   `((...))` and `for ((...))` commands, array subscripts of assignments (`a[...]=`,
//!   `a=([...]=...)`), the arguments of `let` and the operands of `[[ ... -eq ... ]]`.
//!   Placeholders there only take integers (see [`super::ScanContext::arithmetic`]).
//! - bash's deprecated `$[...]` arithmetic, and quotes, backslashes or `#` inside arithmetic,
//!   which shells read differently: later positions are unreliable.

use super::{Arith, Frame, Kind, Scanner, State, is_word, skip_cont};

const ARITH_QUOTES: &str =
    "quotes, backslashes, `#` or `;` inside shell arithmetic, which shells read differently";
const ARITH_COMMAND: &str = "a bash `((...))` or `a[...]` with here-document, redirection or \
     command separators inside, which other shells read as commands";
const DOLLAR_BRACKET: &str =
    "bash's deprecated `$[...]` arithmetic, which other shells read as text; use `$((...))`";
const ANSI_C_ESCAPED_QUOTE: &str =
    "a `$'...'` string containing `\\'`, which bash and dash end in different places";
const QUOTE_IN_DOUBLE_QUOTED_BRACE: &str =
    "a `'` inside a double-quoted `${...}` expansion, which shells read differently";

/// The operators of `[[ ... ]]` that compare numbers (bash evaluates both operands).
const TEST_ARITH_OPS: &[&str] = &["-eq", "-ne", "-lt", "-le", "-gt", "-ge"];

/// Length of the shell name (`[A-Za-z_][A-Za-z0-9_]*`) starting at `i` (0 if none).
fn name_len(s: &[u8], i: usize) -> usize {
    match s.get(i) {
        Some(c) if c.is_ascii_alphabetic() || *c == b'_' => {}
        _ => return 0,
    }
    1 + s[i + 1..]
        .iter()
        .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
        .count()
}

/// The index of the closing `quote` of a quoted string whose body starts at `k`.
fn skip_quoted(s: &[u8], mut k: usize, quote: u8) -> usize {
    while k < s.len() && s[k] != quote {
        if quote == b'"' && s[k] == b'\\' {
            k += 1;
        }
        k += 1;
    }
    k
}

/// What bash makes of the `[` at `j` after a name at the start of a word: it reads up to the
/// matching `]` as part of the word, blanks and operators included.
#[derive(Debug, PartialEq, Eq)]
enum Bracket {
    /// The subscript of an assignment word: `]` is followed by `=` or `+=` (`a[i]=v`,
    /// `a[i]+=v`, `[i]=v` in `a=(...)`).
    Assignment,
    /// Some other word (`a[x]`); `meta` when the brackets hold blanks or operators that
    /// other shells read as the end of the word.
    Word { meta: bool },
    /// No matching `]`.
    Unclosed,
}

fn bracket(s: &[u8], j: usize) -> Bracket {
    let mut depth = 0u32;
    let mut braces = 0u32;
    // Inside `$(...)`: brackets there are the command's.
    let mut parens = 0u32;
    let mut meta = false;
    let mut k = j;
    while k < s.len() {
        match s[k] {
            b'\\' => k += 1,
            b'\'' => k = skip_quoted(s, k + 1, b'\''),
            b'"' => k = skip_quoted(s, k + 1, b'"'),
            b'`' => k = skip_quoted(s, k + 1, b'`'),
            b'(' if parens > 0 || (k > 0 && s[k - 1] == b'$') => parens += 1,
            b')' if parens > 0 => parens -= 1,
            _ if parens > 0 => {}
            b'{' if k > 0 && s[k - 1] == b'$' => braces += 1,
            b'}' if braces > 0 => braces -= 1,
            b'[' if braces == 0 => depth += 1,
            b']' if braces == 0 => {
                depth -= 1;
                if depth == 0 {
                    let rest = &s[k + 1..];
                    if rest.starts_with(b"=") || rest.starts_with(b"+=") {
                        return Bracket::Assignment;
                    }
                    return Bracket::Word { meta };
                }
            }
            b' ' | b'\t' | b'\n' | b';' | b'&' | b'|' | b'<' | b'>' | b'(' | b')' => meta = true,
            _ => {}
        }
        k += 1;
    }
    Bracket::Unclosed
}

impl Scanner {
    /// Whether the `[[ ... ]]` test numbered `id` compares numbers (`-eq`, `-lt`, ...): bash
    /// then evaluates its operands as arithmetic.
    pub fn test_is_arithmetic(&self, id: usize) -> bool {
        self.tests.get(id).copied().unwrap_or(false)
    }

    fn push_arith(&mut self, what: Arith, close: u8, depth: u32) {
        let mut f = Frame::new(Kind::Arith { what, close, depth });
        f.word_start = false;
        f.cmd_pos = false;
        self.frames.push(f);
    }

    /// bash's `$[...]` arithmetic (text in dash) at `i`: later positions are unreliable.
    pub(super) fn dollar_bracket(&mut self, i: usize) -> usize {
        self.unsupported = Some(DOLLAR_BRACKET);
        i
    }

    /// `$(` whose `(` is at `jn`: a command substitution, or `$((` arithmetic.
    pub(super) fn open_dollar_paren(&mut self, s: &[u8], jn: usize) -> usize {
        let k = skip_cont(s, jn + 1);
        if s.get(k) == Some(&b'(') {
            self.push_arith(Arith::Expansion, b')', 2);
            k + 1
        } else {
            self.frames.push(Frame::new(Kind::Paren(1)));
            jn + 1
        }
    }

    /// One character `c` (width `w`) at `i` inside `$'...'`, where bash lets a backslash
    /// escape the next character (`\'` included) and dash does not.
    pub(super) fn step_ansi_c(&mut self, s: &[u8], i: usize, c: u8, w: usize) -> usize {
        match c {
            b'\\' => {
                if i + w < s.len() && self.inner_char(s, i + w).0 == b'\'' {
                    self.unsupported = Some(ANSI_C_ESCAPED_QUOTE);
                }
                self.skip_escaped(s, i + w)
            }
            b'\'' => {
                self.top().state = State::Bare;
                i + w
            }
            _ => i + w,
        }
    }

    /// Bash syntax at `i` in bare context outside arithmetic (`c`, `w`: the character the
    /// shell sees and its width; `jn`: the index after it and any line continuations).
    /// Returns the index after what it consumed, or `None` to go on with the POSIX rules.
    pub(super) fn bash_syntax(
        &mut self,
        s: &[u8],
        i: usize,
        c: u8,
        w: usize,
        jn: usize,
    ) -> Option<usize> {
        let next = s.get(jn).copied();
        let n = self.frames.len();
        if (c == b'\'' || (c == b'$' && next == Some(b'\'')))
            && self.frames[n - 1].kind == Kind::Brace
            && n >= 2
            && self.frames[n - 2].state == State::Double
        {
            self.unsupported = Some(QUOTE_IN_DOUBLE_QUOTED_BRACE);
        }
        if c == b'$' {
            let f = self.top();
            match next {
                Some(b'\'') => f.state = State::AnsiC,
                Some(b'"') => {
                    f.state = State::Double;
                    f.locale = true;
                }
                Some(b'[') => {
                    self.dollar_bracket(i);
                    return None;
                }
                _ => return None,
            }
            f.word_start = false;
            f.cmd_pos = false;
            return Some(jn + 1);
        }
        let f = &mut self.frames[n - 1];
        if !f.word_start || w != 1 {
            return None;
        }
        if let Some(id) = f.test {
            if is_word(s, i, b"]]") {
                f.test = None;
                f.word_start = false;
                return Some(i + 2);
            }
            if let Some(op) = TEST_ARITH_OPS
                .iter()
                .find(|op| is_word(s, i, op.as_bytes()))
            {
                f.word_start = false;
                self.tests[id] = true;
                return Some(i + op.len());
            }
        } else if f.cmd_pos || f.after_for {
            if c == b'(' && next == Some(b'(') {
                let for_loop = f.after_for;
                f.after_for = false;
                f.word_start = false;
                f.cmd_pos = false;
                self.push_arith(Arith::Command { for_loop }, b')', 2);
                return Some(jn + 1);
            }
            if let Some(kw) = ["[[", "let", "for"]
                .into_iter()
                .find(|kw| f.cmd_pos && is_word(s, i, kw.as_bytes()))
            {
                match kw {
                    "[[" => {
                        f.test = Some(self.tests.len());
                        self.tests.push(false);
                    }
                    "let" => f.let_args = true,
                    _ => f.after_for = true,
                }
                f.cmd_pos = false;
                f.word_start = false;
                return Some(i + kw.len());
            }
        }
        let j = i + name_len(s, i);
        if s.get(j) == Some(&b'[') {
            match bracket(s, j) {
                Bracket::Assignment => {
                    let f = self.top();
                    f.word_start = false;
                    f.cmd_pos = false;
                    self.push_arith(Arith::Subscript, b']', 1);
                    return Some(j + 1);
                }
                Bracket::Word { meta: true } if j > i && self.top().cmd_pos => {
                    self.unsupported = Some(ARITH_COMMAND);
                }
                _ => {}
            }
        }
        None
    }

    /// One unit at `i` directly inside arithmetic (`c`, `w`, `jn` as for [`Self::bash_syntax`]).
    pub(super) fn step_arith(
        &mut self,
        s: &[u8],
        i: usize,
        (c, w, jn): (u8, usize, usize),
        what: Arith,
    ) -> usize {
        let next = s.get(jn).copied();
        let command = what != Arith::Expansion;
        let odd = match c {
            b'\'' | b'"' | b'#' => Some(ARITH_QUOTES),
            b'\\' if next != Some(b'\n') => Some(ARITH_QUOTES),
            b'$' if matches!(next, Some(b'\'' | b'"')) => Some(ARITH_QUOTES),
            b'$' if next == Some(b'[') => Some(DOLLAR_BRACKET),
            b';' if what != (Arith::Command { for_loop: true }) => Some(ARITH_QUOTES),
            b'\n' if command => Some(ARITH_COMMAND),
            b'<' | b'>' if command && matches!(next, Some(b'<' | b'&')) => Some(ARITH_COMMAND),
            b'&' | b'|' | b'<' | b'>' | b'(' | b')' | b';' if what == Arith::Subscript => {
                Some(ARITH_COMMAND)
            }
            _ => None,
        };
        if odd.is_some() {
            self.unsupported = odd;
        }
        match c {
            b'\\' => self.skip_escaped(s, i + w),
            b'\'' | b'"' | b'`' => self.open_in_bare(s, i, (c, w, jn)),
            b'$' if matches!(next, Some(b'(' | b'{')) => self.open_in_bare(s, i, (c, w, jn)),
            _ => {
                if let Kind::Arith { close, depth, .. } = &mut self.top().kind {
                    let open = if *close == b')' { b'(' } else { b'[' };
                    if c == open {
                        *depth += 1;
                    } else if c == *close {
                        *depth -= 1;
                        if *depth == 0 {
                            self.frames.pop();
                            let f = self.top();
                            f.word_start = false;
                            f.cmd_pos = false;
                        }
                    }
                }
                i + w
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{ScanContext, Scanner, context_after};
    use crate::workflow::template::quote::Quoting;

    /// The context at the first `@` of `src` (the scanner sees the text after it too).
    fn at(src: &str) -> ScanContext {
        let s = src.as_bytes();
        let stop = src.find('@').expect("a @ marks the position");
        let mut sc = Scanner::new();
        let mut i = 0;
        while i < stop {
            i = sc.step(s, i);
        }
        sc.context()
    }

    #[test]
    fn ansi_c_quotes() {
        let c = context_after("echo $'a");
        assert_eq!(c.bash_quote, Some("`$'...'`"));
        assert_eq!(c.quoting, Quoting::SingleQuoted);
        let c = context_after("echo $'a\\\\' '");
        assert_eq!((c.bash_quote, c.quoting), (None, Quoting::SingleQuoted));
        assert!(c.unsupported.is_none());
        // Not `$'...'`: an escaped `$`, `$$`, inside "...", in a here-document body.
        for src in [
            "echo \\$'",
            "echo $$'",
            "echo \"$'",
            "cat <<E\n$'",
            "echo '$'",
        ] {
            assert_eq!(context_after(src).bash_quote, None, "{src}");
        }
        // A line continuation between `$` and `'` still makes `$'`.
        assert!(context_after("echo $\\\n'").bash_quote.is_some());
        // `\'` ends the string in dash, not in bash.
        assert!(context_after("echo $'it\\'s' ").unsupported.is_some());
        // Inside backquotes and `$(...)` too.
        assert!(context_after("echo `echo $'").bash_quote.is_some());
        assert!(context_after("echo $(echo $'").bash_quote.is_some());
    }

    #[test]
    fn locale_quotes() {
        let c = context_after("echo $\"a");
        assert_eq!(c.bash_quote, Some("`$\"...\"`"));
        assert_eq!(c.quoting, Quoting::DoubleQuoted);
        assert!(context_after("echo $\"a $(echo ").bash_quote.is_some());
        let c = context_after("echo $\"a\" \"");
        assert_eq!((c.bash_quote, c.quoting), (None, Quoting::DoubleQuoted));
        assert_eq!(context_after("echo \"$\"").bash_quote, None);
    }

    #[test]
    fn arithmetic_contexts() {
        for src in [
            "echo $(( @",
            "echo \"$(( 1 + @",
            "echo $(( (1) + @",
            "echo $(\\\n( @",
            "(( y = @ ))",
            "if (( @ )); then :; fi",
            "for (( i = @; i < 3; i++ )); do :; done",
            "a[@]=1",
            "a[@]+=1",
            "declare a[@]=1",
            "a=([@]=1)",
            "a[$(echo ])@]=1",
            "let @",
            "case a in a) (( @ ));; esac",
            "case a in (a) [[ 1 -eq 2 ]] || (( @ ));; esac",
            "let \"y = @\"",
            "cat <<E\n$(( @ ))\nE",
        ] {
            assert!(at(src).arithmetic.is_some(), "{src}");
            assert!(at(src).unsupported.is_none(), "{src}");
        }
        for src in [
            "echo $(( 1 + $(echo @",
            "echo $(( 1 )) @",
            "echo ((@",
            "echo $( (echo @) )",
            "echo a[@] b",
            "(( 1 )) @",
            "let y=1; echo @",
            "x=a[1] @",
            "[[ @ == a ]]",
        ] {
            assert!(at(src).arithmetic.is_none(), "{src}");
        }
    }

    #[test]
    fn tests_comparing_numbers() {
        let s = "[[ @ -eq 1 ]]";
        let id = at(s).test.expect("in a test");
        let mut sc = Scanner::new();
        let mut i = 0;
        while i < s.len() {
            i = sc.step(s.as_bytes(), i);
        }
        assert!(sc.test_is_arithmetic(id));
        assert!(at("[[ a ]] && @").test.is_none());
        assert!(at("echo [[ @").test.is_none());
    }

    #[test]
    fn syntax_shells_read_differently_is_flagged() {
        for src in [
            "echo $[ 1 ] @",
            "echo \"$[ @ ]\"",
            "cat <<E\n$[ @ ]\nE",
            "echo $(( ')' )) @",
            "echo $(( 1 # )) @",
            "(( 1 << 2 ))\n@",
            "(( 1; 2 )) @",
            "a[1;2]=1 @",
            "a[<<'E'\n@]=1",
            "cat <<E\n$(echo '\nE\n@')",
            "a[ ; echo ] @",
            "echo \"${A:-'}'\" @",
        ] {
            assert!(at(src).unsupported.is_some(), "{src}");
        }
        for src in [
            "echo $(( 1 << 2 )) @",
            "for (( ;; )); do break; done; @",
            "a[i + 1]=2 @",
        ] {
            assert!(at(src).unsupported.is_none(), "{src}");
        }
    }
}
