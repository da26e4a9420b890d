//! Parallel slots from start and end times alone: each interval goes to the lowest lane
//! that is free when it starts, so a job run with `max_parallel: 8` draws as 8 lanes.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// The lane of each `(start, end)` interval (in input order) and the number of lanes.
/// An interval may start in a lane the moment the previous one there ended.
pub fn pack(intervals: &[(u64, u64)]) -> (Vec<u32>, u32) {
    let mut order: Vec<usize> = (0..intervals.len()).collect();
    order.sort_by_key(|&i| (intervals[i].0, intervals[i].1, i));
    let mut lanes = vec![0u32; intervals.len()];
    // (end, lane) of the busy lanes; the free lanes, lowest first.
    let mut busy: BinaryHeap<Reverse<(u64, u32)>> = BinaryHeap::new();
    let mut free: BinaryHeap<Reverse<u32>> = BinaryHeap::new();
    let mut count = 0u32;
    for i in order {
        let (start, end) = intervals[i];
        while let Some(Reverse((e, lane))) = busy.peek().copied() {
            if e > start {
                break;
            }
            busy.pop();
            free.push(Reverse(lane));
        }
        let lane = match free.pop() {
            Some(Reverse(l)) => l,
            None => {
                count += 1;
                count - 1
            }
        };
        lanes[i] = lane;
        busy.push(Reverse((end.max(start), lane)));
    }
    (lanes, count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn back_to_back_reuses_a_lane() {
        let (lanes, n) = pack(&[(0, 10), (10, 20), (20, 30)]);
        assert_eq!(lanes, [0, 0, 0]);
        assert_eq!(n, 1);
    }

    #[test]
    fn overlaps_take_the_lowest_free_lane() {
        // Three at once, then one after the middle one ended.
        let (lanes, n) = pack(&[(0, 100), (1, 5), (2, 50), (6, 40)]);
        assert_eq!(lanes, [0, 1, 2, 1]);
        assert_eq!(n, 3);
    }

    #[test]
    fn input_order_does_not_matter() {
        let (lanes, n) = pack(&[(6, 40), (0, 100), (2, 50), (1, 5)]);
        assert_eq!(lanes, [1, 0, 2, 1]);
        assert_eq!(n, 3);
        assert_eq!(pack(&[]), (vec![], 0));
    }

    #[test]
    fn never_more_lanes_than_overlap() {
        // 8 slots, 100 short attempts each: 8 lanes.
        let iv: Vec<(u64, u64)> = (0..800u64)
            .map(|i| {
                let slot_start = (i / 8) * 10 + (i % 8);
                (slot_start, slot_start + 9)
            })
            .collect();
        let (_, n) = pack(&iv);
        assert_eq!(n, 8);
    }
}
