//! Just-in-time on-behalf-of tokens (issue endpoint, token, verifier), through a real router:
//! a user asks for a token, a tool calls with it, and every forged, expired, misdirected or
//! tampered token is refused with the exact status. Every test is named after what it shows.

mod common;

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use base64::Engine as _;
use http::{Method, StatusCode, header};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use s2s_auth::audit::{AuditEvent, Decision, MemoryAuditSink};
use s2s_auth::jit::{DEFAULT_PATH, JIT_TYP, JitRequest, JitTokens, OPENSEARCH_PATH};
use s2s_auth::store::MemoryStore;
use s2s_auth::{Auth, AuthBuilder, PluginTokens, RoutePolicy, UserProvider};
use serde_json::{Value, json};

use common::*;

const DEPLOYMENT: &str = "acme-prod";
/// 64 bytes: the shortest HS512 key accepted.
const HMAC_KEY: [u8; 64] = [0x5a; 64];
const HMAC_NEXT: [u8; 64] = [0x6b; 64];
const ROLES_KEY: [u8; 32] = [0x11; 32];

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// An identity provider, and `catalog` verifying its users and issuing just-in-time tokens.
struct Setup {
    idp: kit::Idp,
    auth: Auth,
    router: Router,
    audit: Arc<MemoryAuditSink>,
}

async fn setup_with(jit: JitTokens, more: impl FnOnce(AuthBuilder) -> AuthBuilder) -> Setup {
    let idp = kit::Idp::start("idp-key").await;
    let audit = Arc::new(MemoryAuditSink::default());
    let builder = Auth::builder(SERVICE)
        .user_provider(UserProvider::oidc(idp.issuer.clone()).audiences([SERVICE]))
        .plugin_tokens(PluginTokens::new(Arc::new(MemoryStore::default())))
        .jit_tokens(jit)
        .route(
            "/admin/tokens",
            [],
            RoutePolicy::authenticated().sensitive(),
        )
        .audit_sink(audit.clone());
    let auth = more(builder).build().expect("builds");
    let router = echo_router().merge(auth.jit_router()).layer(auth.layer());
    Setup {
        idp,
        auth,
        router,
        audit,
    }
}

async fn setup(jit: JitTokens) -> Setup {
    setup_with(jit, |b| b).await
}

fn es256() -> JitTokens {
    JitTokens::new(DEPLOYMENT)
}

fn hs512() -> JitTokens {
    JitTokens::new(DEPLOYMENT).hmac_key("h1", b64(&HMAC_KEY))
}

impl Setup {
    /// jane's own OIDC token, living an hour.
    fn jane(&self) -> String {
        let now = kit::now();
        self.idp.key.sign(&json!({
            "iss": self.idp.issuer, "sub": "jane", "aud": SERVICE, "iat": now, "exp": now + 3600,
        }))
    }

    async fn post(&self, path: &str, token: Option<&str>, body: &str) -> (Reply, Vec<AuditEvent>) {
        self.audit.clear();
        let mut req = request(Method::POST, path).header(header::CONTENT_TYPE, "application/json");
        if let Some(token) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let reply = send(&self.router, req.body(Body::from(body.to_owned())).unwrap()).await;
        (reply, self.audit.events())
    }

    /// A token for jane from the endpoint.
    async fn issue(&self, body: &str) -> (String, Value) {
        let (reply, _) = self.post(DEFAULT_PATH, Some(&self.jane()), body).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        let json = reply.json();
        (
            json["authenticationToken"].as_str().unwrap().to_owned(),
            json,
        )
    }

    async fn call(&self, method: Method, path: &str, token: &str) -> (Reply, AuditEvent) {
        self.audit.clear();
        let reply = send(&self.router, bearer(method, path, token)).await;
        let mut events: Vec<AuditEvent> = self
            .audit
            .events()
            .into_iter()
            .filter(|e| e.event == s2s_auth::audit::EventKind::Request)
            .collect();
        assert_eq!(events.len(), 1, "{events:#?}");
        (reply, events.remove(0))
    }
}

/// A token signed with `key` (HS512) under `kid`, with these claims.
fn forge(claims: &Value, kid: &str, key: &[u8]) -> String {
    let mut header = Header::new(Algorithm::HS512);
    header.typ = Some(JIT_TYP.to_owned());
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(key)).unwrap()
}

/// The claims of a good token for jane, for `catalog`, issued by `catalog`.
fn good_claims() -> Value {
    let now = kit::now();
    json!({
        "iss": DEPLOYMENT, "sub": "user:default/jane", "aud": SERVICE, "azp": SERVICE,
        "iat": now, "nbf": now, "exp": now + 300, "jti": "4f5c2a9e-0000-4000-8000-000000000001",
        "roles": ["reader"],
    })
}

#[tokio::test]
async fn a_user_gets_a_token_and_a_tool_calls_with_it_as_the_user() {
    let s = setup(es256()).await;
    let (token, json) = s.issue(r#"{"description":"a report run"}"#).await;
    assert_eq!(json["user"], "user:default/jane");
    assert_eq!(json["durationSeconds"], 300);
    let (header, claims) = kit::header_and_claims(&token);
    assert_eq!(header["typ"], JIT_TYP);
    assert_eq!(header["alg"], "ES256");
    assert!(header["kid"].is_string());
    assert_eq!(claims["iss"], DEPLOYMENT);
    assert_eq!(claims["aud"], "self-issued");
    assert_eq!(claims["azp"], SERVICE);
    assert_eq!(claims["nbf"], claims["iat"]);
    assert_eq!(
        claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
        300
    );
    assert!(claims["jti"].as_str().is_some_and(|j| j.len() == 36));

    let (reply, event) = s.call(Method::GET, "/entities", &token).await;
    let principal = assert_allowed(&reply, &event);
    assert_eq!(principal["subject"], "user:default/jane");
    assert_eq!(principal["principalType"], "user");
    assert_eq!(principal["credential"], "obo");
    let jti = claims["jti"].as_str().unwrap();
    assert_eq!(principal["actor"], format!("jit:{jti}"));
    assert_eq!(event.actor.as_deref(), Some(format!("jit:{jti}").as_str()));
}

#[tokio::test]
async fn the_grant_is_capped_and_says_so() {
    let s = setup(es256()).await;
    for (asked, granted) in [
        ("601", 600),
        ("\"601\"", 600),
        ("120", 120),
        ("\" 42 \"", 42),
    ] {
        let body = format!(r#"{{"description":"d","durationSeconds":{asked}}}"#);
        let (token, json) = s.issue(&body).await;
        assert_eq!(json["durationSeconds"], granted, "{asked}");
        let (_, claims) = kit::header_and_claims(&token);
        assert_eq!(
            claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
            granted
        );
    }
}

#[tokio::test]
async fn every_bad_body_is_400_with_its_message_and_a_big_one_is_413() {
    let s = setup(es256()).await;
    let jane = s.jane();
    for (body, message) in [
        (
            r#"{"description":"d","roles":["admin"]}"#,
            "Unrecognized parameter: roles",
        ),
        ("not json", "request body must be a JSON object"),
        (
            r#"{"description":"d","durationSeconds":"ten"}"#,
            "durationSeconds must be a positive whole number",
        ),
        (
            r#"{"description":"d","durationSeconds":0}"#,
            "durationSeconds must be a positive whole number",
        ),
        (
            r#"{"description":"d","durationSeconds":-1}"#,
            "durationSeconds must be a positive whole number",
        ),
        (r#"{"service":"search"}"#, "description is required"),
        (
            r#"{"description":"d","service":"Not A Service"}"#,
            "`Not A Service` is not a valid service id",
        ),
    ] {
        let (reply, _) = s.post(DEFAULT_PATH, Some(&jane), body).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{body}: {}",
            reply.body
        );
        assert_eq!(reply.json()["error"]["message"], message, "{body}");
        assert_eq!(reply.json()["error"]["name"], "InputError");
    }
    let big = format!(r#"{{"description":"{}"}}"#, "x".repeat(17 * 1024));
    let (reply, _) = s.post(DEFAULT_PATH, Some(&jane), &big).await;
    assert_eq!(
        reply.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        reply.body
    );
}

#[tokio::test]
async fn without_the_feature_the_path_is_404() {
    let idp = kit::Idp::start("idp-key").await;
    let auth = Auth::builder(SERVICE)
        .user_provider(UserProvider::oidc(idp.issuer.clone()).audiences([SERVICE]))
        .build()
        .unwrap();
    let router = Router::new().merge(auth.jit_router()).layer(auth.layer());
    let now = kit::now();
    let jane = idp.key.sign(&json!({
        "iss": idp.issuer, "sub": "jane", "aud": SERVICE, "iat": now, "exp": now + 3600,
    }));
    let req = request(Method::POST, DEFAULT_PATH)
        .header(header::AUTHORIZATION, format!("Bearer {jane}"))
        .body(Body::from(r#"{"description":"d"}"#))
        .unwrap();
    assert_eq!(send(&router, req).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_token_cannot_mint_another_nor_reach_a_sensitive_route() {
    let s = setup(es256()).await;
    let (token, _) = s.issue(r#"{"description":"d"}"#).await;
    let (reply, events) = s
        .post(DEFAULT_PATH, Some(&token), r#"{"description":"again"}"#)
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.body);
    let message = reply.json()["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        message
            .starts_with("Token-authenticated callers cannot create tokens or change credentials"),
        "{message}"
    );
    assert!(
        reply
            .www_authenticate()
            .unwrap()
            .contains("insufficient_scope")
    );
    assert!(
        events
            .iter()
            .all(|e| e.event != s2s_auth::audit::EventKind::TokenIssued)
    );
    let (reply, event) = s.call(Method::POST, "/admin/tokens", &token).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.body);
    assert_eq!(event.reason, "sensitive_route");
    // A static-less setup: no other credential reaches the endpoint without a user.
    let (reply, _) = s.post(DEFAULT_PATH, None, r#"{"description":"d"}"#).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn forged_expired_misdirected_and_tampered_tokens_are_401() {
    let s = setup(hs512().encrypt_roles("r1", b64(&ROLES_KEY))).await;
    // The good token first, so every refusal below is about its one change.
    let good = forge(&good_claims(), "h1", &HMAC_KEY);
    let (reply, event) = s.call(Method::GET, "/entities", &good).await;
    assert_allowed(&reply, &event);

    let with = |change: &dyn Fn(&mut Value)| {
        let mut c = good_claims();
        change(&mut c);
        c
    };
    let now = kit::now();
    let sealed = {
        let (token, _) = s.issue(r#"{"description":"d"}"#).await;
        kit::header_and_claims(&token).1
    };
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "no exp",
            forge(
                &with(&|c| {
                    c.as_object_mut().unwrap().remove("exp");
                }),
                "h1",
                &HMAC_KEY,
            ),
            "missing_claim",
        ),
        (
            "expired",
            forge(
                &with(&|c| {
                    c["iat"] = json!(now - 900);
                    c["nbf"] = json!(now - 900);
                    c["exp"] = json!(now - 600);
                }),
                "h1",
                &HMAC_KEY,
            ),
            "token_expired",
        ),
        (
            "nbf in the future",
            forge(&with(&|c| c["nbf"] = json!(now + 600)), "h1", &HMAC_KEY),
            "not_yet_valid",
        ),
        (
            "wrong iss",
            forge(
                &with(&|c| c["iss"] = json!("other-deployment")),
                "h1",
                &HMAC_KEY,
            ),
            "wrong_issuer",
        ),
        (
            "wrong aud",
            forge(&with(&|c| c["aud"] = json!("search")), "h1", &HMAC_KEY),
            "wrong_audience",
        ),
        (
            "self-issued by another service",
            forge(
                &with(&|c| {
                    c["aud"] = json!("self-issued");
                    c["azp"] = json!("search");
                }),
                "h1",
                &HMAC_KEY,
            ),
            "wrong_audience",
        ),
        (
            "self-issued elsewhere, listed with another service",
            forge(
                &with(&|c| {
                    c["aud"] = json!(["self-issued", "search"]);
                    c["azp"] = json!("search");
                }),
                "h1",
                &HMAC_KEY,
            ),
            "wrong_audience",
        ),
        (
            "forged with another key",
            forge(&good_claims(), "h1", &HMAC_NEXT),
            "bad_signature",
        ),
        (
            "unknown kid",
            forge(&good_claims(), "h9", &HMAC_KEY),
            "unknown_key",
        ),
        (
            "lifetime over the cap",
            forge(&with(&|c| c["exp"] = json!(now + 7200)), "h1", &HMAC_KEY),
            "lifetime_too_long",
        ),
        (
            "not a user",
            forge(
                &with(&|c| c["sub"] = json!("plugin:scaffolder")),
                "h1",
                &HMAC_KEY,
            ),
            "wrong_subject",
        ),
        (
            "tampered encrypted_roles",
            forge(
                &with(&|c| {
                    c.as_object_mut().unwrap().remove("roles");
                    let s = sealed["encrypted_roles"].as_str().unwrap();
                    c["encrypted_roles"] = json!(format!("{}A", &s[..s.len() - 1]));
                }),
                "h1",
                &HMAC_KEY,
            ),
            "token_malformed",
        ),
        (
            "encrypted_roles of another token",
            forge(
                &with(&|c| {
                    c.as_object_mut().unwrap().remove("roles");
                    c["encrypted_roles"] = sealed["encrypted_roles"].clone();
                }),
                "h1",
                &HMAC_KEY,
            ),
            "token_malformed",
        ),
        (
            "alg none",
            kit::unsigned(
                &json!({"alg": "none", "typ": JIT_TYP, "kid": "h1"}),
                &good_claims(),
            ),
            "alg_none",
        ),
    ];
    for (what, token, reason) in &cases {
        let (reply, event) = s.call(Method::GET, "/entities", token).await;
        assert_eq!(
            reply.status,
            StatusCode::UNAUTHORIZED,
            "{what}: {}",
            reply.body
        );
        assert_eq!(event.decision, Decision::Deny, "{what}");
        assert_eq!(event.reason, *reason, "{what}: {}", event.message);
    }
    // Wrong typ: the same claims as a plugin token go to the plugin verifier, not here.
    let mut header = Header::new(Algorithm::HS512);
    header.kid = Some("h1".into());
    let untyped = jsonwebtoken::encode(
        &header,
        &good_claims(),
        &EncodingKey::from_secret(&HMAC_KEY),
    )
    .unwrap();
    let (reply, _) = s.call(Method::GET, "/entities", &untyped).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    // Oversized.
    let mut big = good_claims();
    big["pad"] = json!("x".repeat(9 * 1024));
    let (reply, event) = s
        .call(Method::GET, "/entities", &forge(&big, "h1", &HMAC_KEY))
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(event.reason, "token_too_long");
}

#[tokio::test]
async fn an_es256_deployment_refuses_hs512_tokens_alg_confusion() {
    let s = setup(es256()).await;
    let (reply, event) = s
        .call(
            Method::GET,
            "/entities",
            &forge(&good_claims(), "h1", &HMAC_KEY),
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.body);
    assert_eq!(event.reason, "alg_not_allowed");
}

#[tokio::test]
async fn roles_travel_sealed_and_arrive_decrypted() {
    let s = setup(hs512().encrypt_roles("r1", b64(&ROLES_KEY))).await;
    // jane's roles: a Backstage-style provider is not set up here, so sign her in with roles
    // through the Rust API.
    let jane = s2s_auth::Principal::new(
        s2s_auth::PrincipalType::User,
        "user:default/jane",
        s2s_auth::CredentialKind::User,
    )
    .with_expiry(time::OffsetDateTime::now_utc() + time::Duration::hours(1))
    .with_roles(vec!["group:default/admins".into(), "reader".into()]);
    let issued = s
        .auth
        .jit_token(&jane, &JitRequest::new("d"))
        .await
        .unwrap();
    let token = issued.token.expose_secret().to_owned();
    let (_, claims) = kit::header_and_claims(&token);
    assert!(claims.get("roles").is_none());
    let sealed = claims["encrypted_roles"].as_str().unwrap();
    assert!(sealed.starts_with("r1.") && !sealed.contains("admins"));
    let (reply, event) = s.call(Method::GET, "/entities", &token).await;
    let principal = assert_allowed(&reply, &event);
    assert_eq!(
        principal["roles"],
        json!(["group:default/admins", "reader"])
    );
}

#[tokio::test]
async fn rotation_keeps_tokens_of_the_previous_key_valid() {
    // `catalog` signs with h1; `search` has added h2 (it signs with it) and still verifies h1.
    let old = setup(hs512()).await;
    let (token, _) = old.issue(r#"{"description":"d","service":"search"}"#).await;
    let next = JitTokens::new(DEPLOYMENT)
        .hmac_key("h2", b64(&HMAC_NEXT))
        .hmac_key("h1", b64(&HMAC_KEY));
    let search = Auth::builder("search").jit_tokens(next).build().unwrap();
    let router = echo_router().layer(search.layer());
    let reply = send(&router, bearer(Method::GET, "/entities", &token)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    // A self-issued token of catalog is not for search.
    let (own, _) = old.issue(r#"{"description":"d"}"#).await;
    let reply = send(&router, bearer(Method::GET, "/entities", &own)).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.body);
}

#[test]
fn short_or_malformed_keys_are_config_errors_naming_their_path() {
    let cases = [
        (
            JitTokens::new(DEPLOYMENT).hmac_key("h1", b64(&[1; 32])),
            "jit_tokens.hmacKeys[0].key",
            "at least 64 bytes",
        ),
        (
            JitTokens::new(DEPLOYMENT).hmac_key("h1", "not base64!"),
            "jit_tokens.hmacKeys[0].key",
            "base64",
        ),
        (
            hs512().hmac_key("h1", b64(&HMAC_NEXT)),
            "jit_tokens.hmacKeys[1].kid",
            "twice",
        ),
        (
            hs512().encrypt_roles("r1", b64(&[1; 16])),
            "jit_tokens.rolesKeys[0].key",
            "32 bytes",
        ),
        (
            hs512().durations(
                std::time::Duration::from_secs(300),
                std::time::Duration::from_secs(3601),
            ),
            "jit_tokens.maxDurationSeconds",
            "3600",
        ),
        (
            JitTokens::new("has space").hmac_key("h1", b64(&HMAC_KEY)),
            "jit_tokens.deploymentId",
            "whitespace",
        ),
        (
            JitTokens::new(DEPLOYMENT),
            "jit_tokens.hmacKeys",
            "pluginTokens",
        ),
    ];
    for (jit, path, says) in cases {
        let e = Auth::builder(SERVICE).jit_tokens(jit).build().unwrap_err();
        assert_eq!(e.path(), Some(path), "{e}");
        assert!(e.to_string().contains(says), "{e}");
        // No key material in the error.
        assert!(!e.to_string().contains(&b64(&HMAC_KEY)));
    }
}

#[tokio::test]
async fn an_opensearch_client_works_against_the_compatible_path() {
    let s = setup(es256().opensearch_path(true)).await;
    // OpenSearch's documented request: curl -XPOST .../_plugins/_security/api/generateonbehalfoftoken
    //   -H 'Content-Type: application/json' -d '{"description":"Testing","service":"self-issued","durationSeconds":"180"}'
    // (`service` names a service id here, or is left out for self-issued.)
    let (reply, _) = s
        .post(
            OPENSEARCH_PATH,
            Some(&s.jane()),
            r#"{"description":"Testing","durationSeconds":"180"}"#,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let json = reply.json();
    assert_eq!(json["durationSeconds"], 180);
    assert_eq!(json["user"], "user:default/jane");
    let (reply, event) = s
        .call(
            Method::GET,
            "/entities",
            json["authenticationToken"].as_str().unwrap(),
        )
        .await;
    assert_allowed(&reply, &event);
}

/// Captures every log line.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn no_token_in_any_audit_event_or_log_line() {
    let lines = Lines::default();
    let writer = lines.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let s = setup(hs512().encrypt_roles("r1", b64(&ROLES_KEY))).await;
    let (token, _) = s.issue(r#"{"description":"line one\nline two"}"#).await;
    let mut events = s.audit.events();
    s.call(Method::GET, "/entities", &token).await;
    events.extend(s.audit.events());
    s.call(Method::POST, "/admin/tokens", &token).await;
    events.extend(s.audit.events());
    let tampered = format!("{}x", &token[..token.len() - 1]);
    s.call(Method::GET, "/entities", &tampered).await;
    events.extend(s.audit.events());
    let issued = events
        .iter()
        .find(|e| e.event == s2s_auth::audit::EventKind::TokenIssued)
        .expect("issuance audited");
    assert_eq!(issued.subject.as_deref(), Some("user:default/jane"));
    assert!(issued.token_fingerprint.is_some());
    assert!(!issued.message.contains('\n'), "{}", issued.message);
    let signature = token.rsplit('.').next().unwrap();
    let logged = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
    for event in &events {
        let text = format!("{event:?} {}", serde_json::to_string(event).unwrap());
        assert!(!text.contains(signature), "{text}");
        assert!(!text.contains(&b64(&HMAC_KEY)));
    }
    assert!(!logged.contains(signature), "{logged}");
    assert!(!logged.contains(&token[..40]), "{logged}");
    assert!(!format!("{:?}", s.auth).contains(&b64(&HMAC_KEY)));
}

/// The YAML shape, served by the router wrapper (as `examples/serve.rs` serves a config):
/// the endpoint is mounted, the token works, and a short HS512 key names its YAML path.
#[tokio::test]
async fn yaml_config_serves_the_endpoint_through_the_router_wrapper() {
    let idp = kit::Idp::start("idp-key").await;
    let yaml = |extra: &str| {
        format!(
            "s2s:\n  serviceId: catalog\n  users:\n    - type: oidc\n      issuer: {}\n      audience: catalog\n  \
             pluginTokens: {{}}\n  onBehalfOf:\n    justInTime:\n      deploymentId: {DEPLOYMENT}\n      \
             maxDurationSeconds: 120\n      openSearchPath: true\n{extra}\
             backend:\n  auth:\n    pluginKeyStore:\n      type: memory\n",
            idp.issuer
        )
    };
    let auth = AuthBuilder::from_yaml_str(&yaml(""))
        .unwrap()
        .build()
        .unwrap();
    let app: Router = auth
        .router()
        .fallback(|| async { "ok" })
        .into_router()
        .unwrap();
    let now = kit::now();
    let jane = idp.key.sign(&json!({
        "iss": idp.issuer, "sub": "jane", "aud": SERVICE, "iat": now, "exp": now + 3600,
    }));
    let req = request(Method::POST, OPENSEARCH_PATH)
        .header(header::AUTHORIZATION, format!("Bearer {jane}"))
        .body(Body::from(r#"{"description":"d","durationSeconds":3000}"#))
        .unwrap();
    let reply = send(&app, req).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.json()["durationSeconds"], 120);
    let token = reply.json()["authenticationToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let reply = send(&app, bearer(Method::GET, "/anything", &token)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);

    let short = format!(
        "      hmacKeys:\n        - {{ kid: h1, key: \"{}\" }}\n",
        b64(&[1; 32])
    );
    let e = AuthBuilder::from_yaml_str(&yaml(&short))
        .unwrap()
        .build()
        .unwrap_err();
    assert_eq!(
        e.path(),
        Some("s2s.onBehalfOf.justInTime.hmacKeys[0].key"),
        "{e}"
    );
}

impl Setup {
    async fn delete(&self, token: &str, jti: &str) -> Reply {
        let path = format!("{DEFAULT_PATH}/{jti}");
        send(&self.router, bearer(Method::DELETE, &path, token)).await
    }

    /// A user's own OIDC token for `sub`.
    fn user(&self, sub: &str) -> String {
        let now = kit::now();
        self.idp.key.sign(&json!({
            "iss": self.idp.issuer, "sub": sub, "aud": SERVICE, "iat": now, "exp": now + 3600,
        }))
    }
}

fn jti_of(token: &str) -> String {
    kit::header_and_claims(token).1["jti"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn a_revoked_token_is_refused_at_once_and_only_its_user_or_an_admin_may_revoke_it() {
    let s = setup(es256().revocation_admins(["user:default/admin"])).await;
    let (token, _) = s
        .issue(r#"{"description":"d","durationSeconds":120}"#)
        .await;
    let jti = jti_of(&token);
    let (reply, event) = s.call(Method::GET, "/entities", &token).await;
    assert_allowed(&reply, &event);

    // Not bob's token; the token itself may not revoke (sensitive); an unknown jti is 404.
    let reply = s.delete(&s.user("bob"), &jti).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.body);
    assert_eq!(
        reply.json()["error"]["message"],
        "only the token's user or a revocation admin may revoke it"
    );
    let reply = s.delete(&token, &jti).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.body);
    let reply = s.delete(&s.jane(), "no-such-jti").await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.body);

    // jane revokes it: refused by the very next request.
    s.audit.clear();
    let reply = s.delete(&s.jane(), &jti).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.body);
    let revoked = s
        .audit
        .events()
        .into_iter()
        .find(|e| e.event == s2s_auth::audit::EventKind::TokenRevoked)
        .expect("revocation audited");
    assert_eq!(revoked.target.as_deref(), Some(jti.as_str()));
    assert_eq!(revoked.subject.as_deref(), Some("user:default/jane"));
    let (reply, event) = s.call(Method::GET, "/entities", &token).await;
    assert_invalid_token(&reply, &event, "token has been revoked", "token_revoked");

    // An admin revokes someone else's.
    let (other, _) = s.issue(r#"{"description":"d"}"#).await;
    let reply = s.delete(&s.user("admin"), &jti_of(&other)).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.body);
    let (reply, _) = s.call(Method::GET, "/entities", &other).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
}

/// Two replicas sharing `store`, HS512 keys shared by the deployment: a token revoked on one
/// is refused by the other within the staleness bound.
async fn two_replicas_refuse_a_revoked_token(
    store: Arc<dyn s2s_auth::store::Store>,
    bound: std::time::Duration,
) {
    let staleness = std::time::Duration::from_millis(400);
    let jit = || hs512().store(store.clone()).revocation_staleness(staleness);
    let a = setup(jit()).await;
    let b = setup(jit()).await;
    let (token, _) = a.issue(r#"{"description":"d","service":"catalog"}"#).await;
    for replica in [&a, &b] {
        let (reply, event) = replica.call(Method::GET, "/entities", &token).await;
        assert_allowed(&reply, &event);
    }
    let revoked_at = std::time::Instant::now();
    let reply = a.delete(&a.jane(), &jti_of(&token)).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.body);
    let (reply, _) = a.call(Method::GET, "/entities", &token).await;
    assert_eq!(
        reply.status,
        StatusCode::UNAUTHORIZED,
        "at once on the replica that revoked it"
    );
    loop {
        let (reply, _) = b.call(Method::GET, "/entities", &token).await;
        if reply.status == StatusCode::UNAUTHORIZED {
            break;
        }
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        assert!(
            revoked_at.elapsed() < bound,
            "the other replica still takes it after {:?}",
            revoked_at.elapsed()
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn two_replicas_on_one_memory_store_refuse_a_revoked_token() {
    let store: Arc<dyn s2s_auth::store::Store> = Arc::new(MemoryStore::default());
    two_replicas_refuse_a_revoked_token(store, std::time::Duration::from_millis(400 + 300)).await;
}

#[tokio::test]
async fn two_replicas_on_one_sqlite_file_refuse_a_revoked_token() {
    let dir = std::env::temp_dir().join(format!("s2s-jit-{}", kit::random_hex(8)));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("store.sqlite");
    let store = s2s_auth::store::SqliteStore::open(path.to_str().unwrap())
        .await
        .unwrap();
    two_replicas_refuse_a_revoked_token(
        Arc::new(store),
        std::time::Duration::from_millis(400 + 300),
    )
    .await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn two_replicas_on_one_postgres_refuse_a_revoked_token() {
    let Some(url) = postgres_url("two_replicas_on_one_postgres_refuse_a_revoked_token") else {
        return;
    };
    let store = s2s_auth::store::PostgresStore::connect(&url).await.unwrap();
    // Through LISTEN/NOTIFY the other replica sees it well within one poll.
    two_replicas_refuse_a_revoked_token(
        Arc::new(store),
        std::time::Duration::from_millis(400 + 300),
    )
    .await;
}

/// ES256: another service verifies catalog's token for it with catalog's published keys
/// (found by discovery), when it trusts catalog as an issuer; a service that does not is
/// refused before any fetch.
#[tokio::test]
async fn another_service_verifies_es256_tokens_with_the_issuers_published_keys() {
    let catalog = setup(es256()).await;
    let served = serve(catalog.auth.jwks_router()).await;
    let (token, _) = catalog
        .issue(r#"{"description":"d","service":"search"}"#)
        .await;
    let search = |trusted: &[&str]| {
        Auth::builder("search")
            .plugin_tokens(PluginTokens::new(Arc::new(MemoryStore::default())))
            .discovery(s2s_auth::StaticDiscovery::new([(
                "catalog",
                served.base.as_str(),
            )]))
            .jit_tokens(es256().trusted_issuers(trusted.iter().copied()))
            .build()
            .unwrap()
    };
    let trusting = search(&["catalog"]);
    let router = echo_router().layer(trusting.layer());
    let reply = send(&router, bearer(Method::GET, "/entities", &token)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.json()["subject"], "user:default/jane");

    let wary = search(&[]);
    let router = echo_router().layer(wary.layer());
    let reply = send(&router, bearer(Method::GET, "/entities", &token)).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.body);
    assert!(
        reply.www_authenticate().unwrap().contains("unknown"),
        "{:?}",
        reply.www_authenticate()
    );
}

/// ES256 rotation: a token signed with the previous plugin key keeps verifying after the
/// key rotates (the old public key stays published for three key durations). Waits one
/// key duration (the shortest allowed, 60 s).
#[tokio::test]
async fn es256_rotation_keeps_tokens_of_the_previous_key_valid() {
    let key_duration = std::time::Duration::from_secs(60);
    let s = setup_with(es256(), |b| {
        b.plugin_tokens(
            PluginTokens::new(Arc::new(MemoryStore::default())).key_duration(key_duration),
        )
    })
    .await;
    let (first, _) = s
        .issue(r#"{"description":"d","durationSeconds":600}"#)
        .await;
    tokio::time::sleep(key_duration + std::time::Duration::from_secs(1)).await;
    let (second, _) = s.issue(r#"{"description":"d"}"#).await;
    let kid = |t: &str| {
        kit::header_and_claims(t).0["kid"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_ne!(
        kid(&first),
        kid(&second),
        "a new key after the key duration"
    );
    for token in [&first, &second] {
        let (reply, event) = s.call(Method::GET, "/entities", token).await;
        assert_allowed(&reply, &event);
    }
}

/// A verifier takes a token until `exp` plus its leeway (up to 300 s on any replica): the
/// revocation must last that long too, or a revoked token would pass again in that window.
#[tokio::test]
async fn a_revocation_outlives_the_token_by_the_largest_leeway() {
    let store: Arc<dyn s2s_auth::store::Store> = Arc::new(MemoryStore::default());
    let s = setup(hs512().store(store.clone())).await;
    let (token, _) = s
        .issue(r#"{"description":"d","durationSeconds":120}"#)
        .await;
    let jti = jti_of(&token);
    let exp = kit::header_and_claims(&token).1["exp"].as_i64().unwrap();
    let reply = s.delete(&s.jane(), &jti).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.body);
    let grace = i64::try_from(s2s_auth::AuthBuilder::MAX_LEEWAY_SECS).unwrap();
    let kept = store.revocations(exp + grace - 1).await.unwrap();
    let revocation = kept
        .iter()
        .find(|r| r.jti == jti)
        .expect("still revoked just before exp + the largest leeway");
    assert_eq!(revocation.expires_at, exp + grace);
}
