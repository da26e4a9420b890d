//! Histogram bins: linear over a narrow range, geometric when values spread over orders
//! of magnitude (item durations from milliseconds to hours).

use crate::report::job_report::model::{Bin, Histogram};

/// At most this many bins.
pub const BINS: usize = 24;

/// Bin `values` (any order).
pub fn histogram(values: &[u64], unit: &'static str) -> Histogram {
    let (Some(&min), Some(&max)) = (values.iter().min(), values.iter().max()) else {
        return Histogram {
            unit,
            log: false,
            bins: Vec::new(),
        };
    };
    let log = min.max(1) * 50 < max;
    let edges = if log {
        let mut e = log_edges(min.max(1), max);
        if min == 0 {
            e.insert(0, 0);
        }
        e
    } else {
        linear_edges(min, max)
    };
    let mut bins: Vec<Bin> = edges
        .windows(2)
        .map(|w| Bin {
            lo: w[0],
            hi: w[1],
            count: 0,
        })
        .collect();
    for &v in values {
        // The bin whose [lo, hi) holds v; the last bin also holds its upper edge.
        let i = bins.partition_point(|b| b.hi <= v).min(bins.len() - 1);
        bins[i].count += 1;
    }
    Histogram { unit, log, bins }
}

/// Up to [`BINS`] equal integer-width bins covering `min..=max`.
fn linear_edges(min: u64, max: u64) -> Vec<u64> {
    let span = max - min + 1;
    let width = span.div_ceil(BINS as u64).max(1);
    let n = span.div_ceil(width);
    (0..=n).map(|i| min + i * width).collect()
}

/// Geometric edges from `min` to past `max` (`min >= 1`).
fn log_edges(min: u64, max: u64) -> Vec<u64> {
    let ratio = ((max as f64 + 1.0) / min as f64).powf(1.0 / BINS as f64);
    let mut edges = vec![min];
    let mut x = min as f64;
    while *edges.last().unwrap_or(&min) <= max {
        x *= ratio;
        let e = (x.ceil() as u64).max(edges.last().unwrap_or(&min) + 1);
        edges.push(e);
    }
    edges
}

#[cfg(test)]
mod tests {
    use super::*;

    fn total(h: &Histogram) -> u64 {
        h.bins.iter().map(|b| b.count).sum()
    }

    #[test]
    fn narrow_values_get_linear_bins() {
        let v: Vec<u64> = (100..=200).collect();
        let h = histogram(&v, "ms");
        assert!(!h.log);
        assert!(h.bins.len() <= BINS);
        assert_eq!(total(&h), 101);
        assert_eq!(h.bins[0].lo, 100);
        assert!(h.bins.last().unwrap().hi > 200);
        // Equal widths, contiguous.
        for w in h.bins.windows(2) {
            assert_eq!(w[0].hi, w[1].lo);
        }
    }

    #[test]
    fn spread_values_get_log_bins() {
        let v = [1, 2, 5, 10, 100, 1000, 10_000, 3_600_000];
        let h = histogram(&v, "ms");
        assert!(h.log);
        assert!(h.bins.len() <= BINS + 1, "{} bins", h.bins.len());
        assert_eq!(total(&h), v.len() as u64);
        assert_eq!(h.bins.first().unwrap().lo, 1);
        assert!(h.bins.last().unwrap().hi > 3_600_000);
    }

    #[test]
    fn edge_cases() {
        assert!(histogram(&[], "ms").bins.is_empty());
        let one = histogram(&[7], "ms");
        assert_eq!(total(&one), 1);
        assert_eq!(one.bins.len(), 1);
        let zeros = histogram(&[0, 0, 0], "KiB");
        assert_eq!(total(&zeros), 3);
        let with_zero = histogram(&[0, 1, 1_000_000], "KiB");
        assert_eq!(total(&with_zero), 3);
        assert_eq!(
            with_zero.bins[0],
            Bin {
                lo: 0,
                hi: 1,
                count: 1
            }
        );
    }

    #[test]
    fn every_value_lands_in_its_bin() {
        let spread: Vec<u64> = (0..5000).map(|i| (i * i) % 100_003).collect();
        let narrow: Vec<u64> = (0..5000).map(|i| 1000 + (i * 7) % 37).collect();
        for v in [spread, narrow] {
            let h = histogram(&v, "ms");
            assert_eq!(total(&h), v.len() as u64);
            let mut expected = vec![0u64; h.bins.len()];
            for &x in &v {
                let last = h.bins.len() - 1;
                let i = h
                    .bins
                    .iter()
                    .position(|b| b.lo <= x && x < b.hi)
                    .unwrap_or(last);
                assert!(
                    h.bins[i].lo <= x && x <= h.bins[i].hi,
                    "{x} outside {:?}",
                    h.bins[i]
                );
                expected[i] += 1;
            }
            assert_eq!(h.bins.iter().map(|b| b.count).collect::<Vec<_>>(), expected);
        }
    }
}
