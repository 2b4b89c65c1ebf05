//! The JWKS cache: verification keys per URL, kept fresh without letting an attacker or an
//! outage take the service down.
//!
//! | threat | defence | knob |
//! |---|---|---|
//! | a flood of tokens with made-up `kid`s ("kid storm") making us hammer the key server | a kid miss forces a refresh at most once per cooldown per URL (never more than 10 a minute) | [`JwksCacheConfig::unknown_kid_cooldown`] |
//! | many concurrent requests missing the same key | single-flight: one fetch, everyone waits for it | — |
//! | the key server is down | known keys keep working (stale-on-error) up to a maximum age; only tokens needing a key we never had get 503 | [`JwksCacheConfig::max_stale`] |
//! | a slow key server | every fetch ends within the timeout | [`JwksCacheConfig::fetch_timeout`] |
//! | a huge JWKS | refused at the cap without reading it all | [`JwksCacheConfig::max_body_bytes`] |
//! | one malformed key in a set | skipped alone; the others still verify | — |
//!
//! Keys are refreshed ahead of need: a lookup that finds its set older than the refresh
//! interval (10 min by default, or the server's `Cache-Control: max-age` within bounds)
//! starts a background refresh and is answered from the current keys. The hot path takes
//! only a read lock that no fetch ever holds across I/O.

mod discovery;
mod fetch;
#[cfg(feature = "jwks-client-rs")]
mod jwks_client_rs;
mod keys;

pub(crate) use discovery::OidcDiscovery;
pub use fetch::{FetchError, FetchFuture, FetchedDocument, HttpFetcher, KeyFetcher};
#[cfg(feature = "jwks-client-rs")]
pub use jwks_client_rs::JwksClientRsFetcher;
pub(crate) use keys::UsableKey;
// For the fuzz targets only (`crate::fuzzing`): the discovery parser, without a fetch.
#[cfg(feature = "fuzzing")]
pub(crate) use discovery::parse_document as parse_discovery_document;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::Algorithm;

// pub(crate) for the fuzz targets (`crate::fuzzing`), which parse documents without a fetch.
pub(crate) use keys::{KeySet, Lookup};

/// The knobs of the [`JwksCache`], each with a secure default.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct JwksCacheConfig {
    /// How often a key set is refreshed in the background when its server gives no
    /// `max-age`. Default 10 minutes.
    pub refresh_interval: Duration,
    /// Bounds on the server's `Cache-Control: max-age`. Defaults 1 minute and 1 hour: a
    /// server saying `no-store` must not make us fetch on every request, and one saying a
    /// year must not keep a revoked key alive.
    pub min_refresh_interval: Duration,
    /// See [`JwksCacheConfig::min_refresh_interval`].
    pub max_refresh_interval: Duration,
    /// The least time between two fetches forced by an unknown `kid` (or retried after a
    /// failure) for one URL. Default 30 s; from 6 s (so no more than 10 such fetches a minute
    /// are ever made: lower, and a storm of made-up `kid`s would turn into a storm on your
    /// identity provider) to 1 hour, checked by [`AuthBuilder::build`](crate::AuthBuilder::build).
    pub unknown_kid_cooldown: Duration,
    /// How long keys keep verifying after the last successful fetch while the server is
    /// unreachable. Default 24 hours. After that the keys are dropped and requests needing
    /// them get 503: a key the server may have revoked is not trusted forever.
    pub max_stale: Duration,
    /// The timeout of one fetch, start to end. Default 5 s.
    pub fetch_timeout: Duration,
    /// The largest JWKS or discovery document read. Default 1 MiB.
    pub max_body_bytes: usize,
}

impl Default for JwksCacheConfig {
    fn default() -> Self {
        Self {
            refresh_interval: Duration::from_secs(600),
            min_refresh_interval: Duration::from_secs(60),
            max_refresh_interval: Duration::from_secs(3600),
            unknown_kid_cooldown: Duration::from_secs(30),
            max_stale: Duration::from_secs(24 * 3600),
            fetch_timeout: Duration::from_secs(5),
            max_body_bytes: 1024 * 1024,
        }
    }
}

/// The least cooldown: 60 s / 10 fetches.
const MIN_COOLDOWN: Duration = Duration::from_secs(6);

/// Why no key could be had for a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum KeyError {
    /// The set (freshly fetched, or recently enough) has no key with this `kid`.
    UnknownKid,
    /// The key exists but does not allow the token's algorithm.
    AlgorithmMismatch,
    /// The token names no `kid` and the set has several candidate keys.
    KidRequired,
    /// No keys could be had (never fetched, or too stale) and the source is failing.
    Unavailable { retry_after: Duration },
}

/// Maps a key lookup failure to the request error.
pub(crate) fn key_error(e: KeyError) -> crate::error::RequestError {
    match e {
        KeyError::UnknownKid => crate::error::VerifyError::UnknownKey.into(),
        KeyError::AlgorithmMismatch => crate::error::VerifyError::KeyAlgorithmMismatch.into(),
        KeyError::KidRequired => crate::error::VerifyError::KidRequired.into(),
        KeyError::Unavailable { retry_after } => crate::error::RequestError::KeysUnavailable {
            retry_after_secs: retry_after.as_secs().max(1),
        },
    }
}

struct Fetched {
    keys: KeySet,
    fetched_at: Instant,
    refresh_after: Duration,
}

#[derive(Default)]
struct UrlState {
    current: RwLock<Option<Arc<Fetched>>>,
    /// Held for the whole of a fetch: concurrent misses queue here and share its result.
    fetch: tokio::sync::Mutex<()>,
    /// Bumped after every fetch attempt, so a waiter can tell a fetch happened meanwhile.
    generation: AtomicU64,
    /// When the last forced or failed fetch started (rate limit).
    last_attempt: Mutex<Option<Instant>>,
    refreshing: AtomicBool,
    /// Whether the latest fetch attempt failed: a `kid` missing from the set we still hold
    /// is then not known to be unknown, only unavailable (503, not 401).
    last_fetch_failed: AtomicBool,
}

impl UrlState {
    fn current(&self) -> Option<Arc<Fetched>> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Verification keys per JWKS URL. Shared by every verifier of an [`Auth`](crate::Auth).
pub struct JwksCache {
    fetcher: Arc<dyn KeyFetcher>,
    config: JwksCacheConfig,
    urls: RwLock<HashMap<String, Arc<UrlState>>>,
}

impl std::fmt::Debug for JwksCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksCache")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl JwksCache {
    /// A cache fetching with `fetcher`.
    pub fn new(config: JwksCacheConfig, fetcher: Arc<dyn KeyFetcher>) -> Self {
        Self {
            fetcher,
            config,
            urls: RwLock::new(HashMap::new()),
        }
    }

    /// A cache fetching over HTTP with the configured timeout.
    pub fn with_http(config: JwksCacheConfig) -> Result<Self, FetchError> {
        let fetcher = HttpFetcher::new(config.fetch_timeout)?;
        Ok(Self::new(config, Arc::new(fetcher)))
    }

    /// The configuration.
    pub fn config(&self) -> &JwksCacheConfig {
        &self.config
    }

    pub(crate) fn fetcher(&self) -> &dyn KeyFetcher {
        &*self.fetcher
    }

    fn state(&self, url: &str) -> Arc<UrlState> {
        if let Some(s) = self
            .urls
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(url)
        {
            return s.clone();
        }
        self.urls
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(url.to_owned())
            .or_default()
            .clone()
    }

    fn usable(&self, fetched: &Fetched, now: Instant) -> bool {
        now.duration_since(fetched.fetched_at) <= self.config.max_stale
    }

    /// The key from what is cached, without any I/O: `None` when a fetch might help.
    pub(crate) fn cached_key(
        self: &Arc<Self>,
        url: &str,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Option<Result<Arc<UsableKey>, KeyError>> {
        let state = self.state(url);
        let fetched = state.current()?;
        let now = Instant::now();
        if !self.usable(&fetched, now) {
            return None;
        }
        self.maybe_refresh_ahead(url, &state, &fetched, now);
        match fetched.keys.find(kid, alg) {
            Lookup::Found(key) => Some(Ok(key)),
            Lookup::AlgorithmMismatch => Some(Err(KeyError::AlgorithmMismatch)),
            Lookup::KidRequired => Some(Err(KeyError::KidRequired)),
            Lookup::UnknownKid => None,
        }
    }

    /// Whether the set for `url` currently holds `kid` (for the verified-token cache: a
    /// cached verification never outlives its key's presence in the set).
    pub(crate) fn still_has(&self, url: &str, kid: Option<&str>) -> bool {
        let Some(fetched) = self.state(url).current() else {
            return false;
        };
        if !self.usable(&fetched, Instant::now()) {
            return false;
        }
        match kid {
            Some(kid) => fetched.keys.contains_kid(kid),
            None => fetched.keys.len() > 0,
        }
    }

    /// The key, fetching the set if needed (single-flight and rate-limited).
    pub(crate) async fn key(
        self: &Arc<Self>,
        url: &str,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<Arc<UsableKey>, KeyError> {
        let state = self.state(url);
        let generation = state.generation.load(Ordering::Acquire);
        if let Some(result) = self.cached_key(url, kid, alg) {
            return result;
        }
        let _guard = state.fetch.lock().await;
        if state.generation.load(Ordering::Acquire) == generation {
            // Nobody fetched while we waited: it is up to us, if the rate limit allows.
            let now = Instant::now();
            let cooldown = self.config.unknown_kid_cooldown.max(MIN_COOLDOWN);
            let allowed = {
                let mut last = state
                    .last_attempt
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                let due = last.is_none_or(|at| now.duration_since(at) >= cooldown);
                if due {
                    *last = Some(now);
                }
                due
            };
            if allowed {
                self.fetch_into(url, &state).await;
            } else if !state.current().is_some_and(|f| self.usable(&f, now)) {
                return Err(KeyError::Unavailable {
                    retry_after: self.retry_after(&state, now),
                });
            }
        }
        let now = Instant::now();
        match state.current().filter(|f| self.usable(f, now)) {
            Some(fetched) => match fetched.keys.find(kid, alg) {
                Lookup::Found(key) => Ok(key),
                Lookup::AlgorithmMismatch => Err(KeyError::AlgorithmMismatch),
                Lookup::KidRequired => Err(KeyError::KidRequired),
                // The source is failing: the kid may well be a new key we cannot fetch.
                Lookup::UnknownKid if state.last_fetch_failed.load(Ordering::Acquire) => {
                    Err(KeyError::Unavailable {
                        retry_after: self.retry_after(&state, now),
                    })
                }
                Lookup::UnknownKid => Err(KeyError::UnknownKid),
            },
            None => Err(KeyError::Unavailable {
                retry_after: self.config.unknown_kid_cooldown.max(MIN_COOLDOWN),
            }),
        }
    }

    /// How long until the rate limit lets `state` be fetched again (at least 1 s).
    fn retry_after(&self, state: &UrlState, now: Instant) -> Duration {
        let cooldown = self.config.unknown_kid_cooldown.max(MIN_COOLDOWN);
        let waited = state
            .last_attempt
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .map_or(Duration::ZERO, |at| now.duration_since(at));
        cooldown.saturating_sub(waited).max(Duration::from_secs(1))
    }

    /// Fetches and installs a set. On failure the current set stays (stale-on-error).
    /// Call with the URL's fetch lock held.
    async fn fetch_into(&self, url: &str, state: &UrlState) {
        let result = self
            .fetcher
            .fetch(url, self.config.max_body_bytes)
            .await
            .map_err(|e| e.to_string())
            .and_then(|doc| {
                KeySet::parse(&doc.body, url)
                    .map(|keys| (keys, doc.max_age))
                    .map_err(|e| e.to_string())
            });
        let result_failed = result.is_err();
        match result {
            Ok((keys, max_age)) => {
                let refresh_after = max_age.unwrap_or(self.config.refresh_interval).clamp(
                    self.config.min_refresh_interval,
                    self.config.max_refresh_interval,
                );
                tracing::debug!(target: "s2s_auth::jwks", %url, keys = keys.len(), skipped = keys.skipped, "fetched JWKS");
                *state
                    .current
                    .write()
                    .unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(Fetched {
                    keys,
                    fetched_at: Instant::now(),
                    refresh_after,
                }));
            }
            Err(error) => {
                tracing::warn!(target: "s2s_auth::jwks", %url, %error, "JWKS fetch failed; keeping the keys we have");
            }
        }
        state
            .last_fetch_failed
            .store(result_failed, Ordering::Release);
        state.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Starts a background refresh when the set is due, if a tokio runtime is there.
    fn maybe_refresh_ahead(
        self: &Arc<Self>,
        url: &str,
        state: &Arc<UrlState>,
        fetched: &Fetched,
        now: Instant,
    ) {
        if now.duration_since(fetched.fetched_at) < fetched.refresh_after {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if state.refreshing.swap(true, Ordering::AcqRel) {
            return;
        }
        let cache = self.clone();
        let state = state.clone();
        let url = url.to_owned();
        runtime.spawn(async move {
            let failed = {
                let _guard = state.fetch.lock().await;
                let due = state
                    .current()
                    .is_none_or(|f| f.fetched_at.elapsed() >= f.refresh_after);
                if due {
                    cache.fetch_into(&url, &state).await;
                }
                state
                    .current()
                    .is_none_or(|f| f.fetched_at.elapsed() >= f.refresh_after)
            };
            // A failed scheduled refresh retries after the cooldown, not on the next request;
            // the fetch lock is not held while waiting, so kid-miss fetches are not blocked.
            if failed {
                tokio::time::sleep(cache.config.unknown_kid_cooldown.max(MIN_COOLDOWN)).await;
            }
            state.refreshing.store(false, Ordering::Release);
        });
    }
}
