//! Issuing just-in-time on-behalf-of tokens, and what issuer and verifier share.

use std::sync::Arc;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

use super::roles::RolesKeys;
use super::{JIT_TYP, JitTokens, SELF_ISSUED};
use crate::audit::{AuditText, Auditor, EventKind};
use crate::error::{ConfigError, DelegationError, IssueError};
use crate::jws::VerifyingKey;
use crate::plugin::{KeyManager, now};
use crate::principal::{CredentialKind, Principal, PrincipalType};
use crate::revocation::Denylist;
use crate::secret::SecretString;
use crate::store::{IssuedToken, MemoryStore, Store};

/// What a user asks for (the issue endpoint's body).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct JitRequest {
    /// What the token is for, in the user's words (audited, never in the token).
    pub description: String,
    /// The service the token is for (`aud`); `None`: [`SELF_ISSUED`], this service only.
    pub service: Option<String>,
    /// The lifetime asked for; `None`: the configured default. More than the cap is granted
    /// the cap.
    pub duration_seconds: Option<u64>,
}

impl JitRequest {
    /// A request for a token for this service, with the default lifetime.
    pub fn new(description: impl Into<String>) -> Self {
        Self {
            description: description.into(),
            service: None,
            duration_seconds: None,
        }
    }

    /// For `service` (its service id), not this service.
    pub fn service(mut self, service: impl Into<String>) -> Self {
        self.service = Some(service.into());
        self
    }

    /// For `seconds` (at most the configured cap is granted).
    pub fn duration_seconds(mut self, seconds: u64) -> Self {
        self.duration_seconds = Some(seconds);
        self
    }
}

/// An issued token and what was granted.
#[derive(Debug)]
#[non_exhaustive]
pub struct JitIssued {
    /// The user the token acts for.
    pub user: String,
    /// The token (a secret: `Debug` shows its fingerprint only).
    pub token: SecretString,
    /// The lifetime granted, in seconds (the cap, or less when the user's own credential
    /// expires sooner).
    pub duration_seconds: u64,
    /// The token's id, for revocation.
    pub jti: String,
    /// Unix seconds: the token's `exp`.
    pub expires_at: u64,
}

/// How this service signs and checks just-in-time tokens: shared by the issuer and the
/// verifier.
pub(crate) struct Jit {
    pub(crate) config: JitTokens,
    pub(crate) service_id: String,
    /// The HS512 keys by kid (the first signs); empty: ES256 plugin keys.
    pub(crate) hmac: Vec<(String, EncodingKey, VerifyingKey)>,
    pub(crate) es256: Option<Arc<KeyManager>>,
    pub(crate) roles: Option<RolesKeys>,
    /// Where issued tokens and revocations are kept.
    pub(crate) store: Arc<dyn Store>,
    pub(crate) denylist: Arc<Denylist>,
}

impl std::fmt::Debug for Jit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jit")
            .field("config", &self.config)
            .field("service_id", &self.service_id)
            .finish_non_exhaustive()
    }
}

impl Jit {
    /// Checks the settings and readies the keys. ES256 needs the plugin key store.
    pub(crate) fn new(
        config: JitTokens,
        service_id: &str,
        keys: Option<Arc<KeyManager>>,
    ) -> Result<Self, ConfigError> {
        config.check()?;
        let hmac: Vec<(String, EncodingKey, VerifyingKey)> = config
            .hmac_secrets()?
            .into_iter()
            .map(|(kid, bytes)| {
                (
                    kid,
                    EncodingKey::from_secret(&bytes),
                    VerifyingKey::hmac(&bytes),
                )
            })
            .collect();
        if hmac.is_empty() && keys.is_none() {
            return Err(ConfigError::new(
                format!("{}.hmacKeys", config.origin),
                crate::error::ConfigRule::InvalidJitSetting(
                    "tokens need signing keys: configure pluginTokens (ES256 keys in the key store) or HS512 hmacKeys",
                ),
            ));
        }
        let roles = RolesKeys::new(config.roles_secrets()?);
        let store: Arc<dyn Store> = match (&config.store, keys.as_ref().and_then(|k| k.store())) {
            (Some(store), _) => store.clone(),
            (None, Some(store)) => store,
            (None, None) => Arc::new(MemoryStore::default()),
        };
        let denylist = Denylist::new(store.clone(), config.revocation_staleness);
        Ok(Self {
            store,
            denylist,
            config,
            service_id: service_id.to_owned(),
            es256: if hmac.is_empty() { keys } else { None },
            hmac,
            roles,
        })
    }

    /// The algorithm tokens are signed with.
    pub(crate) fn algorithm(&self) -> Algorithm {
        if self.hmac.is_empty() {
            Algorithm::ES256
        } else {
            Algorithm::HS512
        }
    }

    /// Mints a token for `user` with `roles`.
    async fn mint(
        &self,
        user: &str,
        roles: &[String],
        aud: &str,
        lifetime: u64,
    ) -> Result<(SecretString, String, u64), IssueError> {
        let iat = now();
        let exp = iat + lifetime;
        let jti = uuid::Uuid::new_v4().to_string();
        let mut claims = json!({
            "iss": self.config.deployment_id, "sub": user, "aud": aud, "azp": self.service_id,
            "iat": iat, "nbf": iat, "exp": exp, "jti": jti,
        });
        match &self.roles {
            Some(keys) => {
                claims["encrypted_roles"] =
                    keys.seal(roles, &jti).map_err(IssueError::Signing)?.into();
            }
            None => claims["roles"] = json!(roles),
        }
        let mut header = Header::new(self.algorithm());
        header.typ = Some(JIT_TYP.to_owned());
        let token = match (&self.es256, self.hmac.first()) {
            (_, Some((kid, key, _))) => {
                header.kid = Some(kid.clone());
                jsonwebtoken::encode(&header, &claims, key)
            }
            (Some(keys), None) => {
                let key = keys.signing_key().await?;
                header.kid = Some(key.kid.clone());
                jsonwebtoken::encode(&header, &claims, &key.key)
            }
            (None, None) => return Err(IssueError::NotConfigured),
        }
        .map_err(|e| IssueError::Signing(e.to_string()))?;
        Ok((SecretString::new(token), jti, exp))
    }
}

impl Jit {
    /// Issues a token for `user` (see [`Auth::jit_token`](crate::Auth::jit_token)), audited
    /// by `auditor`.
    pub(crate) async fn issue(
        &self,
        auditor: &Auditor,
        user: &Principal,
        request: &JitRequest,
    ) -> Result<JitIssued, IssueError> {
        let jit = self;
        if user.credential() != CredentialKind::User
            || user.principal_type() != PrincipalType::User
            || user.actor().is_some()
        {
            return Err(DelegationError::NotAUser.into());
        }
        if user.restrictions().is_some() {
            return Err(DelegationError::Restricted.into());
        }
        let user_exp = user
            .expires_at()
            .ok_or(DelegationError::NoExpiry)?
            .unix_timestamp();
        let now = now();
        let left = u64::try_from(user_exp).unwrap_or(0).saturating_sub(now);
        if left == 0 {
            return Err(DelegationError::Expired.into());
        }
        let aud = match &request.service {
            None => SELF_ISSUED,
            Some(s) if crate::service_id::is_valid_service_id(s) => s.as_str(),
            Some(s) => return Err(IssueError::InvalidTarget(s.clone())),
        };
        let asked = request
            .duration_seconds
            .unwrap_or(jit.config.default_duration.as_secs());
        if asked == 0 {
            return Err(IssueError::BadRequest("durationSeconds must be positive"));
        }
        let lifetime = asked.min(jit.config.max_duration.as_secs()).min(left);
        let roles: &[String] = if user.roles().is_empty() {
            user.ownership_entity_refs()
        } else {
            user.roles()
        };
        let (token, jti, exp) = jit.mint(user.subject(), roles, aud, lifetime).await?;
        // Recorded before it is handed out: whoever holds it can be named when it is revoked.
        jit.store
            .record_issued(&IssuedToken {
                jti: jti.clone(),
                subject: user.subject().to_owned(),
                expires_at: i64::try_from(exp).unwrap_or(i64::MAX),
            })
            .await?;
        jit.denylist.start();
        let expires_at = crate::jwt::expiry(exp).ok();
        auditor.record_lifecycle(
            EventKind::TokenIssued,
            &self.service_id,
            "token_issued",
            |e| {
                e.subject = Some(AuditText::from(user.subject().to_owned()));
                e.principal_type = Some(PrincipalType::User);
                e.credential = Some(CredentialKind::Obo);
                e.actor = Some(AuditText::from(format!("jit:{jti}")));
                e.target = Some(aud.to_owned());
                e.expires_at = expires_at;
                e.token_fingerprint = Some(token.fingerprint());
                // The user's words, escaped and cut short: no line of theirs in the log.
                let said: String = request.description.chars().take(200).collect();
                e.message = format!("just-in-time token: {said:?}");
            },
        );
        Ok(JitIssued {
            user: user.subject().to_owned(),
            token,
            duration_seconds: lifetime,
            jti,
            expires_at: exp,
        })
    }
}
