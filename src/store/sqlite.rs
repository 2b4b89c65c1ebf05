//! [`SqliteStore`]: the embedded default, keys, revocations and service accounts in one
//! SQLite file.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow};
use sqlx::{Row, SqlitePool};

use super::{
    AccountToken, AccountsSnapshot, IssuedToken, MAX_ACCOUNTS_LISTED, MAX_REVOCATIONS_LISTED,
    PublicKeyRecord, Revocation, ServiceAccount, Store, StoreError, StoreFuture, TokenDigest,
    account_exists, bounded, bounded_snapshot, db_error, is_valid_account_name, is_valid_token_id,
    no_such_account, parse_jwk, permissions_from_json, permissions_to_json, repeated_jti,
    same_or_conflict, storable_jti, token_exists, validate, validate_account,
    validate_account_token, validate_issued, validate_revocation,
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
/// It also holds the service accounts and their tokens, each token as its SHA-256 (the
/// token itself is never stored, so a copy of the file holds nothing a caller could present).
///
/// SQLite has no change notification: [`revocation_signal`](Store::revocation_signal) is
/// `None`, and a process sharing the file sees another's revocations (and account changes)
/// when it next reads them (polling).
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

/// How a transaction that reads before it writes begins: it takes the write lock at once,
/// so it waits out another writer (the busy timeout) and what it read still holds when it
/// writes. A deferred `BEGIN` that read first would fail with `SQLITE_BUSY` instead, when
/// another connection wrote in between.
const BEGIN_WRITE: &str = "BEGIN IMMEDIATE";

fn account_from_row(row: &SqliteRow) -> Result<ServiceAccount, StoreError> {
    Ok(ServiceAccount {
        name: row.try_get("name").map_err(map)?,
        description: row.try_get("description").map_err(map)?,
        permissions: permissions_from_json(row.try_get("permissions").map_err(map)?)?,
        enabled: row.try_get("enabled").map_err(map)?,
        created_at: row.try_get("created_at").map_err(map)?,
        updated_at: row.try_get("updated_at").map_err(map)?,
    })
}

fn token_from_row(row: &SqliteRow) -> Result<AccountToken, StoreError> {
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

    fn create_account<'a>(&'a self, account: &'a ServiceAccount) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            validate_account(account)?;
            // The insert itself finds a taken name, so two concurrent creates cannot both
            // succeed.
            let inserted = sqlx::query(
                "INSERT INTO s2s_service_accounts \
                 (name, description, permissions, enabled, created_at, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (name) DO NOTHING",
            )
            .bind(&account.name)
            .bind(&account.description)
            .bind(permissions_to_json(&account.permissions))
            .bind(account.enabled)
            .bind(account.created_at)
            .bind(account.updated_at)
            .execute(&self.pool)
            .await
            .map_err(map)?
            .rows_affected();
            if inserted == 1 {
                Ok(())
            } else {
                Err(account_exists(&account.name))
            }
        })
    }

    fn update_account<'a>(&'a self, account: &'a ServiceAccount) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            validate_account(account)?;
            // `created_at` is not set: it stays as the account was created.
            let updated = sqlx::query(
                "UPDATE s2s_service_accounts \
                 SET description = ?2, permissions = ?3, enabled = ?4, updated_at = ?5 \
                 WHERE name = ?1",
            )
            .bind(&account.name)
            .bind(&account.description)
            .bind(permissions_to_json(&account.permissions))
            .bind(account.enabled)
            .bind(account.updated_at)
            .execute(&self.pool)
            .await
            .map_err(map)?
            .rows_affected();
            if updated == 1 {
                Ok(())
            } else {
                Err(no_such_account(&account.name))
            }
        })
    }

    fn delete_account<'a>(&'a self, name: &'a str) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            if !is_valid_account_name(name) {
                return Ok(false); // could not have been stored
            }
            let mut tx = self.pool.begin_with(BEGIN_WRITE).await.map_err(map)?;
            // Not left to the schema's cascade alone: that works only on connections with
            // `PRAGMA foreign_keys = ON`, and a token outliving its account must never be
            // possible, whatever opened the file.
            sqlx::query("DELETE FROM s2s_account_tokens WHERE account = ?1")
                .bind(name)
                .execute(&mut *tx)
                .await
                .map_err(map)?;
            let deleted = sqlx::query("DELETE FROM s2s_service_accounts WHERE name = ?1")
                .bind(name)
                .execute(&mut *tx)
                .await
                .map_err(map)?
                .rows_affected();
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
                 FROM s2s_service_accounts WHERE name = ?1",
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
            // One write transaction: the account cannot be deleted between the check and
            // the insert.
            let mut tx = self.pool.begin_with(BEGIN_WRITE).await.map_err(map)?;
            let account = sqlx::query("SELECT 1 FROM s2s_service_accounts WHERE name = ?1")
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
                "INSERT INTO s2s_account_tokens (id, account, name, digest_sha256, \
                 permissions, expires_at, created_at, last_used_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT DO NOTHING",
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
                 last_used_at FROM s2s_account_tokens WHERE account = ?1 ORDER BY name",
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
            let deleted =
                sqlx::query("DELETE FROM s2s_account_tokens WHERE account = ?1 AND id = ?2")
                    .bind(account)
                    .bind(id)
                    .execute(&self.pool)
                    .await
                    .map_err(map)?
                    .rows_affected();
            Ok(deleted == 1)
        })
    }

    fn touch_account_tokens<'a>(&'a self, used: &'a [(String, i64)]) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            // An id that could not have been stored is unknown, so skipped.
            let used: Vec<&(String, i64)> = used
                .iter()
                .filter(|(id, _)| is_valid_token_id(id))
                .collect();
            if used.is_empty() {
                return Ok(());
            }
            // One transaction for the batch: one commit (one fsync), however many tokens.
            let mut tx = self.pool.begin_with(BEGIN_WRITE).await.map_err(map)?;
            for (id, at) in used {
                // Raised, never lowered: batches from several processes may land out of
                // order.
                sqlx::query(
                    "UPDATE s2s_account_tokens SET last_used_at = ?2 \
                     WHERE id = ?1 AND (last_used_at IS NULL OR last_used_at < ?2)",
                )
                .bind(id)
                .bind(at)
                .execute(&mut *tx)
                .await
                .map_err(map)?;
            }
            tx.commit().await.map_err(map)?;
            Ok(())
        })
    }

    fn accounts_snapshot(&self) -> StoreFuture<'_, AccountsSnapshot> {
        Box::pin(async move {
            // Both reads in one transaction, so from one snapshot of the file: a token is
            // never listed without its account, nor an account without a change committed
            // between the two reads. One row over the bound, to tell "exactly" from "more".
            let limit = MAX_ACCOUNTS_LISTED as i64 + 1;
            let mut tx = self.pool.begin().await.map_err(map)?;
            let accounts = sqlx::query(
                "SELECT name, description, permissions, enabled, created_at, updated_at \
                 FROM s2s_service_accounts ORDER BY name LIMIT ?1",
            )
            .bind(limit)
            .fetch_all(&mut *tx)
            .await
            .map_err(map)?;
            let tokens = sqlx::query(
                "SELECT id, account, name, digest_sha256, permissions, expires_at, created_at, \
                 last_used_at FROM s2s_account_tokens ORDER BY account, name LIMIT ?1",
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::restrictions::{AccessRestriction, AccessRestrictions};

    fn account(name: &str) -> ServiceAccount {
        ServiceAccount {
            name: name.into(),
            description: String::new(),
            permissions: AccessRestrictions::new([AccessRestriction::plugin("catalog")]).unwrap(),
            enabled: true,
            created_at: 1,
            updated_at: 1,
        }
    }

    fn token(account: &str) -> AccountToken {
        AccountToken {
            id: "sat_0123456789abcdef01234567".into(),
            account: account.into(),
            name: "ci".into(),
            digest: TokenDigest([7; 32]),
            permissions: None,
            expires_at: None,
            created_at: 1,
            last_used_at: None,
        }
    }

    /// A file in the temp directory, removed (with its WAL files) on drop.
    struct TempFile(std::path::PathBuf);

    impl Drop for TempFile {
        fn drop(&mut self) {
            for suffix in ["", "-wal", "-shm"] {
                let mut file = self.0.clone().into_os_string();
                file.push(suffix);
                let _ = std::fs::remove_file(file);
            }
        }
    }

    /// The schema's cascade is live on the store's connections (`PRAGMA foreign_keys`),
    /// in memory and in a file: deleting the account row alone deletes its tokens.
    #[tokio::test]
    async fn an_account_row_deleted_by_hand_takes_its_tokens_along() {
        let file = TempFile(std::env::temp_dir().join(format!(
            "s2s-auth-sqlite-cascade-{}-{}.sqlite",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        )));
        for path in [":memory:", file.0.to_str().unwrap()] {
            let store = SqliteStore::open(path).await.unwrap();
            store.create_account(&account("ci")).await.unwrap();
            store.create_account_token(&token("ci")).await.unwrap();
            sqlx::query("DELETE FROM s2s_service_accounts WHERE name = 'ci'")
                .execute(&store.pool)
                .await
                .unwrap();
            let left: i64 = sqlx::query_scalar("SELECT count(*) FROM s2s_account_tokens")
                .fetch_one(&store.pool)
                .await
                .unwrap();
            assert_eq!(left, 0, "{path}");
        }
    }

    /// Rows the store could not have written (edited by hand, or by a broken tool) are
    /// refused when read, never turned into other permissions or another digest.
    #[tokio::test]
    async fn rows_that_cannot_be_read_back_are_invalid() {
        let invalid = |r: Result<(), StoreError>| matches!(r, Err(StoreError::Invalid(_)));
        let store = SqliteStore::open(":memory:").await.unwrap();
        store.create_account(&account("ci")).await.unwrap();
        store.create_account_token(&token("ci")).await.unwrap();
        let edit = |sql: &'static str| sqlx::query(sql).execute(&store.pool);

        edit("UPDATE s2s_service_accounts SET permissions = '[]'")
            .await
            .unwrap();
        assert!(invalid(store.account("ci").await.map(drop)));
        assert!(invalid(store.accounts_snapshot().await.map(drop)));
        edit("UPDATE s2s_service_accounts SET permissions = '[{\"plugin\":\"catalog\"}]'")
            .await
            .unwrap();
        assert!(store.account("ci").await.unwrap().is_some());

        edit("UPDATE s2s_account_tokens SET digest_sha256 = 'not hex'")
            .await
            .unwrap();
        assert!(invalid(store.account_tokens("ci").await.map(drop)));
        assert!(invalid(store.accounts_snapshot().await.map(drop)));
        edit(
            "UPDATE s2s_account_tokens SET digest_sha256 = \
             '0707070707070707070707070707070707070707070707070707070707070707', \
             permissions = '{'",
        )
        .await
        .unwrap();
        assert!(invalid(store.account_tokens("ci").await.map(drop)));
        edit("UPDATE s2s_account_tokens SET permissions = NULL")
            .await
            .unwrap();
        assert_eq!(store.account_tokens("ci").await.unwrap(), vec![token("ci")]);
    }
}
