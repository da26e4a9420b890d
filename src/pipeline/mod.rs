//! Pipelines: a DAG of jobs (`jobs:` with `needs:`), each node an ordinary job
//! `<pipeline-id>.<node>` run by a child `runner` process, the pipeline itself a job in the
//! state directory with its own lock, journal and control channel.

pub mod dag;
pub mod journal;
pub mod live;
pub mod load;
pub mod model;
pub mod node;
pub mod raw;
pub mod run;
pub mod status;
