//! Printing that never panics: a closed stdout or stderr (`runner status | head -1`) ends
//! that output quietly instead of panicking the way `println!` does on EPIPE.

use std::io::Write;

/// Write `bytes` to stdout and flush; false once stdout is gone (the caller stops printing).
pub fn stdout_bytes(bytes: &[u8]) -> bool {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes).is_ok() && out.flush().is_ok()
}

/// One line on stdout; false once stdout is gone.
pub fn line(text: &str) -> bool {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}").is_ok()
}

/// One line on stderr; errors are ignored.
pub fn err_line(text: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}

/// `eprintln!` that ignores a closed stderr instead of panicking.
macro_rules! errln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr().lock(), $($arg)*);
    }};
}
pub(crate) use errln;
