//! Which fires are due at `now`, and what becomes of them (pure): a fire missed by more
//! than `misfire_grace` is recorded as missed; with `coalesce`, several fires still within
//! the grace run once; the rest run each. `max_instances` is applied when a run would
//! start (it depends on what still runs).

use jiff::Timestamp;

use crate::schedule::model::Policy;
use crate::schedule::trigger::{Trigger, jitter_of, plus};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Due {
    /// Start a run for the fire at `nominal` (`coalesced` earlier fires folded into it).
    Fire { nominal: Timestamp, coalesced: u32 },
    /// Fires too late to run.
    Missed {
        first: Timestamp,
        last: Timestamp,
        count: u64,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    pub due: Vec<Due>,
    /// The fire handled last (nothing at or before it is owed any more).
    pub handled: Option<Timestamp>,
    /// The next fire after those handled.
    pub next: Option<Timestamp>,
}

/// Fires looked at before the rest of a long outage is counted as missed in one go.
const MAX_STEPS: usize = 100_000;

/// When the fire at `nominal` starts (its jitter added).
pub fn start_of(name: &str, nominal: Timestamp, policy: &Policy) -> Timestamp {
    plus(nominal, jitter_of(name, nominal, policy.jitter))
}

/// Plan the fires after `from` (the last fire handled, or when the schedule was first
/// seen) that are due at `now`.
pub fn plan(
    name: &str,
    trigger: &Trigger,
    policy: &Policy,
    from: Timestamp,
    anchor: Timestamp,
    now: Timestamp,
) -> Planned {
    let mut t = from;
    let mut handled = None;
    let mut missed: Option<(Timestamp, Timestamp, u64)> = None;
    let mut runnable: Vec<Timestamp> = Vec::new();
    let mut steps = 0;
    let grace =
        jiff::SignedDuration::try_from(policy.misfire_grace).unwrap_or(jiff::SignedDuration::MAX);
    while let Some(nominal) = trigger.next_after(t, anchor) {
        let start = start_of(name, nominal, policy);
        if start > now {
            break;
        }
        if now.duration_since(start) > grace {
            missed = Some(match missed {
                None => (nominal, nominal, 1),
                Some((f, _, n)) => (f, nominal, n + 1),
            });
        } else {
            runnable.push(nominal);
        }
        handled = Some(nominal);
        t = nominal;
        steps += 1;
        if steps >= MAX_STEPS {
            // A long outage of a frequent schedule: what is older than the grace is missed.
            let skip_to = now
                .checked_sub(grace)
                .ok()
                .and_then(|x| {
                    x.checked_sub(jiff::SignedDuration::try_from(policy.jitter).ok()?)
                        .ok()
                })
                .unwrap_or(now);
            if skip_to > t {
                t = skip_to;
            }
            steps = 0;
        }
    }
    let mut due = Vec::new();
    if let Some((first, last, count)) = missed {
        due.push(Due::Missed { first, last, count });
    }
    if policy.coalesce {
        if let Some(&last) = runnable.last() {
            due.push(Due::Fire {
                nominal: last,
                coalesced: runnable.len() as u32 - 1,
            });
        }
    } else {
        due.extend(runnable.into_iter().map(|nominal| Due::Fire {
            nominal,
            coalesced: 0,
        }));
    }
    Planned {
        due,
        next: trigger.next_after(t, anchor),
        handled,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn every(secs: u64) -> Trigger {
        Trigger::Every {
            every: Duration::from_secs(secs),
            start: None,
        }
    }

    fn policy(grace: u64, coalesce: bool) -> Policy {
        Policy {
            misfire_grace: Duration::from_secs(grace),
            coalesce,
            ..Policy::default()
        }
    }

    #[test]
    fn nothing_due_before_the_first_fire() {
        let a = ts("2026-01-01T00:00:00Z");
        let p = plan(
            "s",
            &every(60),
            &policy(10, true),
            a,
            a,
            ts("2026-01-01T00:00:59Z"),
        );
        assert!(p.due.is_empty());
        assert_eq!(p.handled, None);
        assert_eq!(p.next, Some(ts("2026-01-01T00:01:00Z")));
    }

    #[test]
    fn a_fire_within_the_grace_runs() {
        let a = ts("2026-01-01T00:00:00Z");
        let p = plan(
            "s",
            &every(60),
            &policy(10, true),
            a,
            a,
            ts("2026-01-01T00:01:05Z"),
        );
        assert_eq!(
            p.due,
            vec![Due::Fire {
                nominal: ts("2026-01-01T00:01:00Z"),
                coalesced: 0
            }]
        );
        assert_eq!(p.next, Some(ts("2026-01-01T00:02:00Z")));
    }

    #[test]
    fn fires_older_than_the_grace_are_missed_and_the_rest_coalesce() {
        let a = ts("2026-01-01T00:00:00Z");
        // Down from 00:00 to 00:10:30 with a 5-minute grace: 00:01..00:05 missed, 00:06..00:10
        // within the grace.
        let now = ts("2026-01-01T00:10:30Z");
        let p = plan("s", &every(60), &policy(300, true), a, a, now);
        assert_eq!(
            p.due,
            vec![
                Due::Missed {
                    first: ts("2026-01-01T00:01:00Z"),
                    last: ts("2026-01-01T00:05:00Z"),
                    count: 5
                },
                Due::Fire {
                    nominal: ts("2026-01-01T00:10:00Z"),
                    coalesced: 4
                }
            ]
        );
        assert_eq!(p.handled, Some(ts("2026-01-01T00:10:00Z")));
        let p = plan("s", &every(60), &policy(300, false), a, a, now);
        assert_eq!(p.due.len(), 1 + 5);
    }

    #[test]
    fn a_long_outage_of_a_frequent_schedule_is_bounded() {
        let a = ts("2026-01-01T00:00:00Z");
        let now = ts("2026-03-01T00:00:00Z");
        let p = plan("s", &every(1), &policy(2, true), a, a, now);
        assert!(matches!(p.due[0], Due::Missed { .. }));
        assert!(matches!(p.due.last(), Some(Due::Fire { .. })));
        assert_eq!(p.next, Some(ts("2026-03-01T00:00:01Z")));
    }
}
