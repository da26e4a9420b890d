//! The command line: argument parsing, one module per command, exit codes. The only part
//! of the crate that prints or picks exit codes.

pub mod app;
pub mod args;
pub mod clean;
pub mod dlq;
pub mod dry_run;
pub mod exec_item;
pub mod exit;
pub mod health;
pub mod log_format;
pub mod logs;
pub mod out;
pub mod pause;
pub mod pipeline;
pub mod postgres;
pub mod report;
pub mod reporting;
pub mod resume;
pub mod resume_preview;
pub mod run;
pub mod schedule;
pub mod ship;
pub mod status;
pub mod stop;
pub mod validate;
pub mod worker;
pub mod workers;
