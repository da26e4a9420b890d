//! The template language of workflows: `${...}` placeholders (parsed in [`text`]), the shell
//! scanner that finds the quoting context of each (in [`scan`]), escaping for that context
//! (in [`quote`]), and which variables exist where (in [`scope`]).

pub mod quote;
pub mod scan;
pub mod scope;
#[cfg(test)]
mod shell_tests;
pub mod text;

pub use text::*;
