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
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use http::{HeaderMap, Method, Response, Uri};
use time::OffsetDateTime;

use crate::access_table::AccessTable;
use crate::audit::{AuditEvent, AuditSink, Decision, emit_tracing};
use crate::error::{ConfigError, RequestError};
use crate::external_jwks::{JwksAccess, UserProvider};
use crate::extract;
use crate::jwks::{FetchError, JwksCache, JwksCacheConfig, KeyFetcher};
use crate::layer::AuthLayer;
use crate::legacy::{LegacySecret, LegacyVerifier};
use crate::plugin::{
    Discovery, IssueError, JWKS_PATH, KeyManager, PluginTokens, PluginVerifier, issue,
};
use crate::policy::{DefaultPolicy, PolicyRegistry, Resolved, RoutePolicy, RouteSpec, authorize};
use crate::principal::{Principal, PrincipalType};
use crate::secret::SecretString;
use crate::secret::{Fingerprint, sha256};
use crate::static_token::{StaticToken, StaticTokens};
use crate::verify::{UntilExp, Verification, Verifiers};

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
    pub(crate) verifiers: Arc<Verifiers>,
    keys: Option<Arc<KeyManager>>,
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
            jwks_access: Vec::new(),
            user_providers: Vec::new(),
            legacy_secrets: Vec::new(),
            routes: Vec::new(),
            default_policy: DefaultPolicy::default(),
            sinks: Vec::new(),
            jwks_config: JwksCacheConfig::default(),
            fetcher: None,
            leeway_secs: DEFAULT_LEEWAY_SECS,
            verified_cache_capacity: DEFAULT_VERIFIED_CACHE_CAPACITY,
            plugin_tokens: None,
            discovery: None,
            trusted_actors: Vec::new(),
            pending_store: None,
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

    /// Mints a plugin-to-plugin token for calling `target` as this service (Backstage wire
    /// format). Rotates and publishes a new signing key first when one is due; a key is never
    /// used before its public half is in the store.
    pub async fn plugin_token(&self, target: &str) -> Result<SecretString, IssueError> {
        let keys = self.inner.keys.as_ref().ok_or(IssueError::NotConfigured)?;
        issue(keys, &self.inner.service_id, target, None, None).await
    }

    /// Mints a plugin token for calling `target` **on behalf of** `principal`, the user who
    /// called this service (see the [`obo`](crate::obo) module for the wire format):
    ///
    /// - a Backstage user whose token carried the identity provider's proof (`uip`): the
    ///   delegated form, with the limited user token in `obo`; the receiver verifies the user
    ///   against the identity provider;
    /// - any other user (OIDC, an on-behalf-of principal in the actor form): the actor form,
    ///   `sub` the user and `act: {"sub": <this service>}`; receivers accept it only if they
    ///   list this service in their trusted actors.
    ///
    /// Its `exp` never passes the user's token's. Errors: [`IssueError::RestrictedPrincipal`]
    /// for a principal with access restrictions (a token on its behalf would escape them),
    /// [`IssueError::CannotDelegate`] for a machine or nobody (call as this service with
    /// [`plugin_token`](Self::plugin_token)), or a user whose token has expired.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use s2s_auth::{Auth, CredentialKind, IssueError, MemoryStore, PluginTokens, Principal, PrincipalType};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let scaffolder = Auth::builder("scaffolder")
    ///     .plugin_tokens(PluginTokens::new(Arc::new(MemoryStore::default())))
    ///     .build()?;
    /// let expires = time::OffsetDateTime::now_utc() + time::Duration::minutes(10);
    /// let jane = Principal::new(PrincipalType::User, "user:default/jane", CredentialKind::User)
    ///     .with_expiry(expires);
    /// let token = scaffolder.on_behalf_of_token(&jane, "catalog").await?;
    /// assert!(token.expose_secret().starts_with("eyJ"));
    ///
    /// let ci = Principal::new(PrincipalType::Service, "external:ci", CredentialKind::Static);
    /// assert!(matches!(
    ///     scaffolder.on_behalf_of_token(&ci, "catalog").await,
    ///     Err(IssueError::CannotDelegate(_))
    /// ));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn on_behalf_of_token(
        &self,
        principal: &Principal,
        target: &str,
    ) -> Result<SecretString, IssueError> {
        if principal.restrictions().is_some() {
            return Err(IssueError::RestrictedPrincipal);
        }
        if principal.principal_type() != PrincipalType::User {
            return Err(IssueError::CannotDelegate(
                "only a user can be acted for; a service calls as itself (plugin_token)",
            ));
        }
        let keys = self.inner.keys.as_ref().ok_or(IssueError::NotConfigured)?;
        let service_id = &self.inner.service_id;
        // The credential this service received for the user: its expiry bounds the new
        // token, so a second hop never outlives the first (and neither outlives the user's
        // own token, which bounds every on-behalf-of token on the way).
        let user_exp = principal
            .expires_at()
            .map(|t| u64::try_from(t.unix_timestamp()).unwrap_or(0))
            .ok_or(IssueError::CannotDelegate(
                "the user's credential has no expiry",
            ))?;
        if user_exp <= crate::plugin::now() {
            return Err(IssueError::CannotDelegate("the user's token has expired"));
        }
        if let Some(limited) = principal.limited_user_token() {
            let obo = serde_json::Value::from(limited.token.expose_secret());
            let max_exp = user_exp.min(limited.exp);
            return issue(keys, service_id, target, Some(("obo", obo)), Some(max_exp)).await;
        }
        let act = serde_json::json!({ "sub": service_id });
        issue(
            keys,
            principal.subject(),
            target,
            Some(("act", act)),
            Some(user_exp),
        )
        .await
    }

    /// A router serving this service's published keys at
    /// `GET /.backstage/auth/v1/jwks.json` (`{"keys": [...]}`, public parts only). Merge it
    /// into your router before applying [`Auth::layer`]; the route is unauthenticated. It
    /// answers 503 when the store is unreachable, and an empty set when plugin tokens are
    /// not configured.
    pub fn jwks_router<S: Clone + Send + Sync + 'static>(&self) -> axum::Router<S> {
        let auth = self.clone();
        axum::Router::new().route(
            JWKS_PATH,
            axum::routing::get(move || {
                let auth = auth.clone();
                async move { auth.published_jwks().await }
            }),
        )
    }

    async fn published_jwks(&self) -> axum::response::Response {
        use axum::response::IntoResponse;
        let Some(keys) = &self.inner.keys else {
            return axum::Json(serde_json::json!({ "keys": [] })).into_response();
        };
        match keys.published().await {
            Ok(keys) => (
                [(http::header::CACHE_CONTROL, "public, max-age=60")],
                axum::Json(serde_json::json!({ "keys": keys })),
            )
                .into_response(),
            Err(e) => {
                tracing::warn!(target: "s2s_auth::keys", error = %e, "cannot list published keys");
                (
                    http::StatusCode::SERVICE_UNAVAILABLE,
                    [(http::header::RETRY_AFTER, "5")],
                    "key store unavailable",
                )
                    .into_response()
            }
        }
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
    ///     .build()?;
    /// let routes = auth.routes();
    /// assert_eq!(routes[0].0, "/healthz");
    /// assert_eq!(routes[0].1, Some(&Method::GET));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
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

    /// Decides one request: the principal to inject (none on an unauthenticated route called
    /// without a valid credential) or the refusal to send, now or once a key is fetched.
    /// Audits either way.
    pub(crate) fn decide(&self, method: &Method, uri: &Uri, headers: &HeaderMap) -> Decided {
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
        let verification = match extract::bearer_token(headers, uri) {
            Ok(Some(token)) => {
                // Hashed once: the static-token lookup key, the verified-token cache key and
                // (through one more short hash) the audit fingerprint.
                let digest = sha256(token.as_bytes());
                event.token_fingerprint = Some(Fingerprint::of_digest(&digest));
                inner.verifiers.verify(token, &digest, event.time)
            }
            Ok(None) => Verification::Done(Err(RequestError::MissingCredentials)),
            Err(e) => Verification::Done(Err(e)),
        };
        match verification {
            Verification::Done(result) => {
                Decided::Ready(self.conclude(method, uri.path(), &resolved, event, result))
            }
            Verification::Pending(pending) => {
                let auth = self.clone();
                let method = method.clone();
                let path = uri.path().to_owned();
                Decided::Pending(Box::pin(async move {
                    let result = pending.await;
                    let resolved = auth.inner.registry.resolve(&method, &path);
                    auth.conclude(&method, &path, &resolved, event, result)
                }))
            }
        }
    }

    /// Applies the policy to a verification result, audits, and returns the outcome.
    // The refusal is built once and moved straight into the response future; boxing it would
    // add an allocation to every refused request for no gain.
    #[allow(clippy::result_large_err)]
    fn conclude(
        &self,
        method: &Method,
        path: &str,
        resolved: &Resolved<'_>,
        mut event: AuditEvent,
        verified: Result<Principal, RequestError>,
    ) -> Result<Option<Principal>, Response<String>> {
        let inner = &*self.inner;
        if let Ok(p) = &verified {
            fill_principal(&mut event, p);
        }
        if resolved.is_unauthenticated() {
            // Everyone may call this route. A valid credential still yields a principal; a bad
            // one is ignored (a stale token must not break a health check) but audited.
            let principal = match verified {
                Ok(p) => Some(p),
                Err(RequestError::MissingCredentials) => None,
                Err(e) => {
                    event.message = format!("credential ignored: {e}");
                    None
                }
            };
            event.reason = String::from("unauthenticated_route");
            self.record(&event);
            return Ok(principal);
        }
        let outcome = verified.and_then(|principal| {
            authorize(&principal, method, resolved, &inner.service_id)?;
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
                // The message written once: the audit event's is the response's.
                Err(crate::response::refusal(
                    &error,
                    &event.message,
                    &inner.service_id,
                    method,
                    path,
                ))
            }
        }
    }

    fn record(&self, event: &AuditEvent) {
        emit_tracing(event);
        for sink in &self.inner.sinks {
            sink.record(event);
        }
    }
}

/// The outcome of [`Auth::decide`].
pub(crate) enum Decided {
    Ready(Result<Option<Principal>, Response<String>>),
    Pending(PendingDecision),
}

/// A decision waiting for a key fetch.
pub(crate) type PendingDecision =
    std::pin::Pin<Box<dyn Future<Output = Result<Option<Principal>, Response<String>>> + Send>>;

/// The default clock leeway for `exp`, `nbf` and `iat`, in seconds.
pub const DEFAULT_LEEWAY_SECS: u64 = 30;

/// The default number of verified JWTs remembered.
pub const DEFAULT_VERIFIED_CACHE_CAPACITY: u64 = 10_000;

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
    pub(crate) jwks_access: Vec<JwksAccess>,
    pub(crate) user_providers: Vec<UserProvider>,
    pub(crate) legacy_secrets: Vec<LegacySecret>,
    pub(crate) routes: Vec<RouteSpec>,
    pub(crate) default_policy: DefaultPolicy,
    sinks: Vec<Arc<dyn AuditSink>>,
    pub(crate) jwks_config: JwksCacheConfig,
    fetcher: Option<Arc<dyn KeyFetcher>>,
    pub(crate) leeway_secs: u64,
    verified_cache_capacity: u64,
    pub(crate) plugin_tokens: Option<PluginTokens>,
    discovery: Option<Arc<dyn Discovery>>,
    pub(crate) trusted_actors: Vec<String>,
    /// A key store named by configuration, opened by [`AuthBuilder::build_async`].
    pub(crate) pending_store: Option<(crate::store::StoreSpec, std::time::Duration)>,
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

    /// Adds an external caller whose JWTs are verified against a JWKS (`type: jwks`).
    pub fn jwks_access(mut self, access: JwksAccess) -> Self {
        let mut access = access;
        if access.origin == "jwks_access" {
            access.origin = format!("jwks_access[{}]", self.jwks_access.len());
        }
        self.jwks_access.push(access);
        self
    }

    /// Adds an identity provider for user tokens.
    pub fn user_provider(mut self, provider: UserProvider) -> Self {
        let mut provider = provider;
        if provider.origin == "user_provider" {
            provider.origin = format!("user_provider[{}]", self.user_providers.len());
        }
        self.user_providers.push(provider);
        self
    }

    /// Adds a legacy HS256 shared secret (`type: legacy`). Secrets are tried in the order
    /// they are added.
    pub fn legacy_secret(mut self, secret: LegacySecret) -> Self {
        let mut secret = secret;
        if secret.origin == "legacy_secret" {
            secret.origin = format!("legacy_secret[{}]", self.legacy_secrets.len());
        }
        self.legacy_secrets.push(secret);
        self
    }

    /// Tunes the JWKS cache (refresh, rate limits, stale keys, timeouts, body cap).
    pub fn jwks_cache_config(mut self, config: JwksCacheConfig) -> Self {
        self.jwks_config = config;
        self
    }

    /// Fetches JWKS and discovery documents with `fetcher` instead of the built-in HTTP
    /// client (see [`KeyFetcher`]).
    pub fn key_fetcher(mut self, fetcher: Arc<dyn KeyFetcher>) -> Self {
        self.fetcher = Some(fetcher);
        self
    }

    /// The clock leeway for `exp`, `nbf` and `iat`. Default 30 s. Larger values let tokens
    /// live past their expiry by that much.
    pub fn leeway(mut self, leeway: std::time::Duration) -> Self {
        self.leeway_secs = leeway.as_secs();
        self
    }

    /// How many verified JWTs are remembered (each until its `exp`, and only while its key
    /// stays in the JWKS). Default 10,000; 0 turns the cache off.
    pub fn verified_cache_capacity(mut self, capacity: u64) -> Self {
        self.verified_cache_capacity = capacity;
        self
    }

    /// Lets this service issue plugin-to-plugin tokens (and publish their keys: mount
    /// [`Auth::jwks_router`]). Keys are kept in the given store.
    pub fn plugin_tokens(mut self, tokens: PluginTokens) -> Self {
        self.plugin_tokens = Some(tokens);
        self
    }

    /// Lets this service verify plugin-to-plugin tokens from the services `discovery` knows.
    pub fn discovery(mut self, discovery: impl Discovery) -> Self {
        self.discovery = Some(Arc::new(discovery));
        self
    }

    /// The services whose word this service takes for a user: on-behalf-of tokens in the
    /// actor form (`sub` the user, `act: {"sub": <service>}`, RFC 8693), which carry no proof
    /// from the identity provider, are accepted only from these (config
    /// `s2s.trustedActors`). Empty by default: the actor form is refused. The delegated
    /// Backstage form (`obo`) needs no trust, since the identity provider signed the user.
    /// Needs [`discovery`](Self::discovery), to find each actor's keys.
    ///
    /// ```
    /// use s2s_auth::{Auth, StaticDiscovery};
    ///
    /// let catalog = Auth::builder("catalog")
    ///     .discovery(StaticDiscovery::new([("scaffolder", "http://scaffolder:7007/api/scaffolder")]))
    ///     .trusted_actors(["scaffolder"])
    ///     .build()?;
    /// # let _ = catalog;
    /// # Ok::<(), s2s_auth::ConfigError>(())
    /// ```
    pub fn trusted_actors<I: IntoIterator<Item = S>, S: Into<String>>(mut self, actors: I) -> Self {
        self.trusted_actors = actors.into_iter().map(Into::into).collect();
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

    /// Opens the key store the configuration names (SQLite or PostgreSQL, running its
    /// migrations), then [`build`](Self::build)s. Use it for configurations that issue plugin
    /// tokens; it is the same as `build` for the others.
    pub async fn build_async(mut self) -> Result<Auth, ConfigError> {
        if let Some((spec, key_duration)) = self.pending_store.take() {
            let store = spec.open().await.map_err(|e| {
                ConfigError::invalid(
                    "backend.database",
                    format!("cannot open the key store: {e}"),
                )
            })?;
            self.plugin_tokens = Some(PluginTokens::new(store).key_duration(key_duration));
        }
        self.build()
    }

    /// Checks everything and builds the [`Auth`]. Errors name the bad value's path.
    pub fn build(self) -> Result<Auth, ConfigError> {
        if self.pending_store.is_some() {
            return Err(ConfigError::invalid(
                "backend.database",
                "this configuration names a key store, which must be opened: use build_async()",
            ));
        }
        if !is_valid_service_id(&self.service_id) {
            return Err(ConfigError::invalid(
                "s2s.serviceId",
                "service id must match ^[a-z0-9_-]+$",
            ));
        }
        let static_tokens = StaticTokens::new(&self.static_tokens)?;
        let mut routes = self.routes;
        // The published JWKS must be reachable by everyone, whatever the default policy: on
        // issuers (peers fetch their keys) and on verifiers too, whose JWKS (maybe empty) is
        // how Backstage callers learn that a target takes plugin tokens.
        let plugin_auth = self.plugin_tokens.is_some() || self.discovery.is_some();
        if plugin_auth && !routes.iter().any(|r| r.pattern == JWKS_PATH) {
            routes.push(RouteSpec {
                pattern: JWKS_PATH.to_owned(),
                methods: Vec::new(),
                policy: RoutePolicy::unauthenticated(),
                origin: String::from("plugin_tokens"),
            });
        }
        let registry = PolicyRegistry::new(&routes, self.default_policy)?;
        let key_duration = self
            .plugin_tokens
            .as_ref()
            .map_or(std::time::Duration::from_secs(3600), |p| p.key_duration);
        if key_duration.as_secs() < 60 {
            return Err(ConfigError::invalid(
                "backend.auth.pluginKeyStore.keyDuration",
                "key duration must be at least 60 seconds",
            ));
        }
        let keys = match self.plugin_tokens {
            Some(p) => Some(Arc::new(p.into_manager(&self.service_id)?)),
            None => None,
        };
        if let Some(bad) = self
            .trusted_actors
            .iter()
            .position(|a| !is_valid_service_id(a))
        {
            return Err(ConfigError::invalid(
                format!("s2s.trustedActors[{bad}]"),
                "not a valid service id (^[a-z0-9_-]+$)",
            ));
        }
        if !self.trusted_actors.is_empty() && self.discovery.is_none() {
            return Err(ConfigError::invalid(
                "s2s.trustedActors",
                "trusted actors need s2s.discovery, to find each actor's keys",
            ));
        }
        let plugin = self.discovery.map(|d| {
            PluginVerifier::new(
                self.service_id.clone(),
                d,
                key_duration,
                self.trusted_actors,
                self.leeway_secs,
            )
        });
        let mut jwks = Vec::new();
        for access in self.jwks_access {
            jwks.push(access.into_verifier(self.leeway_secs)?);
        }
        for provider in self.user_providers {
            jwks.push(provider.into_verifier(self.leeway_secs)?);
        }
        let legacy_keys = self
            .legacy_secrets
            .iter()
            .map(LegacySecret::compile)
            .collect::<Result<Vec<_>, _>>()?;
        let legacy = LegacyVerifier::new(legacy_keys, self.leeway_secs);
        let cache = match self.fetcher {
            Some(fetcher) => JwksCache::new(self.jwks_config, fetcher),
            None => JwksCache::with_http(self.jwks_config).map_err(|e: FetchError| {
                ConfigError::invalid("s2s.jwks", format!("cannot build the HTTP client: {e}"))
            })?,
        };
        let verifiers = Verifiers {
            static_tokens,
            jwks,
            legacy,
            plugin,
            cache: Arc::new(cache),
            verified: (self.verified_cache_capacity > 0).then(|| {
                moka::sync::Cache::builder()
                    .max_capacity(self.verified_cache_capacity)
                    .expire_after(UntilExp)
                    .build()
            }),
            leeway: self.leeway_secs,
        };
        Ok(Auth {
            inner: Arc::new(Inner {
                service_id: self.service_id,
                verifiers: Arc::new(verifiers),
                keys,
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
