//! Where "now" comes from: the system clock, or (for tests, through a hidden `--now` flag)
//! the system clock shifted so that it read a given instant when the command started.

use jiff::{SignedDuration, Timestamp};

pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// The system clock moved by a fixed offset: time passes at its normal rate.
pub struct OffsetClock {
    offset: SignedDuration,
}

impl OffsetClock {
    /// A clock that reads `start` now.
    pub fn starting_at(start: Timestamp) -> Self {
        OffsetClock {
            offset: start.duration_since(Timestamp::now()),
        }
    }
}

impl Clock for OffsetClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
            .checked_add(self.offset)
            .unwrap_or(Timestamp::MAX)
    }
}

/// The clock a command uses: `--now` when given (tests), else the system's.
pub fn clock(now: Option<Timestamp>) -> Box<dyn Clock> {
    match now {
        Some(t) => Box::new(OffsetClock::starting_at(t)),
        None => Box::new(SystemClock),
    }
}
