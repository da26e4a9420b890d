//! A step's `validate:` (Prodigy's step validation), ready to run: after the step succeeds
//! its commands produce a JSON result; while its completion percentage is below the
//! threshold the `on_incomplete` handlers run and validation repeats.

use crate::workflow::model::Step;

/// Prodigy's defaults.
pub const DEFAULT_THRESHOLD: f64 = 100.0;
pub const DEFAULT_ATTEMPTS: u32 = 2;

/// The keys of `${validation.KEY}` in `on_incomplete` handlers (as Prodigy names them).
pub const VALIDATION_KEYS: &[&str] = &[
    "completion",
    "status",
    "missing",
    "missing_count",
    "implemented",
    "gaps",
];

/// The keys of `${validation.*}` that hold lists or maps (paths may go below them).
pub const VALIDATION_DEEP_KEYS: &[&str] = &["missing", "implemented", "gaps"];

#[derive(Debug, Clone)]
pub struct Validation {
    /// One `shell:`/`claude:` command, or the `commands:` list; each keeps its output.
    pub commands: Vec<Step>,
    /// The `commands:` form: as in Prodigy, their output is not read (the result comes
    /// from `result_file`; without one, commands that all succeed are complete).
    pub list: bool,
    /// `result_file`, as an internal step that reads the file (relative to the step's
    /// directory).
    pub result_file: Option<Step>,
    /// The completion percentage needed, 0 to 100.
    pub threshold: f64,
    pub on_incomplete: Option<OnIncomplete>,
}

impl Validation {
    /// Every step of the block: its commands, the result file, the handlers.
    pub fn steps(&self) -> impl Iterator<Item = &Step> {
        self.commands
            .iter()
            .chain(self.result_file.iter())
            .chain(self.on_incomplete.iter().flat_map(|o| o.handlers.iter()))
    }
}

/// `on_incomplete:`.
#[derive(Debug, Clone)]
pub struct OnIncomplete {
    /// Run in order (a failing one stops them and the attempts).
    pub handlers: Vec<Step>,
    /// Rounds of handlers, each followed by validation again.
    pub attempts: u32,
    /// Still incomplete after them: the step fails (else it goes on, with a warning).
    pub fail: bool,
}
