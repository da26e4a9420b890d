//! How diagnostics from the `tracing` layer look on stderr: the same `warning: ...` style
//! as the reporters' warnings (no timestamps, no module paths), coloured only where
//! `--color` allows.

use std::fmt;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// `warning: message`, `error: message`, `info: message`, `debug: message`.
pub struct LogFormat {
    pub color: bool,
}

/// The prefix of a diagnostic of `level`, with its ANSI colour code.
fn prefix(level: &Level) -> (&'static str, &'static str) {
    match *level {
        Level::ERROR => ("error:", "31"),
        Level::WARN => ("warning:", "33"),
        Level::INFO => ("info:", "36"),
        Level::DEBUG => ("debug:", "2"),
        Level::TRACE => ("trace:", "2"),
    }
}

impl<S, N> FormatEvent<S, N> for LogFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let (word, code) = prefix(event.metadata().level());
        if self.color {
            write!(writer, "\x1b[{code}m{word}\x1b[0m ")?;
        } else {
            write!(writer, "{word} ")?;
        }
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn render(color: bool) -> String {
        let buf = Buf::default();
        let out = buf.clone();
        let sub = tracing_subscriber::fmt()
            .with_ansi(color)
            .event_format(LogFormat { color })
            .with_writer(move || out.clone())
            .finish();
        tracing::subscriber::with_default(sub, || tracing::warn!("the checkpoint is bad"));
        String::from_utf8(buf.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn plain_and_coloured() {
        assert_eq!(render(false), "warning: the checkpoint is bad\n");
        assert_eq!(
            render(true),
            "\x1b[33mwarning:\x1b[0m the checkpoint is bad\n"
        );
    }
}
