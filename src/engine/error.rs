//! Errors that end a run early (as opposed to item failures, which are data).

use crate::items::ItemsError;
use crate::state::error::StateError;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    State(#[from] StateError),
    /// The items could not be selected (bad input file, failing command, duplicate ids).
    #[error("selecting the map items failed")]
    Items(#[from] ItemsError),
    /// A value the whole job depends on could not be rendered (env, max_parallel).
    #[error("{0}")]
    Config(String),
    /// The infrastructure the job runs on failed (a Slurm that refuses or cannot answer):
    /// not the user's input, so exit 1, and the job stays resumable.
    #[error("{0}")]
    Infra(String),
}
