//! [`AuthBuilder`]: everything an [`Auth`] can be told, from Rust or (through the `config`
//! module, which only maps YAML onto these calls) from YAML, and the **one validator** that
//! checks every range and combination before anything is built.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::Method;

use crate::audit::{AuditSink, Auditor};
use crate::auth::Auth;
use crate::custom::{CustomAccess, ExternalTokenType, PendingCustom};
use crate::error::{ConfigError, ConfigRule};
use crate::external_jwks::{JwksAccess, UserProvider};
use crate::jwks::{FetchError, JwksCache, JwksCacheConfig, KeyFetcher};
use crate::legacy::{LegacySecret, LegacyVerifier};
use crate::pipeline::Pipeline;
use crate::plugin::{
    JWKS_PATH, PluginTokens, PluginVerifier, ServiceDiscovery, backstage_provider,
};
use crate::policy::{DefaultPolicy, PolicyRegistry, RoutePolicy, RouteSpec};
use crate::service_id::is_valid_service_id;
use crate::static_token::{StaticToken, StaticTokens};
use crate::subject::{ExternalNames, UserSpace};
use crate::token_cache::TokenCache;
use crate::verifier::Shared;
use crate::verify::Verifiers;

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
    pub(crate) verified_cache_capacity: u64,
    pub(crate) plugin_tokens: Option<PluginTokens>,
    pub(crate) jit_tokens: Option<crate::jit::JitTokens>,
    pub(crate) service_accounts: Option<crate::service_account::ServiceAccounts>,
    /// `s2s.serviceAccounts` with `backend.database` but no database plugin key store:
    /// the accounts' own store, opened by [`AuthBuilder::build_async`].
    pub(crate) pending_account_store: Option<crate::store::StoreSpec>,
    discovery: Option<Arc<dyn ServiceDiscovery>>,
    pub(crate) trusted_actors: Vec<String>,
    custom_types: Vec<Arc<dyn ExternalTokenType>>,
    custom_access: Vec<CustomAccess>,
    /// `externalAccess` entries of types that are not built in, resolved at build.
    pub(crate) pending_custom: Vec<PendingCustom>,
    /// A key store named by configuration, opened by [`AuthBuilder::build_async`].
    pub(crate) pending_store: Option<(crate::store::StoreSpec, Duration)>,
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

impl Auth {
    /// Starts building the authentication of the service called `service_id` (Backstage's
    /// plugin id, `^[a-z0-9_-]+$`; it is also the realm in `WWW-Authenticate`).
    pub fn builder(service_id: impl Into<String>) -> AuthBuilder {
        AuthBuilder::new(service_id.into())
    }
}

impl AuthBuilder {
    /// The default clock leeway for `exp`, `nbf` and `iat`, in seconds.
    pub const DEFAULT_LEEWAY_SECS: u64 = 30;

    /// The largest clock leeway `s2s.leewaySeconds` accepts, in seconds (5 minutes). A tool
    /// that must outlast any token a deployment may still accept (a revocation kept until
    /// the token is refused anyway) adds it.
    ///
    /// ```
    /// use s2s_auth::AuthBuilder;
    ///
    /// assert!(AuthBuilder::MAX_LEEWAY_SECS >= AuthBuilder::DEFAULT_LEEWAY_SECS);
    /// ```
    pub const MAX_LEEWAY_SECS: u64 = 300;

    /// The default number of verified JWTs remembered: 50,000, at most about 40 MiB for
    /// typical ES256 tokens (see [`AuthBuilder::verified_cache_capacity`]).
    pub const DEFAULT_VERIFIED_CACHE_CAPACITY: u64 = 50_000;

    fn new(service_id: String) -> Self {
        AuthBuilder {
            service_id,
            static_tokens: Vec::new(),
            jwks_access: Vec::new(),
            user_providers: Vec::new(),
            legacy_secrets: Vec::new(),
            routes: Vec::new(),
            default_policy: DefaultPolicy::default(),
            sinks: Vec::new(),
            jwks_config: JwksCacheConfig::default(),
            fetcher: None,
            leeway_secs: Self::DEFAULT_LEEWAY_SECS,
            verified_cache_capacity: Self::DEFAULT_VERIFIED_CACHE_CAPACITY,
            plugin_tokens: None,
            jit_tokens: None,
            service_accounts: None,
            pending_account_store: None,
            discovery: None,
            trusted_actors: Vec::new(),
            custom_types: Vec::new(),
            custom_access: Vec::new(),
            pending_custom: Vec::new(),
            pending_store: None,
        }
    }

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

    /// Registers a custom external token type, so `externalAccess` entries with its
    /// `type:` are verified by your code (see [`custom`](crate::custom)). Register it before
    /// [`build`](Self::build); the YAML may be read before or after.
    pub fn external_token_type(mut self, token_type: impl ExternalTokenType) -> Self {
        self.custom_types.push(Arc::new(token_type));
        self
    }

    /// Adds one custom external entry from Rust (see [`custom`](crate::custom)).
    pub fn custom_access(mut self, access: CustomAccess) -> Self {
        let mut access = access;
        if access.origin == "custom_access" {
            access.origin = format!("custom_access[{}]", self.custom_access.len());
        }
        self.custom_access.push(access);
        self
    }

    /// Tunes the JWKS cache (refresh, rate limits, stale keys, timeouts, body cap).
    pub fn jwks_cache_config(mut self, config: JwksCacheConfig) -> Self {
        self.jwks_config = config;
        self
    }

    /// Fetches JWKS and discovery documents with `fetcher` instead of the built-in HTTP
    /// client (see [`KeyFetcher`]).
    pub fn key_fetcher(mut self, fetcher: impl KeyFetcher) -> Self {
        self.fetcher = Some(Arc::new(fetcher));
        self
    }

    /// The clock leeway for `exp`, `nbf` and `iat`, in whole seconds. Default 30 s, at most
    /// 300 s ([`build`](Self::build) refuses more, at `s2s.leewaySeconds`). Larger values let
    /// tokens live past their expiry by that much.
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway_secs = leeway.as_secs();
        self
    }

    /// How many verified JWTs are remembered (each until its `exp`, and only while its key
    /// stays in the JWKS). Default 50,000; 0 turns the cache off; at most 10 million.
    ///
    /// **Memory.** A cached token holds about 420 bytes of heap plus the token itself
    /// (measured by `tests/token_cache_memory.rs`: 808 bytes for a 390-byte ES256 token with
    /// a 40-character subject; the entry, its index, the principal, the key reference and the
    /// token, kept so that a hit compares whole tokens). So the default bounds the cache at
    /// about 40 MiB for such tokens (about 55 MiB for 650-byte RS256 ones), reached only when
    /// 50,000 distinct valid tokens are live at once; nothing is allocated ahead, and a
    /// service with a few hundred callers holds a few hundred KiB.
    ///
    /// **Eviction.** Every verified token is admitted; a full cache evicts by CLOCK
    /// (expired entries first, then those not used since the last sweep), so a new working
    /// set replaces an old one within one pass. A working set larger than the cache, cycled
    /// in order, gets no hits, and each miss costs a fresh verification plus one insert.
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

    /// Lets this service issue and verify just-in-time on-behalf-of tokens (see the
    /// [`jit`](crate::jit) module). Its issue endpoint ([`Auth::jit_router`]) is registered
    /// as a sensitive, users-only route.
    pub fn jit_tokens(mut self, tokens: crate::jit::JitTokens) -> Self {
        self.jit_tokens = Some(tokens);
        self
    }

    /// Lets this service verify service-account tokens (`s2s_sa_…`) and serve the admin API
    /// that manages them (see the [`service_account`](crate::service_account) module). The
    /// admin routes ([`Auth::service_accounts_router`]) are registered as sensitive,
    /// users-only routes.
    pub fn service_accounts(mut self, accounts: crate::service_account::ServiceAccounts) -> Self {
        self.service_accounts = Some(accounts);
        self
    }

    /// Lets this service verify plugin-to-plugin tokens from the services `discovery` knows.
    pub fn discovery(mut self, discovery: impl ServiceDiscovery) -> Self {
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
            builtin: false,
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
    /// migrations), then [`build`](Self::build)s. Use it for configurations that name a
    /// database key store; it is the same as `build` for the others (a memory or static
    /// key store builds synchronously).
    pub async fn build_async(mut self) -> Result<Auth, ConfigError> {
        if let Some((spec, key_duration)) = self.pending_store.take() {
            let store = spec.open().await.map_err(|e| {
                ConfigError::new(
                    "backend.database",
                    ConfigRule::StoreUnavailable(e.to_string()),
                )
            })?;
            if self.pending_account_store.take().is_some()
                && let Some(accounts) = self.service_accounts.take()
            {
                // One `backend.database`: the accounts share the key store's connection.
                self.service_accounts = Some(accounts.store(store.clone()));
            }
            self.plugin_tokens = Some(PluginTokens::with_store(store).key_duration(key_duration));
        }
        if let Some(spec) = self.pending_account_store.take() {
            let store = spec.open().await.map_err(|e| {
                ConfigError::new(
                    "backend.database",
                    ConfigRule::StoreUnavailable(e.to_string()),
                )
            })?;
            self.service_accounts = self.service_accounts.take().map(|a| a.store(store));
        }
        self.build()
    }

    /// Checks everything and builds the [`Auth`]. Errors name the bad value's path, the way
    /// the YAML does, whether the value came from YAML or from Rust.
    pub fn build(self) -> Result<Auth, ConfigError> {
        self.validate()?;
        let reserved = self.external_names().reserved();
        let excluded = crate::subject::user_spaces(&self.user_spaces())?;
        let static_tokens = StaticTokens::new(&self.static_tokens)?;
        let plaintexts: Vec<(&str, &str)> = self
            .static_tokens
            .iter()
            .filter_map(|t| Some((t.origin.as_str(), t.plaintext()?)))
            .collect();
        let custom = crate::custom::resolve(
            &self.custom_types,
            self.pending_custom,
            self.custom_access,
            &plaintexts,
        )?;
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
                builtin: true,
            });
        }
        if let Some(jit) = &self.jit_tokens {
            let revoke = jit.revoke_pattern();
            if !routes.iter().any(|r| r.pattern == revoke) {
                routes.push(RouteSpec {
                    pattern: revoke,
                    methods: vec![Method::DELETE],
                    policy: RoutePolicy::users().sensitive(),
                    origin: jit.origin.clone(),
                    builtin: true,
                });
            }
            for path in jit.paths() {
                if !routes.iter().any(|r| r.pattern == path) {
                    routes.push(RouteSpec {
                        pattern: path,
                        methods: vec![Method::POST],
                        policy: RoutePolicy::users().sensitive(),
                        origin: jit.origin.clone(),
                        builtin: true,
                    });
                }
            }
        }
        if let Some(accounts) = &self.service_accounts {
            accounts.check()?;
            for (pattern, methods) in accounts.routes() {
                if !routes.iter().any(|r| r.pattern == pattern) {
                    routes.push(RouteSpec {
                        pattern,
                        methods,
                        policy: RoutePolicy::users().sensitive(),
                        origin: accounts.origin.clone(),
                        builtin: true,
                    });
                }
            }
        }
        let registry = PolicyRegistry::new(&routes, self.default_policy)?;
        let key_duration = self
            .plugin_tokens
            .as_ref()
            .map_or(DEFAULT_KEY_DURATION, |p| p.key_duration);
        let auditor = Arc::new(Auditor::new(self.sinks));
        let keys = match self.plugin_tokens {
            Some(p) => Some(Arc::new(p.into_manager(&self.service_id, auditor.clone())?)),
            None => None,
        };
        let jit = match self.jit_tokens {
            Some(config) => Some(Arc::new(crate::jit::Jit::new(
                config,
                &self.service_id,
                keys.clone(),
            )?)),
            None => None,
        };
        let accounts = self.service_accounts.map(|config| {
            let store: Arc<dyn crate::store::Store> =
                match (&config.store, keys.as_ref().and_then(|k| k.store())) {
                    (Some(store), _) => store.clone(),
                    (None, Some(store)) => store,
                    (None, None) => Arc::new(crate::store::MemoryStore::new()),
                };
            crate::service_account::AccountAdmin {
                registry: crate::service_account::Registry::new(
                    store,
                    config.staleness,
                    config.last_used_interval,
                ),
                config: Arc::new(config),
                auditor: auditor.clone(),
                service_id: Arc::from(self.service_id.as_str()),
            }
        });
        let mut jwks = Vec::new();
        for access in self.jwks_access {
            jwks.push(Arc::new(
                access.into_verifier(self.leeway_secs, reserved.clone())?,
            ));
        }
        for (provider, excluded) in self.user_providers.into_iter().zip(excluded) {
            jwks.push(Arc::new(
                provider.into_verifier(self.leeway_secs, excluded)?,
            ));
        }
        let discovery = self.discovery.clone();
        let plugin = self.discovery.map(|d| {
            Arc::new(PluginVerifier::new(
                self.service_id.clone(),
                d,
                key_duration,
                self.trusted_actors,
                self.leeway_secs,
                backstage_provider(&jwks),
            ))
        });
        let legacy_keys = self
            .legacy_secrets
            .iter()
            .map(LegacySecret::compile)
            .collect::<Result<Vec<_>, _>>()?;
        let legacy = LegacyVerifier::new(legacy_keys, self.leeway_secs);
        let cache = match self.fetcher {
            Some(fetcher) => JwksCache::new(self.jwks_config, fetcher),
            None => JwksCache::with_http(self.jwks_config).map_err(|e: FetchError| {
                ConfigError::new("s2s.jwks", ConfigRule::HttpClient(e.to_string()))
            })?,
        };
        let shared = Shared {
            cache: Arc::new(cache),
            verified: (self.verified_cache_capacity > 0)
                .then(|| TokenCache::new(self.verified_cache_capacity)),
            leeway: self.leeway_secs,
        };
        let verifiers = Verifiers {
            static_tokens: Arc::new(static_tokens),
            custom,
            jwks,
            legacy: Arc::new(legacy),
            plugin,
            jit: jit.clone().map(|j| {
                Arc::new(crate::jit::JitVerifier::new(
                    j,
                    self.leeway_secs,
                    discovery.clone(),
                ))
            }),
            accounts: accounts.as_ref().map(|a| {
                Arc::new(crate::service_account::AccountVerifier {
                    registry: a.registry.clone(),
                })
            }),
            shared: Arc::new(shared),
        };
        Ok(Auth {
            pipeline: Arc::new(Pipeline {
                realm: Arc::from(self.service_id.as_str()),
                service_id: self.service_id,
                verifiers: Arc::new(verifiers),
                keys,
                jit,
                accounts,
                discovery,
                static_callers: self.static_tokens.into(),
                specs: routes,
                registry,
                auditor,
            }),
        })
    }

    /// The one validator: every range and every combination, with the same rules whatever
    /// set the value. Paths are the YAML's, so an operator can find the value either way.
    fn validate(&self) -> Result<(), ConfigError> {
        if self.pending_store.is_some() || self.pending_account_store.is_some() {
            return Err(ConfigError::new(
                "backend.database",
                ConfigRule::StoreNeedsAsync,
            ));
        }
        if !is_valid_service_id(&self.service_id) {
            return Err(ConfigError::new(
                "s2s.serviceId",
                ConfigRule::InvalidServiceId,
            ));
        }
        in_range("s2s.leewaySeconds", self.leeway_secs, LEEWAY_RANGE)?;
        in_range(
            "s2s.verifiedCacheCapacity",
            self.verified_cache_capacity,
            VERIFIED_CACHE_RANGE,
        )?;
        let c = &self.jwks_config;
        // Durations are checked as durations: Rust may say 200 ms where YAML says whole
        // seconds, under the same bounds. Zero is refused where it would spin or fail every
        // fetch; the top bounds keep time arithmetic far from overflow.
        at_most_secs(
            "s2s.jwks.refreshSeconds",
            c.refresh_interval,
            MAX_REFRESH_SECS,
            true,
        )?;
        at_most_secs(
            "s2s.jwks.minRefreshSeconds",
            c.min_refresh_interval,
            MAX_REFRESH_SECS,
            false,
        )?;
        at_most_secs(
            "s2s.jwks.maxRefreshSeconds",
            c.max_refresh_interval,
            MAX_REFRESH_SECS,
            true,
        )?;
        if c.min_refresh_interval > c.max_refresh_interval {
            return Err(ConfigError::new(
                "s2s.jwks.minRefreshSeconds",
                ConfigRule::RefreshBoundsInverted,
            ));
        }
        // At least 6 s: no more than 10 kid-miss fetches a minute per URL, ever.
        if c.unknown_kid_cooldown < Duration::from_secs(MIN_COOLDOWN_SECS) {
            return Err(ConfigError::new(
                "s2s.jwks.unknownKidCooldownSeconds",
                ConfigRule::OutOfRange {
                    min: MIN_COOLDOWN_SECS,
                    max: MAX_COOLDOWN_SECS,
                },
            ));
        }
        at_most_secs(
            "s2s.jwks.unknownKidCooldownSeconds",
            c.unknown_kid_cooldown,
            MAX_COOLDOWN_SECS,
            false,
        )?;
        at_most_secs(
            "s2s.jwks.maxStaleSeconds",
            c.max_stale,
            MAX_STALE_SECS,
            false,
        )?;
        at_most_secs(
            "s2s.jwks.fetchTimeoutSeconds",
            c.fetch_timeout,
            MAX_FETCH_TIMEOUT_SECS,
            true,
        )?;
        in_range(
            "s2s.jwks.maxBodyBytes",
            c.max_body_bytes as u64,
            MAX_BODY_RANGE,
        )?;
        let key_duration = match (&self.plugin_tokens, &self.pending_store) {
            (Some(p), _) => Some(p.key_duration),
            (None, Some((_, d))) => Some(*d),
            (None, None) => None,
        };
        if let Some(d) = key_duration {
            in_range(
                "s2s.pluginTokens.keyDurationSeconds",
                d.as_secs(),
                KEY_DURATION_RANGE,
            )?;
        }
        if let Some(bad) = self
            .trusted_actors
            .iter()
            .position(|a| !is_valid_service_id(a))
        {
            return Err(ConfigError::new(
                format!("s2s.trustedActors[{bad}]"),
                ConfigRule::InvalidServiceId,
            ));
        }
        if !self.trusted_actors.is_empty() && self.discovery.is_none() {
            return Err(ConfigError::new(
                "s2s.trustedActors",
                ConfigRule::ActorsNeedDiscovery,
            ));
        }
        // Key sources over https, required claims, namespaces: each entry's own rules.
        for access in &self.jwks_access {
            access.validate()?;
        }
        for provider in &self.user_providers {
            provider.validate()?;
        }
        // Subjects cannot collide, across entries and kinds (see `subject`).
        self.external_names().check()?;
        crate::subject::user_spaces(&self.user_spaces())?;
        Ok(())
    }

    /// Every configured name that becomes part of an `external:` subject.
    fn external_names(&self) -> ExternalNames<'_> {
        ExternalNames {
            statics: self
                .static_tokens
                .iter()
                .map(|t| (format!("{}.options.subject", t.origin), t.subject()))
                .collect(),
            legacy: self
                .legacy_secrets
                .iter()
                .map(|l| (l.subject_path(), l.subject()))
                .collect(),
            jwks: self
                .jwks_access
                .iter()
                .map(|a| (format!("{}.options.subjectPrefix", a.origin), a.prefix()))
                .collect(),
            custom: self
                .custom_access
                .iter()
                .map(|c| (c.origin.as_str(), c.type_name.as_str()))
                .chain(
                    self.pending_custom
                        .iter()
                        .map(|p| (p.origin.as_str(), p.type_name.as_str())),
                )
                .map(|(origin, name)| (format!("{origin}.type"), name))
                .collect(),
        }
    }

    /// Where each user provider maps its users, in order.
    fn user_spaces(&self) -> Vec<UserSpace<'_>> {
        self.user_providers
            .iter()
            .map(UserProvider::space)
            .collect()
    }
}

/// A duration above zero (when `nonzero`) and at most `max` seconds.
fn at_most_secs(path: &str, d: Duration, max: u64, nonzero: bool) -> Result<(), ConfigError> {
    if nonzero && d.is_zero() {
        return Err(ConfigError::new(path, ConfigRule::Zero));
    }
    if d > Duration::from_secs(max) {
        return Err(ConfigError::new(
            path,
            ConfigRule::OutOfRange {
                min: u64::from(nonzero),
                max,
            },
        ));
    }
    Ok(())
}

/// A value within its range, or the error naming both.
fn in_range(path: &str, value: u64, (min, max): (u64, u64)) -> Result<(), ConfigError> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(ConfigError::new(path, ConfigRule::OutOfRange { min, max }))
    }
}

/// `s2s.leewaySeconds`: up to 5 minutes. More lets expired tokens live that much longer.
pub(crate) const LEEWAY_RANGE: (u64, u64) = (0, AuthBuilder::MAX_LEEWAY_SECS);
// A revocation outlives its token by the largest leeway a replica can take it with.
const _: () =
    assert!(crate::revocation::REVOCATION_GRACE_SECS as u64 == AuthBuilder::MAX_LEEWAY_SECS);
/// `s2s.verifiedCacheCapacity`: 0 (off) up to 10 million entries.
pub(crate) const VERIFIED_CACHE_RANGE: (u64, u64) = (0, 10_000_000);
/// The JWKS refresh intervals: at most 1 day.
pub(crate) const MAX_REFRESH_SECS: u64 = 86_400;
/// The unknown-`kid` cooldown (the refill pace of the kid-miss budget): at least 6 s, so no
/// minute sees more than 10 forced fetches of a URL; at most 1 hour.
pub(crate) const MIN_COOLDOWN_SECS: u64 = 6;
/// See [`MIN_COOLDOWN_SECS`].
pub(crate) const MAX_COOLDOWN_SECS: u64 = 3_600;
/// How long stale keys keep verifying while the source is down: at most 7 days.
pub(crate) const MAX_STALE_SECS: u64 = 7 * 86_400;
/// One fetch's timeout: at most 60 s.
pub(crate) const MAX_FETCH_TIMEOUT_SECS: u64 = 60;
/// The largest key document: 1 KiB to 16 MiB.
pub(crate) const MAX_BODY_RANGE: (u64, u64) = (1_024, 16 * 1024 * 1024);
/// A signing key's duration: 1 minute to 1 day.
pub(crate) const KEY_DURATION_RANGE: (u64, u64) = (60, 86_400);
/// The default signing key duration (Backstage's): 1 hour.
pub(crate) const DEFAULT_KEY_DURATION: Duration = Duration::from_secs(3600);
