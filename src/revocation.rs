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
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

use crate::store::{Revocation, Store, StoreError, StoreFuture};
use crate::sync::{Replica, SyncClock};

/// How long past a token's `exp` it may still be taken (the largest leeway any replica can
/// be configured with), and so how long its revocation, and its record for revoking it,
/// must last.
/// (`AuthBuilder::MAX_LEEWAY_SECS`; the builder asserts the two agree, so that this module
/// need not depend on it.)
pub(crate) const REVOCATION_GRACE_SECS: i64 = 300;

/// The staleness bound callers use unless configured otherwise: a revocation made on
/// another replica is seen here within 5 s (or [`Listed::Stale`] is answered).
pub(crate) const DEFAULT_STALENESS: Duration = Duration::from_secs(5);

/// How often the background task deletes expired rows from the store.
const PRUNE_EVERY: Duration = Duration::from_secs(300);

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
    /// When the installed list was read, and the task that reads it.
    clock: SyncClock,
    lists: RwLock<Lists>,
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
    /// [`MIN_STALENESS`](crate::sync::MIN_STALENESS)). Polls the store every staleness / 2 once [`start`](Self::start)ed.
    ///
    /// Until the first successful [`sync`](Self::sync), `check` answers [`Listed::Stale`]
    /// for every token not revoked here.
    pub(crate) fn new(store: Arc<dyn Store>, staleness: Duration) -> Arc<Self> {
        Arc::new(Self {
            store,
            clock: SyncClock::new(staleness),
            lists: RwLock::default(),
        })
    }

    /// Writes the store, then lists the jti locally, so this replica refuses it at once.
    ///
    /// When the store cannot be written ([`StoreError::Unavailable`]) the jti is still
    /// listed here (refusing it on this replica is never wrong) and the error is returned:
    /// other replicas do not know of it, so the caller should report the failure and retry.
    /// A `jti` the store refuses ([`StoreError::Invalid`]) is not listed.
    ///
    /// `token_exp` is the token's own `exp`. A verifier takes a token until `exp` plus its
    /// leeway, and replicas may be configured with different leeways, so the revocation is
    /// kept until `exp` plus [`REVOCATION_GRACE_SECS`].
    pub(crate) async fn revoke(&self, jti: &str, token_exp: i64) -> Result<(), StoreError> {
        let revocation = Revocation {
            jti: jti.to_owned(),
            expires_at: token_exp.saturating_add(REVOCATION_GRACE_SECS),
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
        let stale = self.clock.is_stale();
        let revoked = {
            let lists = self.lists.read().unwrap_or_else(PoisonError::into_inner);
            lists.listed.get(jti).is_some_and(|&until| until > now)
        };
        if revoked {
            Listed::Revoked
        } else if stale {
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
        let started = self.clock.elapsed_ms();
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
        let lists = &mut *lists;
        let mut replaced = HashMap::new();
        let installed = self.clock.install(started, || {
            lists.local.retain(|_, until| *until > now);
            for (jti, until) in &lists.local {
                raise(&mut listed, jti.clone(), *until);
            }
            replaced = std::mem::replace(&mut lists.listed, std::mem::take(&mut listed));
        });
        if installed { replaced } else { listed }
    }

    /// Starts the background task (tokio): sync at once, then every staleness / 2, and at
    /// once whenever revocation_signal() fires; prunes expired rows now and then (every few
    /// minutes). Logs a failed sync at WARN on target s2s_auth::revocation (never a token; a
    /// jti is fine). Ends when the Denylist is dropped (hold a Weak).
    ///
    /// A second call does nothing. Without a tokio runtime nothing starts (logged at WARN):
    /// `check` then answers [`Listed::Stale`] for every token not revoked here.
    pub(crate) fn start(self: &Arc<Self>) {
        self.clock.start(self);
    }

    /// Whether no read of the store has succeeded yet (a process that just started).
    pub(crate) fn never_synced(&self) -> bool {
        self.clock.never_synced()
    }
}

impl Replica for Denylist {
    const WHAT: &'static str = "revocations";

    fn sync(&self) -> StoreFuture<'_, ()> {
        Box::pin(Denylist::sync(self))
    }

    fn chores(&self) -> StoreFuture<'_, ()> {
        Box::pin(async move { self.store.prune_revocations(unix_now()).await.map(drop) })
    }

    fn chores_every(&self) -> Duration {
        PRUNE_EVERY
    }

    fn signal(&self) -> Option<watch::Receiver<u64>> {
        self.store.revocation_signal()
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
            .field("staleness", &self.clock.staleness())
            .finish()
    }
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
        d.install(d.clock.elapsed_ms(), HashMap::new(), 100);
        assert_eq!(d.check("j", 100), Listed::Clear);
    }

    #[test]
    fn listed_is_revoked_until_it_expires() {
        let d = denylist();
        d.install(
            d.clock.elapsed_ms(),
            HashMap::from([("j".to_owned(), 200)]),
            100,
        );
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
            d.clock.elapsed_ms(),
            HashMap::from([("remote".to_owned(), 300)]),
            100,
        );
        assert_eq!(d.check("local", 150), Listed::Revoked);
        assert_eq!(d.check("remote", 150), Listed::Revoked);
        // Once expired, the local revoke is dropped at the next read.
        d.install(d.clock.elapsed_ms(), HashMap::new(), 200);
        assert!(!d.lists.read().unwrap().local.contains_key("local"));
        assert_eq!(d.check("local", 150), Listed::Clear);
    }

    #[test]
    fn a_read_that_finishes_late_does_not_replace_a_newer_one() {
        let d = denylist();
        d.install(50, HashMap::from([("newer".to_owned(), 300)]), 100);
        d.install(40, HashMap::new(), 100);
        assert_eq!(d.check("newer", 100), Listed::Revoked);
        assert!(!d.clock.install(45, || {}), "the read of 50 is installed");
    }

    #[test]
    fn staleness_has_a_floor() {
        let d = Denylist::new(Arc::new(MemoryStore::new()), Duration::ZERO);
        assert_eq!(d.clock.staleness(), crate::sync::MIN_STALENESS);
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
        assert!(!d.clock.is_running());
        assert!(d.never_synced());
    }
}
