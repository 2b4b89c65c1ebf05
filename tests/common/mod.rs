//! Shared helpers for the integration tests: the tokens, one configuration that exercises
//! every rule, a router that echoes the principal, and a driver that sends one request
//! through the real layer and returns the response with the one audit event it produced.
//! Keys, forged tokens, key servers and the identity provider are the test kit's
//! ([`kit`], shared with the benches and the tour); plugin-token services are in [`plugin`].

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

#[path = "../kit/mod.rs"]
pub mod kit;

pub use kit::{b64url, hex};

pub mod plugin;

use base64::Engine as _;
use std::io;
use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::body::Body;
use axum::routing::any;
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use s2s_auth::audit::{AuditEvent, Decision, MemoryAuditSink};
use s2s_auth::{Auth, AuthBuilder, Principal};
use serde_json::Value;
use tower::ServiceExt;

/// The service id, and so the realm of every challenge.
pub const SERVICE: &str = "catalog";

/// `ci-bot`'s token: read-only, unrestricted.
pub const CI_TOKEN: &str = "ci-bot-token-5f2c9a7e41d08b36";
/// `ci-bot`'s next token, configured alongside the first for rotation.
pub const CI_TOKEN_NEXT: &str = "ci-bot-token-next-0b7d13e9c4a2f861";
/// Configured only as `tokenSha256` (subject `hashed-caller`).
pub const HASHED_TOKEN: &str = "hashed-caller-token-7c1e5b93d2046af8";
/// Expired (`expiresAt` in 2020, subject `old-job`).
pub const EXPIRED_TOKEN: &str = "old-job-token-3a9f0c6d2b715e84";
/// `allowWrites: true` (subject `deployer`).
pub const WRITER_TOKEN: &str = "deployer-token-e6d4a1f09c3b7258";
/// Restricted to plugin `scaffolder` (subject `scaffolder-bot`).
pub const SCAFFOLDER_ONLY_TOKEN: &str = "scaffolder-bot-token-91b0e2d7f4c6a835";
/// Restricted to `catalog` with action `read`, writes allowed (subject `reader`), so that
/// it is the action restriction, not read-only, that refuses its writes.
pub const READ_ACTION_TOKEN: &str = "reader-token-2f8e6c0a9d4b1357";
/// Restricted to `catalog` with permission `catalog.entity.read`, writes allowed
/// (subject `entity-reader`).
pub const READ_PERMISSION_TOKEN: &str = "entity-reader-token-4d1a7f3c8e0b9265";

/// A token nobody configured.
pub const UNKNOWN_TOKEN: &str = "nobody-configured-this-token-8e3f";
/// Three base64url segments starting `eyJ`: goes to the (absent) JWT verifiers.
pub const JWT_SHAPED_TOKEN: &str =
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJjaS1ib3QifQ.c2lnbmF0dXJlLW5vdC1jaGVja2Vk";

/// The legacy HS256 secret of [`STANDARD_YAML`] (deprecated `backend.auth.keys`, honoured:
/// callers holding it are `external:backstage-plugins`). Base64 of 33 bytes.
pub const LEGACY_SECRET: &str = "bGVnYWN5LXNoYXJlZC1zZWNyZXQtbmV2ZXItbG9nZ2Vk";

/// Every configured secret of [`STANDARD_YAML`], as the environment gives them.
pub const CONFIGURED_TOKENS: [&str; 8] = [
    CI_TOKEN,
    CI_TOKEN_NEXT,
    HASHED_TOKEN,
    EXPIRED_TOKEN,
    WRITER_TOKEN,
    SCAFFOLDER_ONLY_TOKEN,
    READ_ACTION_TOKEN,
    READ_PERMISSION_TOKEN,
];

/// The configuration most tests run against. Tokens come from the environment, as they
/// would in production; [`standard_env`] provides them.
pub const STANDARD_YAML: &str = r#"
s2s:
  serviceId: catalog
  routes:
    - path: /healthz
      unauthenticated: true
    - path: /entities/{id}
      methods: [GET]
      permission: catalog.entity.read
      action: read
    - path: /entities/{id}
      methods: [DELETE]
      permission: catalog.entity.delete
    - path: /entities/{id}/refresh
      methods: [GET]
      action: update
    - path: /imports
      methods: [POST]
      allowStaticWrites: true
    - path: /users/me
      allow: [user]
    - path: /admin/tokens
      sensitive: true
    - path: /files/{*rest}
backend:
  auth:
    keys:
      - secret: ${LEGACY_SECRET}
    externalAccess:
      - type: static
        options:
          token: ${CI_TOKEN}
          subject: ci-bot
      - type: static
        options:
          token: ${CI_TOKEN_NEXT}
          subject: ci-bot
      - type: static
        options:
          tokenSha256: ${HASHED_TOKEN_SHA256}
          subject: hashed-caller
      - type: static
        options:
          token: ${EXPIRED_TOKEN}
          subject: old-job
          expiresAt: 2020-01-01T00:00:00Z
      - type: static
        options:
          token: ${WRITER_TOKEN}
          subject: deployer
          allowWrites: true
      - type: static
        options:
          token: ${SCAFFOLDER_ONLY_TOKEN}
          subject: scaffolder-bot
        accessRestrictions:
          - plugin: scaffolder
      - type: static
        options:
          token: ${READ_ACTION_TOKEN}
          subject: reader
          allowWrites: true
        accessRestrictions:
          - plugin: catalog
            permissionAttribute:
              action: [read]
      - type: static
        options:
          token: ${READ_PERMISSION_TOKEN}
          subject: entity-reader
          allowWrites: true
        accessRestrictions:
          - plugin: catalog
            permission: [catalog.entity.read]
"#;

/// The environment [`STANDARD_YAML`] reads its secrets from.
pub fn standard_env(name: &str) -> Option<String> {
    let value = match name {
        "CI_TOKEN" => CI_TOKEN,
        "CI_TOKEN_NEXT" => CI_TOKEN_NEXT,
        "HASHED_TOKEN_SHA256" => return Some(sha256_hex(HASHED_TOKEN)),
        "EXPIRED_TOKEN" => EXPIRED_TOKEN,
        "WRITER_TOKEN" => WRITER_TOKEN,
        "SCAFFOLDER_ONLY_TOKEN" => SCAFFOLDER_ONLY_TOKEN,
        "READ_ACTION_TOKEN" => READ_ACTION_TOKEN,
        "READ_PERMISSION_TOKEN" => READ_PERMISSION_TOKEN,
        "LEGACY_SECRET" => LEGACY_SECRET,
        _ => return None,
    };
    Some(value.to_owned())
}

/// The builder for [`STANDARD_YAML`].
pub fn standard_builder() -> AuthBuilder {
    AuthBuilder::from_yaml_str_with_env(STANDARD_YAML, standard_env)
        .expect("the standard test configuration is valid")
}

/// An environment with no variables at all.
pub fn no_env(_: &str) -> Option<String> {
    None
}

/// Lower-case hex SHA-256 of a token: what `tokenSha256` holds.
pub fn sha256_hex(token: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
    hex(digest.as_ref())
}

/// Standard base64, padded.
pub fn b64_std(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Every form in which a secret could leak: itself, hex (both cases), base64 (standard
/// padded and unpadded, URL-safe).
pub fn leak_forms(secret: &str) -> Vec<String> {
    let bytes = secret.as_bytes();
    vec![
        secret.to_owned(),
        hex(bytes),
        hex(bytes).to_uppercase(),
        b64_std(bytes),
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(bytes),
        b64url(bytes),
    ]
}

/// Answers with the principal the layer injected, or `null`.
async fn echo(principal: Option<Principal>) -> axum::Json<Option<Principal>> {
    axum::Json(principal)
}

/// A router without the layer: every path of [`STANDARD_YAML`] and a fallback, every
/// method, all echoing the principal.
pub fn echo_router() -> Router {
    Router::new()
        .route("/healthz", any(echo))
        .route("/entities", any(echo))
        .route("/entities/{id}", any(echo))
        .route("/entities/{id}/refresh", any(echo))
        .route("/imports", any(echo))
        .route("/users/me", any(echo))
        .route("/admin/tokens", any(echo))
        .route("/files/{*rest}", any(echo))
        .fallback(echo)
}

/// A router served on `127.0.0.1:0` until dropped.
pub struct Served {
    pub base: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves `app` on `127.0.0.1:0`.
pub async fn serve(app: Router) -> Served {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    serve_on(listener, app)
}

/// Serves `app` on `listener` (bound early, when its address must be known first).
pub fn serve_on(listener: tokio::net::TcpListener, app: Router) -> Served {
    let base = format!("http://{}", listener.local_addr().expect("address"));
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.expect("server runs");
    });
    Served { base, task }
}

/// `request` sent to a served router whose layer writes to `audit`: the reply and the one
/// audit event it produced.
pub async fn send_served(
    audit: &MemoryAuditSink,
    request: reqwest::RequestBuilder,
) -> (Reply, AuditEvent) {
    audit.clear();
    let response = request.send().await.expect("the server answers");
    let reply = Reply {
        status: response.status(),
        headers: response.headers().clone(),
        body: response.text().await.expect("a body"),
    };
    let mut events = audit.events();
    assert_eq!(events.len(), 1, "one request, one audit event: {events:#?}");
    (reply, events.remove(0))
}

/// A response, read to the end.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn www_authenticate(&self) -> Option<&str> {
        self.headers
            .get(header::WWW_AUTHENTICATE)
            .map(|v| v.to_str().expect("WWW-Authenticate is visible ASCII"))
    }

    pub fn content_type(&self) -> Option<&str> {
        self.headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.body))
    }

    /// Everything a client sees: status, headers and body, as one string.
    pub fn everything(&self) -> String {
        let mut s = format!("{}\n", self.status);
        for (name, value) in &self.headers {
            s.push_str(&format!(
                "{name}: {}\n",
                String::from_utf8_lossy(value.as_bytes())
            ));
        }
        s.push_str(&self.body);
        s
    }
}

/// Sends a request through any router and reads the response.
pub async fn send(router: &Router, request: Request<Body>) -> Reply {
    let response = router
        .clone()
        .oneshot(request)
        .await
        .expect("axum routers are infallible");
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.expect("body is readable").to_bytes();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body: String::from_utf8(bytes.to_vec()).expect("body is UTF-8"),
    }
}

/// A request with no `Authorization` header.
pub fn request(method: Method, uri: &str) -> http::request::Builder {
    Request::builder().method(method).uri(uri)
}

/// A request with `Authorization: Bearer <token>`.
pub fn bearer(method: Method, uri: &str, token: &str) -> Request<Body> {
    request(method, uri)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())
        .expect("valid request")
}

/// A request with the given raw `Authorization` header values (none, one, or several).
pub fn with_authorization(method: Method, uri: &str, values: &[&[u8]]) -> Request<Body> {
    let mut req = request(method, uri)
        .body(Body::empty())
        .expect("valid request");
    for v in values {
        req.headers_mut().append(
            header::AUTHORIZATION,
            HeaderValue::from_bytes(v).expect("test header values are valid header bytes"),
        );
    }
    req
}

/// An [`Auth`] wrapped around [`echo_router`], with a memory audit sink.
pub struct Harness {
    pub auth: Auth,
    pub router: Router,
    pub audit: Arc<MemoryAuditSink>,
}

impl Harness {
    pub fn new(builder: AuthBuilder) -> Self {
        let audit = Arc::new(MemoryAuditSink::default());
        let auth = builder
            .audit_sink(audit.clone())
            .build()
            .expect("test configuration builds");
        let router = echo_router().layer(auth.layer());
        Self {
            auth,
            router,
            audit,
        }
    }

    /// The harness for [`STANDARD_YAML`].
    pub fn standard() -> Self {
        Self::new(standard_builder())
    }

    /// Sends a request; returns the response and the one audit event it produced.
    pub async fn send(&self, request: Request<Body>) -> (Reply, AuditEvent) {
        self.audit.clear();
        let reply = send(&self.router, request).await;
        let mut events = self.audit.events();
        assert_eq!(events.len(), 1, "one request, one audit event: {events:#?}");
        (reply, events.remove(0))
    }

    /// Sends `method uri` with `Authorization: Bearer <token>`, or no header for `None`.
    pub async fn call(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
    ) -> (Reply, AuditEvent) {
        let req = match token {
            Some(token) => bearer(method, uri, token),
            None => request(method, uri)
                .body(Body::empty())
                .expect("valid request"),
        };
        self.send(req).await
    }
}

/// `WWW-Authenticate` when credentials are simply missing (RFC 6750 section 3: no code).
pub fn bare_challenge() -> String {
    format!("Bearer realm=\"{SERVICE}\"")
}

/// `WWW-Authenticate` with an error code and description.
pub fn challenge(code: &str, description: &str) -> String {
    format!("Bearer realm=\"{SERVICE}\", error=\"{code}\", error_description=\"{description}\"")
}

/// Asserts a refusal: the status, the exact challenge, a JSON body, and the audit event's
/// decision, reason and status.
#[track_caller]
pub fn assert_refused(
    reply: &Reply,
    event: &AuditEvent,
    status: u16,
    www_authenticate: &str,
    reason: &str,
) {
    assert_eq!(
        reply.status.as_u16(),
        status,
        "status; body: {}",
        reply.body
    );
    assert_eq!(reply.www_authenticate(), Some(www_authenticate));
    assert_eq!(reply.content_type(), Some("application/json"));
    assert_eq!(reply.json()["response"]["statusCode"], status);
    assert_eq!(event.decision, Decision::Deny);
    assert_eq!(event.reason, reason);
    assert_eq!(event.status, status);
    assert_eq!(event.service_id, SERVICE);
}

/// Asserts a 401 `invalid_token` with exactly this description and audit reason.
#[track_caller]
pub fn assert_invalid_token(reply: &Reply, event: &AuditEvent, description: &str, reason: &str) {
    assert_refused_with(reply, event, 401, "invalid_token", description, reason);
}

/// Asserts a 403 `insufficient_scope` with exactly this description and audit reason.
#[track_caller]
pub fn assert_forbidden(reply: &Reply, event: &AuditEvent, description: &str, reason: &str) {
    assert_refused_with(reply, event, 403, "insufficient_scope", description, reason);
}

#[track_caller]
fn assert_refused_with(
    reply: &Reply,
    event: &AuditEvent,
    status: u16,
    code: &str,
    description: &str,
    reason: &str,
) {
    assert_refused(reply, event, status, &challenge(code, description), reason);
    assert_eq!(event.message, description);
    assert_eq!(reply.json()["error"]["message"], description);
}

/// Asserts the request reached the handler through an authenticated route, and returns the
/// principal the handler saw (`Value::Null` for none, and for `HEAD`, whose body axum drops).
#[track_caller]
pub fn assert_allowed(reply: &Reply, event: &AuditEvent) -> Value {
    assert_eq!(reply.status, StatusCode::OK, "body: {}", reply.body);
    assert_eq!(reply.www_authenticate(), None);
    assert_eq!(event.decision, Decision::Allow);
    assert_eq!(event.reason, "allowed");
    assert_eq!(event.status, 200);
    assert_eq!(event.message, "");
    if event.method == "HEAD" {
        assert_eq!(reply.body, "");
        return Value::Null;
    }
    reply.json()
}

/// Asserts a 503 because no key could be had: `Retry-After` (returned, at least 1 s), no
/// challenge (it is not the credential's fault), Backstage's error body, and the audit
/// event `keys_unavailable`.
#[track_caller]
pub fn assert_keys_unavailable(reply: &Reply, event: &AuditEvent) -> u64 {
    assert_eq!(reply.status.as_u16(), 503, "body: {}", reply.body);
    let retry_after: u64 = reply
        .headers
        .get(header::RETRY_AFTER)
        .expect("a 503 carries Retry-After")
        .to_str()
        .expect("ASCII")
        .parse()
        .expect("Retry-After is whole seconds");
    assert!(retry_after >= 1, "Retry-After {retry_after}");
    assert_eq!(reply.www_authenticate(), None);
    assert_eq!(reply.content_type(), Some("application/json"));
    let body = reply.json();
    assert_eq!(body["error"]["name"], "ServiceUnavailableError");
    assert_eq!(body["response"]["statusCode"], 503);
    assert_eq!(event.decision, Decision::Deny);
    assert_eq!(event.reason, "keys_unavailable");
    assert_eq!(event.status, 503);
    assert_eq!(event.service_id, SERVICE);
    retry_after
}

/// An in-memory, cloneable writer: for `JsonLinesSink` and for tracing's `fmt` layer.
#[derive(Clone, Default)]
pub struct SharedBuf(Arc<Mutex<Vec<u8>>>);

impl SharedBuf {
    pub fn contents(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(PoisonError::into_inner)).into_owned()
    }
}

impl io::Write for SharedBuf {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for SharedBuf {
    type Writer = SharedBuf;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// The test database's URL, or `None` after a loud `SKIPPED` (a panic under `CI=true`).
pub fn postgres_url(test: &str) -> Option<String> {
    match std::env::var("S2S_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("CI").as_deref() == Ok("true") => panic!(
            "{test}: S2S_TEST_POSTGRES_URL is not set and CI=true: the PostgreSQL tests must \
             run in CI (.ci/run starts a private server and sets it)"
        ),
        _ => {
            // Straight to stderr: the harness swallows `eprintln!` of passing tests.
            let _ = std::io::Write::write_fmt(
                &mut std::io::stderr().lock(),
                format_args!(
                    "SKIPPED: {test}: no PostgreSQL; set \
                 S2S_TEST_POSTGRES_URL=postgres://user:password@host:port/db to run it \
                 (.ci/run starts a server and sets it)"
                ),
            );
            None
        }
    }
}
