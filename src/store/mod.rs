//! The key store: where each service's published public keys live, so that every replica
//! serves the same JWKS and a token signed by any replica verifies (DESIGN.md sections 4
//! and 7).
//!
//! One [`Store`] trait, three backends:
//!
//! | backend | for | state |
//! |---|---|---|
//! | [`MemoryStore`] | tests, a single process that may forget its keys on restart | a map in memory |
//! | [`SqliteStore`] | the embedded default: one process, keys survive restarts | a SQLite file |
//! | [`PostgresStore`] | several replicas sharing keys | tables in the schema `s2s_auth` |
//!
//! The SQL backends run their migrations when they open (embedded in the binary, applied
//! once, safe when several replicas start at the same time).
//!
//! ```
//! use s2s_auth::store::{PublicKeyRecord, SqliteStore, Store};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), s2s_auth::store::StoreError> {
//! let store = SqliteStore::open(":memory:").await?; // or a file: "s2s-auth.sqlite"
//! let key = PublicKeyRecord {
//!     service_id: "catalog".into(),
//!     kid: "3b2d1c4e".into(),
//!     jwk: serde_json::json!({ "kty": "EC", "crv": "P-256", "kid": "3b2d1c4e",
//!                              "x": "...", "y": "...", "alg": "ES256", "use": "sig" }),
//!     expires_at: 2_000_000_000,
//! };
//! store.put_public_key(&key).await?;
//! store.put_public_key(&key).await?; // idempotent
//! assert_eq!(store.public_keys("catalog", 1_700_000_000).await?, vec![key]);
//! assert_eq!(store.prune_public_keys(2_000_000_000).await?, 1); // expired at that time
//! # Ok(())
//! # }
//! ```
//!
//! What the stores refuse ([`StoreError::Invalid`]): a JWK with private members (`d`, the
//! RSA factors, or a symmetric `k`), so a private key can never be published by mistake; a
//! JWK whose `kid` differs from the record's; empty or oversized ids; and a *different* key
//! under a `(service_id, kid)` that is already stored (published keys never change, so a
//! key a peer has cached cannot be swapped under it).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::secret::SecretString;

mod memory;
mod postgres;
mod sqlite;

pub use memory::MemoryStore;
pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

/// A published public key of one service (a JWK, public parts only).
///
/// Stored under `(service_id, kid)`; listed by [`Store::public_keys`] while
/// `expires_at > now`.
#[derive(Clone, Debug, PartialEq)]
pub struct PublicKeyRecord {
    /// The service that signs with the private half, e.g. `catalog`.
    pub service_id: String,
    /// The key id tokens name in their header (`kid`).
    pub kid: String,
    /// The public JWK. A JWK holding a private member (`d`, `p`, `q`, `dp`, `dq`, `qi`,
    /// `oth`, or a symmetric `k`) is refused with [`StoreError::Invalid`]. When it has a
    /// `kid` member, it must equal [`kid`](Self::kid).
    pub jwk: serde_json::Value,
    /// Unix seconds: the key is listed while `expires_at > now`.
    pub expires_at: i64,
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store cannot be reached or failed (connection, I/O, timeout, migrations). Worth a
    /// retry; the JWKS endpoint answers 503 for it. The message never holds a password from
    /// a connection URL.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The data was refused (see [`PublicKeyRecord`]) or what the store holds cannot be read
    /// back. Retrying does not help.
    #[error("invalid data: {0}")]
    Invalid(String),
}

/// The future a [`Store`] method returns.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// Where published public keys live. One trait for keys now; later versions add service
/// accounts, token digests and revocations.
///
/// Implementations are shared between tasks (`Arc<dyn Store>`) and, for a shared backend,
/// between processes: every write is one atomic statement, so concurrent puts of the same
/// key and concurrent prunes are safe.
pub trait Store: Send + Sync + 'static {
    /// Stores a public key. Idempotent on `(service_id, kid)`: storing the same record twice
    /// is `Ok`; storing a *different* record under a stored `(service_id, kid)` is
    /// [`StoreError::Invalid`] (published keys never change).
    fn put_public_key<'a>(&'a self, key: &'a PublicKeyRecord) -> StoreFuture<'a, ()>;

    /// The unexpired public keys of a service (`expires_at > now`), oldest expiry first (ties
    /// by `kid`, byte order).
    fn public_keys<'a>(
        &'a self,
        service_id: &'a str,
        now: i64,
    ) -> StoreFuture<'a, Vec<PublicKeyRecord>>;

    /// Deletes every key with `expires_at <= now` (all services); returns how many.
    fn prune_public_keys(&self, now: i64) -> StoreFuture<'_, u64>;
}

/// An `Arc` of a store is the same store, so one can be shared and handed over as it is.
impl<T: Store + ?Sized> Store for Arc<T> {
    fn put_public_key<'a>(&'a self, key: &'a PublicKeyRecord) -> StoreFuture<'a, ()> {
        (**self).put_public_key(key)
    }

    fn public_keys<'a>(
        &'a self,
        service_id: &'a str,
        now: i64,
    ) -> StoreFuture<'a, Vec<PublicKeyRecord>> {
        (**self).public_keys(service_id, now)
    }

    fn prune_public_keys(&self, now: i64) -> StoreFuture<'_, u64> {
        (**self).prune_public_keys(now)
    }
}

/// Longest `service_id` or `kid` accepted, in bytes.
const MAX_ID_LEN: usize = 255;

/// JWK members that only private (or symmetric) keys have (RFC 7518 section 6). A JWK with
/// any of them is a secret: publishing it would hand out the signing key.
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// The checks every backend applies before writing, so all of them accept the same records.
pub(crate) fn validate(key: &PublicKeyRecord) -> Result<(), StoreError> {
    validate_id("service_id", &key.service_id)?;
    validate_id("kid", &key.kid)?;
    let Some(jwk) = key.jwk.as_object() else {
        return Err(StoreError::Invalid("jwk must be a JSON object".into()));
    };
    if let Some(member) = PRIVATE_MEMBERS.iter().find(|m| jwk.contains_key(**m)) {
        return Err(StoreError::Invalid(format!(
            "jwk has the private member `{member}`; only public keys are stored"
        )));
    }
    if let Some(kid) = jwk.get("kid")
        && kid.as_str() != Some(key.kid.as_str())
    {
        return Err(StoreError::Invalid(
            "jwk `kid` differs from the record's kid".into(),
        ));
    }
    // PostgreSQL cannot hold NUL in text or JSONB; refused everywhere so every backend
    // accepts exactly the same records.
    if has_nul(&key.jwk) {
        return Err(StoreError::Invalid("jwk contains a NUL character".into()));
    }
    Ok(())
}

fn validate_id(name: &str, value: &str) -> Result<(), StoreError> {
    if value.is_empty() || value.len() > MAX_ID_LEN || value.chars().any(char::is_control) {
        return Err(StoreError::Invalid(format!(
            "{name} must be 1 to {MAX_ID_LEN} bytes without control characters"
        )));
    }
    Ok(())
}

fn has_nul(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::String(s) => s.contains('\0'),
        serde_json::Value::Array(items) => items.iter().any(has_nul),
        serde_json::Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}

/// The answer to a put that met an existing row: `Ok` when it is the same record.
pub(crate) fn same_or_conflict(
    key: &PublicKeyRecord,
    stored_jwk: &serde_json::Value,
    stored_expires_at: i64,
) -> Result<(), StoreError> {
    if *stored_jwk == key.jwk && stored_expires_at == key.expires_at {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "a different key is already stored for service `{}` with kid `{}`; published keys never change",
            key.service_id, key.kid
        )))
    }
}

/// Reads a JWK back from its stored text.
pub(crate) fn parse_jwk(text: &str) -> Result<serde_json::Value, StoreError> {
    serde_json::from_str(text)
        .map_err(|e| StoreError::Invalid(format!("stored jwk is not valid JSON: {e}")))
}

/// Maps a database error: refused data is `Invalid`, everything else `Unavailable`.
/// `redact` removes secrets (a password from the URL) from the message.
pub(crate) fn db_error(e: sqlx::Error, redact: impl Fn(String) -> String) -> StoreError {
    use sqlx::Error as E;
    match &e {
        E::Database(db)
            if db.kind() != sqlx::error::ErrorKind::Other
                // PostgreSQL class 22: data exception (a value it cannot store).
                || db.code().is_some_and(|c| c.len() == 5 && c.starts_with("22")) =>
        {
            StoreError::Invalid(redact(e.to_string()))
        }
        E::RowNotFound
        | E::TypeNotFound { .. }
        | E::ColumnIndexOutOfBounds { .. }
        | E::ColumnNotFound(_)
        | E::ColumnDecode { .. }
        | E::Decode(_)
        | E::Encode(_) => StoreError::Invalid(redact(e.to_string())),
        _ => StoreError::Unavailable(redact(e.to_string())),
    }
}

/// A key store named by configuration (`backend.database`, `backend.auth.pluginKeyStore`),
/// opened by `AuthBuilder::build_async`.
#[derive(Debug)]
pub(crate) enum StoreSpec {
    /// [`SqliteStore`] on this file (or `:memory:`).
    Sqlite(String),
    /// [`PostgresStore`] at this URL (it may hold a password).
    Postgres(SecretString),
}

impl StoreSpec {
    /// Opens (and migrates) the store.
    pub(crate) async fn open(&self) -> Result<Arc<dyn Store>, StoreError> {
        Ok(match self {
            StoreSpec::Sqlite(path) => {
                // Said at start, with the full path: a service started without
                // `backend.database` keeps its keys in the working directory, and an
                // operator must be able to find (and back up, or not commit) that file.
                let shown = std::path::absolute(path)
                    .map_or_else(|_| path.clone(), |p| p.display().to_string());
                tracing::info!(target: "s2s_auth::keys", path = %shown, "plugin keys kept in SQLite");
                Arc::new(SqliteStore::open(path).await?)
            }
            StoreSpec::Postgres(url) => {
                Arc::new(PostgresStore::connect(url.expose_secret()).await?)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(jwk: serde_json::Value) -> PublicKeyRecord {
        PublicKeyRecord {
            service_id: "catalog".into(),
            kid: "k1".into(),
            jwk,
            expires_at: 10,
        }
    }

    #[test]
    fn refuses_private_members() {
        for member in PRIVATE_MEMBERS {
            let mut jwk = serde_json::json!({ "kty": "EC", "x": "a", "y": "b" });
            jwk[member] = serde_json::json!("secret");
            assert!(matches!(
                validate(&record(jwk)),
                Err(StoreError::Invalid(m)) if m.contains(member)
            ));
        }
    }

    #[test]
    fn checks_kid_ids_and_shape() {
        assert!(validate(&record(serde_json::json!({ "kid": "k1" }))).is_ok());
        assert!(validate(&record(serde_json::json!({ "kid": "k2" }))).is_err());
        assert!(validate(&record(serde_json::json!(["kty"]))).is_err());
        assert!(validate(&record(serde_json::json!({ "x": "a\0" }))).is_err());
        let mut r = record(serde_json::json!({}));
        r.service_id = String::new();
        assert!(validate(&r).is_err());
        r.service_id = "a".repeat(MAX_ID_LEN + 1);
        assert!(validate(&r).is_err());
        r.service_id = "cat\nalog".into();
        assert!(validate(&r).is_err());
    }

    #[test]
    fn debug_of_a_postgres_spec_hides_the_url() {
        let spec = StoreSpec::Postgres(SecretString::new("postgres://u:hunter2@db/x"));
        assert!(!format!("{spec:?}").contains("hunter2"));
    }
}
