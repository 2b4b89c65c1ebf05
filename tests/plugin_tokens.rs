//! Plugin-to-plugin tokens end to end, through real servers on `127.0.0.1:0`: the issuing
//! service serves its `jwks_router()` (behind its own layer), the receiving service serves a
//! router behind `auth.layer()`, and discovery connects them by base URL. Every refusal is
//! checked for its status, its exact `WWW-Authenticate` challenge and its audit reason.
//!
//! Tokens with arbitrary headers or claims are forged with a key of the test's own,
//! published by a `KeyServer` that discovery names as `scaffolder`.
//!
//! The PostgreSQL test reads `S2S_TEST_POSTGRES_URL`. Without it, it prints `SKIPPED` and
//! passes, except under `CI=true`, where it fails (`.ci/run` starts a server and sets it).

mod common;

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::StatusCode;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Validation};
use s2s_auth::plugin::{JWKS_PATH, PLUGIN_TYP};
use s2s_auth::{
    AuditEvent, Auth, AuthBuilder, CredentialKind, DefaultPolicy, Discovery, IssueError,
    MemoryAuditSink, MemoryStore, PluginTokens, PostgresStore, PrincipalType, PublicKeyRecord,
    SqliteStore, StaticDiscovery, Store, StoreError, StoreFuture, VerifyError,
};
use serde_json::{Map, Value, json};

use common::kit::{KeyServer, SigningKey, now};
use common::{
    Reply, SERVICE, Served, assert_allowed, assert_invalid_token, assert_keys_unavailable, serve,
};

// ---------------------------------------------------------------------------------------
// Servers
// ---------------------------------------------------------------------------------------

/// A service that issues plugin tokens and publishes its keys: its `jwks_router()`, behind
/// its own layer, on a port of its own.
struct Issuer {
    auth: Auth,
    server: Served,
}

impl Issuer {
    /// `service` keeping its keys in `store`, with the default key duration.
    async fn start(service: &str, store: Arc<dyn Store>) -> Self {
        Self::with(PluginTokens::new(store), service).await
    }

    async fn with(tokens: PluginTokens, service: &str) -> Self {
        let auth = Auth::builder(service)
            .plugin_tokens(tokens)
            .build()
            .expect("issuer configuration builds");
        Self::serving(auth).await
    }

    async fn serving(auth: Auth) -> Self {
        let app: Router = auth.jwks_router().layer(auth.layer());
        let server = serve(app).await;
        Self { auth, server }
    }

    fn base(&self) -> &str {
        &self.server.base
    }

    /// A token for calling `target`.
    async fn token(&self, target: &str) -> String {
        self.auth
            .plugin_token(target)
            .await
            .expect("a plugin token")
            .expose_secret()
            .to_owned()
    }

    /// `GET <base>/.backstage/auth/v1/jwks.json`, without credentials.
    async fn get_jwks(&self) -> reqwest::Response {
        reqwest::get(format!("{}{JWKS_PATH}", self.base()))
            .await
            .expect("the JWKS route answers")
    }

    /// The published key set; asserts a 200.
    async fn jwks(&self) -> Value {
        let response = self.get_jwks().await;
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.expect("a JSON key set")
    }

    /// The `kid`s of the published key set, sorted.
    async fn published_kids(&self) -> Vec<String> {
        kids_of(&self.jwks().await)
    }
}

/// A service verifying plugin tokens: the common echo router behind its layer, with a
/// memory audit sink.
struct Receiver {
    audit: Arc<MemoryAuditSink>,
    server: Served,
    http: reqwest::Client,
}

impl Receiver {
    /// `service`, knowing the services `discovery` knows, and nothing else.
    async fn start(service: &str, discovery: impl Discovery) -> Self {
        Self::from_builder(Auth::builder(service).discovery(discovery)).await
    }

    /// `service`, finding `caller` at `base` (the service's JWKS is below it).
    async fn knowing(service: &str, caller: &str, base: &str) -> Self {
        Self::start(service, StaticDiscovery::new([(caller, base)])).await
    }

    async fn from_builder(builder: AuthBuilder) -> Self {
        let audit = Arc::new(MemoryAuditSink::default());
        let auth = builder
            .audit_sink(audit.clone())
            .build_async()
            .await
            .expect("receiver configuration builds");
        let server = serve(common::echo_router().layer(auth.layer())).await;
        Self {
            audit,
            server,
            http: reqwest::Client::new(),
        }
    }

    /// `GET /entities` with `Authorization: Bearer <token>`: the response and the one audit
    /// event it produced.
    async fn call(&self, token: &str) -> (Reply, AuditEvent) {
        let request = self
            .http
            .get(format!("{}/entities", self.server.base))
            .bearer_auth(token);
        common::send_served(&self.audit, request).await
    }

    /// Asserts `token` is accepted as coming from the plugin `caller`.
    async fn accepts(&self, token: &str, caller: &str) {
        let (reply, event) = self.call(token).await;
        assert_plugin_caller(&reply, &event, caller);
    }

    /// Asserts `token` is refused with `error`, this receiver being `catalog`.
    async fn refuses(&self, token: &str, error: &VerifyError) {
        let (reply, event) = self.call(token).await;
        assert_invalid(&reply, &event, SERVICE, error);
    }
}

/// Discovery that counts its calls: `known` services at their base URL and, with
/// `catch_all`, every other id at that URL (so a missing check would show as a call, and
/// then as a fetch).
#[derive(Clone, Default)]
struct CountingDiscovery {
    known: StaticDiscovery,
    catch_all: Option<String>,
    calls: Arc<AtomicUsize>,
}

impl CountingDiscovery {
    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

impl Discovery for CountingDiscovery {
    fn base_url(&self, service_id: &str) -> Option<String> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.known
            .base_url(service_id)
            .or_else(|| self.catch_all.clone())
    }
}

// ---------------------------------------------------------------------------------------
// Tokens and assertions
// ---------------------------------------------------------------------------------------

/// A JWS part, decoded.
fn decode_part(part: &str) -> Value {
    let bytes = URL_SAFE_NO_PAD.decode(part).expect("base64url");
    serde_json::from_slice(&bytes).expect("a JSON object")
}

/// The unverified header and claims of a compact JWS.
fn header_and_claims(token: &str) -> (Value, Value) {
    let mut parts = token.split('.');
    let header = decode_part(parts.next().expect("a header"));
    let claims = decode_part(parts.next().expect("claims"));
    (header, claims)
}

fn kid(token: &str) -> String {
    let (header, _) = header_and_claims(token);
    header["kid"].as_str().expect("a kid").to_owned()
}

/// The `kid`s of a JWKS document, sorted.
fn kids_of(jwks: &Value) -> Vec<String> {
    let mut kids: Vec<String> = jwks["keys"]
        .as_array()
        .expect("`keys` is a list")
        .iter()
        .map(|k| k["kid"].as_str().expect("every key has a kid").to_owned())
        .collect();
    kids.sort();
    kids
}

fn sorted(mut kids: Vec<String>) -> Vec<String> {
    kids.sort();
    kids
}

/// Asserts the handler ran for the plugin `caller`: principal `plugin:<caller>`, a
/// service, through a plugin token; the audit event says the same.
#[track_caller]
fn assert_plugin_caller(reply: &Reply, event: &AuditEvent, caller: &str) {
    let subject = format!("plugin:{caller}");
    let principal = assert_allowed(reply, event);
    assert_eq!(principal["subject"], subject.as_str());
    assert_eq!(principal["principalType"], "service");
    assert_eq!(principal["credential"], "plugin");
    assert_eq!(event.subject.as_deref(), Some(subject.as_str()));
    assert_eq!(event.principal_type, Some(PrincipalType::Service));
    assert_eq!(event.credential, Some(CredentialKind::Plugin));
}

/// Asserts a 401 `invalid_token` whose description is `error`'s message and whose audit
/// reason is its code, from the service `realm`.
#[track_caller]
fn assert_invalid(reply: &Reply, event: &AuditEvent, realm: &str, error: &VerifyError) {
    let description = error.to_string();
    if realm == SERVICE {
        assert_invalid_token(reply, event, &description, error.code());
        return;
    }
    // The same checks as `assert_invalid_token`, for another realm than `catalog`.
    assert_eq!(
        reply.status,
        StatusCode::UNAUTHORIZED,
        "body: {}",
        reply.body
    );
    assert_eq!(
        reply.www_authenticate(),
        Some(
            format!(
                "Bearer realm=\"{realm}\", error=\"invalid_token\", error_description=\"{description}\""
            )
            .as_str()
        )
    );
    assert_eq!(reply.content_type(), Some("application/json"));
    assert_eq!(reply.json()["error"]["message"], description.as_str());
    assert_eq!(reply.json()["response"]["statusCode"], 401);
    assert_eq!(event.decision, s2s_auth::Decision::Deny);
    assert_eq!(event.reason, error.code());
    assert_eq!(event.message, description);
    assert_eq!(event.status, 401);
    assert_eq!(event.service_id, realm);
}

/// A forging key for `scaffolder`, and the key server publishing it at the plugin JWKS
/// path: discovery entries pointing at the server make its key the caller's key.
async fn fake_scaffolder() -> (SigningKey, KeyServer) {
    let key = SigningKey::es256("fake-scaffolder-key");
    let server = KeyServer::start(&[&key]).await;
    (key, server)
}

/// A `catalog` receiver that finds `scaffolder` at `server`.
async fn catalog_trusting(server: &KeyServer) -> Receiver {
    Receiver::knowing(SERVICE, "scaffolder", server.base()).await
}

/// Valid plugin-token claims from `sub` to `aud`, living ten minutes.
fn plugin_claims(sub: &str, aud: &str) -> Value {
    json!({ "sub": sub, "aud": aud, "iat": now(), "exp": now() + 600 })
}

/// Signs `claims` with `key` under the header `{typ, alg: <key's>, kid: <key's>}`, leaving
/// `typ` out for `None`.
fn forge(key: &SigningKey, typ: Option<&str>, claims: &Value) -> String {
    let mut header = json!({ "alg": key.alg, "kid": key.kid });
    if let Some(typ) = typ {
        header["typ"] = json!(typ);
    }
    key.sign_raw(&header, claims)
}

/// A plugin token forged with `key`: the right header, any claims.
fn forge_plugin(key: &SigningKey, claims: &Value) -> String {
    forge(key, Some(PLUGIN_TYP), claims)
}

/// Lower-case hex of six random bytes.
fn random_hex() -> String {
    let mut bytes = [0u8; 6];
    aws_lc_rs::rand::fill(&mut bytes).expect("random bytes");
    common::hex(&bytes)
}

fn memory_store() -> Arc<dyn Store> {
    Arc::new(MemoryStore::new())
}

// ---------------------------------------------------------------------------------------
// Issuing and verifying
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn scaffolder_token_is_accepted_by_catalog_in_backstage_wire_format() {
    let scaffolder = Issuer::start("scaffolder", memory_store()).await;
    let catalog = Receiver::knowing(SERVICE, "scaffolder", scaffolder.base()).await;

    let before = now();
    let token = scaffolder.token("catalog").await;
    let after = now();

    let (header, claims) = header_and_claims(&token);
    let kid = header["kid"].as_str().expect("a kid").to_owned();
    assert_eq!(
        header,
        json!({ "typ": "vnd.backstage.plugin", "alg": "ES256", "kid": kid })
    );
    let parsed = uuid::Uuid::parse_str(&kid).expect("the kid is a UUID");
    assert_eq!(parsed.hyphenated().to_string(), kid, "canonical UUID form");
    let names: Vec<&str> = claims
        .as_object()
        .expect("claims are an object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(sorted_strs(names), ["aud", "exp", "iat", "sub"]);
    assert_eq!(claims["sub"], "scaffolder");
    assert_eq!(claims["aud"], "catalog");
    let iat = claims["iat"].as_u64().expect("iat is a number");
    let exp = claims["exp"].as_u64().expect("exp is a number");
    assert!((before..=after).contains(&iat), "iat {iat} is now");
    assert_eq!(exp - iat, 3600);

    catalog.accepts(&token, "scaffolder").await;
    // Again: the same answer (now from the verified-token cache).
    catalog.accepts(&token, "scaffolder").await;
}

fn sorted_strs(mut v: Vec<&str>) -> Vec<&str> {
    v.sort_unstable();
    v
}

#[tokio::test]
async fn token_for_catalog_sent_to_search_is_wrong_audience() {
    let scaffolder = Issuer::start("scaffolder", memory_store()).await;
    let search = Receiver::knowing("search", "scaffolder", scaffolder.base()).await;
    let catalog = Receiver::knowing(SERVICE, "scaffolder", scaffolder.base()).await;
    let for_catalog = scaffolder.token("catalog").await;

    let (reply, event) = search.call(&for_catalog).await;
    assert_invalid(&reply, &event, "search", &VerifyError::WrongAudience);

    // The token itself is fine where it was meant to go, and search takes its own.
    catalog.accepts(&for_catalog, "scaffolder").await;
    let for_search = scaffolder.token("search").await;
    search.accepts(&for_search, "scaffolder").await;
    // And catalog refuses search's.
    catalog
        .refuses(&for_search, &VerifyError::WrongAudience)
        .await;
}

#[tokio::test]
async fn plugin_token_with_typ_changed_is_refused() {
    let (key, server) = fake_scaffolder().await;
    let catalog = catalog_trusting(&server).await;
    let claims = plugin_claims("scaffolder", "catalog");

    // Control: the forged key is the caller's published key, so only `typ` decides below.
    catalog
        .accepts(&forge_plugin(&key, &claims), "scaffolder")
        .await;

    for typ in [
        Some("JWT"),
        None,
        Some("VND.BACKSTAGE.PLUGIN"),
        Some("vnd.backstage.plugin+jwt"),
        Some("vnd.backstage.limited-user"),
    ] {
        let (reply, event) = catalog.call(&forge(&key, typ, &claims)).await;
        assert_invalid(&reply, &event, SERVICE, &VerifyError::WrongType);
    }
}

#[tokio::test]
async fn user_token_presented_as_plugin_token_is_refused() {
    let (key, server) = fake_scaffolder().await;
    let catalog = catalog_trusting(&server).await;
    let fetches = server.total_hits();

    // A Backstage user token (issued by the deployment's auth backend), sent to a service
    // configured only for plugin tokens: no such issuer.
    let user = json!({
        "iss": "http://backstage.example/api/auth",
        "sub": "user:default/jane",
        "ent": ["user:default/jane"],
        "aud": "backstage",
        "iat": now(),
        "exp": now() + 600,
    });
    let (reply, event) = catalog
        .call(&forge(&key, Some("vnd.backstage.user"), &user))
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_invalid(&reply, &event, SERVICE, &VerifyError::UnknownIssuer);

    // The same with plugin-token claims (sub `scaffolder`, aud `catalog`): still not a
    // plugin token.
    let (reply, event) = catalog
        .call(&forge(
            &key,
            Some("vnd.backstage.user"),
            &plugin_claims("scaffolder", "catalog"),
        ))
        .await;
    assert_invalid(&reply, &event, SERVICE, &VerifyError::WrongType);

    assert_eq!(
        server.total_hits(),
        fetches,
        "decided without fetching keys"
    );
}

#[tokio::test]
async fn subject_that_is_not_a_service_id_is_refused_before_discovery() {
    let (key, server) = fake_scaffolder().await;
    let discovery = CountingDiscovery {
        catch_all: Some(server.base().to_owned()),
        ..CountingDiscovery::default()
    };
    let catalog = Receiver::start(SERVICE, discovery.clone()).await;

    for sub in [
        "../admin",
        "scaffolder/x",
        "http://evil",
        "SCAFFOLDER",
        "scaffolder/../../admin",
        "scaffolder.evil.example",
        "scaffolder?x=1",
        "",
    ] {
        let token = forge_plugin(&key, &plugin_claims(sub, "catalog"));
        let (reply, event) = catalog.call(&token).await;
        assert_invalid(&reply, &event, SERVICE, &VerifyError::WrongSubject);
    }
    assert_eq!(discovery.calls(), 0, "discovery never saw a bad subject");
    assert_eq!(server.total_hits(), 0, "no key was fetched");

    // Control: a valid subject does go through discovery to the (catch-all) key server.
    catalog
        .accepts(
            &forge_plugin(&key, &plugin_claims("scaffolder", "catalog")),
            "scaffolder",
        )
        .await;
    assert_eq!(discovery.calls(), 1);
    assert_eq!(server.jwks_hits(), 1);
}

#[tokio::test]
async fn unknown_caller_is_refused_without_fetching() {
    let (key, server) = fake_scaffolder().await;
    let discovery = CountingDiscovery {
        known: StaticDiscovery::new([("scaffolder", server.base())]),
        ..CountingDiscovery::default()
    };
    let catalog = Receiver::start(SERVICE, discovery.clone()).await;

    let token = forge_plugin(&key, &plugin_claims("billing", "catalog"));
    catalog.refuses(&token, &VerifyError::UnknownCaller).await;
    assert_eq!(discovery.calls(), 1, "asked once, about `billing`");
    assert_eq!(server.total_hits(), 0, "no key was fetched");
}

#[tokio::test]
async fn plugin_token_living_longer_than_the_key_duration_is_refused() {
    let (key, server) = fake_scaffolder().await;
    let catalog = catalog_trusting(&server).await;
    let lifetime = |secs: u64| {
        let iat = now();
        forge_plugin(
            &key,
            &json!({ "sub": "scaffolder", "aud": "catalog", "iat": iat, "exp": iat + secs }),
        )
    };

    // Default key duration 1 h, leeway 30 s.
    catalog.accepts(&lifetime(3600 + 30), "scaffolder").await;
    catalog
        .refuses(&lifetime(3600 + 31), &VerifyError::LifetimeTooLong)
        .await;
    catalog
        .refuses(&lifetime(2 * 3600 + 1), &VerifyError::LifetimeTooLong)
        .await;
    catalog
        .refuses(&lifetime(365 * 24 * 3600), &VerifyError::LifetimeTooLong)
        .await;
}

#[tokio::test]
async fn plugin_token_missing_a_required_claim_is_refused() {
    let (key, server) = fake_scaffolder().await;
    let catalog = catalog_trusting(&server).await;

    for (missing, error) in [
        ("iat", VerifyError::MissingClaim("iat")),
        ("exp", VerifyError::MissingClaim("exp")),
        ("aud", VerifyError::MissingClaim("aud")),
        ("sub", VerifyError::MissingClaim("sub")),
    ] {
        let mut claims = plugin_claims("scaffolder", "catalog");
        claims
            .as_object_mut()
            .expect("an object")
            .remove(missing)
            .expect("the claim was there");
        let (reply, event) = catalog.call(&forge_plugin(&key, &claims)).await;
        assert_invalid(&reply, &event, SERVICE, &error);
    }
}

#[tokio::test]
async fn plugin_token_with_another_alg_is_refused_before_fetching() {
    let (_, server) = fake_scaffolder().await;
    let catalog = catalog_trusting(&server).await;
    let claims = plugin_claims("scaffolder", "catalog");

    let rsa = SigningKey::rsa("fake-scaffolder-rsa", 0);
    let eddsa = SigningKey::ed25519("fake-scaffolder-eddsa");
    // The key server serves them too: the refusal is the algorithm's, not a missing key's.
    server.set_keys(&[&rsa, &eddsa]);
    let hmac = common::kit::sign_raw(
        &json!({ "typ": PLUGIN_TYP, "alg": "HS256", "kid": "fake-scaffolder-key" }),
        &claims,
        &EncodingKey::from_secret(b"a shared secret nobody configured"),
        Algorithm::HS256,
    );
    for token in [
        forge_plugin(&rsa, &claims),
        forge_plugin(&eddsa, &claims),
        hmac,
    ] {
        catalog
            .refuses(&token, &VerifyError::AlgorithmNotAllowed)
            .await;
    }
    assert_eq!(server.total_hits(), 0, "no key was fetched");
}

#[tokio::test]
async fn forged_plugin_tokens_fail_the_check_they_break() {
    let (key, server) = fake_scaffolder().await;
    let claims = plugin_claims("scaffolder", "catalog");

    // Another key under the published key's kid.
    let impostor = SigningKey::es256(&key.kid);
    catalog_trusting(&server)
        .await
        .refuses(
            &forge_plugin(&impostor, &claims),
            &VerifyError::BadSignature,
        )
        .await;

    // A kid the caller never published.
    let unpublished = SigningKey::es256("never-published");
    catalog_trusting(&server)
        .await
        .refuses(
            &forge_plugin(&unpublished, &claims),
            &VerifyError::UnknownKey,
        )
        .await;

    // Expired (beyond the leeway).
    let expired = json!({
        "sub": "scaffolder", "aud": "catalog", "iat": now() - 700, "exp": now() - 100,
    });
    catalog_trusting(&server)
        .await
        .refuses(&forge_plugin(&key, &expired), &VerifyError::Expired)
        .await;

    // A real token from the real scaffolder, its claims changed (signature kept).
    let scaffolder = Issuer::start("scaffolder", memory_store()).await;
    let real = scaffolder.token("catalog").await;
    let mut parts: Vec<String> = real.split('.').map(str::to_owned).collect();
    let mut changed = decode_part(&parts[1]);
    changed["exp"] = json!(changed["exp"].as_u64().expect("exp") + 60);
    parts[1] = URL_SAFE_NO_PAD.encode(changed.to_string());
    Receiver::knowing(SERVICE, "scaffolder", scaffolder.base())
        .await
        .refuses(&parts.join("."), &VerifyError::BadSignature)
        .await;
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
    assert_eq!(keys.len(), 1);
    for key in keys {
        assert_eq!(key["kty"], "EC");
        assert_eq!(key["crv"], "P-256");
        assert_eq!(key["alg"], "ES256");
        assert_eq!(key["use"], "sig");
        assert!(key["x"].is_string() && key["y"].is_string(), "{key}");
        assert_eq!(key["kid"], kid(&token).as_str());
    }
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

#[tokio::test]
async fn issued_token_verifies_with_plain_jsonwebtoken_and_the_published_jwk() {
    let scaffolder = Issuer::start("scaffolder", memory_store()).await;
    let token = scaffolder.token("catalog").await;
    let jwks = scaffolder.jwks().await;

    // An independent code path: jsonwebtoken's own header parser, JWK import and decode.
    let header = jsonwebtoken::decode_header(&token).expect("a JOSE header");
    assert_eq!(header.alg, Algorithm::ES256);
    assert_eq!(header.typ.as_deref(), Some("vnd.backstage.plugin"));
    let kid = header.kid.expect("a kid");
    let published = jwks["keys"]
        .as_array()
        .expect("a list")
        .iter()
        .find(|k| k["kid"] == kid.as_str())
        .expect("the token's key is published");
    let jwk: Jwk = serde_json::from_value(published.clone()).expect("a standard JWK");
    let key = DecodingKey::from_jwk(&jwk).expect("a usable public key");

    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_audience(&["catalog"]);
    validation.set_required_spec_claims(&["exp", "sub", "aud"]);
    validation.leeway = 0;
    let data = jsonwebtoken::decode::<Map<String, Value>>(&token, &key, &validation)
        .expect("the token verifies with plain jsonwebtoken");
    assert_eq!(data.claims["sub"], "scaffolder");
    assert_eq!(data.claims["aud"], "catalog");
    assert!(data.claims["iat"].is_u64());

    // The same code path does check: another audience, or a changed payload, fails.
    let mut for_search = validation.clone();
    for_search.set_audience(&["search"]);
    let e = jsonwebtoken::decode::<Map<String, Value>>(&token, &key, &for_search)
        .expect_err("wrong audience");
    assert_eq!(e.kind(), &jsonwebtoken::errors::ErrorKind::InvalidAudience);
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let mut claims = decode_part(&parts[1]);
    claims["sub"] = json!("admin");
    parts[1] = URL_SAFE_NO_PAD.encode(claims.to_string());
    let e = jsonwebtoken::decode::<Map<String, Value>>(&parts.join("."), &key, &validation)
        .expect_err("changed payload");
    assert_eq!(e.kind(), &jsonwebtoken::errors::ErrorKind::InvalidSignature);
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
        assert_eq!(
            replica.published_kids().await,
            sorted(vec![ka1.clone(), kb1.clone()]),
            "every replica publishes every replica's keys"
        );
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

    for replica in [&replica_a2, &replica_b] {
        assert_eq!(
            replica.published_kids().await,
            sorted(vec![ka1.clone(), kb1.clone(), ka2.clone()]),
            "the old key stays published next to the new one"
        );
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
    assert_eq!(
        held,
        [kid(&token)],
        "the expired key is gone, not just hidden"
    );
    assert_eq!(
        store.public_keys("search", 0).await.expect("listed"),
        vec![live_elsewhere],
        "another service's expired key is pruned too, its live key kept"
    );
    assert_eq!(scaffolder.published_kids().await, [kid(&token)]);
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
    assert_eq!(scaffolder.published_kids().await, [kid(&before)]);
    let catalog = Receiver::knowing(SERVICE, "scaffolder", scaffolder.base()).await;
    catalog.accepts(&before, "scaffolder").await;

    // Private keys are never stored: the restarted service signs with a new key, and both
    // stay published.
    let after = scaffolder.token("catalog").await;
    assert_ne!(kid(&after), kid(&before));
    assert_eq!(
        scaffolder.published_kids().await,
        sorted(vec![kid(&before), kid(&after)])
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
/// `cargo test --test plugin_tokens -- --ignored`.
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
    assert_eq!(
        scaffolder.published_kids().await,
        sorted(vec![kid(&first), kid(&second)])
    );
    // The receiver's cached set lacks the new kid: it fetches again (the unknown-kid
    // cooldown has passed) and accepts.
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
// Configuration
// ---------------------------------------------------------------------------------------

/// A service's YAML: `discovery` entries, plugin tokens with `key_duration` seconds, keys
/// in memory.
fn plugin_yaml(service: &str, discovery: &[(&str, &str)], key_duration: u64) -> String {
    let mut yaml = format!("s2s:\n  serviceId: {service}\n  discovery:\n");
    for (id, url) in discovery {
        yaml.push_str(&format!("    {id}: {url}\n"));
    }
    yaml.push_str(&format!(
        "  pluginTokens:\n    keyDurationSeconds: {key_duration}\n\
         backend:\n  auth:\n    pluginKeyStore:\n      type: memory\n"
    ));
    yaml
}

#[tokio::test]
async fn yaml_with_plugin_tokens_builds_async_and_issues_verifiable_tokens() {
    let yaml = plugin_yaml(
        "scaffolder",
        &[("catalog", "http://127.0.0.1:9/api/catalog")],
        600,
    );
    let auth = AuthBuilder::from_yaml_str(&yaml)
        .expect("valid YAML")
        .build_async()
        .await
        .expect("builds");
    let scaffolder = Issuer::serving(auth).await;
    let token = scaffolder.token("catalog").await;
    let (_, claims) = header_and_claims(&token);
    assert_eq!(
        claims["exp"].as_u64().expect("exp") - claims["iat"].as_u64().expect("iat"),
        600,
        "keyDurationSeconds bounds the lifetime"
    );

    // A receiver configured the same way (same key duration) accepts it.
    let catalog_yaml = plugin_yaml("catalog", &[("scaffolder", scaffolder.base())], 600);
    let catalog =
        Receiver::from_builder(AuthBuilder::from_yaml_str(&catalog_yaml).expect("valid YAML"))
            .await;
    catalog.accepts(&token, "scaffolder").await;
}

#[test]
fn yaml_naming_a_key_store_cannot_build_synchronously() {
    let yaml = plugin_yaml("scaffolder", &[], 600);
    let e = AuthBuilder::from_yaml_str(&yaml)
        .expect("valid YAML")
        .build()
        .expect_err("a key store must be opened");
    assert_eq!(e.path(), Some("backend.database"));
    assert!(e.to_string().contains("build_async"), "{e}");
}

#[test]
fn yaml_pg_without_connection_names_the_path() {
    let yaml = "s2s:\n  serviceId: scaffolder\n  pluginTokens: {}\n\
                backend:\n  auth:\n    pluginKeyStore:\n      type: database\n  database:\n    client: pg\n";
    let e = AuthBuilder::from_yaml_str(yaml).expect_err("pg needs a connection");
    assert_eq!(e.path(), Some("backend.database.connection"), "{e}");
}

#[test]
fn yaml_discovery_with_a_bad_entry_names_the_path() {
    for (entry, path) in [
        ("catalog: ftp://catalog.internal", "s2s.discovery.catalog"),
        ("catalog: not a url", "s2s.discovery.catalog"),
        ("catalog: 7007", "s2s.discovery.catalog"),
        ("Catalog: http://catalog.internal", "s2s.discovery.Catalog"),
    ] {
        let yaml = format!("s2s:\n  serviceId: search\n  discovery:\n    {entry}\n");
        let e = AuthBuilder::from_yaml_str(&yaml).expect_err(entry);
        assert_eq!(e.path(), Some(path), "{entry}: {e}");
    }
}

// ---------------------------------------------------------------------------------------
// Issuing errors
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn plugin_token_without_plugin_tokens_is_not_configured() {
    let auth = Auth::builder("search")
        .discovery(StaticDiscovery::new([("catalog", "http://127.0.0.1:9")]))
        .build()
        .expect("valid configuration");
    assert!(matches!(
        auth.plugin_token("catalog").await,
        Err(IssueError::NotConfigured)
    ));
    // Its JWKS route answers an empty set.
    let server = serve(auth.jwks_router().layer(auth.layer())).await;
    let jwks: Value = reqwest::get(format!("{}{JWKS_PATH}", server.base))
        .await
        .expect("answers")
        .json()
        .await
        .expect("JSON");
    assert_eq!(jwks, json!({ "keys": [] }));
}

#[tokio::test]
async fn plugin_token_for_an_invalid_target_is_refused_before_any_key() {
    let store = memory_store();
    let auth = Auth::builder("scaffolder")
        .plugin_tokens(PluginTokens::new(store.clone()))
        .build()
        .expect("valid configuration");
    for target in ["../x", "", "Catalog", "catalog/x", "http://evil"] {
        match auth.plugin_token(target).await {
            Err(IssueError::InvalidTarget(t)) => assert_eq!(t, target),
            other => panic!("{target:?}: {other:?}"),
        }
    }
    assert!(
        store
            .public_keys("scaffolder", 0)
            .await
            .expect("listed")
            .is_empty(),
        "no key was made for a refused target"
    );
}

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
    assert_eq!(scaffolder.published_kids().await, [kid(&token)]);
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
