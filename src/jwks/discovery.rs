//! OIDC discovery: an issuer's `jwks_uri`, read once from
//! `<issuer>/.well-known/openid-configuration` and kept, with a cooldown after failures.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::JwksCache;
use crate::error::RequestError;

/// OIDC discovery of a `jwks_uri`, once, with a cooldown after failures.
#[derive(Debug)]
pub(crate) struct OidcDiscovery {
    issuer: String,
    document_url: String,
    pub(crate) resolved: tokio::sync::OnceCell<String>,
    last_failure: Mutex<Option<Instant>>,
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
            last_failure: Mutex::new(None),
        }
    }

    pub(crate) async fn jwks_url(&self, cache: &JwksCache) -> Result<&str, RequestError> {
        let cooldown = cache
            .config()
            .unknown_kid_cooldown
            .max(Duration::from_secs(6));
        let last_failure = *self
            .last_failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(at) = last_failure
            && self.resolved.get().is_none()
            && at.elapsed() < cooldown
        {
            return Err(RequestError::KeysUnavailable {
                retry_after_secs: cooldown.saturating_sub(at.elapsed()).as_secs().max(1),
            });
        }
        let result = self
            .resolved
            .get_or_try_init(|| async {
                let doc = cache
                    .fetcher()
                    .fetch(&self.document_url, cache.config().max_body_bytes)
                    .await
                    .map_err(|e| e.to_string())?;
                parse_document(&doc.body, &self.issuer).map_err(str::to_owned)
            })
            .await;
        match result {
            Ok(url) => Ok(url.as_str()),
            Err(error) => {
                tracing::warn!(target: "s2s_auth::jwks", issuer = %self.issuer, %error, "OIDC discovery failed");
                *self
                    .last_failure
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
                Err(RequestError::KeysUnavailable {
                    retry_after_secs: cooldown.as_secs(),
                })
            }
        }
    }
}

/// The `jwks_uri` of a discovery document fetched for `issuer` (sync, so the fuzz target
/// reaches it without a runtime or a server).
pub(crate) fn parse_document(body: &[u8], issuer: &str) -> Result<String, &'static str> {
    #[derive(serde::Deserialize)]
    struct Doc {
        issuer: String,
        jwks_uri: String,
    }
    // serde also reads a struct from a JSON array (`["<issuer>", "<jwks_uri>"]`); OIDC
    // Discovery 4.2 says the document is an object.
    if body.trim_ascii_start().first() != Some(&b'{') {
        return Err("discovery document is not a JSON object");
    }
    let doc: Doc =
        serde_json::from_slice(body).map_err(|_| "discovery document lacks issuer or jwks_uri")?;
    // OIDC Discovery 4.3: the issuer in the document must be the one we asked.
    if doc.issuer.trim_end_matches('/') != issuer.trim_end_matches('/') {
        return Err("discovery document names another issuer");
    }
    Ok(doc.jwks_uri)
}

#[cfg(test)]
mod tests {
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
            parse_document(other, ISSUER),
            Err("discovery document names another issuer")
        );
    }

    /// Found by fuzzing (the `jwks` target found the same hole in key sets): serde reads a
    /// struct from an array too, so `[issuer, jwks_uri]` was a discovery document.
    #[test]
    fn refuses_a_document_written_as_an_array() {
        let doc = br#"["https://login.example.com","https://login.example.com/keys"]"#;
        assert_eq!(
            parse_document(doc, ISSUER),
            Err("discovery document is not a JSON object")
        );
    }
}
