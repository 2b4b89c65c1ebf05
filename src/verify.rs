//! Verification: sends each token to exactly one verifier and returns the principal.
//!
//! Choosing the verifier (see also the `classify` module):
//!
//! 1. an opaque token goes to the static-token table;
//! 2. a JWT's unverified header and claims are read (refusing `alg: none` and key-carrying
//!    headers); then, in order:
//!    - `typ: vnd.backstage.user` goes to the Backstage user providers with that `iss`;
//!    - a token with an `iss` goes to the one verifier configured for that issuer (and, if
//!      several share the issuer, that audience). An `iss` nobody configured is refused at
//!      once, with no network call, unless an issuer-less entry was explicitly allowed;
//!    - an HS256 token without `iss` goes to the legacy secrets.
//!
//! A verifier either returns a principal or the check that failed: nothing is retried with
//! another verifier.
//!
//! The fast path needs no I/O: a token verified before is answered from a bounded cache
//! (until its `exp`, and only while its key is still in the JWKS), and otherwise the key is
//! usually cached. Only a missing key makes verification asynchronous.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::Expiry;
use time::OffsetDateTime;

use crate::classify::{TokenClass, classify};
use crate::error::{RequestError, VerifyError};
use crate::external_jwks::{BACKSTAGE_USER_TYP, JwksVerifier, key_error};
use crate::jwks::JwksCache;
use crate::jwt::{Unverified, inspect};
use crate::legacy::LegacyVerifier;
use crate::plugin::{PLUGIN_TYP, PluginVerified, PluginVerifier};
use crate::principal::LimitedUserToken;
use crate::principal::{CredentialKind, Principal, PrincipalType};
use crate::secret::SecretString;
use crate::static_token::StaticTokens;

/// A verification still waiting for a key.
pub(crate) type Pending = Pin<Box<dyn Future<Output = Result<Principal, RequestError>> + Send>>;

/// The result of starting a verification.
pub(crate) enum Verification {
    Done(Result<Principal, RequestError>),
    Pending(Pending),
}

/// Every verifier of a service.
pub(crate) struct Verifiers {
    pub(crate) static_tokens: StaticTokens,
    pub(crate) jwks: Vec<JwksVerifier>,
    pub(crate) legacy: LegacyVerifier,
    pub(crate) plugin: Option<PluginVerifier>,
    pub(crate) cache: Arc<JwksCache>,
    /// `None` when the cache is turned off (capacity 0).
    pub(crate) verified: Option<moka::sync::Cache<[u8; 32], Arc<Cached>>>,
    pub(crate) leeway: u64,
}

/// A verified token.
pub(crate) struct Cached {
    principal: Principal,
    exp: u64,
    /// The keys that verified it, as (JWKS URL, kid): none for legacy secrets, which do not
    /// rotate at run time; two for an on-behalf-of token (the acting service's and the
    /// identity provider's).
    keys: Vec<KeyRef>,
}

/// A key by its JWKS URL and `kid`.
type KeyRef = (String, Option<String>);

/// Entries live until the token's `exp`.
pub(crate) struct UntilExp;

impl Expiry<[u8; 32], Arc<Cached>> for UntilExp {
    fn expire_after_create(
        &self,
        _key: &[u8; 32],
        value: &Arc<Cached>,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(Duration::from_secs(value.exp.saturating_sub(now_unix())))
    }
}

fn now_unix() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

/// Which JWT verifier a token goes to.
enum Route {
    Jwks(usize),
    Legacy,
    Plugin,
}

impl Verifiers {
    pub(crate) fn has_jwt_verifiers(&self) -> bool {
        !self.jwks.is_empty() || !self.legacy.is_empty() || self.plugin.is_some()
    }

    /// Starts verifying a token; `digest` is its SHA-256.
    pub(crate) fn verify(
        self: &Arc<Self>,
        token: &str,
        digest: &[u8; 32],
        now: OffsetDateTime,
    ) -> Verification {
        match classify(token) {
            TokenClass::Opaque => {
                Verification::Done(self.static_tokens.verify(digest, now).map_err(Into::into))
            }
            TokenClass::Jwt => self.verify_jwt(token, *digest),
        }
    }

    fn verify_jwt(self: &Arc<Self>, token: &str, digest: [u8; 32]) -> Verification {
        use Verification::Done;
        if !self.has_jwt_verifiers() {
            return Done(Err(VerifyError::NoJwtVerifier.into()));
        }
        if let Some(verified) = &self.verified
            && let Some(hit) = verified.get(&digest)
        {
            let key_present = hit
                .keys
                .iter()
                .all(|(url, kid)| self.cache.still_has(url, kid.as_deref()));
            if hit.exp > now_unix() && key_present {
                return Done(Ok(hit.principal.clone()));
            }
            verified.invalidate(&digest);
        }
        let u = match inspect(token) {
            Ok(u) => u,
            Err(e) => return Done(Err(e.into())),
        };
        let route = match self.route(&u) {
            Ok(r) => r,
            Err(e) => return Done(Err(e.into())),
        };
        let index = match route {
            Route::Legacy => {
                let result = self.legacy.verify(token, &u, self.leeway).map(|(p, exp)| {
                    self.remember(digest, &p, exp, Vec::new());
                    p
                });
                return Done(result.map_err(Into::into));
            }
            Route::Plugin => return self.verify_plugin(token, u, digest),
            Route::Jwks(i) => i,
        };
        let verifier = &self.jwks[index];
        if let Err(e) = verifier.precheck(&u) {
            return Done(Err(e.into()));
        }
        if let Some(url) = verifier.url_now()
            && let Some(found) = self.cache.cached_key(url, u.kid.as_deref(), u.alg)
        {
            return Done(
                found
                    .map_err(key_error)
                    .and_then(|key| self.finish(token, &u, index, url, &key, digest)),
            );
        }
        // The key has to be fetched (or discovery has to run): the only asynchronous path.
        let this = self.clone();
        let token = token.to_owned();
        Verification::Pending(Box::pin(async move {
            let verifier = &this.jwks[index];
            let url = verifier.url(&this.cache).await?.to_owned();
            let key = this
                .cache
                .key(&url, u.kid.as_deref(), u.alg)
                .await
                .map_err(key_error)?;
            this.finish(&token, &u, index, &url, &key, digest)
        }))
    }

    /// A plugin token: the caller's JWKS by discovery, then the same cache as other JWTs; for
    /// an on-behalf-of token, then the user's limited token against the identity provider.
    fn verify_plugin(
        self: &Arc<Self>,
        token: &str,
        u: Unverified,
        digest: [u8; 32],
    ) -> Verification {
        let Some(plugin) = &self.plugin else {
            return Verification::Done(Err(VerifyError::Unsupported("plugin-to-plugin").into()));
        };
        // Checked before discovery or any network call: typ, alg, and the calling service.
        let url = match plugin.jwks_url(&u) {
            Ok(url) => url,
            Err(e) => return Verification::Done(Err(e.into())),
        };
        let this = self.clone();
        let token = token.to_owned();
        now_or_later(async move {
            let plugin = this
                .plugin
                .as_ref()
                .ok_or(VerifyError::Unsupported("plugin-to-plugin"))?;
            let key = this.key(&url, &u).await?;
            let mut keys = vec![(url, u.kid)];
            let (principal, exp) = match plugin.finish(&token, &key)? {
                PluginVerified::Principal(p, exp) => (p, exp),
                PluginVerified::OnBehalfOf {
                    actor,
                    exp,
                    limited_user_token,
                } => {
                    let p = this
                        .verify_limited(&actor, exp, limited_user_token, &mut keys)
                        .await?;
                    (p, exp)
                }
            };
            this.remember(digest, &principal, exp, keys);
            Ok(principal)
        })
    }

    /// The key for `u` from the JWKS at `url` (from the cache without I/O when it is there:
    /// `JwksCache::key` looks there first).
    async fn key(
        self: &Arc<Self>,
        url: &str,
        u: &Unverified,
    ) -> Result<Arc<crate::jwks::UsableKey>, RequestError> {
        self.cache
            .key(url, u.kid.as_deref(), u.alg)
            .await
            .map_err(key_error)
    }

    /// The user of an on-behalf-of token: its limited user token, verified against the one
    /// Backstage identity provider. `exp` is the plugin token's, which may not outlive it.
    async fn verify_limited(
        self: &Arc<Self>,
        actor: &str,
        exp: u64,
        limited: String,
        keys: &mut Vec<KeyRef>,
    ) -> Result<Principal, RequestError> {
        let wrap = |e: VerifyError| RequestError::from(VerifyError::OnBehalfOfUser(Box::new(e)));
        let mut providers = self.jwks.iter().filter(|v| v.is_backstage_user());
        let provider = match (providers.next(), providers.next()) {
            (Some(one), None) => one,
            (None, _) => {
                return Err(VerifyError::NoUserProvider(
                    "no Backstage identity provider is configured to verify its user",
                )
                .into());
            }
            (Some(_), Some(_)) => {
                return Err(VerifyError::NoUserProvider(
                    "several Backstage identity providers are configured and a limited user \
                     token does not name its issuer",
                )
                .into());
            }
        };
        let u = inspect(&limited).map_err(wrap)?;
        provider.precheck_limited(&u).map_err(wrap)?;
        let url = provider.url(&self.cache).await?.to_owned();
        let key = match self.key(&url, &u).await {
            Err(RequestError::InvalidToken(e)) => return Err(wrap(e)),
            other => other?,
        };
        let (subject, user_exp, refs) = provider
            .finish_limited(&limited, &u, &key, self.leeway)
            .map_err(wrap)?;
        if exp > user_exp {
            return Err(VerifyError::OutlivesUserToken.into());
        }
        let expiry = OffsetDateTime::from_unix_timestamp(exp as i64)
            .map_err(|_| VerifyError::Malformed("exp is out of range"))?;
        keys.push((url, u.kid));
        Ok(
            Principal::new(PrincipalType::User, subject, CredentialKind::Obo)
                .with_actor(format!("plugin:{actor}"))
                .with_expiry(expiry)
                .with_ownership_entity_refs(refs)
                .with_limited_user_token(Some(Arc::new(LimitedUserToken {
                    token: SecretString::new(limited),
                    exp: user_exp,
                }))),
        )
    }

    fn finish(
        &self,
        token: &str,
        u: &Unverified,
        index: usize,
        url: &str,
        key: &crate::jwks::UsableKey,
        digest: [u8; 32],
    ) -> Result<Principal, RequestError> {
        let (principal, exp) = self.jwks[index].finish(token, u, key, self.leeway)?;
        self.remember(
            digest,
            &principal,
            exp,
            vec![(url.to_owned(), u.kid.clone())],
        );
        Ok(principal)
    }

    fn remember(&self, digest: [u8; 32], p: &Principal, exp: u64, keys: Vec<KeyRef>) {
        if let Some(verified) = &self.verified
            && exp > now_unix()
        {
            verified.insert(
                digest,
                Arc::new(Cached {
                    principal: p.clone(),
                    exp,
                    keys,
                }),
            );
        }
    }

    /// Chooses the one verifier for a JWT, from its unverified header and claims.
    fn route(&self, u: &Unverified) -> Result<Route, VerifyError> {
        match u.typ.as_deref() {
            Some(PLUGIN_TYP) if self.plugin.is_some() => return Ok(Route::Plugin),
            Some(PLUGIN_TYP) => return Err(VerifyError::Unsupported("plugin-to-plugin")),
            // A limited user token opens no route on its own: it only vouches for the user
            // inside an on-behalf-of token.
            Some(crate::obo::LIMITED_USER_TYP) => return Err(VerifyError::WrongType),
            _ => {}
        }
        let backstage_user = u.typ.as_deref() == Some(BACKSTAGE_USER_TYP);
        let Some(iss) = u.iss.as_deref() else {
            if u.alg == jsonwebtoken::Algorithm::HS256 && !self.legacy.is_empty() {
                return Ok(Route::Legacy);
            }
            // Only an entry that explicitly gave up the issuer check takes issuer-less tokens.
            if let Some(route) = self.pick(|v| v.issuers.is_none(), &u.aud) {
                return route;
            }
            // Issuer-less tokens are otherwise legacy-shaped: the legacy verifier names the
            // check they fail (another `alg` than HS256).
            if !self.legacy.is_empty() {
                return Ok(Route::Legacy);
            }
            // Plugin tokens are the other issuer-less kind: where they are verified, an
            // issuer-less token that is none of the above fails on its `typ`.
            if self.plugin.is_some() {
                return Err(VerifyError::WrongType);
            }
            return Err(VerifyError::MissingClaim("iss"));
        };
        let by_issuer =
            |v: &JwksVerifier| v.has_issuer(iss) && (!backstage_user || v.is_backstage_user());
        if let Some(route) = self.pick(by_issuer, &u.aud) {
            return route;
        }
        if backstage_user && self.jwks.iter().any(|v| v.has_issuer(iss)) {
            // A Backstage user token from an issuer configured for other kinds of tokens.
            return Err(VerifyError::WrongType);
        }
        self.pick(|v| v.issuers.is_none() && !backstage_user, &u.aud)
            .unwrap_or(Err(VerifyError::UnknownIssuer))
    }

    /// The one verifier passing `filter`, narrowed by audience when several do.
    fn pick(
        &self,
        filter: impl Fn(&JwksVerifier) -> bool,
        aud: &[String],
    ) -> Option<Result<Route, VerifyError>> {
        let candidates: Vec<usize> = (0..self.jwks.len())
            .filter(|&i| filter(&self.jwks[i]))
            .collect();
        match candidates.as_slice() {
            [] => None,
            [one] => Some(Ok(Route::Jwks(*one))),
            many => {
                let narrowed: Vec<usize> = many
                    .iter()
                    .copied()
                    .filter(|&i| self.jwks[i].accepts_any_audience(aud))
                    .collect();
                Some(match narrowed.as_slice() {
                    [one] => Ok(Route::Jwks(*one)),
                    // No audience matches any of them: the first will say "wrong audience".
                    [] => Ok(Route::Jwks(many[0])),
                    _ => Err(VerifyError::Ambiguous),
                })
            }
        }
    }
}

/// Runs `work` at once when it needs no I/O (every key cached: the usual case), else hands it
/// to the layer to await. Polled here only inside a tokio runtime, which a key fetch needs.
fn now_or_later(
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
