//! Reporters: anything that consumes [`Event`]s. The engine holds one [`Reporter`]; the CLI
//! decides which ones (human, NDJSON, ...) sit behind it.

use crate::report::event::Event;

pub trait Reporter: Send {
    fn report(&mut self, event: &Event);
    /// Called once at the end (clear progress bars, flush files).
    fn finish(&mut self) {}
}

/// Sends every event to several reporters.
#[derive(Default)]
pub struct Fanout(pub Vec<Box<dyn Reporter>>);

impl Reporter for Fanout {
    fn report(&mut self, event: &Event) {
        for r in &mut self.0 {
            r.report(event);
        }
    }
    fn finish(&mut self) {
        for r in &mut self.0 {
            r.finish();
        }
    }
}

/// Keeps every event (tests).
#[derive(Default)]
pub struct Collect(pub std::sync::Arc<std::sync::Mutex<Vec<Event>>>);

impl Reporter for Collect {
    fn report(&mut self, event: &Event) {
        if let Ok(mut v) = self.0.lock() {
            v.push(event.clone());
        }
    }
}
