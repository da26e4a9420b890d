//! Prodigy's `write_file:` step: the rendered content, checked and formatted per `format`,
//! written atomically under the step's working directory.

use std::path::{Component, Path, PathBuf};

use crate::workflow::model::{WriteFile, WriteFormat};

/// Why a `write_file` step failed: the content (its format) or the file system.
#[derive(Debug)]
pub enum WriteFailure {
    Content(String),
    Io(String),
}

/// Write `content` to `path` (relative to `cwd`); on success, what Prodigy reports as the
/// step's output: `Wrote N bytes to PATH (format: F)`.
pub fn write(
    spec: &WriteFile,
    path: &str,
    content: &str,
    cwd: &Path,
) -> Result<String, WriteFailure> {
    let rel = Path::new(path);
    if rel.components().any(|c| c == Component::ParentDir) {
        return Err(WriteFailure::Content(format!(
            "write_file: path {path:?} contains `..` (not allowed, as in Prodigy)"
        )));
    }
    let bytes = formatted(spec.format, content).map_err(WriteFailure::Content)?;
    let file: PathBuf = cwd.join(rel);
    if spec.create_dirs
        && let Some(parent) = file.parent()
    {
        std::fs::create_dir_all(parent).map_err(|e| {
            WriteFailure::Io(format!(
                "write_file: cannot create directory {}: {e}",
                parent.display()
            ))
        })?;
    }
    crate::state::atomic::write_atomic_mode(&file, bytes.as_bytes(), spec.mode).map_err(|e| {
        let hint = if spec.create_dirs {
            ""
        } else {
            " (add `create_dirs: true` to create missing directories)"
        };
        WriteFailure::Io(format!("write_file: {e}{hint}"))
    })?;
    let name = match spec.format {
        WriteFormat::Text => "Text",
        WriteFormat::Json => "Json",
        WriteFormat::Yaml => "Yaml",
    };
    Ok(format!(
        "Wrote {} bytes to {path} (format: {name})",
        bytes.len()
    ))
}

fn formatted(format: WriteFormat, content: &str) -> Result<String, String> {
    match format {
        WriteFormat::Text => Ok(content.to_owned()),
        WriteFormat::Json => {
            let v: serde_json::Value = serde_json::from_str(content)
                .map_err(|e| format!("write_file: the content is not valid JSON: {e}"))?;
            serde_json::to_string_pretty(&v)
                .map_err(|e| format!("write_file: cannot format the JSON: {e}"))
        }
        WriteFormat::Yaml => {
            let v: serde_json::Value = serde_saphyr::from_str(content)
                .map_err(|e| format!("write_file: the content is not valid YAML: {e}"))?;
            serde_saphyr::to_string(&v)
                .map_err(|e| format!("write_file: cannot format the YAML: {e}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_pretty_printed_and_checked() {
        assert_eq!(
            formatted(WriteFormat::Json, r#"{"a":[1,2]}"#).unwrap(),
            "{\n  \"a\": [\n    1,\n    2\n  ]\n}"
        );
        assert!(formatted(WriteFormat::Json, "{nope").is_err());
        assert!(formatted(WriteFormat::Yaml, "a: [1").is_err());
        assert_eq!(formatted(WriteFormat::Text, "x ${y}").unwrap(), "x ${y}");
    }
}
