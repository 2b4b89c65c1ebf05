//! A driver for instruction counts, not a timing bench: sends `N` identical requests of one
//! kind through an app and exits, so that `valgrind --tool=callgrind` can count what one
//! request costs (instructions are stable on a shared, noisy machine; times are not).
//!
//! ```sh
//! cargo bench --bench callgrind --no-run          # builds target/release/deps/callgrind-*
//! B=$(ls -t target/release/deps/callgrind-* | grep -v '\.d$' | head -1)
//! for n in 1000 11000; do   # only the request loop is counted, not the set-up (key generation)
//!   valgrind --tool=callgrind --collect-atstart=no --toggle-collect='callgrind::requests*' \
//!     --callgrind-out-file=cg.$n "$B" jwt-es256 $n
//! done
//! # per request: (total of cg.11000 - total of cg.1000) / 10000
//! callgrind_annotate --inclusive=yes cg.11000 | head -60
//! ```
//!
//! Kinds:
//!
//! - `noauth`: the same handler and the same ES256 `authorization` header, no layer;
//! - `static`: one static token among 10,000; `service-account`: one service-account token
//!   among 10,000, of 1,000 accounts;
//! - `jwt-es256`, `jwt-rs256`: a JWKS-verified token, verified once and then answered from
//!   the verified-token cache; `jwt-es256-outer` with the layer around the router instead
//!   of inside each route; `jwt-es256-audited-outer` also with an audit sink that drops
//!   every event, so that each allow's event is built;
//! - `jwt-es256-fresh`, `jwt-rs256-fresh`, `jwt-eddsa-fresh`: the cache off, so every
//!   request verifies the signature;
//! - `floor-es256`, `floor-rs256`, `floor-eddsa`: the crypto floor, a hand-written
//!   middleware that calls `jsonwebtoken::decode_header` and `jsonwebtoken::decode` with a
//!   `DecodingKey` made once (what the load bench's floor server does), counted beside the
//!   fresh kinds;
//! - `raw-es256`, `raw-rs256`, `raw-eddsa`: no request at all, only
//!   `jsonwebtoken::decode` into a JSON map with a `DecodingKey` made once (what the
//!   criterion bench's `raw` side does), so that the layer's whole cost over `noauth` can be
//!   set beside one bare decode;
//! - `raw-then-request-es256`, `-rs256`, `-eddsa`: in each iteration one bare
//!   `jsonwebtoken::decode` and then one request through the app with no auth (what the
//!   criterion bench's `raw_then_request` side does): the two costs the layer's fresh
//!   request is held against, paid together, so that their caches compete as in the
//!   layer (read it with `--cache-sim=yes`);
//! - `jwt-es256-overflow`, `jwt-es256-distinct`: 200 distinct ES256 tokens in turn, through
//!   a cache of 100 entries (every request misses, verifies, inserts and evicts) or with
//!   the cache off: the difference is what the cache costs when it cannot help.
//!
//! With `cargo bench` (no arguments) it runs each kind once, briefly, as a smoke test.

#[path = "../tests/kit/mod.rs"]
mod kit;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::{Request, StatusCode};
use kit::{InProcessJwks, SigningKey, jwks, now};
use s2s_auth::{Auth, JwksAccess, StaticToken};
use serde_json::json;
use tower::{Layer, Service, ServiceExt};

const URL: &str = "https://idp.example.com/jwks";
const ISSUER: &str = "https://idp.example.com";

fn plain() -> Router {
    Router::new().route("/items/{id}", get(|| async { "ok" }))
}

/// The app of `kind` and the tokens its requests send in turn (one, but for the
/// `-overflow` and `-distinct` kinds).
fn app(kind: &str) -> (Router, Vec<String>) {
    let plain = plain();
    if kind == "noauth" {
        // The same ES256 token the `jwt-*` kinds send, so that building and dropping the
        // request (its `authorization` header) costs the same on both sides of the ratio.
        return (plain, vec![signed_token(&SigningKey::es256("bench-ec"))]);
    }
    if kind == "static" {
        let mut builder = Auth::builder("catalog");
        for i in 0..10_000 {
            builder = builder.static_token(StaticToken::new(
                format!("caller-{i}"),
                format!("s2s-bench-token-{i:05}-9f3c1a7e52d04b68"),
            ));
        }
        let auth = builder.build().expect("builds");
        return (
            plain.layer(auth.layer()),
            vec![String::from("s2s-bench-token-00007-9f3c1a7e52d04b68")],
        );
    }
    if kind == "service-account" {
        let (app, token) = service_accounts(plain);
        return (app, vec![token]);
    }
    let key = key_of(kind);
    if kind.starts_with("floor-") {
        return (floor(plain, &key), vec![signed_token(&key)]);
    }
    let tokens = if kind.ends_with("-overflow") || kind.ends_with("-distinct") {
        (0..CYCLED).map(|i| numbered_token(&key, i)).collect()
    } else {
        vec![signed_token(&key)]
    };
    let auth = jwks_auth(kind, &key);
    (plain.layer(auth.layer()), tokens)
}

/// The signing key of `kind`: RSA, Ed25519 or (by default) P-256.
fn key_of(kind: &str) -> SigningKey {
    if kind.contains("rs256") {
        SigningKey::rsa("bench-rsa", 0)
    } else if kind.contains("eddsa") {
        SigningKey::ed25519("bench-ed")
    } else {
        SigningKey::es256("bench-ec")
    }
}

/// The token every `jwt-*` and `floor-*` kind sends, signed by `key` (any algorithm).
fn signed_token(key: &SigningKey) -> String {
    numbered_token(key, 0)
}

/// The same claims with the `jti` numbered `i`: distinct tokens of one length.
fn numbered_token(key: &SigningKey, i: usize) -> String {
    let now = now();
    key.sign(&json!({
        "iss": ISSUER, "aud": "catalog", "sub": "deploy-bot",
        "jti": format!("6f1c2e9a-1111-2222-3333-{i:012}"), "iat": now, "exp": now + 3600,
    }))
}

/// Tokens the `-overflow` and `-distinct` kinds cycle through, over a cache of half as
/// many entries (`-overflow`) or none (`-distinct`): what a miss costs when the working
/// set exceeds the cache, beside the fresh path, request by request.
const CYCLED: usize = 200;

/// The JWKS-verifying configuration of the `jwt-*` kinds, keys served in process.
fn jwks_auth(kind: &str, key: &SigningKey) -> Auth {
    let fetcher = Arc::new(InProcessJwks::default());
    fetcher.serve_document(URL, jwks(&[key]).to_string().into_bytes());
    let mut builder = Auth::builder("catalog").key_fetcher(fetcher).jwks_access(
        JwksAccess::new(URL)
            .issuers([ISSUER])
            .audiences(["catalog"]),
    );
    if kind.ends_with("-fresh") || kind.ends_with("-distinct") {
        builder = builder.verified_cache_capacity(0);
    }
    if kind.ends_with("-overflow") {
        builder = builder.verified_cache_capacity(CYCLED as u64 / 2);
    }
    if kind.ends_with("-audited") {
        builder = builder.audit_sink(Arc::new(Discard));
    }
    builder.build().expect("builds")
}

/// An audit sink that drops every event: with it plugged in, every allow's event is built
/// (`-audited` kinds), which is what auditing costs the layer itself.
struct Discard;

impl s2s_auth::audit::AuditSink for Discard {
    fn record(&self, event: &s2s_auth::audit::AuditEvent) {
        std::hint::black_box(event);
    }
}

/// Service accounts on a memory store: 1,000 accounts of 10 tokens; the sent token is one.
fn service_accounts(plain: Router) -> (Router, String) {
    use s2s_auth::restrictions::{AccessRestriction, AccessRestrictions};
    use s2s_auth::service_account::ServiceAccounts;
    use s2s_auth::store::{AccountToken, MemoryStore, ServiceAccount, Store, TokenDigest};
    let token = |i: usize| format!("s2s_sa_{i:05}{}", "x".repeat(38));
    let store = Arc::new(MemoryStore::new());
    let permissions =
        AccessRestrictions::new([AccessRestriction::plugin("catalog")]).expect("valid");
    for a in 0..1_000 {
        let name = format!("account-{a:04}");
        ready(store.create_account(&ServiceAccount {
            name: name.clone(),
            description: String::new(),
            permissions: permissions.clone(),
            enabled: true,
            created_at: 1,
            updated_at: 1,
        }));
        for t in 0..10 {
            let i = a * 10 + t;
            let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token(i).as_bytes());
            ready(store.create_account_token(&AccountToken {
                id: format!("sat_{i:024x}"),
                account: name.clone(),
                name: format!("t{t}"),
                digest: TokenDigest(digest.as_ref().try_into().expect("32 bytes")),
                permissions: None,
                expires_at: None,
                created_at: 1,
                last_used_at: None,
            }));
        }
    }
    let auth = Auth::builder("catalog")
        .service_accounts(
            ServiceAccounts::new(["user:default/ops"])
                .store(store)
                .staleness(std::time::Duration::from_secs(3600)),
        )
        .build()
        .expect("builds");
    let admin = auth.service_accounts().expect("configured");
    ready(Box::pin(async move {
        admin.reload().await.map_err(|e| e.to_string())
    }));
    (plain.layer(auth.layer()), token(4_567))
}

/// The result of a future the memory store answers at once (no I/O inside).
fn ready<T, E: std::fmt::Debug>(
    mut f: std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, E>> + Send + '_>>,
) -> T {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match f.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(r) => r.expect("the memory store accepts it"),
        std::task::Poll::Pending => panic!("the memory store answers at once"),
    }
}

/// The crypto floor ([`kit::floor`]) with `key`'s `DecodingKey`, made once, decoding the
/// `sub` claim.
fn floor(plain: Router, key: &SigningKey) -> Router {
    #[derive(Clone, serde::Deserialize)]
    struct Claims {
        #[allow(dead_code)]
        sub: String,
    }
    kit::floor::<Claims>(plain, [(key.kid.clone(), decoding(key))].into())
}

/// `key`'s `DecodingKey`, read from its JWK as the layer reads it, and the validation the
/// layer's configuration asks for.
fn decoding(key: &SigningKey) -> (jsonwebtoken::DecodingKey, jsonwebtoken::Validation) {
    let jwk: jsonwebtoken::jwk::Jwk =
        serde_json::from_value(jwks(&[key])["keys"][0].clone()).expect("a JWK");
    let mut validation = jsonwebtoken::Validation::new(key.alg);
    validation.set_issuer(&[ISSUER]);
    validation.set_audience(&["catalog"]);
    let decoding = jsonwebtoken::DecodingKey::from_jwk(&jwk).expect("a key");
    (decoding, validation)
}

/// The `raw-*` kinds' measured part: `n` bare `jsonwebtoken::decode` calls into a JSON map.
#[inline(never)]
fn requests_raw(
    token: &str,
    key: &jsonwebtoken::DecodingKey,
    validation: &jsonwebtoken::Validation,
    n: usize,
) {
    for _ in 0..n {
        decode_raw(token, key, validation);
    }
}

/// One bare decode. Its name does not match `callgrind::requests*`, so that calling it
/// inside a counted function does not toggle the counting off.
#[inline(never)]
fn decode_raw(token: &str, key: &jsonwebtoken::DecodingKey, validation: &jsonwebtoken::Validation) {
    let claims = jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(
        std::hint::black_box(token),
        key,
        validation,
    )
    .expect("verifies");
    std::hint::black_box(claims);
}

/// The measured part: `n` requests, each driven to completion, their `authorization`
/// headers taken from `headers` in turn. Not inlined, so that callgrind can count only
/// inside it (`--toggle-collect=callgrind::requests`).
#[inline(never)]
fn requests<S>(rt: &tokio::runtime::Runtime, app: &mut S, headers: &[String], n: usize)
where
    S: Service<
            Request<Body>,
            Response = axum::response::Response,
            Error = std::convert::Infallible,
        >,
{
    requests_after(rt, app, headers, n, || {});
}

/// [`requests`] with `before` called ahead of each request, inside the counted part (the
/// `raw-then-request-*` kinds' bare decode).
#[inline(always)]
fn requests_after<S>(
    rt: &tokio::runtime::Runtime,
    app: &mut S,
    headers: &[String],
    n: usize,
    mut before: impl FnMut(),
) where
    S: Service<
            Request<Body>,
            Response = axum::response::Response,
            Error = std::convert::Infallible,
        >,
{
    for header in headers.iter().cycle().take(n) {
        before();
        let req = Request::get("/items/42")
            .header("authorization", header.as_str())
            .body(Body::empty())
            .expect("request");
        rt.block_on(async {
            let reply = ServiceExt::<Request<Body>>::ready(&mut *app)
                .await
                .expect("ready")
                .call(req)
                .await
                .expect("reply");
            assert_eq!(reply.status(), StatusCode::OK);
            let body = axum::body::to_bytes(reply.into_body(), 64)
                .await
                .expect("body");
            std::hint::black_box(body);
        });
    }
}

/// The `raw-then-request-*` kinds' measured part: `n` times a bare decode, then a request
/// through the app with no auth.
#[inline(never)]
fn requests_raw_then_request(
    rt: &tokio::runtime::Runtime,
    app: &mut Router,
    header: &[String],
    raw: (&str, &jsonwebtoken::DecodingKey, &jsonwebtoken::Validation),
    n: usize,
) {
    let (token, key, validation) = raw;
    requests_after(rt, app, header, n, || decode_raw(token, key, validation));
}

fn run(rt: &tokio::runtime::Runtime, kind: &str, n: usize) {
    if kind.starts_with("raw-") {
        let key = key_of(kind);
        let (decoding, validation) = decoding(&key);
        let token = signed_token(&key);
        if kind.starts_with("raw-then-request-") {
            let headers = [format!("Bearer {token}")];
            let mut app = plain();
            let raw = (token.as_str(), &decoding, &validation);
            requests_raw_then_request(rt, &mut app, &headers, raw, 1);
            return requests_raw_then_request(rt, &mut app, &headers, raw, n);
        }
        requests_raw(&token, &decoding, &validation, 1);
        return requests_raw(&token, &decoding, &validation, n);
    }
    // Built inside the runtime (the JWKS cache needs one); the first request fetches the
    // key set and, with the cache on, fills it: not counted.
    if let Some(kind) = kind.strip_suffix("-outer") {
        // The layer around the whole router (`AuthService<Router>`), not inside each route
        // as `Router::layer` puts it.
        let key = SigningKey::es256("bench-ec");
        let (app, token) = rt.block_on(async {
            let auth = jwks_auth(kind, &key);
            (auth.layer().layer(plain()), signed_token(&key))
        });
        return warm_then_count(rt, app, &[token], n);
    }
    let (app, tokens) = rt.block_on(async { app(kind) });
    warm_then_count(rt, app, &tokens, n);
}

/// One pass through the tokens that is not meant to be counted (it fetches keys, fills the
/// cache), then `n` requests.
fn warm_then_count<S>(rt: &tokio::runtime::Runtime, mut app: S, tokens: &[String], n: usize)
where
    S: Service<
            Request<Body>,
            Response = axum::response::Response,
            Error = std::convert::Infallible,
        >,
{
    let headers: Vec<String> = tokens.iter().map(|t| format!("Bearer {t}")).collect();
    requests(rt, &mut app, &headers, headers.len());
    requests(rt, &mut app, &headers, n);
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    match args.as_slice() {
        [kind, n] => {
            let n = n.parse().expect("a request count");
            run(&rt, kind, n);
        }
        _ => {
            for kind in [
                "noauth",
                "static",
                "service-account",
                "jwt-es256",
                "jwt-rs256",
                "jwt-es256-outer",
                "jwt-es256-audited-outer",
                "jwt-es256-fresh",
                "jwt-rs256-fresh",
                "floor-es256",
                "floor-rs256",
                "jwt-eddsa-fresh",
                "floor-eddsa",
                "raw-es256",
                "raw-rs256",
                "raw-eddsa",
                "raw-then-request-es256",
                "raw-then-request-rs256",
                "raw-then-request-eddsa",
                "jwt-es256-overflow",
                "jwt-es256-distinct",
            ] {
                run(&rt, kind, 10);
            }
        }
    }
}
