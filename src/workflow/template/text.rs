//! `${...}` placeholders in workflow shell steps.
//!
//! A [`Template`] is parsed once from a step's command string. Placeholders name runner
//! variables (`${item.a.b}`, `${item.list[0]}`, `${item_id}`, `${job.id}`, `${attempt}`,
//! `${env.NAME}`, `${map.total}`, `${workflow.name}`, captured variables `${name}`, ...).
//! [`Template::render_shell`] escapes each value for the quoting context the placeholder stands
//! in (bare word, `'...'`, `"..."`, see [`super::scan`]), so that `sh` receives
//! exactly the value's bytes as literal text; a `:raw` suffix (`${item.cmd:raw}`) opts out.
//!
//! Shell parameter expansions pass through untouched: `$HOME`, `${HOME}`, `${FOO:-x}`,
//! `${#x}`, `${x%.png}`, `$$`, and `\${...}` (backslash-escaped, outside single quotes).
//! A `${name}` in runner syntax whose root is neither a runner variable nor an upper-case
//! shell-style name (`${PATH}`) is an error, to catch typos such as `${itme.x}`; so is a
//! known root followed by a broken path (`${item.}`, `${item.name%.png}`).
//!
//! A placeholder inside single quotes (`echo '${item.name}'`) is still a placeholder, escaped
//! for that context. In a `#` comment, newlines in the value become spaces. Inside
//! `` `...` `` the escaped text gets the extra backslashes backquotes need. Placeholders
//! inside shell `${...}` expansions and nested backquotes are rejected, and so are those
//! inside bash's `$'...'` and `$"..."`, which dash reads as `$` and plain quotes: no escaping
//! is right for both. In shell arithmetic (`$((...))`, bash `((...))`, array subscripts,
//! `let`, `[[ ... -eq ... ]]`) the shell evaluates the text whatever its quotes, so only an
//! integer value is inserted there.
//!
//! In a here-document body, a value is inserted as body text: with `\`, `$` and `` ` ``
//! backslash-escaped in an unquoted here-doc (`<<EOF`), verbatim in a quoted one (`<<'EOF'`);
//! rendering fails if the value would form the delimiter line and end the here-doc early.

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;

use serde_json::Value;
use thiserror::Error;

pub use super::quote::Quoting;
use super::quote::{escape_backquoted, escape_for};
pub use super::scan::{Arith, HereDoc};
use super::scan::{ScanContext, Scanner};

/// The roots runner itself defines (captured variable names come on top of these).
pub const BUILTIN_ROOTS: &[&str] = &[
    "item",
    "item_id",
    "item_index",
    "item_json",
    "job",
    "attempt",
    "env",
    "map",
    "workflow",
    "shell",
    "validation",
];

/// One step of a path below a variable's root.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PathSeg {
    Key(String),
    Index(usize),
}

/// A variable reference: a root and a path, e.g. `item.a[0]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VarRef {
    pub root: String,
    pub path: Vec<PathSeg>,
}

impl VarRef {
    /// A reference to a root alone.
    pub fn root(name: impl Into<String>) -> VarRef {
        VarRef {
            root: name.into(),
            path: Vec::new(),
        }
    }
}

fn is_ident(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty() && ident_len(b, 0) == b.len()
}

/// Length of the `[A-Za-z_][A-Za-z0-9_-]*` identifier starting at `i` (0 if none).
fn ident_len(b: &[u8], i: usize) -> usize {
    match b.get(i) {
        Some(c) if c.is_ascii_alphabetic() || *c == b'_' => {}
        _ => return 0,
    }
    1 + b[i + 1..]
        .iter()
        .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_' || **c == b'-')
        .count()
}

impl fmt::Display for PathSeg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathSeg::Key(k) if is_ident(k) => write!(f, ".{k}"),
            PathSeg::Key(k) => {
                let quoted = serde_json::to_string(k).map_err(|_| fmt::Error)?;
                write!(f, "[{quoted}]")
            }
            PathSeg::Index(i) => write!(f, "[{i}]"),
        }
    }
}

impl fmt::Display for VarRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.root)?;
        for seg in &self.path {
            write!(f, "{seg}")?;
        }
        Ok(())
    }
}

/// One `${...}` placeholder found in a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placeholder {
    pub var: VarRef,
    /// `:raw`: insert the text without escaping.
    pub raw: bool,
    /// The quoting context the placeholder stands in.
    pub quoting: Quoting,
    /// Byte offsets of `${...}` in the source.
    pub span: Range<usize>,
    /// Inside a `#` comment: newlines in the value are replaced by spaces so that the value
    /// cannot end the comment.
    pub in_comment: bool,
    /// Inside an old-style `` `...` `` command substitution: the escaped text gets one more
    /// level of backslashes.
    pub in_backquotes: bool,
    /// Inside a here-document body (then `quoting` is [`Quoting::Bare`] and is not used).
    pub heredoc: Option<HereDoc>,
    /// Inside shell arithmetic: only an integer is inserted, as is.
    pub arithmetic: Option<Arith>,
    /// Every here-document body around the placeholder, also through substitutions: the
    /// value must not form one of their delimiter lines.
    pub heredoc_bodies: Vec<HereDoc>,
    /// Prodigy's `${x:-default}` / `${x|default:y}`: the text used when `x` has no value.
    pub default: Option<String>,
}

impl fmt::Display for Placeholder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "${{{}{}}}", self.var, if self.raw { ":raw" } else { "" })
    }
}

/// A piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    Lit(String),
    Var(Placeholder),
}

/// A parsed command string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
    source: String,
}

/// Errors found while parsing a template.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TemplateError {
    #[error(
        "unknown variable `{text}` at byte {offset} (known: {known}; for a shell variable write {shell_hint})"
    )]
    UnknownVariable {
        /// The root name that is not known.
        name: String,
        /// The whole placeholder text, `${...}`.
        text: String,
        offset: usize,
        /// The built-in roots accepted here, comma separated, plus a note on captures.
        known: String,
        shell_hint: String,
    },
    #[error("malformed placeholder `{text}` at byte {offset}: {reason}")]
    Malformed {
        text: String,
        offset: usize,
        reason: String,
    },
    #[error(
        "placeholder `{text}` at byte {offset} is inside or after nested backquotes (or after `\\\"` in backquotes in a here-document, or in backquotes inside double quotes), which cannot be quoted safely; use $(...) instead of the backquotes"
    )]
    NestedBackquotes { text: String, offset: usize },
    #[error(
        "placeholder `{text}` at byte {offset} is inside a shell `${{...}}` expansion, where it cannot be quoted safely; assign it to a shell variable first (v={text}; ...)"
    )]
    InShellExpansion { text: String, offset: usize },
    #[error(
        "placeholder `{text}` at byte {offset} is the target of a `>&`/`<&` redirection, which bash expands twice; write `> file 2>&1` instead"
    )]
    InDupRedirection { text: String, offset: usize },
    #[error(
        "placeholder `{text}` at byte {offset} is inside {what}, bash-only quoting that other shells read differently ({why}), so no escaping is right for every /bin/sh; close the string before it, e.g. {example}"
    )]
    BashQuoting {
        text: String,
        offset: usize,
        what: String,
        why: String,
        example: String,
    },
    #[error(
        "placeholder `{text}` at byte {offset} follows {what}, which runner cannot analyse to quote the value safely"
    )]
    Unsupported {
        text: String,
        offset: usize,
        what: String,
    },
}

/// Errors found while rendering a template.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RenderError {
    #[error("no value for `${{{var}}}`: {reason}")]
    Unknown { var: String, reason: String },
    #[error("the value of `${{{var}}}` contains a NUL byte, which cannot be passed to a command")]
    Nul { var: String },
    #[error(
        "the value of `${{{var}}}` would form the line `{delimiter}` and end its here-document early"
    )]
    HereDocDelimiter { var: String, delimiter: String },
    #[error(
        "the value of `${{{var}}}` is {value}, not an integer, and it stands in {context}, where the shell evaluates it as arithmetic (bash even runs commands found in array subscripts); only an integer such as 42 or -7 is inserted there{hint}"
    )]
    NotAnInteger {
        var: String,
        /// A short, quoted preview of the value.
        value: String,
        /// The arithmetic construct, e.g. `` `$((...))` ``.
        context: String,
        /// What to write instead.
        hint: String,
    },
}

/// The outcome of looking at one `${`.
enum Scan {
    Placeholder {
        var: VarRef,
        raw: bool,
        default: Option<String>,
        end: usize,
    },
    Shell,
}

/// What follows a variable's path.
struct Rest {
    path: Vec<PathSeg>,
    raw: bool,
    default: Option<String>,
    /// Index after the closing `}`.
    end: usize,
}

/// Which placeholder syntax a template accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Syntax {
    /// Prodigy's defaults `${x:-default}` and `${x|default:y}` on runner variables. Off,
    /// `${item:-x}` is left to the shell as a shell expansion.
    pub defaults: bool,
    /// The text is never read by a shell (a Claude command, a file's content, a path, an
    /// environment value): a placeholder may stand anywhere, even where a shell would
    /// misread it. Such a template must only be rendered with `render_plain`.
    pub plain: bool,
}

/// The default text of `${x:-text}` or `${x|default:text}` whose marker ends before `i`:
/// everything up to the closing `}` (no `$`, `{`, `}` or newline inside).
fn parse_default(src: &str, i: usize) -> Result<(String, usize), String> {
    let rest = &src[i..];
    match rest.find(['}', '$', '{', '\n']) {
        Some(n) if rest.as_bytes()[n] == b'}' => Ok((rest[..n].to_string(), i + n + 1)),
        _ => Err(
            "a default value ends at the first `}` and cannot contain `$`, `{` or a newline".into(),
        ),
    }
}

/// Parse the part after the root: `( '.' key | '[' digits ']' | '["' json '"]' )* (':raw')? '}'`
/// (or, with `syntax.defaults`, a `:-default` / `|default:text` before the `}`).
fn parse_rest(src: &str, mut i: usize, syntax: Syntax) -> Result<Rest, String> {
    let b = src.as_bytes();
    let mut path = Vec::new();
    loop {
        match b.get(i) {
            None => return Err("missing closing `}`".into()),
            Some(b'}') => {
                return Ok(Rest {
                    path,
                    raw: false,
                    default: None,
                    end: i + 1,
                });
            }
            Some(b'|') if syntax.defaults && src[i..].starts_with("|default:") => {
                let (default, end) = parse_default(src, i + "|default:".len())?;
                return Ok(Rest {
                    path,
                    raw: false,
                    default: Some(default),
                    end,
                });
            }
            Some(b':') if syntax.defaults && src[i..].starts_with(":-") => {
                let (default, end) = parse_default(src, i + 2)?;
                return Ok(Rest {
                    path,
                    raw: false,
                    default: Some(default),
                    end,
                });
            }
            Some(b'.') => {
                let n = ident_len(b, i + 1);
                if n == 0 {
                    return Err("expected a key name after `.`".into());
                }
                path.push(PathSeg::Key(src[i + 1..i + 1 + n].to_string()));
                i += 1 + n;
            }
            Some(b'[') if b.get(i + 1) == Some(&b'"') => {
                let start = i + 1;
                let mut j = start + 1;
                loop {
                    match b.get(j) {
                        None => return Err("unterminated quoted key".into()),
                        Some(b'\\') => j += 2,
                        Some(b'"') => break,
                        Some(_) => j += 1,
                    }
                }
                let key: String = serde_json::from_str(&src[start..=j])
                    .map_err(|e| format!("invalid quoted key: {e}"))?;
                if b.get(j + 1) != Some(&b']') {
                    return Err("expected `]` after quoted key".into());
                }
                path.push(PathSeg::Key(key));
                i = j + 2;
            }
            Some(b'[') => {
                let n = b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
                if n == 0 || b.get(i + 1 + n) != Some(&b']') {
                    return Err("expected `[digits]` or `[\"key\"]`".into());
                }
                let idx = src[i + 1..i + 1 + n]
                    .parse::<usize>()
                    .map_err(|_| "index out of range".to_string())?;
                path.push(PathSeg::Index(idx));
                i += n + 2;
            }
            Some(b':') => {
                if src[i..].starts_with(":raw}") {
                    return Ok(Rest {
                        path,
                        raw: true,
                        default: None,
                        end: i + 5,
                    });
                }
                return Err("only `:raw` may follow a variable".into());
            }
            Some(_) => return Err("unexpected character".into()),
        }
    }
}

fn is_upper_shell_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && (b[0].is_ascii_uppercase() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == b'_')
}

fn is_shell_name(s: &str) -> bool {
    is_ident(s) && !s.contains('-')
}

/// Text of the `${...}` starting at `start` for error messages (up to `}` or a short cut).
fn placeholder_text(src: &str, start: usize) -> String {
    let rest = &src[start..];
    match rest.find('}') {
        Some(n) if n < 200 => rest[..=n].to_string(),
        _ => rest.chars().take(40).collect(),
    }
}

fn classify(
    src: &str,
    start: usize,
    is_known_root: &dyn Fn(&str) -> bool,
    syntax: Syntax,
) -> Result<Scan, TemplateError> {
    let b = src.as_bytes();
    let root_start = start + 2;
    let n = ident_len(b, root_start);
    if n == 0 {
        return Ok(Scan::Shell);
    }
    let root = &src[root_start..root_start + n];
    let known = is_known_root(root);
    let rest = parse_rest(src, root_start + n, syntax);
    // A default on a name that is not a runner variable is the shell's own `${name:-x}`.
    let rest = match rest {
        Ok(r) if r.default.is_some() && !known && src[root_start + n..].starts_with(":-") => {
            return Ok(Scan::Shell);
        }
        other => other,
    };
    match rest {
        Ok(Rest {
            path,
            raw,
            default,
            end,
        }) => {
            if known {
                return Ok(Scan::Placeholder {
                    var: VarRef {
                        root: root.to_string(),
                        path,
                    },
                    raw,
                    default,
                    end,
                });
            }
            let plain_env =
                path.is_empty() && !raw && default.is_none() && is_upper_shell_name(root);
            // `${FOO-default}`: a shell default-value expansion.
            let shell_default = root
                .split_once('-')
                .is_some_and(|(name, _)| is_upper_shell_name(name));
            if plain_env || shell_default {
                return Ok(Scan::Shell);
            }
            let known_list: Vec<&str> = BUILTIN_ROOTS
                .iter()
                .copied()
                .filter(|r| is_known_root(r))
                .collect();
            let shell_hint = if is_shell_name(root) {
                format!("${root}")
            } else {
                "$NAME".to_string()
            };
            Err(TemplateError::UnknownVariable {
                name: root.to_string(),
                text: src[start..end].to_string(),
                offset: start,
                known: format!(
                    "{}, or a name captured by an earlier step",
                    known_list.join(", ")
                ),
                shell_hint,
            })
        }
        Err(reason) => {
            let after = &src[root_start + n..];
            let ours = after.is_empty()
                || after.starts_with('.')
                || after.starts_with('[')
                || after.starts_with(":raw");
            if known && ours {
                Err(TemplateError::Malformed {
                    text: placeholder_text(src, start),
                    offset: start,
                    reason,
                })
            } else {
                Ok(Scan::Shell)
            }
        }
    }
}

/// Resolve a path inside a JSON value: `item.a[0]` -> `value.get("a")?.get(0)`.
pub fn resolve_path<'v>(value: &'v Value, path: &[PathSeg]) -> Option<&'v Value> {
    let mut v = value;
    for seg in path {
        v = match (seg, v) {
            (PathSeg::Key(k), Value::Object(m)) => m.get(k)?,
            (PathSeg::Index(i), Value::Array(a)) => a.get(*i)?,
            _ => return None,
        };
    }
    Some(v)
}

/// How a value is inserted: strings as their text, everything else as compact JSON.
pub fn value_text(v: &Value) -> Cow<'_, str> {
    match v {
        Value::String(s) => Cow::Borrowed(s),
        other => Cow::Owned(other.to_string()),
    }
}

fn kind_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The errors of a placeholder `text` (at byte `offset`) where a shell would misread it.
fn shell_context_allows(ctx: &ScanContext, text: &str, offset: usize) -> Result<(), TemplateError> {
    if ctx.in_shell_expansion {
        return Err(TemplateError::InShellExpansion {
            text: text.to_string(),
            offset,
        });
    }
    if let Some(what) = ctx.unsupported {
        return Err(TemplateError::Unsupported {
            text: text.to_string(),
            offset,
            what: what.to_string(),
        });
    }
    if ctx.in_dup_target {
        return Err(TemplateError::InDupRedirection {
            text: text.to_string(),
            offset,
        });
    }
    if ctx.nested_backquotes {
        return Err(TemplateError::NestedBackquotes {
            text: text.to_string(),
            offset,
        });
    }
    if let Some(what) = ctx.bash_quote {
        return Err(bash_quoting_error(text, offset, what));
    }
    Ok(())
}

impl Template {
    /// Parse `src`; `is_known_root` says which roots are runner variables (the built-in
    /// roots available in this context plus the declared capture names).
    pub fn parse(
        src: &str,
        is_known_root: &dyn Fn(&str) -> bool,
    ) -> Result<Template, TemplateError> {
        Self::parse_with(src, is_known_root, Syntax::default())
    }

    /// [`Template::parse`] with the placeholder syntax of workflows (Prodigy's defaults).
    pub fn parse_with(
        src: &str,
        is_known_root: &dyn Fn(&str) -> bool,
        syntax: Syntax,
    ) -> Result<Template, TemplateError> {
        let b = src.as_bytes();
        let mut parts = Vec::new();
        let mut sc = Scanner::new();
        let mut lit = 0;
        let mut i = 0;
        // Placeholders (part index) in bash `[[ ... ]]` tests (test number).
        let mut tests = Vec::new();
        while i < b.len() {
            if b[i] == b'$'
                && b.get(i + 1) == Some(&b'{')
                && let Scan::Placeholder {
                    var,
                    raw,
                    default,
                    end,
                } = classify(src, i, is_known_root, syntax)?
            {
                let ctx = sc.context();
                if !syntax.plain {
                    shell_context_allows(&ctx, &src[i..end], i)?;
                }
                if let Some(id) = ctx.test {
                    tests.push((parts.len() + usize::from(lit < i), id));
                }
                if lit < i {
                    parts.push(Part::Lit(src[lit..i].to_string()));
                }
                parts.push(Part::Var(Placeholder {
                    var,
                    raw,
                    quoting: ctx.quoting,
                    span: i..end,
                    in_comment: ctx.in_comment,
                    in_backquotes: ctx.in_backquotes,
                    heredoc: ctx.heredoc,
                    arithmetic: ctx.arithmetic,
                    heredoc_bodies: ctx.heredoc_bodies,
                    default,
                }));
                sc.after_placeholder();
                i = end;
                lit = end;
                continue;
            }
            i = sc.step(b, i);
        }
        if lit < b.len() {
            parts.push(Part::Lit(src[lit..].to_string()));
        }
        for (at, id) in tests {
            if let (Part::Var(ph), true) = (&mut parts[at], sc.test_is_arithmetic(id)) {
                ph.arithmetic = Some(Arith::Test);
            }
        }
        Ok(Template {
            parts,
            source: src.to_string(),
        })
    }

    /// The source text this template was parsed from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The literal and placeholder parts, in order.
    pub fn parts(&self) -> &[Part] {
        &self.parts
    }

    /// The placeholders, in order.
    pub fn placeholders(&self) -> impl Iterator<Item = &Placeholder> {
        self.parts.iter().filter_map(|p| match p {
            Part::Var(ph) => Some(ph),
            Part::Lit(_) => None,
        })
    }

    /// True when the template has no placeholders.
    pub fn is_static(&self) -> bool {
        self.placeholders().next().is_none()
    }

    /// Render for `sh -c`: each value escaped for its quoting context (unless `:raw`).
    pub fn render_shell<'a>(
        &self,
        lookup: &dyn Fn(&VarRef) -> Option<Cow<'a, Value>>,
    ) -> Result<String, RenderError> {
        self.render(lookup, true)
    }

    /// Render without escaping (for env values, item ids, file names).
    pub fn render_plain<'a>(
        &self,
        lookup: &dyn Fn(&VarRef) -> Option<Cow<'a, Value>>,
    ) -> Result<String, RenderError> {
        self.render(lookup, false)
    }

    fn render<'a>(
        &self,
        lookup: &dyn Fn(&VarRef) -> Option<Cow<'a, Value>>,
        shell: bool,
    ) -> Result<String, RenderError> {
        let mut out = String::with_capacity(self.source.len());
        // Output ranges of values inserted into here-document bodies, checked at the end.
        let mut heredoc_values = Vec::new();
        for part in &self.parts {
            let ph = match part {
                Part::Lit(s) => {
                    out.push_str(s);
                    continue;
                }
                Part::Var(ph) => ph,
            };
            let value = match (lookup(&ph.var), &ph.default) {
                (Some(v), _) => v,
                (None, Some(d)) => Cow::Owned(Value::String(d.clone())),
                (None, None) => {
                    return Err(RenderError::Unknown {
                        var: ph.var.to_string(),
                        reason: missing_reason(&ph.var, lookup),
                    });
                }
            };
            let text = value_text(&value);
            if text.contains('\0') {
                return Err(RenderError::Nul {
                    var: ph.var.to_string(),
                });
            }
            if !shell || ph.raw {
                out.push_str(&text);
                continue;
            }
            let text = if ph.in_comment {
                Cow::Owned(text.replace('\n', " "))
            } else {
                text
            };
            let escaped = match (&ph.heredoc, ph.arithmetic) {
                (_, Some(context)) if !is_integer(&text) => {
                    let var = ph.var.to_string();
                    let hint = if context == Arith::Subscript {
                        format!(
                            "; for an associative array key, assign it to a shell variable first (k=${{{var}}}; m[$k]=...)"
                        )
                    } else {
                        format!("; for a trusted expression use `${{{var}:raw}}`")
                    };
                    return Err(RenderError::NotAnInteger {
                        var,
                        value: preview(&text),
                        context: context.name().to_string(),
                        hint,
                    });
                }
                // Digits and a sign are literal in every quoting context.
                (_, Some(_)) => text.into_owned(),
                (Some(doc), _) if doc.quoted => text.into_owned(),
                (Some(_), _) => escape_heredoc(&text),
                (None, _) => escape_for(ph.quoting, &text),
            };
            let start = out.len();
            if ph.in_backquotes {
                out.push_str(&escape_backquoted(&escaped));
            } else {
                out.push_str(&escaped);
            }
            for doc in &ph.heredoc_bodies {
                heredoc_values.push((start..out.len(), doc, ph));
            }
        }
        for (range, doc, ph) in heredoc_values {
            if forms_delimiter(&out, range, doc) {
                return Err(RenderError::HereDocDelimiter {
                    var: ph.var.to_string(),
                    delimiter: doc.delimiter.clone(),
                });
            }
        }
        Ok(out)
    }
}

/// Whether `s` is a decimal integer (optionally signed), the only text that means the same
/// number, and nothing else, in shell arithmetic.
fn is_integer(s: &str) -> bool {
    let digits = s.strip_prefix(['-', '+']).unwrap_or(s);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// A short quoted preview of a value for error messages.
fn preview(s: &str) -> String {
    let mut p: String = s.chars().take(40).collect();
    if p.len() < s.len() {
        p.push_str("...");
    }
    format!("{p:?}")
}

/// The error for a placeholder inside bash's `$'...'` or `$"..."` (`what`).
fn bash_quoting_error(text: &str, offset: usize, what: &str) -> TemplateError {
    let (why, example) = if what.contains('\'') {
        (
            "bash reads backslash escapes such as \\t there, dash reads `$` and a plain '...'",
            format!("$'\\t'\"{text}\""),
        )
    } else {
        (
            "bash looks the whole string up in a translation catalogue, dash reads `$` and a plain \"...\"",
            format!("\"{text}\""),
        )
    };
    TemplateError::BashQuoting {
        text: text.to_string(),
        offset,
        what: what.to_string(),
        why: why.to_string(),
        example,
    }
}

/// Escape text for an unquoted here-document body: `\`, `$` and `` ` `` get a backslash.
fn escape_heredoc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '$' | '`' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Whether any output line touching `range` (an inserted value) is the here-doc's delimiter.
fn forms_delimiter(out: &str, range: Range<usize>, doc: &HereDoc) -> bool {
    let start = out[..range.start.min(out.len())]
        .rfind('\n')
        .map_or(0, |p| p + 1);
    let end = out[range.end.min(out.len())..]
        .find('\n')
        .map_or(out.len(), |p| range.end + p);
    out[start..end].split('\n').any(|line| {
        let line = if doc.strip_tabs {
            line.trim_start_matches('\t')
        } else {
            line
        };
        line == doc.delimiter
    })
}

/// Explain why `var` has no value, by resolving its path step by step from the root.
fn missing_reason<'a>(var: &VarRef, lookup: &dyn Fn(&VarRef) -> Option<Cow<'a, Value>>) -> String {
    let what = if var.root == "item" {
        "the item".to_string()
    } else {
        format!("`{}`", var.root)
    };
    if var.path.is_empty() {
        return format!("{what} is not set here");
    }
    let Some(root) = lookup(&VarRef::root(var.root.clone())) else {
        return format!("`{}` is not set here", var.root);
    };
    let mut v: &Value = &root;
    let mut at = VarRef::root(var.root.clone());
    for seg in &var.path {
        let here = if at.path.is_empty() {
            what.clone()
        } else {
            format!("`{at}`")
        };
        let next = match (seg, v) {
            (PathSeg::Key(k), Value::Object(m)) => match m.get(k) {
                Some(n) => n,
                None => return format!("{here} has no field `{k}`"),
            },
            (PathSeg::Index(i), Value::Array(a)) => match a.get(*i) {
                Some(n) => n,
                None => {
                    return format!("{here} has no index {i} (length {})", a.len());
                }
            },
            (PathSeg::Key(k), other) => {
                return format!("{here} is {}, so it has no field `{k}`", kind_name(other));
            }
            (PathSeg::Index(i), other) => {
                return format!("{here} is {}, so it has no index {i}", kind_name(other));
            }
        };
        v = next;
        at.path.push(seg.clone());
    }
    "the value is not available".to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::process::Command;

    fn known(r: &str) -> bool {
        BUILTIN_ROOTS.contains(&r) || r == "out" || r == "x"
    }

    fn parse(src: &str) -> Result<Template, TemplateError> {
        Template::parse(src, &known)
    }

    fn phs(src: &str) -> Vec<Placeholder> {
        parse(src).unwrap().placeholders().cloned().collect()
    }

    fn key(k: &str) -> PathSeg {
        PathSeg::Key(k.to_string())
    }

    /// Lookup over `item` (the JSON below) and `x` (a string).
    fn lookup_with<'a>(item: &'a Value, x: &'a str) -> impl Fn(&VarRef) -> Option<Cow<'a, Value>> {
        move |v: &VarRef| match v.root.as_str() {
            "item" => resolve_path(item, &v.path).map(Cow::Borrowed),
            "x" if v.path.is_empty() => Some(Cow::Owned(Value::String(x.to_string()))),
            _ => None,
        }
    }

    fn sh(cmd: &str, dir: &std::path::Path) -> Vec<u8> {
        let out = Command::new("/bin/sh")
            .arg("-c")
            .arg(cmd)
            .current_dir(dir)
            .output()
            .expect("run /bin/sh");
        assert!(out.status.success(), "sh failed for {cmd:?}: {out:?}");
        out.stdout
    }

    fn render_x(src: &str, x: &str) -> String {
        let item = json!({});
        parse(src)
            .unwrap()
            .render_shell(&lookup_with(&item, x))
            .unwrap()
    }

    // ---- parsing ----

    #[test]
    fn parses_placeholders_and_paths() {
        let p = phs("echo ${item} ${item.a.b} ${item.list[0]} ${item_id} ${job.id}");
        let vars: Vec<String> = p.iter().map(|p| p.var.to_string()).collect();
        assert_eq!(
            vars,
            ["item", "item.a.b", "item.list[0]", "item_id", "job.id"]
        );
        assert_eq!(p[2].var.path, vec![key("list"), PathSeg::Index(0)]);
        assert_eq!(p[0].span, 5..12);
        assert!(p.iter().all(|p| p.quoting == Quoting::Bare && !p.raw));
        let p = phs("${env.NAME} ${map.results_file} ${workflow.name} ${attempt} ${out}");
        assert_eq!(p.len(), 5);
        assert_eq!(p[4].var, VarRef::root("out"));
    }

    #[test]
    fn parses_raw_and_quoted_keys() {
        let p = phs("${item.cmd:raw} ${item[\"a b\"][2]:raw} ${item.x-y}");
        assert!(p[0].raw && p[1].raw && !p[2].raw);
        assert_eq!(p[1].var.path, vec![key("a b"), PathSeg::Index(2)]);
        assert_eq!(p[1].var.to_string(), "item[\"a b\"][2]");
        assert_eq!(p[2].var.path, vec![key("x-y")]);
        assert_eq!(p[0].to_string(), "${item.cmd:raw}");
        let p = phs(r#"${item["q\"}"]}"#);
        assert_eq!(p[0].var.path, vec![key("q\"}")]);
    }

    #[test]
    fn quoting_contexts_of_placeholders() {
        let p = phs(r#"echo ${x} '${x}' "${x}" "$(echo ${x})" `echo ${x}` # ${x}"#);
        let q: Vec<Quoting> = p.iter().map(|p| p.quoting).collect();
        use Quoting::*;
        assert_eq!(q, [Bare, SingleQuoted, DoubleQuoted, Bare, Bare, Bare]);
        assert!(p[4].in_backquotes);
        assert!(p[5].in_comment);
    }

    #[test]
    fn shell_expansions_pass_through() {
        for src in [
            "echo $HOME ${HOME} ${FOO:-x} ${#x} ${x%.png} ${x/a/b} ${x##*/}",
            "echo $$ $${item} \\${item} \"\\${item}\" ${1} ${@} ${!x} ${FOO-def} ${FOO-a.b}",
            "echo ${item:-x} ${item%x} ${PATH} ${_X1}",
        ] {
            let t = parse(src).unwrap();
            assert!(t.is_static(), "{src}");
            assert_eq!(t.render_shell(&|_| None).unwrap(), src);
        }
    }

    #[test]
    fn unknown_variables_are_errors() {
        let e = parse("echo ${itme.x}").unwrap_err();
        match &e {
            TemplateError::UnknownVariable { name, offset, .. } => {
                assert_eq!(name, "itme");
                assert_eq!(*offset, 5);
            }
            other => panic!("unexpected {other:?}"),
        }
        let msg = e.to_string();
        assert!(msg.contains("`${itme.x}`"), "{msg}");
        assert!(msg.contains("item, item_id"), "{msg}");
        assert!(msg.contains("write $itme"), "{msg}");
        for (src, off) in [
            ("a ${f}", 2),
            ("'${foo}'", 1),
            ("${FOO.x}", 0),
            ("${HOME:raw}", 0),
            ("${Item}", 0),
            ("x\"${item-id}\"", 2),
        ] {
            match parse(src) {
                Err(TemplateError::UnknownVariable { offset, .. }) => {
                    assert_eq!(offset, off, "{src}")
                }
                other => panic!("{src}: {other:?}"),
            }
        }
    }

    #[test]
    fn malformed_placeholders_are_errors() {
        for src in [
            "${item.}",
            "${item[x]}",
            "${item.a",
            "${item",
            "${item:rawx}",
            "${item.name%.png}",
            "${item[99999999999999999999999]}",
            "${item[\"a]}",
        ] {
            match parse(src) {
                Err(TemplateError::Malformed { offset: 0, .. }) => {}
                other => panic!("{src}: {other:?}"),
            }
        }
    }

    #[test]
    fn nested_backquotes_are_rejected() {
        match parse("echo `echo \\`echo ${x}\\``") {
            Err(TemplateError::NestedBackquotes { offset, .. }) => assert_eq!(offset, 18),
            other => panic!("{other:?}"),
        }
        // bash scans backquotes inside double quotes before their backslashes are removed:
        // a value such as `"{$(` breaks the command there.
        for src in ["echo \"`echo ${x}`\"", "echo \"`echo \\\"${x}\\\"`\""] {
            assert!(
                matches!(parse(src), Err(TemplateError::NestedBackquotes { .. })),
                "{src}"
            );
        }
    }

    #[test]
    fn placeholders_in_shell_expansions_are_rejected() {
        for (src, off) in [
            ("echo \"${FOO:-\"${x}\"}\"", 14),
            ("echo ${FOO:-${x}}", 12),
            ("echo ${FOO#${x}}", 11),
        ] {
            match parse(src) {
                Err(TemplateError::InShellExpansion { offset, .. }) => assert_eq!(offset, off),
                other => panic!("{src}: {other:?}"),
            }
        }
        assert_eq!(phs("echo ${FOO:-a} ${x}").len(), 1);
        assert!(matches!(
            parse("echo >&\"${x}\""),
            Err(TemplateError::InDupRedirection { offset: 8, .. })
        ));
        assert_eq!(phs("echo >&2 ${x} 2>&1 >${x}").len(), 2);
    }

    #[test]
    fn placeholders_in_bash_only_quotes_are_rejected() {
        for (src, off, what) in [
            ("echo $'\\t${x}'", 9, "`$'...'`"),
            // The template the property test found: bash ran the value.
            ("$'\\${x}${x}$'\\", 7, "`$'...'`"),
            ("echo $\"hi ${x}\"", 10, "`$\"...\"`"),
            ("echo $\"$(echo ${x})\"", 14, "`$\"...\"`"),
        ] {
            match parse(src) {
                Err(e @ TemplateError::BashQuoting { offset, .. }) => {
                    assert_eq!(offset, off, "{src}");
                    let msg = e.to_string();
                    assert!(msg.contains(&format!("inside {what}")), "{msg}");
                    assert!(msg.contains("close the string before it"), "{msg}");
                }
                other => panic!("{src}: {other:?}"),
            }
        }
        // Next to them is fine; after a `$'...'` with `\'` (read differently) is not.
        assert_eq!(phs("echo $'\\t'\"${x}\" $\"a\"${x} \\$'${x}'").len(), 3);
        assert!(matches!(
            parse("echo $'it\\'s' ${x}"),
            Err(TemplateError::Unsupported { .. })
        ));
    }

    #[test]
    fn arithmetic_placeholders_take_integers_only() {
        let p = phs("echo $(( ${x} + 1 )) ${x} $(echo ${x})");
        let arith: Vec<bool> = p.iter().map(|p| p.arithmetic.is_some()).collect();
        assert_eq!(arith, [true, false, false]);
        let p = phs("[[ ${x} == a ]] && [[ \"${x}\" -lt 3 ]]");
        let arith: Vec<bool> = p.iter().map(|p| p.arithmetic.is_some()).collect();
        assert_eq!(arith, [false, true]);
        let t = parse("echo $(( ${x} * 2 ))").unwrap();
        let item = json!({});
        assert_eq!(
            t.render_shell(&lookup_with(&item, "-21")).unwrap(),
            "echo $(( -21 * 2 ))"
        );
        let e = t
            .render_shell(&lookup_with(&item, "$(touch PWNED)"))
            .unwrap_err();
        assert_eq!(
            e,
            RenderError::NotAnInteger {
                var: "x".into(),
                value: "\"$(touch PWNED)\"".into(),
                context: "`$((...))`".into(),
                hint: "; for a trusted expression use `${x:raw}`".into(),
            }
        );
        assert!(e.to_string().contains("only an integer"), "{e}");
        // `:raw` opts out.
        let t = parse("echo $(( ${x:raw} ))").unwrap();
        assert_eq!(
            t.render_shell(&lookup_with(&item, "1 + 2")).unwrap(),
            "echo $(( 1 + 2 ))"
        );
    }

    #[test]
    fn value_cannot_end_a_heredoc_through_a_substitution() {
        // bash finds the delimiter line before it reads the `$(...)` in the body.
        let item = json!({});
        let e = parse("cat <<E\n$(printf %s ${x})\nE")
            .unwrap()
            .render_shell(&lookup_with(&item, "a\nE\ntouch PWNED"))
            .unwrap_err();
        assert!(matches!(e, RenderError::HereDocDelimiter { .. }), "{e:?}");
    }

    #[test]
    fn static_template() {
        let t = parse("echo hi").unwrap();
        assert!(t.is_static());
        assert_eq!(t.parts(), &[Part::Lit("echo hi".into())]);
        assert!(parse("").unwrap().is_static());
        assert!(!parse("${x}").unwrap().is_static());
    }

    // ---- values and rendering ----

    #[test]
    fn resolve_and_value_text() {
        let v = json!({"a": {"b": [1, "two", {"c": null}]}});
        assert_eq!(
            resolve_path(&v, &[key("a"), key("b"), PathSeg::Index(1)]),
            Some(&json!("two"))
        );
        assert_eq!(resolve_path(&v, &[key("a"), PathSeg::Index(0)]), None);
        assert_eq!(
            resolve_path(&v, &[key("a"), key("b"), PathSeg::Index(9)]),
            None
        );
        assert_eq!(resolve_path(&v, &[]), Some(&v));
        assert_eq!(value_text(&json!("s")), "s");
        assert_eq!(value_text(&json!(1.5)), "1.5");
        assert_eq!(value_text(&json!(null)), "null");
        assert_eq!(value_text(&json!({"k": [1, 2]})), r#"{"k":[1,2]}"#);
    }

    #[test]
    fn render_escapes_per_context() {
        let item = json!({"name": "it's", "n": 3, "o": {"k": "v"}});
        let t = parse(r#"echo ${item.name} '${item.name}' "${item.name}" ${item.n} ${item.o}"#)
            .unwrap();
        let out = t.render_shell(&lookup_with(&item, "")).unwrap();
        assert_eq!(out, r#"echo 'it'\''s' 'it'\''s' "it's" 3 '{"k":"v"}'"#);
        assert_eq!(
            t.render_plain(&lookup_with(&item, "")).unwrap(),
            r#"echo it's 'it's' "it's" 3 {"k":"v"}"#
        );
    }

    #[test]
    fn raw_inserts_unescaped() {
        let item = json!({"cmd": "ls -l | wc -l; echo '$HOME'"});
        let t = parse(r#"${item.cmd:raw} && "${item.cmd:raw}""#).unwrap();
        assert_eq!(
            t.render_shell(&lookup_with(&item, "")).unwrap(),
            r#"ls -l | wc -l; echo '$HOME' && "ls -l | wc -l; echo '$HOME'""#
        );
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            sh(&render_x("printf %s ${x:raw}", "a'b'c"), dir.path()),
            b"abc"
        );
    }

    #[test]
    fn render_errors() {
        let item = json!({"a": {"b": [1]}, "s": "t"});
        let l = lookup_with(&item, "");
        let cases = [
            (
                "${item.nope}",
                "no value for `${item.nope}`: the item has no field `nope`",
            ),
            (
                "${item.a.c}",
                "no value for `${item.a.c}`: `item.a` has no field `c`",
            ),
            (
                "${item.a.b[3]}",
                "no value for `${item.a.b[3]}`: `item.a.b` has no index 3 (length 1)",
            ),
            (
                "${item.s.x}",
                "no value for `${item.s.x}`: `item.s` is a string, so it has no field `x`",
            ),
            ("${out}", "no value for `${out}`: `out` is not set here"),
            (
                "${job.id}",
                "no value for `${job.id}`: `job` is not set here",
            ),
        ];
        for (src, msg) in cases {
            let e = parse(src).unwrap().render_shell(&l).unwrap_err();
            assert!(matches!(e, RenderError::Unknown { .. }));
            assert_eq!(e.to_string(), msg);
        }
        let e = parse("${x}")
            .unwrap()
            .render_plain(&lookup_with(&item, "a\0b"))
            .unwrap_err();
        assert_eq!(e, RenderError::Nul { var: "x".into() });
        let e = parse("'${x}'")
            .unwrap()
            .render_shell(&lookup_with(&item, "\0"))
            .unwrap_err();
        assert!(matches!(e, RenderError::Nul { .. }));
    }

    #[test]
    fn heredoc_placeholder_contexts() {
        let p = phs("cat <<'EOF'\n${x}\nEOF\necho ${x}");
        assert!(
            p[0].heredoc
                .as_ref()
                .is_some_and(|d| d.quoted && d.delimiter == "EOF")
        );
        assert!(p[1].heredoc.is_none());
    }

    #[test]
    fn heredoc_delimiter_in_value_is_rejected() {
        for (ctx, x) in [
            ("cat <<EOF\n${x}\nEOF", "a\nEOF\ntouch PWNED"),
            ("cat <<EOF\n${x}\nEOF", "EOF"),
            ("cat <<'EOF'\nE${x}\nEOF", "OF"),
            ("cat <<-EOF\n${x}\nEOF", "\t\tEOF\n"),
        ] {
            let item = json!({});
            let e = parse(ctx)
                .unwrap()
                .render_shell(&lookup_with(&item, x))
                .unwrap_err();
            assert_eq!(
                e,
                RenderError::HereDocDelimiter {
                    var: "x".into(),
                    delimiter: "EOF".into()
                },
                "{ctx} {x:?}"
            );
        }
        // Not the delimiter: a longer line, or tabs in a plain `<<` here-doc.
        assert_eq!(
            render_x("cat <<EOF\n${x}\nEOF", "EOFX"),
            "cat <<EOF\nEOFX\nEOF"
        );
        assert_eq!(
            render_x("cat <<EOF\n${x}\nEOF", "\tEOF"),
            "cat <<EOF\n\tEOF\nEOF"
        );
    }

    // Running rendered commands through dash and bash: see `shell_tests.rs`.

    mod props {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn parse_never_panics(s in "[ -~\n\té☃]{0,40}") {
                let _ = Template::parse(&s, &known);
            }

            #[test]
            fn render_plain_round_trips_static_text(s in "[a-z $'\"`()#\\\\]{0,30}") {
                if let Ok(t) = Template::parse(&s, &|_| false) {
                    prop_assert!(t.is_static());
                    prop_assert_eq!(t.render_plain(&|_| None).unwrap(), s);
                }
            }
        }
    }
}
