//! Errors of loading and validating a workflow file. Every one names the file, and the line
//! and column where it can.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum WorkflowError {
    /// The I/O error is part of the message (not a `source`), so it is printed once.
    #[error("{}: cannot read the workflow file: {err}", path.display())]
    Read { path: PathBuf, err: std::io::Error },
    #[error("{}:{line}:{column}: {message}", path.display())]
    At {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{}: {message}", path.display())]
    File { path: PathBuf, message: String },
    /// Several problems of one file, in file order, one per line.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Many(Vec<WorkflowError>),
}

impl WorkflowError {
    /// Where in the file the problem is, for ordering (a problem of the whole file first).
    pub fn position(&self) -> (usize, usize) {
        match self {
            WorkflowError::At { line, column, .. } => (*line, *column),
            WorkflowError::Many(all) => all.first().map_or((0, 0), Self::position),
            _ => (0, 0),
        }
    }

    /// The problems one per entry (one for a single problem).
    pub fn all(&self) -> Vec<&WorkflowError> {
        match self {
            WorkflowError::Many(all) => all.iter().collect(),
            other => vec![other],
        }
    }

    pub fn at(
        path: &std::path::Path,
        loc: serde_saphyr::Location,
        message: impl Into<String>,
    ) -> Self {
        WorkflowError::At {
            path: path.to_path_buf(),
            line: loc.line() as usize,
            column: loc.column() as usize,
            message: message.into(),
        }
    }
}
