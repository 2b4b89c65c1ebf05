//! Fetching JWKS documents: the [`KeyFetcher`] trait and its default, [`HttpFetcher`].
//!
//! The cache asks a fetcher for a URL's document and does everything else (parsing,
//! single-flight, rate limits, stale keys) itself, so a fetcher stays small: plug in your
//! own to read keys from somewhere other than HTTP, or enable the `jwks-client-rs` feature
//! for the fetcher built on that crate.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// A fetched document and how long its server says it may be cached.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct FetchedDocument {
    /// The body (at most the configured cap).
    pub body: Vec<u8>,
    /// `Cache-Control: max-age`, when the server sent one.
    pub max_age: Option<Duration>,
}

impl FetchedDocument {
    /// A document with no caching hint.
    pub fn new(body: Vec<u8>) -> Self {
        Self {
            body,
            max_age: None,
        }
    }

    /// Sets the caching hint.
    pub fn with_max_age(mut self, max_age: Option<Duration>) -> Self {
        self.max_age = max_age;
        self
    }
}

/// Why a fetch failed. None of these include the document or any header values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// No complete answer within the timeout.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// A non-2xx status.
    #[error("HTTP status {0}")]
    Status(u16),
    /// The body is larger than the cap; it was not read past the cap.
    #[error("body larger than {limit} bytes")]
    TooLarge {
        /// The cap in bytes.
        limit: usize,
    },
    /// Connection, TLS or protocol failure.
    #[error("transport error: {0}")]
    Transport(String),
}

/// The future a [`KeyFetcher`] returns.
pub type FetchFuture<'a> =
    Pin<Box<dyn Future<Output = Result<FetchedDocument, FetchError>> + Send + 'a>>;

/// Fetches a document (a JWKS, or an OpenID configuration) by URL.
pub trait KeyFetcher: Send + Sync + 'static {
    /// Fetches `url`, reading at most `max_bytes` of body.
    fn fetch<'a>(&'a self, url: &'a str, max_bytes: usize) -> FetchFuture<'a>;
}

/// An `Arc` of a fetcher is the same fetcher, so one can be shared and handed over as it is.
impl<T: KeyFetcher + ?Sized> KeyFetcher for std::sync::Arc<T> {
    fn fetch<'a>(&'a self, url: &'a str, max_bytes: usize) -> FetchFuture<'a> {
        (**self).fetch(url, max_bytes)
    }
}

/// The default fetcher: one shared `reqwest::Client` with a total timeout, no redirects
/// (a JWKS URL that redirects elsewhere is refused rather than followed), and a body cap
/// enforced while streaming (a `Content-Length` over the cap is refused before reading).
#[derive(Debug, Clone)]
pub struct HttpFetcher {
    client: reqwest::Client,
    timeout: Duration,
}

impl HttpFetcher {
    /// A fetcher whose every request ends within `timeout` (connect, headers and body).
    pub fn new(timeout: Duration) -> Result<Self, FetchError> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("s2s-auth/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| FetchError::Transport(e.to_string()))?;
        Ok(Self { client, timeout })
    }
}

impl KeyFetcher for HttpFetcher {
    fn fetch<'a>(&'a self, url: &'a str, max_bytes: usize) -> FetchFuture<'a> {
        Box::pin(async move {
            let map = |e: reqwest::Error| {
                if e.is_timeout() {
                    FetchError::Timeout(self.timeout)
                } else {
                    // Without the URL: it is in the caller's log context already.
                    FetchError::Transport(e.without_url().to_string())
                }
            };
            let mut response = self
                .client
                .get(url)
                .header(http::header::ACCEPT, "application/json")
                .send()
                .await
                .map_err(map)?;
            if !response.status().is_success() {
                return Err(FetchError::Status(response.status().as_u16()));
            }
            if response
                .content_length()
                .is_some_and(|len| len > max_bytes as u64)
            {
                return Err(FetchError::TooLarge { limit: max_bytes });
            }
            let max_age = response
                .headers()
                .get(http::header::CACHE_CONTROL)
                .and_then(|v| v.to_str().ok())
                .and_then(parse_max_age);
            let mut body = Vec::new();
            while let Some(chunk) = response.chunk().await.map_err(map)? {
                if body.len() + chunk.len() > max_bytes {
                    return Err(FetchError::TooLarge { limit: max_bytes });
                }
                body.extend_from_slice(&chunk);
            }
            Ok(FetchedDocument::new(body).with_max_age(max_age))
        })
    }
}

/// `max-age=N` from a `Cache-Control` value; `no-store`/`no-cache` count as zero.
pub(crate) fn parse_max_age(value: &str) -> Option<Duration> {
    let mut result = None;
    for directive in value.split(',') {
        let directive = directive.trim();
        if directive.eq_ignore_ascii_case("no-store") || directive.eq_ignore_ascii_case("no-cache")
        {
            return Some(Duration::ZERO);
        }
        if let Some((name, v)) = directive.split_once('=')
            && name.trim().eq_ignore_ascii_case("max-age")
        {
            result = v
                .trim()
                .trim_matches('"')
                .parse::<u64>()
                .ok()
                .map(Duration::from_secs);
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_age() {
        assert_eq!(
            parse_max_age("public, max-age=600"),
            Some(Duration::from_secs(600))
        );
        assert_eq!(parse_max_age("no-store"), Some(Duration::ZERO));
        assert_eq!(parse_max_age("max-age=abc"), None);
        assert_eq!(parse_max_age("public"), None);
    }
}
