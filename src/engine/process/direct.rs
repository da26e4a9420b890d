//! Recognising a *simple command*: a rendered step that is only words (no shell syntax, no
//! redirection, no variable, no glob), which runs without `/bin/sh` as the shell would have
//! run it: `argv[0]` looked up in `PATH`, the words as arguments. Anything else, or a word
//! the shell treats itself (a keyword or a builtin), goes through `sh -c`.

/// Shell keywords and builtins (POSIX, dash and bash): commands whose meaning the shell
/// decides, so they never run directly. (`true`/`false` without arguments behave exactly as
/// their programs do; with arguments, GNU's print help, so those go to the shell.)
#[rustfmt::skip]
const SHELL_WORDS: &[&str] = &[
    "!", "{", "}", "[[", "]]", "case", "coproc", "do", "done", "elif", "else", "esac", "fi",
    "for", "function", "if", "in", "select", "then", "time", "until", "while", ".", ":", "[",
    "alias", "bg", "bind", "break", "builtin", "caller", "cd", "command", "compgen", "complete",
    "compopt", "continue", "declare", "dirs", "disown", "echo", "enable", "eval", "exec", "exit",
    "export", "fc", "fg", "getopts", "hash", "help", "history", "jobs", "kill", "let", "local",
    "logout", "mapfile", "popd", "printf", "pushd", "pwd", "read", "readarray", "readonly",
    "return", "set", "shift", "shopt", "source", "suspend", "test", "times", "trap", "type",
    "typeset", "ulimit", "umask", "unalias", "unset", "wait",
];

/// Characters that stand for themselves outside quotes (everything else may be syntax).
fn plain(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(c, '_' | '-' | '.' | '/' | ':' | ',' | '+' | '@' | '%' | '=')
}

/// The argument vector of `script` if it is a simple command, else `None`.
///
/// Words are separated by spaces or tabs and made of plain characters, `'single-quoted'`
/// text (anything but `'`) and `"double-quoted"` text without `$`, `` ` ``, `\` or `!`,
/// concatenated as the shell does (`a'b c'd` is one word, `''` an empty one).
pub fn simple_argv(script: &str) -> Option<Vec<String>> {
    let mut words = Vec::new();
    let mut chars = script.chars().peekable();
    loop {
        while chars.next_if(|c| *c == ' ' || *c == '\t').is_some() {}
        if chars.peek().is_none() {
            break;
        }
        let mut word = String::new();
        while let Some(&c) = chars.peek() {
            match c {
                ' ' | '\t' => break,
                '\'' => {
                    chars.next();
                    loop {
                        match chars.next()? {
                            '\'' => break,
                            c => word.push(c),
                        }
                    }
                }
                '"' => {
                    chars.next();
                    loop {
                        match chars.next()? {
                            '"' => break,
                            '$' | '`' | '\\' | '!' => return None,
                            c => word.push(c),
                        }
                    }
                }
                c if plain(c) => {
                    chars.next();
                    word.push(c);
                }
                _ => return None,
            }
        }
        words.push(word);
    }
    let first = words.first()?;
    // `NAME=value cmd` is an assignment; a leading `-` or an empty name is the shell's too.
    if script.trim_start().split([' ', '\t']).next()?.contains('=') || first.is_empty() {
        return None;
    }
    if SHELL_WORDS.contains(&first.as_str()) {
        return None;
    }
    if matches!(first.as_str(), "true" | "false") && words.len() > 1 {
        return None;
    }
    Some(words)
}

#[cfg(test)]
mod tests {
    use super::simple_argv;
    use crate::workflow::template::shell_tests::{Shell, shells};

    fn words(w: &[&str]) -> Option<Vec<String>> {
        Some(w.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn words_only_run_directly() {
        assert_eq!(simple_argv("true"), words(&["true"]));
        assert_eq!(
            simple_argv("  ./bin/tool --out=x.json a,b 50% user@host  "),
            words(&["./bin/tool", "--out=x.json", "a,b", "50%", "user@host"])
        );
        assert_eq!(
            simple_argv("cp 'a b' \"c d\" e'f g'h ''"),
            words(&["cp", "a b", "c d", "ef gh", ""])
        );
        assert_eq!(
            simple_argv("grep -F '$HOME; rm *' x"),
            words(&["grep", "-F", "$HOME; rm *", "x"])
        );
    }

    #[test]
    fn anything_the_shell_interprets_goes_to_the_shell() {
        for s in [
            "",
            "   ",
            "echo hi",
            "cd /tmp",
            "exit 3",
            "export A=1",
            "A=1 env",
            "x=1",
            "true --help",
            "false 1",
            "ls *.txt",
            "ls ?",
            "ls [ab]",
            "echo ~",
            "a | b",
            "a; b",
            "a && b",
            "a > f",
            "a < f",
            "a 2>&1",
            "a &",
            "cat $f",
            "cat ${f}",
            "cat \"$f\"",
            "echo `id`",
            "a \\ b",
            "a\nb",
            "(a)",
            "{ a; }",
            "a # c",
            "a {1,2}",
            "ls !x",
            "if true",
            "printf x",
            "'unterminated",
            "\"unterminated",
            "[ -f x ]",
            "test -f x",
            "a\"$x\"",
            "a\"\\n\"",
            "x ^y",
            "a ~b",
            ". ./env.sh",
            "source x",
            "exec cat",
        ] {
            assert_eq!(simple_argv(s), None, "{s:?} must go through sh");
        }
    }

    /// The words the shell itself makes of `script` (`set --` splits and unquotes exactly
    /// as for a command's arguments), NUL-separated.
    fn shell_words(shell: &Shell, script: &str) -> Vec<String> {
        let out = std::process::Command::new(shell.path)
            .args(shell.args)
            .arg("-c")
            .arg(format!("set -- {script}\nprintf '%s\\0' \"$@\""))
            .output()
            .expect("run the shell");
        assert!(out.status.success(), "{} failed on {script:?}", shell.path);
        let text = String::from_utf8(out.stdout).expect("utf-8");
        text.split_terminator('\0').map(String::from).collect()
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(96))]
        /// Differential: whenever a script is recognised as a simple command, dash and bash
        /// (and `/bin/sh`) make exactly the same words of it.
        #[test]
        fn words_match_the_shells(parts in proptest::collection::vec(proptest::sample::select(&[
            "a", "b1", " ", "\t", "'", "\"", "' q '", "\"d e\"", "''", "=", "-", ".", "/", "x=y",
            "%", "@", ",", ":", "+", "$", "*", "\\", "#", ";",
        ][..]), 1..8)) {
            let script = parts.concat();
            if let Some(mine) = simple_argv(&script) {
                for shell in shells() {
                    proptest::prop_assert_eq!(&shell_words(shell, &script), &mine, "{}", shell.path);
                }
            }
        }
    }
}
