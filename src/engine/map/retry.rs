//! Retry decisions as pure functions of the policy: which failures are retried and how
//! long to wait before the next attempt.

use std::time::Duration;

use crate::state::records::Failure;
use crate::workflow::model::{Backoff, RetryOn, RetryPolicy};

/// Should a failed attempt be tried again (given attempts already made in this run)?
pub fn should_retry(policy: &RetryPolicy, failure: &Failure, attempts_this_run: u32) -> bool {
    if attempts_this_run >= policy.max_attempts {
        return false;
    }
    if matches!(
        failure,
        Failure::Template { .. } | Failure::Cancelled { .. }
    ) {
        return false; // deterministic or deliberate: retrying cannot help
    }
    policy.on.iter().any(|on| match on {
        RetryOn::Any => true,
        RetryOn::Timeout => matches!(failure, Failure::Timeout { .. }),
        RetryOn::Signal => matches!(failure, Failure::Signal { .. }),
        RetryOn::AnyExit => matches!(failure, Failure::Exit { .. }),
        RetryOn::Exit(c) => failure.exit_code() == Some(*c),
        RetryOn::Class(class) => failure.class() == *class,
    })
}

/// The wait before attempt `failed + 1`, after `failed` attempts in this run (>= 1).
pub fn delay(policy: &RetryPolicy, failed: u32) -> Duration {
    let n = failed.max(1);
    let base = policy.initial_delay;
    let d = match policy.backoff {
        Backoff::Fixed => base,
        Backoff::Linear => base.saturating_mul(n),
        Backoff::Exponential => {
            base.saturating_mul(2u32.saturating_pow(n.saturating_sub(1).min(30)))
        }
    };
    let d = d.min(policy.max_delay);
    if policy.jitter && !d.is_zero() {
        // "Equal jitter": half fixed, half random, so retries of many items spread out.
        let half = d / 2;
        half + Duration::from_nanos(fastrand::u64(
            0..=half.as_nanos().min(u64::MAX as u128) as u64,
        ))
    } else {
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(backoff: Backoff) -> RetryPolicy {
        RetryPolicy {
            max_attempts: 5,
            backoff,
            initial_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(10),
            jitter: false,
            on: vec![RetryOn::Any],
        }
    }

    #[test]
    fn backoff_shapes() {
        let secs = |b, n| delay(&policy(b), n).as_secs();
        assert_eq!(
            (1..=5).map(|n| secs(Backoff::Fixed, n)).collect::<Vec<_>>(),
            [1, 1, 1, 1, 1]
        );
        assert_eq!(
            (1..=5)
                .map(|n| secs(Backoff::Linear, n))
                .collect::<Vec<_>>(),
            [1, 2, 3, 4, 5]
        );
        assert_eq!(
            (1..=6)
                .map(|n| secs(Backoff::Exponential, n))
                .collect::<Vec<_>>(),
            [1, 2, 4, 8, 10, 10]
        );
        assert_eq!(
            delay(&policy(Backoff::Exponential), 1000),
            Duration::from_secs(10)
        );
    }

    #[test]
    fn jitter_stays_within_half_to_full() {
        let mut p = policy(Backoff::Fixed);
        p.jitter = true;
        for _ in 0..200 {
            let d = delay(&p, 1);
            assert!(d >= Duration::from_millis(500) && d <= Duration::from_secs(1));
        }
    }

    #[test]
    fn retry_on_classes() {
        let mut p = policy(Backoff::Fixed);
        let exit3 = Failure::Exit { code: 3, step: 0 };
        let timeout = Failure::Timeout {
            after_ms: 1,
            step: 0,
        };
        assert!(should_retry(&p, &exit3, 1));
        assert!(!should_retry(&p, &exit3, 5), "budget exhausted");
        p.on = vec![RetryOn::Timeout];
        assert!(!should_retry(&p, &exit3, 1));
        assert!(should_retry(&p, &timeout, 1));
        p.on = vec![RetryOn::Exit(3)];
        assert!(should_retry(&p, &exit3, 1));
        assert!(!should_retry(&p, &Failure::Exit { code: 4, step: 0 }, 1));
        let oom = Failure::MemoryLimit {
            limit_bytes: 1 << 20,
            step: 0,
        };
        p.on = vec![RetryOn::Timeout];
        assert!(!should_retry(&p, &oom, 1), "timeouts, not OOMs");
        p.on = vec![RetryOn::Class("memory_limit")];
        assert!(should_retry(&p, &oom, 1));
        assert!(!should_retry(&p, &timeout, 1));
        p.on = vec![RetryOn::Any];
        assert!(should_retry(&p, &oom, 1));
        assert!(!should_retry(
            &p,
            &Failure::Template {
                message: "x".into(),
                step: 0
            },
            1
        ));
    }
}
