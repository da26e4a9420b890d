//! Lease arithmetic: a claim is held for `lease` and extended by each heartbeat, so a
//! worker must heartbeat well within its lease; a worker whose last heartbeat is older than
//! its lease has lost its claims. And the backoff between reconnection attempts.

use std::time::Duration;

/// Default time a claim is held without a heartbeat.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(60);
/// Default time between a worker's heartbeats.
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(20);
/// The shortest lease accepted (tests use short ones; below this, clock jitter dominates).
pub const MIN_LEASE: Duration = Duration::from_millis(200);

/// How long claims are held and how often they are extended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    pub lease: Duration,
    pub heartbeat: Duration,
}

impl Default for Lease {
    fn default() -> Self {
        Lease {
            lease: DEFAULT_LEASE,
            heartbeat: DEFAULT_HEARTBEAT,
        }
    }
}

impl Lease {
    /// A lease that at least two heartbeats fall within (one late heartbeat loses nothing).
    pub fn new(lease: Duration, heartbeat: Duration) -> Result<Lease, String> {
        if lease < MIN_LEASE {
            return Err(format!(
                "--lease {} is too short; use at least {}",
                humantime::format_duration(lease),
                humantime::format_duration(MIN_LEASE)
            ));
        }
        if heartbeat.is_zero() || heartbeat * 2 > lease {
            return Err(format!(
                "--heartbeat {} must be at most half of --lease {} (a claim survives one late heartbeat)",
                humantime::format_duration(heartbeat),
                humantime::format_duration(lease)
            ));
        }
        Ok(Lease { lease, heartbeat })
    }

    /// Whether a worker whose last heartbeat is `age` old still holds its claims.
    pub fn alive(&self, age: Duration) -> bool {
        age <= self.lease
    }
}

/// Waits between reconnection attempts: doubling from 100 ms up to 5 s.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
}

const BACKOFF_FIRST: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            next: BACKOFF_FIRST,
        }
    }
}

impl Backoff {
    /// The wait before the next attempt.
    pub fn next_wait(&mut self) -> Duration {
        let wait = self.next;
        self.next = (self.next * 2).min(BACKOFF_MAX);
        wait
    }

    pub fn reset(&mut self) {
        self.next = BACKOFF_FIRST;
    }
}

/// Sleep until `at`, or forever when there is no deadline (for optional `select!` arms).
pub async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// A duration as whole milliseconds for SQL (`interval '1 ms' * n`), saturating.
pub fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heartbeats_must_fit_twice_in_a_lease() {
        let s = Duration::from_secs;
        assert!(Lease::new(s(60), s(20)).is_ok());
        assert!(Lease::new(s(60), s(30)).is_ok());
        let e = Lease::new(s(60), s(31)).unwrap_err();
        assert!(e.contains("at most half"), "{e}");
        assert!(Lease::new(s(60), Duration::ZERO).is_err());
        assert!(Lease::new(Duration::from_millis(100), Duration::from_millis(10)).is_err());
    }

    #[test]
    fn a_worker_is_alive_while_its_last_heartbeat_is_within_the_lease() {
        let l = Lease::new(Duration::from_secs(10), Duration::from_secs(3)).unwrap();
        assert!(l.alive(Duration::from_secs(9)));
        assert!(l.alive(Duration::from_secs(10)));
        assert!(!l.alive(Duration::from_millis(10_001)));
    }

    #[test]
    fn backoff_doubles_up_to_a_cap_and_resets() {
        let mut b = Backoff::default();
        let waits: Vec<u128> = (0..8).map(|_| b.next_wait().as_millis()).collect();
        assert_eq!(waits, vec![100, 200, 400, 800, 1600, 3200, 5000, 5000]);
        b.reset();
        assert_eq!(b.next_wait(), Duration::from_millis(100));
    }

    #[test]
    fn millis_saturate() {
        assert_eq!(millis(Duration::from_millis(1500)), 1500);
        assert_eq!(millis(Duration::MAX), i64::MAX);
    }
}
