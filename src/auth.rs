//! [`Auth`]: everything the layer needs (verifiers, policies, audit sinks), and the
//! decision pipeline every request goes through.
//!
//! ```
//! use axum::{routing::get, Router};
//! use s2s_auth::{Auth, Principal, RoutePolicy, StaticToken};
//!
//! let auth = Auth::builder("catalog")
//!     .static_token(StaticToken::new("ci-bot", "a-long-random-token-for-ci"))
//!     .route("/healthz", [], RoutePolicy::unauthenticated())
//!     .build()?;
//!
//! let app: Router = Router::new()
//!     .route("/entities", get(|p: Principal| async move { p.subject().to_owned() }))
//!     .route("/healthz", get(|| async { "ok" }))
//!     .layer(auth.layer());
//! # Ok::<(), s2s_auth::ConfigError>(())
//! ```

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use http::{HeaderMap, Method, Response, Uri};
use time::OffsetDateTime;

use crate::access_table::AccessTable;
use crate::audit::{AuditEvent, AuditSink, Decision, emit_tracing};
use crate::classify::{TokenClass, classify};
use crate::error::{ConfigError, RequestError, VerifyError};
use crate::extract;
use crate::layer::AuthLayer;
use crate::policy::{DefaultPolicy, PolicyRegistry, RoutePolicy, RouteSpec, authorize};
use crate::principal::Principal;
use crate::secret::Fingerprint;
use crate::static_token::{StaticToken, StaticTokens};

/// The configured authentication of one service. Cheap to clone (one `Arc`).
///
/// Build it with [`Auth::builder`] or from YAML with
/// [`AuthBuilder::from_yaml_str`](crate::AuthBuilder::from_yaml_str), then wrap a router in
/// [`Auth::layer`].
#[derive(Clone)]
pub struct Auth {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) service_id: String,
    pub(crate) static_tokens: StaticTokens,
    pub(crate) static_callers: Vec<StaticToken>,
    pub(crate) registry: PolicyRegistry,
    sinks: Vec<Arc<dyn AuditSink>>,
    request_ids: RequestIds,
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Auth")
            .field("service_id", &self.inner.service_id)
            .field("static_tokens", &self.inner.static_callers.len())
            .field("routes", &self.inner.registry.routes.len())
            .field("default_policy", &self.inner.registry.default)
            .field("audit_sinks", &self.inner.sinks.len())
            .finish()
    }
}

/// Whether `id` is a valid service id: `^[a-z0-9_-]+$`.
pub fn is_valid_service_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

impl Auth {
    /// Starts building the authentication of the service called `service_id` (Backstage's
    /// plugin id, `^[a-z0-9_-]+$`; it is also the realm in `WWW-Authenticate`).
    pub fn builder(service_id: impl Into<String>) -> AuthBuilder {
        AuthBuilder {
            service_id: service_id.into(),
            static_tokens: Vec::new(),
            routes: Vec::new(),
            default_policy: DefaultPolicy::default(),
            sinks: Vec::new(),
        }
    }

    /// The tower layer that guards a router or service with this configuration.
    pub fn layer(&self) -> AuthLayer {
        AuthLayer::new(self.clone())
    }

    /// This service's id.
    pub fn service_id(&self) -> &str {
        &self.inner.service_id
    }

    /// Which routes each credential kind and each configured static caller can reach.
    pub fn access_table(&self) -> AccessTable {
        AccessTable::new(&self.inner)
    }

    /// Every declared route: its pattern, its method (`None` for the policy that covers the
    /// methods not listed separately) and its policy, in declaration order.
    ///
    /// ```
    /// use http::Method;
    /// use s2s_auth::{Auth, RoutePolicy};
    ///
    /// let auth = Auth::builder("catalog")
    ///     .route("/healthz", [Method::GET], RoutePolicy::unauthenticated())
    ///     .build()
    ///     .unwrap();
    /// let routes = auth.routes();
    /// assert_eq!(routes[0].0, "/healthz");
    /// assert_eq!(routes[0].1, Some(&Method::GET));
    /// ```
    pub fn routes(&self) -> Vec<(&str, Option<&Method>, &RoutePolicy)> {
        let mut out = Vec::new();
        for entry in &self.inner.registry.routes {
            for (method, policy) in &entry.by_method {
                out.push((entry.pattern.as_str(), Some(method), policy));
            }
            if let Some(policy) = &entry.any_method {
                out.push((entry.pattern.as_str(), None, policy));
            }
        }
        out
    }

    // The refusal is built once and moved straight into the response future; boxing it would
    // add an allocation to every refused request for no gain.
    #[allow(clippy::result_large_err)]
    /// Decides one request: `Ok` with the principal to inject (none on an unauthenticated
    /// route called without a valid credential), or the refusal to send. Audits either way.
    pub(crate) fn decide(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
    ) -> Result<Option<Principal>, Response<String>> {
        let inner = &*self.inner;
        let resolved = inner.registry.resolve(method, uri.path());
        let mut event = AuditEvent {
            time: OffsetDateTime::now_utc(),
            request_id: inner.request_ids.for_request(headers),
            decision: Decision::Allow,
            reason: String::new(),
            message: String::new(),
            status: 200,
            service_id: inner.service_id.clone(),
            subject: None,
            principal_type: None,
            credential: None,
            actor: None,
            method: method.as_str().to_owned(),
            route: resolved.pattern().to_owned(),
            token_fingerprint: None,
        };
        let token = extract::bearer_token(headers, uri);
        if let Ok(Some(token)) = token {
            event.token_fingerprint = Some(Fingerprint::of(token.as_bytes()));
        }

        if resolved.is_unauthenticated() {
            // Everyone may call this route. A valid credential still yields a principal; a bad
            // one is ignored (a stale token must not break a health check) but audited.
            let principal = match token {
                Ok(Some(token)) => match self.verify(token, event.time) {
                    Ok(p) => Some(p),
                    Err(e) => {
                        event.message = format!("credential ignored: {e}");
                        None
                    }
                },
                Ok(None) => None,
                Err(e) => {
                    event.message = format!("credential ignored: {e}");
                    None
                }
            };
            if let Some(p) = &principal {
                fill_principal(&mut event, p);
            }
            event.reason = String::from("unauthenticated_route");
            self.record(&event);
            return Ok(principal);
        }

        let outcome = token.and_then(|token| {
            let token = token.ok_or(RequestError::MissingCredentials)?;
            let principal = self.verify(token, event.time)?;
            fill_principal(&mut event, &principal);
            authorize(&principal, method, &resolved, &inner.service_id)?;
            Ok(principal)
        });
        match outcome {
            Ok(principal) => {
                event.reason = String::from("allowed");
                self.record(&event);
                Ok(Some(principal))
            }
            Err(error) => {
                event.decision = Decision::Deny;
                event.reason = error.code().to_owned();
                event.message = error.to_string();
                event.status = error.status().as_u16();
                self.record(&event);
                Err(crate::response::refusal(
                    &error,
                    &inner.service_id,
                    method,
                    uri.path(),
                ))
            }
        }
    }

    /// Sends a token to its one verifier (chosen by shape, see the `classify` module).
    fn verify(&self, token: &str, now: OffsetDateTime) -> Result<Principal, VerifyError> {
        match classify(token) {
            TokenClass::Jwt => Err(VerifyError::NoJwtVerifier),
            TokenClass::Opaque => self.inner.static_tokens.verify(token, now),
        }
    }

    fn record(&self, event: &AuditEvent) {
        emit_tracing(event);
        for sink in &self.inner.sinks {
            sink.record(event);
        }
    }
}

fn fill_principal(event: &mut AuditEvent, p: &Principal) {
    event.subject = Some(p.subject().to_owned());
    event.principal_type = Some(p.principal_type());
    event.credential = Some(p.credential());
    event.actor = p.actor().map(str::to_owned);
}

/// Builds an [`Auth`]. Everything the YAML configuration can say, this can say too.
#[must_use = "call .build() to get an Auth"]
pub struct AuthBuilder {
    pub(crate) service_id: String,
    pub(crate) static_tokens: Vec<StaticToken>,
    pub(crate) routes: Vec<RouteSpec>,
    pub(crate) default_policy: DefaultPolicy,
    sinks: Vec<Arc<dyn AuditSink>>,
}

impl fmt::Debug for AuthBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthBuilder")
            .field("service_id", &self.service_id)
            .field("static_tokens", &self.static_tokens)
            .field("routes", &self.routes.len())
            .field("default_policy", &self.default_policy)
            .finish_non_exhaustive()
    }
}

impl AuthBuilder {
    /// Adds a static token (Backstage `externalAccess` `type: static`).
    pub fn static_token(mut self, token: StaticToken) -> Self {
        let mut token = token;
        if token.origin == "static_token" {
            token.origin = format!("static_token[{}]", self.static_tokens.len());
        }
        self.static_tokens.push(token);
        self
    }

    /// Sets the policy of `pattern` (axum syntax: `/entities/{id}`, `/files/{*rest}`) for
    /// `methods`, or for every method not listed elsewhere when `methods` is empty.
    pub fn route(
        mut self,
        pattern: impl Into<String>,
        methods: impl IntoIterator<Item = Method>,
        policy: RoutePolicy,
    ) -> Self {
        let pattern = pattern.into();
        let origin = format!("route({pattern:?})");
        self.routes.push(RouteSpec {
            pattern,
            methods: methods.into_iter().collect(),
            policy,
            origin,
        });
        self
    }

    /// The policy of routes nobody listed. Default: [`DefaultPolicy::Authenticated`].
    pub fn default_policy(mut self, policy: DefaultPolicy) -> Self {
        self.default_policy = policy;
        self
    }

    /// Sends audit events to `sink` too (they always go to `tracing`).
    pub fn audit_sink(mut self, sink: impl AuditSink + 'static) -> Self {
        self.sinks.push(Arc::new(sink));
        self
    }

    /// Checks everything and builds the [`Auth`]. Errors name the bad value's path.
    pub fn build(self) -> Result<Auth, ConfigError> {
        if !is_valid_service_id(&self.service_id) {
            return Err(ConfigError::invalid(
                "s2s.serviceId",
                "service id must match ^[a-z0-9_-]+$",
            ));
        }
        let static_tokens = StaticTokens::new(&self.static_tokens)?;
        let registry = PolicyRegistry::new(&self.routes, self.default_policy)?;
        Ok(Auth {
            inner: Arc::new(Inner {
                service_id: self.service_id,
                static_tokens,
                static_callers: self.static_tokens,
                registry,
                sinks: self.sinks,
                request_ids: RequestIds::new(),
            }),
        })
    }
}

/// Request ids for audit events: the caller's `x-request-id` when sane, else a
/// process-unique id (a random prefix and a counter; cheaper than a UUID per request).
struct RequestIds {
    prefix: String,
    counter: AtomicU64,
}

impl RequestIds {
    fn new() -> Self {
        let mut bytes = [0u8; 6];
        // A failing OS random source leaves the prefix zero: ids stay unique in the process.
        let _ = aws_lc_rs::rand::fill(&mut bytes);
        Self {
            prefix: crate::secret::to_hex(&bytes),
            counter: AtomicU64::new(0),
        }
    }

    fn for_request(&self, headers: &HeaderMap) -> String {
        if let Some(id) = headers.get("x-request-id") {
            let bytes = id.as_bytes();
            if !bytes.is_empty()
                && bytes.len() <= 128
                && bytes.iter().all(|b| (0x21..=0x7e).contains(b))
                && let Ok(id) = id.to_str()
            {
                return id.to_owned();
            }
        }
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        format!("{}-{n:x}", self.prefix)
    }
}
