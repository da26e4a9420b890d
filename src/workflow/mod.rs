//! The workflow file: YAML model, validation with line/column, `${...}` templates.

pub mod error;
pub mod load;
pub mod model;
pub mod ordered;
pub mod raw;
pub mod scope;
pub mod shell_quote;
pub mod template;
pub mod template_scan;
#[cfg(test)]
mod template_shell_tests;
pub mod validate;
