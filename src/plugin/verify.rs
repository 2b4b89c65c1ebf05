//! Verifying plugin-to-plugin tokens addressed to this service, and the on-behalf-of tokens
//! that travel in the same wire format: the caller's key comes from its published JWKS
//! (found by discovery); for the delegated form, the user's limited token is then verified
//! against the Backstage identity provider, so the receiver takes the identity provider's
//! word for the user, not the caller's.

use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::{Algorithm, Validation};
use serde_json::Value;

use super::{JWKS_PATH, PLUGIN_TYP, ServiceDiscovery};
use crate::error::{RequestError, VerifyError};
use crate::external_jwks::JwksVerifier;
use crate::jwks::UsableKey;
use crate::jwt::{Unverified, check_iat, exp_claim, expiry, inspect, str_claim};
use crate::principal::{CredentialKind, LimitedUserToken, Principal, PrincipalType};
use crate::secret::SecretString;
use crate::verifier::{KeyRef, Shared, Token, Verification, Verifier, now_or_later};

/// What a verified plugin token says.
pub(crate) enum PluginVerified {
    /// A finished principal: the calling service itself, or a user named by a trusted actor.
    Principal(Principal, u64),
    /// A user whose limited token (the `obo` claim) is still to be verified against the
    /// identity provider.
    OnBehalfOf {
        actor: String,
        exp: u64,
        limited_user_token: String,
    },
}

/// Verifies plugin tokens addressed to this service.
pub(crate) struct PluginVerifier {
    pub(crate) service_id: String,
    pub(crate) discovery: Arc<dyn ServiceDiscovery>,
    pub(crate) key_duration: Duration,
    /// Services whose word is taken for a user (on-behalf-of tokens in the `act` form).
    pub(crate) trusted_actors: Vec<String>,
    /// The one Backstage identity provider that verifies the users of delegated
    /// on-behalf-of tokens, or why there is none to use (a limited user token names no
    /// issuer, so with several it cannot say which).
    pub(crate) user_provider: Result<Arc<JwksVerifier>, &'static str>,
    validation: Validation,
    leeway: u64,
}

impl std::fmt::Debug for PluginVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginVerifier")
            .field("service_id", &self.service_id)
            .field("trusted_actors", &self.trusted_actors)
            .finish_non_exhaustive()
    }
}

impl PluginVerifier {
    pub(crate) fn new(
        service_id: String,
        discovery: Arc<dyn ServiceDiscovery>,
        key_duration: Duration,
        trusted_actors: Vec<String>,
        leeway: u64,
        user_provider: Result<Arc<JwksVerifier>, &'static str>,
    ) -> Self {
        let mut validation = Validation::new(Algorithm::ES256);
        validation.leeway = leeway;
        validation.validate_nbf = true;
        validation.set_audience(&[service_id.as_str()]);
        validation.set_required_spec_claims(&["exp", "sub", "aud"]);
        Self {
            service_id,
            discovery,
            key_duration,
            trusted_actors,
            user_provider,
            validation,
            leeway,
        }
    }

    /// The acting service of an `act` claim, if it is trusted to act for users.
    fn trusted_actor<'a>(&self, act: &'a Value) -> Result<&'a str, VerifyError> {
        let actor = crate::obo::actor(act)?;
        if !self.trusted_actors.iter().any(|t| t == actor) {
            return Err(VerifyError::UntrustedActor);
        }
        Ok(actor)
    }

    /// The caller's JWKS URL, from checks that need no key: `typ`, `alg`, and the unverified
    /// calling service (`sub`, or `act.sub` for the actor form; a service id, and a trusted
    /// actor, checked before discovery sees it).
    pub(crate) fn jwks_url(&self, u: &Unverified) -> Result<String, VerifyError> {
        if u.typ.as_deref() != Some(PLUGIN_TYP) {
            return Err(VerifyError::WrongType);
        }
        if u.alg != Algorithm::ES256 {
            return Err(VerifyError::AlgorithmNotAllowed);
        }
        let act = u.act();
        let caller = match &act {
            Some(act) => self.trusted_actor(act)?,
            None => {
                let sub = u.sub().ok_or(VerifyError::MissingClaim("sub"))?;
                if !crate::service_id::is_valid_service_id(sub) {
                    return Err(VerifyError::WrongSubject);
                }
                sub
            }
        };
        let base = self
            .discovery
            .base_url(caller)
            .ok_or(VerifyError::UnknownCaller)?;
        // Whatever the discovery (ours, or one the user wrote), a caller's keys are fetched over
        // https or from loopback only: over plain http anyone on the path could swap them.
        crate::source_url::check(&base, false).map_err(|_| VerifyError::InsecureKeySource)?;
        Ok(format!("{}{JWKS_PATH}", base.trim_end_matches('/')))
    }

    /// Verifies with the caller's key.
    pub(crate) fn finish(
        &self,
        token: &str,
        u: &Unverified,
        key: &UsableKey,
    ) -> Result<PluginVerified, VerifyError> {
        let claims = crate::jwt::verify(token, u, &key.key, &self.validation)?;
        // `iat` in the future first (a huge `iat` is that, whatever its type), then its form.
        check_iat(claims, self.leeway)?;
        let iat = match claims.get("iat").as_deref() {
            None => return Err(VerifyError::MissingClaim("iat")),
            Some(iat) => iat
                .as_u64()
                .ok_or(VerifyError::Malformed("iat is not a whole number"))?,
        };
        // Before the lifetime check, so that an `exp` past any real date is named as such.
        let (exp, expiry) = exp_claim(claims)?;
        // A token meant to outlive the key that signed it is not one this scheme mints.
        if exp.saturating_sub(iat) > self.key_duration.as_secs().saturating_add(self.leeway) {
            return Err(VerifyError::LifetimeTooLong);
        }
        let sub = str_claim(claims, "sub")?;
        let principal = match (claims.get("obo").as_deref(), claims.get("act").as_deref()) {
            (Some(_), Some(_)) => {
                return Err(VerifyError::Malformed("token carries both obo and act"));
            }
            (None, Some(act)) => {
                // The actor form: the user is the subject, on the (trusted) actor's word.
                let actor = self.trusted_actor(act)?;
                if crate::external_jwks::entity_ref(sub)? != sub {
                    return Err(VerifyError::WrongSubject);
                }
                Principal::new(PrincipalType::User, sub, CredentialKind::Obo)
                    .with_actor(format!("plugin:{actor}"))
            }
            (Some(obo), None) => {
                if !crate::service_id::is_valid_service_id(sub) {
                    return Err(VerifyError::WrongSubject);
                }
                let limited = obo
                    .as_str()
                    .ok_or(VerifyError::Malformed("obo is not a string"))?;
                return Ok(PluginVerified::OnBehalfOf {
                    actor: sub.to_owned(),
                    exp,
                    limited_user_token: limited.to_owned(),
                });
            }
            (None, None) => {
                if !crate::service_id::is_valid_service_id(sub) {
                    return Err(VerifyError::WrongSubject);
                }
                Principal::new(
                    PrincipalType::Service,
                    format!("plugin:{sub}"),
                    CredentialKind::Plugin,
                )
            }
        };
        Ok(PluginVerified::Principal(
            principal.with_expiry(expiry),
            exp,
        ))
    }
}

impl PluginVerifier {
    /// The user of an on-behalf-of token: its limited user token, verified against the one
    /// Backstage identity provider. `exp` is the plugin token's, which may not outlive it.
    async fn verify_limited(
        &self,
        shared: &Shared,
        actor: &str,
        exp: u64,
        limited: String,
        keys: &mut Vec<KeyRef>,
    ) -> Result<Principal, RequestError> {
        let wrap = |e: VerifyError| RequestError::from(VerifyError::OnBehalfOfUser(Box::new(e)));
        let provider = self
            .user_provider
            .as_ref()
            .map_err(|why| VerifyError::NoUserProvider(why))?;
        let u = inspect(&limited).map_err(wrap)?;
        provider.precheck_limited(&u).map_err(wrap)?;
        let url = provider.url(&shared.cache).await?.to_owned();
        let key = match shared.key(&url, &u).await {
            Err(RequestError::InvalidToken(e)) => return Err(wrap(e)),
            other => other?,
        };
        let (subject, user_exp, refs) = provider
            .finish_limited(&limited, &u, &key, shared.leeway)
            .map_err(wrap)?;
        if exp > user_exp {
            return Err(VerifyError::OutlivesUserToken.into());
        }
        let expiry = expiry(exp)?;
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
}

impl Verifier for PluginVerifier {
    fn verify(self: &Arc<Self>, token: Token<'_>, shared: &Arc<Shared>) -> Verification {
        let Some(u) = token.jwt else {
            return Verification::done(Err(VerifyError::Malformed("not a JWT")));
        };
        // Checked before discovery or any network call: typ, alg, and the calling service.
        let url = match self.jwks_url(&u) {
            Ok(url) => url,
            Err(e) => return Verification::done(Err(e)),
        };
        let this = self.clone();
        let shared = shared.clone();
        let raw = token.raw.to_owned();
        let fingerprint = token.hashes.for_cache();
        let now = token.now.unix_secs();
        now_or_later(async move {
            let key = shared.key(&url, &u).await?;
            let mut keys = vec![(url, u.kid.clone())];
            let (principal, exp) = match this.finish(&raw, &u, &key)? {
                PluginVerified::Principal(p, exp) => (p, exp),
                PluginVerified::OnBehalfOf {
                    actor,
                    exp,
                    limited_user_token,
                } => {
                    let p = this
                        .verify_limited(&shared, &actor, exp, limited_user_token, &mut keys)
                        .await?;
                    (p, exp)
                }
            };
            shared.remember(&raw, fingerprint, &principal, exp, now, || keys);
            Ok(principal)
        })
    }
}

/// The one Backstage identity provider among `jwks`, for [`PluginVerifier::user_provider`].
pub(crate) fn backstage_provider(
    jwks: &[Arc<JwksVerifier>],
) -> Result<Arc<JwksVerifier>, &'static str> {
    let mut providers = jwks.iter().filter(|v| v.is_backstage_user());
    match (providers.next(), providers.next()) {
        (Some(one), None) => Ok(one.clone()),
        (None, _) => Err("no Backstage identity provider is configured to verify its user"),
        (Some(_), Some(_)) => Err(
            "several Backstage identity providers are configured and a limited user token \
             does not name its issuer",
        ),
    }
}
