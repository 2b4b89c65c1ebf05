//! Plugin-to-plugin tokens, in Backstage's wire format, so a Rust service can sit beside
//! Backstage backend plugins.
//!
//! - **Issuing**: [`Auth::plugin_token`](crate::Auth::plugin_token) mints a token with header
//!   `{"typ": "vnd.backstage.plugin", "alg": "ES256", "kid": <uuid>}` and claims `sub` (this
//!   service), `aud` (the target), `iat`, `exp` (1 hour, never past the key's publication).
//! - **Publishing**: [`Auth::jwks_router`](crate::Auth::jwks_router) serves
//!   `GET /.backstage/auth/v1/jwks.json` (`{"keys": [...]}`, public parts only) from the
//!   [`Store`]; the route is unauthenticated in the policy registry.
//! - **Verifying**: a token with `typ: vnd.backstage.plugin` goes to the plugin verifier. It
//!   checks the unverified `sub` is a service id (`^[a-z0-9_-]+$`) *before* anything else, so
//!   `../` or a URL can never reach discovery; finds the caller's base URL by
//!   [`ServiceDiscovery`]; fetches `<base>/.backstage/auth/v1/jwks.json` through the JWKS cache;
//!   and requires ES256, `aud` = this service, `iat exp sub aud`, and a lifetime no longer
//!   than the key duration plus leeway. The caller becomes `plugin:<sub>`.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use s2s_auth::{Auth, PluginTokens, StaticDiscovery};
//! use s2s_auth::store::MemoryStore;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let scaffolder = Auth::builder("scaffolder")
//!     .plugin_tokens(PluginTokens::new(Arc::new(MemoryStore::default())))
//!     .discovery(StaticDiscovery::new([("catalog", "http://catalog.internal:7007/api/catalog")]))
//!     .build()?;
//! let token = scaffolder.plugin_token("catalog").await?;
//! assert!(token.expose_secret().starts_with("eyJ"));
//! # Ok(())
//! # }
//! ```

mod keys;
mod static_keys;
mod verify;

pub(crate) use keys::{KeyManager, now};
pub use static_keys::StaticKey;
pub(crate) use verify::{PluginVerifier, backstage_provider};

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::{Algorithm, Header};
use serde_json::{Value, json};

use crate::audit::Auditor;
use crate::error::{ConfigError, ConfigRule, IssueError};
use crate::secret::SecretString;
use crate::store::Store;

/// The `typ` of plugin-to-plugin tokens.
pub const PLUGIN_TYP: &str = "vnd.backstage.plugin";

/// Where every service publishes its keys, relative to its base URL.
pub const JWKS_PATH: &str = "/.backstage/auth/v1/jwks.json";

/// How long a plugin token lives (Backstage's value).
pub const PLUGIN_TOKEN_LIFETIME: Duration = Duration::from_secs(3600);

/// Issuing plugin tokens: where keys are published and how often they rotate.
#[derive(Clone)]
pub struct PluginTokens {
    pub(crate) store: Option<Arc<dyn Store>>,
    pub(crate) static_keys: Vec<StaticKey>,
    pub(crate) key_duration: Duration,
}

impl std::fmt::Debug for PluginTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginTokens")
            .field("key_duration", &self.key_duration)
            .finish_non_exhaustive()
    }
}

impl PluginTokens {
    /// Keys published in `store` (a [`MemoryStore`](crate::store::MemoryStore),
    /// [`SqliteStore`](crate::store::SqliteStore), [`PostgresStore`](crate::store::PostgresStore),
    /// yours, or an `Arc` of any of them to share it), rotated every hour.
    pub fn new(store: impl Store) -> Self {
        Self::with_store(Arc::new(store))
    }

    pub(crate) fn with_store(store: Arc<dyn Store>) -> Self {
        Self {
            store: Some(store),
            static_keys: Vec::new(),
            key_duration: Duration::from_secs(3600),
        }
    }

    /// Static keys from PEM files instead of generated ones (Backstage's
    /// `pluginKeyStore: { type: static }`): the first signs, all are published, nothing
    /// rotates. See [`StaticKey`].
    pub fn static_keys(keys: impl IntoIterator<Item = StaticKey>) -> Self {
        Self {
            store: None,
            static_keys: keys.into_iter().collect(),
            key_duration: Duration::from_secs(3600),
        }
    }

    /// Builds the key manager (checking static keys).
    pub(crate) fn into_manager(
        self,
        service_id: &str,
        auditor: Arc<Auditor>,
    ) -> Result<KeyManager, ConfigError> {
        if let Some(store) = self.store {
            return Ok(KeyManager::new(
                service_id.to_owned(),
                store,
                self.key_duration,
                auditor,
            ));
        }
        let mut keys = Vec::new();
        for (i, key) in self.static_keys.iter().enumerate() {
            let mut key = key.clone();
            if key.origin == "static_key" {
                key.origin = format!("static_keys[{i}]");
            }
            let (encoding, jwk) = key.load()?;
            keys.push((key.key_id().to_owned(), encoding, jwk));
        }
        KeyManager::new_static(service_id.to_owned(), keys, self.key_duration, auditor).ok_or_else(
            || ConfigError::new("backend.auth.pluginKeyStore.static.keys", ConfigRule::NoKey),
        )
    }

    /// A new key every `duration` (default 1 hour; Backstage's `keyDuration`). Each public
    /// key stays published for three times that. Verifiers refuse tokens living longer than
    /// their own key duration plus leeway, so keep it the same across services.
    pub fn key_duration(mut self, duration: Duration) -> Self {
        self.key_duration = duration;
        self
    }
}

/// Finds the base URL of another service (Backstage's discovery), for its JWKS.
pub trait ServiceDiscovery: Send + Sync + 'static {
    /// The base URL of `service_id` (e.g. `http://catalog:7007/api/catalog`), if known.
    fn base_url(&self, service_id: &str) -> Option<String>;
}

/// Discovery from a fixed map (config `s2s.discovery`).
#[derive(Debug, Clone, Default)]
pub struct StaticDiscovery {
    urls: HashMap<String, String>,
}

impl StaticDiscovery {
    /// A map from service id to base URL.
    pub fn new<I, K, V>(urls: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        Self {
            urls: urls
                .into_iter()
                .map(|(k, v)| (k.into(), v.into().trim_end_matches('/').to_owned()))
                .collect(),
        }
    }
}

impl<T: ServiceDiscovery + ?Sized> ServiceDiscovery for Arc<T> {
    fn base_url(&self, service_id: &str) -> Option<String> {
        (**self).base_url(service_id)
    }
}

impl ServiceDiscovery for StaticDiscovery {
    fn base_url(&self, service_id: &str) -> Option<String> {
        self.urls.get(service_id).cloned()
    }
}

/// Mints a plugin token for `target`, signed by the current key: `sub` is this service (or,
/// in the on-behalf-of actor form, the user), `extra` an `obo` or `act` claim, `max_exp` the
/// user's token's `exp`.
pub(crate) async fn issue(
    keys: &KeyManager,
    sub: &str,
    target: &str,
    extra: Option<(&str, Value)>,
    max_exp: Option<u64>,
) -> Result<SecretString, IssueError> {
    if !crate::service_id::is_valid_service_id(target) {
        return Err(IssueError::InvalidTarget(target.to_owned()));
    }
    let key = keys.signing_key().await?;
    let iat = now();
    // At most one key duration (Backstage's lifetime): verifiers refuse tokens living
    // longer than their key duration plus leeway, so with the same key duration on both
    // sides every token verifies.
    let mut exp = iat
        + PLUGIN_TOKEN_LIFETIME
            .as_secs()
            .min(keys.key_duration().as_secs());
    if let Some(max) = max_exp {
        exp = exp.min(max);
    }
    let mut claims = json!({ "sub": sub, "aud": target, "iat": iat, "exp": exp });
    if let (Some((name, value)), Some(obj)) = (extra, claims.as_object_mut()) {
        obj.insert(name.to_owned(), value);
    }
    let mut header = Header::new(Algorithm::ES256);
    header.typ = Some(PLUGIN_TYP.to_owned());
    header.kid = Some(key.kid.clone());
    jsonwebtoken::encode(&header, &claims, &key.key)
        .map(SecretString::new)
        .map_err(|e| IssueError::Signing(e.to_string()))
}

/// The `iat` and `exp` of a token this crate minted (read without verifying: it is our own).
pub(crate) fn token_times(token: &SecretString) -> Option<(u64, u64)> {
    #[derive(serde::Deserialize)]
    struct Times {
        iat: u64,
        exp: u64,
    }
    let payload = token.expose_secret().split('.').nth(1)?;
    let times: Times = crate::jwt::decode_part(payload, crate::jwt::Part::Claims).ok()?;
    Some((times.iat, times.exp))
}
