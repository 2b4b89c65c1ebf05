//! The store: where state shared by every replica lives (DESIGN.md sections 4 and 7): each
//! service's published public keys, so that every replica serves the same JWKS and a token
//! signed by any replica verifies; the revocations of just-in-time on-behalf-of tokens
//! (by `jti`), with a record of each such token issued, so that a token revoked on one
//! replica is refused by all of them; and service accounts with the digests of their tokens
//! (never the tokens), so that an account disabled on one replica is refused by all.
//!
//! One [`Store`] trait, three backends:
//!
//! | backend | for | state | revocations seen by other replicas |
//! |---|---|---|---|
//! | [`MemoryStore`] | tests, a single process that may forget its keys on restart | a map in memory | at once, by users of the same `MemoryStore` ([`Store::revocation_signal`]) |
//! | [`SqliteStore`] | the embedded default: one process, keys survive restarts | a SQLite file | by polling the file |
//! | [`PostgresStore`] | several replicas sharing keys | tables in the schema `s2s_auth` | at once (`LISTEN`/`NOTIFY`), and by polling |
//!
//! The SQL backends run their migrations when they open (embedded in the binary, applied
//! once, safe when several replicas start at the same time).
//!
//! | method | what it does |
//! |---|---|
//! | [`put_public_key`](Store::put_public_key), [`public_keys`](Store::public_keys), [`prune_public_keys`](Store::prune_public_keys) | published keys |
//! | [`record_issued`](Store::record_issued), [`issued_token`](Store::issued_token) | which user a just-in-time token acts for, and until when (never the token itself) |
//! | [`revoke`](Store::revoke), [`revocations`](Store::revocations) | revoked `jti`s, until the token would have expired anyway |
//! | [`prune_revocations`](Store::prune_revocations) | forgets expired revocations and issued-token records |
//! | [`create_account`](Store::create_account), [`update_account`](Store::update_account), [`delete_account`](Store::delete_account), [`account`](Store::account) | service accounts ([`ServiceAccount`]) |
//! | [`create_account_token`](Store::create_account_token), [`account_tokens`](Store::account_tokens), [`delete_account_token`](Store::delete_account_token) | their tokens ([`AccountToken`]: a SHA-256 digest, never the token) |
//! | [`touch_account_tokens`](Store::touch_account_tokens) | last-used times, a batch per write |
//! | [`accounts_snapshot`](Store::accounts_snapshot) | every account and token, read consistently (what each replica verifies against) |
//! | [`revocation_signal`](Store::revocation_signal) | wakes a caller when another process may have revoked a token or changed an account |
//!
//! The revocation and account methods have default implementations that answer
//! [`StoreError::Unavailable`] (and `None` for the signal), so a store written before them
//! still compiles; such a store cannot back token revocation or service accounts.
//!
//! ```
//! use s2s_auth::store::{IssuedToken, PublicKeyRecord, Revocation, SqliteStore, Store};
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
//!
//! // A just-in-time token issued for jane, then revoked before its `exp`.
//! let issued = IssuedToken {
//!     jti: "5f0c2a9e".into(),
//!     subject: "user:default/jane".into(),
//!     expires_at: 1_700_000_300,
//! };
//! store.record_issued(&issued).await?;
//! assert_eq!(store.issued_token("5f0c2a9e", 1_700_000_000).await?, Some(issued));
//! let revoked = Revocation { jti: "5f0c2a9e".into(), expires_at: 1_700_000_300 };
//! store.revoke(&revoked).await?;
//! store.revoke(&revoked).await?; // idempotent
//! assert_eq!(store.revocations(1_700_000_000).await?, vec![revoked]);
//! // Once the token has expired, neither the record nor the revocation is needed.
//! assert_eq!(store.prune_revocations(1_700_000_300).await?, 2);
//! # Ok(())
//! # }
//! ```
//!
//! What the stores refuse ([`StoreError::Invalid`]): a JWK with private members (`d`, the
//! RSA factors, or a symmetric `k`), so a private key can never be published by mistake; a
//! JWK whose `kid` differs from the record's; empty or oversized ids (`service_id`, `kid`,
//! `jti`, `subject`: 1 to 255 bytes, no control characters); a *different* key under a
//! `(service_id, kid)` that is already stored (published keys never change, so a key a peer
//! has cached cannot be swapped under it); and a second [`IssuedToken`] under a `jti` that
//! is already recorded (`jti`s are random: a repeat is a bug or an attack).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::secret::SecretString;

mod accounts;
mod memory;
mod pg_signal;
mod postgres;
mod sqlite;

pub use accounts::{
    AccountToken, AccountsSnapshot, MAX_ACCOUNTS_LISTED, MAX_DESCRIPTION_CHARS, ServiceAccount,
    TokenDigest, is_valid_account_name,
};
pub(crate) use accounts::{
    account_exists, bounded_snapshot, is_valid_token_id, no_such_account, permissions_from_json,
    permissions_to_json, token_exists, validate_account, validate_account_token,
};
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

/// A revoked just-in-time on-behalf-of token, by its `jti`.
///
/// Stored by [`Store::revoke`]; listed by [`Store::revocations`] while `expires_at > now`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Revocation {
    /// The token's `jti` claim: 1 to 255 bytes, no control characters.
    pub jti: String,
    /// Unix seconds: the token's own `exp`. Kept until then; after it the token is refused anyway.
    pub expires_at: i64,
}

/// A just-in-time on-behalf-of token this deployment issued (never the token itself).
///
/// Stored by [`Store::record_issued`], read by [`Store::issued_token`], so a revocation by
/// `jti` can check who may revoke it and until when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuedToken {
    /// The token's `jti` claim: 1 to 255 bytes, no control characters.
    pub jti: String,
    /// The user it acts for (`user:default/jane`): 1 to 255 bytes, no control characters.
    pub subject: String,
    /// Unix seconds, the token's `exp`.
    pub expires_at: i64,
}

/// The most live revocations [`Store::revocations`] lists. A store holding more answers
/// [`StoreError::Unavailable`] rather than a partial list: a replica that read only part of
/// the revocations could let a revoked token through.
pub const MAX_REVOCATIONS_LISTED: usize = 100_000;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store cannot be reached or failed (connection, I/O, timeout, migrations). Worth a
    /// retry; the JWKS endpoint answers 503 for it. The message never holds a password from
    /// a connection URL.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The data was refused (see [`PublicKeyRecord`], [`Revocation`], [`IssuedToken`] and the
    /// [module docs](self)) or what the store holds cannot be read back. Retrying does not
    /// help.
    #[error("invalid data: {0}")]
    Invalid(String),
    /// The write would replace something it must not: a service account or account token
    /// under a name (or id, or digest) already stored. The admin API answers 409.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The write is about a service account (or token) that is not stored. The admin API
    /// answers 404.
    #[error("not found: {0}")]
    NotFound(String),
}

/// The future a [`Store`] method returns.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// Where published public keys, token revocations and service accounts live (see the
/// [module docs](self)).
///
/// Implementations are shared between tasks (`Arc<dyn Store>`) and, for a shared backend,
/// between processes: every write is atomic, so concurrent puts of the same key, concurrent
/// revocations of the same `jti` and concurrent prunes are safe.
///
/// The revocation methods have default implementations (they answer
/// [`StoreError::Unavailable`], the signal `None`) so that a store written before they
/// existed still compiles; it cannot back token revocation until it implements them.
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

    /// Revokes `jti` until `expires_at`. Idempotent: revoking a revoked jti is Ok (the later
    /// expires_at is kept). Validates jti like ids (1..=255 bytes, no control chars) ->
    /// [`StoreError::Invalid`].
    ///
    /// A shared store makes the revocation visible to every process before this returns
    /// (and, where it has a [signal](Self::revocation_signal), announces it after it is
    /// committed, never before).
    fn revoke<'a>(&'a self, revocation: &'a Revocation) -> StoreFuture<'a, ()> {
        let _ = revocation;
        no_revocations()
    }

    /// Every revocation with `expires_at > now`, ordered by `jti` (byte order).
    ///
    /// A full snapshot, not a cursor: PostgreSQL sequences are not commit-ordered, so
    /// "everything after seq N" can miss a revocation that commits late. Revocations live at
    /// most an hour, so the snapshot stays small. At most [`MAX_REVOCATIONS_LISTED`] rows;
    /// more is `StoreError::Unavailable("too many live revocations")` (fail closed, never a
    /// partial list).
    fn revocations(&self, now: i64) -> StoreFuture<'_, Vec<Revocation>> {
        let _ = now;
        no_revocations()
    }

    /// Deletes revocations with `expires_at <= now`, and [issued-token
    /// records](Self::record_issued) with `expires_at <= now`; returns how many rows in all.
    fn prune_revocations(&self, now: i64) -> StoreFuture<'_, u64> {
        let _ = now;
        no_revocations()
    }

    /// Records an issued token. A second record under the same jti is
    /// [`StoreError::Invalid`] (jtis are random; a repeat is a bug or an attack), whether or
    /// not the first has expired. Validates jti and subject like ids.
    fn record_issued<'a>(&'a self, token: &'a IssuedToken) -> StoreFuture<'a, ()> {
        let _ = token;
        no_revocations()
    }

    /// The unexpired record of `jti` (`expires_at > now`), if any. A `jti` that could not
    /// have been recorded (empty, too long, a control character) has none.
    fn issued_token<'a>(&'a self, jti: &'a str, now: i64) -> StoreFuture<'a, Option<IssuedToken>> {
        let _ = (jti, now);
        no_revocations()
    }

    /// Stores a new service account. [`StoreError::Conflict`] when the name is taken;
    /// [`StoreError::Invalid`] for a bad name or description. Announced on the
    /// [signal](Self::revocation_signal), like every account and token write below.
    fn create_account<'a>(&'a self, account: &'a ServiceAccount) -> StoreFuture<'a, ()> {
        let _ = account;
        no_accounts()
    }

    /// Replaces a stored account's description, permissions, `enabled` and `updated_at`
    /// (its `created_at` is kept). [`StoreError::NotFound`] when there is none.
    fn update_account<'a>(&'a self, account: &'a ServiceAccount) -> StoreFuture<'a, ()> {
        let _ = account;
        no_accounts()
    }

    /// Deletes an account and every token of it; `false` when there was none.
    fn delete_account<'a>(&'a self, name: &'a str) -> StoreFuture<'a, bool> {
        let _ = name;
        no_accounts()
    }

    /// The account named `name`, if stored.
    fn account<'a>(&'a self, name: &'a str) -> StoreFuture<'a, Option<ServiceAccount>> {
        let _ = name;
        no_accounts()
    }

    /// Stores a new token of a stored account. [`StoreError::NotFound`] when the account is
    /// not stored; [`StoreError::Conflict`] when its id, its name within the account or its
    /// digest is taken.
    fn create_account_token<'a>(&'a self, token: &'a AccountToken) -> StoreFuture<'a, ()> {
        let _ = token;
        no_accounts()
    }

    /// The tokens of one account, by name (byte order).
    fn account_tokens<'a>(&'a self, account: &'a str) -> StoreFuture<'a, Vec<AccountToken>> {
        let _ = account;
        no_accounts()
    }

    /// Deletes (revokes) one token of an account; `false` when the account has none by
    /// that id.
    fn delete_account_token<'a>(&'a self, account: &'a str, id: &'a str) -> StoreFuture<'a, bool> {
        let _ = (account, id);
        no_accounts()
    }

    /// Records when tokens were last used, in one write: each `(token id, unix seconds)`
    /// raises that token's `last_used_at` (never lowers it). Unknown ids are skipped. Not
    /// announced on the signal (it changes no verification).
    fn touch_account_tokens<'a>(&'a self, used: &'a [(String, i64)]) -> StoreFuture<'a, ()> {
        let _ = used;
        no_accounts()
    }

    /// Every account and token, as one consistent read (accounts by name, tokens by
    /// account then name). At most [`MAX_ACCOUNTS_LISTED`] of each; more is
    /// `StoreError::Unavailable("too many service accounts or tokens")`.
    fn accounts_snapshot(&self) -> StoreFuture<'_, AccountsSnapshot> {
        no_accounts()
    }

    /// Wakes the caller when another process may have revoked a token or
    /// changed a service account or its tokens (PostgreSQL
    /// LISTEN/NOTIFY). None: the store has no such signal; the caller polls.
    ///
    /// The value counts wake-ups and means nothing else: on a change, read
    /// [`revocations`](Self::revocations) and [`accounts_snapshot`](Self::accounts_snapshot)
    /// again. A store may also bump it when it may have
    /// missed a revocation (PostgreSQL: after a reconnect). Needs a tokio runtime where the
    /// store runs a task for it; without one it is `None`.
    fn revocation_signal(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        None
    }
}

/// The answer of the default service-account methods.
fn no_accounts<T: Send + 'static>() -> StoreFuture<'static, T> {
    Box::pin(std::future::ready(Err(StoreError::Unavailable(
        "this store keeps no service accounts".into(),
    ))))
}

/// The answer of the default revocation methods.
fn no_revocations<T: Send + 'static>() -> StoreFuture<'static, T> {
    Box::pin(std::future::ready(Err(StoreError::Unavailable(
        "this store keeps no revocations".into(),
    ))))
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

    fn revoke<'a>(&'a self, revocation: &'a Revocation) -> StoreFuture<'a, ()> {
        (**self).revoke(revocation)
    }

    fn revocations(&self, now: i64) -> StoreFuture<'_, Vec<Revocation>> {
        (**self).revocations(now)
    }

    fn prune_revocations(&self, now: i64) -> StoreFuture<'_, u64> {
        (**self).prune_revocations(now)
    }

    fn record_issued<'a>(&'a self, token: &'a IssuedToken) -> StoreFuture<'a, ()> {
        (**self).record_issued(token)
    }

    fn issued_token<'a>(&'a self, jti: &'a str, now: i64) -> StoreFuture<'a, Option<IssuedToken>> {
        (**self).issued_token(jti, now)
    }

    fn create_account<'a>(&'a self, account: &'a ServiceAccount) -> StoreFuture<'a, ()> {
        (**self).create_account(account)
    }

    fn update_account<'a>(&'a self, account: &'a ServiceAccount) -> StoreFuture<'a, ()> {
        (**self).update_account(account)
    }

    fn delete_account<'a>(&'a self, name: &'a str) -> StoreFuture<'a, bool> {
        (**self).delete_account(name)
    }

    fn account<'a>(&'a self, name: &'a str) -> StoreFuture<'a, Option<ServiceAccount>> {
        (**self).account(name)
    }

    fn create_account_token<'a>(&'a self, token: &'a AccountToken) -> StoreFuture<'a, ()> {
        (**self).create_account_token(token)
    }

    fn account_tokens<'a>(&'a self, account: &'a str) -> StoreFuture<'a, Vec<AccountToken>> {
        (**self).account_tokens(account)
    }

    fn delete_account_token<'a>(&'a self, account: &'a str, id: &'a str) -> StoreFuture<'a, bool> {
        (**self).delete_account_token(account, id)
    }

    fn touch_account_tokens<'a>(&'a self, used: &'a [(String, i64)]) -> StoreFuture<'a, ()> {
        (**self).touch_account_tokens(used)
    }

    fn accounts_snapshot(&self) -> StoreFuture<'_, AccountsSnapshot> {
        (**self).accounts_snapshot()
    }

    fn revocation_signal(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        (**self).revocation_signal()
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

/// The checks before a revocation is written, the same in every backend.
pub(crate) fn validate_revocation(revocation: &Revocation) -> Result<(), StoreError> {
    validate_id("jti", &revocation.jti)
}

/// The checks before an issued token is recorded, the same in every backend.
pub(crate) fn validate_issued(token: &IssuedToken) -> Result<(), StoreError> {
    validate_id("jti", &token.jti)?;
    validate_id("subject", &token.subject)
}

/// Whether `jti` could have been stored at all. A lookup of one that could not has no
/// answer, in every backend alike (PostgreSQL would refuse a NUL in the query itself).
pub(crate) fn storable_jti(jti: &str) -> bool {
    validate_id("jti", jti).is_ok()
}

/// A full listing of live revocations, or the refusal to give a partial one. The backends
/// read at most [`MAX_REVOCATIONS_LISTED`]` + 1` rows and pass them here.
pub(crate) fn bounded(listed: Vec<Revocation>) -> Result<Vec<Revocation>, StoreError> {
    if listed.len() > MAX_REVOCATIONS_LISTED {
        return Err(StoreError::Unavailable("too many live revocations".into()));
    }
    Ok(listed)
}

/// The refusal of a second record under a recorded `jti`.
pub(crate) fn repeated_jti() -> StoreError {
    StoreError::Invalid(
        "a token with this jti was already issued; jtis are random, so a repeat is a bug or an attack"
            .into(),
    )
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
#[derive(Clone, Debug)]
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
    fn jtis_and_subjects_are_checked_like_ids() {
        let revocation = |jti: &str| Revocation {
            jti: jti.into(),
            expires_at: 10,
        };
        assert!(validate_revocation(&revocation("5f0c2a9e")).is_ok());
        assert!(validate_revocation(&revocation(&"a".repeat(MAX_ID_LEN))).is_ok());
        for bad in [
            String::new(),
            "a".repeat(MAX_ID_LEN + 1),
            "a\0b".into(),
            "a\nb".into(),
        ] {
            assert!(
                matches!(validate_revocation(&revocation(&bad)), Err(StoreError::Invalid(m)) if m.contains("jti")),
                "{bad:?}"
            );
            assert!(!storable_jti(&bad), "{bad:?}");
        }
        let issued = |jti: &str, subject: &str| IssuedToken {
            jti: jti.into(),
            subject: subject.into(),
            expires_at: 10,
        };
        assert!(validate_issued(&issued("j1", "user:default/jane")).is_ok());
        assert!(
            matches!(validate_issued(&issued("j1", "user:default/ja\x1bne")), Err(StoreError::Invalid(m)) if m.contains("subject"))
        );
        assert!(validate_issued(&issued("", "user:default/jane")).is_err());
        assert!(validate_issued(&issued("j1", "")).is_err());
    }

    #[test]
    fn a_listing_over_the_bound_is_refused_whole() {
        let listing = |n: usize| {
            (0..n)
                .map(|i| Revocation {
                    jti: format!("{i:06}"),
                    expires_at: 10,
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(
            bounded(listing(MAX_REVOCATIONS_LISTED)).unwrap().len(),
            MAX_REVOCATIONS_LISTED
        );
        assert!(matches!(
            bounded(listing(MAX_REVOCATIONS_LISTED + 1)),
            Err(StoreError::Unavailable(m)) if m == "too many live revocations"
        ));
    }

    /// A store written before revocations existed: only the key methods.
    struct KeysOnly;

    impl Store for KeysOnly {
        fn put_public_key<'a>(&'a self, _: &'a PublicKeyRecord) -> StoreFuture<'a, ()> {
            Box::pin(async { Ok(()) })
        }
        fn public_keys<'a>(&'a self, _: &'a str, _: i64) -> StoreFuture<'a, Vec<PublicKeyRecord>> {
            Box::pin(async { Ok(Vec::new()) })
        }
        fn prune_public_keys(&self, _: i64) -> StoreFuture<'_, u64> {
            Box::pin(async { Ok(0) })
        }
    }

    #[tokio::test]
    async fn a_store_without_revocations_says_so() {
        let store: Arc<dyn Store> = Arc::new(KeysOnly);
        let unavailable = |r: Result<(), StoreError>| matches!(r, Err(StoreError::Unavailable(m)) if m == "this store keeps no revocations");
        let revocation = Revocation {
            jti: "j".into(),
            expires_at: 10,
        };
        let issued = IssuedToken {
            jti: "j".into(),
            subject: "user:default/jane".into(),
            expires_at: 10,
        };
        // Through the `Arc` forwarding impl, as the crate holds stores.
        assert!(unavailable(store.revoke(&revocation).await));
        assert!(unavailable(store.revocations(0).await.map(drop)));
        assert!(unavailable(store.prune_revocations(0).await.map(drop)));
        assert!(unavailable(store.record_issued(&issued).await));
        assert!(unavailable(store.issued_token("j", 0).await.map(drop)));
        assert!(store.revocation_signal().is_none());
    }

    #[test]
    fn debug_of_a_postgres_spec_hides_the_url() {
        let spec = StoreSpec::Postgres(SecretString::new("postgres://u:hunter2@db/x"));
        assert!(!format!("{spec:?}").contains("hunter2"));
    }
}
