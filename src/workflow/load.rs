//! Reading a workflow file: YAML parsing with precise error locations.

use std::path::{Path, PathBuf};

use crate::workflow::error::WorkflowError;
use crate::workflow::model::Workflow;
use crate::workflow::raw::RawWorkflow;
use crate::workflow::validate::validate;

/// A loaded workflow together with the exact bytes it came from (for the job snapshot and
/// fingerprint).
#[derive(Debug)]
pub struct Loaded {
    pub workflow: Workflow,
    pub text: String,
}

/// [`load_file`], then every environment variable a configuration value names must be
/// defined: by the workflow's `env:`, the environment, or `set` (the `--set` keys).
pub fn load_file_with(path: &Path, set: &[String]) -> Result<Loaded, WorkflowError> {
    let loaded = load_file(path)?;
    let mut from_files = Vec::new();
    for f in &loaded.workflow.env_files {
        let pairs = crate::workflow::env_file::read(f).map_err(|message| WorkflowError::File {
            path: path.to_path_buf(),
            message,
        })?;
        from_files.extend(pairs.into_iter().map(|(k, _)| k));
    }
    let defined = |name: &str| {
        set.iter().chain(&from_files).any(|s| s == name) || std::env::var_os(name).is_some()
    };
    if let Some(e) = loaded
        .workflow
        .undefined_env(path, &defined)
        .into_iter()
        .next()
    {
        return Err(e);
    }
    Ok(loaded)
}

/// Read, parse and validate the workflow at `path`. Its steps run in the directory runner
/// was started in (the current directory), unless it sets `working_dir:`. The environment
/// its configuration values name is checked by [`load_file_with`] (a pipeline's jobs get
/// `--set` values only when they start).
pub fn load_file(path: &Path) -> Result<Loaded, WorkflowError> {
    let text = std::fs::read_to_string(path).map_err(|err| WorkflowError::Read {
        path: path.to_path_buf(),
        err,
    })?;
    let start = std::env::current_dir()
        .and_then(|d| d.canonicalize())
        .map_err(|e| WorkflowError::File {
            path: path.to_path_buf(),
            message: format!(
                "cannot resolve the current directory ({e}); run runner from an existing directory"
            ),
        })?;
    let workflow = load_str(&text, path, &start)?;
    Ok(Loaded { workflow, text })
}

/// The text of a YAML file (`what`: "pipeline", "schedules") and its directory, where the
/// paths it names are resolved.
pub fn read_yaml_file(path: &Path, what: &str) -> Result<(String, PathBuf), WorkflowError> {
    let text = std::fs::read_to_string(path).map_err(|e| WorkflowError::File {
        path: path.to_path_buf(),
        message: format!("cannot read the {what} file: {e}"),
    })?;
    let dir = path
        .canonicalize()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("."));
    Ok((text, dir))
}

/// Parse and validate workflow text; `path` is used in messages and locates `working_dir:`
/// (a relative `path` is relative to `start`); `start` is the directory runner was started
/// in, or the one the job recorded.
pub fn load_str(text: &str, path: &Path, start: &Path) -> Result<Workflow, WorkflowError> {
    let raw: RawWorkflow = serde_saphyr::from_str(text).map_err(|e| {
        let first = yaml_error(path, &e);
        if !first.to_string().contains("unknown field") {
            return first;
        }
        // Reading stopped at the first unknown key: find them all.
        let mut all = crate::workflow::unknown_keys::unknown_keys(text, path);
        if !all.iter().any(|u| u.position() == first.position()) {
            all.push(first);
        }
        all.sort_by_key(WorkflowError::position);
        match all.len() {
            1 => all.remove(0),
            _ => WorkflowError::Many(all),
        }
    })?;
    validate(raw, path, start)
}

/// A YAML error as `file:line:column: message`.
pub fn yaml_error(path: &Path, e: &serde_saphyr::Error) -> WorkflowError {
    let message = first_line(&e.to_string());
    match e.location() {
        Some(loc) if loc.line() > 0 => WorkflowError::at(path, loc, message),
        _ => WorkflowError::File {
            path: path.to_path_buf(),
            message,
        },
    }
}

/// serde-saphyr renders a source snippet after the message, and may start the message with
/// `line N column M: `; keep the message itself (the location is printed as `file:N:M:`).
fn first_line(rendered: &str) -> String {
    let line = rendered
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or(rendered);
    let msg = line.trim().trim_start_matches("error: ");
    strip_location(msg).to_owned()
}

fn strip_location(msg: &str) -> &str {
    let Some(rest) = msg.strip_prefix("line ") else {
        return msg;
    };
    let digits = |s: &str| s.len() - s.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let n = digits(rest);
    let Some(rest) = rest[n..].strip_prefix(" column ").filter(|_| n > 0) else {
        return msg;
    };
    let m = digits(rest);
    match rest[m..].strip_prefix(": ") {
        Some(tail) if m > 0 => tail,
        _ => msg,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn location_prefix_is_dropped_once() {
        assert_eq!(
            first_line("error: line 4 column 3: unknown field `bogus`\n  snippet"),
            "unknown field `bogus`"
        );
        assert_eq!(first_line("line 4 is fine"), "line 4 is fine");
        assert_eq!(first_line("line x column 2: a"), "line x column 2: a");
    }
}
