//! The error type of the `items` module.

use std::path::PathBuf;

/// Everything that can go wrong while compiling a selection, reading the input, selecting the
/// work items or assigning their ids. Every message says what is wrong and what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum ItemsError {
    /// The items file could not be read.
    #[error(
        "cannot read items file {}: {source}; check that the file exists and is readable, \
         or give a shell command instead",
        path.display()
    )]
    Io {
        /// The file that could not be read.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },

    /// The selected items could not be written to (or read back from) their temporary file.
    #[error(
        "cannot keep the selected items in a temporary file in {}: {source}; check the free \
         space and permissions there",
        dir.display()
    )]
    Spill {
        /// The directory of the temporary file.
        dir: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },

    /// The items command could not be started at all.
    #[error(
        "cannot start items command `{command}` with /bin/sh in {}: {source}; \
         check that /bin/sh exists and the directory is accessible",
        dir.display()
    )]
    CommandSpawn {
        /// The shell command.
        command: String,
        /// The directory it was to run in.
        dir: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },

    /// The items command ran but exited unsuccessfully.
    #[error(
        "items command `{command}` failed ({}); fix the command (try running it by hand with \
         /bin/sh -c) so that it exits 0 and prints the items on stdout{}",
        match code { Some(c) => format!("exit code {c}"), None => "killed by a signal".to_string() },
        if stderr_tail.is_empty() { String::new() } else { format!("; its stderr ends with:\n{stderr_tail}") }
    )]
    Command {
        /// The shell command.
        command: String,
        /// Its exit code, `None` when it was killed by a signal.
        code: Option<i32>,
        /// The last lines (at most 20) of its standard error.
        stderr_tail: String,
    },

    /// The input is not JSON (or JSON lines) in its format.
    #[error("{origin}:{line}:{column}: invalid JSON: {message}; {hint}")]
    InvalidJson {
        /// Where the bytes came from (a path, or `map.input command output`).
        origin: String,
        /// 1-based line of the error.
        line: usize,
        /// 1-based column (in characters) of the error.
        column: usize,
        /// What the JSON parser reported.
        message: String,
        /// Why the input was read as JSON, and what to do.
        hint: JsonHint,
    },

    /// The input is not UTF-8 text.
    #[error(
        "{origin}:{line}:{column}: not valid UTF-8 (first bad byte at offset {offset}); \
         produce JSON, JSON lines or UTF-8 text lines"
    )]
    NotUtf8 {
        /// Where the bytes came from (a path, or `map.input command output`).
        origin: String,
        /// 1-based line of the first invalid byte.
        line: usize,
        /// 1-based column (in characters) of the first invalid byte.
        column: usize,
        /// Byte offset of the first invalid byte.
        offset: usize,
    },

    /// An expression of the selection (json_path, filter, sort_by, distinct) does not compile.
    #[error("invalid {key} expression `{expr}`: {message}")]
    Expression {
        /// The workflow key holding the expression: "json_path", "filter", "sort_by" or "distinct".
        key: &'static str,
        /// The expression as written.
        expr: String,
        /// What is wrong and how to fix it.
        message: String,
    },

    /// An expression of Prodigy's dialect does not parse; `offset` is the byte offset of the
    /// token it is about.
    #[error(
        "invalid {key} expression `{expr}`: {message}, at character {} ({}); Prodigy's dialect: fields such as `severity` or `a.b[0]`, 'strings', ==, !=, <, >=, AND/OR/NOT (or &&, ||, !), `x in ['a', 'b']`, contains, starts_with, ends_with, matches, is_null(x), length(x)",
        offset + 1,
        if token.is_empty() { "at the end".to_string() } else { format!("`{token}`") }
    )]
    Syntax {
        /// The workflow key holding the expression.
        key: &'static str,
        /// The expression as written.
        expr: String,
        /// Byte offset of the offending token in `expr`.
        offset: usize,
        /// The offending token's text (empty at the end of the expression).
        token: String,
        /// What is wrong.
        message: String,
    },

    /// The filter failed at run time for one item.
    #[error(
        "filter failed for item #{position}: {message}; make the filter handle this item \
         (for example with `?`, `//` or a type check) or fix the input"
    )]
    FilterRuntime {
        /// 0-based position of the item after `json_path` selection.
        position: usize,
        /// The expression and the jq error.
        message: String,
    },

    /// The `distinct` expression failed at run time for one item.
    #[error(
        "{key} expression `{expr}` failed for item #{position}: {message}; make the expression \
         handle this item (for example with `?` or `//`) or fix the input"
    )]
    ExpressionRuntime {
        /// The workflow key holding the expression.
        key: &'static str,
        /// The expression as written.
        expr: String,
        /// 0-based position of the item after `json_path` selection.
        position: usize,
        /// The jq error.
        message: String,
    },

    /// The caller's `id:` template failed for one item.
    #[error("cannot compute the id of item #{position}: {message}; fix the `id:` template")]
    IdTemplate {
        /// 0-based position of the item after selection.
        position: usize,
        /// What the template renderer reported.
        message: String,
    },

    /// Two selected items have the same id.
    #[error(
        "items #{first} and #{second} have the same id \"{id}\"; every work item needs a unique id: \
         drop duplicates with `distinct:` or derive a unique id with `id:`"
    )]
    DuplicateId {
        /// The shared id.
        id: String,
        /// 0-based position of the first item with this id.
        first: usize,
        /// 0-based position of the second item with this id.
        second: usize,
    },
}

/// Why an input was read as JSON: the advice that ends an [`ItemsError::InvalidJson`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonHint {
    /// `map.input_format: json` or a `.json` file.
    Json,
    /// `map.input_format: jsonl` or a `.jsonl`/`.ndjson` file.
    Jsonl,
    /// `auto`, and the text starts with `[` or `{`.
    Auto,
}

impl std::fmt::Display for JsonHint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            JsonHint::Json => {
                "it is read as one JSON document (a .json file, or map.input_format: json); \
                 fix it, or set map.input_format: jsonl (one JSON value per line) or lines \
                 (one string per line)"
            }
            JsonHint::Jsonl => {
                "it is read as JSON lines, one JSON value per line (a .jsonl or .ndjson file, \
                 or map.input_format: jsonl); fix the line, or set map.input_format: json or lines"
            }
            JsonHint::Auto => {
                "it starts with `[` or `{`, so it is read as JSON or JSON lines, never as plain \
                 lines; fix it, or set map.input_format: lines to make every line a string item"
            }
        })
    }
}
