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

use std::cell::OnceCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};

use crate::clock::Now;
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
    /// Its SHA-256 and audit fingerprint, computed when first asked for.
    pub(crate) hashes: &'a TokenHashes<'a>,
    /// The request's clock reading.
    pub(crate) now: Now,
    /// For a JWT, its unverified header and claims (read once, by classification).
    pub(crate) jwt: Option<Unverified>,
}

/// A token's SHA-256 and audit fingerprint, each computed at most once and only when
/// something reads it: the digest by a static-token or service-account lookup, the
/// fingerprint by an audit event that is built or by a cache entry while allows are
/// audited. A JWT verified while nothing receives allows is never hashed in full (two
/// SHA-256 runs: about 16,000 instructions of an EdDSA verification, 3%, and 24,000 of an
/// RS256 one, 7%; issue 11).
pub(crate) struct TokenHashes<'a> {
    raw: &'a [u8],
    /// Whether an allow's audit event will be built
    /// ([`Auditor::observes_allow`](crate::audit::Auditor::observes_allow)): then every
    /// outcome needs the fingerprint.
    audited: bool,
    digest: OnceCell<[u8; 32]>,
    fingerprint: OnceCell<Fingerprint>,
}

impl<'a> TokenHashes<'a> {
    pub(crate) fn new(raw: &'a [u8], audited: bool) -> Self {
        Self {
            raw,
            audited,
            digest: OnceCell::new(),
            fingerprint: OnceCell::new(),
        }
    }

    /// The token's SHA-256.
    pub(crate) fn digest(&self) -> &[u8; 32] {
        self.digest.get_or_init(|| crate::secret::sha256(self.raw))
    }

    /// The token's audit fingerprint (from its digest, computed once).
    pub(crate) fn fingerprint(&self) -> Fingerprint {
        *self
            .fingerprint
            .get_or_init(|| Fingerprint::of_digest(self.digest()))
    }

    /// The fingerprint to keep with a cache entry: computed now while allows are audited
    /// (this request's event and every hit's need it), otherwise left to the first hit
    /// whose event is built.
    pub(crate) fn for_cache(&self) -> Option<Fingerprint> {
        self.audited.then(|| self.fingerprint())
    }

    /// Where the event's fingerprint comes from once the verifier is done: known if
    /// anything computed it; after a digest lookup (a static or service-account token),
    /// the digest, so that the one short hash more is made only if the event is built;
    /// else the token, hashed only if the event is built.
    pub(crate) fn into_fingerprint(self) -> TokenFingerprint<'a> {
        match (self.fingerprint.get(), self.digest.get()) {
            (Some(f), _) => TokenFingerprint::Known(*f),
            (None, Some(digest)) => TokenFingerprint::Digest(*digest),
            (None, None) => TokenFingerprint::Later(self.raw),
        }
    }
}

/// Where a request's token fingerprint comes from, for its audit event.
pub(crate) enum TokenFingerprint<'a> {
    /// No token, or one refused before it was checked (not visible ASCII).
    None,
    Known(Fingerprint),
    /// The token's SHA-256, taken by a lookup: the fingerprint is one short hash of it,
    /// made only if the event is built.
    Digest([u8; 32]),
    /// The token, hashed only if the event is built.
    Later(&'a [u8]),
}

impl TokenFingerprint<'_> {
    pub(crate) fn get(&self) -> Option<Fingerprint> {
        match self {
            TokenFingerprint::None => None,
            TokenFingerprint::Known(f) => Some(*f),
            TokenFingerprint::Digest(digest) => Some(Fingerprint::of_digest(digest)),
            TokenFingerprint::Later(raw) => Some(Fingerprint::of(raw)),
        }
    }

    /// Computed now, for a decision that outlives the request's headers.
    pub(crate) fn settle(&self) -> TokenFingerprint<'static> {
        match self.get() {
            Some(f) => TokenFingerprint::Known(f),
            None => TokenFingerprint::None,
        }
    }
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
    /// cache's own: set on insert while allows are audited, else by the first hit that is.
    fingerprint: OnceLock<Fingerprint>,
    /// The keys that verified it: none for legacy secrets, which do not rotate at run time;
    /// two for an on-behalf-of token (the acting service's and the identity provider's).
    keys: Vec<KeyWitness>,
}

impl Cached {
    /// The fingerprint of `token` (this entry's), kept from now on.
    #[cold]
    fn fingerprint_of(&self, token: &[u8]) -> Fingerprint {
        *self.fingerprint.get_or_init(|| Fingerprint::of(token))
    }
}

/// A key by its JWKS URL and `kid`.
pub(crate) type KeyRef = (String, Option<String>);

impl Shared {
    /// A principal verified before from the same token, if it is still valid at `now` and
    /// every key that verified it is still published (and not too stale at `now`'s
    /// [`mono_ms`](Now::mono_ms)); with the token's fingerprint when `audited` (an allow's
    /// event will be built) or when known anyway.
    #[inline]
    pub(crate) fn remembered(
        &self,
        token: &[u8],
        now: Now,
        audited: bool,
    ) -> Option<(Principal, Option<Fingerprint>)> {
        let verified = self.verified.as_ref()?;
        // Expired entries are never returned (and are the first the cache evicts).
        // Answered under the cache's lock: a hit clones the principal and nothing else.
        // `still_holds` reads atomics (a lock of the JWKS cache only when the set changed),
        // never the token cache, so the two locks are never taken the other way round.
        let mono_ms = now.mono_ms();
        verified.get_with(token, now.unix_secs(), |hit| {
            let key_present = hit.keys.iter().all(|k| self.cache.still_holds(k, mono_ms));
            // A key gone: `None` removes the entry.
            key_present.then(|| {
                let fingerprint = match hit.fingerprint.get() {
                    Some(f) => Some(*f),
                    // Hashed here only when allows became audited after the insert.
                    None if audited => Some(hit.fingerprint_of(token)),
                    None => None,
                };
                (hit.principal.clone(), fingerprint)
            })
        })
    }

    /// Remembers a verified JWT until its `exp` (if that is after `now`, Unix seconds).
    /// Called right after the signature check, so the set a kid-less key is taken from is
    /// the one the cache holds now. `fingerprint`: [`TokenHashes::for_cache`].
    pub(crate) fn remember(
        &self,
        token: &str,
        fingerprint: Option<Fingerprint>,
        p: &Principal,
        exp: u64,
        now: u64,
        keys: impl FnOnce() -> Vec<KeyRef>,
    ) {
        if let Some(verified) = &self.verified
            && exp > now
        {
            // Gathered only for an entry that is kept (with the cache off, nothing to build).
            let keys = keys();
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
                fingerprint: fingerprint.map_or_else(OnceLock::new, OnceLock::from),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwks::JwksCacheConfig;

    fn shared() -> Shared {
        Shared {
            cache: Arc::new(JwksCache::with_http(JwksCacheConfig::default()).unwrap()),
            verified: Some(TokenCache::new(16)),
            leeway: 0,
        }
    }

    const TOKEN: &str = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl";

    /// Computed lazily, but always the fingerprint of the token's bytes (the one
    /// [`SecretString::fingerprint`](crate::SecretString::fingerprint) shows).
    #[test]
    fn hashes_are_the_tokens_and_computed_once() {
        let hashes = TokenHashes::new(TOKEN.as_bytes(), false);
        assert!(hashes.digest.get().is_none() && hashes.fingerprint.get().is_none());
        assert_eq!(
            hashes.for_cache(),
            None,
            "not audited: not hashed for the cache"
        );
        assert!(hashes.digest.get().is_none(), "still nothing hashed");
        assert_eq!(hashes.fingerprint(), Fingerprint::of(TOKEN.as_bytes()));
        assert_eq!(hashes.digest(), &crate::secret::sha256(TOKEN.as_bytes()));
        let audited = TokenHashes::new(TOKEN.as_bytes(), true);
        assert_eq!(audited.for_cache(), Some(Fingerprint::of(TOKEN.as_bytes())));

        // Handed to the event: known once anything hashed the token, else left for later.
        let fingerprint = Fingerprint::of(TOKEN.as_bytes());
        let unhashed = TokenHashes::new(TOKEN.as_bytes(), false).into_fingerprint();
        assert!(matches!(unhashed, TokenFingerprint::Later(raw) if raw == TOKEN.as_bytes()));
        assert_eq!(unhashed.get(), Some(fingerprint));
        // After a digest lookup the short hash is still left for the event to make.
        let looked_up = TokenHashes::new(TOKEN.as_bytes(), false);
        looked_up.digest();
        let looked_up = looked_up.into_fingerprint();
        assert!(
            matches!(looked_up, TokenFingerprint::Digest(d) if d == crate::secret::sha256(TOKEN.as_bytes()))
        );
        assert_eq!(looked_up.get(), Some(fingerprint));
        assert!(matches!(looked_up.settle(), TokenFingerprint::Known(f) if f == fingerprint));
        assert!(
            matches!(audited.into_fingerprint(), TokenFingerprint::Known(f) if f == fingerprint)
        );
    }

    /// An entry remembered while nothing was audited gains its fingerprint on the first
    /// audited hit, and keeps it.
    #[test]
    fn a_cached_fingerprint_is_filled_in_by_the_first_audited_hit() {
        let shared = shared();
        let now = crate::clock::now();
        let p = Principal::none();
        let exp = now.unix_secs() + 60;
        shared.remember(TOKEN, None, &p, exp, now.unix_secs(), Vec::new);
        let (_, fingerprint) = shared.remembered(TOKEN.as_bytes(), now, false).unwrap();
        assert_eq!(fingerprint, None, "not audited: not hashed");
        let (hit, fingerprint) = shared.remembered(TOKEN.as_bytes(), now, true).unwrap();
        assert_eq!(hit, p);
        let expected = Fingerprint::of(TOKEN.as_bytes());
        assert_eq!(fingerprint, Some(expected));
        let (_, fingerprint) = shared.remembered(TOKEN.as_bytes(), now, false).unwrap();
        assert_eq!(fingerprint, Some(expected), "kept once known");
    }

    /// Remembered from an audited verification: the fingerprint is there from the start.
    #[test]
    fn an_audited_insert_keeps_the_fingerprint() {
        let shared = shared();
        let now = crate::clock::now();
        let hashes = TokenHashes::new(TOKEN.as_bytes(), true);
        let exp = now.unix_secs() + 60;
        let p = Principal::none();
        shared.remember(
            TOKEN,
            hashes.for_cache(),
            &p,
            exp,
            now.unix_secs(),
            Vec::new,
        );
        let (_, fingerprint) = shared.remembered(TOKEN.as_bytes(), now, false).unwrap();
        assert_eq!(fingerprint, Some(hashes.fingerprint()));
        // And an expired token is not remembered at all.
        shared.remember(
            "other.token.x",
            None,
            &p,
            now.unix_secs(),
            now.unix_secs(),
            Vec::new,
        );
        assert!(shared.remembered(b"other.token.x", now, true).is_none());
    }

    /// A decision that waits for a key takes the fingerprint with it.
    #[test]
    fn a_settled_fingerprint_is_computed_now() {
        let settled = TokenFingerprint::Later(TOKEN.as_bytes()).settle();
        assert!(
            matches!(settled, TokenFingerprint::Known(f) if f == Fingerprint::of(TOKEN.as_bytes()))
        );
        assert!(matches!(
            TokenFingerprint::None.settle(),
            TokenFingerprint::None
        ));
    }
}
