//! The key store: one suite run against every backend (memory, SQLite, PostgreSQL), then
//! what only one backend can show: SQLite keys surviving a restart, PostgreSQL replicas
//! sharing keys and migrating at the same time.
//!
//! The PostgreSQL tests read `S2S_TEST_POSTGRES_URL`. Without it they print `SKIPPED` and
//! pass, except under `CI=true`, where they fail: `.ci/run` starts a private server and sets
//! the variable, so CI always runs them.

use std::io::Write;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use s2s_auth::store::{
    MemoryStore, PostgresStore, PublicKeyRecord, SqliteStore, Store, StoreError,
};
use serde_json::json;

// ---------------------------------------------------------------------------------------
// Helpers

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs() as i64
}

/// A service id unique to this run and this check, so runs sharing one PostgreSQL database
/// never see each other's keys.
fn service(check: &str) -> String {
    static RUN: OnceLock<String> = OnceLock::new();
    let run = RUN.get_or_init(|| {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("the clock is after 1970")
            .subsec_nanos();
        format!("{}-{nanos:x}", std::process::id())
    });
    format!("test-{run}-{check}")
}

/// A public EC key record, the shape the key manager publishes.
fn key(service_id: &str, kid: &str, expires_at: i64) -> PublicKeyRecord {
    PublicKeyRecord {
        service_id: service_id.to_owned(),
        kid: kid.to_owned(),
        jwk: json!({
            "kty": "EC",
            "crv": "P-256",
            "x": format!("x-of-{kid}"),
            "y": format!("y-of-{kid}"),
            "kid": kid,
            "alg": "ES256",
            "use": "sig",
        }),
        expires_at,
    }
}

fn kids(keys: &[PublicKeyRecord]) -> Vec<&str> {
    keys.iter().map(|k| k.kid.as_str()).collect()
}

/// A SQLite file in the temp directory, deleted (with its WAL files) on drop.
struct TempDb(PathBuf);

impl TempDb {
    fn new(name: &str) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("the clock is after 1970")
            .subsec_nanos();
        let file = format!(
            "s2s-auth-store-{name}-{}-{nanos:x}-{}.sqlite",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        Self(std::env::temp_dir().join(file))
    }

    fn path(&self) -> &str {
        self.0.to_str().expect("temp paths are UTF-8 here")
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let mut file = self.0.clone().into_os_string();
            file.push(suffix);
            let _ = std::fs::remove_file(file);
        }
    }
}

// ---------------------------------------------------------------------------------------
// The suite every backend passes

async fn suite(store: &dyn Store) {
    stores_and_lists_a_key(store).await;
    put_is_idempotent(store).await;
    refuses_a_different_key_under_a_stored_kid(store).await;
    lists_only_unexpired_keys(store).await;
    lists_oldest_expiry_first(store).await;
    keeps_services_apart(store).await;
    refuses_private_keys(store).await;
    refuses_malformed_records(store).await;
    prunes_expired_keys_of_every_service_and_counts_them(store).await;
    handles_many_keys(store).await;
}

async fn stores_and_lists_a_key(store: &dyn Store) {
    let svc = service("put");
    let now = unix_now();
    assert!(store.public_keys(&svc, now).await.unwrap().is_empty());
    let k = key(&svc, "k1", now + 3600);
    store.put_public_key(&k).await.unwrap();
    assert_eq!(store.public_keys(&svc, now).await.unwrap(), vec![k]);
}

async fn put_is_idempotent(store: &dyn Store) {
    let svc = service("idempotent");
    let now = unix_now();
    let k = key(&svc, "k1", now + 3600);
    for _ in 0..3 {
        store.put_public_key(&k).await.unwrap();
    }
    assert_eq!(store.public_keys(&svc, now).await.unwrap(), vec![k]);
}

async fn refuses_a_different_key_under_a_stored_kid(store: &dyn Store) {
    let svc = service("immutable");
    let now = unix_now();
    let original = key(&svc, "k1", now + 3600);
    store.put_public_key(&original).await.unwrap();

    let mut swapped = original.clone();
    swapped.jwk["x"] = json!("attacker-x");
    let err = store.put_public_key(&swapped).await.unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err:?}");

    let mut extended = original.clone();
    extended.expires_at += 1;
    let err = store.put_public_key(&extended).await.unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err:?}");

    assert_eq!(store.public_keys(&svc, now).await.unwrap(), vec![original]);
}

async fn lists_only_unexpired_keys(store: &dyn Store) {
    let svc = service("expiry");
    let now = unix_now();
    store
        .put_public_key(&key(&svc, "past", now - 1))
        .await
        .unwrap();
    store
        .put_public_key(&key(&svc, "exactly-now", now))
        .await
        .unwrap();
    store
        .put_public_key(&key(&svc, "future", now + 1))
        .await
        .unwrap();
    // Listed while expires_at > now: a key expiring exactly now is gone.
    assert_eq!(
        kids(&store.public_keys(&svc, now).await.unwrap()),
        ["future"]
    );
    assert_eq!(
        kids(&store.public_keys(&svc, now - 1).await.unwrap()),
        ["exactly-now", "future"]
    );
    assert!(store.public_keys(&svc, now + 1).await.unwrap().is_empty());
}

async fn lists_oldest_expiry_first(store: &dyn Store) {
    let svc = service("order");
    let now = unix_now();
    for (kid, offset) in [("c", 300), ("a", 100), ("z", 200), ("b", 200), ("d", 50)] {
        store
            .put_public_key(&key(&svc, kid, now + offset))
            .await
            .unwrap();
    }
    // Equal expiries are ordered by kid.
    assert_eq!(
        kids(&store.public_keys(&svc, now).await.unwrap()),
        ["d", "a", "b", "z", "c"]
    );
}

async fn keeps_services_apart(store: &dyn Store) {
    let (a, b) = (service("apart-a"), service("apart-b"));
    let now = unix_now();
    let ka = key(&a, "shared-kid", now + 3600);
    let mut kb = key(&b, "shared-kid", now + 7200);
    kb.jwk["x"] = json!("another-x");
    // The same kid under two services is two keys.
    store.put_public_key(&ka).await.unwrap();
    store.put_public_key(&kb).await.unwrap();
    assert_eq!(store.public_keys(&a, now).await.unwrap(), vec![ka]);
    assert_eq!(store.public_keys(&b, now).await.unwrap(), vec![kb]);
    assert!(
        store
            .public_keys(&service("apart-c"), now)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn refuses_private_keys(store: &dyn Store) {
    let svc = service("private");
    let now = unix_now();
    // An EC private key (`d`), and a symmetric key (`k`): publishing either hands out the
    // signing key.
    let mut ec_private = key(&svc, "ec", now + 3600);
    ec_private.jwk["d"] = json!("private-scalar");
    let oct = PublicKeyRecord {
        jwk: json!({ "kty": "oct", "k": "c2VjcmV0", "kid": "oct" }),
        ..key(&svc, "oct", now + 3600)
    };
    for record in [ec_private, oct] {
        let err = store.put_public_key(&record).await.unwrap_err();
        assert!(
            matches!(&err, StoreError::Invalid(m) if m.contains("private")),
            "{err:?}"
        );
        // The refusal does not echo the secret.
        assert!(
            !err.to_string().contains("private-scalar") && !err.to_string().contains("c2VjcmV0")
        );
    }
    assert!(store.public_keys(&svc, now).await.unwrap().is_empty());
}

async fn refuses_malformed_records(store: &dyn Store) {
    let svc = service("malformed");
    let now = unix_now();
    let mut wrong_kid = key(&svc, "k1", now + 3600);
    wrong_kid.jwk["kid"] = json!("k2");
    let not_an_object = PublicKeyRecord {
        jwk: json!("EC"),
        ..key(&svc, "k3", now + 3600)
    };
    let mut nul = key(&svc, "k4", now + 3600);
    nul.jwk["x"] = json!("a\u{0}b");
    let empty_kid = PublicKeyRecord {
        kid: String::new(),
        jwk: json!({ "kty": "EC" }),
        ..key(&svc, "k5", now + 3600)
    };
    let empty_service = key("", "k6", now + 3600);
    for record in [wrong_kid, not_an_object, nul, empty_kid, empty_service] {
        let err = store.put_public_key(&record).await.unwrap_err();
        assert!(matches!(err, StoreError::Invalid(_)), "{record:?}: {err:?}");
    }
    assert!(store.public_keys(&svc, now).await.unwrap().is_empty());
}

async fn prunes_expired_keys_of_every_service_and_counts_them(store: &dyn Store) {
    let (a, b) = (service("prune-a"), service("prune-b"));
    let now = unix_now();
    // Anything already expired (from other checks or earlier runs) goes first, so the
    // count below is exact.
    store.prune_public_keys(now).await.unwrap();
    store
        .put_public_key(&key(&a, "old", now - 100))
        .await
        .unwrap();
    store.put_public_key(&key(&a, "at-now", now)).await.unwrap();
    store
        .put_public_key(&key(&a, "live", now + 100))
        .await
        .unwrap();
    store
        .put_public_key(&key(&b, "old", now - 5))
        .await
        .unwrap();
    store
        .put_public_key(&key(&b, "live", now + 5))
        .await
        .unwrap();

    assert_eq!(store.prune_public_keys(now).await.unwrap(), 3);
    assert_eq!(store.prune_public_keys(now).await.unwrap(), 0);
    // Gone even when asked about an earlier time, not just filtered out.
    assert_eq!(
        kids(&store.public_keys(&a, now - 1000).await.unwrap()),
        ["live"]
    );
    assert_eq!(
        kids(&store.public_keys(&b, now - 1000).await.unwrap()),
        ["live"]
    );
    // A pruned kid can be stored again.
    store
        .put_public_key(&key(&a, "old", now + 50))
        .await
        .unwrap();
    assert_eq!(
        kids(&store.public_keys(&a, now).await.unwrap()),
        ["old", "live"]
    );
}

async fn handles_many_keys(store: &dyn Store) {
    const N: i64 = 1000;
    let svc = service("many");
    let now = unix_now();
    store.prune_public_keys(now).await.unwrap();
    // Expiries from now - N/2 to now + N/2, stored in a scrambled order (7919 is prime, so
    // i * 7919 mod N visits every value once).
    for i in 0..N {
        let offset = (i * 7919) % N - N / 2;
        let k = key(&svc, &format!("kid-{:04}", offset + N / 2), now + offset);
        store.put_public_key(&k).await.unwrap();
    }
    let listed = store.public_keys(&svc, now).await.unwrap();
    assert_eq!(listed.len() as i64, N / 2 - 1); // offsets 1 ..= N/2 - 1
    assert!(listed.windows(2).all(|w| w[0].expires_at < w[1].expires_at));
    assert!(listed.iter().all(|k| k.expires_at > now));
    assert_eq!(listed[0].expires_at, now + 1);
    // Offsets -N/2 ..= 0 are expired.
    assert_eq!(
        store.prune_public_keys(now).await.unwrap() as i64,
        N / 2 + 1
    );
    assert_eq!(store.public_keys(&svc, now - N).await.unwrap(), listed);
    // The rest (with keys of the other checks that expire by then).
    assert!(store.prune_public_keys(now + N).await.unwrap() as i64 >= N / 2 - 1);
    assert!(store.public_keys(&svc, now - N).await.unwrap().is_empty());
}

// ---------------------------------------------------------------------------------------
// Memory

#[tokio::test]
async fn memory_store_passes_the_suite() {
    let store = MemoryStore::new();
    suite(&store).await;
    assert!(format!("{store:?}").starts_with("MemoryStore"));
}

// ---------------------------------------------------------------------------------------
// SQLite

#[tokio::test]
async fn sqlite_file_store_passes_the_suite() {
    let db = TempDb::new("suite");
    let store = SqliteStore::open(db.path()).await.unwrap();
    assert!(db.0.exists(), "open creates the file");
    suite(&store).await;
}

#[tokio::test]
async fn sqlite_in_memory_store_passes_the_suite() {
    let store = SqliteStore::open(":memory:").await.unwrap();
    suite(&store).await;
    assert_eq!(format!("{store:?}"), r#"SqliteStore { path: ":memory:" }"#);
}

#[tokio::test]
async fn sqlite_in_memory_stores_are_separate() {
    let (one, two) = (
        SqliteStore::open(":memory:").await.unwrap(),
        SqliteStore::open(":memory:").await.unwrap(),
    );
    let svc = service("separate-memory");
    let now = unix_now();
    one.put_public_key(&key(&svc, "k1", now + 60))
        .await
        .unwrap();
    assert!(two.public_keys(&svc, now).await.unwrap().is_empty());
}

#[tokio::test]
async fn sqlite_keys_survive_a_restart() {
    let db = TempDb::new("restart");
    let svc = service("restart");
    let now = unix_now();
    let keys = vec![key(&svc, "first", now + 60), key(&svc, "second", now + 120)];
    {
        let store = SqliteStore::open(db.path()).await.unwrap();
        for k in &keys {
            store.put_public_key(k).await.unwrap();
        }
        // Dropped without any shutdown step, as in a crash: committed keys are on disk.
    }
    let reopened = SqliteStore::open(db.path()).await.unwrap(); // migrations already applied
    assert_eq!(reopened.public_keys(&svc, now).await.unwrap(), keys);
    // The same records are still accepted (a restarted key manager may republish).
    reopened.put_public_key(&keys[0]).await.unwrap();
    assert_eq!(
        format!("{reopened:?}"),
        format!("SqliteStore {{ path: {:?} }}", db.path())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_processes_opening_one_new_file_at_once_all_succeed() {
    let db = TempDb::new("race");
    let opens: Vec<_> = (0..4)
        .map(|_| {
            let path = db.path().to_owned();
            tokio::spawn(async move { SqliteStore::open(&path).await })
        })
        .collect();
    let mut stores = Vec::new();
    for open in opens {
        stores.push(open.await.unwrap().unwrap());
    }
    let svc = service("race-sqlite");
    let now = unix_now();
    let k = key(&svc, "k1", now + 60);
    stores[0].put_public_key(&k).await.unwrap();
    for store in &stores {
        assert_eq!(store.public_keys(&svc, now).await.unwrap(), vec![k.clone()]);
    }
}

#[tokio::test]
async fn sqlite_opens_a_file_a_newer_version_migrated() {
    // A rollback: the file holds a migration this version does not know.
    let db = TempDb::new("newer");
    drop(SqliteStore::open(db.path()).await.unwrap());
    {
        use sqlx::Connection;
        let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.path()))
            .await
            .unwrap();
        sqlx::query(NEWER_MIGRATION)
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
    }
    let store = SqliteStore::open(db.path()).await.unwrap();
    let svc = service("newer-sqlite");
    let k = key(&svc, "k1", unix_now() + 60);
    store.put_public_key(&k).await.unwrap();
    assert_eq!(store.public_keys(&svc, 0).await.unwrap(), vec![k]);
}

/// A row of sqlx's migration history as a later version of this crate would leave it.
const NEWER_MIGRATION: &str = "INSERT INTO _sqlx_migrations \
     (version, description, success, checksum, execution_time) \
     VALUES (999999, 'from a newer version', TRUE, X'00', 0)";

#[tokio::test]
async fn sqlite_unopenable_file_is_unavailable() {
    let dir = std::env::temp_dir().join(format!("s2s-auth-no-such-dir-{}", std::process::id()));
    let path = dir.join("keys.sqlite");
    let err = SqliteStore::open(path.to_str().unwrap()).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Unavailable(m) if m.contains("keys.sqlite")),
        "{err:?}"
    );
}

// ---------------------------------------------------------------------------------------
// PostgreSQL

/// The test database's URL, or `None` after a loud `SKIPPED` (a panic under `CI=true`).
fn postgres_url(test: &str) -> Option<String> {
    match std::env::var("S2S_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("CI").as_deref() == Ok("true") => panic!(
            "{test}: S2S_TEST_POSTGRES_URL is not set and CI=true: the PostgreSQL tests must run \
             in CI (.ci/run starts a private server and sets it)"
        ),
        _ => {
            // Straight to stderr, not `eprintln!`: the test harness swallows the output of
            // passing tests, and a skip must be seen.
            let _ = writeln!(
                std::io::stderr().lock(),
                "SKIPPED: {test}: no PostgreSQL; set S2S_TEST_POSTGRES_URL=postgres://user:password@host:port/db \
                 to run it (.ci/run starts a server and sets it)"
            );
            None
        }
    }
}

/// The PostgreSQL tests share one database and the suite prunes every service's expired
/// keys and counts them: they run one at a time.
static POSTGRES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test]
async fn postgres_store_passes_the_suite() {
    let Some(url) = postgres_url("postgres_store_passes_the_suite") else {
        return;
    };
    let _serial = POSTGRES.lock().await;
    let store = PostgresStore::connect(&url).await.unwrap();
    suite(&store).await;
}

#[tokio::test]
async fn postgres_replicas_share_keys() {
    let Some(url) = postgres_url("postgres_replicas_share_keys") else {
        return;
    };
    let _serial = POSTGRES.lock().await;
    let (one, two) = (
        PostgresStore::connect(&url).await.unwrap(),
        PostgresStore::connect(&url).await.unwrap(),
    );
    let svc = service("replicas");
    let now = unix_now();
    let from_one = key(&svc, "from-one", now + 3600);
    let from_two = key(&svc, "from-two", now + 7200);
    one.put_public_key(&from_one).await.unwrap();
    two.put_public_key(&from_two).await.unwrap();
    // Each replica's JWKS lists both replicas' keys.
    let both = vec![from_one.clone(), from_two.clone()];
    assert_eq!(one.public_keys(&svc, now).await.unwrap(), both);
    assert_eq!(two.public_keys(&svc, now).await.unwrap(), both);
    // One replica republishing what the other stored is fine.
    two.put_public_key(&from_one).await.unwrap();
    // A prune on one is seen by the other. (At least one: the database is shared with
    // earlier runs, whose keys may expire by then too.)
    assert!(one.prune_public_keys(now + 3600).await.unwrap() >= 1);
    assert_eq!(two.public_keys(&svc, now).await.unwrap(), vec![from_two]);
    two.prune_public_keys(now + 7200).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_replicas_starting_at_once_all_migrate() {
    let Some(url) = postgres_url("postgres_replicas_starting_at_once_all_migrate") else {
        return;
    };
    let _serial = POSTGRES.lock().await;
    // From an empty database: no schema, no tables, no migration history. Every replica
    // then races to create the schema and apply the first migration.
    {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
        sqlx::query("DROP SCHEMA IF EXISTS s2s_auth CASCADE")
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
    }
    let connects: Vec<_> = (0..8)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { PostgresStore::connect(&url).await })
        })
        .collect();
    let mut replicas = Vec::new();
    for connect in connects {
        replicas.push(connect.await.unwrap().unwrap());
    }
    // One migration history, in the store's own schema: an application's sqlx migrations
    // in `public` never meet it.
    {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
        let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM s2s_auth._sqlx_migrations")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        // Each embedded migration once (counted from the files, so a new migration does
        // not break this test).
        let embedded =
            std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/postgres"))
                .unwrap()
                .filter(|e| {
                    e.as_ref()
                        .unwrap()
                        .path()
                        .extension()
                        .is_some_and(|x| x == "sql")
                })
                .count();
        assert_eq!(applied, embedded as i64);
        let in_public: Option<String> =
            sqlx::query_scalar("SELECT to_regclass('public._sqlx_migrations')::text")
                .fetch_one(&mut conn)
                .await
                .unwrap();
        assert_eq!(in_public, None);
        conn.close().await.unwrap();
    }
    let svc = service("migrate-race");
    let now = unix_now();
    let k = key(&svc, "k1", now + 60);
    replicas[7].put_public_key(&k).await.unwrap();
    for replica in &replicas {
        assert_eq!(
            replica.public_keys(&svc, now).await.unwrap(),
            vec![k.clone()]
        );
    }
    replicas[0].prune_public_keys(now + 60).await.unwrap();
}

#[tokio::test]
async fn postgres_replicas_of_an_older_version_still_start() {
    let Some(url) = postgres_url("postgres_replicas_of_an_older_version_still_start") else {
        return;
    };
    let _serial = POSTGRES.lock().await;
    drop(PostgresStore::connect(&url).await.unwrap());
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    // A rolling upgrade: a newer replica applied a migration this version does not know.
    sqlx::query(
        &NEWER_MIGRATION
            .replace("_sqlx_migrations", "s2s_auth._sqlx_migrations")
            .replace("X'00'", "'\\x00'::bytea"),
    )
    .execute(&mut conn)
    .await
    .unwrap();
    let started = PostgresStore::connect(&url).await;
    sqlx::query("DELETE FROM s2s_auth._sqlx_migrations WHERE version = 999999")
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    let store = started.unwrap();
    let svc = service("older-replica");
    let k = key(&svc, "k1", unix_now() + 60);
    store.put_public_key(&k).await.unwrap();
    assert_eq!(store.public_keys(&svc, 0).await.unwrap(), vec![k]);
    store.prune_public_keys(unix_now() + 60).await.unwrap();
}

#[tokio::test]
async fn postgres_debug_and_login_errors_hide_the_password() {
    let Some(url) = postgres_url("postgres_debug_and_login_errors_hide_the_password") else {
        return;
    };
    let _serial = POSTGRES.lock().await;
    let (scheme, rest) = url.split_once("://").unwrap();
    let (userinfo, host) = rest
        .rsplit_once('@')
        .expect("the test URL has user:password@");
    let (user, password) = userinfo
        .split_once(':')
        .expect("the test URL has a password");

    let store = PostgresStore::connect(&url).await.unwrap();
    let debug = format!("{store:?}");
    assert!(!debug.contains(password), "{debug}");
    assert!(debug.contains(user), "{debug}");

    let wrong = "wrong-password-7f3a91";
    let err = PostgresStore::connect(&format!("{scheme}://{user}:{wrong}@{host}"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    let shown = format!("{err} {err:?}");
    assert!(
        !shown.contains(wrong) && !shown.contains(password),
        "{shown}"
    );
}

#[tokio::test]
async fn postgres_unreachable_is_unavailable_without_the_password() {
    // No server needed: nothing listens on port 1.
    let err = PostgresStore::connect("postgres://app:hunter2-s3cret@127.0.0.1:1/keys")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Unavailable(m) if m.contains("127.0.0.1:1")),
        "{err:?}"
    );
    assert!(!format!("{err} {err:?}").contains("hunter2"), "{err:?}");
}

#[tokio::test]
async fn postgres_refuses_urls_of_other_databases() {
    for url in ["mysql://app:pw@db/keys", "keys.sqlite", "http://db/keys"] {
        let err = PostgresStore::connect(url).await.unwrap_err();
        assert!(matches!(err, StoreError::Invalid(_)), "{url}: {err:?}");
        assert!(!err.to_string().contains("pw@"));
    }
}
