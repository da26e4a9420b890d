//! `runner report`: a job's history (journal, items, DLQ) as one self-contained HTML page
//! or as JSON (docs/report.md).

pub mod assemble;
pub mod bins;
pub mod html;
pub mod lanes;
pub mod load;
pub mod model;
pub mod pipeline;
pub mod pipeline_html;
pub mod svg;
pub mod text;
pub mod timeline;

pub use assemble::assemble as build_from;
pub use load::load;
