//! Plugin-to-plugin tokens through real servers on `127.0.0.1:0`: a service that issues
//! tokens and publishes its keys ([`Issuer`]), a service that verifies them ([`Receiver`]),
//! and the assertions every plugin-token test makes.

use std::sync::Arc;

use axum::Router;
use http::StatusCode;
use s2s_auth::audit::{AuditEvent, MemoryAuditSink};
use s2s_auth::error::VerifyError;
use s2s_auth::plugin::JWKS_PATH;
use s2s_auth::plugin::ServiceDiscovery;
use s2s_auth::store::{MemoryStore, Store};
use s2s_auth::{Auth, AuthBuilder, CredentialKind, PluginTokens, PrincipalType, StaticDiscovery};
use serde_json::Value;

use super::kit::header_and_claims;
use super::{Reply, SERVICE, Served, assert_allowed, assert_invalid_token, serve};

/// A service that issues plugin tokens and publishes its keys: its `jwks_router()`, behind
/// its own layer, on a port of its own.
pub struct Issuer {
    pub auth: Auth,
    pub server: Served,
}

impl Issuer {
    /// `service` keeping its keys in `store`, with the default key duration.
    pub async fn start(service: &str, store: Arc<dyn Store>) -> Self {
        Self::with(PluginTokens::new(store), service).await
    }

    pub async fn with(tokens: PluginTokens, service: &str) -> Self {
        let auth = Auth::builder(service)
            .plugin_tokens(tokens)
            .build()
            .expect("issuer configuration builds");
        Self::serving(auth).await
    }

    pub async fn serving(auth: Auth) -> Self {
        let app: Router = auth.jwks_router().layer(auth.layer());
        let server = serve(app).await;
        Self { auth, server }
    }

    pub fn base(&self) -> &str {
        &self.server.base
    }

    /// A token for calling `target`.
    pub async fn token(&self, target: &str) -> String {
        self.auth
            .plugin_token(target)
            .await
            .expect("a plugin token")
            .expose_secret()
            .to_owned()
    }

    /// `GET <base>/.backstage/auth/v1/jwks.json`, without credentials.
    pub async fn get_jwks(&self) -> reqwest::Response {
        reqwest::get(format!("{}{JWKS_PATH}", self.base()))
            .await
            .expect("the JWKS route answers")
    }

    /// The published key set; asserts a 200.
    pub async fn jwks(&self) -> Value {
        let response = self.get_jwks().await;
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.expect("a JSON key set")
    }

    /// The `kid`s of the published key set, sorted.
    pub async fn published_kids(&self) -> Vec<String> {
        kids_of(&self.jwks().await)
    }
}

/// A service verifying plugin tokens: the common echo router behind its layer, with a
/// memory audit sink.
pub struct Receiver {
    audit: Arc<MemoryAuditSink>,
    pub server: Served,
    http: reqwest::Client,
}

impl Receiver {
    /// `service`, knowing the services `discovery` knows, and nothing else.
    pub async fn start(service: &str, discovery: impl ServiceDiscovery) -> Self {
        Self::from_builder(Auth::builder(service).discovery(discovery)).await
    }

    /// `service`, finding `caller` at `base` (the service's JWKS is below it).
    pub async fn knowing(service: &str, caller: &str, base: &str) -> Self {
        Self::start(service, StaticDiscovery::new([(caller, base)])).await
    }

    pub async fn from_builder(builder: AuthBuilder) -> Self {
        let audit = Arc::new(MemoryAuditSink::default());
        let auth = builder
            .audit_sink(audit.clone())
            .build_async()
            .await
            .expect("receiver configuration builds");
        let server = serve(super::echo_router().layer(auth.layer())).await;
        Self {
            audit,
            server,
            http: reqwest::Client::new(),
        }
    }

    /// `GET /entities` with `Authorization: Bearer <token>`: the response and the one audit
    /// event it produced.
    pub async fn call(&self, token: &str) -> (Reply, AuditEvent) {
        let request = self
            .http
            .get(format!("{}/entities", self.server.base))
            .bearer_auth(token);
        super::send_served(&self.audit, request).await
    }

    /// Asserts `token` is accepted as coming from the plugin `caller`.
    pub async fn accepts(&self, token: &str, caller: &str) {
        let (reply, event) = self.call(token).await;
        assert_plugin_caller(&reply, &event, caller);
    }

    /// Asserts `token` is refused with `error`, this receiver being `catalog`.
    pub async fn refuses(&self, token: &str, error: &VerifyError) {
        let (reply, event) = self.call(token).await;
        assert_invalid(&reply, &event, SERVICE, error);
    }
}

/// The `kid` of a compact JWS's header.
pub fn kid(token: &str) -> String {
    let (header, _) = header_and_claims(token);
    header["kid"].as_str().expect("a kid").to_owned()
}

/// The `kid`s of a JWKS document, sorted.
pub fn kids_of(jwks: &Value) -> Vec<String> {
    let mut kids: Vec<String> = jwks["keys"]
        .as_array()
        .expect("`keys` is a list")
        .iter()
        .map(|k| k["kid"].as_str().expect("every key has a kid").to_owned())
        .collect();
    kids.sort();
    kids
}

pub fn sorted(mut kids: Vec<String>) -> Vec<String> {
    kids.sort();
    kids
}

/// Asserts the handler ran for the plugin `caller`: principal `plugin:<caller>`, a
/// service, through a plugin token; the audit event says the same.
#[track_caller]
pub fn assert_plugin_caller(reply: &Reply, event: &AuditEvent, caller: &str) {
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
pub fn assert_invalid(reply: &Reply, event: &AuditEvent, realm: &str, error: &VerifyError) {
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
    assert_eq!(event.decision, s2s_auth::audit::Decision::Deny);
    assert_eq!(event.reason, error.code());
    assert_eq!(event.message, description);
    assert_eq!(event.status, 401);
    assert_eq!(event.service_id, realm);
}

/// A fresh in-memory key store.
pub fn memory_store() -> Arc<dyn Store> {
    Arc::new(MemoryStore::new())
}
