//! Work-item selection: read the items input (a file or a command's output), parse it in its
//! format (one JSON document, JSON lines or text lines), then select (`json_path`), filter,
//! sort, deduplicate, page (`offset`, `max_items`) and give every item its id.

mod canonical;
mod command;
mod convert;
mod dialect;
mod dialect_eval;
mod dialect_lex;
mod error;
mod expr;
mod format;
mod frozen;
mod input;
mod item;
mod jq;
mod json_path;
mod ordering;
mod parse;
mod pipeline;
mod prodigy_syntax;
mod selection;
mod sort_spec;
mod tokens;

pub use canonical::canonical_json;
pub use error::{ItemsError, JsonHint};
pub use format::InputFormat;
pub use frozen::{Frozen, freeze};
pub use input::Input;
pub use item::{IdAssigner, IdFn, Ids, Item, Renamed, RepeatedIds, position_id};
pub use selection::{CompiledSelection, Selection, compile};
