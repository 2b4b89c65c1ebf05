//! [`PostgresStore`]: keys, revocations and service accounts shared by every replica, in
//! the PostgreSQL schema `s2s_auth`.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::{Connection, PgConnection, PgPool, Row};

use tokio::sync::watch;

use super::pg_signal::{CHANNEL, Signal};
use super::{
    AccountToken, AccountsSnapshot, IssuedToken, MAX_ACCOUNTS_LISTED, MAX_REVOCATIONS_LISTED,
    PublicKeyRecord, Revocation, ServiceAccount, Store, StoreError, StoreFuture, TokenDigest,
    account_exists, bounded, bounded_snapshot, db_error, is_valid_account_name, is_valid_token_id,
    no_such_account, parse_jwk, permissions_from_json, permissions_to_json, repeated_jti,
    same_or_conflict, storable_jti, token_exists, validate, validate_account,
    validate_account_token, validate_issued, validate_revocation,
};

/// The PostgreSQL schema, embedded at build time from `migrations/postgres`. Migrations a
/// newer version of this crate applied are ignored, not refused: during a rolling upgrade
/// (or a rollback) replicas of the old version keep starting. Migrations only ever add.
fn migrator() -> Migrator {
    let mut migrator = sqlx::migrate!("./migrations/postgres");
    migrator.set_ignore_missing(true);
    migrator
}

/// The schema that holds this crate's tables and its own `_sqlx_migrations` table. A schema
/// of its own lets the store share a database with an application that runs sqlx
/// migrations too: each keeps its own migration history.
const SCHEMA: &str = "s2s_auth";

/// A session-level advisory lock that serializes setup among replicas starting at once.
/// sqlx's migrator locks the migrations themselves (`pg_advisory_lock` before it touches its
/// history table), but the schema must exist before it runs, and two concurrent
/// `CREATE SCHEMA IF NOT EXISTS` can still fail with a unique violation in PostgreSQL.
const SETUP_LOCK: i64 = 0x0053_3253_5354_4f52; // "\0S2SSTOR"

/// How long one operation waits for a pooled connection (or a new one) before the store
/// reports [`StoreError::Unavailable`]: the JWKS endpoint should answer 503 quickly rather
/// than hang while the database is down.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long [`PostgresStore::connect`] waits for another replica's setup (an advisory lock)
/// before giving up, rather than hang behind a replica that is stuck.
const SET_LOCK_TIMEOUT: &str = "SET lock_timeout = '60s'";

/// Puts sqlx's unqualified `_sqlx_migrations` in [`SCHEMA`].
const SET_SEARCH_PATH: &str = "SET search_path TO s2s_auth";

/// A [`Store`] in PostgreSQL: replicas of one service share keys, so the JWKS any of them
/// serves lists the keys all of them sign with; and revocations and service accounts, so a
/// token revoked or an account disabled on one replica is refused by all of them. Account
/// tokens are stored as their SHA-256, never the token itself.
///
/// [`connect`](Self::connect) creates the schema `s2s_auth` when missing (this needs the
/// `CREATE` privilege on the database; a DBA can instead run
/// `CREATE SCHEMA s2s_auth AUTHORIZATION <user>` once) and applies the migrations it lacks.
/// Several replicas may start at once: setup is serialized by an advisory lock.
///
/// TLS follows the URL's `sslmode` (`prefer` by default; use `sslmode=verify-full` across
/// untrusted networks), with rustls on aws-lc-rs. `Debug` and every error show the user,
/// host, port and database, never the password.
///
/// A revocation, and every change to a service account or its tokens, is announced with
/// `NOTIFY s2s_auth_revocations` in the transaction that stores it (payload: the `jti`, or
/// `account:<name>`); [`revocation_signal`](Store::revocation_signal) listens on that channel
/// (one extra connection per store while anyone holds a receiver), so other replicas
/// re-read at once instead of at their next poll. Recording when tokens were last used
/// ([`touch_account_tokens`](Store::touch_account_tokens)) is not announced.
///
/// ```no_run
/// use std::sync::Arc;
/// use s2s_auth::store::{PostgresStore, Store};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let url = std::env::var("DATABASE_URL")?; // postgres://user:pass@host/db
/// let store: Arc<dyn Store> = Arc::new(PostgresStore::connect(&url).await?);
/// let keys = store.public_keys("catalog", 1_700_000_000).await?;
/// # Ok(())
/// # }
/// ```
pub struct PostgresStore {
    pool: PgPool,
    /// `postgres://user@host:port/database`, for `Debug` and messages: no password.
    target: String,
    /// The LISTEN task behind [`Store::revocation_signal`], started on first use.
    signal: Arc<Signal>,
}

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://user:password@host:port/database`,
    /// with libpq's query parameters such as `sslmode`), creates the schema `s2s_auth` when
    /// missing and applies the migrations it lacks.
    ///
    /// Fails with [`StoreError::Invalid`] for a URL that is not a PostgreSQL URL, and with
    /// [`StoreError::Unavailable`] when the database cannot be reached, refuses the login,
    /// or setup fails. No message contains the password.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let redactor = Redactor::new(url);
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(StoreError::Invalid(
                "expected a postgres:// or postgresql:// URL".into(),
            ));
        }
        let mut options = PgConnectOptions::from_str(url).map_err(|e| {
            StoreError::Invalid(redactor.redact(format!("cannot parse the PostgreSQL URL: {e}")))
        })?;
        if options.get_application_name().is_none() {
            options = options.application_name("s2s-auth");
        }
        let target = describe(&options);
        let unavailable = |what: &str, e: String| {
            StoreError::Unavailable(redactor.redact(format!("{what} {target}: {e}")))
        };
        setup(&options)
            .await
            .map_err(|e| unavailable("cannot set up the key store in", e))?;
        let pool = PgPoolOptions::new()
            .max_connections(5)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(|e| unavailable("cannot connect to", e.to_string()))?;
        Ok(Self {
            pool,
            target,
            signal: Arc::new(Signal::new(redactor)),
        })
    }
}

/// Creates the schema and migrates. Holds [`SETUP_LOCK`] on a connection of its own that is
/// closed at the end, so the lock goes with the session even when a step fails halfway.
async fn setup(options: &PgConnectOptions) -> Result<(), String> {
    let mut conn = tokio::time::timeout(ACQUIRE_TIMEOUT, PgConnection::connect_with(options))
        .await
        .map_err(|_| format!("no connection within {ACQUIRE_TIMEOUT:?}"))?
        .map_err(|e| e.to_string())?;
    let result = match create_schema(&mut conn).await {
        Ok(()) => migrate(options).await,
        Err(e) => Err(e),
    };
    // Closing ends the session, which releases its advisory lock.
    let _ = conn.close().await;
    result
}

async fn create_schema(conn: &mut PgConnection) -> Result<(), String> {
    sqlx::query(SET_LOCK_TIMEOUT)
        .execute(&mut *conn)
        .await
        .map_err(|e| e.to_string())?;
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(SETUP_LOCK)
        .execute(&mut *conn)
        .await
        .map_err(|e| format!("waiting for another replica's setup: {e}"))?;
    // Looked up first: `CREATE SCHEMA IF NOT EXISTS` checks the CREATE privilege even
    // when the schema exists, and a DBA may have created it for a user without that right.
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
            .bind(SCHEMA)
            .fetch_one(&mut *conn)
            .await
            .map_err(|e| e.to_string())?;
    if !exists {
        sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS {SCHEMA}"))
            .execute(&mut *conn)
            .await
            .map_err(|e| {
                format!(
                    "cannot create schema {SCHEMA} ({e}); grant CREATE on the database, or have \
                     an administrator run CREATE SCHEMA {SCHEMA} AUTHORIZATION <user>"
                )
            })?;
    }
    Ok(())
}

/// Runs the migrations on a one-connection pool of their own, closed at the end: sqlx keeps
/// its migration history in an unqualified `_sqlx_migrations` table, and the `search_path`
/// set here puts it in our schema, away from the application's own, without leaving that
/// setting on the store's pooled connections. (sqlx's migrator takes its advisory lock on
/// that connection; closing the pool releases it, even after a failure.)
async fn migrate(options: &PgConnectOptions) -> Result<(), String> {
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .after_connect(|conn, _meta| {
            Box::pin(async move {
                sqlx::query(SET_LOCK_TIMEOUT).execute(&mut *conn).await?;
                sqlx::query(SET_SEARCH_PATH).execute(&mut *conn).await?;
                Ok(())
            })
        })
        .connect_with(options.clone())
        .await
        .map_err(|e| e.to_string())?;
    let result = migrator()
        .run(&pool)
        .await
        .map_err(|e| format!("migrations failed: {e}"));
    pool.close().await;
    result
}

/// `postgres://user@host:port/database`: where the store connects, without secrets.
fn describe(options: &PgConnectOptions) -> String {
    let host = match options.get_socket() {
        Some(socket) => socket.display().to_string(),
        None => options.get_host().to_owned(),
    };
    format!(
        "postgres://{}@{}:{}/{}",
        options.get_username(),
        host,
        options.get_port(),
        options.get_database().unwrap_or("")
    )
}

/// Removes the password a connection URL carries (in its user info or a `password` query
/// parameter, raw and percent-decoded) from messages. The driver's messages should not
/// contain it; this makes sure.
pub(super) struct Redactor {
    secrets: Vec<String>,
}

impl Redactor {
    pub(super) fn new(url: &str) -> Self {
        let mut secrets = Vec::new();
        let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        if let Some((userinfo, _)) = rest[..authority_end].rsplit_once('@')
            && let Some((_, password)) = userinfo.split_once(':')
        {
            secrets.push(password.to_owned());
        }
        if let Some((_, query)) = rest.split_once('?') {
            let query = query.split('#').next().unwrap_or_default();
            for pair in query.split('&') {
                if let Some(("password", value)) = pair.split_once('=') {
                    secrets.push(value.to_owned());
                }
            }
        }
        let decoded: Vec<String> = secrets.iter().map(|s| percent_decode(s)).collect();
        secrets.extend(decoded);
        secrets.retain(|s| !s.is_empty());
        // Longest first, so a password that contains another is replaced whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Self { secrets }
    }

    pub(super) fn redact(&self, mut message: String) -> String {
        for secret in &self.secrets {
            if message.contains(secret.as_str()) {
                message = message.replace(secret.as_str(), "***");
            }
        }
        message
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(hi), Some(lo)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            )
        {
            out.push((hi * 16 + lo) as u8);
            i += 3;
        } else {
            out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("target", &self.target)
            .finish()
    }
}

fn map(e: sqlx::Error) -> StoreError {
    // Statement errors come from an established session: they carry no URL.
    db_error(e, |m| m)
}

/// How [`Store::accounts_snapshot`] reads: both tables from one snapshot of the database.
const BEGIN_SNAPSHOT: &str = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";

/// Wakes the other replicas about a change to the account `name` or its tokens. Sent inside
/// the writing transaction: PostgreSQL delivers it at commit, so no replica is woken to read
/// a change it cannot see yet, and a write that is rolled back wakes none.
async fn announce_account(tx: &mut PgConnection, name: &str) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(CHANNEL)
        .bind(format!("account:{name}"))
        .execute(tx)
        .await
        .map_err(map)?;
    Ok(())
}

fn account_from_row(row: &PgRow) -> Result<ServiceAccount, StoreError> {
    Ok(ServiceAccount {
        name: row.try_get("name").map_err(map)?,
        description: row.try_get("description").map_err(map)?,
        permissions: permissions_from_json(row.try_get("permissions").map_err(map)?)?,
        enabled: row.try_get("enabled").map_err(map)?,
        created_at: row.try_get("created_at").map_err(map)?,
        updated_at: row.try_get("updated_at").map_err(map)?,
    })
}

fn token_from_row(row: &PgRow) -> Result<AccountToken, StoreError> {
    let digest: &str = row.try_get("digest_sha256").map_err(map)?;
    let permissions: Option<&str> = row.try_get("permissions").map_err(map)?;
    Ok(AccountToken {
        id: row.try_get("id").map_err(map)?,
        account: row.try_get("account").map_err(map)?,
        name: row.try_get("name").map_err(map)?,
        digest: TokenDigest::from_hex(digest).ok_or_else(|| {
            StoreError::Invalid("a stored token digest is not 64 hex digits".into())
        })?,
        permissions: permissions.map(permissions_from_json).transpose()?,
        expires_at: row.try_get("expires_at").map_err(map)?,
        created_at: row.try_get("created_at").map_err(map)?,
        last_used_at: row.try_get("last_used_at").map_err(map)?,
    })
}

impl Store for PostgresStore {
    fn put_public_key<'a>(&'a self, key: &'a PublicKeyRecord) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            validate(key)?;
            let jwk = key.jwk.to_string();
            // Insert, or compare with the row that is already there. The loop covers a prune
            // deleting that row between the two statements.
            for _ in 0..3 {
                let inserted = sqlx::query(
                    "INSERT INTO s2s_auth.public_keys (service_id, kid, jwk, expires_at) \
                     VALUES ($1, $2, $3::jsonb, $4) ON CONFLICT (service_id, kid) DO NOTHING",
                )
                .bind(&key.service_id)
                .bind(&key.kid)
                .bind(&jwk)
                .bind(key.expires_at)
                .execute(&self.pool)
                .await
                .map_err(map)?
                .rows_affected();
                if inserted == 1 {
                    return Ok(());
                }
                let stored = sqlx::query(
                    "SELECT jwk::text AS jwk, expires_at FROM s2s_auth.public_keys \
                     WHERE service_id = $1 AND kid = $2",
                )
                .bind(&key.service_id)
                .bind(&key.kid)
                .fetch_optional(&self.pool)
                .await
                .map_err(map)?;
                if let Some(row) = stored {
                    let stored_jwk = parse_jwk(row.try_get("jwk").map_err(map)?)?;
                    return same_or_conflict(
                        key,
                        &stored_jwk,
                        row.try_get("expires_at").map_err(map)?,
                    );
                }
            }
            Err(StoreError::Unavailable(
                "the key was inserted and deleted concurrently; retry".into(),
            ))
        })
    }

    fn public_keys<'a>(
        &'a self,
        service_id: &'a str,
        now: i64,
    ) -> StoreFuture<'a, Vec<PublicKeyRecord>> {
        Box::pin(async move {
            // COLLATE "C": ties ordered by kid bytes, as in the other stores, whatever the
            // database's locale.
            let rows = sqlx::query(
                "SELECT kid, jwk::text AS jwk, expires_at FROM s2s_auth.public_keys \
                 WHERE service_id = $1 AND expires_at > $2 ORDER BY expires_at, kid COLLATE \"C\"",
            )
            .bind(service_id)
            .bind(now)
            .fetch_all(&self.pool)
            .await
            .map_err(map)?;
            rows.iter()
                .map(|row| {
                    Ok(PublicKeyRecord {
                        service_id: service_id.to_owned(),
                        kid: row.try_get("kid").map_err(map)?,
                        jwk: parse_jwk(row.try_get("jwk").map_err(map)?)?,
                        expires_at: row.try_get("expires_at").map_err(map)?,
                    })
                })
                .collect()
        })
    }

    fn prune_public_keys(&self, now: i64) -> StoreFuture<'_, u64> {
        Box::pin(async move {
            let result = sqlx::query("DELETE FROM s2s_auth.public_keys WHERE expires_at <= $1")
                .bind(now)
                .execute(&self.pool)
                .await
                .map_err(map)?;
            Ok(result.rows_affected())
        })
    }

    fn revoke<'a>(&'a self, revocation: &'a Revocation) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            validate_revocation(revocation)?;
            // One transaction: PostgreSQL delivers the notification at commit, so no replica
            // is woken to read a row it cannot see yet (and a rolled-back revoke wakes none).
            let mut tx = self.pool.begin().await.map_err(map)?;
            sqlx::query(
                "INSERT INTO s2s_auth.revocations (jti, expires_at) VALUES ($1, $2) \
                 ON CONFLICT (jti) DO UPDATE \
                 SET expires_at = GREATEST(s2s_auth.revocations.expires_at, EXCLUDED.expires_at)",
            )
            .bind(&revocation.jti)
            .bind(revocation.expires_at)
            .execute(&mut *tx)
            .await
            .map_err(map)?;
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(CHANNEL)
                .bind(&revocation.jti)
                .execute(&mut *tx)
                .await
                .map_err(map)?;
            tx.commit().await.map_err(map)?;
            Ok(())
        })
    }

    fn revocations(&self, now: i64) -> StoreFuture<'_, Vec<Revocation>> {
        Box::pin(async move {
            // One statement, so one snapshot. One row over the bound, to tell "exactly the
            // bound" from "more". COLLATE "C": byte order, as in the other stores.
            let rows = sqlx::query(
                "SELECT jti, expires_at FROM s2s_auth.revocations WHERE expires_at > $1 \
                 ORDER BY jti COLLATE \"C\" LIMIT $2",
            )
            .bind(now)
            .bind(MAX_REVOCATIONS_LISTED as i64 + 1)
            .fetch_all(&self.pool)
            .await
            .map_err(map)?;
            bounded(
                rows.iter()
                    .map(|row| {
                        Ok(Revocation {
                            jti: row.try_get("jti").map_err(map)?,
                            expires_at: row.try_get("expires_at").map_err(map)?,
                        })
                    })
                    .collect::<Result<_, StoreError>>()?,
            )
        })
    }

    fn prune_revocations(&self, now: i64) -> StoreFuture<'_, u64> {
        Box::pin(async move {
            let revocations =
                sqlx::query("DELETE FROM s2s_auth.revocations WHERE expires_at <= $1")
                    .bind(now)
                    .execute(&self.pool)
                    .await
                    .map_err(map)?;
            let issued = sqlx::query("DELETE FROM s2s_auth.issued_tokens WHERE expires_at <= $1")
                .bind(now)
                .execute(&self.pool)
                .await
                .map_err(map)?;
            Ok(revocations.rows_affected() + issued.rows_affected())
        })
    }

    fn record_issued<'a>(&'a self, token: &'a IssuedToken) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            validate_issued(token)?;
            let inserted = sqlx::query(
                "INSERT INTO s2s_auth.issued_tokens (jti, subject, expires_at) \
                 VALUES ($1, $2, $3) ON CONFLICT (jti) DO NOTHING",
            )
            .bind(&token.jti)
            .bind(&token.subject)
            .bind(token.expires_at)
            .execute(&self.pool)
            .await
            .map_err(map)?
            .rows_affected();
            if inserted == 1 {
                Ok(())
            } else {
                Err(repeated_jti())
            }
        })
    }

    fn issued_token<'a>(&'a self, jti: &'a str, now: i64) -> StoreFuture<'a, Option<IssuedToken>> {
        Box::pin(async move {
            if !storable_jti(jti) {
                return Ok(None);
            }
            let row = sqlx::query(
                "SELECT subject, expires_at FROM s2s_auth.issued_tokens \
                 WHERE jti = $1 AND expires_at > $2",
            )
            .bind(jti)
            .bind(now)
            .fetch_optional(&self.pool)
            .await
            .map_err(map)?;
            row.map(|row| {
                Ok(IssuedToken {
                    jti: jti.to_owned(),
                    subject: row.try_get("subject").map_err(map)?,
                    expires_at: row.try_get("expires_at").map_err(map)?,
                })
            })
            .transpose()
        })
    }

    fn create_account<'a>(&'a self, account: &'a ServiceAccount) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            validate_account(account)?;
            let mut tx = self.pool.begin().await.map_err(map)?;
            // The insert itself finds a taken name, so two concurrent creates cannot both
            // succeed.
            let inserted = sqlx::query(
                "INSERT INTO s2s_auth.service_accounts \
                 (name, description, permissions, enabled, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (name) DO NOTHING",
            )
            .bind(&account.name)
            .bind(&account.description)
            .bind(permissions_to_json(&account.permissions))
            .bind(account.enabled)
            .bind(account.created_at)
            .bind(account.updated_at)
            .execute(&mut *tx)
            .await
            .map_err(map)?
            .rows_affected();
            if inserted != 1 {
                return Err(account_exists(&account.name));
            }
            announce_account(&mut tx, &account.name).await?;
            tx.commit().await.map_err(map)?;
            Ok(())
        })
    }

    fn update_account<'a>(&'a self, account: &'a ServiceAccount) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            validate_account(account)?;
            let mut tx = self.pool.begin().await.map_err(map)?;
            // `created_at` is not set: it stays as the account was created.
            let updated = sqlx::query(
                "UPDATE s2s_auth.service_accounts \
                 SET description = $2, permissions = $3, enabled = $4, updated_at = $5 \
                 WHERE name = $1",
            )
            .bind(&account.name)
            .bind(&account.description)
            .bind(permissions_to_json(&account.permissions))
            .bind(account.enabled)
            .bind(account.updated_at)
            .execute(&mut *tx)
            .await
            .map_err(map)?
            .rows_affected();
            if updated != 1 {
                return Err(no_such_account(&account.name));
            }
            announce_account(&mut tx, &account.name).await?;
            tx.commit().await.map_err(map)?;
            Ok(())
        })
    }

    fn delete_account<'a>(&'a self, name: &'a str) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            // Nothing can be stored under a name that is not valid, so no query (here and
            // in the lookups below): PostgreSQL would refuse one holding a NUL as invalid,
            // where the other stores answer that there is none.
            if !is_valid_account_name(name) {
                return Ok(false);
            }
            let mut tx = self.pool.begin().await.map_err(map)?;
            // The schema's `ON DELETE CASCADE` deletes the tokens in the same statement.
            let deleted = sqlx::query("DELETE FROM s2s_auth.service_accounts WHERE name = $1")
                .bind(name)
                .execute(&mut *tx)
                .await
                .map_err(map)?
                .rows_affected();
            if deleted == 1 {
                announce_account(&mut tx, name).await?;
            }
            tx.commit().await.map_err(map)?;
            Ok(deleted == 1)
        })
    }

    fn account<'a>(&'a self, name: &'a str) -> StoreFuture<'a, Option<ServiceAccount>> {
        Box::pin(async move {
            if !is_valid_account_name(name) {
                return Ok(None);
            }
            let row = sqlx::query(
                "SELECT name, description, permissions, enabled, created_at, updated_at \
                 FROM s2s_auth.service_accounts WHERE name = $1",
            )
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(map)?;
            row.as_ref().map(account_from_row).transpose()
        })
    }

    fn create_account_token<'a>(&'a self, token: &'a AccountToken) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            validate_account_token(token)?;
            let mut tx = self.pool.begin().await.map_err(map)?;
            // Locked (as the foreign key check would), so the account cannot be deleted
            // between this check and the insert.
            let account = sqlx::query(
                "SELECT 1 FROM s2s_auth.service_accounts WHERE name = $1 FOR KEY SHARE",
            )
            .bind(&token.account)
            .fetch_optional(&mut *tx)
            .await
            .map_err(map)?;
            if account.is_none() {
                return Err(no_such_account(&token.account));
            }
            // No conflict target: a taken id, digest or name within the account all make
            // it insert nothing.
            let inserted = sqlx::query(
                "INSERT INTO s2s_auth.account_tokens (id, account, name, digest_sha256, \
                 permissions, expires_at, created_at, last_used_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
            )
            .bind(&token.id)
            .bind(&token.account)
            .bind(&token.name)
            .bind(token.digest.to_hex())
            .bind(token.permissions.as_ref().map(permissions_to_json))
            .bind(token.expires_at)
            .bind(token.created_at)
            .bind(token.last_used_at)
            .execute(&mut *tx)
            .await
            .map_err(map)?
            .rows_affected();
            if inserted != 1 {
                return Err(token_exists(token));
            }
            announce_account(&mut tx, &token.account).await?;
            tx.commit().await.map_err(map)?;
            Ok(())
        })
    }

    fn account_tokens<'a>(&'a self, account: &'a str) -> StoreFuture<'a, Vec<AccountToken>> {
        Box::pin(async move {
            if !is_valid_account_name(account) {
                return Ok(Vec::new());
            }
            let rows = sqlx::query(
                "SELECT id, account, name, digest_sha256, permissions, expires_at, created_at, \
                 last_used_at FROM s2s_auth.account_tokens WHERE account = $1 \
                 ORDER BY name COLLATE \"C\"",
            )
            .bind(account)
            .fetch_all(&self.pool)
            .await
            .map_err(map)?;
            rows.iter().map(token_from_row).collect()
        })
    }

    fn delete_account_token<'a>(&'a self, account: &'a str, id: &'a str) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            if !is_valid_account_name(account) || !is_valid_token_id(id) {
                return Ok(false);
            }
            let mut tx = self.pool.begin().await.map_err(map)?;
            let deleted =
                sqlx::query("DELETE FROM s2s_auth.account_tokens WHERE account = $1 AND id = $2")
                    .bind(account)
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(map)?
                    .rows_affected();
            if deleted == 1 {
                announce_account(&mut tx, account).await?;
            }
            tx.commit().await.map_err(map)?;
            Ok(deleted == 1)
        })
    }

    fn touch_account_tokens<'a>(&'a self, used: &'a [(String, i64)]) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            // The latest time per id: one statement cannot update a row twice.
            let mut latest: BTreeMap<&str, i64> = BTreeMap::new();
            for (id, at) in used.iter().filter(|(id, _)| is_valid_token_id(id)) {
                latest
                    .entry(id.as_str())
                    .and_modify(|t| *t = (*t).max(*at))
                    .or_insert(*at);
            }
            if latest.is_empty() {
                return Ok(());
            }
            let (ids, ats): (Vec<&str>, Vec<i64>) = latest.into_iter().unzip();
            // One transaction for the batch. Not announced: it changes no verification.
            let mut tx = self.pool.begin().await.map_err(map)?;
            // Rows locked in id order first: replicas writing overlapping batches at once
            // then wait for each other instead of deadlocking.
            sqlx::query(
                "SELECT 1 FROM s2s_auth.account_tokens WHERE id = ANY($1) \
                 ORDER BY id COLLATE \"C\" FOR NO KEY UPDATE",
            )
            .bind(&ids)
            .execute(&mut *tx)
            .await
            .map_err(map)?;
            // Raised, never lowered: batches from several replicas may land out of order.
            sqlx::query(
                "UPDATE s2s_auth.account_tokens AS t SET last_used_at = u.at \
                 FROM unnest($1::text[], $2::bigint[]) AS u (id, at) \
                 WHERE t.id = u.id AND (t.last_used_at IS NULL OR t.last_used_at < u.at)",
            )
            .bind(&ids)
            .bind(&ats)
            .execute(&mut *tx)
            .await
            .map_err(map)?;
            tx.commit().await.map_err(map)?;
            Ok(())
        })
    }

    fn accounts_snapshot(&self) -> StoreFuture<'_, AccountsSnapshot> {
        Box::pin(async move {
            // Both reads from one snapshot: a token is never listed without its account,
            // nor an account without a change committed between the two reads. One row
            // over the bound, to tell "exactly" from "more". COLLATE "C": byte order, as in
            // the other stores.
            let limit = MAX_ACCOUNTS_LISTED as i64 + 1;
            let mut tx = self.pool.begin_with(BEGIN_SNAPSHOT).await.map_err(map)?;
            let accounts = sqlx::query(
                "SELECT name, description, permissions, enabled, created_at, updated_at \
                 FROM s2s_auth.service_accounts ORDER BY name COLLATE \"C\" LIMIT $1",
            )
            .bind(limit)
            .fetch_all(&mut *tx)
            .await
            .map_err(map)?;
            let tokens = sqlx::query(
                "SELECT id, account, name, digest_sha256, permissions, expires_at, created_at, \
                 last_used_at FROM s2s_auth.account_tokens \
                 ORDER BY account COLLATE \"C\", name COLLATE \"C\" LIMIT $1",
            )
            .bind(limit)
            .fetch_all(&mut *tx)
            .await
            .map_err(map)?;
            tx.commit().await.map_err(map)?;
            bounded_snapshot(AccountsSnapshot {
                accounts: accounts
                    .iter()
                    .map(account_from_row)
                    .collect::<Result<_, _>>()?,
                tokens: tokens
                    .iter()
                    .map(token_from_row)
                    .collect::<Result<_, _>>()?,
            })
        })
    }

    fn revocation_signal(&self) -> Option<watch::Receiver<u64>> {
        self.signal.subscribe(&self.pool, ACQUIRE_TIMEOUT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords_raw_and_decoded() {
        let r = Redactor::new("postgres://app:p%40ss%2Fw0rd@db:5432/keys?password=other-secret");
        let m = r.redact("p%40ss%2Fw0rd p@ss/w0rd other-secret".into());
        assert_eq!(m, "*** *** ***");
        let none = Redactor::new("postgres://app@db/keys");
        assert_eq!(none.redact("app@db".into()), "app@db");
    }

    #[test]
    fn describes_without_password() {
        let options =
            PgConnectOptions::from_str("postgres://app:hunter2@db.internal:6543/keys").unwrap();
        assert_eq!(describe(&options), "postgres://app@db.internal:6543/keys");
    }
}
