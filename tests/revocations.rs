//! Revocation of just-in-time on-behalf-of tokens by `jti` (threat model: replay of a
//! revoked `jti`): the store's revocations and issued-token records on every backend
//! (memory, SQLite in memory and in a file, PostgreSQL), and the in-memory denylist each
//! replica keeps: a revoke is refused at once where it was made and within the staleness
//! bound on every other replica, and a replica that cannot read the store fails closed.
//!
//! The PostgreSQL tests read `S2S_TEST_POSTGRES_URL`. Without it they print `SKIPPED` and
//! pass, except under `CI=true`, where they fail (`.ci/run` starts a server and sets it).
//!
//! The denylist is crate-private. It is compiled into this test from its own source, against
//! the public store API (its `crate::store` paths resolve to the `use` below), so the tests
//! drive exactly the code the crate runs, through stores as a user would build them.

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use s2s_auth::store;
use s2s_auth::store::{
    IssuedToken, MAX_REVOCATIONS_LISTED, MemoryStore, PostgresStore, PublicKeyRecord, Revocation,
    SqliteStore, Store, StoreError, StoreFuture,
};

// Not every crate-private item is used by these tests.
#[allow(dead_code)]
#[path = "../src/revocation.rs"]
mod revocation;

// The denylist's background task and staleness clock, which it shares with the
// service-account registry.
#[allow(dead_code)]
#[path = "../src/sync.rs"]
mod sync;

use revocation::{Denylist, Listed};

// ---------------------------------------------------------------------------------------
// Helpers

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs() as i64
}

/// A prefix unique to this run, so runs sharing one PostgreSQL database never meet.
fn run_id() -> &'static str {
    static RUN: OnceLock<String> = OnceLock::new();
    RUN.get_or_init(|| {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("the clock is after 1970")
            .subsec_nanos();
        format!("test-{}-{nanos:x}", std::process::id())
    })
}

/// A jti of this run and this check.
fn jti(check: &str, name: &str) -> String {
    format!("{}-{check}-{name}", run_id())
}

/// The listed revocations of one check (other checks and runs share a PostgreSQL database).
async fn listed(store: &dyn Store, check: &str, now: i64) -> Vec<Revocation> {
    let prefix = jti(check, "");
    store
        .revocations(now)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.jti.starts_with(&prefix))
        .collect()
}

/// A SQLite file in the temp directory, deleted (with its WAL files) on drop.
struct TempDb(PathBuf);

impl TempDb {
    fn new(name: &str) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let file = format!(
            "s2s-auth-revocations-{name}-{}-{}.sqlite",
            run_id(),
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

/// The test database's URL, or `None` after a loud `SKIPPED` (a panic under `CI=true`).
fn postgres_url(test: &str) -> Option<String> {
    match std::env::var("S2S_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("CI").as_deref() == Ok("true") => panic!(
            "{test}: S2S_TEST_POSTGRES_URL is not set and CI=true: the PostgreSQL tests must \
             run in CI (.ci/run starts a private server and sets it)"
        ),
        _ => {
            // Straight to stderr: the harness swallows `eprintln!` of passing tests.
            let _ = writeln!(
                std::io::stderr().lock(),
                "SKIPPED: {test}: no PostgreSQL; set \
                 S2S_TEST_POSTGRES_URL=postgres://user:password@host:port/db to run it \
                 (.ci/run starts a server and sets it)"
            );
            None
        }
    }
}

/// One at a time: the PostgreSQL tests (one shared database, and the suite counts what a
/// prune deletes), the tests that measure how fast a replica sees a revoke, and the tests
/// that load a store with a hundred thousand rows (which would slow the measured ones).
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Waits until `check` says `wanted`, polling every 2 ms; how long it took, or `None` after
/// `limit`.
async fn time_until(
    denylist: &Denylist,
    jti: &str,
    wanted: Listed,
    limit: Duration,
) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if denylist.check(jti, unix_now()) == wanted {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    None
}

// ---------------------------------------------------------------------------------------
// The store suite every backend passes

async fn suite(store: &dyn Store) {
    revoke_is_idempotent_and_keeps_the_later_expiry(store).await;
    lists_only_live_revocations_ordered_by_jti(store).await;
    prune_counts_and_deletes_only_expired_rows(store).await;
    refuses_malformed_jtis_and_subjects(store).await;
    records_issued_tokens_once(store).await;
    an_expired_or_unknown_issued_token_is_none(store).await;
}

async fn revoke_is_idempotent_and_keeps_the_later_expiry(store: &dyn Store) {
    let now = unix_now();
    let check = "idempotent";
    let j = jti(check, "a");
    let at = |expires_at| Revocation {
        jti: j.clone(),
        expires_at,
    };
    store.revoke(&at(now + 100)).await.unwrap();
    store.revoke(&at(now + 100)).await.unwrap();
    assert_eq!(listed(store, check, now).await, vec![at(now + 100)]);
    // An earlier expiry does not shorten it; a later one lengthens it.
    store.revoke(&at(now + 50)).await.unwrap();
    assert_eq!(listed(store, check, now).await, vec![at(now + 100)]);
    store.revoke(&at(now + 200)).await.unwrap();
    assert_eq!(listed(store, check, now).await, vec![at(now + 200)]);
}

async fn lists_only_live_revocations_ordered_by_jti(store: &dyn Store) {
    let now = unix_now();
    let check = "order";
    // Byte order: `B` (0x42) before `a` (0x61) before `b`, whatever the database's locale.
    for (name, expires_at) in [
        ("b", now + 60),
        ("B", now + 60),
        ("a", now + 1),
        ("gone", now),
        ("old", now - 60),
    ] {
        store
            .revoke(&Revocation {
                jti: jti(check, name),
                expires_at,
            })
            .await
            .unwrap();
    }
    let names: Vec<String> = listed(store, check, now)
        .await
        .into_iter()
        .map(|r| r.jti.trim_start_matches(&jti(check, "")).to_owned())
        .collect();
    assert_eq!(
        names,
        ["B", "a", "b"],
        "expires_at > now only, by jti bytes"
    );
    // `a` expires at now + 1.
    let later: Vec<Revocation> = listed(store, check, now + 1).await;
    assert_eq!(later.len(), 2, "{later:?}");
}

async fn prune_counts_and_deletes_only_expired_rows(store: &dyn Store) {
    let now = unix_now();
    let check = "prune";
    // What earlier checks and runs left to expire, so the count below is this check's own.
    store.prune_revocations(now).await.unwrap();
    for (name, expires_at) in [("old", now - 100), ("ends-now", now), ("live", now + 3600)] {
        store
            .revoke(&Revocation {
                jti: jti(check, name),
                expires_at,
            })
            .await
            .unwrap();
    }
    for (name, expires_at) in [("issued-old", now - 1), ("issued-live", now + 3600)] {
        store
            .record_issued(&IssuedToken {
                jti: jti(check, name),
                subject: "user:default/jane".into(),
                expires_at,
            })
            .await
            .unwrap();
    }
    // Two revocations and one issued-token record have expired by `now`.
    assert_eq!(store.prune_revocations(now).await.unwrap(), 3);
    assert_eq!(
        store.prune_revocations(now).await.unwrap(),
        0,
        "nothing left to prune"
    );
    assert_eq!(
        listed(store, check, now - 1000).await,
        vec![Revocation {
            jti: jti(check, "live"),
            expires_at: now + 3600
        }],
        "the expired rows are gone, even when listed as of an earlier time"
    );
    assert!(
        store
            .issued_token(&jti(check, "issued-live"), now)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        store
            .issued_token(&jti(check, "issued-old"), now - 1000)
            .await
            .unwrap(),
        None
    );
}

async fn refuses_malformed_jtis_and_subjects(store: &dyn Store) {
    let now = unix_now();
    let bad = [
        String::new(),
        "j".repeat(256),
        "jti\u{7}bell".to_owned(),
        "j\nti".to_owned(),
        "j\0ti".to_owned(),
    ];
    for jti in &bad {
        let revocation = Revocation {
            jti: jti.clone(),
            expires_at: now + 60,
        };
        let err = store.revoke(&revocation).await.unwrap_err();
        assert!(matches!(err, StoreError::Invalid(_)), "{jti:?}: {err:?}");
        let issued = IssuedToken {
            jti: jti.clone(),
            subject: "user:default/jane".into(),
            expires_at: now + 60,
        };
        let err = store.record_issued(&issued).await.unwrap_err();
        assert!(matches!(err, StoreError::Invalid(_)), "{jti:?}: {err:?}");
        // A lookup of a jti no token can carry answers None, in every backend alike.
        assert_eq!(store.issued_token(jti, now).await.unwrap(), None, "{jti:?}");
    }
    // 255 bytes is the longest accepted.
    let longest = format!(
        "{}-{}",
        jti("malformed", ""),
        "j".repeat(255 - jti("malformed", "").len() - 1)
    );
    assert_eq!(longest.len(), 255);
    store
        .revoke(&Revocation {
            jti: longest,
            expires_at: now + 60,
        })
        .await
        .unwrap();
    for subject in ["", "user:default/ja\u{1b}ne", &"s".repeat(256)] {
        let issued = IssuedToken {
            jti: jti("malformed", "subject"),
            subject: subject.to_owned(),
            expires_at: now + 60,
        };
        let err = store.record_issued(&issued).await.unwrap_err();
        assert!(
            matches!(err, StoreError::Invalid(_)),
            "{subject:?}: {err:?}"
        );
    }
}

async fn records_issued_tokens_once(store: &dyn Store) {
    let now = unix_now();
    let token = IssuedToken {
        jti: jti("issued", "jane"),
        subject: "user:default/jane".into(),
        expires_at: now + 300,
    };
    store.record_issued(&token).await.unwrap();
    assert_eq!(
        store.issued_token(&token.jti, now).await.unwrap(),
        Some(token.clone())
    );
    // A repeat is refused, identical or not: jtis are random.
    let err = store.record_issued(&token).await.unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err:?}");
    let other = IssuedToken {
        subject: "user:default/mallory".into(),
        expires_at: now + 600,
        ..token.clone()
    };
    let err = store.record_issued(&other).await.unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err:?}");
    assert_eq!(
        store.issued_token(&token.jti, now).await.unwrap(),
        Some(token),
        "the first record stands"
    );
}

async fn an_expired_or_unknown_issued_token_is_none(store: &dyn Store) {
    let now = unix_now();
    let token = IssuedToken {
        jti: jti("expired", "jane"),
        subject: "user:default/jane".into(),
        expires_at: now + 10,
    };
    store.record_issued(&token).await.unwrap();
    assert_eq!(
        store.issued_token(&token.jti, now + 9).await.unwrap(),
        Some(token.clone())
    );
    assert_eq!(
        store.issued_token(&token.jti, now + 10).await.unwrap(),
        None,
        "expired at its exp"
    );
    assert_eq!(
        store
            .issued_token(&jti("expired", "never-issued"), now)
            .await
            .unwrap(),
        None
    );
    // Expired but not yet pruned: still a repeat.
    let err = store.record_issued(&token).await.unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err:?}");
}

#[tokio::test]
async fn memory_store_passes_the_suite() {
    suite(&MemoryStore::new()).await;
}

#[tokio::test]
async fn sqlite_in_memory_passes_the_suite() {
    suite(&SqliteStore::open(":memory:").await.unwrap()).await;
}

#[tokio::test]
async fn sqlite_file_passes_the_suite() {
    let db = TempDb::new("suite");
    suite(&SqliteStore::open(db.path()).await.unwrap()).await;
}

#[tokio::test]
async fn postgres_passes_the_suite() {
    let Some(url) = postgres_url("postgres_passes_the_suite") else {
        return;
    };
    let _serial = SERIAL.lock().await;
    suite(&PostgresStore::connect(&url).await.unwrap()).await;
}

#[tokio::test]
async fn sqlite_revocations_survive_a_restart() {
    let db = TempDb::new("restart");
    let now = unix_now();
    let revocation = Revocation {
        jti: jti("restart", "a"),
        expires_at: now + 60,
    };
    {
        let store = SqliteStore::open(db.path()).await.unwrap();
        store.revoke(&revocation).await.unwrap();
    }
    let store = SqliteStore::open(db.path()).await.unwrap();
    assert_eq!(store.revocations(now).await.unwrap(), vec![revocation]);
}

// ---------------------------------------------------------------------------------------
// Never a partial list

/// Exactly [`MAX_REVOCATIONS_LISTED`] live revocations are listed; one more is refused whole.
async fn assert_listing_is_bounded(
    store: &dyn Store,
    add_live: impl AsyncFn(usize, usize),
    now: i64,
) {
    let before = store.revocations(now).await.unwrap().len();
    add_live(0, MAX_REVOCATIONS_LISTED - before).await;
    assert_eq!(
        store.revocations(now).await.unwrap().len(),
        MAX_REVOCATIONS_LISTED
    );
    add_live(
        MAX_REVOCATIONS_LISTED - before,
        MAX_REVOCATIONS_LISTED - before + 1,
    )
    .await;
    let err = store.revocations(now).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Unavailable(m) if m == "too many live revocations"),
        "{err:?}"
    );
}

#[tokio::test]
async fn memory_refuses_to_list_more_than_the_bound() {
    let _serial = SERIAL.lock().await;
    let store = MemoryStore::new();
    let now = unix_now();
    assert_listing_is_bounded(
        &store,
        async |from, to| {
            for i in from..to {
                let jti = format!("bulk-{i:06}");
                store
                    .revoke(&Revocation {
                        jti,
                        expires_at: now + 60,
                    })
                    .await
                    .unwrap();
            }
        },
        now,
    )
    .await;
}

#[tokio::test]
async fn sqlite_refuses_to_list_more_than_the_bound() {
    let _serial = SERIAL.lock().await;
    let db = TempDb::new("bound");
    let store = SqliteStore::open(db.path()).await.unwrap();
    // Rows written straight into the file, in one statement: a hundred thousand revokes one
    // by one would take minutes.
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.path()))
        .await
        .unwrap();
    let now = unix_now();
    assert_listing_is_bounded(
        &store,
        async |from, to| {
            sqlx::query(
                "WITH RECURSIVE n(i) AS (SELECT ?1 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < ?2) \
                 INSERT INTO s2s_revocations (jti, expires_at) SELECT printf('bulk-%06d', i), ?3 FROM n",
            )
            .bind(from as i64)
            .bind(to as i64)
            .bind(now + 60)
            .execute(&pool)
            .await
            .unwrap();
        },
        now,
    )
    .await;
    pool.close().await;
}

#[tokio::test]
async fn postgres_refuses_to_list_more_than_the_bound() {
    let Some(url) = postgres_url("postgres_refuses_to_list_more_than_the_bound") else {
        return;
    };
    let _serial = SERIAL.lock().await;
    let store = PostgresStore::connect(&url).await.unwrap();
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    let prefix = jti("bulk", "");
    let now = unix_now();
    assert_listing_is_bounded(
        &store,
        async |from, to| {
            sqlx::query(
                "INSERT INTO s2s_auth.revocations (jti, expires_at) \
                 SELECT $1 || lpad(i::text, 6, '0'), $4 FROM generate_series($2::bigint, $3::bigint - 1) AS i",
            )
            .bind(&prefix)
            .bind(from as i64)
            .bind(to as i64)
            .bind(now + 60)
            .execute(&pool)
            .await
            .unwrap();
        },
        now,
    )
    .await;
    sqlx::query("DELETE FROM s2s_auth.revocations WHERE starts_with(jti, $1)")
        .bind(&prefix)
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
}

// ---------------------------------------------------------------------------------------
// Replicas: two denylists on one store

/// The bound the replica tests run with, and the margin a replica may take beyond it (the
/// read itself, a busy test machine).
const STALENESS: Duration = Duration::from_millis(300);
const MARGIN: Duration = Duration::from_millis(150);

/// Two denylists ("replicas") on `a` and `b`, which reach one store: a revoke on A is
/// refused by A at once and by B within the staleness bound.
async fn replicas_see_each_others_revocations(a: Arc<dyn Store>, b: Arc<dyn Store>, check: &str) {
    let (on_a, on_b) = (Denylist::new(a, STALENESS), Denylist::new(b, STALENESS));
    let j = jti(check, "revoked");
    // Nothing read yet: neither can prove the token clear.
    assert_eq!(on_b.check(&j, unix_now()), Listed::Stale);
    on_a.start();
    on_b.start();
    for replica in [&on_a, &on_b] {
        time_until(replica, &j, Listed::Clear, Duration::from_secs(2))
            .await
            .expect("the first read makes it clear");
    }
    let revoked_at = Instant::now();
    on_a.revoke(&j, unix_now() + 60).await.unwrap();
    assert_eq!(
        on_a.check(&j, unix_now()),
        Listed::Revoked,
        "refused at once where revoked"
    );
    let seen = time_until(&on_b, &j, Listed::Revoked, Duration::from_secs(3))
        .await
        .map(|_| revoked_at.elapsed())
        .expect("the other replica sees the revoke");
    assert!(seen < STALENESS + MARGIN, "B saw it after {seen:?}");
    // An unrelated token stays clear on both.
    assert_eq!(on_b.check(&jti(check, "other"), unix_now()), Listed::Clear);
    assert_eq!(on_a.check(&jti(check, "other"), unix_now()), Listed::Clear);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_replicas_see_each_others_revocations() {
    let _serial = SERIAL.lock().await;
    let store = Arc::new(MemoryStore::new());
    replicas_see_each_others_revocations(store.clone(), store, "memory-replicas").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_replicas_on_one_file_see_each_others_revocations() {
    let _serial = SERIAL.lock().await;
    let db = TempDb::new("replicas");
    let a = SqliteStore::open(db.path()).await.unwrap();
    let b = SqliteStore::open(db.path()).await.unwrap();
    assert!(b.revocation_signal().is_none(), "SQLite: polling only");
    replicas_see_each_others_revocations(Arc::new(a), Arc::new(b), "sqlite-replicas").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_replicas_see_each_others_revocations() {
    let Some(url) = postgres_url("postgres_replicas_see_each_others_revocations") else {
        return;
    };
    let _serial = SERIAL.lock().await;
    let a = PostgresStore::connect(&url).await.unwrap();
    let b = PostgresStore::connect(&url).await.unwrap();
    replicas_see_each_others_revocations(Arc::new(a), Arc::new(b), "postgres-replicas").await;
}

#[tokio::test]
async fn memory_store_wakes_every_holder_on_revoke() {
    let store = MemoryStore::new();
    let mut signal = store.revocation_signal().expect("a MemoryStore signals");
    store
        .revoke(&Revocation {
            jti: jti("memory-signal", "a"),
            expires_at: unix_now() + 60,
        })
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(1), signal.changed())
        .await
        .expect("woken at once")
        .unwrap();
}

/// PostgreSQL: the notification wakes the other replica long before its next poll.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_notification_beats_the_poll() {
    let Some(url) = postgres_url("postgres_notification_beats_the_poll") else {
        return;
    };
    let _serial = SERIAL.lock().await;
    // A 10 s bound: polls every 5 s, so a revoke seen within 2 s was announced.
    let staleness = Duration::from_secs(10);
    let a: Arc<dyn Store> = Arc::new(PostgresStore::connect(&url).await.unwrap());
    let b: Arc<dyn Store> = Arc::new(PostgresStore::connect(&url).await.unwrap());
    // B's listener announces itself once it listens (the first wake-up); the denylist's own
    // receiver shares that listener.
    let mut listening = b.revocation_signal().expect("PostgreSQL signals");
    tokio::time::timeout(Duration::from_secs(5), listening.changed())
        .await
        .expect("listening within 5 s")
        .unwrap();
    let (on_a, on_b) = (Denylist::new(a, staleness), Denylist::new(b, staleness));
    on_a.start();
    on_b.start();
    let j = jti("notify", "revoked");
    time_until(&on_b, &j, Listed::Clear, Duration::from_secs(5))
        .await
        .expect("the first read makes it clear");
    let revoked_at = Instant::now();
    on_a.revoke(&j, unix_now() + 60).await.unwrap();
    time_until(&on_b, &j, Listed::Revoked, Duration::from_secs(4))
        .await
        .expect("B sees the revoke");
    let seen = revoked_at.elapsed();
    assert!(
        seen < Duration::from_secs(2),
        "B saw it after {seen:?}: by the poll, not the notification"
    );
}

/// The number of sessions listening on the revocation channel (their last statement).
async fn listeners(conn: &mut sqlx::PgConnection) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity \
         WHERE datname = current_database() AND query = 'LISTEN \"s2s_auth_revocations\"'",
    )
    .fetch_one(conn)
    .await
    .unwrap()
}

/// The listener runs while someone holds a receiver, wakes its receivers after a reconnect
/// (notifications may have been lost meanwhile), and closes its connection once every
/// receiver is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_signal_reconnects_and_ends_with_its_receivers() {
    let Some(url) = postgres_url("postgres_signal_reconnects_and_ends_with_its_receivers") else {
        return;
    };
    let _serial = SERIAL.lock().await;
    use sqlx::Connection;
    let mut admin = sqlx::PgConnection::connect(&url).await.unwrap();
    let before = listeners(&mut admin).await;
    let store = PostgresStore::connect(&url).await.unwrap();
    let mut first = store.revocation_signal().unwrap();
    let second = store.revocation_signal().unwrap();
    tokio::time::timeout(Duration::from_secs(5), first.changed())
        .await
        .expect("listening")
        .unwrap();
    assert_eq!(
        listeners(&mut admin).await,
        before + 1,
        "one listener per store, shared"
    );

    // The server drops the listening session: the listener reconnects and wakes its receivers.
    let terminated: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND query = 'LISTEN \"s2s_auth_revocations\"' \
         AND backend_start > now() - interval '1 hour' AND pid <> pg_backend_pid() \
         ORDER BY backend_start DESC LIMIT 1) AS t",
    )
    .fetch_one(&mut admin)
    .await
    .unwrap();
    assert_eq!(terminated, 1);
    tokio::time::timeout(Duration::from_secs(5), first.changed())
        .await
        .expect("woken after the reconnect")
        .unwrap();
    // And it listens again: a revoke is announced.
    store
        .revoke(&Revocation {
            jti: jti("reconnect", "a"),
            expires_at: unix_now() + 60,
        })
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(5), first.changed())
        .await
        .expect("a revoke after the reconnect is announced")
        .unwrap();

    drop((first, second));
    let deadline = Instant::now() + Duration::from_secs(5);
    while listeners(&mut admin).await > before {
        assert!(
            Instant::now() < deadline,
            "the listener outlived its receivers"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A later subscriber starts a new one.
    let mut again = store.revocation_signal().unwrap();
    tokio::time::timeout(Duration::from_secs(5), again.changed())
        .await
        .expect("listening again")
        .unwrap();
    admin.close().await.unwrap();
}

// ---------------------------------------------------------------------------------------
// Failing closed

/// A store whose reads of the revocations fail while `failing` is set.
#[derive(Default)]
struct Flaky {
    inner: MemoryStore,
    failing: AtomicBool,
}

impl Store for Flaky {
    fn put_public_key<'a>(&'a self, key: &'a PublicKeyRecord) -> StoreFuture<'a, ()> {
        self.inner.put_public_key(key)
    }

    fn public_keys<'a>(
        &'a self,
        service_id: &'a str,
        now: i64,
    ) -> StoreFuture<'a, Vec<PublicKeyRecord>> {
        self.inner.public_keys(service_id, now)
    }

    fn prune_public_keys(&self, now: i64) -> StoreFuture<'_, u64> {
        self.inner.prune_public_keys(now)
    }

    fn revoke<'a>(&'a self, revocation: &'a Revocation) -> StoreFuture<'a, ()> {
        self.inner.revoke(revocation)
    }

    fn revocations(&self, now: i64) -> StoreFuture<'_, Vec<Revocation>> {
        if self.failing.load(Ordering::SeqCst) {
            return Box::pin(async { Err(StoreError::Unavailable("the database is down".into())) });
        }
        self.inner.revocations(now)
    }
    // No signal: the denylist polls.
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_cannot_read_the_store_goes_stale_then_recovers() {
    let _serial = SERIAL.lock().await;
    let store = Arc::new(Flaky::default());
    let denylist = Denylist::new(store.clone(), STALENESS);
    let (token, revoked) = (jti("flaky", "token"), jti("flaky", "revoked"));
    denylist.start();
    time_until(&denylist, &token, Listed::Clear, Duration::from_secs(2))
        .await
        .expect("the first read makes it clear");
    denylist.revoke(&revoked, unix_now() + 60).await.unwrap();

    store.failing.store(true, Ordering::SeqCst);
    let failed_at = Instant::now();
    time_until(&denylist, &token, Listed::Stale, Duration::from_secs(2))
        .await
        .expect("stale once the staleness has passed");
    let stale_after = failed_at.elapsed();
    // The last good read was at most a poll before the failure began.
    assert!(
        stale_after <= STALENESS + MARGIN,
        "stale only after {stale_after:?}"
    );
    // What is known to be revoked stays refused as revoked.
    assert_eq!(denylist.check(&revoked, unix_now()), Listed::Revoked);

    store.failing.store(false, Ordering::SeqCst);
    let recovered = time_until(&denylist, &token, Listed::Clear, Duration::from_secs(2))
        .await
        .expect("clear again after the store recovers");
    assert!(
        recovered <= STALENESS / 2 + MARGIN,
        "clear only after {recovered:?}"
    );
    assert_eq!(denylist.check(&revoked, unix_now()), Listed::Revoked);
}

#[tokio::test]
async fn a_store_without_revocations_leaves_every_token_stale() {
    /// A store written before revocations existed.
    struct KeysOnly(MemoryStore);
    impl Store for KeysOnly {
        fn put_public_key<'a>(&'a self, key: &'a PublicKeyRecord) -> StoreFuture<'a, ()> {
            self.0.put_public_key(key)
        }
        fn public_keys<'a>(
            &'a self,
            service_id: &'a str,
            now: i64,
        ) -> StoreFuture<'a, Vec<PublicKeyRecord>> {
            self.0.public_keys(service_id, now)
        }
        fn prune_public_keys(&self, now: i64) -> StoreFuture<'_, u64> {
            self.0.prune_public_keys(now)
        }
    }
    let denylist = Denylist::new(Arc::new(KeysOnly(MemoryStore::new())), STALENESS);
    let err = denylist.sync().await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert_eq!(denylist.check("any", unix_now()), Listed::Stale);
    // A revoke it cannot store is still refused here, and reported.
    let err = denylist
        .revoke("local-only", unix_now() + 60)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert_eq!(denylist.check("local-only", unix_now()), Listed::Revoked);
    // A jti the store would refuse is refused, and not listed.
    let denylist = Denylist::new(Arc::new(MemoryStore::new()), STALENESS);
    let err = denylist
        .revoke("bad\njti", unix_now() + 60)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err:?}");
    denylist.sync().await.unwrap();
    assert_eq!(denylist.check("bad\njti", unix_now()), Listed::Clear);
}

/// A store with a signal the test holds the sending side of.
struct Signalling {
    inner: MemoryStore,
    signal: tokio::sync::watch::Sender<u64>,
}

impl Store for Signalling {
    fn put_public_key<'a>(&'a self, key: &'a PublicKeyRecord) -> StoreFuture<'a, ()> {
        self.inner.put_public_key(key)
    }
    fn public_keys<'a>(
        &'a self,
        service_id: &'a str,
        now: i64,
    ) -> StoreFuture<'a, Vec<PublicKeyRecord>> {
        self.inner.public_keys(service_id, now)
    }
    fn prune_public_keys(&self, now: i64) -> StoreFuture<'_, u64> {
        self.inner.prune_public_keys(now)
    }
    fn revocations(&self, now: i64) -> StoreFuture<'_, Vec<Revocation>> {
        self.inner.revocations(now)
    }
    fn revocation_signal(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        Some(self.signal.subscribe())
    }
}

#[tokio::test]
async fn the_task_wakes_on_the_signal_and_ends_with_the_denylist() {
    let store = Arc::new(Signalling {
        inner: MemoryStore::new(),
        signal: tokio::sync::watch::channel(0).0,
    });
    // A long bound: every read after the first is the signal's doing.
    let denylist = Denylist::new(store.clone(), Duration::from_secs(60));
    denylist.start();
    assert_eq!(
        Arc::strong_count(&denylist),
        1,
        "the task holds only a Weak"
    );
    assert_eq!(store.signal.receiver_count(), 1, "the task listens");
    let j = jti("signal", "revoked");
    time_until(&denylist, &j, Listed::Clear, Duration::from_secs(2))
        .await
        .expect("the first read makes it clear");
    // Revoked behind the denylist's back (as another replica would), then signalled.
    store
        .inner
        .revoke(&Revocation {
            jti: j.clone(),
            expires_at: unix_now() + 60,
        })
        .await
        .unwrap();
    assert_eq!(
        denylist.check(&j, unix_now()),
        Listed::Clear,
        "not read yet"
    );
    store.signal.send_modify(|n| *n += 1);
    time_until(&denylist, &j, Listed::Revoked, Duration::from_secs(1))
        .await
        .expect("read at once on the signal");

    drop(denylist);
    let dropped = Instant::now();
    while store.signal.receiver_count() > 0 {
        assert!(
            dropped.elapsed() < Duration::from_secs(1),
            "the task outlived its denylist"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

// ---------------------------------------------------------------------------------------
// Secrets in Debug

#[tokio::test]
async fn debug_of_a_denylist_does_not_show_its_jtis() {
    let store = Arc::new(MemoryStore::new());
    let denylist = Denylist::new(store.clone(), STALENESS);
    let j = jti("debug", "f3a9c2e71b");
    denylist.revoke(&j, unix_now() + 60).await.unwrap();
    assert_eq!(denylist.check(&j, unix_now()), Listed::Revoked);
    let shown = format!("{denylist:?} {denylist:#?} {store:?}");
    assert!(
        !shown.contains(&j) && !shown.contains("f3a9c2e71b"),
        "{shown}"
    );
    assert!(shown.contains("entries: 1"), "{shown}");
}
