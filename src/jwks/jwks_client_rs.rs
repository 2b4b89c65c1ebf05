//! A [`KeyFetcher`] built on the `jwks_client_rs` crate (cargo feature `jwks-client-rs`).
//!
//! Only the fetching is delegated: parsing, single-flight, rate limits and stale keys stay
//! in [`JwksCache`](super::JwksCache), so switching fetchers changes no security property
//! except these, which come from `jwks_client_rs` itself (read from its source, 0.6.13):
//!
//! - the body is read whole, with no size limit: the
//!   [`JwksCacheConfig::max_body_bytes`](super::JwksCacheConfig) cap can only be checked
//!   against the key set rebuilt from the parsed keys, so a 2 MiB document padded with
//!   other members is accepted (measured; the built-in fetcher refuses it unread);
//! - a key set with one key of an unknown `kty`, or one key without a `kid`, fails as a
//!   whole (the built-in fetcher hands the raw document to the cache, which skips bad keys
//!   one by one);
//! - redirects are followed (the built-in fetcher refuses them);
//! - `jwks_client_rs` exposes `use` for RSA keys only, so an EC or OKP key marked
//!   `use: enc` is not skipped; and the server's `Cache-Control: max-age` is not seen, so
//!   the cache refreshes on its configured interval;
//! - OIDC discovery documents are not key sets, so they are fetched with the built-in
//!   [`HttpFetcher`].
//!
//! The built-in fetcher is the default; see README for the side-by-side figures.
//!
//! ```
//! # #[cfg(feature = "jwks-client-rs")] {
//! use std::sync::Arc;
//! use std::time::Duration;
//! use s2s_auth::{Auth, jwks::JwksClientRsFetcher};
//!
//! let fetcher = JwksClientRsFetcher::new(Duration::from_secs(5))?;
//! let auth = Auth::builder("catalog").key_fetcher(Arc::new(fetcher)).build()?;
//! # let _ = auth;
//! # }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use jwks_client_rs::source::{JwksSource, WebSource};
use jwks_client_rs::{JsonWebKey, JsonWebKeySet};
use serde_json::{Value, json};

use super::fetch::{FetchError, FetchFuture, FetchedDocument, HttpFetcher, KeyFetcher};

/// Fetches key sets through `jwks_client_rs`'s `WebSource` (one per URL, reused).
pub struct JwksClientRsFetcher {
    timeout: Duration,
    sources: Mutex<HashMap<String, Arc<WebSource>>>,
    documents: HttpFetcher,
}

impl std::fmt::Debug for JwksClientRsFetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksClientRsFetcher")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl JwksClientRsFetcher {
    /// A fetcher whose requests end within `timeout`.
    pub fn new(timeout: Duration) -> Result<Self, FetchError> {
        Ok(Self {
            timeout,
            sources: Mutex::new(HashMap::new()),
            documents: HttpFetcher::new(timeout)?,
        })
    }

    fn source(&self, url: &str) -> Result<Arc<WebSource>, FetchError> {
        let mut sources = self.sources.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(s) = sources.get(url) {
            return Ok(s.clone());
        }
        let parsed = url
            .parse()
            .map_err(|_| FetchError::Transport("invalid URL".to_owned()))?;
        let source = WebSource::builder()
            .with_timeout(self.timeout)
            .with_connect_timeout(self.timeout)
            .build(parsed)
            .map_err(|e| FetchError::Transport(e.without_url().to_string()))?;
        let source = Arc::new(source);
        sources.insert(url.to_owned(), source.clone());
        Ok(source)
    }
}

impl KeyFetcher for JwksClientRsFetcher {
    fn fetch<'a>(&'a self, url: &'a str, max_bytes: usize) -> FetchFuture<'a> {
        Box::pin(async move {
            // The crate builds discovery URLs with exactly this suffix; they are not key sets.
            if url.ends_with("/.well-known/openid-configuration") {
                return self.documents.fetch(url, max_bytes).await;
            }
            let set: JsonWebKeySet = self
                .source(url)?
                .fetch_keys()
                .await
                .map_err(|e| FetchError::Transport(e.to_string()))?;
            let keys: Vec<Value> = set.keys().iter().map(to_json).collect();
            let body = serde_json::to_vec(&json!({ "keys": keys }))
                .map_err(|e| FetchError::Transport(e.to_string()))?;
            if body.len() > max_bytes {
                return Err(FetchError::TooLarge { limit: max_bytes });
            }
            Ok(FetchedDocument::new(body))
        })
    }
}

/// Rebuilds a JWK document from `jwks_client_rs`'s typed key (it does not serialize).
fn to_json(key: &JsonWebKey) -> Value {
    let mut v = match key {
        JsonWebKey::Rsa(k) => {
            json!({ "kty": "RSA", "kid": k.key_id(), "n": k.modulus(), "e": k.exponent() })
        }
        JsonWebKey::Ec(k) => {
            json!({ "kty": "EC", "kid": k.key_id(), "crv": k.curve(), "x": k.x(), "y": k.y() })
        }
        JsonWebKey::Okp(k) => {
            json!({ "kty": "OKP", "kid": k.key_id(), "crv": k.curve(), "x": k.x() })
        }
    };
    if let (Some(alg), Some(obj)) = (key.alg(), v.as_object_mut()) {
        obj.insert("alg".to_owned(), Value::from(alg));
    }
    // Keep `use: enc` visible so the cache skips encryption keys. `jwks_client_rs` exposes
    // `use` for RSA keys only, as a type it does not export; its `Debug` form is the variant
    // name (`Sig`, `Enc`).
    if let (JsonWebKey::Rsa(k), Some(obj)) = (key, v.as_object_mut())
        && let Some(key_use) = k.r#use()
    {
        obj.insert(
            "use".to_owned(),
            Value::from(format!("{key_use:?}").to_ascii_lowercase()),
        );
    }
    v
}
