//! The template language of workflows: `${...}` placeholders (parsed in [`text`]), the shell
//! scanner that finds the quoting context of each (in [`scan`]), escaping for that context
//! (in [`quote`]), and which variables exist where (in [`scope`]).

pub mod env_text;
pub mod quote;
pub mod scan;
pub mod scope;
#[cfg(test)]
pub(crate) mod shell_tests;
pub mod text;

pub use text::*;
