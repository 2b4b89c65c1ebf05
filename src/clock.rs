//! The request path's clock: one reading per request, as milliseconds on a monotonic clock
//! (for the JWKS cache's ages), as seconds since the Unix epoch (for the claims' `exp` and
//! `nbf`) and as a UTC [`OffsetDateTime`] (for the audit event), without a second clock read,
//! a second `Instant` subtraction or calendar arithmetic on every call.
//!
//! Each thread keeps an anchor: an `Instant`, its milliseconds since the process's clock
//! epoch, and the wall time read right after it. For the next [`ANCHOR_SPAN`] a request's
//! times are the anchor's plus the monotonic time since, so a request reads the clock once
//! (issue 11: two readings and two subtractions cost about 200 instructions). Both clocks
//! are slewed alike by NTP; a step of the wall clock (an operator setting the date) is seen
//! within one span. Turning a Unix time into a date (year, ordinal day) is most of what
//! [`OffsetDateTime::now_utc`] costs (about 200 instructions), so each thread also keeps
//! the last whole second it converted and only puts in the nanoseconds.

use std::cell::Cell;
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use time::OffsetDateTime;

/// How long a thread's anchor is used before the wall clock is read again.
const ANCHOR_SPAN: Duration = Duration::from_secs(1);

/// One reading of the clock.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Now {
    /// Milliseconds since the process's clock epoch (monotonic; see [`millis`]).
    pub(crate) mono_ms: u64,
    /// Seconds since the Unix epoch (0 for a clock before 1970).
    pub(crate) unix_secs: u64,
    /// Wall time in UTC.
    pub(crate) wall: OffsetDateTime,
}

#[derive(Clone, Copy)]
struct Anchor {
    mono: Instant,
    mono_ms: u64,
    /// The wall time at `mono`, since the Unix epoch.
    since_epoch: Duration,
}

thread_local! {
    /// This thread's anchor.
    static ANCHOR: Cell<Option<Anchor>> = const { Cell::new(None) };
    /// The last whole second this thread converted, and its `OffsetDateTime`.
    static LAST_SECOND: Cell<Option<(u64, OffsetDateTime)>> = const { Cell::new(None) };
}

/// Milliseconds from the process's clock epoch (its first use) to `at`; 0 for an earlier
/// `at`. Every monotonic age the crate keeps in milliseconds is on this clock.
pub(crate) fn millis(at: Instant) -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let epoch = *EPOCH.get_or_init(Instant::now);
    u64::try_from(at.saturating_duration_since(epoch).as_millis()).unwrap_or(u64::MAX)
}

/// Now, read once: within [`ANCHOR_SPAN`] of the wall clock's own reading.
pub(crate) fn now() -> Now {
    let mono = Instant::now();
    if let Some(anchor) = ANCHOR.with(Cell::get)
        && let Some(elapsed) = mono.checked_duration_since(anchor.mono)
        && elapsed < ANCHOR_SPAN
    {
        // Under a second: the elapsed milliseconds are its sub-second ones.
        let since_epoch = anchor.since_epoch + elapsed;
        return Now {
            mono_ms: anchor.mono_ms + u64::from(elapsed.subsec_millis()),
            unix_secs: since_epoch.as_secs(),
            wall: utc(since_epoch),
        };
    }
    let mono_ms = millis(mono);
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(since_epoch) => {
            ANCHOR.with(|a| {
                a.set(Some(Anchor {
                    mono,
                    mono_ms,
                    since_epoch,
                }))
            });
            Now {
                mono_ms,
                unix_secs: since_epoch.as_secs(),
                wall: utc(since_epoch),
            }
        }
        // A clock before 1970 is left to `time`, which handles it (and is not anchored:
        // this path reads the clock every time).
        Err(_) => Now {
            mono_ms,
            unix_secs: 0,
            wall: OffsetDateTime::now_utc(),
        },
    }
}

/// The UTC date and time of a time since the Unix epoch, converting each second once per
/// thread.
fn utc(since_epoch: Duration) -> OffsetDateTime {
    let (secs, nanos) = (since_epoch.as_secs(), since_epoch.subsec_nanos());
    if let Some((second, at_second)) = LAST_SECOND.with(Cell::get)
        && second == secs
        && let Ok(now) = at_second.replace_nanosecond(nanos)
    {
        return now;
    }
    let Ok(at_second) = i64::try_from(secs)
        .map_err(|_| ())
        .and_then(|s| OffsetDateTime::from_unix_timestamp(s).map_err(|_| ()))
    else {
        // Past the year 9999: `time` cannot represent it.
        return OffsetDateTime::now_utc();
    };
    LAST_SECOND.with(|last| last.set(Some((secs, at_second))));
    at_second.replace_nanosecond(nanos).unwrap_or(at_second)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Within a millisecond of the `time` crate's own reading: the anchor's two readings
    /// are a few nanoseconds apart.
    #[test]
    fn agrees_with_the_time_crate() {
        let slack = time::Duration::milliseconds(1);
        for _ in 0..1000 {
            let before = OffsetDateTime::now_utc();
            let now = now();
            let after = OffsetDateTime::now_utc();
            assert!(
                before - slack <= now.wall && now.wall <= after + slack,
                "{before} <= {} <= {after}",
                now.wall
            );
            assert_eq!(now.wall.offset(), time::UtcOffset::UTC);
        }
    }

    #[test]
    fn a_new_second_is_converted_in_full() {
        // A stale second in the cache is never reused for another second.
        let long_ago = OffsetDateTime::from_unix_timestamp(86_400).unwrap();
        LAST_SECOND.with(|last| last.set(Some((86_400, long_ago))));
        let now = now().wall;
        assert!(now.year() >= 2024, "{now}");
        let (second, _) = LAST_SECOND.with(Cell::get).unwrap();
        assert_eq!(second, now.unix_timestamp() as u64);
    }

    #[test]
    fn a_stale_anchor_is_read_again() {
        // An anchor from long ago (as after a wall-clock step) is replaced within a span.
        let mono = Instant::now();
        ANCHOR.with(|a| {
            a.set(Some(Anchor {
                mono: mono.checked_sub(ANCHOR_SPAN).unwrap_or(mono),
                mono_ms: 0,
                since_epoch: Duration::from_secs(86_400),
            }))
        });
        let now = now().wall;
        assert!(now.year() >= 2024, "{now}");
        let anchor = ANCHOR.with(Cell::get).unwrap();
        assert!(anchor.since_epoch.as_secs() >= 86_400 * 365 * 50);
        assert_eq!(anchor.mono_ms, millis(anchor.mono));
    }

    /// The three readings agree with each other and with the clocks they stand for.
    #[test]
    fn one_reading_serves_every_clock() {
        let before = millis(Instant::now());
        let now = now();
        let after = millis(Instant::now());
        // Within a millisecond: an anchor's milliseconds are rounded down.
        assert!(
            before <= now.mono_ms + 1 && now.mono_ms <= after,
            "{before} {now:?} {after}"
        );
        assert_eq!(now.unix_secs, now.wall.unix_timestamp() as u64);
        let system = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert!(system.abs_diff(now.unix_secs) <= 1, "{system} {now:?}");
    }
}
