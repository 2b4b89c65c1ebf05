//! The refresh budget of one URL: how many fetches requests may force, and when.
//!
//! A fixed cooldown since the last fetch (what this crate had before) makes a key rotation
//! that lands just after a fetch wait out the cooldown, with 401s meanwhile. A budget does
//! not: after a quiet spell it is full, so the first token with a new `kid` is verified with
//! one fetch at once, while a storm of made-up `kid`s spends it and then gets one fetch per
//! cooldown, as before.
//!
//! It is a token bucket (GCRA: one "theoretical arrival time" instead of a counter and a
//! timer): it refills one fetch per cooldown and holds `11 - ceil(60 s / cooldown)` of
//! them, so that no minute ever sees more than 10 forced fetches of one URL (Backstage's
//! budget, PR 35233): 9 and then one every 30 s for the default 30 s cooldown, none to
//! spare (one every 6 s) at the 6 s floor.
//!
//! A failed fetch is not retried within one cooldown however full the bucket: a key server
//! that is down is not asked once per request.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The least cooldown: 60 s / 10 fetches.
const MIN_COOLDOWN: Duration = Duration::from_secs(6);

/// The most forced fetches of one URL in any minute.
const PER_MINUTE: u32 = 10;

/// The forced fetches one URL may still make, and its last failure.
#[derive(Debug)]
pub(crate) struct Budget {
    /// One fetch is added back per spacing (the configured cooldown, at least 6 s); also
    /// the least time between a failed fetch and the next attempt.
    spacing: Duration,
    /// How many fetches a full bucket holds.
    burst: u32,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// When the bucket is full again; `None` or past: it is full now.
    full_at: Option<Instant>,
    /// When the latest attempt started, if it failed.
    failed_at: Option<Instant>,
}

impl Budget {
    /// A bucket refilling one fetch per `cooldown` (at least 6 s).
    pub(crate) fn new(cooldown: Duration) -> Self {
        let spacing = cooldown.max(MIN_COOLDOWN);
        // In any window of 60 s a bucket of `burst` that refills every `spacing` allows at
        // most burst - 1 + ceil(60 s / spacing) fetches.
        let refills = Duration::from_secs(60)
            .as_millis()
            .div_ceil(spacing.as_millis());
        let burst = (PER_MINUTE + 1).saturating_sub(refills as u32).max(1);
        Self {
            spacing,
            burst,
            state: Mutex::new(State::default()),
        }
    }

    /// Takes one fetch from the budget, or says how long until one is there (at least 1 s).
    pub(crate) fn take(&self, now: Instant) -> Result<(), Duration> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(wait) = self.after_failure(&state, now) {
            return Err(wait);
        }
        let full_at = state.full_at.map_or(now, |at| at.max(now));
        // Spending one more must leave the bucket full again within `burst` spacings.
        let deadline = now + self.spacing * self.burst;
        let after = full_at + self.spacing;
        if after > deadline {
            return Err(at_least_a_second(after - deadline));
        }
        state.full_at = Some(after);
        Ok(())
    }

    /// Records how the fetch started at `started` ended: a failure holds off the next
    /// attempt for one spacing, a success lifts that.
    pub(crate) fn record(&self, started: Instant, failed: bool) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.failed_at = failed.then_some(started);
    }

    /// How long until a fetch would be allowed (at least 1 s), for `Retry-After`.
    pub(crate) fn retry_after(&self, now: Instant) -> Duration {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let after_failure = self.after_failure(&state, now).unwrap_or_default();
        let after_budget = state.full_at.map_or(Duration::ZERO, |at| {
            (at + self.spacing).saturating_duration_since(now + self.spacing * self.burst)
        });
        at_least_a_second(after_failure.max(after_budget))
    }

    /// Whether the bucket is full and no failure holds it off: a new budget would be the
    /// same, so forgetting this one (evicting its URL) cannot lift the bound.
    pub(crate) fn idle(&self, now: Instant) -> bool {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.full_at.is_none_or(|at| at <= now) && self.after_failure(&state, now).is_none()
    }

    /// The spacing (the effective cooldown).
    pub(crate) fn spacing(&self) -> Duration {
        self.spacing
    }

    fn after_failure(&self, state: &State, now: Instant) -> Option<Duration> {
        let since = now.saturating_duration_since(state.failed_at?);
        (since < self.spacing).then(|| at_least_a_second(self.spacing - since))
    }
}

fn at_least_a_second(d: Duration) -> Duration {
    d.max(Duration::from_secs(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// When fetches are allowed, asking every 100 ms for `seconds`.
    fn allowed_in(budget: &Budget, t0: Instant, seconds: u64) -> Vec<Duration> {
        (0..seconds * 10)
            .map(|i| Duration::from_millis(100 * i))
            .filter(|d| budget.take(t0 + *d).is_ok())
            .collect()
    }

    #[test]
    fn never_more_than_ten_in_any_minute() {
        for cooldown in [6, 7, 10, 12, 20, 30, 59, 60, 61, 600, 3600] {
            let budget = Budget::new(Duration::from_secs(cooldown));
            let allowed = allowed_in(&budget, Instant::now(), 600);
            for (i, start) in allowed.iter().enumerate() {
                let in_minute = allowed[i..]
                    .iter()
                    .take_while(|t| **t < *start + Duration::from_secs(60))
                    .count();
                assert!(in_minute <= 10, "{cooldown} s: {in_minute} from {start:?}");
            }
            // A storm that goes on gets one per cooldown.
            let sustained = 600 / budget.spacing.as_secs() as usize;
            assert!(
                allowed.len() >= sustained,
                "{cooldown} s: {}",
                allowed.len()
            );
            assert!(allowed.len() <= budget.burst as usize + sustained);
        }
    }

    #[test]
    fn the_default_holds_nine_and_refills_one_per_cooldown() {
        let budget = Budget::new(Duration::from_secs(30));
        assert_eq!(budget.burst, 9);
        let t0 = Instant::now();
        for i in 0..9 {
            assert_eq!(budget.take(t0 + Duration::from_millis(i)), Ok(()), "{i}");
        }
        assert!(budget.take(t0 + Duration::from_secs(1)).is_err());
        assert!(!budget.idle(t0 + Duration::from_secs(1)));
        assert_eq!(budget.take(t0 + Duration::from_secs(30)), Ok(()));
        // A quiet spell fills it again.
        assert!(budget.idle(t0 + Duration::from_secs(301)));
        assert_eq!(
            allowed_in(&budget, t0 + Duration::from_secs(301), 1).len(),
            9
        );
    }

    #[test]
    fn the_floor_is_the_old_cooldown() {
        let budget = Budget::new(Duration::from_secs(1));
        assert_eq!((budget.spacing, budget.burst), (MIN_COOLDOWN, 1));
        let t0 = Instant::now();
        assert_eq!(budget.take(t0), Ok(()));
        assert_eq!(
            budget.take(t0 + Duration::from_secs(2)),
            Err(Duration::from_secs(4))
        );
        assert_eq!(budget.take(t0 + Duration::from_secs(6)), Ok(()));
    }

    #[test]
    fn a_failure_holds_off_the_next_attempt_for_one_spacing() {
        let budget = Budget::new(Duration::from_secs(30));
        let t0 = Instant::now();
        budget.take(t0).unwrap();
        budget.record(t0, true);
        assert_eq!(
            budget.take(t0 + Duration::from_secs(10)),
            Err(Duration::from_secs(20))
        );
        assert_eq!(
            budget.retry_after(t0 + Duration::from_secs(10)),
            Duration::from_secs(20)
        );
        assert_eq!(budget.take(t0 + Duration::from_secs(30)), Ok(()));
        budget.record(t0 + Duration::from_secs(30), false);
        assert_eq!(budget.take(t0 + Duration::from_secs(30)), Ok(()));
    }
}
