//! The workflow file: YAML model, validation with line/column, `${...}` templates.

pub mod error;
pub mod load;
pub mod model;
pub mod raw;
pub mod scope;
pub mod shell_quote;
pub mod size;
pub mod template;
pub mod template_scan;
pub mod validate;
