//! Signing keys for plugin-to-plugin tokens: ES256 pairs generated with aws-lc-rs, a new one
//! every `keyDuration`, each public half stored (and so published) for 3 × `keyDuration`.
//!
//! The order matters: a key's public half is written to the [`Store`] **before** the key
//! signs anything, so a peer that receives a token can always find its key. With a shared
//! store (PostgreSQL) every replica publishes its own keys and the JWKS lists them all, so
//! a token signed by any replica verifies against the service's one JWKS.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

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

/// Generates, publishes and rotates this service's signing keys.
pub(crate) struct KeyManager {
    service_id: String,
    source: Source,
    key_duration: Duration,
    current: RwLock<Option<Arc<SigningKey>>>,
    rotating: tokio::sync::Mutex<()>,
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
            current: RwLock::new(None),
            rotating: tokio::sync::Mutex::new(()),
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
            current: RwLock::new(None),
            rotating: tokio::sync::Mutex::new(()),
            auditor,
        })
    }

    /// The public keys to publish now.
    pub(crate) async fn published(&self) -> Result<Vec<serde_json::Value>, StoreError> {
        match &self.source {
            Source::Static { published, .. } => Ok(published.clone()),
            Source::Store(store) => Ok(store
                .public_keys(&self.service_id, now() as i64)
                .await?
                .into_iter()
                .map(|r| r.jwk)
                .collect()),
        }
    }

    pub(crate) fn key_duration(&self) -> Duration {
        self.key_duration
    }

    fn usable(&self) -> Option<Arc<SigningKey>> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .filter(|k| k.sign_until > now())
    }

    /// The key to sign with now, rotating (and publishing) a new one when due.
    pub(crate) async fn signing_key(&self) -> Result<Arc<SigningKey>, IssueError> {
        let store = match &self.source {
            Source::Static { signing, .. } => return Ok(signing.clone()),
            Source::Store(store) => store,
        };
        if let Some(key) = self.usable() {
            return Ok(key);
        }
        let _guard = self.rotating.lock().await;
        if let Some(key) = self.usable() {
            return Ok(key);
        }
        let key = self.generate(store).await?;
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Some(key.clone());
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
        Ok(key)
    }

    async fn generate(&self, store: &Arc<dyn Store>) -> Result<Arc<SigningKey>, IssueError> {
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
        let created = now();
        let duration = self.key_duration.as_secs();
        let sign_until = created + duration;
        self.audit_key(EventKind::KeyGenerated, "key_generated", &kid, sign_until);
        // Published before first use, for three key durations: tokens signed at the very end
        // of the signing window still verify for their whole life.
        let published_until = created + 3 * duration;
        store
            .put_public_key(&PublicKeyRecord {
                service_id: self.service_id.clone(),
                kid: kid.clone(),
                jwk,
                expires_at: published_until as i64,
            })
            .await?;
        self.audit_key(
            EventKind::KeyPublished,
            "key_published",
            &kid,
            published_until,
        );
        Ok(Arc::new(SigningKey {
            kid,
            key,
            sign_until,
        }))
    }

    fn audit_key(&self, kind: EventKind, reason: &str, kid: &str, until: u64) {
        self.auditor
            .record_lifecycle(kind, &self.service_id, reason, |e| {
                e.kid = Some(kid.to_owned());
                e.expires_at = time::OffsetDateTime::from_unix_timestamp(until as i64).ok();
            });
    }
}
