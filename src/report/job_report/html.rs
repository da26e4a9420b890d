//! The report as one self-contained HTML file: inline CSS, inline SVG, a few lines of
//! inline script (click a mark to pin its details), no network access.

use std::fmt::Write;

use crate::report::job_report::model::{DlqReport, ItemRow, JobReport, Spread};
use crate::report::job_report::svg::{self, fmt_kib, fmt_ms};
use crate::report::job_report::text::{dur, esc, kib, or_dash};
use crate::report::job_report::timeline::MAX_BARS;
use crate::session::live::state_name;
use crate::state::time::Timestamp;

const STYLE: &str = r#"
:root{--ok:#2e9e4f;--retried:#f0a030;--timeout:#8e5bd6;--limit:#9a5b2c;--failed:#d64545;--step:#3b7dd8;--fg:#1d2330;--muted:#5d6677;--line:#d9dde5;--bg:#f6f7f9}
*{box-sizing:border-box}body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);background:var(--bg)}
header,section,footer{max-width:1240px;margin:0 auto;padding:14px 20px}
header h1{margin:8px 0 2px;font-size:24px}.sub{color:var(--muted)}
h2{font-size:17px;margin:6px 0 10px}h3{font-size:14px;margin:4px 0 6px}
.card-row{display:grid;grid-template-columns:repeat(auto-fill,minmax(170px,1fr));gap:10px}
.card{background:#fff;border:1px solid var(--line);border-radius:8px;padding:10px 12px}
.card .k{color:var(--muted);font-size:12px;text-transform:uppercase;letter-spacing:.04em}.card .v{font-size:18px;font-weight:600;margin-top:2px}.card .d{color:var(--muted);font-size:12px}
.panel{background:#fff;border:1px solid var(--line);border-radius:8px;padding:12px}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;color:#fff;font-weight:600;font-size:12px}
.st-completed{background:var(--ok)}.st-failed{background:var(--failed)}.st-running,.st-paused{background:var(--step)}.st-interrupted,.st-stale{background:var(--retried)}
svg{display:block;width:100%;height:auto}
.o-ok{fill:var(--ok)}.o-retried{fill:var(--retried)}.o-timeout{fill:var(--timeout)}.o-limit{fill:var(--limit)}.o-failed{fill:var(--failed)}.o-step{fill:var(--step)}
rect[data-k]{cursor:pointer}rect[data-k]:hover{stroke:#000;stroke-width:1}rect.sel{stroke:#000;stroke-width:2}
.pause{fill:#f2c94c;fill-opacity:.25}.idle{fill:url(#idle)}.idle-stripe{fill:#c9ced8}
.lbl{font-size:10px;fill:var(--muted);text-anchor:end}.tick{font-size:10px;fill:var(--muted);text-anchor:middle}.tick-l{text-anchor:start}.tick-r{text-anchor:end}.axis{stroke:#9aa3b2;stroke-width:1}
.bar{fill:var(--step)}
.legend{display:flex;flex-wrap:wrap;gap:12px;margin:4px 0 8px;color:var(--muted);font-size:12px}.legend i{display:inline-block;width:12px;height:12px;border-radius:2px;margin-right:4px;vertical-align:-2px}
.note{color:var(--muted);font-size:13px;margin:2px 0 8px}
.detail{margin-top:8px;min-height:22px;font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12.5px;color:var(--fg)}
.grid3{display:grid;grid-template-columns:repeat(auto-fit,minmax(320px,1fr));gap:12px}.grid2{display:grid;grid-template-columns:repeat(auto-fit,minmax(480px,1fr));gap:12px}
figure{margin:0}figcaption{font-weight:600;margin-bottom:4px}.none{color:var(--muted)}
table{border-collapse:collapse;width:100%;font-size:13px}th,td{text-align:left;padding:4px 8px;border-bottom:1px solid var(--line);vertical-align:top}th{color:var(--muted);font-weight:600}td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
td.id{font-family:ui-monospace,Menlo,Consolas,monospace;word-break:break-all}
details{margin:6px 0}summary{cursor:pointer;font-weight:600}pre{background:#f0f2f5;border-radius:6px;padding:8px;margin:4px 0 8px;white-space:pre-wrap;word-break:break-all;font-size:12px;max-height:260px;overflow:auto}
footer{color:var(--muted);font-size:12px}
td .d{color:var(--muted);font-size:12px}svg.nodebar{height:16px}.node-h{border-top:2px solid var(--line);margin-top:18px}
.nd-completed{background:var(--ok)}.nd-failed{background:var(--failed)}.nd-running{background:var(--step)}.nd-interrupted{background:var(--retried)}.nd-skipped,.nd-pending{background:#8a93a3}
"#;

/// Shows a mark's details when it is clicked; marks the page as drawn (for tests).
const SCRIPT: &str = r#"
(function(){
  var sel=null;
  document.addEventListener('click',function(e){
    var t=e.target;if(!t||!t.getAttribute||!t.getAttribute('data-k'))return;
    var sec=t.closest('section'),d=sec&&sec.querySelector('.detail');
    var title=t.querySelector('title');if(!title||!d)return;
    if(sel)sel.classList.remove('sel');sel=t;t.classList.add('sel');
    d.textContent=title.textContent;
  });
  document.body.setAttribute('data-drawn','1');
})();
"#;

/// The whole page for one job.
pub fn page(r: &JobReport) -> String {
    let title = format!("runner report: {} ({})", r.workflow, r.job_id);
    let mut s = head(&title);
    s.push_str(&job_sections(r, None));
    s.push_str(&foot(r.generated_at));
    s
}

pub fn head(title: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'\"><title>{}</title><style>{STYLE}</style></head><body>\n",
        esc(title)
    )
}

pub fn foot(generated_at: Timestamp) -> String {
    format!(
        "<footer>Generated by <code>runner report</code> at {generated_at}. This page is self-contained: it loads nothing from the network.</footer><script>{SCRIPT}</script></body></html>\n"
    )
}

/// The sections of one job; on a pipeline's page (one set per node) they are headed by
/// the node's name.
pub fn job_sections(r: &JobReport, node: Option<&str>) -> String {
    let mut s = String::new();
    let (class, title, wf) = match node {
        None => ("", format!("<h1>{}</h1>", esc(&r.workflow)), String::new()),
        Some(n) => (
            r#" class="node-h""#,
            format!("<h2>Job {}</h2>", esc(n)),
            format!("workflow <b>{}</b> · ", esc(&r.workflow)),
        ),
    };
    let _ = write!(
        s,
        r#"<header{class}>{title}<div class="sub">{wf}job <code>{}</code> · <span class="badge st-{}">{}</span> · exit code {}{}</div></header>"#,
        esc(&r.job_id),
        state_name(r.state),
        state_name(r.state),
        r.exit_code,
        r.summary
            .failed_step
            .as_ref()
            .map(|f| format!(" · {} did not finish", esc(f)))
            .unwrap_or_default()
    );
    s.push_str(&summary(r));
    s.push_str(&timeline(r));
    s.push_str(&histograms(r));
    s.push_str(&tables(r));
    s.push_str(&dlq(&r.dlq));
    s
}

pub fn card(s: &mut String, k: &str, v: &str, d: &str) {
    let _ = write!(
        s,
        r#"<div class="card"><div class="k">{k}</div><div class="v">{v}</div><div class="d">{d}</div></div>"#
    );
}

fn spread_text(sp: &Spread, f: &dyn Fn(u64) -> String) -> (String, String) {
    (
        or_dash(sp.p50, f),
        format!("p95 {} · max {}", or_dash(sp.p95, f), or_dash(sp.max, f)),
    )
}

fn summary(r: &JobReport) -> String {
    let m = &r.summary;
    let mut s = String::from(r#"<section id="summary"><div class="card-row">"#);
    card(
        &mut s,
        "items",
        &format!("{} / {}", m.successful, m.total),
        &format!(
            "succeeded · {} failed ({} in the DLQ) · {} pending",
            m.failed, m.dlq, m.pending
        ),
    );
    card(
        &mut s,
        "wall time",
        &dur(m.wall_ms),
        &format!(
            "{} run{} · started {}",
            m.runs,
            if m.runs == 1 { "" } else { "s" },
            m.started_at.map(|t| t.to_string()).unwrap_or_default()
        ),
    );
    card(
        &mut s,
        "throughput",
        &m.throughput_per_s
            .map(|t| format!("{t} items/s"))
            .unwrap_or_else(|| "–".into()),
        &format!("{} attempts · {} retries", m.attempts, m.retries),
    );
    let (p50, rest) = spread_text(&m.duration_ms, &dur);
    card(&mut s, "attempt duration p50", &p50, &rest);
    let (p50, rest) = spread_text(&m.peak_rss_kb, &kib);
    card(&mut s, "peak memory p50", &p50, &rest);
    let (p50, rest) = spread_text(&m.cpu_ms, &dur);
    card(&mut s, "CPU time p50", &p50, &rest);
    s.push_str("</div></section>");
    s
}

fn timeline(r: &JobReport) -> String {
    let t = &r.timeline;
    let mut s = String::from(r#"<section id="timeline"><div class="panel"><h2>Timeline</h2>"#);
    if t.bars.is_empty() && t.cells.is_empty() && t.steps.is_empty() {
        s.push_str(r#"<p class="none">No attempt has been recorded yet.</p></div></section>"#);
        return s;
    }
    let _ = write!(
        s,
        r#"<p class="note">{} lane{} (parallel slots, from the attempts' start and end times) over {}. Hover a bar for its item, attempt, duration and outcome; click to keep it below.</p>"#,
        t.lanes,
        if t.lanes == 1 { "" } else { "s" },
        dur(t.end_ms)
    );
    if let Some(a) = &t.aggregated {
        let _ = write!(
            s,
            r#"<p class="note"><b>Aggregated:</b> {} attempts are more than the {MAX_BARS} drawn one by one, so each row groups {} lane{} and each cell {} of time. A cell's colour is the worst outcome of the attempts that started in it, its opacity how busy its lanes were.</p>"#,
            r.summary.attempts,
            a.lanes_per_row,
            if a.lanes_per_row == 1 { "" } else { "s" },
            dur(a.bucket_ms)
        );
    }
    s.push_str(r#"<div class="legend"><span><i style="background:var(--ok)"></i>succeeded</span><span><i style="background:var(--retried)"></i>failed, retried</span><span><i style="background:var(--timeout)"></i>timed out</span><span><i style="background:var(--limit)"></i>resource limit</span><span><i style="background:var(--failed)"></i>failed for good</span><span><i style="background:var(--step)"></i>setup / reduce step</span><span><i style="background:#f2c94c66"></i>paused</span><span><i style="background:#c9ced8"></i>not running</span></div>"#);
    s.push_str(&svg::timeline(t));
    s.push_str(r#"<div class="detail">Click a bar for its details.</div></div></section>"#);
    s
}

fn histograms(r: &JobReport) -> String {
    let h = &r.histograms;
    let mut s = String::from(
        r#"<section id="histograms"><div class="panel"><h2>Distributions (all attempts)</h2><div class="grid3">"#,
    );
    s.push_str(&svg::histogram(&h.duration_ms, "Duration", &fmt_ms));
    s.push_str(&svg::histogram(
        &h.peak_rss_kb,
        "Peak memory (RSS)",
        &fmt_kib,
    ));
    s.push_str(&svg::histogram(
        &h.cpu_ms,
        "CPU time (user + system)",
        &fmt_ms,
    ));
    s.push_str(r#"</div><p class="note">Peak memory without cgroups is at least runner's own resident size when it started the step: smaller figures read as that size (docs/resources.md, caveats).</p></div></section>"#);
    s
}

fn item_table(title: &str, rows: &[ItemRow]) -> String {
    let mut s = format!(r#"<div class="panel"><h3>{title}</h3>"#);
    if rows.is_empty() {
        s.push_str(r#"<p class="none">none</p></div>"#);
        return s;
    }
    s.push_str(r#"<table><tr><th>item</th><th>status</th><th class="n">attempts</th><th class="n">time</th><th class="n">peak memory</th><th class="n">CPU</th></tr>"#);
    for r in rows {
        let status = serde_json::to_value(r.status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let _ = write!(
            s,
            r#"<tr><td class="id">{}</td><td>{}{}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td></tr>"#,
            esc(&r.item_id),
            status,
            r.failure_class
                .map(|c| format!(" ({c})"))
                .unwrap_or_default(),
            r.attempts,
            dur(r.duration_ms),
            or_dash(r.peak_rss_kb, kib),
            or_dash(r.cpu_ms, dur)
        );
    }
    s.push_str("</table></div>");
    s
}

fn tables(r: &JobReport) -> String {
    format!(
        r#"<section id="items"><div class="grid2">{}{}</div></section>"#,
        item_table("10 slowest items (all attempts)", &r.slowest),
        item_table("10 heaviest items (peak memory)", &r.heaviest)
    )
}

fn dlq(d: &DlqReport) -> String {
    let mut s = String::from(r#"<section id="dlq"><div class="panel"><h2>Dead-letter queue</h2>"#);
    if d.entries == 0 {
        s.push_str(r#"<p class="none">The DLQ is empty.</p></div></section>"#);
        return s;
    }
    let _ = write!(
        s,
        r#"<table><tr><th>failure class</th><th class="n">items</th></tr>"#
    );
    for c in &d.classes {
        let _ = write!(
            s,
            r#"<tr><td>{}</td><td class="n">{}</td></tr>"#,
            c.class, c.count
        );
    }
    s.push_str("</table>");
    for (i, c) in d.classes.iter().enumerate() {
        let _ = write!(
            s,
            r#"<details{}><summary>{} ({} item{}; the first {} shown)</summary>"#,
            if i == 0 { " open" } else { "" },
            c.class,
            c.count,
            if c.count == 1 { "" } else { "s" },
            c.examples.len()
        );
        for e in &c.examples {
            let _ = write!(
                s,
                r#"<div><b class="id">{}</b> · {} attempt{} · {}</div><pre>{}</pre>"#,
                esc(&e.item_id),
                e.attempts,
                if e.attempts == 1 { "" } else { "s" },
                esc(&e.error),
                if e.stderr_tail.is_empty() {
                    "(no stderr)".to_owned()
                } else {
                    esc(&e.stderr_tail)
                }
            );
        }
        s.push_str("</details>");
    }
    s.push_str("</div></section>");
    s
}
