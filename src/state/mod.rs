//! The job directory: layout, journal, checkpoint, DLQ, lock and logs.

pub mod records;
