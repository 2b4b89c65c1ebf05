//! A [`KeyFetcher`] that reads key sets with the `jwks_client_rs` crate's key model (cargo
//! feature `jwks-client-rs`), downloading them with the built-in [`HttpFetcher`].
//!
//! Only the download and the key model are involved: parsing into usable keys,
//! single-flight, rate limits and stale keys stay in [`JwksCache`](super::JwksCache).
//!
//! **Why not `jwks_client_rs`'s own transport.** Its `WebSource` (read in its source,
//! 0.6.13, `source.rs`) builds its `reqwest::Client` from `ClientBuilder::default()` and its
//! builder exposes only the two timeouts, so it cannot be told not to follow redirects (it
//! follows up to 10), and it reads the body with `.json().await`, whole, however large.
//! Fetching through it lost two protections of the built-in fetcher, and `max_body_bytes`
//! could only be checked against the key set rebuilt afterwards (a 2 MiB padded document
//! was read and its keys used). So this fetcher downloads with [`HttpFetcher`] (no
//! redirects, the body cap enforced while streaming, `Cache-Control: max-age` passed on)
//! and hands each key of the document to `jwks_client_rs`'s `JsonWebKey`:
//!
//! - keys are read **one by one**: a key its model cannot read (an unknown `kty`, `oct`, a
//!   missing parameter) is left out alone, as the built-in fetcher's cache does, where
//!   parsing the whole `JsonWebKeySet` failed the set for one such key;
//! - `use` is taken from the document for **every key type** (its model keeps `use` for RSA
//!   keys only), so the cache skips an EC or OKP key marked `use: enc` too;
//! - the one difference left, stricter: its model requires `kid`, so a key without one is
//!   left out, where the built-in fetcher would use it for a token without `kid` when it
//!   is the only key for the token's algorithm;
//! - OIDC discovery documents are not key sets: they are passed on as downloaded.
//!
//! `tests/fetchers.rs` drives each protection through both fetchers.
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

use std::time::Duration;

use jwks_client_rs::JsonWebKey;
use serde_json::{Value, json};

use super::fetch::{FetchError, FetchFuture, FetchedDocument, HttpFetcher, KeyFetcher};

/// Downloads with [`HttpFetcher`]; reads each key with `jwks_client_rs::JsonWebKey`.
pub struct JwksClientRsFetcher {
    timeout: Duration,
    http: HttpFetcher,
}

impl std::fmt::Debug for JwksClientRsFetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksClientRsFetcher")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl JwksClientRsFetcher {
    /// A fetcher whose requests end within `timeout` (connect, headers and body).
    pub fn new(timeout: Duration) -> Result<Self, FetchError> {
        Ok(Self {
            timeout,
            http: HttpFetcher::new(timeout)?,
        })
    }
}

impl KeyFetcher for JwksClientRsFetcher {
    fn fetch<'a>(&'a self, url: &'a str, max_bytes: usize) -> FetchFuture<'a> {
        Box::pin(async move {
            let document = self.http.fetch(url, max_bytes).await?;
            // The crate builds discovery URLs with exactly this suffix; they are not key sets.
            if url.ends_with("/.well-known/openid-configuration") {
                return Ok(document);
            }
            let max_age = document.max_age;
            match through_key_model(&document.body) {
                Some(body) => Ok(FetchedDocument::new(body).with_max_age(max_age)),
                // Not `{"keys": [...]}` at all: the cache refuses it as it refuses any such
                // document, whichever fetcher brought it.
                None => Ok(document),
            }
        })
    }
}

/// The key set in `body` as `jwks_client_rs` reads it, key by key, with each key's `use`
/// from the document; `None` when `body` is not a JSON object with a `keys` list.
fn through_key_model(body: &[u8]) -> Option<Vec<u8>> {
    let document: Value = serde_json::from_slice(body).ok()?;
    let raw_keys = document.get("keys")?.as_array()?;
    let keys: Vec<Value> = raw_keys
        .iter()
        .filter_map(|raw| {
            let key: JsonWebKey = serde_json::from_value(raw.clone()).ok()?;
            let mut rebuilt = to_json(&key);
            // `JsonWebKey` keeps `use` for RSA keys only: carry it over for every type, so
            // the cache skips encryption keys of any kind.
            if let (Some(key_use), Some(obj)) = (raw.get("use"), rebuilt.as_object_mut()) {
                obj.insert("use".to_owned(), key_use.clone());
            }
            Some(rebuilt)
        })
        .collect();
    serde_json::to_vec(&json!({ "keys": keys })).ok()
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
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_read_one_by_one_and_keep_their_use() {
        let body = json!({ "keys": [
            { "kty": "EC", "kid": "ec", "crv": "P-256", "x": "AA", "y": "AA", "use": "enc" },
            { "kty": "oct", "kid": "hmac", "k": "c2VjcmV0" },
            { "kty": "OKP", "crv": "Ed25519", "x": "AA" },
            { "kty": "OKP", "kid": "ed", "crv": "Ed25519", "x": "AA", "use": "sig", "extra": 1 },
            42,
        ]})
        .to_string();
        let out: Value =
            serde_json::from_slice(&through_key_model(body.as_bytes()).unwrap()).unwrap();
        assert_eq!(
            out,
            json!({ "keys": [
                { "kty": "EC", "kid": "ec", "crv": "P-256", "x": "AA", "y": "AA", "use": "enc" },
                { "kty": "OKP", "kid": "ed", "crv": "Ed25519", "x": "AA", "use": "sig" },
            ]})
        );
        assert!(through_key_model(b"[]").is_none());
        assert!(through_key_model(br#"{"keys": 5}"#).is_none());
        assert!(through_key_model(b"not json").is_none());
    }
}
