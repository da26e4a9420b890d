//! The timeline: attempts packed into lanes (parallel slots), drawn one bar each up to
//! [`MAX_BARS`]; past that folded into rows of lanes by time buckets, so a 100,000-item job
//! stays a page a browser draws at once.

use crate::report::job_report::lanes::pack;
use crate::report::job_report::model::{Aggregation, Bar, Cell, Outcome};

/// Attempts drawn one by one up to this many.
pub const MAX_BARS: usize = 3000;
/// Time buckets of a folded timeline.
pub const BUCKETS: u64 = 600;
/// Rows of a folded timeline (lanes are grouped past this).
pub const MAX_ROWS: u32 = 32;

/// Bars (lane not yet known) in, bars with lanes or cells out.
pub struct Packed {
    pub lanes: u32,
    pub bars: Vec<Bar>,
    pub cells: Vec<Cell>,
    pub aggregated: Option<Aggregation>,
}

/// Put `bars` in lanes; fold them when there are too many to draw. `end_ms` is the end of
/// the time axis.
pub fn pack_bars(mut bars: Vec<Bar>, end_ms: u64) -> Packed {
    let iv: Vec<(u64, u64)> = bars
        .iter()
        .map(|b| (b.start_ms, b.start_ms + b.ms))
        .collect();
    let (lanes, count) = pack(&iv);
    for (b, l) in bars.iter_mut().zip(lanes) {
        b.lane = l;
    }
    if bars.len() <= MAX_BARS {
        bars.sort_by_key(|b| (b.lane, b.start_ms));
        return Packed {
            lanes: count,
            bars,
            cells: Vec::new(),
            aggregated: None,
        };
    }
    let (cells, agg) = fold(&bars, count.max(1), end_ms.max(1));
    Packed {
        lanes: count,
        bars: Vec::new(),
        cells,
        aggregated: Some(agg),
    }
}

#[derive(Default, Clone)]
struct Acc {
    busy_ms: u64,
    counts: [u32; 5],
}

fn slot(o: Outcome) -> usize {
    match o {
        Outcome::Ok => 0,
        Outcome::Retried => 1,
        Outcome::Timeout => 2,
        Outcome::Limit => 3,
        Outcome::Failed => 4,
    }
}

fn fold(bars: &[Bar], lanes: u32, end_ms: u64) -> (Vec<Cell>, Aggregation) {
    let lanes_per_row = lanes.div_ceil(MAX_ROWS);
    let rows = lanes.div_ceil(lanes_per_row);
    let bucket_ms = end_ms.div_ceil(BUCKETS).max(1);
    let buckets = end_ms.div_ceil(bucket_ms).max(1) as u32;
    let mut acc = vec![Acc::default(); rows as usize * buckets as usize];
    let at =
        |row: u32, b: u64| row as usize * buckets as usize + (b as usize).min(buckets as usize - 1);
    for bar in bars {
        let row = bar.lane / lanes_per_row;
        let (start, end) = (bar.start_ms, bar.start_ms + bar.ms);
        acc[at(row, start / bucket_ms)].counts[slot(bar.outcome)] += 1;
        let mut b = start / bucket_ms;
        while b * bucket_ms < end && b < buckets as u64 {
            let lo = (b * bucket_ms).max(start);
            let hi = ((b + 1) * bucket_ms).min(end);
            acc[at(row, b)].busy_ms += hi.saturating_sub(lo);
            b += 1;
        }
    }
    let mut cells = Vec::new();
    for row in 0..rows {
        let lanes_here = (lanes - row * lanes_per_row).min(lanes_per_row) as f64;
        for b in 0..buckets {
            let a = &acc[at(row, b as u64)];
            if a.busy_ms == 0 && a.counts.iter().all(|c| *c == 0) {
                continue;
            }
            let busy = (a.busy_ms as f64 / (bucket_ms as f64 * lanes_here)).min(1.0);
            cells.push(Cell {
                row,
                bucket: b,
                busy: (busy * 1000.0).round() / 1000.0,
                ok: a.counts[0],
                retried: a.counts[1],
                timeout: a.counts[2],
                limit: a.counts[3],
                failed: a.counts[4],
            });
        }
    }
    (
        cells,
        Aggregation {
            bucket_ms,
            buckets,
            lanes_per_row,
            rows,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bar(start_ms: u64, ms: u64, outcome: Outcome) -> Bar {
        Bar {
            lane: 0,
            start_ms,
            ms,
            item_id: "x".into(),
            attempt: 1,
            outcome,
            retried: false,
            failure_class: None,
            exit_code: None,
            peak_rss_kb: None,
            cpu_ms: None,
        }
    }

    #[test]
    fn few_attempts_are_bars_in_lanes() {
        let p = pack_bars(
            vec![bar(0, 10, Outcome::Ok), bar(5, 10, Outcome::Failed)],
            20,
        );
        assert_eq!(p.lanes, 2);
        assert!(p.aggregated.is_none());
        assert_eq!(p.bars.len(), 2);
        assert_eq!(p.bars[1].lane, 1);
    }

    #[test]
    fn many_attempts_fold_into_cells() {
        // 8 slots busy all the time: 10,000 attempts of 10 ms over 12.5 s.
        let bars: Vec<Bar> = (0..10_000u64)
            .map(|i| {
                let o = if i % 100 == 0 {
                    Outcome::Failed
                } else {
                    Outcome::Ok
                };
                bar((i / 8) * 10, 10, o)
            })
            .collect();
        let p = pack_bars(bars, 12_500);
        let agg = p.aggregated.expect("folded");
        assert!(p.bars.is_empty());
        assert_eq!(p.lanes, 8);
        assert_eq!(agg.rows, 8);
        assert_eq!(agg.lanes_per_row, 1);
        assert!(agg.buckets as u64 <= BUCKETS);
        let started: u32 = p.cells.iter().map(|c| c.ok + c.failed).sum();
        assert_eq!(started, 10_000);
        assert_eq!(p.cells.iter().map(|c| c.failed).sum::<u32>(), 100);
        // Fully busy lanes (but in the last bucket, which the job ends inside).
        let last = agg.buckets - 1;
        for c in p.cells.iter().filter(|c| c.bucket < last) {
            assert!(c.busy > 0.99, "{c:?}");
        }
    }

    #[test]
    fn many_lanes_are_grouped_into_rows() {
        // 100 at once, 40 times over.
        let bars: Vec<Bar> = (0..4000u64)
            .map(|i| bar((i / 100) * 10, 10, Outcome::Ok))
            .collect();
        let p = pack_bars(bars, 400);
        let agg = p.aggregated.expect("folded");
        assert_eq!(p.lanes, 100);
        assert_eq!(agg.lanes_per_row, 4);
        assert_eq!(agg.rows, 25);
        assert!(p.cells.iter().all(|c| c.row < 25));
    }
}
