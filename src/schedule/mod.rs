//! Schedules: a foreground service (and `run-due` for cron or CI timers) that starts
//! workflows and pipelines on cron expressions, intervals and one-shot dates, with
//! APScheduler's misfire grace, coalescing and instance limits, its last and next fire
//! times persisted in the state directory.

pub mod clock;
pub mod fire;
pub mod list;
pub mod load;
pub mod model;
pub mod plan;
pub mod raw;
pub mod service;
pub mod store;
pub mod trigger;
