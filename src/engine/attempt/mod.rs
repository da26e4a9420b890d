//! One attempt of one item, wherever it runs: its steps rendered with the item's variables,
//! run through an [`executor::Executor`], with timeouts, captures and `on_failure` handlers.

pub mod claude;
pub mod commit_required;
pub mod context;
pub mod executor;
pub mod recovery;
pub mod run;
pub mod step;
pub mod validation;
pub mod validation_result;
pub mod vars;
pub mod write_file;
