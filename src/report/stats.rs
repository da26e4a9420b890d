//! Percentiles of recorded figures (durations, memory, CPU time) for `status` and `report`.

use serde::Serialize;

/// The value at rank `p` (0..1) of sorted values.
pub fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

/// p50, p95 and max of some values (all `None` without values).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Spread {
    pub p50: Option<u64>,
    pub p95: Option<u64>,
    pub max: Option<u64>,
}

impl Spread {
    pub fn of(mut values: Vec<u64>) -> Spread {
        values.sort_unstable();
        Spread {
            p50: percentile(&values, 0.5),
            p95: percentile(&values, 0.95),
            max: values.last().copied(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 0.5), Some(50));
        assert_eq!(percentile(&v, 0.95), Some(95));
        assert_eq!(percentile(&[], 0.5), None);
        assert_eq!(
            Spread::of(vec![3, 1, 2]),
            Spread {
                p50: Some(2),
                p95: Some(3),
                max: Some(3)
            }
        );
        assert_eq!(Spread::of(Vec::new()), Spread::default());
    }
}
