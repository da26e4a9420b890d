//! `--json`: one JSON object per event per line on stdout. A closed stdout (broken pipe)
//! silences the reporter; the job itself goes on.

use std::io::Write;

use crate::report::event::Event;
use crate::report::reporter::Reporter;

pub struct Ndjson<W: Write + Send> {
    out: W,
    broken: bool,
}

impl<W: Write + Send> Ndjson<W> {
    pub fn new(out: W) -> Self {
        Ndjson { out, broken: false }
    }
}

impl<W: Write + Send> Reporter for Ndjson<W> {
    fn report(&mut self, event: &Event) {
        if self.broken {
            return;
        }
        let ok = serde_json::to_writer(&mut self.out, event).is_ok()
            && self.out.write_all(b"\n").is_ok()
            && self.out.flush().is_ok();
        if !ok {
            self.broken = true;
        }
    }
}
