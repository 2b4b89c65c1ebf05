//! [`SqliteStore`]: the embedded default, keys and revocations in one SQLite file.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use sqlx::{Row, SqlitePool};

use super::{
    IssuedToken, MAX_REVOCATIONS_LISTED, PublicKeyRecord, Revocation, Store, StoreError,
    StoreFuture, bounded, db_error, parse_jwk, repeated_jti, same_or_conflict, storable_jti,
    validate, validate_issued, validate_revocation,
};

/// The SQLite schema, embedded at build time from `migrations/sqlite`. Migrations a newer
/// version of this crate applied are ignored, not refused, so a rollback (or an older
/// process on the same file) still opens it: migrations only ever add.
fn migrator() -> Migrator {
    let mut migrator = sqlx::migrate!("./migrations/sqlite");
    migrator.set_ignore_missing(true);
    migrator
}

/// How long a statement waits for another connection's (or process's) write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// A [`Store`] in a SQLite file: the embedded default. Keys survive restarts; one process
/// (or several on one host) uses the file. For replicas on several hosts use
/// [`PostgresStore`](super::PostgresStore).
///
/// The file is created when missing and migrated on [`open`](Self::open). It runs in WAL
/// mode with full `fsync` on commit: a key is on disk before it signs anything. Give the
/// store a file of its own: the migrations keep their bookkeeping in the file's
/// `_sqlx_migrations` table, which another sqlx application in the same file also uses.
///
/// SQLite has no change notification: [`revocation_signal`](Store::revocation_signal) is
/// `None`, and a process sharing the file sees another's revocations when it next reads
/// them (polling).
///
/// ```
/// use s2s_auth::store::{SqliteStore, Store};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), s2s_auth::store::StoreError> {
/// let store = SqliteStore::open(":memory:").await?;
/// assert!(store.public_keys("catalog", 0).await?.is_empty());
/// // Debug shows where the store is, never a secret.
/// assert_eq!(format!("{store:?}"), r#"SqliteStore { path: ":memory:" }"#);
/// # Ok(())
/// # }
/// ```
pub struct SqliteStore {
    pool: SqlitePool,
    path: String,
}

impl SqliteStore {
    /// Opens the SQLite file at `path` (a plain file path; the file is created when missing,
    /// its directory is not) and applies the migrations it lacks. `":memory:"` opens a
    /// private in-memory database that lives as long as the store: for tests.
    ///
    /// Fails with [`StoreError::Unavailable`] when the file cannot be opened or created, or
    /// a migration fails (for example: an applied migration was edited afterwards).
    pub async fn open(path: &str) -> Result<Self, StoreError> {
        let (options, pool_options) = if path == ":memory:" {
            // sqlx gives `sqlite::memory:` a unique shared-cache name; the database lives
            // while one connection is open, so the pool keeps exactly one, forever.
            let options = SqliteConnectOptions::from_str("sqlite::memory:").map_err(map)?;
            let pool = SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None);
            (options, pool)
        } else {
            let options = SqliteConnectOptions::new()
                .filename(path)
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .busy_timeout(BUSY_TIMEOUT);
            (options, SqlitePoolOptions::new().max_connections(4))
        };
        // Two processes opening a fresh file at once race twice: on switching it to WAL
        // (that takes a lock SQLite's busy timeout does not wait for) and on the first
        // migration (SQLite has no advisory lock, so sqlx's migrator does not lock it, and
        // the loser fails on the migrations table's key after the winner committed). A
        // retry finds the file in WAL mode and the migration applied, so race losers retry.
        let mut attempt = 0;
        let pool = loop {
            match connect_and_migrate(&options, &pool_options).await {
                Ok(pool) => break pool,
                Err(_) if attempt < OPEN_RETRIES => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(50 * u64::from(attempt))).await;
                }
                Err(e) => {
                    return Err(StoreError::Unavailable(format!(
                        "cannot open SQLite database {path}: {e}"
                    )));
                }
            }
        };
        Ok(Self {
            pool,
            path: path.to_owned(),
        })
    }
}

/// How often [`SqliteStore::open`] retries after a failed connect or migration.
const OPEN_RETRIES: u32 = 3;

async fn connect_and_migrate(
    options: &SqliteConnectOptions,
    pool_options: &SqlitePoolOptions,
) -> Result<SqlitePool, String> {
    let pool = pool_options
        .clone()
        .acquire_timeout(BUSY_TIMEOUT)
        .connect_with(options.clone())
        .await
        .map_err(|e| e.to_string())?;
    if let Err(e) = migrator().run(&pool).await {
        pool.close().await;
        return Err(format!("migrations failed: {e}"));
    }
    Ok(pool)
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish()
    }
}

fn map(e: sqlx::Error) -> StoreError {
    db_error(e, |m| m)
}

impl Store for SqliteStore {
    fn put_public_key<'a>(&'a self, key: &'a PublicKeyRecord) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            validate(key)?;
            let jwk = key.jwk.to_string();
            // Insert, or compare with the row that is already there. The loop covers a prune
            // deleting that row between the two statements.
            for _ in 0..3 {
                let inserted = sqlx::query(
                    "INSERT INTO s2s_public_keys (service_id, kid, jwk, expires_at) \
                     VALUES (?1, ?2, ?3, ?4) ON CONFLICT (service_id, kid) DO NOTHING",
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
                    "SELECT jwk, expires_at FROM s2s_public_keys WHERE service_id = ?1 AND kid = ?2",
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
            let rows = sqlx::query(
                "SELECT kid, jwk, expires_at FROM s2s_public_keys \
                 WHERE service_id = ?1 AND expires_at > ?2 ORDER BY expires_at, kid",
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
            let result = sqlx::query("DELETE FROM s2s_public_keys WHERE expires_at <= ?1")
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
            // One statement: concurrent revokes of one jti keep the later expiry.
            sqlx::query(
                "INSERT INTO s2s_revocations (jti, expires_at) VALUES (?1, ?2) \
                 ON CONFLICT (jti) DO UPDATE SET expires_at = max(expires_at, excluded.expires_at)",
            )
            .bind(&revocation.jti)
            .bind(revocation.expires_at)
            .execute(&self.pool)
            .await
            .map_err(map)?;
            Ok(())
        })
    }

    fn revocations(&self, now: i64) -> StoreFuture<'_, Vec<Revocation>> {
        Box::pin(async move {
            // One row over the bound, to tell "exactly the bound" from "more".
            let rows = sqlx::query(
                "SELECT jti, expires_at FROM s2s_revocations WHERE expires_at > ?1 \
                 ORDER BY jti LIMIT ?2",
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
            let revocations = sqlx::query("DELETE FROM s2s_revocations WHERE expires_at <= ?1")
                .bind(now)
                .execute(&self.pool)
                .await
                .map_err(map)?;
            let issued = sqlx::query("DELETE FROM s2s_issued_tokens WHERE expires_at <= ?1")
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
                "INSERT INTO s2s_issued_tokens (jti, subject, expires_at) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (jti) DO NOTHING",
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
                "SELECT subject, expires_at FROM s2s_issued_tokens \
                 WHERE jti = ?1 AND expires_at > ?2",
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
}
