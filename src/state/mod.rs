//! The job directory: layout, journal, checkpoint, DLQ, lock and logs.

pub mod atomic;
pub mod checkpoint;
pub mod dlq;
pub mod dlq_select;
pub mod error;
pub mod executor;
pub mod item_states;
pub mod items_file;
pub mod job;
pub mod journal;
pub mod jsonl;
pub mod layout;
pub mod lock;
pub mod logs;
pub mod mailbox;
pub mod records;
pub mod recover;
pub mod segments;
pub mod slurm;
pub mod time;
pub mod timeline;
pub mod usage;
