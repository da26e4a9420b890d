//! Where a step's stdout/stderr go: a size-bounded log file created only when there is
//! output, an optional in-memory capture, a tail for error messages, an optional tee to our
//! stderr (setup and reduce output is shown to the user).

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

/// How many bytes of a stream end up in its log file (the rest is counted, not kept).
pub const DEFAULT_LOG_CAP: u64 = 4 * 1024 * 1024;
/// Upper bound for `capture:` so a chatty step cannot exhaust memory.
pub const CAPTURE_CAP: usize = 16 * 1024 * 1024;
const TAIL_CAP: usize = 4096;

/// Destination of one output stream.
#[derive(Debug, Clone, Default)]
pub struct StreamTarget {
    /// Log file (appended to; created 0600 on first byte).
    pub log: Option<PathBuf>,
    pub log_cap: u64,
    /// Keep everything (up to [`CAPTURE_CAP`]) for `capture:`.
    pub capture: bool,
    /// Copy to the runner's stderr.
    pub tee: bool,
}

/// Accumulates one stream.
pub struct Sink {
    target: StreamTarget,
    file: Option<File>,
    written: u64,
    pub captured: Vec<u8>,
    tail: Vec<u8>,
    log_failed: bool,
}

impl Sink {
    pub fn new(target: StreamTarget) -> Self {
        Sink {
            target,
            file: None,
            written: 0,
            captured: Vec::new(),
            tail: Vec::new(),
            log_failed: false,
        }
    }

    pub fn feed(&mut self, chunk: &[u8]) {
        if self.target.capture {
            let room = CAPTURE_CAP.saturating_sub(self.captured.len());
            self.captured
                .extend_from_slice(&chunk[..chunk.len().min(room)]);
        }
        self.tail.extend_from_slice(chunk);
        if self.tail.len() > 2 * TAIL_CAP {
            self.tail.drain(..self.tail.len() - TAIL_CAP);
        }
        if self.target.tee {
            let _ = std::io::stderr().write_all(chunk);
        }
        self.write_log(chunk);
    }

    fn write_log(&mut self, chunk: &[u8]) {
        let Some(path) = &self.target.log else { return };
        if self.log_failed || self.written >= self.target.log_cap {
            self.written += chunk.len() as u64;
            return;
        }
        if self.file.is_none() {
            if let Some(dir) = path.parent() {
                use std::os::unix::fs::DirBuilderExt;
                let _ = std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(dir);
            }
            match std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(path)
            {
                Ok(f) => self.file = Some(f),
                Err(_) => {
                    self.log_failed = true;
                    return;
                }
            }
        }
        let room = (self.target.log_cap - self.written) as usize;
        let part = &chunk[..chunk.len().min(room)];
        if let Some(f) = &mut self.file
            && f.write_all(part).is_err()
        {
            self.log_failed = true;
        }
        self.written += chunk.len() as u64;
        if self.written > self.target.log_cap
            && let Some(f) = &mut self.file
        {
            let _ = writeln!(
                f,
                "\n[runner: output truncated at {} bytes]",
                self.target.log_cap
            );
        }
    }

    /// The last lines of the stream (at most ~4 KiB, at most 20 lines), lossily decoded.
    pub fn tail_text(&self) -> String {
        let start = self.tail.len().saturating_sub(TAIL_CAP);
        let text = String::from_utf8_lossy(&self.tail[start..]);
        let lines: Vec<&str> = text.trim_end().lines().collect();
        let from = lines.len().saturating_sub(20);
        lines[from..].join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_is_bounded_and_created_lazily() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/out.log");
        let mut s = Sink::new(StreamTarget {
            log: Some(path.clone()),
            log_cap: 10,
            capture: true,
            tee: false,
        });
        assert!(!path.exists());
        s.feed(b"hello ");
        s.feed(b"world, this is long");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("hello worl"));
        assert!(text.contains("truncated at 10 bytes"));
        assert_eq!(s.captured, b"hello world, this is long");
    }

    #[test]
    fn no_output_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.log");
        let s = Sink::new(StreamTarget {
            log: Some(path.clone()),
            log_cap: 10,
            capture: false,
            tee: false,
        });
        assert_eq!(s.tail_text(), "");
        assert!(!path.exists());
    }

    #[test]
    fn tail_keeps_last_lines() {
        let mut s = Sink::new(StreamTarget::default());
        for i in 0..100 {
            s.feed(format!("line {i}\n").as_bytes());
        }
        let t = s.tail_text();
        assert!(t.ends_with("line 99"));
        assert_eq!(t.lines().count(), 20);
    }
}
