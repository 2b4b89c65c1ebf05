//! [`MemoryStore`]: keys in a map, for tests and single processes.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::fmt;
use std::sync::{PoisonError, RwLock};

use super::{PublicKeyRecord, Store, StoreFuture, same_or_conflict, validate};

/// A [`Store`] in memory. Keys are lost when the process ends, and replicas do not share
/// them: use it for tests, or for a single process whose peers may briefly fail to verify
/// its tokens after a restart. Share it as `Arc<MemoryStore>` (or `Arc<dyn Store>`).
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
#[derive(Default)]
pub struct MemoryStore {
    /// service id → kid → record.
    keys: RwLock<BTreeMap<String, BTreeMap<String, PublicKeyRecord>>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
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
            .finish()
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
}
