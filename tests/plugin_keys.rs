//! The keys behind plugin-to-plugin tokens, through real servers on `127.0.0.1:0`: the
//! published JWKS, replicas sharing a store, rotation, pruning of expired keys, restarts,
//! and a failing store.
//!
//! The PostgreSQL test reads `S2S_TEST_POSTGRES_URL`. Without it, it prints `SKIPPED` and
//! passes, except under `CI=true`, where it fails (`.ci/run` starts a server and sets it).

mod common;

use common::postgres_url;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use http::StatusCode;
use s2s_auth::error::IssueError;
use s2s_auth::plugin::JWKS_PATH;
use s2s_auth::store::{
    MemoryStore, PostgresStore, PublicKeyRecord, SqliteStore, Store, StoreError, StoreFuture,
};
use s2s_auth::{Auth, DefaultPolicy, PluginTokens, StaticDiscovery};
use serde_json::{Value, json};

use common::kit::{SigningKey, header_and_claims, now};
use common::plugin::{Issuer, Receiver, kid, memory_store, sorted};
use common::{SERVICE, assert_keys_unavailable, serve};

/// How long a replica may serve its last copy of the published keys (the JWKS is read from
/// the store at most every 5 s), with a margin.
const PUBLISHED_REFRESH: Duration = Duration::from_millis(5_200);

/// Asserts `published` holds the `signing` keys and `next` more: the keys published ahead
/// of their turn, one per process that signed (issue 10: our next key is in our JWKS a key
/// duration before it signs). Returns those others.
#[track_caller]
fn signing_and_next(published: &[String], signing: &[&String], next: usize) -> Vec<String> {
    for kid in signing {
        assert!(published.contains(kid), "{kid} not in {published:?}");
    }
    let others: Vec<String> = published
        .iter()
        .filter(|k| !signing.contains(k))
        .cloned()
        .collect();
    assert_eq!(others.len(), next, "next keys in {published:?}");
    others
}

/// Lower-case hex of six random bytes: names no other run uses.
fn random_hex() -> String {
    common::kit::random_hex(6)
}

// ---------------------------------------------------------------------------------------
// The published JWKS
// ---------------------------------------------------------------------------------------

/// JWK members only private or symmetric keys have (RFC 7518 section 6).
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// Every object member name anywhere in `value`.
fn member_names(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (name, v) in map {
                out.push(name.clone());
                member_names(v, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| member_names(v, out)),
        _ => {}
    }
}

#[tokio::test]
async fn published_jwks_is_public_and_holds_only_public_keys() {
    let auth = Auth::builder("scaffolder")
        .plugin_tokens(PluginTokens::new(memory_store()))
        .default_policy(DefaultPolicy::Deny)
        .build()
        .expect("valid configuration");
    let app: Router = auth
        .jwks_router()
        .route("/entities", get(|| async { "not for everyone" }))
        .layer(auth.layer());
    let server = serve(app).await;
    let jwks_url = format!("{}{JWKS_PATH}", server.base);
    let http = reqwest::Client::new();

    // Nothing issued yet: nothing published.
    let empty: Value = reqwest::get(&jwks_url)
        .await
        .expect("answers")
        .json()
        .await
        .expect("JSON");
    assert_eq!(empty, json!({ "keys": [] }));

    let token = auth
        .plugin_token("catalog")
        .await
        .expect("a token")
        .expose_secret()
        .to_owned();
    let second = auth
        .plugin_token("search")
        .await
        .expect("a token")
        .expose_secret()
        .to_owned();
    assert_eq!(kid(&second), kid(&token), "one current key signs both");

    // No credentials, under `DefaultPolicy::Deny`: still public.
    let response = http.get(&jwks_url).send().await.expect("answers");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok()),
        Some("application/json")
    );
    let body = response.text().await.expect("a body");
    let jwks: Value = serde_json::from_str(&body).expect("JSON");
    let top: Vec<&String> = jwks.as_object().expect("an object").keys().collect();
    assert_eq!(top, ["keys"]);
    let keys = jwks["keys"].as_array().expect("a list");
    // The key that signs, and the next one, published a key duration ahead of its turn.
    assert_eq!(keys.len(), 2);
    for key in keys {
        assert_eq!(key["kty"], "EC");
        assert_eq!(key["crv"], "P-256");
        assert_eq!(key["alg"], "ES256");
        assert_eq!(key["use"], "sig");
        assert!(key["x"].is_string() && key["y"].is_string(), "{key}");
    }
    assert!(keys.iter().any(|k| k["kid"] == kid(&token).as_str()));
    let mut names = Vec::new();
    member_names(&jwks, &mut names);
    for private in PRIVATE_MEMBERS {
        assert!(
            !names.iter().any(|n| n == private),
            "private member `{private}` published: {body}"
        );
    }

    // A bad credential does not break the public route either.
    let response = http
        .get(&jwks_url)
        .bearer_auth("not-a-valid-token-at-all")
        .send()
        .await
        .expect("answers");
    assert_eq!(response.status(), StatusCode::OK);
    // The rest of the router is still guarded.
    let response = http
        .get(format!("{}/entities", server.base))
        .send()
        .await
        .expect("answers");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

// ---------------------------------------------------------------------------------------
// Replicas, rotation, pruning, restarts
// ---------------------------------------------------------------------------------------

/// Two replicas of `service` (stores `a` and `b`, one database) each sign with a key of
/// their own; a receiver finding the service at either replica verifies tokens from both.
/// Then replica A rotates (its successor on store `a2` publishes a new key): old and new
/// tokens verify on receivers pointed at either replica, and both replicas publish the
/// same three keys.
async fn replicas_verify_each_others_tokens(
    service: &str,
    key_duration: Duration,
    a: Arc<dyn Store>,
    b: Arc<dyn Store>,
    a2: Arc<dyn Store>,
) {
    let tokens = |store| PluginTokens::new(store).key_duration(key_duration);
    let replica_a = Issuer::with(tokens(a), service).await;
    let replica_b = Issuer::with(tokens(b), service).await;

    let from_a = replica_a.token("catalog").await;
    let from_b = replica_b.token("catalog").await;
    let (ka1, kb1) = (kid(&from_a), kid(&from_b));
    assert_ne!(ka1, kb1, "each replica signs with a key of its own");
    let (_, claims) = header_and_claims(&from_a);
    let lifetime = claims["exp"].as_u64().expect("exp") - claims["iat"].as_u64().expect("iat");
    assert!(
        lifetime <= key_duration.as_secs(),
        "a token ({lifetime} s) does not outlive its key's signing window"
    );

    for replica in [&replica_a, &replica_b] {
        // Every replica publishes every replica's keys, each with its next key.
        signing_and_next(&replica.published_kids().await, &[&ka1, &kb1], 2);
        let catalog = Receiver::knowing(SERVICE, service, replica.base()).await;
        catalog.accepts(&from_a, service).await;
        catalog.accepts(&from_b, service).await;
    }

    // Replica A rotates: its successor signs with a new key; replica B keeps its own.
    drop(replica_a);
    let replica_a2 = Issuer::with(tokens(a2), service).await;
    let from_a2 = replica_a2.token("catalog").await;
    let ka2 = kid(&from_a2);
    assert!(ka2 != ka1 && ka2 != kb1, "a new key after rotation");
    let from_b2 = replica_b.token("catalog").await;
    assert_eq!(kid(&from_b2), kb1, "B's key is still current");

    // A replica serves its copy of the published keys for up to 5 s: the first key of a
    // new process (A2's) is the one key that signs as soon as it is published, so B lists it
    // once its copy is read again.
    tokio::time::sleep(PUBLISHED_REFRESH).await;
    for replica in [&replica_a2, &replica_b] {
        // The old key stays published next to the new one (and A's next key, which A2
        // never got to use, until it expires).
        signing_and_next(&replica.published_kids().await, &[&ka1, &kb1, &ka2], 3);
        let catalog = Receiver::knowing(SERVICE, service, replica.base()).await;
        for token in [&from_a, &from_b, &from_a2, &from_b2] {
            catalog.accepts(token, service).await;
        }
    }
}

#[tokio::test]
async fn replicas_on_one_store_verify_each_others_tokens_before_and_after_rotation() {
    let store = memory_store();
    replicas_verify_each_others_tokens(
        "scaffolder",
        Duration::from_secs(3600),
        store.clone(),
        store.clone(),
        store,
    )
    .await;
}

#[tokio::test]
async fn replicas_on_one_postgres_verify_each_others_tokens_before_and_after_rotation() {
    let test = "replicas_on_one_postgres_verify_each_others_tokens_before_and_after_rotation";
    let Some(url) = postgres_url(test) else {
        return;
    };
    // One connection pool per replica, as separate processes would have. A service id of
    // this run's own, so runs sharing the database never see each other's keys.
    let connect = || async {
        let store: Arc<dyn Store> = Arc::new(
            PostgresStore::connect(&url)
                .await
                .expect("PostgreSQL is reachable"),
        );
        store
    };
    let service = format!("catalog_{}", random_hex());
    // Ten-minute keys: what a run leaves behind expires within half an hour.
    replicas_verify_each_others_tokens(
        &service,
        Duration::from_secs(600),
        connect().await,
        connect().await,
        connect().await,
    )
    .await;
}

/// A public key record of `service` expiring at `expires_at`.
fn record(service: &str, kid: &str, expires_at: i64) -> PublicKeyRecord {
    PublicKeyRecord {
        service_id: service.to_owned(),
        kid: kid.to_owned(),
        jwk: SigningKey::es256(kid).jwk(),
        expires_at,
    }
}

/// Expired keys (of every service) leave the store when a key rotates in; the others stay.
async fn expired_keys_are_pruned(store: Arc<dyn Store>) {
    let t = now() as i64;
    let expired = record("scaffolder", "expired-key", t - 10);
    let expired_elsewhere = record("search", "expired-search-key", t - 1);
    let live_elsewhere = record("search", "live-search-key", t + 3600);
    for r in [&expired, &expired_elsewhere, &live_elsewhere] {
        store.put_public_key(r).await.expect("stored");
    }
    // Held (listed when asked about an earlier time), though not published now.
    assert_eq!(
        store.public_keys("scaffolder", 0).await.expect("listed"),
        vec![expired.clone()]
    );

    let scaffolder = Issuer::start("scaffolder", store.clone()).await;
    assert!(scaffolder.published_kids().await.is_empty());
    let token = scaffolder.token("catalog").await;

    let held: Vec<String> = store
        .public_keys("scaffolder", 0)
        .await
        .expect("listed")
        .into_iter()
        .map(|r| r.kid)
        .collect();
    // The expired key is gone, not just hidden; the signing key and the next one are held.
    signing_and_next(&held, &[&kid(&token)], 1);
    assert_eq!(
        store.public_keys("search", 0).await.expect("listed"),
        vec![live_elsewhere],
        "another service's expired key is pruned too, its live key kept"
    );
    assert_eq!(scaffolder.published_kids().await, sorted(held));
    assert_eq!(store.prune_public_keys(t).await.expect("pruned"), 0);
}

#[tokio::test]
async fn expired_keys_are_pruned_on_rotation_in_memory() {
    expired_keys_are_pruned(memory_store()).await;
}

#[tokio::test]
async fn expired_keys_are_pruned_on_rotation_in_sqlite() {
    let store = SqliteStore::open(":memory:").await.expect("SQLite opens");
    expired_keys_are_pruned(Arc::new(store)).await;
}

/// A SQLite file in the temporary directory, removed (with its WAL files) when dropped.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str) -> Self {
        Self(std::env::temp_dir().join(format!(
            "s2s-auth-{name}-{}-{}.sqlite",
            std::process::id(),
            random_hex()
        )))
    }

    fn path(&self) -> &str {
        self.0.to_str().expect("a UTF-8 temporary path")
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", self.path()));
        }
    }
}

#[tokio::test]
async fn restarted_service_on_sqlite_keeps_verifying_tokens_signed_before() {
    let file = TempFile::new("plugin-restart");
    let open = || async {
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open(file.path()).await.expect("SQLite opens"));
        store
    };

    let before = {
        let scaffolder = Issuer::start("scaffolder", open().await).await;
        let token = scaffolder.token("catalog").await;
        Receiver::knowing(SERVICE, "scaffolder", scaffolder.base())
            .await
            .accepts(&token, "scaffolder")
            .await;
        token
        // The service and its store end here.
    };

    // Restarted: a new process would open the file again and listen on another port.
    let scaffolder = Issuer::start("scaffolder", open().await).await;
    let earlier_next = signing_and_next(&scaffolder.published_kids().await, &[&kid(&before)], 1);
    let catalog = Receiver::knowing(SERVICE, "scaffolder", scaffolder.base()).await;
    catalog.accepts(&before, "scaffolder").await;

    // Private keys are never stored: the restarted service signs with a new key, and both
    // stay published.
    let after = scaffolder.token("catalog").await;
    assert_ne!(kid(&after), kid(&before));
    assert!(
        !earlier_next.contains(&kid(&after)),
        "its private half died"
    );
    signing_and_next(
        &scaffolder.published_kids().await,
        &[&kid(&before), &kid(&after), &earlier_next[0]],
        1,
    );
    Receiver::knowing(SERVICE, "scaffolder", scaffolder.base())
        .await
        .accepts(&after, "scaffolder")
        .await;
    drop(scaffolder);
    drop(catalog);
    drop(file);
}

/// A real rotation: waits one minimal key duration (60 s), so it only runs when asked:
/// `cargo test --test plugin_keys -- --ignored`.
#[tokio::test]
#[ignore = "waits 61 s for a real key rotation"]
async fn key_rotates_after_the_key_duration() {
    let key_duration = Duration::from_secs(60);
    let scaffolder = Issuer::with(
        PluginTokens::new(memory_store()).key_duration(key_duration),
        "scaffolder",
    )
    .await;
    // A receiver with the same key duration, which caches the key set it fetches.
    let catalog = Receiver::from_builder(
        Auth::builder(SERVICE)
            .plugin_tokens(PluginTokens::new(memory_store()).key_duration(key_duration))
            .discovery(StaticDiscovery::new([("scaffolder", scaffolder.base())])),
    )
    .await;
    let first = scaffolder.token("catalog").await;
    catalog.accepts(&first, "scaffolder").await;

    tokio::time::sleep(key_duration + Duration::from_secs(1)).await;
    let second = scaffolder.token("catalog").await;
    assert_ne!(
        kid(&second),
        kid(&first),
        "a new key after the key duration"
    );
    // The new key is the one published with the first, and the key after it is out too.
    signing_and_next(
        &scaffolder.published_kids().await,
        &[&kid(&first), &kid(&second)],
        1,
    );
    // The receiver's cached set has the new kid since its first fetch.
    catalog.accepts(&second, "scaffolder").await;
}

#[tokio::test]
async fn same_short_key_duration_on_issuer_and_receiver_verifies() {
    let key_duration = Duration::from_secs(60);
    let scaffolder = Issuer::with(
        PluginTokens::new(memory_store()).key_duration(key_duration),
        "scaffolder",
    )
    .await;
    let catalog = Receiver::from_builder(
        Auth::builder(SERVICE)
            .plugin_tokens(PluginTokens::new(memory_store()).key_duration(key_duration))
            .discovery(StaticDiscovery::new([("scaffolder", scaffolder.base())])),
    )
    .await;
    let token = scaffolder.token("catalog").await;
    let (_, claims) = header_and_claims(&token);
    let lifetime = claims["exp"].as_u64().expect("exp") - claims["iat"].as_u64().expect("iat");
    assert_eq!(lifetime, 60, "a token lives as long as its key signs");
    catalog.accepts(&token, "scaffolder").await;
}

// ---------------------------------------------------------------------------------------
// A failing store
// ---------------------------------------------------------------------------------------

/// A [`MemoryStore`] whose writes or reads can be made to fail.
#[derive(Default)]
struct FlakyStore {
    inner: MemoryStore,
    fail_puts: AtomicBool,
    fail_lists: AtomicBool,
    puts: AtomicUsize,
}

fn unavailable<T>() -> Result<T, StoreError> {
    Err(StoreError::Unavailable("test: the database is down".into()))
}

impl Store for FlakyStore {
    fn put_public_key<'a>(&'a self, key: &'a PublicKeyRecord) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            self.puts.fetch_add(1, Ordering::SeqCst);
            if self.fail_puts.load(Ordering::SeqCst) {
                return unavailable();
            }
            self.inner.put_public_key(key).await
        })
    }

    fn public_keys<'a>(
        &'a self,
        service_id: &'a str,
        now: i64,
    ) -> StoreFuture<'a, Vec<PublicKeyRecord>> {
        Box::pin(async move {
            if self.fail_lists.load(Ordering::SeqCst) {
                return unavailable();
            }
            self.inner.public_keys(service_id, now).await
        })
    }

    fn prune_public_keys(&self, now: i64) -> StoreFuture<'_, u64> {
        self.inner.prune_public_keys(now)
    }
}

#[tokio::test]
async fn no_token_is_signed_with_a_key_the_store_did_not_take() {
    let store = Arc::new(FlakyStore::default());
    store.fail_puts.store(true, Ordering::SeqCst);
    let scaffolder = Issuer::start("scaffolder", store.clone()).await;

    for _ in 0..2 {
        match scaffolder.auth.plugin_token("catalog").await {
            Err(IssueError::Store(StoreError::Unavailable(m))) => {
                assert!(m.contains("database is down"), "{m}");
            }
            Err(e) => panic!("expected a store error, got {e}"),
            Ok(_) => panic!("a token signed by a key that was never published"),
        }
    }
    assert_eq!(store.puts.load(Ordering::SeqCst), 2, "each attempt tried");
    assert_eq!(scaffolder.jwks().await, json!({ "keys": [] }));

    // The store is back: the key is published first, then signs.
    store.fail_puts.store(false, Ordering::SeqCst);
    let token = scaffolder.token("catalog").await;
    signing_and_next(&scaffolder.published_kids().await, &[&kid(&token)], 1);
    Receiver::knowing(SERVICE, "scaffolder", scaffolder.base())
        .await
        .accepts(&token, "scaffolder")
        .await;
}

#[tokio::test]
async fn jwks_route_answers_503_when_the_store_fails() {
    let store = Arc::new(FlakyStore::default());
    let scaffolder = Issuer::start("scaffolder", store.clone()).await;
    let token = scaffolder.token("catalog").await;
    store.fail_lists.store(true, Ordering::SeqCst);

    let response = scaffolder.get_jwks().await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        response
            .headers()
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok()),
        Some("5")
    );

    // A receiver that never had the keys cannot verify: 503 with Retry-After, not a 401
    // (the token is not at fault).
    let catalog = Receiver::knowing(SERVICE, "scaffolder", scaffolder.base()).await;
    let (reply, event) = catalog.call(&token).await;
    assert_keys_unavailable(&reply, &event);

    // The store is back: a receiver (a fresh one; the first waits out its retry) verifies.
    store.fail_lists.store(false, Ordering::SeqCst);
    Receiver::knowing(SERVICE, "scaffolder", scaffolder.base())
        .await
        .accepts(&token, "scaffolder")
        .await;
}
