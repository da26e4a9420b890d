//! The workflow file: YAML model, validation with line/column, `${...}` templates.

pub mod error;
pub mod load;
pub mod model;
pub mod ordered;
pub mod raw;
pub mod size;
pub mod template;
pub mod validate;
