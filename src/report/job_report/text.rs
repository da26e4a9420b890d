//! Text for the page: HTML escaping and human durations and sizes.

use std::fmt::Write;

use crate::state::usage::bytes_text;

/// Escape text for HTML content and quoted attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `850 ms`, `1.2 s`, `3m 20s`, `1h 05m`.
pub fn dur(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms < 60_000 {
        let s = ms as f64 / 1000.0;
        if s < 10.0 {
            format!("{s:.1} s")
        } else {
            format!("{s:.0} s")
        }
    } else if ms < 3_600_000 {
        format!("{}m {:02}s", ms / 60_000, (ms / 1000) % 60)
    } else {
        format!("{}h {:02}m", ms / 3_600_000, (ms / 60_000) % 60)
    }
}

/// A KiB figure for people.
pub fn kib(kb: u64) -> String {
    bytes_text(kb.saturating_mul(1024))
}

/// An optional figure, or a dash.
pub fn or_dash(v: Option<u64>, f: impl Fn(u64) -> String) -> String {
    v.map(f).unwrap_or_else(|| "–".into())
}

/// A short axis label for `ms` after the start: `0`, `30s`, `2m`, `1h30m`.
pub fn tick(ms: u64) -> String {
    let s = ms / 1000;
    let mut out = String::new();
    if ms < 1000 {
        let _ = write!(out, "{ms}ms");
    } else if s < 60 {
        if ms.is_multiple_of(1000) {
            let _ = write!(out, "{s}s");
        } else {
            let _ = write!(out, "{:.1}s", ms as f64 / 1000.0);
        }
    } else if s < 3600 {
        let _ = write!(out, "{}m", s / 60);
        if !s.is_multiple_of(60) {
            let _ = write!(out, "{}s", s % 60);
        }
    } else {
        let _ = write!(out, "{}h", s / 3600);
        if !(s / 60).is_multiple_of(60) {
            let _ = write!(out, "{}m", (s / 60) % 60);
        }
    }
    out
}

/// A "nice" step (1, 2 or 5 times a power of ten, or a round minute/hour) giving about
/// `n` ticks over `span` ms.
pub fn tick_step(span: u64, n: u64) -> u64 {
    let raw = (span / n.max(1)).max(1);
    const NICE: [u64; 20] = [
        1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000, 15_000, 30_000, 60_000,
        120_000, 300_000, 600_000, 900_000,
    ];
    if let Some(s) = NICE.iter().find(|s| **s >= raw) {
        return *s;
    }
    let hour = 3_600_000;
    [hour / 2, hour, 2 * hour, 6 * hour, 12 * hour, 24 * hour]
        .into_iter()
        .find(|s| *s >= raw)
        .unwrap_or(raw.div_ceil(24 * hour) * 24 * hour)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            esc(r#"<script>alert("x")</script> & 'y'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;"
        );
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(dur(850), "850 ms");
        assert_eq!(dur(1234), "1.2 s");
        assert_eq!(dur(42_000), "42 s");
        assert_eq!(dur(200_000), "3m 20s");
        assert_eq!(dur(3_900_000), "1h 05m");
        assert_eq!(tick(0), "0ms");
        assert_eq!(tick(90_000), "1m30s");
        assert_eq!(tick(1500), "1.5s");
        assert_eq!(tick(2000), "2s");
        assert_eq!(tick(7_200_000), "2h");
    }

    #[test]
    fn tick_steps_are_round() {
        assert_eq!(tick_step(10_000, 10), 1000);
        assert_eq!(tick_step(95_000, 10), 10_000);
        assert_eq!(tick_step(3_600_000, 8), 600_000);
        assert_eq!(tick_step(100, 10), 10);
        assert!(tick_step(200 * 3_600_000, 8) >= 24 * 3_600_000);
    }
}
