//! Reporting: one event enum feeding the progress bar, plain log lines, NDJSON, and the CI
//! reports (JUnit XML, GitHub Actions annotations and summary, Prometheus metrics).

pub mod event;
pub mod github;
pub mod human;
pub mod job_report;
pub mod junit;
pub mod metrics;
pub mod ndjson;
pub mod reporter;
pub mod stats;
