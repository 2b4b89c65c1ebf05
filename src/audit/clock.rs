//! The request path's wall clock: [`OffsetDateTime::now_utc`] without its calendar
//! arithmetic on every call.
//!
//! Turning a Unix time into a date (year, ordinal day) is most of what `now_utc` costs
//! (about 200 instructions per cached request, issue 11). Within one second the date and
//! the time of day up to the second do not change, so each thread keeps the last second it
//! converted and only puts in the nanoseconds; a new second is converted in full.

use std::cell::Cell;
use std::time::{SystemTime, UNIX_EPOCH};

use time::OffsetDateTime;

thread_local! {
    /// The last whole second this thread converted, and its `OffsetDateTime`.
    static LAST_SECOND: Cell<Option<(u64, OffsetDateTime)>> = const { Cell::new(None) };
}

/// Now, in UTC: the same value as [`OffsetDateTime::now_utc`].
pub(crate) fn now_utc() -> OffsetDateTime {
    let system = SystemTime::now();
    // A clock before 1970 is left to `time`, which handles it.
    let Ok(since_epoch) = system.duration_since(UNIX_EPOCH) else {
        return system.into();
    };
    let (secs, nanos) = (since_epoch.as_secs(), since_epoch.subsec_nanos());
    if let Some((second, at_second)) = LAST_SECOND.with(Cell::get)
        && second == secs
        && let Ok(now) = at_second.replace_nanosecond(nanos)
    {
        return now;
    }
    let now = OffsetDateTime::from(system);
    if let Ok(at_second) = now.replace_nanosecond(0) {
        LAST_SECOND.with(|last| last.set(Some((secs, at_second))));
    }
    now
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agrees_with_the_time_crate() {
        for _ in 0..1000 {
            let before = OffsetDateTime::now_utc();
            let now = now_utc();
            let after = OffsetDateTime::now_utc();
            assert!(
                before <= now && now <= after,
                "{before} <= {now} <= {after}"
            );
            assert_eq!(now.offset(), time::UtcOffset::UTC);
        }
    }

    #[test]
    fn a_new_second_is_converted_in_full() {
        // A stale second in the cache is never reused for another second.
        let long_ago = OffsetDateTime::from_unix_timestamp(86_400).unwrap();
        LAST_SECOND.with(|last| last.set(Some((86_400, long_ago))));
        let now = now_utc();
        assert!(now.year() >= 2024, "{now}");
        let (second, _) = LAST_SECOND.with(Cell::get).unwrap();
        assert_eq!(second, now.unix_timestamp() as u64);
    }
}
