//! Each replica's copy of the service accounts, and the verifier that answers from it.
//!
//! The copy is the store's whole state ([`Store::accounts_snapshot`]), read by the task of
//! the `sync` module: every staleness / 2, and at once when the store signals a change.
//! A change made through this replica is seen here at once: a disable or revoke is applied
//! to the copy before the write's answer goes out (and kept until a read that started after
//! it is installed, so a read that raced it cannot undo it), then the store is read again.
//!
//! A request costs a SHA-256 of the token (computed once, and reused for its audit fingerprint),
//! one hash-map lookup under a read lock, a constant-time comparison of the full digest and
//! an atomic load: no store query. Last use is an atomic store at most once a second per
//! token; the task writes the changed ones in one batch every `last_used_interval`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use subtle::ConstantTimeEq;
use tokio::sync::watch;

use crate::error::{RequestError, VerifyError};
use crate::principal::{CredentialKind, Principal, PrincipalType};
use crate::restrictions::AccessRestrictions;
use crate::store::{AccountsSnapshot, Store, StoreError, StoreFuture};
use crate::sync::{Replica, SyncClock};
use crate::verifier::{Shared, Token, Verification, Verifier};

/// The copy of the accounts one replica verifies tokens against.
pub(crate) struct Registry {
    pub(crate) store: Arc<dyn Store>,
    clock: SyncClock,
    state: RwLock<State>,
    last_used_interval: Duration,
    /// Orders local changes against reads of the store: a change stamped before a read
    /// began (after its write committed) is in that read.
    sequence: AtomicU64,
    /// The first read, shared by the requests that arrive before it is done (they wait for
    /// it rather than being answered 503 by a process that just started).
    first_read: tokio::sync::OnceCell<()>,
}

/// What a verification reads.
#[derive(Default)]
struct State {
    /// The first 16 bytes of a token's digest → the token (the full digest is compared in
    /// constant time).
    tokens: HashMap<[u8; 16], Arc<Entry>>,
    /// Accounts disabled or deleted through this replica (the change's sequence number),
    /// refused until a read that began after the change is installed.
    disabled_here: HashMap<String, u64>,
    /// Tokens revoked through this replica, by id, likewise.
    revoked_here: HashMap<String, u64>,
    /// The enabled accounts and their permissions, by name (for the access table).
    enabled: Vec<(String, AccessRestrictions)>,
}

/// One token of the copy.
struct Entry {
    digest: [u8; 32],
    id: String,
    account: String,
    enabled: bool,
    expires_at: Option<i64>,
    /// The principal it verifies as, made once per read of the store.
    principal: Principal,
    usage: Arc<Usage>,
}

/// When a token was last used here, and what of it was written to the store. Kept across
/// reads of the store (by token id), so a read does not lose uses not yet written.
#[derive(Default)]
struct Usage {
    last: AtomicI64,
    written: AtomicI64,
}

/// How a token fares against the copy.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Checked {
    /// The token's principal.
    Valid(Principal),
    /// Refused: the check that failed.
    Refused(VerifyError),
    /// The copy is older than the staleness bound: cannot tell.
    Stale,
}

impl Registry {
    pub(crate) fn new(
        store: Arc<dyn Store>,
        staleness: Duration,
        last_used_interval: Duration,
    ) -> Arc<Self> {
        Arc::new(Self {
            store,
            clock: SyncClock::new(staleness),
            state: RwLock::default(),
            last_used_interval,
            sequence: AtomicU64::new(0),
            first_read: tokio::sync::OnceCell::new(),
        })
    }

    /// Starts keeping the copy fresh (once; needs a tokio runtime, else every token is
    /// answered as stale).
    pub(crate) fn start(self: &Arc<Self>) {
        self.clock.start(self);
    }

    /// Waits for this replica's first read of the store (one read, shared by every caller
    /// waiting; a failed one is tried again by the next caller).
    pub(crate) async fn first_read(&self) -> Result<(), StoreError> {
        if !self.clock.never_synced() {
            return Ok(());
        }
        self.first_read
            .get_or_try_init(|| self.sync())
            .await
            .map(|_| ())
    }

    /// Whether the store has been read at all.
    pub(crate) fn never_read(&self) -> bool {
        self.clock.never_synced()
    }

    /// The staleness bound, for `Retry-After`.
    pub(crate) fn staleness(&self) -> Duration {
        self.clock.staleness()
    }

    /// Checks a token by its digest at unix time `now`, and notes its use.
    pub(crate) fn check(&self, digest: &[u8; 32], now: i64) -> Checked {
        // The time of the read first, then the copy (see `revocation::Denylist::check`).
        let stale = self.clock.is_stale();
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        let key: [u8; 16] = digest[..16].try_into().unwrap_or_default();
        let found = state
            .tokens
            .get(&key)
            .filter(|e| bool::from(e.digest.ct_eq(digest)));
        let Some(entry) = found else {
            // Not in the copy: unknown, unless the copy is too old to say.
            return if stale {
                Checked::Stale
            } else {
                Checked::Refused(VerifyError::Unrecognised)
            };
        };
        if state.revoked_here.contains_key(&entry.id) {
            return Checked::Refused(VerifyError::Unrecognised);
        }
        if !entry.enabled || state.disabled_here.contains_key(&entry.account) {
            return Checked::Refused(VerifyError::AccountDisabled);
        }
        if stale {
            return Checked::Stale;
        }
        if entry.expires_at.is_some_and(|at| at <= now) {
            return Checked::Refused(VerifyError::Expired);
        }
        // At most one write of the shared line per token and second.
        if entry.usage.last.load(Ordering::Relaxed) < now {
            entry.usage.last.fetch_max(now, Ordering::Relaxed);
        }
        Checked::Valid(entry.principal.clone())
    }

    /// Reads the store and installs what it holds.
    pub(crate) async fn sync(&self) -> Result<(), StoreError> {
        let started = self.clock.elapsed_ms();
        let begun = self.sequence.fetch_add(1, Ordering::AcqRel);
        let snapshot = self.store.accounts_snapshot().await?;
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        let state = &mut *state;
        let enabled: Vec<(String, AccessRestrictions)> = snapshot
            .accounts
            .iter()
            .filter(|a| a.enabled)
            .map(|a| (a.name.clone(), a.permissions.clone()))
            .collect();
        let tokens = build(snapshot, &state.tokens);
        self.clock.install(started, || {
            state.tokens = tokens;
            state.enabled = enabled;
            // Changes stamped here before this read began are in it now.
            state.disabled_here.retain(|_, at| *at > begun);
            state.revoked_here.retain(|_, at| *at > begun);
        });
        Ok(())
    }

    /// Refuses the tokens of `account` here at once (disabled or deleted through this
    /// replica), until a read that began after now is installed. Called before the store
    /// is written (refused here even if the write fails) and again after it (so a read that
    /// began in between, which may not see the write, does not lift it).
    pub(crate) fn disabled_here(&self, account: &str) {
        let at = self.sequence.fetch_add(1, Ordering::AcqRel);
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        state.disabled_here.insert(account.to_owned(), at);
    }

    /// Lifts a local disable (the account was enabled through this replica).
    pub(crate) fn enabled_here(&self, account: &str) {
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        state.disabled_here.remove(account);
    }

    /// Refuses one token here at once (revoked through this replica); called before and
    /// after the store is written, like [`disabled_here`](Self::disabled_here).
    pub(crate) fn revoked_here(&self, id: &str) {
        let at = self.sequence.fetch_add(1, Ordering::AcqRel);
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        state.revoked_here.insert(id.to_owned(), at);
    }

    /// After a write through this replica: reads the store again, so the change is seen
    /// here before the write is answered. A failed read is logged; the task's next read
    /// brings the change.
    pub(crate) async fn refresh(&self) {
        if let Err(e) = self.sync().await {
            tracing::warn!(
                target: "s2s_auth::service_account",
                error = %e,
                "cannot read the accounts back after a change; the next read brings it"
            );
        }
    }

    /// When each token was last used here (unix seconds), by token id.
    pub(crate) fn last_used_here(&self) -> HashMap<String, i64> {
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        state
            .tokens
            .values()
            .filter_map(|e| {
                let at = e.usage.last.load(Ordering::Relaxed);
                (at > 0).then(|| (e.id.clone(), at))
            })
            .collect()
    }

    /// Writes the last-used times that changed since the last write, in one store call.
    pub(crate) async fn write_last_used(&self) -> Result<(), StoreError> {
        let pending: Vec<(String, i64, Arc<Usage>)> = {
            let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
            state
                .tokens
                .values()
                .filter_map(|e| {
                    let last = e.usage.last.load(Ordering::Relaxed);
                    (last > e.usage.written.load(Ordering::Relaxed))
                        .then(|| (e.id.clone(), last, e.usage.clone()))
                })
                .collect()
        };
        if pending.is_empty() {
            return Ok(());
        }
        let batch: Vec<(String, i64)> = pending
            .iter()
            .map(|(id, at, _)| (id.clone(), *at))
            .collect();
        self.store.touch_account_tokens(&batch).await?;
        for (_, at, usage) in pending {
            usage.written.fetch_max(at, Ordering::Relaxed);
        }
        Ok(())
    }

    /// The enabled accounts of the copy and their permissions, by name (disabled and
    /// deleted here excluded).
    pub(crate) fn enabled_accounts(&self) -> Vec<(String, AccessRestrictions)> {
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        state
            .enabled
            .iter()
            .filter(|(name, _)| !state.disabled_here.contains_key(name))
            .cloned()
            .collect()
    }

    /// How many tokens the copy holds.
    pub(crate) fn len(&self) -> usize {
        self.state
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .tokens
            .len()
    }
}

/// The copy of a snapshot, with the usage counters of `old` carried over by token id.
fn build(
    snapshot: AccountsSnapshot,
    old: &HashMap<[u8; 16], Arc<Entry>>,
) -> HashMap<[u8; 16], Arc<Entry>> {
    let usage_by_id: HashMap<&str, &Arc<Usage>> =
        old.values().map(|e| (e.id.as_str(), &e.usage)).collect();
    let accounts: HashMap<&str, _> = snapshot
        .accounts
        .iter()
        .map(|a| (a.name.as_str(), a))
        .collect();
    let mut tokens = HashMap::with_capacity(snapshot.tokens.len());
    for token in snapshot.tokens {
        let Some(account) = accounts.get(token.account.as_str()) else {
            continue;
        };
        let restrictions = match &token.permissions {
            None => account.permissions.clone(),
            Some(own) => own
                .intersect(&account.permissions)
                .unwrap_or_else(AccessRestrictions::nothing),
        };
        let mut principal = Principal::new(
            PrincipalType::Service,
            format!("service-account:{}", account.name),
            CredentialKind::ServiceAccount,
        )
        .with_restrictions(restrictions);
        if let Some(at) = token
            .expires_at
            .and_then(|at| time::OffsetDateTime::from_unix_timestamp(at).ok())
        {
            principal = principal.with_expiry(at);
        }
        let usage = usage_by_id.get(token.id.as_str()).map_or_else(
            || {
                let usage = Usage::default();
                let stored = token.last_used_at.unwrap_or(0);
                usage.last.store(stored, Ordering::Relaxed);
                usage.written.store(stored, Ordering::Relaxed);
                Arc::new(usage)
            },
            |u| Arc::clone(u),
        );
        let key: [u8; 16] = token.digest.0[..16].try_into().unwrap_or_default();
        tokens.insert(
            key,
            Arc::new(Entry {
                digest: token.digest.0,
                id: token.id,
                account: token.account,
                enabled: account.enabled,
                expires_at: token.expires_at,
                principal,
                usage,
            }),
        );
    }
    tokens
}

impl Replica for Registry {
    const WHAT: &'static str = "service accounts";

    fn sync(&self) -> StoreFuture<'_, ()> {
        Box::pin(Registry::sync(self))
    }

    fn chores(&self) -> StoreFuture<'_, ()> {
        Box::pin(self.write_last_used())
    }

    fn chores_every(&self) -> Duration {
        self.last_used_interval
    }

    fn signal(&self) -> Option<watch::Receiver<u64>> {
        self.store.revocation_signal()
    }
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A count only: digests and names are no secrets, but no place for a Debug line.
        f.debug_struct("Registry")
            .field("tokens", &self.len())
            .field("staleness", &self.clock.staleness())
            .finish()
    }
}

/// The verifier of `s2s_sa_` tokens (classification sends them here and nowhere else).
pub(crate) struct AccountVerifier {
    pub(crate) registry: Arc<Registry>,
}

impl Verifier for AccountVerifier {
    fn verify(self: &Arc<Self>, token: Token<'_>, _shared: &Arc<Shared>) -> Verification {
        if !super::has_token_shape(token.raw) {
            return Verification::done(Err(VerifyError::Unrecognised));
        }
        self.registry.start();
        let now = i64::try_from(token.now.unix_secs()).unwrap_or(i64::MAX);
        if self.registry.never_read() {
            // A process that just started: wait for its first read of the store (shared by
            // every request arriving meanwhile) instead of answering 503.
            let registry = self.registry.clone();
            let digest = *token.hashes.digest();
            return crate::verifier::now_or_later(async move {
                if let Err(e) = registry.first_read().await {
                    tracing::warn!(target: "s2s_auth::service_account", error = %e, "cannot read the service accounts");
                }
                answer(&registry, registry.check(&digest, now))
            });
        }
        Verification::Done(answer(
            &self.registry,
            self.registry.check(token.hashes.digest(), now),
        ))
    }
}

/// The request's outcome for what the copy says of its token.
fn answer(registry: &Registry, checked: Checked) -> Result<Principal, RequestError> {
    match checked {
        Checked::Valid(principal) => Ok(principal),
        Checked::Refused(e) => Err(e.into()),
        Checked::Stale => Err(RequestError::RevocationsUnavailable {
            retry_after_secs: registry.staleness().as_secs().max(1),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::restrictions::{AccessRestriction, Action};
    use crate::store::{AccountToken, MemoryStore, ServiceAccount, TokenDigest};

    fn perms(actions: &[Action]) -> AccessRestrictions {
        let mut r = AccessRestriction::plugin("catalog");
        if !actions.is_empty() {
            r = r.actions(actions.iter().copied());
        }
        AccessRestrictions::new([r]).unwrap()
    }

    async fn store_with(enabled: bool) -> Arc<MemoryStore> {
        let store = Arc::new(MemoryStore::new());
        store
            .create_account(&ServiceAccount {
                name: "ci".into(),
                description: String::new(),
                permissions: perms(&[]),
                enabled,
                created_at: 1,
                updated_at: 1,
            })
            .await
            .unwrap();
        store
            .create_account_token(&AccountToken {
                id: "sat_000000000000000000000001".into(),
                account: "ci".into(),
                name: "first".into(),
                digest: TokenDigest([1; 32]),
                permissions: Some(perms(&[Action::Read])),
                expires_at: Some(1_000),
                created_at: 1,
                last_used_at: None,
            })
            .await
            .unwrap();
        store
    }

    #[tokio::test]
    async fn answers_from_the_copy_and_fails_closed_when_it_is_stale() {
        let store = store_with(true).await;
        let registry = Registry::new(
            store.clone(),
            Duration::from_secs(5),
            Duration::from_secs(60),
        );
        assert_eq!(registry.check(&[1; 32], 10), Checked::Stale, "never read");
        registry.sync().await.unwrap();
        let Checked::Valid(p) = registry.check(&[1; 32], 10) else {
            panic!("the token is valid");
        };
        assert_eq!(p.subject(), "service-account:ci");
        assert_eq!(p.credential(), CredentialKind::ServiceAccount);
        assert_eq!(
            p.restrictions(),
            Some(&perms(&[Action::Read])),
            "narrowed by the token"
        );
        assert_eq!(p.actor(), None);
        assert_eq!(
            registry.check(&[1; 32], 1_000),
            Checked::Refused(VerifyError::Expired)
        );
        let mut other = [1; 32];
        other[31] = 2; // same 16-byte key, another digest
        assert_eq!(
            registry.check(&other, 10),
            Checked::Refused(VerifyError::Unrecognised)
        );
    }

    #[tokio::test]
    async fn a_local_disable_holds_against_a_read_that_raced_it() {
        let store = store_with(true).await;
        let registry = Registry::new(
            store.clone(),
            Duration::from_secs(5),
            Duration::from_secs(60),
        );
        let started = registry.clock.elapsed_ms();
        let begun = registry.sequence.fetch_add(1, Ordering::AcqRel);
        let before = store.accounts_snapshot().await.unwrap();
        registry.disabled_here("ci");
        // A read that started before the disable, installed after it.
        {
            let mut state = registry.state.write().unwrap();
            let state = &mut *state;
            let tokens = build(before, &state.tokens);
            registry.clock.install(started, || {
                state.tokens = tokens;
                state.disabled_here.retain(|_, at| *at > begun);
            });
        }
        assert_eq!(
            registry.check(&[1; 32], 10),
            Checked::Refused(VerifyError::AccountDisabled)
        );
        registry.enabled_here("ci");
        assert!(matches!(registry.check(&[1; 32], 10), Checked::Valid(_)));
    }

    #[tokio::test]
    async fn last_use_is_written_once_per_batch() {
        let store = store_with(true).await;
        let registry = Registry::new(
            store.clone(),
            Duration::from_secs(5),
            Duration::from_secs(60),
        );
        registry.sync().await.unwrap();
        for now in [10, 10, 11, 12] {
            assert!(matches!(registry.check(&[1; 32], now), Checked::Valid(_)));
        }
        registry.write_last_used().await.unwrap();
        let tokens = store.account_tokens("ci").await.unwrap();
        assert_eq!(tokens[0].last_used_at, Some(12));
        // Nothing new: no write (the memory store would not show it; `written` does).
        registry.sync().await.unwrap();
        assert_eq!(
            registry.last_used_here()["sat_000000000000000000000001"],
            12
        );
        registry.write_last_used().await.unwrap();
    }

    #[tokio::test]
    async fn a_disabled_account_refuses_its_tokens() {
        let store = store_with(false).await;
        let registry = Registry::new(store, Duration::from_secs(5), Duration::from_secs(60));
        registry.sync().await.unwrap();
        assert_eq!(
            registry.check(&[1; 32], 10),
            Checked::Refused(VerifyError::AccountDisabled)
        );
    }
}
