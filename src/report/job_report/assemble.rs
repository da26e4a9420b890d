//! From a job's history to the report: summary, timeline, histograms, the slowest and
//! heaviest items, the DLQ by failure class.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::report::job_report::bins::histogram;
use crate::report::job_report::load::{AttemptRec, History};
use crate::report::job_report::model::{
    Bar, DlqClass, DlqExample, DlqReport, FORMAT_VERSION, Histograms, ItemRow, JobReport, Outcome,
    Span, Spread, StepBar, Summary, Timeline,
};
use crate::report::job_report::timeline::pack_bars;
use crate::state::records::{Failure, Phase};
use crate::state::time::Timestamp;

/// Rows of the slowest and heaviest tables.
pub const TOP: usize = 10;
/// DLQ entries shown per failure class.
pub const EXAMPLES: usize = 5;

pub fn assemble(h: &History) -> JobReport {
    let origin = h
        .runs
        .first()
        .map(|r| r.start)
        .or_else(|| h.attempts.iter().map(|a| a.at).min());
    let ms_of = |t: Timestamp| origin.map(|o| t.since(o).as_millis() as u64).unwrap_or(0);
    let end_ms = h
        .runs
        .iter()
        .map(|r| ms_of(r.end))
        .chain(h.attempts.iter().map(|a| ms_of(a.at) + a.ms))
        .max()
        .unwrap_or(0);
    let last_attempt: HashMap<usize, u32> = h.attempts.iter().fold(HashMap::new(), |mut m, a| {
        let e = m.entry(a.idx).or_default();
        *e = (*e).max(a.attempt);
        m
    });
    let id = |idx: usize| h.ids.get(idx).cloned().unwrap_or_else(|| format!("#{idx}"));
    let bars: Vec<Bar> = h
        .attempts
        .iter()
        .map(|a| {
            let retried = a.class.is_some() && last_attempt.get(&a.idx) > Some(&a.attempt);
            Bar {
                lane: 0,
                start_ms: ms_of(a.at),
                ms: a.ms,
                item_id: id(a.idx),
                attempt: a.attempt,
                outcome: outcome(a.class, retried),
                retried,
                failure_class: a.class,
                exit_code: a.exit_code,
                peak_rss_kb: a.usage.map(|u| u.peak_rss_kb),
                cpu_ms: a.usage.map(|u| u.cpu_ms),
            }
        })
        .collect();
    let packed = pack_bars(bars, end_ms);
    let run_end_ms = |at: Timestamp| {
        h.runs
            .iter()
            .find(|r| r.start <= at && at <= r.end)
            .map(|r| ms_of(r.end))
            .unwrap_or(end_ms)
    };
    let steps: Vec<StepBar> = h
        .steps
        .iter()
        .map(|s| StepBar {
            phase: if s.phase == Phase::Reduce {
                "reduce"
            } else {
                "setup"
            },
            step: s.index + 1,
            start_ms: ms_of(s.at),
            ms: s
                .ms
                .unwrap_or_else(|| run_end_ms(s.at).saturating_sub(ms_of(s.at))),
            outcome: if s.ms.is_some() {
                Outcome::Ok
            } else {
                Outcome::Failed
            },
        })
        .collect();
    let failed_step = steps
        .iter()
        .find(|s| s.outcome == Outcome::Failed)
        .map(|s| format!("{} step {}", s.phase, s.step));
    let pauses = h
        .view
        .pauses
        .iter()
        .map(|p| Span {
            start_ms: ms_of(p.paused_at),
            end_ms: p.resumed_at.map(ms_of).unwrap_or(end_ms),
        })
        .collect();
    let runs: Vec<Span> = h
        .runs
        .iter()
        .map(|r| Span {
            start_ms: ms_of(r.start),
            end_ms: ms_of(r.end),
        })
        .collect();
    let durations: Vec<u64> = h.attempts.iter().map(|a| a.ms).collect();
    let rss: Vec<u64> = h
        .attempts
        .iter()
        .filter_map(|a| a.usage.map(|u| u.peak_rss_kb))
        .collect();
    let cpu: Vec<u64> = h
        .attempts
        .iter()
        .filter_map(|a| a.usage.map(|u| u.cpu_ms))
        .collect();
    let c = h.view.counts;
    let run_ms: u64 = runs.iter().map(|r| r.end_ms - r.start_ms).sum();
    let finished = c.total - c.pending;
    let attempted: HashSet<usize> = h.attempts.iter().map(|a| a.idx).collect();
    let (slowest, heaviest) = top_items(h, &id);
    JobReport {
        format_version: FORMAT_VERSION,
        job_id: h.meta.job_id.clone(),
        workflow: h.meta.workflow_name.clone(),
        state: h.state,
        exit_code: crate::error::job_exit_code(h.state, None),
        generated_at: Timestamp::now(),
        summary: Summary {
            total: c.total,
            successful: c.successful,
            failed: c.failed_total(),
            dlq: c.dlq,
            pending: c.pending,
            attempts: h.attempts.len(),
            retries: h.attempts.len() - attempted.len(),
            runs: h.view.runs,
            started_at: origin,
            ended_at: h.runs.last().map(|r| r.end),
            wall_ms: end_ms,
            throughput_per_s: (run_ms > 0 && finished > 0)
                .then(|| (finished as f64 * 1000.0 / run_ms as f64 * 10.0).round() / 10.0),
            duration_ms: Spread::of(durations.clone()),
            peak_rss_kb: Spread::of(rss.clone()),
            cpu_ms: Spread::of(cpu.clone()),
            failed_step,
        },
        timeline: Timeline {
            origin,
            end_ms,
            lanes: packed.lanes,
            aggregated: packed.aggregated,
            bars: packed.bars,
            cells: packed.cells,
            steps,
            pauses,
            runs,
        },
        histograms: Histograms {
            duration_ms: histogram(&durations, "ms"),
            peak_rss_kb: histogram(&rss, "KiB"),
            cpu_ms: histogram(&cpu, "ms"),
        },
        slowest,
        heaviest,
        dlq: dlq_report(h),
    }
}

fn outcome(class: Option<&str>, retried: bool) -> Outcome {
    match class {
        None => Outcome::Ok,
        Some("timeout") => Outcome::Timeout,
        Some("memory_limit" | "cpu_limit" | "process_limit") => Outcome::Limit,
        Some(_) if retried => Outcome::Retried,
        Some(_) => Outcome::Failed,
    }
}

/// The slowest (all attempts' time) and heaviest (highest peak memory) items.
fn top_items(h: &History, id: &dyn Fn(usize) -> String) -> (Vec<ItemRow>, Vec<ItemRow>) {
    let mut by_item: BTreeMap<usize, Vec<&AttemptRec>> = BTreeMap::new();
    for a in &h.attempts {
        by_item.entry(a.idx).or_default().push(a);
    }
    let rows: Vec<ItemRow> = by_item
        .iter()
        .map(|(&idx, atts)| {
            let measured: Vec<_> = atts.iter().filter_map(|a| a.usage).collect();
            let last = atts.iter().max_by_key(|a| a.attempt);
            ItemRow {
                item_id: id(idx),
                status: h.view.items.status(idx),
                attempts: atts.len() as u32,
                duration_ms: atts.iter().map(|a| a.ms).sum(),
                peak_rss_kb: measured.iter().map(|u| u.peak_rss_kb).max(),
                cpu_ms: (!measured.is_empty()).then(|| measured.iter().map(|u| u.cpu_ms).sum()),
                failure_class: last.and_then(|a| a.class),
            }
        })
        .collect();
    let mut slowest = rows.clone();
    slowest.sort_by_key(|r| std::cmp::Reverse(r.duration_ms));
    slowest.truncate(TOP);
    let mut heaviest: Vec<ItemRow> = rows
        .into_iter()
        .filter(|r| r.peak_rss_kb.is_some())
        .collect();
    heaviest.sort_by_key(|r| std::cmp::Reverse((r.peak_rss_kb, r.cpu_ms)));
    heaviest.truncate(TOP);
    (slowest, heaviest)
}

fn dlq_report(h: &History) -> DlqReport {
    let mut classes: Vec<DlqClass> = Vec::new();
    for e in &h.dlq {
        let last = e.attempts.last();
        let class = e.last_error().map(Failure::class).unwrap_or("unknown");
        let pos = match classes.iter().position(|c| c.class == class) {
            Some(p) => p,
            None => {
                classes.push(DlqClass {
                    class,
                    count: 0,
                    examples: Vec::new(),
                });
                classes.len() - 1
            }
        };
        let c = &mut classes[pos];
        c.count += 1;
        if c.examples.len() < EXAMPLES {
            c.examples.push(DlqExample {
                item_id: e.item_id.clone(),
                attempts: e.attempts.len(),
                error: e.last_error().map(|f| f.to_string()).unwrap_or_default(),
                stderr_tail: last.map(|a| a.stderr_tail.clone()).unwrap_or_default(),
            });
        }
    }
    classes.sort_by(|a, b| b.count.cmp(&a.count).then(a.class.cmp(b.class)));
    DlqReport {
        entries: h.dlq.len(),
        classes,
    }
}
