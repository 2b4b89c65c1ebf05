//! Backstage legacy tokens: HS256 JWTs signed with a shared secret (`type: legacy`, and the
//! deprecated `backend.auth.keys`).
//!
//! Rules, as Backstage mints them: `alg` is HS256 and nothing else, `sub` is
//! `backstage-server`, there is no `aud`, and `exp` is required. Several secrets may be
//! configured (rotation): they are tried in order, and the first whose signature verifies
//! decides; a token failing any other check with that secret is refused with that reason.
//!
//! ```
//! use s2s_auth::{Auth, LegacySecret};
//!
//! let auth = Auth::builder("catalog")
//!     .legacy_secret(LegacySecret::new("c2VjcmV0LXNoYXJlZC13aXRoLWJhY2tzdGFnZQ==", "old-backend"))
//!     .build()?;
//! # let _ = auth;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use jsonwebtoken::{Algorithm, Validation};

use crate::error::{ConfigError, ConfigRule, VerifyError};
use crate::jws::VerifyingKey;
use crate::jwt::{Unverified, check_iat, exp_claim, str_claim};
use crate::principal::{CredentialKind, Principal, PrincipalType};
use crate::restrictions::AccessRestrictions;
use crate::secret::SecretString;
use crate::verifier::{Shared, Token, Verification, Verifier};

/// The subject Backstage legacy tokens carry.
pub const LEGACY_SUBJECT: &str = "backstage-server";

/// One legacy shared secret (base64, as Backstage configures it).
#[derive(Clone, Debug)]
pub struct LegacySecret {
    secret: SecretString,
    subject: String,
    restrictions: Option<AccessRestrictions>,
    pub(crate) origin: String,
    /// Whether error paths read `<origin>.options.secret` (externalAccess) or
    /// `<origin>.secret` (the deprecated `backend.auth.keys`).
    pub(crate) options_prefix: bool,
}

impl LegacySecret {
    /// A `type: legacy` entry: `secret` is base64; callers become `external:<subject>`
    /// (`subject` non-empty, without whitespace, control characters or `:`).
    pub fn new(secret_base64: impl Into<SecretString>, subject: impl Into<String>) -> Self {
        Self {
            secret: secret_base64.into(),
            subject: subject.into(),
            restrictions: None,
            origin: String::from("legacy_secret"),
            options_prefix: true,
        }
    }

    /// Restricts what callers with this secret may do.
    pub fn restrict(mut self, restrictions: AccessRestrictions) -> Self {
        self.restrictions = Some(restrictions);
        self
    }

    /// The subject (callers become `external:<subject>`).
    pub(crate) fn subject(&self) -> &str {
        &self.subject
    }

    /// The path of the subject in configuration (the entry itself for `backend.auth.keys`,
    /// whose subject is fixed).
    pub(crate) fn subject_path(&self) -> String {
        if self.options_prefix {
            format!("{}.options.subject", self.origin)
        } else {
            self.origin.clone()
        }
    }

    pub(crate) fn compile(&self) -> Result<LegacyKey, ConfigError> {
        let options = if self.options_prefix { ".options" } else { "" };
        let path = format!("{}{options}.secret", self.origin);
        let bytes = STANDARD
            .decode(self.secret.expose_secret().trim())
            .map_err(|_| ConfigError::new(&path, ConfigRule::SecretNotBase64))?;
        if bytes.len() < 16 {
            return Err(ConfigError::new(
                &path,
                ConfigRule::SecretTooShort { min_bytes: 16 },
            ));
        }
        if !crate::subject::is_segment(&self.subject) {
            return Err(ConfigError::new(
                self.subject_path(),
                ConfigRule::InvalidSubject,
            ));
        }
        Ok(LegacyKey {
            origin: self.origin.clone(),
            key: VerifyingKey::hmac(&bytes),
            subject: format!("external:{}", self.subject),
            restrictions: self.restrictions.clone(),
        })
    }
}

pub(crate) struct LegacyKey {
    origin: String,
    key: VerifyingKey,
    subject: String,
    restrictions: Option<AccessRestrictions>,
}

impl std::fmt::Debug for LegacyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LegacyKey")
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

/// All legacy secrets, tried in order.
#[derive(Debug)]
pub(crate) struct LegacyVerifier {
    pub(crate) keys: Vec<LegacyKey>,
    /// Built once (HS256, `exp` and `sub` required, no `aud` check: refused separately).
    validation: Validation,
}

impl LegacyVerifier {
    pub(crate) fn new(keys: Vec<LegacyKey>, leeway: u64) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = leeway;
        validation.validate_nbf = true;
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Self { keys, validation }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The config entries that carry access restrictions.
    pub(crate) fn restricted(&self) -> impl Iterator<Item = (&str, &AccessRestrictions)> {
        self.keys
            .iter()
            .filter_map(|k| Some((k.origin.as_str(), k.restrictions.as_ref()?)))
    }

    fn check(
        &self,
        token: &str,
        u: &Unverified,
        leeway: u64,
    ) -> Result<(Principal, u64), VerifyError> {
        if u.alg != Algorithm::HS256 {
            return Err(VerifyError::AlgorithmNotAllowed);
        }
        if u.aud().next().is_some() {
            return Err(VerifyError::LegacyWithAudience);
        }
        let validation = &self.validation;
        for key in &self.keys {
            let claims = match crate::jwt::verify(token, u, &key.key, validation) {
                Ok(claims) => claims,
                Err(VerifyError::BadSignature) => continue,
                Err(other) => return Err(other),
            };
            check_iat(claims, leeway)?;
            if claims.contains_key("aud") {
                return Err(VerifyError::LegacyWithAudience);
            }
            if str_claim(claims, "sub")? != LEGACY_SUBJECT {
                return Err(VerifyError::WrongSubject);
            }
            let (exp, expiry) = exp_claim(claims)?;
            let mut p = Principal::new(
                PrincipalType::Service,
                key.subject.clone(),
                CredentialKind::Legacy,
            )
            .with_expiry(expiry);
            if let Some(r) = &key.restrictions {
                p = p.with_restrictions(r.clone());
            }
            return Ok((p, exp));
        }
        Err(VerifyError::BadSignature)
    }
}

impl Verifier for LegacyVerifier {
    fn verify(self: &Arc<Self>, token: Token<'_>, shared: &Arc<Shared>) -> Verification {
        let Some(u) = token.jwt else {
            return Verification::done(Err(VerifyError::Malformed("not a JWT")));
        };
        let result = self.check(token.raw, &u, shared.leeway).map(|(p, exp)| {
            // No key reference: legacy secrets do not rotate at run time.
            shared.remember(
                token.raw,
                token.hashes.for_cache(),
                &p,
                exp,
                token.now.unix_secs(),
                Vec::new,
            );
            p
        });
        Verification::done(result)
    }
}
