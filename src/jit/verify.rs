//! The verifier of just-in-time on-behalf-of tokens: classified by their `typ` to this
//! verifier alone.

use std::sync::{Arc, RwLock};

use jsonwebtoken::{Algorithm, Validation};
use serde_json::Value;

use super::issue::Jit;
use super::{JIT_TYP, SELF_ISSUED};
use crate::error::{RequestError, VerifyError};
use crate::jwks::KeySet;
use crate::jwt::{Unverified, check_iat, exp_claim, str_claim};
use crate::plugin::ServiceDiscovery;
use crate::principal::{CredentialKind, Principal, PrincipalType};
use crate::revocation::Listed;
use crate::verifier::{Shared, Token, Verification, Verifier, now_or_later};

/// Verifies the tokens this service issued (and, with shared HS512 keys, those other
/// services of the deployment issued for it).
pub(crate) struct JitVerifier {
    jit: Arc<Jit>,
    validation: Validation,
    leeway: u64,
    /// This service's published ES256 keys, parsed, and the JWKs they were parsed from.
    own: RwLock<Option<(Vec<Value>, Arc<KeySet>)>>,
    /// Where the trusted issuers' published keys are.
    discovery: Option<Arc<dyn ServiceDiscovery>>,
}

impl std::fmt::Debug for JitVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JitVerifier")
            .field("jit", &self.jit)
            .finish_non_exhaustive()
    }
}

impl JitVerifier {
    pub(crate) fn new(
        jit: Arc<Jit>,
        leeway: u64,
        discovery: Option<Arc<dyn ServiceDiscovery>>,
    ) -> Self {
        let mut validation = Validation::new(jit.algorithm());
        validation.leeway = leeway;
        validation.validate_nbf = true;
        validation.set_issuer(&[jit.config.deployment_id.as_str()]);
        validation.set_audience(&[jit.service_id.as_str(), SELF_ISSUED]);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        Self {
            jit,
            validation,
            leeway,
            own: RwLock::new(None),
            discovery,
        }
    }

    /// Checks that need no key: `typ`, `alg`, a `kid`.
    fn precheck(&self, u: &Unverified) -> Result<(), VerifyError> {
        if u.typ.as_deref() != Some(JIT_TYP) {
            return Err(VerifyError::WrongType);
        }
        if u.alg != self.jit.algorithm() {
            return Err(VerifyError::AlgorithmNotAllowed);
        }
        if u.kid.is_none() {
            return Err(VerifyError::KidRequired);
        }
        Ok(())
    }

    /// Where the key of an ES256 token comes from, by its unverified `azp`: `None` for this
    /// service's own keys; a trusted issuer's JWKS URL (found by discovery, https or
    /// loopback) for another's; refused, before any fetch, for any other issuer.
    fn peer_jwks(&self, u: &Unverified) -> Result<Option<String>, VerifyError> {
        let azp = u.claim_str("azp").ok_or(VerifyError::MissingClaim("azp"))?;
        if azp == self.jit.service_id {
            return Ok(None);
        }
        if !self.jit.config.trusted_issuers.iter().any(|t| t == azp) {
            return Err(VerifyError::UnknownCaller);
        }
        let base = self
            .discovery
            .as_ref()
            .and_then(|d| d.base_url(azp))
            .ok_or(VerifyError::UnknownCaller)?;
        crate::source_url::check(&base, false).map_err(|_| VerifyError::InsecureKeySource)?;
        Ok(Some(format!(
            "{}{}",
            base.trim_end_matches('/'),
            crate::plugin::JWKS_PATH
        )))
    }

    /// This service's published keys as a key set, parsed again only when they change.
    async fn own_keys(&self) -> Result<Arc<KeySet>, RequestError> {
        let Some(keys) = &self.jit.es256 else {
            return Err(VerifyError::UnknownKey.into());
        };
        let published = keys.published().await.map_err(|e| {
            tracing::warn!(target: "s2s_auth::jit", error = %e, "cannot read this service's published keys");
            RequestError::KeysUnavailable {
                retry_after_secs: 5,
            }
        })?;
        if let Some((jwks, set)) = &*self.own.read().unwrap_or_else(|e| e.into_inner())
            && *jwks == published
        {
            return Ok(set.clone());
        }
        let body = serde_json::to_vec(&serde_json::json!({ "keys": published }))
            .map_err(|_| VerifyError::UnknownKey)?;
        let set = Arc::new(KeySet::parse(&body, "published").map_err(|_| VerifyError::UnknownKey)?);
        *self.own.write().unwrap_or_else(|e| e.into_inner()) = Some((published, set.clone()));
        Ok(set)
    }

    /// Verifies with `key` and makes the principal.
    fn finish(
        &self,
        token: &str,
        u: &Unverified,
        key: &crate::jws::VerifyingKey,
    ) -> Result<(Principal, String), VerifyError> {
        let claims = crate::jwt::verify(token, u, key, &self.validation)?;
        if !claims.contains_key("iat") {
            return Err(VerifyError::MissingClaim("iat"));
        }
        check_iat(claims, self.leeway)?;
        let iat = claims
            .u64("iat")
            .ok_or(VerifyError::Malformed("iat is not a whole number"))?;
        let (exp, expiry) = exp_claim(claims)?;
        if exp.saturating_sub(iat) > self.jit.config.max_duration.as_secs() + self.leeway {
            return Err(VerifyError::LifetimeTooLong);
        }
        // For this service by name, or `self-issued` by this service: a `self-issued` token
        // is for its issuer alone, whatever else its `aud` lists.
        let azp = str_claim(claims, "azp")?;
        let named = u.aud().any(|a| a == self.jit.service_id);
        let own = azp == self.jit.service_id && u.aud().any(|a| a == SELF_ISSUED);
        if !named && !own {
            return Err(VerifyError::WrongAudience);
        }
        let jti = str_claim(claims, "jti")?;
        if !super::is_valid_jti(jti) {
            return Err(VerifyError::Malformed("jti is not a clean id"));
        }
        let sub = str_claim(claims, "sub")?;
        if crate::external_jwks::entity_ref(sub)? != sub || !sub.starts_with("user:") {
            return Err(VerifyError::WrongSubject);
        }
        let roles = match (
            claims.get("roles").as_deref(),
            claims.get("encrypted_roles").as_deref(),
        ) {
            (Some(_), Some(_)) => {
                return Err(VerifyError::Malformed(
                    "token carries roles and encrypted_roles",
                ));
            }
            (None, None) => Vec::new(),
            (Some(Value::Array(roles)), None) => roles
                .iter()
                .map(|r| r.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .ok_or(VerifyError::Malformed("roles holds a non-string"))?,
            (Some(_), None) => return Err(VerifyError::Malformed("roles is not a list")),
            (None, Some(sealed)) => {
                let sealed = sealed
                    .as_str()
                    .ok_or(VerifyError::Malformed("encrypted_roles is not a string"))?;
                match &self.jit.roles {
                    Some(keys) => keys.open(sealed, jti)?,
                    None => return Err(VerifyError::Malformed("encrypted_roles do not open")),
                }
            }
        };
        let principal = Principal::new(PrincipalType::User, sub, CredentialKind::Obo)
            .with_actor(format!("jit:{jti}"))
            .with_expiry(expiry)
            .with_roles(roles);
        Ok((principal, jti.to_owned()))
    }

    /// The denylist's word on `jti`: revoked is 401; a copy of the revocations staler than
    /// its bound is 503 (fail closed), except before the first read of a process that just
    /// started, which this request waits for.
    async fn not_revoked(&self, jti: &str) -> Result<(), RequestError> {
        let denylist = &self.jit.denylist;
        denylist.start();
        let unavailable = || RequestError::RevocationsUnavailable {
            retry_after_secs: self.jit.config.revocation_staleness.as_secs().max(1),
        };
        let mut listed = denylist.check(jti, unix_now());
        if listed == Listed::Stale && denylist.never_synced() {
            if let Err(e) = denylist.sync().await {
                tracing::warn!(target: "s2s_auth::revocation", error = %e, "cannot read the revocations");
            }
            listed = denylist.check(jti, unix_now());
        }
        match listed {
            Listed::Clear => Ok(()),
            Listed::Revoked => Err(VerifyError::Revoked.into()),
            Listed::Stale => Err(unavailable()),
        }
    }
}

impl Verifier for JitVerifier {
    fn verify(self: &Arc<Self>, token: Token<'_>, shared: &Arc<Shared>) -> Verification {
        let Some(u) = token.jwt else {
            return Verification::done(Err(VerifyError::Malformed("not a JWT")));
        };
        if let Err(e) = self.precheck(&u) {
            return Verification::done(Err(e));
        }
        // Not remembered in the verified-token cache: a revocation must be seen by the
        // next request. Without I/O (an HS512 key, or our own keys in memory, and the
        // denylist read) it is answered at once.
        let this = self.clone();
        let raw = token.raw.to_owned();
        let shared = shared.clone();
        now_or_later(async move {
            let (principal, jti) = if u.alg == Algorithm::HS512 {
                let kid = u.kid.as_deref().unwrap_or_default();
                match this.jit.hmac.iter().find(|(k, _, _)| k == kid) {
                    Some((_, _, key)) => this.finish(&raw, &u, key)?,
                    None => return Err(VerifyError::UnknownKey.into()),
                }
            } else {
                match this.peer_jwks(&u)? {
                    None => {
                        let set = this.own_keys().await?;
                        let key = match set.find(u.kid.as_deref(), u.alg) {
                            crate::jwks::Lookup::Found(key) => key,
                            _ => return Err(VerifyError::UnknownKey.into()),
                        };
                        this.finish(&raw, &u, &key.key)?
                    }
                    Some(url) => {
                        let key = shared.key(&url, &u).await?;
                        this.finish(&raw, &u, &key.key)?
                    }
                }
            };
            this.not_revoked(&jti).await?;
            Ok(principal)
        })
    }
}

fn unix_now() -> i64 {
    i64::try_from(jsonwebtoken::get_current_timestamp()).unwrap_or(i64::MAX)
}
