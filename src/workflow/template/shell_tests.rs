//! Rendered templates run through real shells. Every check runs under each installed shell of
//! dash, bash in POSIX mode (what `/bin/sh` is on Fedora, RHEL and macOS) and bash, so a value
//! is proven to arrive as literal text whichever shell `/bin/sh` is. Set
//! `RUNNER_REQUIRE_SHELLS=1` (CI does) to fail when dash or bash is missing.

use std::borrow::Cow;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use serde_json::Value;

use super::text::{BUILTIN_ROOTS, RenderError, Template, VarRef};

fn known(r: &str) -> bool {
    BUILTIN_ROOTS.contains(&r) || r == "x"
}

/// Render `t` with the variable `x` set to `value`.
fn render_template(t: &Template, value: &str) -> Result<String, RenderError> {
    let lookup = |v: &VarRef| {
        (v.root == "x" && v.path.is_empty()).then(|| Cow::Owned(Value::String(value.to_string())))
    };
    t.render_shell(&lookup)
}

/// Render `src` with the variable `x` set to `value`.
fn render(src: &str, value: &str) -> Result<String, RenderError> {
    let t = Template::parse(src, &known).unwrap_or_else(|e| panic!("{src:?} does not parse: {e}"));
    render_template(&t, value)
}

/// A shell that runs rendered commands with `-c`.
#[derive(Debug)]
pub(crate) struct Shell {
    pub path: &'static str,
    pub args: &'static [&'static str],
}

impl Shell {
    fn is_bash(&self) -> bool {
        self.path.ends_with("bash")
    }

    fn command(&self, cmd: &str, dir: &Path) -> Command {
        let mut c = Command::new(self.path);
        c.args(self.args)
            .arg("-c")
            .arg(cmd)
            .current_dir(dir)
            .stdin(Stdio::null());
        c
    }

    fn run(&self, cmd: &str, dir: &Path) -> Output {
        self.command(cmd, dir)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {self:?}: {e}"))
    }

    /// Whether `cmd` parses (`-n`: read, do not run).
    fn parses(&self, cmd: &str) -> bool {
        Command::new(self.path)
            .args(self.args)
            .args(["-n", "-c", cmd])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|st| st.success())
    }
}

impl std::fmt::Display for Shell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.path)?;
        for a in self.args {
            write!(f, " {a}")?;
        }
        Ok(())
    }
}

/// The shells every check runs under: dash, bash in POSIX mode and bash (those installed),
/// plus `/bin/sh` when it is none of them.
pub(crate) fn shells() -> &'static [Shell] {
    static SHELLS: OnceLock<Vec<Shell>> = OnceLock::new();
    SHELLS.get_or_init(|| {
        let candidates = [
            Shell {
                path: "/bin/dash",
                args: &[],
            },
            Shell {
                path: "/bin/bash",
                args: &["--posix"],
            },
            Shell {
                path: "/bin/bash",
                args: &[],
            },
        ];
        let mut found: Vec<Shell> = candidates
            .into_iter()
            .filter(|s| Path::new(s.path).exists())
            .collect();
        let canon = |p: &str| std::fs::canonicalize(p).ok();
        let sh = canon("/bin/sh");
        if sh.is_some() && found.iter().all(|s| canon(s.path) != sh) {
            found.push(Shell {
                path: "/bin/sh",
                args: &[],
            });
        }
        if std::env::var_os("RUNNER_REQUIRE_SHELLS").is_some() {
            for need in ["/bin/dash", "/bin/bash"] {
                assert!(
                    found.iter().any(|s| s.path == need),
                    "RUNNER_REQUIRE_SHELLS is set but {need} is missing"
                );
            }
        }
        assert!(!found.is_empty(), "no shell to run templates with");
        found
    })
}

/// Run `cmd` (rendered from `src` with `x`) under every shell (bash only when `bash_only`):
/// stdout must be one of `prefixes` followed by `want`, and no `PWNED` file may appear.
fn check_output(
    src: &str,
    x: &str,
    prefixes: &[&str],
    want: &[u8],
    bash_only: bool,
    dir: &Path,
) -> Result<(), String> {
    let cmd = render(src, x).map_err(|e| format!("{src:?} value {x:?}: {e}"))?;
    for shell in shells().iter().filter(|s| !bash_only || s.is_bash()) {
        let out = shell.run(&cmd, dir);
        let printed = prefixes
            .iter()
            .any(|p| out.stdout.strip_prefix(p.as_bytes()) == Some(want));
        if !printed || !out.status.success() || dir.join("PWNED").exists() {
            return Err(format!(
                "{shell}: template {src:?} value {x:?}: command {cmd:?} printed {:?} \
                 (stderr {:?}, {}), PWNED: {}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                out.status,
                dir.join("PWNED").exists()
            ));
        }
    }
    Ok(())
}

/// `a` + x + `b`, with trailing newlines removed (a command substitution captures it).
fn captured(x: &str) -> Vec<u8> {
    format!("a{x}b").trim_end_matches('\n').as_bytes().to_vec()
}

/// `a` + x + `b`.
fn exact(x: &str) -> Vec<u8> {
    format!("a{x}b").into_bytes()
}

/// Templates whose output must be `a` + x + `b`, captured by a command substitution.
const CAPTURED: &[&str] = &[
    "printf %s \"$(case a in a) printf %s 'a${x}b';; esac)\"",
    "printf %s \"$(case a in (a) printf %s \"a${x}b\";; esac)\"",
    "printf %s \"$(printf %s a${x}b)\"",
    "printf %s \"$(printf %s \"a${x}b\")\"",
    "x=`printf %s a${x}b`; printf %s \"$x\"",
    "x=`printf %s \"a${x}b\"`; printf %s \"$x\"",
    "x=`printf %s 'a${x}b'`; printf %s \"$x\"",
    "printf %s \"$(x=`true ${x}; printf %s a${x}b`; printf %s \"$x\")\"",
    "x=`printf %s \"$(printf %s a${x}b)\"`; printf %s \"$x\"",
];

/// Templates whose output must be exactly `a` + x + `b`.
const EXACT: &[&str] = &[
    "printf %s a${x}b",
    "printf %s 'a${x}b'",
    "printf %s \"a${x}b\"",
    "HOME=/nonexistent-home; printf %s \"a${x}b\"",
    // After syntax that other parts of a shell read differently.
    "printf %s \\$'\\' >/dev/null; printf %s 'a${x}b'",
    "printf %s $(( 1 << 2 )) >/dev/null\nprintf %s 'a${x}b'",
    "printf %s ${FOO:-'q'} >/dev/null; printf %s 'a${x}b'",
];

/// Templates next to `$'...'` and `$"..."`: the output is a shell-dependent prefix (bash reads
/// them as ANSI-C and locale strings, dash as `$` and plain quotes), then exactly `a` + x + `b`.
const PREFIXED: &[(&str, &[&str])] = &[
    ("printf %s $'q'a${x}b", &["q", "$q"]),
    ("printf %s $'\\x41'\"a${x}b\"", &["A", "$\\x41"]),
    ("printf %s $'\\\\'a${x}b", &["\\", "$\\\\"]),
    ("printf %s $'q' 'a${x}b'", &["q", "$q"]),
    ("printf %s $\"q\"a${x}b", &["q", "$q"]),
    ("printf %s $\"q\" \"a${x}b\"", &["q", "$q"]),
    ("printf %s \"$(printf %s $'q')a${x}b\"", &["q", "$q"]),
    ("printf %s \"`printf %s $'q'`a${x}b\"", &["q", "$q"]),
    ("printf %s $'q'; printf %s a${x}b", &["q", "$q"]),
    ("printf %s $'\\t'; printf %s \"a${x}b\"", &["\t", "$\\t"]),
    ("printf %s \\$'q'a${x}b", &["$q"]),
    ("printf %s \"$'q'a${x}b\"", &["$'q'"]),
    ("printf %s \"$\"a${x}b", &["$"]),
    ("printf %s '$'a${x}b", &["$"]),
];

/// Here-doc templates whose output must be `a` + x + `b` + newline.
const HEREDOCS: &[&str] = &[
    "cat <<EOF\na${x}b\nEOF",
    "cat <<'EOF'\na${x}b\nEOF",
    "cat <<\"EOF\" # note\na${x}b\nEOF\n",
    "cat <<-EOF\na${x}b\n\tEOF",
    "cat <<EOF\n$'\\t'$\"q\"\na${x}b\nEOF",
];

/// Here-doc templates whose output must be `a` + x + `b` captured, then a newline.
const HEREDOCS_CAPTURED: &[&str] = &[
    "cat <<EOF | cat\n$(printf %s a${x}b)\nEOF",
    "cat <<EOF\n`printf %s a${x}b`\nEOF",
    "cat <<EOF\n`printf %s \"a${x}b\"`\nEOF",
];

/// Bash-only templates (process substitution) whose output must be `a` + x + `b`.
const BASH_ONLY: &[&str] = &[
    "cat <(printf %s a${x}b)",
    "printf %s \"$(cat <(printf %s \"a${x}b\"))\"",
];

/// One template and what it must print.
struct Ctx {
    src: &'static str,
    prefixes: &'static [&'static str],
    want: fn(&str) -> Vec<u8>,
    bash_only: bool,
}

impl Ctx {
    fn check(&self, x: &str, dir: &Path) -> Result<(), String> {
        if self.src.contains("<<-") && x.contains("\n\t") {
            // `<<-` strips leading tabs from every body line, the value's too (documented).
            return Ok(());
        }
        let want = (self.want)(x);
        check_output(self.src, x, self.prefixes, &want, self.bash_only, dir)
    }
}

/// Every template above.
fn contexts() -> Vec<Ctx> {
    let plain = |src, want| Ctx {
        src,
        prefixes: &[""],
        want,
        bash_only: false,
    };
    let mut all = Vec::new();
    all.extend(CAPTURED.iter().map(|s| plain(s, captured)));
    all.extend(EXACT.iter().map(|s| plain(s, exact)));
    all.extend(PREFIXED.iter().map(|(src, prefixes)| Ctx {
        src,
        prefixes,
        want: exact,
        bash_only: false,
    }));
    all.extend(HEREDOCS.iter().map(|s| Ctx {
        src: s,
        // Neither shell reads `$'...'` or `$"..."` in a here-document body.
        prefixes: if s.contains("$'") {
            &["$'\\t'$\"q\"\n"]
        } else {
            &[""]
        },
        want: |x| {
            let mut w = exact(x);
            w.push(b'\n');
            w
        },
        bash_only: false,
    }));
    all.extend(HEREDOCS_CAPTURED.iter().map(|s| {
        plain(s, |x| {
            let mut w = captured(x);
            w.push(b'\n');
            w
        })
    }));
    all.extend(BASH_ONLY.iter().map(|src| Ctx {
        src,
        prefixes: &[""],
        want: captured,
        bash_only: true,
    }));
    all
}

const INJECTIONS: &[&str] = &[
    "\"; rm -rf ~; echo \"",
    "$(touch PWNED)",
    "`touch PWNED`",
    "'",
    "'; touch PWNED; '",
    "\"; touch PWNED; \"",
    "\ntouch PWNED\n",
    "\\",
    "\\'",
    "\\\\'; touch PWNED; '",
    "'\\''$(touch PWNED)'\\''",
    "$'\\x27'; touch PWNED; '",
    "\\\"; touch PWNED; \\\"",
    "`; touch PWNED; `",
    "\\`touch PWNED\\`",
    "$((1+1))${HOME}$HOME",
    "a[$(touch PWNED)]",
    ")); touch PWNED; ((",
    "# x\ntouch PWNED",
    "'\"`$\\\n",
    "",
];

#[test]
fn dash_and_bash_are_checked_when_installed() {
    let all = shells();
    for need in ["/bin/dash", "/bin/bash"] {
        let installed = Path::new(need).exists();
        assert_eq!(all.iter().any(|s| s.path == need), installed, "{need}");
    }
    assert!(all.iter().any(|s| s.path == "/bin/sh") || Path::new("/bin/dash").exists());
}

#[test]
fn injection_attempts_are_literal_in_every_context() {
    let dir = tempfile::tempdir().unwrap();
    for ctx in contexts() {
        for x in INJECTIONS {
            ctx.check(x, dir.path()).unwrap();
        }
    }
}

#[test]
fn comment_placeholders_cannot_end_the_comment() {
    let dir = tempfile::tempdir().unwrap();
    check_output(
        "printf ok # ${x}",
        "\ntouch PWNED\n",
        &[""],
        b"ok",
        false,
        dir.path(),
    )
    .unwrap();
}

/// Arithmetic templates whose output must be x + 1; `true` marks bash-only syntax.
const ARITHMETIC: &[(&str, bool)] = &[
    ("printf %s $(( ${x} + 1 ))", false),
    ("printf %s \"$(( ${x} + 1 ))\"", false),
    ("printf %s $(((${x})+1))", false),
    ("printf %s $(( $(( ${x} )) + 1 ))", false),
    ("printf %s \"$(printf %s $(( ${x} + 1 )))\"", false),
    ("x=`printf %s $(( ${x} + 1 ))`; printf %s \"$x\"", false),
    (
        "x=$(cat <<EOF\n$(( ${x} + 1 ))\nEOF\n); printf %s \"$x\"",
        false,
    ),
    ("(( y = ${x} + 1 )); printf %s $y", true),
    ("for (( y = ${x} + 1; 0; )); do :; done; printf %s $y", true),
    (
        "[[ ${x} -lt $(( ${x} + 1 )) ]] && printf %s $(( ${x} + 1 ))",
        true,
    ),
    (
        "a[${x} - ${x} + 3]=1; printf %s $(( ${!a[@]} + ${x} - 2 ))",
        true,
    ),
];

fn check_arithmetic(x: &str, dir: &Path) -> Result<(), String> {
    let n: i64 = x
        .trim()
        .parse()
        .map_err(|_| format!("{x:?} is not a number"))?;
    let want = (n + 1).to_string();
    for (ctx, bash_only) in ARITHMETIC {
        check_output(ctx, x, &[""], want.as_bytes(), *bash_only, dir)?;
    }
    Ok(())
}

#[test]
fn integers_work_in_arithmetic() {
    let dir = tempfile::tempdir().unwrap();
    for x in ["0", "7", "41", "-3", "+5", "1000000"] {
        check_arithmetic(x, dir.path()).unwrap();
    }
}

#[test]
fn other_values_are_refused_in_arithmetic() {
    for x in INJECTIONS
        .iter()
        .chain(&["1.5", " 1", "0x10", "1e3", "a", "_", "--1", "1-1"])
    {
        for (ctx, _) in ARITHMETIC {
            match render(ctx, x) {
                Err(RenderError::NotAnInteger { var, .. }) => assert_eq!(var, "x"),
                other => panic!("{ctx:?} with {x:?}: {other:?}"),
            }
        }
    }
}

mod props {
    use super::*;
    use proptest::prelude::*;

    fn meta_string() -> impl Strategy<Value = String> {
        let meta = prop::sample::select(vec![
            '\'', '"', '`', '$', '(', ')', ';', '&', '|', '\\', '\n', ' ', '*', '?', '~', '!', '#',
            '{', '}', '<', '>', '\t', 'a', 'é', '☃', '😀', '%', '-', '=', '[', ']', 'x', '0',
        ]);
        prop::collection::vec(meta, 0..24).prop_map(|v| v.into_iter().collect())
    }

    fn any_string() -> impl Strategy<Value = String> {
        prop::collection::vec(any::<char>().prop_filter("no NUL", |c| *c != '\0'), 0..16)
            .prop_map(|v| v.into_iter().collect())
    }

    /// Pieces of shell syntax that change how the text after them is read, in some shells.
    fn syntax_text() -> impl Strategy<Value = String> {
        let tokens = prop::sample::select(vec![
            "$'",
            "$\"",
            "'",
            "\"",
            "`",
            "\\`",
            "\\",
            "\\'",
            "\\\"",
            "\\\\",
            "$(",
            "$((",
            "((",
            "))",
            "(",
            ")",
            "${A:-",
            "${A#",
            "}",
            "[[ ",
            " ]]",
            " -eq ",
            "a[",
            "]=",
            "]",
            "$[",
            "<<E\n",
            "\nE\n",
            "<<'E'\n",
            "<<-E\n",
            "#",
            ";",
            "\n",
            " ",
            "\t",
            "case a in a) ",
            ";; esac",
            "for ",
            "in ",
            "a",
            "=",
            "<(",
            ">&",
            "|",
            "&",
            "$",
            "$$",
            "\\\n",
            "{ ",
            " }",
            "<<",
            "<",
            ">",
            "$'\\''",
            "$'\\\\'",
            "\"$'",
            "'$\"",
            "$'\\t'",
            "\\$'",
            "$\"$(",
            " -lt ",
            "a=(",
            "+=",
            "[",
            "<<<",
            "\"${A:-",
            "if ",
            " then ",
            "; fi",
            "2>&",
            ">(",
        ]);
        prop::collection::vec(tokens, 0..10).prop_map(|v| v.concat())
    }

    /// The value the random templates are rendered with: it runs `touch PWNED` if any part of
    /// it is ever read as code, in any quoting context or as arithmetic.
    const PAYLOADS: &[&str] = &[
        "'\"`;touch PWNED;`$(touch PWNED)\\'\\\ntouch PWNED #\nEOF\nE\ntouch PWNED\n)",
        "a[$(touch PWNED)]",
    ];

    /// Whether the text defines a shell function (`f()`), which could recurse forever.
    fn defines_function(s: &str) -> bool {
        let flat: String = s.replace("\\\n", "").split_whitespace().collect();
        flat.contains("()")
    }

    /// Whatever the scanner decides for `src` (the template alphabet cannot spell `touch`),
    /// a hostile value must never run a command under any shell.
    fn never_runs_the_value(src: &str) -> Result<(), TestCaseError> {
        let Ok(t) = Template::parse(src, &known) else {
            return Ok(());
        };
        if defines_function(src) {
            return Ok(());
        }
        let with = |value: &str| render_template(&t, value);
        // A number is valid everywhere, arithmetic included.
        let Ok(benign) = with("1") else {
            return Ok(());
        };
        let dir = tempfile::tempdir().unwrap();
        for shell in shells() {
            // Only syntactically valid templates: after a syntax error bash resumes at the next
            // line, which may be inside a multi-line quoted value.
            if !shell.parses(&benign) {
                continue;
            }
            for payload in PAYLOADS {
                let Ok(cmd) = with(payload) else { continue };
                let _ = shell.run(&cmd, dir.path());
                prop_assert!(
                    !dir.path().join("PWNED").exists(),
                    "{} ran the value: template {:?} rendered {:?}",
                    shell,
                    src,
                    cmd
                );
            }
        }
        Ok(())
    }

    /// `x` in the context `pick` chooses reaches every shell as exactly its bytes.
    fn exact_bytes_in_a_context(x: &str, pick: prop::sample::Index) -> Result<(), TestCaseError> {
        let dir = tempfile::tempdir().unwrap();
        let all = contexts();
        let r = all[pick.index(all.len())].check(x, dir.path());
        prop_assert!(r.is_ok(), "{}", r.unwrap_err());
        Ok(())
    }

    /// Templates the property tests below once found running the value (`${x}`), kept as
    /// plain regression cases.
    const FOUND: &[&str] = &[
        "$'\\${x}${x}$'\\",
        "$'\\${x}\"\n${x}$'\\",
        "]=}${x}$[${x}]=}",
        "$'\\''<<'E'\n${x}${x}$'\\''<<'E'\n",
        "\"$'$\"$((${x}${A:-)case a in a) # }${x}\"$'$\"$((",
        "$'``${x}\\'${x}$'``",
        "<<E\n`${x}\\\\${x}<<E\n`",
        "${x}<<E\n$(${x}",
        "e''`${x}<<\\\\\nn;${x}e''`",
        "e`${x}<<s)${x}e`",
        "$$\"$(<case a in a) ${x}${x}$$\"$(<case a in a) ",
        "a`${x}\\\\``${x}a`",
        "[[ <<E\n$\"$(>&case a in a) ${x}${x}[[ <<E\n$\"$(>&case a in a) ",
        "a[<<'E'\n${x}]=${x}a[<<'E'\n",
        "$'\\\\'<<E\n$(${x}\\$'\nE\n${x}$'\\\\'<<E\n$(",
        "`${x}\\\\\\`${x}`",
        "${x}<&-#;${x}",
    ];

    #[test]
    fn found_templates_never_run_the_value() {
        for src in FOUND {
            if let Err(e) = never_runs_the_value(src) {
                panic!("{src:?}: {e}");
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn shells_receive_exact_bytes_meta(x in meta_string(), pick in any::<prop::sample::Index>()) {
            exact_bytes_in_a_context(&x, pick)?;
        }

        #[test]
        fn shells_receive_exact_bytes_any(x in any_string(), pick in any::<prop::sample::Index>()) {
            exact_bytes_in_a_context(&x, pick)?;
        }

        #[test]
        fn arithmetic_gets_integers_or_nothing(x in prop_oneof![
            any::<i32>().prop_map(|n| n.to_string()),
            meta_string(),
        ]) {
            let dir = tempfile::tempdir().unwrap();
            if x.parse::<i32>().is_ok() {
                let r = check_arithmetic(&x, dir.path());
                prop_assert!(r.is_ok(), "{}", r.unwrap_err());
            } else {
                for (ctx, _) in ARITHMETIC {
                    let r = render(ctx, &x);
                    prop_assert!(
                        matches!(r, Err(RenderError::NotAnInteger { .. })),
                        "{:?} with {:?}: {:?}", ctx, x, r
                    );
                }
            }
        }

        /// Random shell-ish characters around two placeholders.
        #[test]
        fn random_templates_never_run_the_value(
            pre in "[acesinEOF'\"`$();|&\\\\\n #{}<>=-]{0,24}",
            post in "[acesinEOF'\"`$();|&\\\\\n #{}<>=-]{0,24}",
        ) {
            never_runs_the_value(&format!("{pre}${{x}}{post}${{x}}{pre}"))?;
        }

        /// Random pieces of shell syntax (quotes of every kind, substitutions, arithmetic,
        /// here-documents, `[[ ]]`, array subscripts) around two placeholders.
        #[test]
        fn random_syntax_never_runs_the_value(pre in syntax_text(), post in syntax_text()) {
            never_runs_the_value(&format!("{pre}${{x}}{post}${{x}}{pre}"))?;
        }
    }
}
