//! Signing keys for plugin-to-plugin tokens: ES256 pairs generated with aws-lc-rs, a new one
//! every `keyDuration`, each public half stored (and so published) for 3 × `keyDuration`.
//!
//! The order matters: a key's public half is written to the [`Store`] **before** the key
//! signs anything, so a peer that receives a token can always find its key. More than that,
//! the *next* key is made and published together with the current one, so it is in the JWKS
//! for a whole key duration before it signs: peers that refresh our JWKS on their schedule
//! (every 10 minutes by default) already hold it, and never depend on a kid-miss refresh to
//! follow our rotation. Only the first key of a process signs as soon as it is published.
//!
//! With a shared store (PostgreSQL) every replica publishes its own keys and the JWKS lists
//! them all, so a token signed by any replica verifies against the service's one JWKS. The
//! JWKS is served from memory and read from the store every few seconds
//! ([`PUBLISHED_REFRESH`]), not once per request.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey};

use crate::audit::{Auditor, EventKind};
use crate::error::IssueError;
use crate::store::{PublicKeyRecord, Store, StoreError};

/// A key that may sign until `sign_until` (unix seconds).
pub(crate) struct SigningKey {
    pub(crate) kid: String,
    pub(crate) key: EncodingKey,
    pub(crate) sign_until: u64,
}

/// How often the published JWKS is read from the store again: keys other replicas publish
/// show up within this time; a flood of JWKS requests costs the store one query per period.
pub(crate) const PUBLISHED_REFRESH: Duration = Duration::from_secs(5);

/// How long after a failed attempt to publish the next key it is tried again.
const NEXT_RETRY_SECS: u64 = 5;

/// A key published ahead of its turn: it signs once the current key's window is over.
struct NextKey {
    kid: String,
    key: EncodingKey,
    published_until: u64,
}

/// The key that signs now and the one that signs after it.
#[derive(Default)]
struct Keys {
    current: Option<Arc<SigningKey>>,
    next: Option<NextKey>,
    /// No attempt to publish a next key before this (unix seconds), after a failure.
    next_retry_at: u64,
}

/// The published key records, as last read from the store, and when.
struct PublishedCopy {
    records: Vec<PublicKeyRecord>,
    read_at: Instant,
}

/// Generates, publishes and rotates this service's signing keys.
pub(crate) struct KeyManager {
    service_id: String,
    source: Source,
    key_duration: Duration,
    keys: RwLock<Keys>,
    rotating: tokio::sync::Mutex<()>,
    /// `None` until the store has answered once.
    published: RwLock<Option<PublishedCopy>>,
    /// The unexpired keys this process published.
    own: RwLock<Vec<PublicKeyRecord>>,
    /// Held by the one request reading the store for everyone.
    reading: tokio::sync::Mutex<()>,
    auditor: Arc<Auditor>,
}

/// Generated keys kept in a store, or static keys from PEM files.
enum Source {
    Store(Arc<dyn Store>),
    Static {
        signing: Arc<SigningKey>,
        published: Vec<serde_json::Value>,
    },
}

impl std::fmt::Debug for KeyManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyManager")
            .field("service_id", &self.service_id)
            .field("key_duration", &self.key_duration)
            .finish_non_exhaustive()
    }
}

pub(crate) fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

impl KeyManager {
    pub(crate) fn new(
        service_id: String,
        store: Arc<dyn Store>,
        key_duration: Duration,
        auditor: Arc<Auditor>,
    ) -> Self {
        Self {
            service_id,
            source: Source::Store(store),
            key_duration,
            keys: RwLock::new(Keys::default()),
            rotating: tokio::sync::Mutex::new(()),
            published: RwLock::new(None),
            own: RwLock::new(Vec::new()),
            reading: tokio::sync::Mutex::new(()),
            auditor,
        }
    }

    /// Static keys: the first signs (and never rotates), all are published.
    pub(crate) fn new_static(
        service_id: String,
        keys: Vec<(String, EncodingKey, serde_json::Value)>,
        key_duration: Duration,
        auditor: Arc<Auditor>,
    ) -> Option<Self> {
        let mut keys = keys.into_iter();
        let (kid, key, first_jwk) = keys.next()?;
        let mut published = vec![first_jwk];
        published.extend(keys.map(|(_, _, jwk)| jwk));
        Some(Self {
            service_id,
            source: Source::Static {
                signing: Arc::new(SigningKey {
                    kid,
                    key,
                    sign_until: u64::MAX,
                }),
                published,
            },
            key_duration,
            keys: RwLock::new(Keys::default()),
            rotating: tokio::sync::Mutex::new(()),
            published: RwLock::new(None),
            own: RwLock::new(Vec::new()),
            reading: tokio::sync::Mutex::new(()),
            auditor,
        })
    }

    /// The store the keys are kept in (none for static keys).
    pub(crate) fn store(&self) -> Option<Arc<dyn Store>> {
        match &self.source {
            Source::Store(store) => Some(store.clone()),
            Source::Static { .. } => None,
        }
    }

    /// The public keys to publish now: from memory, read from the store again when the copy
    /// is older than [`PUBLISHED_REFRESH`]. One request reads for everyone; the others are
    /// answered from the copy meanwhile. When the store fails, the last copy is served (its
    /// expired keys left out); when it has never answered, the error is returned (503).
    pub(crate) async fn published(&self) -> Result<Vec<serde_json::Value>, StoreError> {
        let store = match &self.source {
            Source::Static { published, .. } => return Ok(published.clone()),
            Source::Store(store) => store,
        };
        if let Some(fresh) = self.published_copy(true) {
            return Ok(fresh);
        }
        let reading = match self.reading.try_lock() {
            Ok(guard) => guard,
            // Someone is reading: the copy we have will do, else wait for theirs.
            Err(_) => match self.published_copy(false) {
                Some(stale) => return Ok(stale),
                None => self.reading.lock().await,
            },
        };
        if let Some(fresh) = self.published_copy(true) {
            return Ok(fresh);
        }
        let read = store.public_keys(&self.service_id, now() as i64).await;
        drop(reading);
        match read {
            Ok(records) => {
                *self
                    .published
                    .write()
                    .unwrap_or_else(PoisonError::into_inner) = Some(PublishedCopy {
                    records,
                    read_at: Instant::now(),
                });
                Ok(self.published_copy(false).unwrap_or_default())
            }
            Err(e) => match self.published_copy(false) {
                Some(stale) => {
                    tracing::warn!(target: "s2s_auth::keys", error = %e, "cannot list published keys; serving the last copy");
                    Ok(stale)
                }
                None => Err(e),
            },
        }
    }

    /// The copy's unexpired keys and this process's own, if there is a copy (and it is
    /// fresh, when asked). This process's keys are served from the moment they are stored,
    /// whatever the copy says: a replica never serves a JWKS without the key it signs with.
    fn published_copy(&self, fresh_only: bool) -> Option<Vec<serde_json::Value>> {
        let copy = self
            .published
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let copy = copy.as_ref()?;
        if fresh_only && copy.read_at.elapsed() >= PUBLISHED_REFRESH {
            return None;
        }
        let now = now() as i64;
        let own = self.own.read().unwrap_or_else(PoisonError::into_inner);
        let mut records: Vec<&PublicKeyRecord> = copy.records.iter().collect();
        for record in own.iter() {
            if !records.iter().any(|r| r.kid == record.kid) {
                records.push(record);
            }
        }
        Some(
            records
                .into_iter()
                .filter(|r| r.expires_at > now)
                .map(|r| r.jwk.clone())
                .collect(),
        )
    }

    pub(crate) fn key_duration(&self) -> Duration {
        self.key_duration
    }

    fn usable(&self) -> Option<Arc<SigningKey>> {
        self.keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .current
            .clone()
            .filter(|k| k.sign_until > now())
    }

    /// Whether a next key should be published now (there is none, and no recent failure).
    fn next_wanted(&self) -> bool {
        let keys = self.keys.read().unwrap_or_else(PoisonError::into_inner);
        keys.next.is_none() && keys.next_retry_at <= now()
    }

    /// The key to sign with now, rotating to the next key (published a key duration ago)
    /// when due, and publishing the key after it.
    pub(crate) async fn signing_key(&self) -> Result<Arc<SigningKey>, IssueError> {
        let store = match &self.source {
            Source::Static { signing, .. } => return Ok(signing.clone()),
            Source::Store(store) => store,
        };
        if let Some(key) = self.usable() {
            // A next key that could not be published before is tried again, by one caller.
            if self.next_wanted()
                && let Ok(_guard) = self.rotating.try_lock()
                && self.next_wanted()
            {
                self.publish_next(store).await;
            }
            return Ok(key);
        }
        let _guard = self.rotating.lock().await;
        if let Some(key) = self.usable() {
            return Ok(key);
        }
        let key = match self.promote_next() {
            Some(key) => key,
            None => self.generate_current(store).await?,
        };
        // Housekeeping on rotation: expired public keys leave the store (and the JWKS).
        match store.prune_public_keys(now() as i64).await {
            Ok(0) => {}
            Ok(pruned) => self.auditor.record_lifecycle(
                EventKind::KeysPruned,
                &self.service_id,
                "keys_pruned",
                |e| e.message = format!("{pruned} expired public key(s) left the store"),
            ),
            Err(e) => {
                tracing::warn!(target: "s2s_auth::keys", error = %e, "pruning expired keys failed");
            }
        }
        self.publish_next(store).await;
        Ok(key)
    }

    /// Makes the next key the current one, if it is still published long enough: it signs
    /// for one key duration (less if it waited long for its turn), and stays published for
    /// two more, so tokens signed at the end of its window verify for their whole life.
    fn promote_next(&self) -> Option<Arc<SigningKey>> {
        let mut keys = self.keys.write().unwrap_or_else(PoisonError::into_inner);
        let next = keys.next.take()?;
        let now = now();
        let duration = self.key_duration.as_secs();
        let sign_until = (now + duration).min(next.published_until.saturating_sub(2 * duration));
        if sign_until < now + duration / 2 {
            // Its turn came too late (nothing signed for a long time): a fresh key instead.
            return None;
        }
        let key = Arc::new(SigningKey {
            kid: next.kid,
            key: next.key,
            sign_until,
        });
        keys.current = Some(key.clone());
        drop(keys);
        // Its generation and publication were audited a key duration ago; an audit event of
        // its own for the rotation needs a new `EventKind` (the audit module's).
        tracing::info!(target: "s2s_auth::keys", kid = %key.kid, sign_until, "the next signing key signs from now on");
        Some(key)
    }

    /// A new current key, published now and signing at once (there was no next key).
    async fn generate_current(
        &self,
        store: &Arc<dyn Store>,
    ) -> Result<Arc<SigningKey>, IssueError> {
        let created = now();
        let duration = self.key_duration.as_secs();
        let sign_until = created + duration;
        // Published for three key durations: tokens signed at the very end of the signing
        // window still verify for their whole life.
        let (kid, key) = self
            .generate(store, sign_until, created + 3 * duration)
            .await?;
        let key = Arc::new(SigningKey {
            kid,
            key,
            sign_until,
        });
        self.keys
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .current = Some(key.clone());
        Ok(key)
    }

    /// Publishes the key that signs after the current one. A failure is logged and tried
    /// again later: the current key still signs, and the rotation falls back to a key
    /// published as it starts to sign.
    async fn publish_next(&self, store: &Arc<dyn Store>) {
        let created = now();
        let duration = self.key_duration.as_secs();
        // Its turn comes in at most one key duration; then it signs for one and stays
        // published for two more.
        let published_until = created + 4 * duration;
        match self
            .generate(store, created + 2 * duration, published_until)
            .await
        {
            Ok((kid, key)) => {
                self.keys
                    .write()
                    .unwrap_or_else(PoisonError::into_inner)
                    .next = Some(NextKey {
                    kid,
                    key,
                    published_until,
                });
            }
            Err(e) => {
                tracing::warn!(target: "s2s_auth::keys", error = %e, "publishing the next signing key failed; retrying later");
                self.keys
                    .write()
                    .unwrap_or_else(PoisonError::into_inner)
                    .next_retry_at = created + NEXT_RETRY_SECS;
            }
        }
    }

    /// Generates a key pair and stores its public half (published until `published_until`),
    /// also in the in-memory copy of the JWKS, so this process serves it at once.
    async fn generate(
        &self,
        store: &Arc<dyn Store>,
        sign_until: u64,
        published_until: u64,
    ) -> Result<(String, EncodingKey), IssueError> {
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .map_err(|_| IssueError::Signing("key generation failed".to_owned()))?;
        let key = EncodingKey::from_ec_der(pkcs8.as_ref());
        let kid = uuid::Uuid::new_v4().to_string();
        let mut jwk = Jwk::from_encoding_key(&key, Algorithm::ES256)
            .map_err(|e| IssueError::Signing(e.to_string()))?;
        jwk.common.key_id = Some(kid.clone());
        jwk.common.public_key_use = Some(jsonwebtoken::jwk::PublicKeyUse::Signature);
        let jwk = serde_json::to_value(&jwk).map_err(|e| IssueError::Signing(e.to_string()))?;
        self.audit_key(EventKind::KeyGenerated, "key_generated", &kid, sign_until);
        let record = PublicKeyRecord {
            service_id: self.service_id.clone(),
            kid: kid.clone(),
            jwk,
            expires_at: published_until as i64,
        };
        store.put_public_key(&record).await?;
        let mut own = self.own.write().unwrap_or_else(PoisonError::into_inner);
        let now = now() as i64;
        own.retain(|r| r.expires_at > now);
        own.push(record);
        drop(own);
        self.audit_key(
            EventKind::KeyPublished,
            "key_published",
            &kid,
            published_until,
        );
        Ok((kid, key))
    }

    fn audit_key(&self, kind: EventKind, reason: &'static str, kid: &str, until: u64) {
        self.auditor
            .record_lifecycle(kind, &self.service_id, reason, |e| {
                e.kid = Some(kid.to_owned());
                e.expires_at = time::OffsetDateTime::from_unix_timestamp(until as i64).ok();
            });
    }
}
