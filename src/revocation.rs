//! The denylist of revoked just-in-time on-behalf-of tokens (by `jti`): a copy of the
//! store's live revocations in memory, kept in sync on every replica, so that checking a
//! token costs no I/O and a token revoked on any replica is refused on all of them within
//! a bounded staleness (DESIGN.md sections 4 and 7, threat "replay of a revoked `jti`").
//!
//! - [`Denylist::revoke`] writes the store, then lists the `jti` here: refused on this
//!   replica at once.
//! - [`Denylist::start`] runs a task that reads the store's whole live list every
//!   `staleness / 2`, and at once when the store signals a change
//!   ([`Store::revocation_signal`]: PostgreSQL `LISTEN`/`NOTIFY`, or a shared
//!   `MemoryStore`). SQLite has no signal: replicas on one file see each other by polling.
//! - [`Denylist::check`] answers from memory. When the last successful read is older than
//!   the staleness bound it answers [`Listed::Stale`]: it cannot prove the token was not
//!   revoked elsewhere, and the caller fails closed (503).
//!
//! Why a full read and not "changes since": PostgreSQL sequence values are not handed out in
//! commit order, so a cursor can step over a revocation that commits late. Revocations live
//! no longer than the tokens they revoke (an hour at most), so the list stays small, and the
//! store refuses to list more than [`MAX_REVOCATIONS_LISTED`](crate::store::MAX_REVOCATIONS_LISTED)
//! rather than give part of it.

// The verifier (which calls `check`) and the revocation endpoint (which calls `revoke`) are
// built beside this module on another branch; until they are merged nothing here is called.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

use crate::store::{Revocation, Store, StoreError};

/// The staleness bound callers use unless configured otherwise: a revocation made on
/// another replica is seen here within 5 s (or [`Listed::Stale`] is answered).
pub(crate) const DEFAULT_STALENESS: Duration = Duration::from_secs(5);

/// The smallest staleness bound [`Denylist::new`] takes; a smaller one is raised to it
/// (polling every few milliseconds would only load the store).
pub(crate) const MIN_STALENESS: Duration = Duration::from_millis(10);

/// How often the background task deletes expired rows from the store.
const PRUNE_EVERY: Duration = Duration::from_secs(300);

/// While reads keep failing, at most one WARN line per this long (the first at once).
const WARN_EVERY: Duration = Duration::from_secs(30);

/// The shortest time a read may take before the task gives up on it and tries again.
const MIN_SYNC_TIMEOUT: Duration = Duration::from_secs(1);

/// The last-sync time before the first successful read.
const NEVER: u64 = u64::MAX;

/// What [`Denylist::check`] says about a `jti`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Listed {
    /// Not revoked, as of a read of the store within the staleness bound.
    Clear,
    /// Revoked: refuse the token.
    Revoked,
    /// Not listed here, but the last successful read of the store is older than the
    /// staleness bound (or there has been none yet): another replica may have revoked it.
    /// Fail closed (503), the store is not answering.
    Stale,
}

/// The revoked `jti`s this replica knows, kept in sync with the store (see the module docs).
pub(crate) struct Denylist {
    store: Arc<dyn Store>,
    staleness: Duration,
    /// `staleness` in milliseconds, as `check` compares it.
    staleness_ms: u64,
    /// The fixed instant the millisecond clock below counts from.
    origin: Instant,
    /// When the read behind the installed list *started* (ms since `origin`), or [`NEVER`]:
    /// the list holds every revocation committed before then.
    synced_at: AtomicU64,
    lists: RwLock<Lists>,
    /// Whether [`start`](Self::start) has run (it starts one task, once).
    started: AtomicBool,
    /// The background task, aborted when the denylist is dropped.
    task: Mutex<Option<tokio::task::AbortHandle>>,
}

/// What `check` reads, and what `sync` rebuilds it from.
#[derive(Default)]
struct Lists {
    /// jti → expires_at: the last snapshot of the store, with `local` merged in.
    listed: HashMap<String, i64>,
    /// jti → expires_at of the revocations made through this denylist. Kept until they
    /// expire, so a read that started before such a revocation committed cannot drop it
    /// from `listed`.
    local: HashMap<String, i64>,
}

impl Denylist {
    /// `staleness`: the bound within which a revocation made by another replica is seen
    /// (default 5 s, [`DEFAULT_STALENESS`]; the caller passes it; at least
    /// [`MIN_STALENESS`]). Polls the store every staleness / 2 once [`start`](Self::start)ed.
    ///
    /// Until the first successful [`sync`](Self::sync), `check` answers [`Listed::Stale`]
    /// for every token not revoked here.
    pub(crate) fn new(store: Arc<dyn Store>, staleness: Duration) -> Arc<Self> {
        let staleness = staleness.max(MIN_STALENESS);
        Arc::new(Self {
            store,
            staleness,
            staleness_ms: u64::try_from(staleness.as_millis()).unwrap_or(u64::MAX),
            origin: Instant::now(),
            synced_at: AtomicU64::new(NEVER),
            lists: RwLock::default(),
            started: AtomicBool::new(false),
            task: Mutex::new(None),
        })
    }

    /// Writes the store, then lists the jti locally, so this replica refuses it at once.
    ///
    /// When the store cannot be written ([`StoreError::Unavailable`]) the jti is still
    /// listed here (refusing it on this replica is never wrong) and the error is returned:
    /// other replicas do not know of it, so the caller should report the failure and retry.
    /// A `jti` the store refuses ([`StoreError::Invalid`]) is not listed.
    pub(crate) async fn revoke(&self, jti: &str, expires_at: i64) -> Result<(), StoreError> {
        let revocation = Revocation {
            jti: jti.to_owned(),
            expires_at,
        };
        match self.store.revoke(&revocation).await {
            Ok(()) => {
                self.list_locally(revocation);
                Ok(())
            }
            Err(e @ StoreError::Invalid(_)) => Err(e),
            Err(e) => {
                self.list_locally(revocation);
                Err(e)
            }
        }
    }

    fn list_locally(&self, revocation: Revocation) {
        let mut lists = self.lists.write().unwrap_or_else(PoisonError::into_inner);
        raise(
            &mut lists.listed,
            revocation.jti.clone(),
            revocation.expires_at,
        );
        raise(&mut lists.local, revocation.jti, revocation.expires_at);
    }

    /// Synchronous, no I/O, called on every request that carries such a token: Revoked if
    /// listed; Stale if the last successful full read of the store is older than
    /// `staleness` (fail closed: the caller answers 503, it cannot prove the token was not
    /// revoked elsewhere); else Clear. Entries past their expires_at are ignored.
    ///
    /// `now`: unix seconds.
    pub(crate) fn check(&self, jti: &str, now: i64) -> Listed {
        // The sync time first: `sync` installs a list before it publishes the time of its
        // read (both under the write lock), so a time read here is never newer than the
        // list read next. The other order could pair an old list with a new time.
        let synced_at = self.synced_at.load(Ordering::Acquire);
        let revoked = {
            let lists = self.lists.read().unwrap_or_else(PoisonError::into_inner);
            lists.listed.get(jti).is_some_and(|&until| until > now)
        };
        if revoked {
            Listed::Revoked
        } else if is_stale(synced_at, self.elapsed_ms(), self.staleness_ms) {
            Listed::Stale
        } else {
            Listed::Clear
        }
    }

    /// One full read of the store, replacing the local list (keeping local revokes).
    ///
    /// The list then counts as read at the moment this read *started*: a revocation
    /// committed while the read ran may be missing from it.
    pub(crate) async fn sync(&self) -> Result<(), StoreError> {
        let started = self.elapsed_ms();
        let now = unix_now();
        let snapshot = self.store.revocations(now).await?;
        let listed: HashMap<String, i64> = snapshot
            .into_iter()
            .map(|r| (r.jti, r.expires_at))
            .collect();
        let replaced = self.install(started, listed, now);
        // The old list (possibly large) is freed outside the lock.
        drop(replaced);
        Ok(())
    }

    /// Installs a snapshot read from `started` (ms since `origin`) at unix time `now`,
    /// merged with the local revokes; returns the list it replaced. A snapshot older than
    /// the installed one (two reads that finished out of order) is dropped instead.
    fn install(
        &self,
        started: u64,
        mut listed: HashMap<String, i64>,
        now: i64,
    ) -> HashMap<String, i64> {
        let mut lists = self.lists.write().unwrap_or_else(PoisonError::into_inner);
        let installed = self.synced_at.load(Ordering::Acquire);
        if installed != NEVER && started < installed {
            return listed;
        }
        lists.local.retain(|_, until| *until > now);
        for (jti, until) in &lists.local {
            raise(&mut listed, jti.clone(), *until);
        }
        let replaced = std::mem::replace(&mut lists.listed, listed);
        self.synced_at.store(started, Ordering::Release);
        replaced
    }

    /// Starts the background task (tokio): sync at once, then every staleness / 2, and at
    /// once whenever revocation_signal() fires; prunes expired rows now and then (every few
    /// minutes). Logs a failed sync at WARN on target s2s_auth::revocation (never a token; a
    /// jti is fine). Ends when the Denylist is dropped (hold a Weak).
    ///
    /// A second call does nothing. Without a tokio runtime nothing starts (logged at WARN):
    /// `check` then answers [`Listed::Stale`] for every token not revoked here.
    pub(crate) fn start(self: &Arc<Self>) {
        if self.started.swap(true, Ordering::AcqRel) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.started.store(false, Ordering::Release);
            tracing::warn!(
                target: "s2s_auth::revocation",
                "no tokio runtime: revocations are not read, and tokens that can be revoked \
                 are refused as stale"
            );
            return;
        };
        let signal = self.store.revocation_signal();
        let task = runtime.spawn(run(Arc::downgrade(self), signal, self.staleness));
        *self.task.lock().unwrap_or_else(PoisonError::into_inner) = Some(task.abort_handle());
    }

    /// Whether no read of the store has succeeded yet (a process that just started).
    pub(crate) fn never_synced(&self) -> bool {
        self.synced_at.load(Ordering::Acquire) == NEVER
    }

    fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX - 1)
    }
}

impl Drop for Denylist {
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

impl fmt::Debug for Denylist {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let entries = self
            .lists
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .listed
            .len();
        // Never the jtis: a count is all a log line needs.
        f.debug_struct("Denylist")
            .field("entries", &entries)
            .field("staleness", &self.staleness)
            .finish()
    }
}

/// The background task of [`Denylist::start`].
async fn run(
    denylist: Weak<Denylist>,
    mut signal: Option<watch::Receiver<u64>>,
    staleness: Duration,
) {
    let period = staleness / 2;
    let sync_timeout = staleness.max(MIN_SYNC_TIMEOUT);
    let mut next_sync = tokio::time::Instant::now();
    let mut next_prune = tokio::time::Instant::now() + PRUNE_EVERY;
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
        let Some(this) = denylist.upgrade() else {
            return;
        };
        let started = tokio::time::Instant::now();
        let result = match tokio::time::timeout(sync_timeout, this.sync()).await {
            Ok(result) => result,
            Err(_) => Err(StoreError::Unavailable(format!(
                "reading the revocations took over {sync_timeout:?}"
            ))),
        };
        failures.record(&result, &this);
        // From the start of this read, so reads stay `period` apart however long one took.
        next_sync = started + period;
        if started >= next_prune {
            next_prune = started + PRUNE_EVERY;
            match tokio::time::timeout(sync_timeout, this.store.prune_revocations(unix_now())).await
            {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::warn!(
                    target: "s2s_auth::revocation",
                    error = %e,
                    "cannot prune expired revocations; retried in {PRUNE_EVERY:?}"
                ),
                Err(_) => tracing::warn!(
                    target: "s2s_auth::revocation",
                    "pruning expired revocations took over {sync_timeout:?}; retried in {PRUNE_EVERY:?}"
                ),
            }
        }
    }
}

/// Failed reads in a row, and when the last WARN about them was logged.
#[derive(Default)]
struct Failures {
    in_a_row: u64,
    warned: Option<tokio::time::Instant>,
}

impl Failures {
    fn record(&mut self, result: &Result<(), StoreError>, denylist: &Denylist) {
        match result {
            Ok(()) => {
                if self.in_a_row > 0 {
                    tracing::info!(
                        target: "s2s_auth::revocation",
                        failed_reads = self.in_a_row,
                        "revocations read again after failures"
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
                    // Only the store's message: a sync never handles a token.
                    tracing::warn!(
                        target: "s2s_auth::revocation",
                        error = %e,
                        failed_reads = self.in_a_row,
                        staleness = ?denylist.staleness,
                        "cannot read the revocations; tokens that can be revoked are refused \
                         as stale once the last read is older than the staleness bound"
                    );
                }
            }
        }
    }
}

/// Whether a list read at `synced_at` (ms, or [`NEVER`]) is too old at `now` (ms).
fn is_stale(synced_at: u64, now: u64, staleness: u64) -> bool {
    synced_at == NEVER || now.saturating_sub(synced_at) > staleness
}

/// Lists `jti` until `until`, keeping a later expiry already listed.
fn raise(list: &mut HashMap<String, i64>, jti: String, until: i64) {
    list.entry(jti)
        .and_modify(|e| *e = (*e).max(until))
        .or_insert(until);
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    fn denylist() -> Arc<Denylist> {
        Denylist::new(Arc::new(MemoryStore::new()), Duration::from_secs(5))
    }

    #[test]
    fn staleness_is_measured_from_the_last_read() {
        assert!(is_stale(NEVER, 0, 5_000), "never read");
        assert!(is_stale(NEVER, u64::MAX - 1, 5_000));
        assert!(!is_stale(1_000, 1_000, 5_000));
        assert!(!is_stale(1_000, 6_000, 5_000), "exactly the bound is fresh");
        assert!(is_stale(1_000, 6_001, 5_000));
        // A read recorded after `now` was taken (a racing sync) is fresh, not an overflow.
        assert!(!is_stale(2_000, 1_999, 5_000));
    }

    #[test]
    fn raise_keeps_the_later_expiry() {
        let mut list = HashMap::new();
        raise(&mut list, "j".into(), 20);
        raise(&mut list, "j".into(), 10);
        assert_eq!(list["j"], 20);
        raise(&mut list, "j".into(), 30);
        assert_eq!(list["j"], 30);
    }

    #[test]
    fn nothing_read_yet_is_stale_and_a_read_makes_it_clear() {
        let d = denylist();
        assert_eq!(d.check("j", 100), Listed::Stale);
        d.install(d.elapsed_ms(), HashMap::new(), 100);
        assert_eq!(d.check("j", 100), Listed::Clear);
    }

    #[test]
    fn listed_is_revoked_until_it_expires() {
        let d = denylist();
        d.install(d.elapsed_ms(), HashMap::from([("j".to_owned(), 200)]), 100);
        assert_eq!(d.check("j", 199), Listed::Revoked);
        assert_eq!(
            d.check("j", 200),
            Listed::Clear,
            "expired: refused by exp anyway"
        );
        assert_eq!(d.check("other", 150), Listed::Clear);
    }

    #[test]
    fn revoked_wins_over_stale() {
        let d = denylist();
        d.list_locally(Revocation {
            jti: "j".into(),
            expires_at: 200,
        });
        assert_eq!(d.check("j", 100), Listed::Revoked);
        assert_eq!(d.check("other", 100), Listed::Stale);
    }

    #[test]
    fn a_read_keeps_local_revokes_until_they_expire() {
        let d = denylist();
        d.list_locally(Revocation {
            jti: "local".into(),
            expires_at: 200,
        });
        // A read that did not see the local revoke yet (it started before it committed).
        d.install(
            d.elapsed_ms(),
            HashMap::from([("remote".to_owned(), 300)]),
            100,
        );
        assert_eq!(d.check("local", 150), Listed::Revoked);
        assert_eq!(d.check("remote", 150), Listed::Revoked);
        // Once expired, the local revoke is dropped at the next read.
        d.install(d.elapsed_ms(), HashMap::new(), 200);
        assert!(!d.lists.read().unwrap().local.contains_key("local"));
        assert_eq!(d.check("local", 150), Listed::Clear);
    }

    #[test]
    fn a_read_that_finishes_late_does_not_replace_a_newer_one() {
        let d = denylist();
        d.install(50, HashMap::from([("newer".to_owned(), 300)]), 100);
        d.install(40, HashMap::new(), 100);
        assert_eq!(d.check("newer", 100), Listed::Revoked);
        assert_eq!(d.synced_at.load(Ordering::Acquire), 50);
    }

    #[test]
    fn staleness_has_a_floor() {
        let d = Denylist::new(Arc::new(MemoryStore::new()), Duration::ZERO);
        assert_eq!(d.staleness, MIN_STALENESS);
        assert_eq!(d.staleness_ms, 10);
    }

    #[test]
    fn debug_counts_without_jtis() {
        let d = denylist();
        d.list_locally(Revocation {
            jti: "secret-looking-jti".into(),
            expires_at: 200,
        });
        let shown = format!("{d:?}");
        assert_eq!(shown, "Denylist { entries: 1, staleness: 5s }");
    }

    #[test]
    fn start_without_a_runtime_starts_nothing() {
        let d = denylist();
        d.start();
        assert!(d.task.lock().unwrap().is_none());
        assert!(!d.started.load(Ordering::Acquire));
    }
}
