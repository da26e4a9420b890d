//! The workflow file: YAML model, validation with line/column, `${...}` templates.

pub mod env_file;
pub mod error;
pub mod load;
pub mod model;
pub mod ordered;
pub mod raw;
pub mod raw_validation;
pub mod settings;
pub mod size;
pub mod step_validation;
pub mod template;
pub mod unknown_keys;
pub mod validate;
