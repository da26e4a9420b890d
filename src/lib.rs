//! runner: a crash-safe MapReduce workflow runner.
//!
//! The binary (`src/main.rs`) is a thin shell over [`cli`]; everything else is library code
//! that never prints and never exits.

pub mod cli;
pub mod engine;
pub mod error;
pub mod items;
pub mod notify;
pub mod pipeline;
pub mod report;
pub mod schedule;
pub mod session;
pub mod state;
pub mod workflow;
