//! workflow

pub mod shell_quote;
pub mod template;
pub mod template_scan;
