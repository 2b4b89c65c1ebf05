//! The contract every verifier meets, and what they share.
//!
//! Classification (the `classify` module) picks exactly one verifier for a token; that
//! verifier either returns a [`Principal`] or the check that failed. Each verifier lives in
//! its own module and implements [`Verifier`]:
//!
//! | verifier | module |
//! |---|---|
//! | static tokens | `static_token` |
//! | JWTs checked against a JWKS: external callers and users | `external_jwks` |
//! | legacy HS256 tokens | `legacy` |
//! | plugin-to-plugin and on-behalf-of tokens | `plugin::verify` |
//! | custom external types registered by the user | `custom` |
//!
//! The fast path needs no I/O: a JWT verified before is answered from a bounded cache (until
//! its `exp`, and only while its key is still in the JWKS; for a token without `kid`, only
//! while the JWKS is still the set it was checked against), and otherwise the key is usually
//! cached. Only a missing key makes a verification asynchronous ([`Verification::Pending`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use time::OffsetDateTime;

use crate::error::RequestError;
use crate::jwks::{JwksCache, KeyWitness, UsableKey};
use crate::jwt::Unverified;
use crate::principal::Principal;
use crate::secret::Fingerprint;
use crate::token_cache::TokenCache;

/// A verification still waiting for a key.
pub(crate) type Pending = Pin<Box<dyn Future<Output = Result<Principal, RequestError>> + Send>>;

/// The result of starting a verification.
pub(crate) enum Verification {
    Done(Result<Principal, RequestError>),
    Pending(Pending),
}

impl Verification {
    /// A result known now.
    pub(crate) fn done<E: Into<RequestError>>(result: Result<Principal, E>) -> Self {
        Verification::Done(result.map_err(Into::into))
    }
}

/// A token on its way to its one verifier.
pub(crate) struct Token<'a> {
    /// The token as sent (already checked: visible ASCII, at most 8 KiB).
    pub(crate) raw: &'a str,
    /// Its SHA-256: the static-token lookup key.
    pub(crate) digest: [u8; 32],
    /// Its audit fingerprint (from the digest), kept with a cached verification.
    pub(crate) fingerprint: Fingerprint,
    /// When the request arrived.
    pub(crate) now: OffsetDateTime,
    /// For a JWT, its unverified header and claims (read once, by classification).
    pub(crate) jwt: Option<Unverified>,
}

/// A verifier: one per kind of credential.
pub(crate) trait Verifier: Send + Sync + 'static {
    /// Verifies a token that classification sent here.
    fn verify(self: &Arc<Self>, token: Token<'_>, shared: &Arc<Shared>) -> Verification;
}

/// What every verifier shares: the JWKS cache, the verified-token cache and the leeway.
pub(crate) struct Shared {
    pub(crate) cache: Arc<JwksCache>,
    /// `None` when the cache is turned off (capacity 0).
    pub(crate) verified: Option<TokenCache<Arc<Cached>>>,
    pub(crate) leeway: u64,
}

/// A verified token.
pub(crate) struct Cached {
    principal: Principal,
    /// The token's audit fingerprint, so that a hit needs no hash of the token but the
    /// cache's own.
    fingerprint: Fingerprint,
    /// The keys that verified it: none for legacy secrets, which do not rotate at run time;
    /// two for an on-behalf-of token (the acting service's and the identity provider's).
    keys: Vec<KeyWitness>,
}

/// A key by its JWKS URL and `kid`.
pub(crate) type KeyRef = (String, Option<String>);

pub(crate) fn now_unix() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

impl Shared {
    /// A principal verified before from the same token (and the token's fingerprint), if it
    /// is still valid at `now` (seconds since the Unix epoch) and every key that verified it
    /// is still published (and not too stale at `mono_ms`, the same reading of the clock:
    /// [`Now::mono_ms`](crate::clock::Now::mono_ms)).
    pub(crate) fn remembered(
        &self,
        token: &[u8],
        now: u64,
        mono_ms: u64,
    ) -> Option<(Principal, Fingerprint)> {
        let verified = self.verified.as_ref()?;
        // Expired entries are never returned (and are the first the cache evicts).
        // Answered under the cache's lock: a hit clones the principal and nothing else.
        // `still_holds` reads atomics (a lock of the JWKS cache only when the set changed),
        // never the token cache, so the two locks are never taken the other way round.
        verified.get_with(token, now, |hit| {
            let key_present = hit.keys.iter().all(|k| self.cache.still_holds(k, mono_ms));
            // A key gone: `None` removes the entry.
            key_present.then(|| (hit.principal.clone(), hit.fingerprint))
        })
    }

    /// Remembers a verified JWT until its `exp`. Called right after the signature check,
    /// so the set a kid-less key is taken from is the one the cache holds now.
    pub(crate) fn remember(
        &self,
        token: &str,
        fingerprint: Fingerprint,
        p: &Principal,
        exp: u64,
        keys: Vec<KeyRef>,
    ) {
        let now = now_unix();
        if let Some(verified) = &self.verified
            && exp > now
        {
            let mut cached = Vec::with_capacity(keys.len());
            for (url, kid) in keys {
                match self.cache.witness(&url, kid) {
                    Some(witness) => cached.push(witness),
                    // The key or its set went (rotated, evicted, too stale) meanwhile.
                    None => return,
                }
            }
            let keys = cached;
            let cached = Arc::new(Cached {
                principal: p.clone(),
                fingerprint,
                keys,
            });
            verified.insert(token.as_bytes(), cached, exp, now);
        }
    }

    /// The key for `u` from the JWKS at `url` (from the cache without I/O when it is there).
    pub(crate) async fn key(
        &self,
        url: &str,
        u: &Unverified,
    ) -> Result<Arc<UsableKey>, RequestError> {
        self.cache
            .key(url, u.kid.as_deref(), u.alg)
            .await
            .map_err(crate::jwks::key_error)
    }
}

/// Runs `work` at once when it needs no I/O (every key cached: the usual case), else hands it
/// to the layer to await. Polled here only inside a tokio runtime, which a key fetch needs.
pub(crate) fn now_or_later(
    work: impl Future<Output = Result<Principal, RequestError>> + Send + 'static,
) -> Verification {
    let mut work: Pending = Box::pin(work);
    if tokio::runtime::Handle::try_current().is_ok() {
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        if let std::task::Poll::Ready(result) = work.as_mut().poll(&mut cx) {
            return Verification::Done(result);
        }
    }
    Verification::Pending(work)
}
