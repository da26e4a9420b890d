//! The PostgreSQL map backend: `runner worker` processes on any machines claim a job's
//! items from PostgreSQL (`FOR UPDATE SKIP LOCKED`, woken by `LISTEN/NOTIFY`), run them
//! with the local attempt code and write each outcome back under a fenced lease; the
//! coordinator (`run`/`resume`/`dlq retry`) enqueues and collects through the one
//! dispatcher. See docs/postgres.md.

pub mod client;
pub mod coordinator;
pub mod error;
pub mod lease;
pub mod map;
pub mod queue;
pub mod schema;
pub mod spec;
pub mod tail;
pub mod url;
pub mod worker;
pub mod workers;
