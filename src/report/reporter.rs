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

/// Replace `path` with `bytes` atomically (a temporary file in the same directory, renamed
/// over it; missing parent directories are created), mode 0644 so CI artifact uploaders and node exporters can read it.
pub fn write_report_file(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."),
    };
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".runner-report-")
        .tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o644))?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// A reporter that could not write its file says so on stderr; the job's outcome stands.
pub fn warn_report_failed(what: &str, path: &std::path::Path, err: &dyn std::fmt::Display) {
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr().lock(),
        "warning: cannot write the {what} {}: {err}",
        path.display()
    );
}
