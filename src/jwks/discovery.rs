//! OIDC discovery: an issuer's `jwks_uri`, read from
//! `<issuer>/.well-known/openid-configuration` and kept once it has been read.
//!
//! Until then, fetching the document is single-flight and within a [`Budget`] like any
//! forced JWKS fetch: requests waiting on a failing discovery endpoint share one fetch, and
//! the endpoint is asked at most 10 times a minute (once per cooldown after a failure),
//! however many tokens arrive.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use super::JwksCache;
use super::budget::Budget;
use crate::error::RequestError;

/// OIDC discovery of a `jwks_uri`, once, single-flight and within a budget.
#[derive(Debug)]
pub(crate) struct OidcDiscovery {
    issuer: String,
    document_url: String,
    pub(crate) resolved: tokio::sync::OnceCell<String>,
    /// Boxed: needed only until the document is read.
    retry: Box<Retry>,
}

/// How the fetches of the document are merged and paced.
#[derive(Debug, Default)]
struct Retry {
    /// Held for the whole of a fetch of the document.
    fetch: tokio::sync::Mutex<()>,
    /// Bumped after every attempt, so a waiter can tell one happened meanwhile.
    attempts: AtomicU64,
    /// Made from the cache's configuration at the first use.
    budget: OnceLock<Budget>,
}

/// Why a discovery document was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum DiscoveryError {
    #[error("{0}")]
    Fetch(String),
    #[error("discovery document lacks issuer or jwks_uri")]
    Malformed,
    #[error("discovery document names another issuer")]
    OtherIssuer,
    #[error("an https issuer's discovery document names a jwks_uri that is not https")]
    Downgrade,
}

impl OidcDiscovery {
    pub(crate) fn new(issuer: &str) -> Self {
        Self {
            issuer: issuer.to_owned(),
            document_url: format!(
                "{}/.well-known/openid-configuration",
                issuer.trim_end_matches('/')
            ),
            resolved: tokio::sync::OnceCell::new(),
            retry: Box::default(),
        }
    }

    pub(crate) async fn jwks_url(&self, cache: &JwksCache) -> Result<&str, RequestError> {
        if let Some(url) = self.resolved.get() {
            return Ok(url);
        }
        let retry = &self.retry;
        let budget = retry
            .budget
            .get_or_init(|| Budget::new(cache.config().unknown_kid_cooldown));
        let unavailable = |now: Instant| RequestError::KeysUnavailable {
            retry_after_secs: budget.retry_after(now).as_secs().max(1),
        };
        let attempts = retry.attempts.load(Ordering::Acquire);
        let _guard = retry.fetch.lock().await;
        if let Some(url) = self.resolved.get() {
            return Ok(url);
        }
        // Someone else tried while we waited, and failed: share their answer.
        if retry.attempts.load(Ordering::Acquire) != attempts {
            return Err(unavailable(Instant::now()));
        }
        let started = Instant::now();
        if budget.take(started).is_err() {
            return Err(unavailable(started));
        }
        let result = self.read_document(cache).await;
        budget.record(started, result.is_err());
        retry.attempts.fetch_add(1, Ordering::AcqRel);
        match result {
            Ok(url) => Ok(self.resolved.get_or_init(|| async { url }).await),
            Err(error) => {
                tracing::warn!(target: "s2s_auth::jwks", issuer = %self.issuer, %error, "OIDC discovery failed");
                Err(unavailable(Instant::now()))
            }
        }
    }

    async fn read_document(&self, cache: &JwksCache) -> Result<String, DiscoveryError> {
        let doc = cache
            .fetcher()
            .fetch(&self.document_url, cache.config().max_body_bytes)
            .await
            .map_err(|e| DiscoveryError::Fetch(e.to_string()))?;
        check_document(&doc.body, &self.issuer)
    }
}

/// The `jwks_uri` of a discovery document fetched for `issuer`, or why it is not taken
/// (sync, so the fuzz target reaches it without a runtime or a server).
fn check_document(body: &[u8], issuer: &str) -> Result<String, DiscoveryError> {
    #[derive(serde::Deserialize)]
    struct Doc {
        issuer: String,
        jwks_uri: String,
    }
    // serde also reads a struct from a JSON array (`["<issuer>", "<jwks_uri>"]`); OIDC
    // Discovery 4.2 says the document is an object.
    if body.trim_ascii_start().first() != Some(&b'{') {
        return Err(DiscoveryError::Malformed);
    }
    let doc: Doc = serde_json::from_slice(body).map_err(|_| DiscoveryError::Malformed)?;
    // OIDC Discovery 4.3: the issuer in the document must be the one we asked.
    if doc.issuer.trim_end_matches('/') != issuer.trim_end_matches('/') {
        return Err(DiscoveryError::OtherIssuer);
    }
    // Keys taken over http from an issuer reached over https would let anyone on the
    // path between us and the key server sign tokens for that issuer.
    if is_https(issuer) && !is_https(&doc.jwks_uri) && !is_loopback(&doc.jwks_uri) {
        return Err(DiscoveryError::Downgrade);
    }
    Ok(doc.jwks_uri)
}

/// [`check_document`] with a text for the error (for the fuzz targets and the tests).
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn parse_document(body: &[u8], issuer: &str) -> Result<String, String> {
    check_document(body, issuer).map_err(|e| e.to_string())
}

fn is_https(url: &str) -> bool {
    reqwest::Url::parse(url).is_ok_and(|u| u.scheme() == "https")
}

/// An `http` URL whose host is a loopback address (`localhost`, `127.0.0.0/8`, `::1`).
fn is_loopback(url: &str) -> bool {
    let Ok(url) = reqwest::Url::parse(url) else {
        return false;
    };
    if url.scheme() != "http" {
        return false;
    }
    let Some(host) = url.host_str() else {
        return false;
    };
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_and_https() {
        assert!(is_https("https://idp.example.com/keys"));
        assert!(!is_https("http://idp.example.com/keys"));
        assert!(!is_https("not a url"));
        for url in [
            "http://localhost:8080/jwks",
            "http://127.0.0.1/jwks",
            "http://127.8.9.10/jwks",
            "http://[::1]:7007/jwks",
        ] {
            assert!(is_loopback(url), "{url}");
        }
        for url in [
            "http://idp.example.com/jwks",
            "http://localhost.evil.example/jwks",
            "http://10.0.0.1/jwks",
            "file:///etc/keys",
            "https://127.0.0.1/jwks",
        ] {
            assert!(!is_loopback(url), "{url}");
        }
    }
}

#[cfg(test)]
mod document_tests {
    use super::*;

    const ISSUER: &str = "https://login.example.com";

    #[test]
    fn takes_jwks_uri_from_a_document_naming_our_issuer() {
        let doc = br#"{"issuer":"https://login.example.com/","jwks_uri":"https://login.example.com/keys"}"#;
        assert_eq!(
            parse_document(doc, ISSUER).as_deref(),
            Ok("https://login.example.com/keys")
        );
        let other =
            br#"{"issuer":"https://evil.example.com","jwks_uri":"https://evil.example.com/k"}"#;
        assert_eq!(
            check_document(other, ISSUER),
            Err(DiscoveryError::OtherIssuer)
        );
    }

    /// Found by fuzzing (the `jwks` target found the same hole in key sets): serde reads a
    /// struct from an array too, so `[issuer, jwks_uri]` was a discovery document.
    #[test]
    fn refuses_a_document_written_as_an_array() {
        let doc = br#"["https://login.example.com","https://login.example.com/keys"]"#;
        assert_eq!(check_document(doc, ISSUER), Err(DiscoveryError::Malformed));
    }
}
