//! Keeping a replica's in-memory copy of shared state in step with the store: the
//! revocation denylist (`revocation`) and the service-account registry
//! (`service_account::registry`) both answer every request from memory and use this to
//! stay fresh.
//!
//! - A background task reads the store's whole state every `staleness / 2`, and at once
//!   when the store signals a change ([`Store::revocation_signal`](crate::store::Store::revocation_signal):
//!   PostgreSQL `LISTEN`/`NOTIFY`, or a shared `MemoryStore`). SQLite has no signal:
//!   processes on one file see each other by polling.
//! - [`SyncClock`] remembers when the read behind the installed copy *started*; when that
//!   is older than the staleness bound (or there has been no read yet), the copy cannot
//!   prove that nothing changed elsewhere and the caller fails closed (503).
//! - A read that finished after a later one started is dropped, not installed (two reads
//!   that finished out of order).
//! - Now and then (the replica says how often) the task does the replica's chores: pruning
//!   expired rows, writing last-used times.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::store::{StoreError, StoreFuture};

/// The smallest staleness bound; a smaller one is raised to it (polling every few
/// milliseconds would only load the store).
pub(crate) const MIN_STALENESS: Duration = Duration::from_millis(10);

/// While reads keep failing, at most one WARN line per this long (the first at once).
const WARN_EVERY: Duration = Duration::from_secs(30);

/// The shortest time a read may take before the task gives up on it and tries again.
const MIN_SYNC_TIMEOUT: Duration = Duration::from_secs(1);

/// The last-sync time before the first successful read.
const NEVER: u64 = u64::MAX;

/// A copy of store state that [`SyncClock::start`] keeps fresh.
pub(crate) trait Replica: Send + Sync + 'static {
    /// What is copied, for log lines ("revocations", "service accounts").
    const WHAT: &'static str;

    /// Reads the store's whole state and installs it (through [`SyncClock::install`]).
    fn sync(&self) -> StoreFuture<'_, ()>;

    /// Housekeeping, run every [`chores_every`](Self::chores_every) after a read.
    fn chores(&self) -> StoreFuture<'_, ()>;

    /// How often [`chores`](Self::chores) runs.
    fn chores_every(&self) -> Duration;

    /// The store's change signal, if it has one.
    fn signal(&self) -> Option<watch::Receiver<u64>>;
}

/// When a copy was last read, its staleness bound, and its background task.
pub(crate) struct SyncClock {
    staleness: Duration,
    /// `staleness` in milliseconds, as checks compare it.
    staleness_ms: u64,
    /// The fixed instant the millisecond clock counts from.
    origin: Instant,
    /// When the read behind the installed copy *started* (ms since `origin`), or [`NEVER`]:
    /// the copy holds every change committed before then.
    synced_at: AtomicU64,
    /// Whether [`start`](Self::start) has run (it starts one task, once).
    started: AtomicBool,
    /// The background task, aborted when the clock is dropped.
    task: Mutex<Option<tokio::task::AbortHandle>>,
}

impl SyncClock {
    /// A clock for a copy that may be at most `staleness` old (at least [`MIN_STALENESS`]).
    pub(crate) fn new(staleness: Duration) -> Self {
        let staleness = staleness.max(MIN_STALENESS);
        Self {
            staleness,
            staleness_ms: u64::try_from(staleness.as_millis()).unwrap_or(u64::MAX),
            origin: Instant::now(),
            synced_at: AtomicU64::new(NEVER),
            started: AtomicBool::new(false),
            task: Mutex::new(None),
        }
    }

    /// The staleness bound.
    pub(crate) fn staleness(&self) -> Duration {
        self.staleness
    }

    /// Milliseconds since this clock's origin: what a read's start, and a local change, are
    /// stamped with.
    pub(crate) fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX - 1)
    }

    /// Whether the installed copy is too old to answer from (or there is none yet).
    pub(crate) fn is_stale(&self) -> bool {
        is_stale(
            self.synced_at.load(Ordering::Acquire),
            self.elapsed_ms(),
            self.staleness_ms,
        )
    }

    /// Whether no read has succeeded yet (a process that just started).
    pub(crate) fn never_synced(&self) -> bool {
        self.synced_at.load(Ordering::Acquire) == NEVER
    }

    /// Installs a read that started at `started` (from [`elapsed_ms`](Self::elapsed_ms)),
    /// with `install` (called under the caller's own lock, which the caller holds across
    /// this call). Returns `false`, installing nothing, when a read that started later is
    /// already installed.
    pub(crate) fn install(&self, started: u64, install: impl FnOnce()) -> bool {
        let installed = self.synced_at.load(Ordering::Acquire);
        if installed != NEVER && started < installed {
            return false;
        }
        install();
        self.synced_at.store(started, Ordering::Release);
        true
    }

    /// Whether the background task was started (and not refused for want of a runtime).
    #[cfg(test)]
    pub(crate) fn is_running(&self) -> bool {
        self.task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    }

    /// Starts the background task (tokio) of `replica`: a read at once, then every
    /// staleness / 2, and at once whenever the store signals a change; chores now and
    /// then. Ends when the replica is dropped (it holds a `Weak`). A second call does
    /// nothing. Without a tokio runtime nothing starts (logged at WARN): the copy then stays
    /// stale, and what depends on it is refused.
    pub(crate) fn start<R: Replica>(&self, replica: &Arc<R>) {
        // A load first: this is called on every request, and a swap would write the line.
        if self.started.load(Ordering::Acquire) || self.started.swap(true, Ordering::AcqRel) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.started.store(false, Ordering::Release);
            tracing::warn!(
                target: "s2s_auth::sync",
                what = R::WHAT,
                "no tokio runtime: the store is not read, and credentials that depend on it \
                 are refused as stale"
            );
            return;
        };
        let task = runtime.spawn(run(
            Arc::downgrade(replica),
            replica.signal(),
            self.staleness,
        ));
        *self.task.lock().unwrap_or_else(PoisonError::into_inner) = Some(task.abort_handle());
    }
}

impl Drop for SyncClock {
    fn drop(&mut self) {
        // The task holds only a `Weak`, so it would end at its next wake-up anyway; aborting
        // ends it now, and with it the task's hold on the store's signal (for PostgreSQL, a
        // listening connection).
        let task = self.task.get_mut().unwrap_or_else(PoisonError::into_inner);
        if let Some(task) = task.take() {
            task.abort();
        }
    }
}

/// The background task of [`SyncClock::start`].
async fn run<R: Replica>(
    replica: Weak<R>,
    mut signal: Option<watch::Receiver<u64>>,
    staleness: Duration,
) {
    let period = staleness / 2;
    let sync_timeout = staleness.max(MIN_SYNC_TIMEOUT);
    let mut next_sync = tokio::time::Instant::now();
    let mut next_chores = match replica.upgrade() {
        Some(r) => tokio::time::Instant::now() + r.chores_every(),
        None => return,
    };
    let mut failures = Failures::default();
    loop {
        match signal.as_mut() {
            Some(changed) => match tokio::time::timeout_at(next_sync, changed.changed()).await {
                // Woken: read now.
                Ok(Ok(())) => {}
                // The store's signal is gone for good: poll only.
                Ok(Err(_)) => {
                    signal = None;
                    continue;
                }
                // The poll is due.
                Err(_) => {}
            },
            None => tokio::time::sleep_until(next_sync).await,
        }
        let Some(this) = replica.upgrade() else {
            return;
        };
        let started = tokio::time::Instant::now();
        let result = match tokio::time::timeout(sync_timeout, this.sync()).await {
            Ok(result) => result,
            Err(_) => Err(StoreError::Unavailable(format!(
                "reading the {} took over {sync_timeout:?}",
                R::WHAT
            ))),
        };
        failures.record::<R>(&result, staleness);
        // From the start of this read, so reads stay `period` apart however long one took.
        next_sync = started + period;
        if started >= next_chores {
            let every = this.chores_every();
            next_chores = started + every;
            let result = match tokio::time::timeout(sync_timeout, this.chores()).await {
                Ok(result) => result,
                Err(_) => Err(StoreError::Unavailable(format!(
                    "took over {sync_timeout:?}"
                ))),
            };
            if let Err(e) = result {
                tracing::warn!(
                    target: "s2s_auth::sync",
                    what = R::WHAT,
                    error = %e,
                    "store housekeeping failed; retried in {every:?}"
                );
            }
        }
    }
}

/// Failed reads in a row, and when the last WARN about them was written.
#[derive(Default)]
struct Failures {
    in_a_row: u64,
    warned: Option<tokio::time::Instant>,
}

impl Failures {
    fn record<R: Replica>(&mut self, result: &Result<(), StoreError>, staleness: Duration) {
        match result {
            Ok(()) => {
                if self.in_a_row > 0 {
                    tracing::info!(
                        target: "s2s_auth::sync",
                        what = R::WHAT,
                        failed_reads = self.in_a_row,
                        "the store is read again after failures"
                    );
                }
                *self = Self::default();
            }
            Err(e) => {
                self.in_a_row += 1;
                let now = tokio::time::Instant::now();
                if self
                    .warned
                    .is_none_or(|at| now.duration_since(at) >= WARN_EVERY)
                {
                    self.warned = Some(now);
                    tracing::warn!(
                        target: "s2s_auth::sync",
                        what = R::WHAT,
                        error = %e,
                        failed_reads = self.in_a_row,
                        staleness = ?staleness,
                        "cannot read the store; credentials that depend on it are refused as \
                         stale once the last read is older than the staleness bound"
                    );
                }
            }
        }
    }
}

/// Whether a copy read at `synced_at` is too old at `now` (both ms since the origin).
fn is_stale(synced_at: u64, now: u64, staleness: u64) -> bool {
    synced_at == NEVER || now.saturating_sub(synced_at) > staleness
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staleness_is_measured_from_the_last_read() {
        assert!(is_stale(NEVER, 0, 5_000), "never read");
        assert!(is_stale(NEVER, u64::MAX - 1, 5_000));
        assert!(!is_stale(1_000, 1_000, 5_000));
        assert!(!is_stale(1_000, 6_000, 5_000), "exactly the bound is fresh");
        assert!(is_stale(1_000, 6_001, 5_000));
        assert!(!is_stale(2_000, 1_999, 5_000));
    }

    #[test]
    fn a_read_that_started_earlier_is_not_installed_over_a_later_one() {
        let clock = SyncClock::new(Duration::from_secs(5));
        assert!(clock.never_synced());
        assert!(clock.install(10, || {}));
        assert!(!clock.install(5, || panic!("an older read must not be installed")));
        assert!(clock.install(10, || {}), "the same start is not older");
        assert!(clock.install(20, || {}));
        assert!(!clock.never_synced());
    }
}
