//! The JWKS cache: verification keys per URL, kept fresh without letting an attacker or an
//! outage take the service down.
//!
//! | threat | defence | knob |
//! |---|---|---|
//! | a key rotation (a token with a `kid` we have not seen) | the first such token after a quiet spell is verified with one fetch, at once: there is no cooldown since the last fetch to wait out | — |
//! | a flood of tokens with made-up `kid`s ("kid storm") making us hammer the key server | kid misses draw on a budget per URL: a full budget holds a few fetches and refills one per cooldown, so a storm gets one fetch per cooldown and no minute ever more than 10 | [`JwksCacheConfig::unknown_kid_cooldown`] |
//! | many concurrent requests missing the same key | single-flight: one fetch, everyone waits for it | — |
//! | OIDC discovery failing under load | the same single-flight and budget per discovery document: waiting requests share one fetch | [`JwksCacheConfig::unknown_kid_cooldown`] |
//! | a discovery document of an `https` issuer pointing to an `http` `jwks_uri` (a downgrade on the way to the keys) | refused (503), unless the `jwks_uri` is on a loopback address | — |
//! | the key server is down | known keys keep working (stale-on-error) up to a maximum age; only tokens needing a key we never had get 503; a failed fetch is retried after one cooldown, not per request | [`JwksCacheConfig::max_stale`] |
//! | a slow key server | every fetch ends within the timeout | [`JwksCacheConfig::fetch_timeout`] |
//! | a huge JWKS | refused at the cap without reading it all | [`JwksCacheConfig::max_body_bytes`] |
//! | one malformed key in a set | skipped alone; the others still verify | — |
//! | a [`ServiceDiscovery`](crate::plugin::ServiceDiscovery) that resolves any id, so any token names a new URL | at most [`JwksCacheConfig::max_urls`] URLs are kept; when full, the least recently used URL that has been unused for a minute and whose budget is full is evicted; if there is none, the new URL gets 503 (known URLs keep working, and no URL's budget is ever forgotten early) | [`JwksCacheConfig::max_urls`] |
//! | a token without `kid`, verified and remembered, after its key set changed | the remembered verification names the set it was checked against and is dropped when the set at that URL changes | — |
//!
//! Keys are refreshed ahead of need: a lookup that finds its set older than the refresh
//! interval (10 min by default, or the server's `Cache-Control: max-age` within bounds)
//! starts a background refresh and is answered from the current keys. The hot path takes
//! only a read lock that no fetch ever holds across I/O.

mod budget;
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
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::Algorithm;

use budget::Budget;
// pub(crate) for the fuzz targets (`crate::fuzzing`), which parse documents without a fetch,
// and for the just-in-time verifier, which parses its own published keys.
pub(crate) use keys::{KeySet, Lookup};

/// The cache's URLs. Looked up on every verification that is not a cache hit (once for the
/// key, once for the witness kept with a cached entry), so hashed with `foldhash`
/// ([`seeded_hasher`](crate::secret::seeded_hasher)), not SipHash (about 400 instructions a
/// lookup less, issue 11): the URLs come from the configuration and from discovery of known
/// service ids, and there are at most [`JwksCacheConfig::max_urls`] of them.
type Urls = HashMap<String, Arc<UrlState>, foldhash::quality::SeedableRandomState>;

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
    /// The pace of fetches forced by requests (a token with a `kid` the set lacks, or the
    /// first token for a URL, or OIDC discovery), per URL. Each URL has a budget of such
    /// fetches that refills one per cooldown and holds `11 - ceil(60 s / cooldown)`, so that
    /// no minute ever sees more than 10 of them: the first unknown `kid` after a quiet spell
    /// is fetched at once (a key rotation costs no 401s), a storm of made-up `kid`s gets one
    /// fetch per cooldown. A failed fetch is retried after one cooldown at the earliest.
    /// Default 30 s (a budget of 9); from 6 s (a budget of 1: one fetch every 6 s at most,
    /// lower would let a storm of made-up `kid`s turn into a storm on your identity
    /// provider) to 1 hour, checked by [`AuthBuilder::build`](crate::AuthBuilder::build).
    pub unknown_kid_cooldown: Duration,
    /// How long keys keep verifying after the last successful fetch while the server is
    /// unreachable. Default 24 hours. After that the keys are dropped and requests needing
    /// them get 503: a key the server may have revoked is not trusted forever.
    pub max_stale: Duration,
    /// The timeout of one fetch, start to end. Default 5 s.
    pub fetch_timeout: Duration,
    /// The largest JWKS or discovery document read. Default 1 MiB.
    pub max_body_bytes: usize,
    /// How many URLs (JWKS and discovery documents) the cache keeps keys and budgets for.
    /// Default 1,000; 0 counts as 1. A custom
    /// [`ServiceDiscovery`](crate::plugin::ServiceDiscovery) that resolves any service id
    /// could otherwise grow the cache with every made-up caller. When full, a new URL takes
    /// the place of the least recently used one that has been unused for a minute and whose
    /// budget is full again; if there is none, the token needing the new URL gets 503 with
    /// `Retry-After`: known URLs are never pushed out by a flood of new ones, and a URL's
    /// budget is never forgotten while it could still matter.
    pub max_urls: usize,
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
            max_urls: 1_000,
        }
    }
}

/// How often a URL's last use is written (see [`UrlState::mark_used`]), in milliseconds.
const USE_MARK_MS: u64 = 1_000;

/// How long a URL must go unused before a new URL may take its place.
const EVICT_UNUSED_FOR: Duration = Duration::from_secs(60);

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
    /// Which set this is: unique in the cache, kept by a refresh that brings the same
    /// document, new when the document changes (see [`JwksCache::key_set`]).
    set: u64,
    /// The SHA-256 of the document.
    digest: [u8; 32],
}

struct UrlState {
    current: RwLock<Option<Arc<Fetched>>>,
    /// Held for the whole of a fetch: concurrent misses queue here and share its result.
    fetch: tokio::sync::Mutex<()>,
    /// Bumped after every fetch attempt, so a waiter can tell a fetch happened meanwhile.
    generation: AtomicU64,
    /// The fetches requests may still force (rate limit), and the last failure.
    budget: Budget,
    refreshing: AtomicBool,
    /// Whether the latest fetch attempt failed: a `kid` missing from the set we still hold
    /// is then not known to be unknown, only unavailable (503, not 401).
    last_fetch_failed: AtomicBool,
    /// When the URL was last looked up, in [`clock::millis`](crate::clock::millis).
    last_used: AtomicU64,
    /// The [`Fetched::set`] of `current` (0: none yet), and when it was fetched (in
    /// [`clock::millis`](crate::clock::millis), the request path's clock): what a [`KeyWitness`] is checked against,
    /// without taking `current`'s lock.
    set: AtomicU64,
    fetched_at_ms: AtomicU64,
    /// Set when the URL leaves the cache (to make room): witnesses of its keys then fail.
    evicted: AtomicBool,
}

/// Proof, kept with a cached verification, that a key set held the key that verified a
/// token: the URL's state itself (no lookup by URL), the key's `kid`, and the set it was
/// found in. [`JwksCache::still_holds`] checks it on every cache hit.
pub(crate) struct KeyWitness {
    state: Arc<UrlState>,
    kid: Option<String>,
    set: u64,
}

impl UrlState {
    fn new(cooldown: Duration) -> Self {
        Self {
            current: RwLock::new(None),
            fetch: tokio::sync::Mutex::new(()),
            generation: AtomicU64::new(0),
            budget: Budget::new(cooldown),
            refreshing: AtomicBool::new(false),
            last_fetch_failed: AtomicBool::new(false),
            last_used: AtomicU64::new(0),
            set: AtomicU64::new(0),
            fetched_at_ms: AtomicU64::new(0),
            evicted: AtomicBool::new(false),
        }
    }

    /// Records a use at `now_ms`. Eviction asks only whether a URL went unused for a
    /// minute, so a use within [`USE_MARK_MS`] of the recorded one is not written: a cache
    /// hit then reads the shared cache line instead of writing it on every request.
    fn mark_used(&self, now_ms: u64) {
        if self
            .last_used
            .load(Ordering::Relaxed)
            .saturating_add(USE_MARK_MS)
            <= now_ms
        {
            self.last_used.fetch_max(now_ms, Ordering::Relaxed);
        }
    }

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
    urls: RwLock<Urls>,
    /// The last [`Fetched::set`] handed out.
    sets: AtomicU64,
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
            urls: RwLock::new(Urls::with_hasher(crate::secret::seeded_hasher())),
            sets: AtomicU64::new(0),
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

    /// The state of a URL the cache already keeps, marked as used.
    fn known(&self, url: &str) -> Option<Arc<UrlState>> {
        let state = self
            .urls
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(url)?
            .clone();
        let now = crate::clock::millis(Instant::now());
        state.mark_used(now);
        Some(state)
    }

    /// The state of a URL, made if the cache has room (see [`JwksCacheConfig::max_urls`]);
    /// else how long until it may have.
    fn admit(&self, url: &str) -> Result<Arc<UrlState>, Duration> {
        if let Some(state) = self.known(url) {
            return Ok(state);
        }
        let now = Instant::now();
        let mut urls = self.urls.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(state) = urls.get(url) {
            return Ok(state.clone());
        }
        if urls.len() >= self.config.max_urls.max(1) {
            self.evict_one(&mut urls, now)?;
        }
        let state = Arc::new(UrlState::new(self.config.unknown_kid_cooldown));
        state
            .last_used
            .store(crate::clock::millis(now), Ordering::Relaxed);
        urls.insert(url.to_owned(), state.clone());
        Ok(state)
    }

    /// Makes room for one URL: forgets the least recently used one that nobody used for a
    /// minute, whose budget is full and that is not being fetched. A linear scan, only when
    /// the cache is full and a new URL comes.
    fn evict_one(&self, urls: &mut Urls, now: Instant) -> Result<(), Duration> {
        let now_ms = crate::clock::millis(now);
        let unused_for = EVICT_UNUSED_FOR.as_millis() as u64;
        let mut soonest = u64::MAX;
        let mut victim: Option<(&String, u64)> = None;
        for (url, state) in urls.iter() {
            let used = state.last_used.load(Ordering::Relaxed);
            if now_ms.saturating_sub(used) < unused_for {
                soonest = soonest.min(used + unused_for - now_ms);
                continue;
            }
            if !state.budget.idle(now) || state.fetch.try_lock().is_err() {
                continue;
            }
            if victim.is_none_or(|(_, oldest)| used < oldest) {
                victim = Some((url, used));
            }
        }
        let Some((url, _)) = victim else {
            let wait = Duration::from_millis(soonest.min(unused_for));
            tracing::warn!(target: "s2s_auth::jwks", max_urls = self.config.max_urls, "JWKS cache full of recently used URLs; refusing a new one");
            return Err(wait.max(Duration::from_secs(1)));
        };
        let url = url.clone();
        if let Some(state) = urls.remove(&url) {
            state.evicted.store(true, Ordering::Release);
        }
        tracing::debug!(target: "s2s_auth::jwks", %url, "evicted from the JWKS cache to make room");
        Ok(())
    }

    /// How many URLs the cache keeps now.
    pub fn url_count(&self) -> usize {
        self.urls
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
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
        let state = self.known(url)?;
        self.cached_in(url, &state, kid, alg)
    }

    fn cached_in(
        self: &Arc<Self>,
        url: &str,
        state: &Arc<UrlState>,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Option<Result<Arc<UsableKey>, KeyError>> {
        let fetched = state.current()?;
        let now = Instant::now();
        if !self.usable(&fetched, now) {
            return None;
        }
        self.maybe_refresh_ahead(url, state, &fetched, now);
        match fetched.keys.find(kid, alg) {
            Lookup::Found(key) => Some(Ok(key)),
            Lookup::AlgorithmMismatch => Some(Err(KeyError::AlgorithmMismatch)),
            Lookup::KidRequired => Some(Err(KeyError::KidRequired)),
            Lookup::UnknownKid => None,
        }
    }

    /// A witness that the set `url` holds now (usable, not too stale) has the key `kid`,
    /// for the verified-token cache; `None` when it has not (the verification is then not
    /// cached). A key without `kid` is witnessed by its set alone: a number that changes
    /// whenever the set's document does.
    pub(crate) fn witness(&self, url: &str, kid: Option<String>) -> Option<KeyWitness> {
        let state = self.known(url)?;
        let fetched = state.current()?;
        if !self.usable(&fetched, Instant::now()) {
            return None;
        }
        if let Some(kid) = &kid
            && !fetched.keys.contains_kid(kid)
        {
            return None;
        }
        Some(KeyWitness {
            set: fetched.set,
            state,
            kid,
        })
    }

    /// Whether the witnessed key is still published (a cached verification never outlives
    /// its key's presence in the set): the URL is still cached, its set is usable, and it
    /// is the same set, or, for a key with a `kid`, a later set that still has the `kid`.
    /// Without a `kid` nothing names the key itself, so only the same set will do. The
    /// common case (the same set) reads three atomics and no lock.
    /// `now_ms` is [`Now::mono_ms`](crate::clock::Now::mono_ms), the request's reading (at
    /// most a second behind: a set may be used up to a second past `max_stale`).
    pub(crate) fn still_holds(&self, witness: &KeyWitness, now_ms: u64) -> bool {
        let state = &witness.state;
        if state.evicted.load(Ordering::Acquire) {
            return false;
        }
        let set = state.set.load(Ordering::Acquire);
        let age = now_ms.saturating_sub(state.fetched_at_ms.load(Ordering::Acquire));
        if set == 0 || u128::from(age) > self.config.max_stale.as_millis() {
            return false;
        }
        state.mark_used(now_ms);
        if set == witness.set {
            return true;
        }
        match &witness.kid {
            Some(kid) => state.current().is_some_and(|f| f.keys.contains_kid(kid)),
            None => false,
        }
    }

    /// The key, fetching the set if needed (single-flight and within the URL's budget).
    pub(crate) async fn key(
        self: &Arc<Self>,
        url: &str,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<Arc<UsableKey>, KeyError> {
        let state = self
            .admit(url)
            .map_err(|retry_after| KeyError::Unavailable { retry_after })?;
        let generation = state.generation.load(Ordering::Acquire);
        if let Some(result) = self.cached_in(url, &state, kid, alg) {
            return result;
        }
        let _guard = state.fetch.lock().await;
        if state.generation.load(Ordering::Acquire) == generation {
            // Nobody fetched while we waited: it is up to us, if the budget allows.
            let now = Instant::now();
            match state.budget.take(now) {
                Ok(()) => self.fetch_into(url, &state).await,
                Err(retry_after) if !state.current().is_some_and(|f| self.usable(&f, now)) => {
                    return Err(KeyError::Unavailable { retry_after });
                }
                // Answered from the set we hold: an unknown kid is a 401.
                Err(_) => {}
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
                        retry_after: state.budget.retry_after(now),
                    })
                }
                Lookup::UnknownKid => Err(KeyError::UnknownKid),
            },
            None => Err(KeyError::Unavailable {
                retry_after: state.budget.retry_after(now),
            }),
        }
    }

    /// Fetches and installs a set. On failure the current set stays (stale-on-error).
    /// Call with the URL's fetch lock held.
    async fn fetch_into(&self, url: &str, state: &UrlState) {
        let started = Instant::now();
        let result = self
            .fetcher
            .fetch(url, self.config.max_body_bytes)
            .await
            .map_err(|e| e.to_string())
            .and_then(|doc| {
                let digest = crate::secret::sha256(&doc.body);
                KeySet::parse(&doc.body, url)
                    .map(|keys| (keys, doc.max_age, digest))
                    .map_err(|e| e.to_string())
            });
        let result_failed = result.is_err();
        match result {
            Ok((keys, max_age, digest)) => {
                let refresh_after = max_age.unwrap_or(self.config.refresh_interval).clamp(
                    self.config.min_refresh_interval,
                    self.config.max_refresh_interval,
                );
                tracing::debug!(target: "s2s_auth::jwks", %url, keys = keys.len(), skipped = keys.skipped, "fetched JWKS");
                let mut current = state
                    .current
                    .write()
                    .unwrap_or_else(PoisonError::into_inner);
                let set = match current.as_deref() {
                    Some(previous) if previous.digest == digest => previous.set,
                    _ => self.sets.fetch_add(1, Ordering::Relaxed) + 1,
                };
                let fetched_at = Instant::now();
                *current = Some(Arc::new(Fetched {
                    keys,
                    fetched_at,
                    refresh_after,
                    set,
                    digest,
                }));
                state
                    .fetched_at_ms
                    .store(crate::clock::millis(fetched_at), Ordering::Release);
                state.set.store(set, Ordering::Release);
            }
            Err(error) => {
                tracing::warn!(target: "s2s_auth::jwks", %url, %error, "JWKS fetch failed; keeping the keys we have");
            }
        }
        state.budget.record(started, result_failed);
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
                tokio::time::sleep(state.budget.spacing()).await;
            }
            state.refreshing.store(false, Ordering::Release);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EC: &str = r#"{"kty":"EC","crv":"P-256","kid":"K","alg":"ES256",
        "x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}"#;

    /// Serves a key set whose kids are set by the test.
    #[derive(Default)]
    struct Sets(std::sync::Mutex<Vec<&'static str>>);

    impl KeyFetcher for Sets {
        fn fetch<'a>(&'a self, _url: &'a str, _max_bytes: usize) -> FetchFuture<'a> {
            let kids = self.0.lock().unwrap().clone();
            let keys: Vec<String> = kids
                .iter()
                .map(|k| EC.replace("\"K\"", &format!("\"{k}\"")))
                .collect();
            let body = format!(r#"{{"keys":[{}]}}"#, keys.join(","));
            Box::pin(async move { Ok(FetchedDocument::new(body.into_bytes())) })
        }
    }

    async fn refetch(cache: &JwksCache, url: &str) {
        let state = cache.known(url).unwrap();
        cache.fetch_into(url, &state).await;
    }

    /// A witness holds while the set is the same or still has its kid, and fails once the
    /// kid leaves, the set is too stale, or the URL leaves the cache.
    #[tokio::test]
    async fn witnesses_follow_the_key_set() {
        let sets = Arc::new(Sets::default());
        *sets.0.lock().unwrap() = vec!["a"];
        let config = JwksCacheConfig {
            max_stale: Duration::from_secs(60),
            ..JwksCacheConfig::default()
        };
        let cache = Arc::new(JwksCache::new(config, sets.clone()));
        let url = "https://idp.example.com/jwks";
        let ms = crate::clock::millis;
        cache.key(url, Some("a"), Algorithm::ES256).await.unwrap();
        let now = ms(Instant::now());
        assert!(
            cache.witness(url, Some("b".into())).is_none(),
            "not in the set"
        );
        let a = cache.witness(url, Some("a".into())).unwrap();
        let kid_less = cache.witness(url, None).unwrap();
        assert!(cache.still_holds(&a, now));
        assert!(cache.still_holds(&kid_less, now));

        // A new set that keeps `a`: the kid still holds, the kid-less witness does not.
        *sets.0.lock().unwrap() = vec!["a", "b"];
        refetch(&cache, url).await;
        let now = ms(Instant::now());
        assert!(cache.still_holds(&a, now));
        assert!(!cache.still_holds(&kid_less, now));

        // The same document again keeps the set: a witness made now holds after it.
        let b = cache.witness(url, Some("b".into())).unwrap();
        refetch(&cache, url).await;
        assert!(cache.still_holds(&b, ms(Instant::now())));

        // `a` leaves the set.
        *sets.0.lock().unwrap() = vec!["b"];
        refetch(&cache, url).await;
        assert!(!cache.still_holds(&a, ms(Instant::now())));
        assert!(cache.still_holds(&b, ms(Instant::now())));

        // Too stale: the set was fetched longer ago than `max_stale`.
        assert!(!cache.still_holds(&b, ms(Instant::now() + Duration::from_secs(61))));

        // The URL leaves the cache.
        let state = cache.known(url).unwrap();
        state.evicted.store(true, Ordering::Release);
        cache.urls.write().unwrap().remove(url);
        assert!(!cache.still_holds(&b, ms(Instant::now())));
    }
}
