//! Reporting: one event enum feeding the progress bar, plain log lines and NDJSON.

pub mod event;
pub mod human;
pub mod ndjson;
pub mod reporter;
