//! Criterion benchmarks of just-in-time on-behalf-of tokens, side by side in one process:
//!
//! - `issue`: `Auth::jit_token` (ES256 with the plugin key store, HS512, HS512 with sealed
//!   roles) next to `jsonwebtoken::encode` of the same header and claims with a ready key;
//! - `verify`: a request through the layer with the token (the verifier, the denylist read,
//!   the policy, the audit event; never cached, so every request verifies) next to
//!   `jsonwebtoken::decode` of the same token with a ready key and the same checks, and the
//!   same request without the layer (`no_auth`).
//!
//! `cargo bench --bench jit` prints criterion's figures; BENCHMARKS.md ("Issue 12") holds
//! those of the last run, written by hand. `cargo test --benches` runs each routine once.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use criterion::{Criterion, criterion_group, criterion_main};
use http::{Request, StatusCode};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use s2s_auth::jit::{JIT_TYP, JitRequest, JitTokens};
use s2s_auth::store::MemoryStore;
use s2s_auth::{Auth, CredentialKind, PluginTokens, Principal, PrincipalType};
use serde_json::json;
use tower::ServiceExt;

const HMAC: [u8; 64] = [0x5a; 64];
const ROLES: [u8; 32] = [0x11; 32];

fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn jane() -> Principal {
    Principal::new(
        PrincipalType::User,
        "user:default/jane",
        CredentialKind::User,
    )
    .with_expiry(time::OffsetDateTime::now_utc() + time::Duration::hours(2))
    .with_roles(vec!["group:default/admins".into(), "reader".into()])
}

fn auth(jit: JitTokens) -> Auth {
    Auth::builder("catalog")
        .plugin_tokens(PluginTokens::new(Arc::new(MemoryStore::default())))
        .jit_tokens(jit)
        .build()
        .expect("builds")
}

fn app(auth: Option<&Auth>) -> Router {
    let router = Router::new().route("/items/{id}", get(|| async { "ok" }));
    match auth {
        Some(auth) => router.layer(auth.layer()),
        None => router,
    }
}

async fn call(app: &Router, token: &str) {
    let req = Request::get("/items/42")
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .expect("request");
    let reply = app.clone().oneshot(req).await.expect("reply");
    assert_eq!(reply.status(), StatusCode::OK);
}

fn claims() -> serde_json::Value {
    let now = jsonwebtoken::get_current_timestamp();
    json!({
        "iss": "acme-prod", "sub": "user:default/jane", "aud": "self-issued", "azp": "catalog",
        "iat": now, "nbf": now, "exp": now + 300, "jti": "4f5c2a9e-0000-4000-8000-000000000001",
        "roles": ["group:default/admins", "reader"],
    })
}

fn validation(alg: Algorithm) -> Validation {
    let mut v = Validation::new(alg);
    v.validate_nbf = true;
    v.set_issuer(&["acme-prod"]);
    v.set_audience(&["catalog", "self-issued"]);
    v.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
    v
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let jane = jane();
    let request = JitRequest::new("bench");
    let setups = [
        ("es256", JitTokens::new("acme-prod")),
        (
            "hs512",
            JitTokens::new("acme-prod").hmac_key("h1", b64(&HMAC)),
        ),
        (
            "hs512_sealed_roles",
            JitTokens::new("acme-prod")
                .hmac_key("h1", b64(&HMAC))
                .encrypt_roles("r1", b64(&ROLES)),
        ),
    ];
    let built: Vec<(&str, Auth)> = rt.block_on(async {
        setups
            .into_iter()
            .map(|(name, jit)| (name, auth(jit)))
            .collect()
    });

    let mut issue = c.benchmark_group("issue");
    for (name, auth) in &built {
        issue.bench_function(*name, |b| {
            b.to_async(&rt)
                .iter(|| async { auth.jit_token(&jane, &request).await.expect("issued") })
        });
    }
    let es = kit::SigningKey::es256("bench");
    let hs = EncodingKey::from_secret(&HMAC);
    let header = |alg| {
        let mut h = Header::new(alg);
        h.typ = Some(JIT_TYP.to_owned());
        h.kid = Some("h1".to_owned());
        h
    };
    issue.bench_function("raw_encode_es256", |b| {
        b.iter(|| jsonwebtoken::encode(&header(Algorithm::ES256), &claims(), &es.encoding).unwrap())
    });
    issue.bench_function("raw_encode_hs512", |b| {
        b.iter(|| jsonwebtoken::encode(&header(Algorithm::HS512), &claims(), &hs).unwrap())
    });
    issue.finish();

    let mut verify = c.benchmark_group("verify");
    let plain = app(None);
    let any_token = "x".repeat(400);
    verify.bench_function("no_auth", |b| {
        b.to_async(&rt).iter(|| call(&plain, &any_token))
    });
    for (name, auth) in &built {
        let token = rt
            .block_on(auth.jit_token(&jane, &request))
            .expect("issued");
        let token = token.token.expose_secret().to_owned();
        let app = app(Some(auth));
        rt.block_on(call(&app, &token));
        verify.bench_function(*name, |b| b.to_async(&rt).iter(|| call(&app, &token)));
    }
    let es_token =
        jsonwebtoken::encode(&header(Algorithm::ES256), &claims(), &es.encoding).unwrap();
    let hs_token = jsonwebtoken::encode(&header(Algorithm::HS512), &claims(), &hs).unwrap();
    let es_key = DecodingKey::from_jwk(&serde_json::from_value(es.jwk()).unwrap()).unwrap();
    let hs_key = DecodingKey::from_secret(&HMAC);
    let (es_v, hs_v) = (validation(Algorithm::ES256), validation(Algorithm::HS512));
    verify.bench_function("raw_decode_es256", |b| {
        b.iter(|| jsonwebtoken::decode::<serde_json::Value>(&es_token, &es_key, &es_v).unwrap())
    });
    verify.bench_function("raw_decode_hs512", |b| {
        b.iter(|| jsonwebtoken::decode::<serde_json::Value>(&hs_token, &hs_key, &hs_v).unwrap())
    });
    verify.finish();
}

#[path = "../tests/kit/mod.rs"]
mod kit;

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(30)
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(2));
    targets = bench
}
criterion_main!(benches);
