//! The outbound client: calling another service with the right token attached.
//!
//! [`S2sClient`] wraps one `reqwest::Client`. Given the incoming [`Principal`] (or none) and
//! a target service id, it finds the target's base URL by [`ServiceDiscovery`] and attaches a
//! plugin token:
//!
//! - for a request the service makes **as itself** (no principal, or a machine principal),
//!   the service's own plugin token, minted once per target and **reused until 60 s before
//!   it expires** (a quarter of its lifetime for tokens shorter than 4 minutes);
//! - for a principal with **access restrictions** (a restricted static or JWKS caller): an
//!   error. A call on its behalf would carry this service's unrestricted token and escape
//!   the restrictions (Backstage #35347).
//! - for a **user**: an on-behalf-of token ([`Auth::on_behalf_of_token`]): the receiver
//!   sees the user, with this service as actor. One per target and user credential, reused
//!   the same way (in a bounded cache of 10,000 entries); concurrent first calls for the
//!   same user may each mint one, all valid.
//!
//! ```
//! use std::sync::Arc;
//! use s2s_auth::{Auth, PluginTokens, S2sClient, StaticDiscovery};
//! use s2s_auth::store::MemoryStore;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let auth = Auth::builder("scaffolder")
//!     .plugin_tokens(PluginTokens::new(Arc::new(MemoryStore::default())))
//!     .build()?;
//! let client = S2sClient::new(
//!     auth,
//!     StaticDiscovery::new([("catalog", "http://catalog.internal:7007/api/catalog")]),
//! );
//! let request = client
//!     .request(None, "catalog", http::Method::GET, "/entities")
//!     .await?;
//! # let _ = request;
//! assert_eq!(client.tokens_issued(), 1);
//! # Ok(())
//! # }
//! ```

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::auth::Auth;
use crate::error::{DelegationError, IssueError};
use crate::plugin::{ServiceDiscovery, StaticDiscovery, now};
use crate::principal::{Principal, PrincipalType};
use crate::secret::SecretString;

/// A token is replaced this long before it expires, so it never expires in flight: 60 s, or a
/// quarter of the token's lifetime for short-lived tokens (so a 60 s token is still reused).
const REFRESH_MARGIN_SECS: u64 = 60;

/// The token held for one target, and when to replace it (unix seconds).
type TargetToken = tokio::sync::Mutex<Option<(SecretString, u64)>>;

/// How many on-behalf-of tokens a client keeps (one per target and user credential).
const OBO_CACHE_CAPACITY: u64 = 10_000;

/// When to replace a token this crate minted: [`REFRESH_MARGIN_SECS`] before it expires, or
/// a quarter of its lifetime for short-lived ones.
fn replace_at(token: &SecretString) -> u64 {
    match crate::plugin::token_times(token) {
        Some((iat, exp)) => exp - REFRESH_MARGIN_SECS.min(exp.saturating_sub(iat) / 4),
        None => now(),
    }
}

/// Calls other services with a plugin token attached. Cheap to share (`Arc` it).
pub struct S2sClient {
    auth: Auth,
    http: reqwest::Client,
    discovery: Arc<dyn ServiceDiscovery>,
    /// Per target: the token and the time (unix seconds) to replace it, behind a lock of its
    /// own, so a slow mint (a key rotation waiting on the store) holds up only that target.
    tokens: std::sync::Mutex<HashMap<String, Arc<TargetToken>>>,
    /// On-behalf-of tokens, by SHA-256 of target, user and user credential.
    on_behalf_of: moka::sync::Cache<[u8; 32], (SecretString, u64)>,
    issued: AtomicU64,
}

impl std::fmt::Debug for S2sClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S2sClient")
            .field("service_id", &self.auth.service_id())
            .field("tokens_issued", &self.tokens_issued())
            .finish_non_exhaustive()
    }
}

/// Why an outbound request could not be prepared.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// No token could be had for this call.
    #[error(transparent)]
    Token(#[from] IssueError),
    /// Discovery does not know the target.
    #[error("service `{0}` is unknown to discovery")]
    UnknownService(String),
    /// The path given to [`S2sClient::request`] could send the request, and its token,
    /// somewhere other than the target: it does not start with `/` (`@evil.example/x`
    /// makes the target's host a user name, `.evil.example/x` a subdomain, `:8443/x` another
    /// port), starts with `//` or holds a backslash (both read as another host by some
    /// parsers), or holds control characters (which URL parsers strip or split on). No
    /// token is minted and no request made.
    #[error("path {path:?} refused: {reason}")]
    InvalidPath {
        /// The path as given (printed escaped, so control characters cannot forge log lines).
        path: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
}

/// Refuses a path that could move a request off the target's base URL (see
/// [`ClientError::InvalidPath`]).
fn check_path(path: &str) -> Result<(), &'static str> {
    if !path.starts_with('/') {
        return Err("a path must start with `/`");
    }
    if path.starts_with("//") {
        return Err("a path must not start with `//` (a network-path reference names a host)");
    }
    if path.contains('\\') {
        return Err("a path must not contain `\\` (read as `/` by WHATWG URL parsers)");
    }
    if path.chars().any(char::is_control) {
        return Err("a path must not contain control characters");
    }
    Ok(())
}

/// `base` + `path`, refused unless it keeps `base`'s scheme, host and port (the last word on
/// whether a path changed the authority, whatever the rules above missed) and stays below
/// `base`'s path (`/../auth/x`, or `/%2e%2e/auth/x`, would reach another service behind the
/// same gateway).
fn join(base: &str, path: &str) -> Result<reqwest::Url, ClientError> {
    let refuse = |reason| ClientError::InvalidPath {
        path: path.to_owned(),
        reason,
    };
    check_path(path).map_err(refuse)?;
    let base = base.trim_end_matches('/');
    let url = reqwest::Url::parse(&format!("{base}{path}"))
        .map_err(|_| refuse("the target's base URL and this path make no valid URL"))?;
    let base = reqwest::Url::parse(base)
        .map_err(|_| refuse("the target's base URL is not a valid URL"))?;
    if url.origin() != base.origin() {
        return Err(refuse("the path changes the target's scheme, host or port"));
    }
    let below = base.path().trim_end_matches('/');
    let stays_below = url
        .path()
        .strip_prefix(below)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
    if !stays_below {
        return Err(refuse(
            "the path leaves the target's base path (dot segments)",
        ));
    }
    Ok(url)
}

impl Auth {
    /// The outbound client, finding targets through the discovery this service was built
    /// with ([`AuthBuilder::discovery`](crate::AuthBuilder::discovery), YAML
    /// `s2s.discovery`); without one, every target is unknown
    /// ([`ClientError::UnknownService`]). Plugin tokens must be configured for it to mint
    /// tokens.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use s2s_auth::{Auth, PluginTokens, StaticDiscovery};
    /// use s2s_auth::store::MemoryStore;
    ///
    /// let scaffolder = Auth::builder("scaffolder")
    ///     .plugin_tokens(PluginTokens::new(Arc::new(MemoryStore::default())))
    ///     .discovery(StaticDiscovery::new([("catalog", "http://catalog:7007/api/catalog")]))
    ///     .build()?;
    /// let client = scaffolder.client();
    /// assert_eq!(client.tokens_issued(), 0);
    /// # Ok::<(), s2s_auth::ConfigError>(())
    /// ```
    pub fn client(&self) -> S2sClient {
        let discovery = self.pipeline.discovery.clone().unwrap_or_else(|| {
            Arc::new(StaticDiscovery::new(std::iter::empty::<(String, String)>()))
        });
        S2sClient::build(self.clone(), discovery, reqwest::Client::new())
    }
}

impl S2sClient {
    /// A client for the service `auth` describes (it must have plugin tokens configured),
    /// finding targets through `discovery`.
    pub fn new(auth: Auth, discovery: impl ServiceDiscovery) -> Self {
        Self::with_http(auth, discovery, reqwest::Client::new())
    }

    /// The same, with your own `reqwest::Client` (timeouts, proxies, TLS roots).
    pub fn with_http(auth: Auth, discovery: impl ServiceDiscovery, http: reqwest::Client) -> Self {
        Self::build(auth, Arc::new(discovery), http)
    }

    fn build(auth: Auth, discovery: Arc<dyn ServiceDiscovery>, http: reqwest::Client) -> Self {
        Self {
            auth,
            http,
            discovery,
            tokens: std::sync::Mutex::new(HashMap::new()),
            on_behalf_of: moka::sync::Cache::builder()
                .max_capacity(OBO_CACHE_CAPACITY)
                .time_to_live(std::time::Duration::from_secs(3600))
                .build(),
            issued: AtomicU64::new(0),
        }
    }

    /// How many tokens this client has minted (reuse keeps it low: one per target per
    /// token lifetime).
    pub fn tokens_issued(&self) -> u64 {
        self.issued.load(Ordering::Relaxed)
    }

    /// The token to call `target` with, on behalf of `principal` (see the module docs).
    pub async fn token_for(
        &self,
        principal: Option<&Principal>,
        target: &str,
    ) -> Result<SecretString, IssueError> {
        if let Some(p) = principal {
            if p.restrictions().is_some() {
                return Err(IssueError::CannotDelegate(DelegationError::Restricted));
            }
            if p.principal_type() == PrincipalType::User {
                return self.on_behalf_of(p, target).await;
            }
        }
        if !crate::service_id::is_valid_service_id(target) {
            return Err(IssueError::InvalidTarget(target.to_owned()));
        }
        let slot = self
            .tokens
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(target.to_owned())
            .or_default()
            .clone();
        // One lock per target for the check and the mint: concurrent first calls share one
        // token.
        let mut held = slot.lock().await;
        if let Some((token, replace_at)) = held.as_ref()
            && now() < *replace_at
        {
            return Ok(token.clone());
        }
        let token = self.auth.plugin_token(target).await?;
        self.issued.fetch_add(1, Ordering::Relaxed);
        *held = Some((token.clone(), replace_at(&token)));
        Ok(token)
    }

    /// An on-behalf-of token for `user`, reused while the same user credential calls.
    async fn on_behalf_of(
        &self,
        user: &Principal,
        target: &str,
    ) -> Result<SecretString, IssueError> {
        // The user's credential is part of the key: a new login gets a new token.
        let credential = match user.limited_user_token() {
            Some(limited) => limited.token.expose_secret().to_owned(),
            None => user
                .expires_at()
                .map_or(0, |t| t.unix_timestamp())
                .to_string(),
        };
        let key = crate::secret::sha256(
            [target, user.subject(), credential.as_str()]
                .join("\n")
                .as_bytes(),
        );
        if let Some((token, replace_at)) = self.on_behalf_of.get(&key)
            && now() < replace_at
        {
            return Ok(token);
        }
        let token = self.auth.on_behalf_of_token(user, target).await?;
        self.issued.fetch_add(1, Ordering::Relaxed);
        self.on_behalf_of
            .insert(key, (token.clone(), replace_at(&token)));
        Ok(token)
    }

    /// A request to `path` on `target` (its base URL from discovery) with the bearer token
    /// attached. Send it with `.send().await`.
    ///
    /// `path` is appended to the base URL and must stay below it: it starts with `/`, not
    /// `//`, and holds no backslash or control character; anything else (`@evil.example/x`,
    /// `//evil.example/x`, `http://evil/x`) is [`ClientError::InvalidPath`], checked before
    /// a token is minted.
    pub async fn request(
        &self,
        principal: Option<&Principal>,
        target: &str,
        method: http::Method,
        path: &str,
    ) -> Result<reqwest::RequestBuilder, ClientError> {
        check_path(path).map_err(|reason| ClientError::InvalidPath {
            path: path.to_owned(),
            reason,
        })?;
        let base = self
            .discovery
            .base_url(target)
            .ok_or_else(|| ClientError::UnknownService(target.to_owned()))?;
        let url = join(&base, path)?;
        let token = self.token_for(principal, target).await?;
        Ok(self
            .http
            .request(method, url)
            .bearer_auth(token.expose_secret()))
    }
}
