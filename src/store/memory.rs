//! [`MemoryStore`]: keys and revocations in maps, for tests and single processes.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{PoisonError, RwLock};

use tokio::sync::watch;

use super::{
    AccountToken, AccountsSnapshot, IssuedToken, MAX_ACCOUNTS_LISTED, MAX_REVOCATIONS_LISTED,
    PublicKeyRecord, Revocation, ServiceAccount, Store, StoreError, StoreFuture, account_exists,
    bounded, bounded_snapshot, no_such_account, repeated_jti, same_or_conflict, storable_jti,
    token_exists, validate, validate_account, validate_account_token, validate_issued,
    validate_revocation,
};

/// A [`Store`] in memory. Keys and revocations are lost when the process ends, and replicas
/// do not share them: use it for tests, or for a single process whose peers may briefly fail
/// to verify its tokens after a restart (and which accepts that a restart forgets which
/// tokens were revoked). Share it as `Arc<MemoryStore>` (or `Arc<dyn Store>`): everything
/// holding the same `MemoryStore` sees a revocation at once, through
/// [`revocation_signal`](Store::revocation_signal).
///
/// ```
/// use std::sync::Arc;
/// use s2s_auth::store::{MemoryStore, PublicKeyRecord, Store};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), s2s_auth::store::StoreError> {
/// let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
/// let key = PublicKeyRecord {
///     service_id: "catalog".into(),
///     kid: "k1".into(),
///     jwk: serde_json::json!({ "kty": "EC", "crv": "P-256", "x": "...", "y": "..." }),
///     expires_at: 100,
/// };
/// store.put_public_key(&key).await?;
/// assert_eq!(store.public_keys("catalog", 99).await?.len(), 1);
/// assert!(store.public_keys("catalog", 100).await?.is_empty()); // expired at 100
/// # Ok(())
/// # }
/// ```
pub struct MemoryStore {
    /// service id → kid → record.
    keys: RwLock<BTreeMap<String, BTreeMap<String, PublicKeyRecord>>>,
    /// Revoked jti → expires_at; ordered, as [`Store::revocations`] lists them.
    revocations: RwLock<BTreeMap<String, i64>>,
    /// jti → the issued token's record.
    issued: RwLock<HashMap<String, IssuedToken>>,
    /// Service accounts and their tokens, under one lock so a snapshot is consistent.
    accounts: RwLock<Accounts>,
    /// Bumped by every revoke and every account or token write, so each holder of this
    /// store hears of it at once.
    revoked: watch::Sender<u64>,
}

/// The service-account tables.
#[derive(Default)]
struct Accounts {
    /// name → account.
    accounts: BTreeMap<String, ServiceAccount>,
    /// (account, token name) → token; ordered as the snapshot lists them.
    tokens: BTreeMap<(String, String), AccountToken>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self {
            keys: RwLock::default(),
            revocations: RwLock::default(),
            issued: RwLock::default(),
            accounts: RwLock::default(),
            revoked: watch::channel(0).0,
        }
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys = self.keys.read().unwrap_or_else(PoisonError::into_inner);
        f.debug_struct("MemoryStore")
            .field("services", &keys.len())
            .field(
                "public_keys",
                &keys.values().map(BTreeMap::len).sum::<usize>(),
            )
            // Counts only: a jti is no secret, but a Debug line is no place for a list.
            .field(
                "revocations",
                &self
                    .revocations
                    .read()
                    .unwrap_or_else(PoisonError::into_inner)
                    .len(),
            )
            .field(
                "issued_tokens",
                &self
                    .issued
                    .read()
                    .unwrap_or_else(PoisonError::into_inner)
                    .len(),
            )
            .field("service_accounts", &self.read_accounts().accounts.len())
            .finish()
    }
}

impl MemoryStore {
    fn read_accounts(&self) -> std::sync::RwLockReadGuard<'_, Accounts> {
        self.accounts.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs one write on the account tables, then announces it when it changed something
    /// (after the write, as PostgreSQL notifies after the commit; a delete of nothing is
    /// not announced, as in PostgreSQL). `write` answers its result and whether it changed
    /// anything.
    fn write_accounts<T>(
        &self,
        write: impl FnOnce(&mut Accounts) -> Result<(T, bool), StoreError>,
    ) -> Result<T, StoreError> {
        let (result, changed) = {
            let mut accounts = self
                .accounts
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            write(&mut accounts)?
        };
        if changed {
            self.revoked.send_modify(|n| *n = n.wrapping_add(1));
        }
        Ok(result)
    }
}

// A poisoned lock only means another task panicked mid-call; every write below is a
// single map operation, so the map is still consistent and is used as is.
impl Store for MemoryStore {
    fn put_public_key<'a>(&'a self, key: &'a PublicKeyRecord) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            validate(key)?;
            let mut keys = self.keys.write().unwrap_or_else(PoisonError::into_inner);
            match keys
                .entry(key.service_id.clone())
                .or_default()
                .entry(key.kid.clone())
            {
                Entry::Vacant(slot) => {
                    slot.insert(key.clone());
                    Ok(())
                }
                Entry::Occupied(stored) => {
                    same_or_conflict(key, &stored.get().jwk, stored.get().expires_at)
                }
            }
        })
    }

    fn public_keys<'a>(
        &'a self,
        service_id: &'a str,
        now: i64,
    ) -> StoreFuture<'a, Vec<PublicKeyRecord>> {
        Box::pin(async move {
            let keys = self.keys.read().unwrap_or_else(PoisonError::into_inner);
            let mut listed: Vec<PublicKeyRecord> = keys
                .get(service_id)
                .into_iter()
                .flat_map(BTreeMap::values)
                .filter(|k| k.expires_at > now)
                .cloned()
                .collect();
            // Stable sort over kid order: ties stay ordered by kid, as in the SQL stores.
            listed.sort_by_key(|k| k.expires_at);
            Ok(listed)
        })
    }

    fn prune_public_keys(&self, now: i64) -> StoreFuture<'_, u64> {
        Box::pin(async move {
            let mut keys = self.keys.write().unwrap_or_else(PoisonError::into_inner);
            let mut pruned = 0u64;
            keys.retain(|_, service| {
                let before = service.len();
                service.retain(|_, k| k.expires_at > now);
                pruned += (before - service.len()) as u64;
                !service.is_empty()
            });
            Ok(pruned)
        })
    }

    fn revoke<'a>(&'a self, revocation: &'a Revocation) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            validate_revocation(revocation)?;
            {
                let mut revoked = self
                    .revocations
                    .write()
                    .unwrap_or_else(PoisonError::into_inner);
                revoked
                    .entry(revocation.jti.clone())
                    .and_modify(|e| *e = (*e).max(revocation.expires_at))
                    .or_insert(revocation.expires_at);
            }
            // After the write, as PostgreSQL notifies after the commit: a woken reader sees it.
            self.revoked.send_modify(|n| *n = n.wrapping_add(1));
            Ok(())
        })
    }

    fn revocations(&self, now: i64) -> StoreFuture<'_, Vec<Revocation>> {
        Box::pin(async move {
            let revoked = self
                .revocations
                .read()
                .unwrap_or_else(PoisonError::into_inner);
            bounded(
                revoked
                    .iter()
                    .filter(|(_, expires_at)| **expires_at > now)
                    .take(MAX_REVOCATIONS_LISTED + 1)
                    .map(|(jti, expires_at)| Revocation {
                        jti: jti.clone(),
                        expires_at: *expires_at,
                    })
                    .collect(),
            )
        })
    }

    fn prune_revocations(&self, now: i64) -> StoreFuture<'_, u64> {
        Box::pin(async move {
            let mut pruned = 0u64;
            {
                let mut revoked = self
                    .revocations
                    .write()
                    .unwrap_or_else(PoisonError::into_inner);
                let before = revoked.len();
                revoked.retain(|_, expires_at| *expires_at > now);
                pruned += (before - revoked.len()) as u64;
            }
            let mut issued = self.issued.write().unwrap_or_else(PoisonError::into_inner);
            let before = issued.len();
            issued.retain(|_, token| token.expires_at > now);
            pruned += (before - issued.len()) as u64;
            Ok(pruned)
        })
    }

    fn record_issued<'a>(&'a self, token: &'a IssuedToken) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            validate_issued(token)?;
            let mut issued = self.issued.write().unwrap_or_else(PoisonError::into_inner);
            if issued.contains_key(&token.jti) {
                return Err(repeated_jti());
            }
            issued.insert(token.jti.clone(), token.clone());
            Ok(())
        })
    }

    fn issued_token<'a>(&'a self, jti: &'a str, now: i64) -> StoreFuture<'a, Option<IssuedToken>> {
        Box::pin(async move {
            if !storable_jti(jti) {
                return Ok(None);
            }
            let issued = self.issued.read().unwrap_or_else(PoisonError::into_inner);
            Ok(issued.get(jti).filter(|t| t.expires_at > now).cloned())
        })
    }

    fn create_account<'a>(&'a self, account: &'a ServiceAccount) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            validate_account(account)?;
            self.write_accounts(|t| {
                if t.accounts.contains_key(&account.name) {
                    return Err(account_exists(&account.name));
                }
                t.accounts.insert(account.name.clone(), account.clone());
                Ok(((), true))
            })
        })
    }

    fn update_account<'a>(&'a self, account: &'a ServiceAccount) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            validate_account(account)?;
            self.write_accounts(|t| {
                let stored = t
                    .accounts
                    .get_mut(&account.name)
                    .ok_or_else(|| no_such_account(&account.name))?;
                let created_at = stored.created_at;
                *stored = account.clone();
                stored.created_at = created_at;
                Ok(((), true))
            })
        })
    }

    fn delete_account<'a>(&'a self, name: &'a str) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            self.write_accounts(|t| {
                let existed = t.accounts.remove(name).is_some();
                t.tokens.retain(|(account, _), _| account != name);
                Ok((existed, existed))
            })
        })
    }

    fn account<'a>(&'a self, name: &'a str) -> StoreFuture<'a, Option<ServiceAccount>> {
        Box::pin(async move { Ok(self.read_accounts().accounts.get(name).cloned()) })
    }

    fn create_account_token<'a>(&'a self, token: &'a AccountToken) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            validate_account_token(token)?;
            self.write_accounts(|t| {
                if !t.accounts.contains_key(&token.account) {
                    return Err(no_such_account(&token.account));
                }
                let key = (token.account.clone(), token.name.clone());
                let taken = t.tokens.contains_key(&key)
                    || t.tokens
                        .values()
                        .any(|other| other.id == token.id || other.digest == token.digest);
                if taken {
                    return Err(token_exists(token));
                }
                t.tokens.insert(key, token.clone());
                Ok(((), true))
            })
        })
    }

    fn account_tokens<'a>(&'a self, account: &'a str) -> StoreFuture<'a, Vec<AccountToken>> {
        Box::pin(async move {
            Ok(self
                .read_accounts()
                .tokens
                .values()
                .filter(|t| t.account == account)
                .cloned()
                .collect())
        })
    }

    fn delete_account_token<'a>(&'a self, account: &'a str, id: &'a str) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            self.write_accounts(|t| {
                let before = t.tokens.len();
                t.tokens
                    .retain(|(owner, _), token| !(owner == account && token.id == id));
                let removed = t.tokens.len() != before;
                Ok((removed, removed))
            })
        })
    }

    fn touch_account_tokens<'a>(&'a self, used: &'a [(String, i64)]) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            // Not announced: last-used times change no verification.
            let mut t = self
                .accounts
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            // Each pair raises its token's time; an id listed twice ends at the later one.
            for token in t.tokens.values_mut() {
                for (_, at) in used.iter().filter(|(id, _)| *id == token.id) {
                    token.last_used_at = Some(token.last_used_at.map_or(*at, |was| was.max(*at)));
                }
            }
            Ok(())
        })
    }

    fn accounts_snapshot(&self) -> StoreFuture<'_, AccountsSnapshot> {
        Box::pin(async move {
            let t = self.read_accounts();
            bounded_snapshot(AccountsSnapshot {
                accounts: t
                    .accounts
                    .values()
                    .take(MAX_ACCOUNTS_LISTED + 1)
                    .cloned()
                    .collect(),
                tokens: t
                    .tokens
                    .values()
                    .take(MAX_ACCOUNTS_LISTED + 1)
                    .cloned()
                    .collect(),
            })
        })
    }

    fn revocation_signal(&self) -> Option<watch::Receiver<u64>> {
        Some(self.revoked.subscribe())
    }
}
