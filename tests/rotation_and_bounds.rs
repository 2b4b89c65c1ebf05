//! Key rotation without a 401, and bounded work for an attacker (issue 10, items 4 and 5):
//! one test per attack, against in-process key servers on `127.0.0.1:0` and in-memory key
//! fetchers. Everything here runs with the default JWKS cache settings unless it says
//! otherwise: a budget of 9 forced fetches per URL, one more every 30 s, never more than 10
//! in a minute.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use common::kit::*;
use common::plugin::{Issuer, kid, kids_of};
use common::*;
use http::Method;
use s2s_auth::jwks::JwksCacheConfig;
use s2s_auth::plugin::{JWKS_PATH, PLUGIN_TYP, ServiceDiscovery};
use s2s_auth::store::{MemoryStore, PublicKeyRecord, Store, StoreFuture};
use s2s_auth::{Auth, JwksAccess, PluginTokens, StaticDiscovery, UserProvider};
use serde_json::json;

const ISSUER: &str = "https://idp.example.com";

/// A service with one `jwks` entry at `url` (issuer [`ISSUER`], audience `catalog`).
fn harness(url: &str, config: JwksCacheConfig) -> Harness {
    Harness::new(
        Auth::builder(SERVICE)
            .jwks_access(JwksAccess::new(url).issuers([ISSUER]).audiences([SERVICE]))
            .jwks_cache_config(config),
    )
}

/// A fresh token (unique `jti`) signed by `key`, naming `kid` (or none).
fn token_naming(key: &SigningKey, kid: Option<&str>) -> String {
    let mut header = key.header();
    header.kid = kid.map(str::to_owned);
    let mut c = claims(ISSUER, SERVICE, "ci-bot");
    c["jti"] = json!(random_hex(8));
    key.sign_with(header, &c)
}

fn token(key: &SigningKey) -> String {
    token_naming(key, Some(&key.kid))
}

/// Sends every token at once (one task each) and returns the replies in order.
async fn concurrently(router: &Router, tokens: Vec<String>) -> Vec<Reply> {
    let tasks: Vec<_> = tokens
        .into_iter()
        .map(|t| {
            let router = router.clone();
            tokio::spawn(async move { send(&router, bearer(Method::GET, "/entities", &t)).await })
        })
        .collect();
    let mut replies = Vec::with_capacity(tasks.len());
    for task in tasks {
        replies.push(task.await.expect("request task"));
    }
    replies
}

fn unknown_key_challenge() -> String {
    challenge("invalid_token", "signing key is unknown (kid)")
}

// ---------------------------------------------------------------------------------------
// Rotation and kid storms
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn rotation_right_after_a_fetch_is_picked_up_at_once_while_made_up_kids_stay_bounded() {
    let started = Instant::now();
    let old = SigningKey::es256("k1");
    let new = SigningKey::es256("k2");
    let server = KeyServer::start(&[&old]).await;
    let h = harness(&server.jwks_url(), JwksCacheConfig::default());
    let (reply, event) = h.call(Method::GET, "/x", Some(&token(&old))).await;
    assert_allowed(&reply, &event);
    assert_eq!(server.jwks_hits(), 1);

    // The provider rotates right after our fetch: the next request with the new kid is
    // verified with exactly one fetch, no 401 meanwhile (the old cooldown gave 30 s of them).
    server.set_keys(&[&old, &new]);
    let (reply, event) = h.call(Method::GET, "/x", Some(&token(&new))).await;
    assert_allowed(&reply, &event);
    assert_eq!(server.jwks_hits(), 2, "one fetch for the new key");

    // 400 made-up kids, in waves of 20 concurrent requests: all 401, a bounded number of
    // fetches.
    for _wave in 0..20 {
        let tokens = (0..20)
            .map(|_| token_naming(&new, Some(&format!("made-up-{}", random_hex(8)))))
            .collect();
        for reply in concurrently(&h.router, tokens).await {
            assert_eq!(reply.status.as_u16(), 401, "{}", reply.body);
            assert_eq!(
                reply.www_authenticate(),
                Some(unknown_key_challenge().as_str())
            );
        }
    }
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "the bound is per minute"
    );
    let fetches = server.jwks_hits();
    assert!(fetches <= 10, "{fetches} fetches in a minute");
    // Known keys are unaffected, from the cache.
    for key in [&old, &new] {
        let (reply, event) = h.call(Method::GET, "/x", Some(&token(key))).await;
        assert_allowed(&reply, &event);
    }
    assert_eq!(server.jwks_hits(), fetches);
}

// ---------------------------------------------------------------------------------------
// OIDC discovery
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn failing_discovery_endpoint_under_100_concurrent_tokens_is_fetched_at_most_10_times() {
    let started = Instant::now();
    let idp = Idp::start("idp-1").await;
    // No discovery document under this issuer: the server answers 404.
    let issuer = format!("{}/missing", idp.issuer);
    let h = Harness::new(
        Auth::builder(SERVICE).user_provider(UserProvider::oidc(&issuer).audiences([SERVICE])),
    );
    let token = |i: usize| {
        let now = now();
        idp.key.sign(&json!({
            "iss": issuer, "sub": format!("user-{i}"), "aud": SERVICE,
            "iat": now, "exp": now + 300,
        }))
    };
    for wave in 0..5 {
        let tokens = (0..100).map(|i| token(wave * 100 + i)).collect();
        for reply in concurrently(&h.router, tokens).await {
            assert_eq!(reply.status.as_u16(), 503, "{}", reply.body);
            assert!(reply.headers.contains_key(http::header::RETRY_AFTER));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(started.elapsed() < Duration::from_secs(60));
    let fetches = idp.server.total_hits();
    assert!((1..=10).contains(&fetches), "{fetches} discovery fetches");
    // In fact one: waiting requests share the fetch, and a failure is retried after the
    // cooldown (30 s), not per request.
    assert_eq!(fetches, 1);
    assert_eq!(idp.server.jwks_hits(), 0);
}

/// A discovery document for [`ISSUER`] naming `jwks_uri`, and the keys there.
fn in_memory_idp(key: &SigningKey, jwks_uri: &str) -> Arc<InProcessJwks> {
    let fetcher = Arc::new(InProcessJwks::default());
    fetcher.serve_document(
        &format!("{ISSUER}/.well-known/openid-configuration"),
        json!({ "issuer": ISSUER, "jwks_uri": jwks_uri })
            .to_string()
            .into_bytes(),
    );
    fetcher.serve_document(jwks_uri, jwks(&[key]).to_string().into_bytes());
    fetcher
}

fn user_token(key: &SigningKey) -> String {
    let now = now();
    key.sign(&json!({
        "iss": ISSUER, "sub": "jane", "aud": SERVICE, "iat": now, "exp": now + 300,
    }))
}

fn oidc_harness(fetcher: Arc<InProcessJwks>) -> Harness {
    Harness::new(
        Auth::builder(SERVICE)
            .key_fetcher(fetcher)
            .user_provider(UserProvider::oidc(ISSUER).audiences([SERVICE])),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn http_jwks_uri_from_an_https_issuer_is_refused() {
    let key = SigningKey::es256("idp-1");
    let fetcher = in_memory_idp(&key, "http://keys.idp.example.com/jwks");
    let h = oidc_harness(fetcher.clone());
    let (reply, event) = h.call(Method::GET, "/x", Some(&user_token(&key))).await;
    assert_keys_unavailable(&reply, &event);
    assert_eq!(fetcher.fetches(), 1, "the http jwks_uri is never fetched");

    // The same provider with an https jwks_uri verifies; a loopback http one is allowed too.
    for jwks_uri in [
        "https://keys.idp.example.com/jwks",
        "http://127.0.0.1:7007/jwks",
    ] {
        let h = oidc_harness(in_memory_idp(&key, jwks_uri));
        let (reply, event) = h.call(Method::GET, "/x", Some(&user_token(&key))).await;
        assert_allowed(&reply, &event);
    }
}

// ---------------------------------------------------------------------------------------
// Our own keys
// ---------------------------------------------------------------------------------------

/// The minimal key duration: the test waits one of them for the rotation.
const SHORT_KEYS: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread")]
async fn our_next_key_is_in_our_jwks_before_it_signs() {
    let scaffolder = Issuer::with(
        PluginTokens::new(Arc::new(MemoryStore::default())).key_duration(SHORT_KEYS),
        "scaffolder",
    )
    .await;
    let first = scaffolder.token("catalog").await;
    let published = scaffolder.published_kids().await;
    assert_eq!(
        published.len(),
        2,
        "the current key and the next: {published:?}"
    );
    assert!(published.contains(&kid(&first)));
    let next = published
        .iter()
        .find(|k| **k != kid(&first))
        .expect("a next key")
        .clone();

    // A peer fetches our JWKS once, now, and holds it: a kid miss can force no fetch for
    // the rest of the test (cooldown 1 hour, so its budget holds just the first fetch).
    let mut config = JwksCacheConfig::default();
    config.unknown_kid_cooldown = Duration::from_secs(3600);
    config.refresh_interval = Duration::from_secs(3600);
    let fetcher = Arc::new(InProcessJwks::default());
    let peer_base = "https://scaffolder.internal";
    fetcher.mount(peer_base, scaffolder.auth.jwks_router());
    let catalog = Harness::new(
        Auth::builder(SERVICE)
            .key_fetcher(fetcher.clone())
            .jwks_cache_config(config)
            .discovery(StaticDiscovery::new([("scaffolder", peer_base)])),
    );
    let (reply, event) = catalog.call(Method::GET, "/x", Some(&first)).await;
    assert_allowed(&reply, &event);
    assert_eq!(fetcher.fetches(), 1);

    // One key duration later the next key signs: the peer already has it.
    tokio::time::sleep(SHORT_KEYS + Duration::from_secs(1)).await;
    let second = scaffolder.token("catalog").await;
    assert_eq!(
        kid(&second),
        next,
        "the key published a key duration ago signs"
    );
    let (reply, event) = catalog.call(Method::GET, "/x", Some(&second)).await;
    assert_allowed(&reply, &event);
    assert_eq!(fetcher.fetches(), 1, "no kid-miss refresh was needed");
    // And the key after it is published already.
    let published = scaffolder.published_kids().await;
    assert_eq!(published.len(), 3, "{published:?}");
    assert!(published.contains(&kid(&first)) && published.contains(&next));
}

/// A [`MemoryStore`] that counts its `public_keys` queries.
#[derive(Default)]
struct CountingStore {
    inner: MemoryStore,
    lists: AtomicUsize,
}

impl Store for CountingStore {
    fn put_public_key<'a>(&'a self, key: &'a PublicKeyRecord) -> StoreFuture<'a, ()> {
        self.inner.put_public_key(key)
    }

    fn public_keys<'a>(
        &'a self,
        service_id: &'a str,
        now: i64,
    ) -> StoreFuture<'a, Vec<PublicKeyRecord>> {
        self.lists.fetch_add(1, Ordering::SeqCst);
        self.inner.public_keys(service_id, now)
    }

    fn prune_public_keys(&self, now: i64) -> StoreFuture<'_, u64> {
        self.inner.prune_public_keys(now)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn jwks_flood_makes_no_store_queries_beyond_the_refresh() {
    let store = Arc::new(CountingStore::default());
    let scaffolder = Issuer::start("scaffolder", store.clone()).await;
    let token = scaffolder.token("catalog").await;
    let app = scaffolder.auth.jwks_router::<()>();
    let started = Instant::now();
    let get = || {
        request(Method::GET, JWKS_PATH)
            .body(axum::body::Body::empty())
            .expect("a request")
    };
    let tasks: Vec<_> = (0..1000)
        .map(|_| {
            let app = app.clone();
            let req = get();
            tokio::spawn(async move { send(&app, req).await })
        })
        .collect();
    for task in tasks {
        let reply = task.await.expect("request task");
        assert_eq!(reply.status.as_u16(), 200);
        assert!(kids_of(&reply.json()).contains(&kid(&token)));
    }
    let elapsed = started.elapsed();
    // One read for the first request, and at most one more per refresh period (5 s).
    let allowed = 1 + elapsed.as_secs() as usize / 5;
    let lists = store.lists.load(Ordering::SeqCst);
    assert!(
        (1..=allowed).contains(&lists),
        "{lists} store queries for 1,000 requests in {elapsed:?}"
    );
}

// ---------------------------------------------------------------------------------------
// The cache of URLs
// ---------------------------------------------------------------------------------------

/// Discovery that resolves any service id, each to a URL of its own.
struct AnyService;

const PEERS: &str = "https://peers.internal";

impl ServiceDiscovery for AnyService {
    fn base_url(&self, service_id: &str) -> Option<String> {
        Some(format!("{PEERS}/{service_id}"))
    }
}

/// A plugin token from `caller`, signed by `key`.
fn plugin_token(key: &SigningKey, caller: &str) -> String {
    let mut header = key.header();
    header.typ = Some(PLUGIN_TYP.to_owned());
    let now = now();
    key.sign_with(
        header,
        &json!({ "sub": caller, "aud": SERVICE, "iat": now, "exp": now + 600 }),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn custom_discovery_resolving_10000_ids_keeps_the_cache_bounded() {
    let key = SigningKey::es256("peer-key");
    let fetcher = Arc::new(InProcessJwks::default());
    // Every id's JWKS is there, with the key: each token would verify.
    let body = jwks(&[&key]).to_string();
    fetcher.mount(
        PEERS,
        Router::new().route(
            &format!("/{{id}}{JWKS_PATH}"),
            axum::routing::get(move || {
                let body = body.clone();
                async move { body }
            }),
        ),
    );
    let mut config = JwksCacheConfig::default();
    config.max_urls = 100;
    let h = Harness::new(
        Auth::builder(SERVICE)
            .key_fetcher(fetcher.clone())
            .jwks_cache_config(config)
            .discovery(AnyService),
    );
    // A real peer, known before the flood.
    let (reply, event) = h
        .call(Method::GET, "/x", Some(&plugin_token(&key, "scaffolder")))
        .await;
    assert_allowed(&reply, &event);

    let (mut allowed, mut refused) = (0, 0);
    for i in 0..10_000 {
        let token = plugin_token(&key, &format!("made-up-{i}"));
        let reply = send(&h.router, bearer(Method::GET, "/entities", &token)).await;
        match reply.status.as_u16() {
            200 => allowed += 1,
            503 => {
                assert!(reply.headers.contains_key(http::header::RETRY_AFTER));
                refused += 1;
            }
            other => panic!("{other}: {}", reply.body),
        }
    }
    // The cache holds 100 URLs, the real peer's among them: 99 made-up callers get in, the
    // rest are refused without a fetch until a URL has gone unused for a minute.
    assert_eq!((allowed, refused), (99, 9_901));
    assert_eq!(fetcher.fetches(), 100);
    // The real peer is still served from the cache, without a fetch.
    let (reply, event) = h
        .call(Method::GET, "/x", Some(&plugin_token(&key, "scaffolder")))
        .await;
    assert_allowed(&reply, &event);
    assert_eq!(fetcher.fetches(), 100);
}

// ---------------------------------------------------------------------------------------
// The verified-token cache
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn kid_less_cached_token_is_verified_again_after_its_key_set_changes() {
    let k1 = SigningKey::es256("k1");
    let k2 = SigningKey::es256("k2");
    let without_kid = |key: &SigningKey| {
        let mut jwk = key.jwk();
        jwk.as_object_mut().expect("a JWK object").remove("kid");
        json!({ "keys": [jwk] }).to_string()
    };
    let server = KeyServer::start(&[]).await;
    server.set_body(without_kid(&k1));
    // Refresh in the background 200 ms after each fetch.
    let mut config = JwksCacheConfig::default();
    config.refresh_interval = Duration::from_millis(200);
    config.min_refresh_interval = Duration::ZERO;
    let h = harness(&server.jwks_url(), config);
    let old = token_naming(&k1, None);
    for _ in 0..2 {
        let (reply, event) = h.call(Method::GET, "/x", Some(&old)).await;
        assert_allowed(&reply, &event);
    }
    assert_eq!(server.jwks_hits(), 1);

    // The set rotates to another key, also without kid; a lookup finds the set due and
    // refreshes it in the background.
    server.set_body(without_kid(&k2));
    tokio::time::sleep(Duration::from_millis(300)).await;
    h.call(Method::GET, "/x", Some(&token_naming(&k1, None)))
        .await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.jwks_hits() < 2 {
        assert!(Instant::now() < deadline, "no background refresh");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;

    // The remembered verification named the old set: it is checked again, and fails.
    let (reply, event) = h.call(Method::GET, "/x", Some(&old)).await;
    assert_eq!(reply.status.as_u16(), 401, "{}", reply.body);
    assert_eq!(event.subject, None);
    let (reply, event) = h
        .call(Method::GET, "/x", Some(&token_naming(&k2, None)))
        .await;
    assert_allowed(&reply, &event);
}

#[tokio::test(flavor = "multi_thread")]
async fn cached_token_is_refused_once_its_kid_leaves_the_set_and_kept_while_it_stays() {
    let k1 = SigningKey::es256("k1");
    let k2 = SigningKey::es256("k2");
    let server = KeyServer::start(&[&k1]).await;
    let mut config = JwksCacheConfig::default();
    config.refresh_interval = Duration::from_millis(200);
    config.min_refresh_interval = Duration::ZERO;
    let h = harness(&server.jwks_url(), config);
    let old = token(&k1);
    for _ in 0..2 {
        let (reply, event) = h.call(Method::GET, "/x", Some(&old)).await;
        assert_allowed(&reply, &event);
    }
    // Waits past the refresh interval, then lets a lookup find the set due and refresh it
    // in the background; returns once the key server has seen that fetch.
    let refreshed = async |hits: usize| {
        tokio::time::sleep(Duration::from_millis(300)).await;
        h.call(Method::GET, "/x", Some(&token(&k2))).await;
        let deadline = Instant::now() + Duration::from_secs(5);
        while server.jwks_hits() < hits {
            assert!(Instant::now() < deadline, "no background refresh");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    // A new key joins: the cached verification of k1's token still holds.
    server.set_keys(&[&k1, &k2]);
    let hits = server.jwks_hits();
    refreshed(hits + 1).await;
    let (reply, event) = h.call(Method::GET, "/x", Some(&old)).await;
    assert_allowed(&reply, &event);

    // k1 leaves: the token is refused, cached or not.
    server.set_keys(&[&k2]);
    let hits = server.jwks_hits();
    refreshed(hits + 1).await;
    let (reply, event) = h.call(Method::GET, "/x", Some(&old)).await;
    assert_eq!(reply.status.as_u16(), 401, "{}", reply.body);
    assert_eq!(event.subject, None);
    let (reply, event) = h.call(Method::GET, "/x", Some(&token(&k2))).await;
    assert_allowed(&reply, &event);
}
