//! The page's charts as inline SVG: the timeline (one lane per parallel slot, one bar per
//! attempt, or cells when folded) and the histograms. Hovering shows each mark's `<title>`;
//! the page's script shows it on click.

use std::fmt::Write;

use crate::report::job_report::model::{Cell, Histogram, Outcome, Timeline};
use crate::report::job_report::text::{dur, esc, kib, tick, tick_step};

/// Width of the charts' coordinate system.
const W: f64 = 1200.0;
/// Left gutter for row labels.
const GUTTER: f64 = 74.0;
const AXIS: f64 = 22.0;

pub fn outcome_class(o: Outcome) -> &'static str {
    match o {
        Outcome::Ok => "o-ok",
        Outcome::Retried => "o-retried",
        Outcome::Timeout => "o-timeout",
        Outcome::Limit => "o-limit",
        Outcome::Failed => "o-failed",
    }
}

fn outcome_word(o: Outcome) -> &'static str {
    match o {
        Outcome::Ok => "ok",
        Outcome::Retried => "failed, retried",
        Outcome::Timeout => "timed out",
        Outcome::Limit => "over a resource limit",
        Outcome::Failed => "failed",
    }
}

/// The timeline chart.
pub fn timeline(t: &Timeline) -> String {
    let plot = W - GUTTER - 8.0;
    let end = t.end_ms.max(1) as f64;
    let x = |ms: u64| GUTTER + ms as f64 / end * plot;
    let rows = t
        .aggregated
        .as_ref()
        .map(|a| a.rows)
        .unwrap_or(t.lanes)
        .max(1);
    let row_h = (480.0 / rows as f64).clamp(5.0, 22.0);
    let has_steps = !t.steps.is_empty();
    let top = if has_steps {
        row_h.max(12.0) + 6.0
    } else {
        0.0
    };
    let height = top + rows as f64 * row_h + AXIS + 4.0;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg class="timeline" viewBox="0 0 {W} {height:.0}" role="img" aria-label="timeline of attempts">"#
    );
    s.push_str(r#"<defs><pattern id="idle" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="3" height="6" class="idle-stripe"/></pattern></defs>"#);
    let plot_bottom = top + rows as f64 * row_h;
    // Idle time between runs, then pauses, under the bars.
    for w in t.runs.windows(2) {
        let (a, b) = (w[0].end_ms, w[1].start_ms);
        if b > a {
            let _ = write!(
                s,
                r#"<rect class="idle" x="{:.1}" y="0" width="{:.1}" height="{plot_bottom:.1}"><title>not running: {} between runs</title></rect>"#,
                x(a),
                (x(b) - x(a)).max(0.5),
                dur(b - a)
            );
        }
    }
    for p in &t.pauses {
        let _ = write!(
            s,
            r#"<rect class="pause" x="{:.1}" y="0" width="{:.1}" height="{plot_bottom:.1}"><title>paused for {}</title></rect>"#,
            x(p.start_ms),
            (x(p.end_ms) - x(p.start_ms)).max(0.5),
            dur(p.end_ms.saturating_sub(p.start_ms))
        );
    }
    if has_steps {
        let _ = write!(
            s,
            r#"<text class="lbl" x="{:.0}" y="{:.1}">steps</text>"#,
            GUTTER - 6.0,
            top - 6.0 - row_h.max(12.0) / 2.0 + 4.0
        );
        for st in &t.steps {
            let word = if st.outcome == Outcome::Ok {
                "ok"
            } else {
                "did not finish"
            };
            let _ = write!(
                s,
                r#"<rect class="step {}" data-k="1" x="{:.1}" y="0" width="{:.1}" height="{:.1}"><title>{} step {} · {} · {}</title></rect>"#,
                if st.outcome == Outcome::Ok {
                    "o-step"
                } else {
                    "o-failed"
                },
                x(st.start_ms),
                (x(st.start_ms + st.ms) - x(st.start_ms)).max(1.0),
                row_h.max(12.0),
                st.phase,
                st.step,
                dur(st.ms),
                word
            );
        }
    }
    match &t.aggregated {
        None => lanes(&mut s, t, top, row_h, &x),
        Some(a) => {
            let bucket_w = plot / a.buckets as f64;
            for r in 0..a.rows {
                let first = r * a.lanes_per_row + 1;
                let last = ((r + 1) * a.lanes_per_row).min(t.lanes);
                let label = if first == last {
                    format!("lane {first}")
                } else {
                    format!("{first}–{last}")
                };
                row_label(&mut s, &label, top + r as f64 * row_h, row_h);
            }
            for c in &t.cells {
                cell(
                    &mut s,
                    c,
                    a.bucket_ms,
                    a.lanes_per_row,
                    t.lanes,
                    GUTTER + c.bucket as f64 * bucket_w,
                    top + c.row as f64 * row_h,
                    bucket_w,
                    row_h,
                );
            }
        }
    }
    axis(&mut s, t.end_ms, plot_bottom, &x);
    s.push_str("</svg>");
    s
}

fn row_label(s: &mut String, label: &str, y: f64, row_h: f64) {
    if row_h >= 9.0 {
        let _ = write!(
            s,
            r#"<text class="lbl" x="{:.0}" y="{:.1}">{label}</text>"#,
            GUTTER - 6.0,
            y + row_h / 2.0 + 3.5
        );
    }
}

fn lanes(s: &mut String, t: &Timeline, top: f64, row_h: f64, x: &dyn Fn(u64) -> f64) {
    for l in 0..t.lanes {
        row_label(s, &format!("lane {}", l + 1), top + l as f64 * row_h, row_h);
    }
    for b in &t.bars {
        let y = top + b.lane as f64 * row_h + 1.0;
        let mut title = format!(
            "{} · attempt {} · {} · {}",
            esc(&b.item_id),
            b.attempt,
            dur(b.ms),
            outcome_word(b.outcome)
        );
        if let Some(c) = b.failure_class {
            let _ = write!(title, " ({c}");
            if let Some(code) = b.exit_code {
                let _ = write!(title, " {code}");
            }
            title.push(')');
        }
        if b.retried && b.outcome != Outcome::Retried {
            title.push_str(", retried");
        }
        if let (Some(m), Some(c)) = (b.peak_rss_kb, b.cpu_ms) {
            let _ = write!(title, " · peak {} · CPU {}", kib(m), dur(c));
        }
        let _ = write!(
            s,
            r#"<rect class="{}" data-k="1" x="{:.2}" y="{y:.1}" width="{:.2}" height="{:.1}"><title>{title}</title></rect>"#,
            outcome_class(b.outcome),
            x(b.start_ms),
            (x(b.start_ms + b.ms) - x(b.start_ms)).max(0.6),
            (row_h - 2.0).max(1.0)
        );
    }
}

#[allow(clippy::too_many_arguments)]
fn cell(
    s: &mut String,
    c: &Cell,
    bucket_ms: u64,
    per_row: u32,
    lanes: u32,
    x: f64,
    y: f64,
    w: f64,
    h: f64,
) {
    // The worst outcome that started here colours the cell; how busy it was, its opacity.
    let class = if c.failed > 0 {
        Outcome::Failed
    } else if c.limit > 0 {
        Outcome::Limit
    } else if c.timeout > 0 {
        Outcome::Timeout
    } else if c.retried > 0 {
        Outcome::Retried
    } else {
        Outcome::Ok
    };
    let started = c.ok + c.retried + c.timeout + c.limit + c.failed;
    let first = c.row * per_row + 1;
    let last = ((c.row + 1) * per_row).min(lanes);
    let from = c.bucket as u64 * bucket_ms;
    let mut title = format!(
        "{}–{} · lanes {first}–{last} · {:.0}% busy · {started} started",
        tick(from),
        tick(from + bucket_ms),
        c.busy * 100.0
    );
    for (n, word) in [
        (c.ok, "ok"),
        (c.retried, "retried"),
        (c.timeout, "timed out"),
        (c.limit, "over a limit"),
        (c.failed, "failed"),
    ] {
        if n > 0 {
            let _ = write!(title, " · {n} {word}");
        }
    }
    let _ = write!(
        s,
        r#"<rect class="{}" data-k="1" x="{x:.2}" y="{:.1}" width="{:.2}" height="{:.1}" fill-opacity="{:.2}"><title>{title}</title></rect>"#,
        outcome_class(class),
        y + 1.0,
        w.max(0.6),
        (h - 2.0).max(1.0),
        0.2 + 0.8 * c.busy
    );
}

fn axis(s: &mut String, end_ms: u64, y: f64, x: &dyn Fn(u64) -> f64) {
    let _ = write!(
        s,
        r#"<line class="axis" x1="{GUTTER}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}"/>"#,
        W - 8.0
    );
    let step = tick_step(end_ms.max(1), 10);
    let mut t = 0;
    while t <= end_ms {
        let _ = write!(
            s,
            r#"<line class="axis" x1="{0:.1}" y1="{y:.1}" x2="{0:.1}" y2="{1:.1}"/><text class="tick" x="{0:.1}" y="{2:.1}">{3}</text>"#,
            x(t),
            y + 4.0,
            y + 16.0,
            tick(t)
        );
        t += step;
    }
}

/// A histogram chart; `fmt` renders a bin edge.
pub fn histogram(h: &Histogram, title: &str, fmt: &dyn Fn(u64) -> String) -> String {
    let (w, ht, base) = (380.0, 170.0, 140.0);
    let mut s = format!(
        r#"<figure class="hist"><figcaption>{}</figcaption>"#,
        esc(title)
    );
    if h.bins.is_empty() {
        s.push_str(r#"<p class="none">no values recorded</p></figure>"#);
        return s;
    }
    let _ = write!(
        s,
        r#"<svg viewBox="0 0 {w} {ht}" role="img" aria-label="{}">"#,
        esc(title)
    );
    let max = h.bins.iter().map(|b| b.count).max().unwrap_or(1).max(1) as f64;
    let bw = (w - 20.0) / h.bins.len() as f64;
    for (i, b) in h.bins.iter().enumerate() {
        let bh = b.count as f64 / max * (base - 10.0);
        let _ = write!(
            s,
            r#"<rect class="bar" data-k="1" x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}"><title>{} to {}: {}</title></rect>"#,
            10.0 + i as f64 * bw + 0.5,
            base - bh,
            (bw - 1.0).max(0.5),
            bh.max(if b.count > 0 { 1.0 } else { 0.0 }),
            fmt(b.lo),
            fmt(b.hi),
            b.count
        );
    }
    let last = h.bins.last().map(|b| b.hi).unwrap_or(0);
    let _ = write!(
        s,
        r#"<line class="axis" x1="10" y1="{base}" x2="{:.0}" y2="{base}"/><text class="tick tick-l" x="10" y="{:.0}">{}</text><text class="tick tick-r" x="{:.0}" y="{:.0}">{}</text>"#,
        w - 10.0,
        base + 16.0,
        fmt(h.bins[0].lo),
        w - 10.0,
        base + 16.0,
        fmt(last)
    );
    if h.log {
        let _ = write!(
            s,
            r#"<text class="tick" x="{:.0}" y="{:.0}">log scale</text>"#,
            w / 2.0,
            base + 16.0
        );
    }
    s.push_str("</svg></figure>");
    s
}

/// Edge formatters for the histograms.
pub fn fmt_ms(v: u64) -> String {
    dur(v)
}

pub fn fmt_kib(v: u64) -> String {
    kib(v)
}
