//! The request path's clock: one reading per request, for the claims' `exp` and `nbf` (Unix
//! seconds), the JWKS cache's ages (monotonic milliseconds) and, only when an audit event or
//! a verifier needs it, the UTC [`OffsetDateTime`], without a second clock read, an
//! `Instant` subtraction or calendar arithmetic on a request that needs only the first two.
//!
//! Each thread keeps an anchor: an `Instant`, the wall time read right after it, and the
//! `Instant` at which that wall time reaches its next whole second. Until then a request's
//! reading is the anchor plus its own `Instant`: its Unix second is the anchor's (exact: the
//! second has not changed), its monotonic milliseconds are the anchor's (at most a second
//! behind; every age they are compared with is minutes long), and its wall time, when asked
//! for, is the anchor's plus the monotonic time since. So a request reads the clock once
//! (issue 11: two readings, two subtractions and a date conversion cost about 300
//! instructions of a cached request). Both clocks are slewed alike by NTP; a step of the
//! wall clock (an operator setting the date) is seen within a second. Turning a Unix time
//! into a date (year, ordinal day) is most of what [`OffsetDateTime::now_utc`] costs, so each
//! thread also keeps the last whole second it converted and only puts in the nanoseconds.

use std::cell::Cell;
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use time::OffsetDateTime;

/// One reading of the clock: the reading's `Instant` and its thread's anchor, without the
/// anchor's expiry (56 bytes, not 72: the pipeline moves it with each decision's facts,
/// and a few bytes more cost a call to `memcpy` on every request, issue 11).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Now {
    mono: Instant,
    /// The anchor's `mono`, `mono_ms` and `since_epoch`.
    anchor_mono: Instant,
    mono_ms: u64,
    since_epoch: Option<Duration>,
}

#[derive(Clone, Copy, Debug)]
struct Anchor {
    mono: Instant,
    /// When the wall time below reaches its next whole second: the anchor serves until then.
    until: Instant,
    /// [`millis`] of `mono`.
    mono_ms: u64,
    /// The wall time at `mono`, since the Unix epoch; `None` for a clock before 1970.
    since_epoch: Option<Duration>,
}

impl Now {
    /// Seconds since the Unix epoch (0 for a clock before 1970).
    pub(crate) fn unix_secs(&self) -> u64 {
        self.since_epoch.map_or(0, |d| d.as_secs())
    }

    /// Milliseconds since the process's clock epoch (monotonic; see [`millis`]), at most a
    /// second behind the reading.
    pub(crate) fn mono_ms(&self) -> u64 {
        self.mono_ms
    }

    /// The wall time in UTC, to the nanosecond.
    pub(crate) fn wall(&self) -> OffsetDateTime {
        match self.since_epoch {
            Some(since_epoch) => {
                utc(since_epoch + self.mono.saturating_duration_since(self.anchor_mono))
            }
            // A clock before 1970 is left to `time`, which handles it.
            None => OffsetDateTime::now_utc(),
        }
    }
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

/// Now, read once.
pub(crate) fn now() -> Now {
    let mono = Instant::now();
    if let Some(anchor) = ANCHOR.with(Cell::get)
        && anchor.mono <= mono
        && mono < anchor.until
    {
        return anchor.read_at(mono);
    }
    let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).ok();
    // Until the next whole second of the wall clock (not anchored before 1970: read
    // every time).
    let until = since_epoch
        .and_then(|d| {
            mono.checked_add(Duration::from_nanos(u64::from(
                1_000_000_000 - d.subsec_nanos(),
            )))
        })
        .unwrap_or(mono);
    let anchor = Anchor {
        mono,
        until,
        mono_ms: millis(mono),
        since_epoch,
    };
    ANCHOR.with(|a| a.set(Some(anchor)));
    anchor.read_at(mono)
}

impl Anchor {
    fn read_at(&self, mono: Instant) -> Now {
        Now {
            mono,
            anchor_mono: self.mono,
            mono_ms: self.mono_ms,
            since_epoch: self.since_epoch,
        }
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
            let now = now().wall();
            let after = OffsetDateTime::now_utc();
            assert!(
                before - slack <= now && now <= after + slack,
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
        let now = now().wall();
        assert!(now.year() >= 2024, "{now}");
        let (second, _) = LAST_SECOND.with(Cell::get).unwrap();
        assert_eq!(second, now.unix_timestamp() as u64);
    }

    #[test]
    fn an_anchor_serves_only_until_its_second_ends() {
        // An anchor whose second is over (as after a wall-clock step) is replaced.
        let mono = Instant::now();
        ANCHOR.with(|a| {
            a.set(Some(Anchor {
                mono,
                until: mono,
                mono_ms: 0,
                since_epoch: Some(Duration::from_secs(86_400)),
            }))
        });
        let now = now();
        assert!(now.wall().year() >= 2024, "{}", now.wall());
        let anchor = ANCHOR.with(Cell::get).unwrap();
        assert!(anchor.until > anchor.mono);
        assert!(anchor.until <= anchor.mono + Duration::from_secs(1));
        assert_eq!(anchor.mono_ms, millis(anchor.mono));
    }

    /// The readings agree with each other and with the clocks they stand for, also across
    /// several seconds of anchors.
    #[test]
    fn one_reading_serves_every_clock() {
        let started = Instant::now();
        while started.elapsed() < Duration::from_millis(2100) {
            let before = millis(Instant::now());
            let system = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
            let now = now();
            let after = millis(Instant::now());
            assert!(
                now.mono_ms() <= after && before <= now.mono_ms() + 1000,
                "{before} {now:?} {after}"
            );
            assert_eq!(now.unix_secs(), now.wall().unix_timestamp() as u64);
            assert!(system.as_secs() <= now.unix_secs(), "{system:?} {now:?}");
            assert!(
                now.unix_secs() <= system.as_secs() + 1,
                "{system:?} {now:?}"
            );
            std::thread::sleep(Duration::from_millis(7));
        }
    }
}
