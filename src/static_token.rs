//! Static tokens: Backstage `backend.auth.externalAccess` entries of `type: static`.
//!
//! A static token is a long-lived shared secret held by a CI job or an external system. The
//! caller becomes a `service` principal with subject `external:<subject>`.
//!
//! **Subjects cannot collide.** A subject is one segment: non-empty, without whitespace,
//! control characters or `:` (so `external:<subject>` never looks like a `jwks` entry's
//! `external:<prefix>:<sub>` or a custom type's `external:<type>:<subject>`). It may repeat
//! across static entries (one caller, several tokens), not across kinds: a legacy secret's
//! subject, a `jwks` entry's `subjectPrefix` or a custom type's name equal to it is a config
//! error, and a token of the `jwks` entry without a prefix whose `sub` is a static subject
//! is refused (401 `wrong_subject`), so an identity provider's client named `ci-bot` never
//! passes for the holder of the `ci-bot` token.
//!
//! Beyond Backstage:
//! - **`tokenSha256`** instead of `token`: the config holds only the digest, so a leaked
//!   config file does not leak the credential;
//! - **`expiresAt`**: a token stops working on its own;
//! - **several tokens per subject**: list the subject twice, so a new token can be rolled
//!   out before the old one is removed;
//! - **read-only by default**: `POST`, `PUT`, `PATCH`, `DELETE` are refused (403) unless the
//!   entry says `allowWrites: true` or the route's policy says `allowStaticWrites`.
//!
//! Lookup is by SHA-256 digest: the hash map is keyed by the first 16 bytes of the digest,
//! and the full 32 bytes are then compared in constant time. Timing can therefore reveal at
//! most something about the digest of the attacker's own guess, never about a configured
//! token (Backstage compares plaintext strings).
//!
//! ```
//! use s2s_auth::{Auth, StaticToken};
//!
//! let auth = Auth::builder("catalog")
//!     .static_token(StaticToken::new("ci-bot", "a-long-random-token-for-ci"))
//!     // Rotation: the new token works alongside the old one until the old one is removed.
//!     .static_token(StaticToken::new("ci-bot", "the-next-long-random-token").allow_writes(true))
//!     .build()?;
//! # let _ = auth;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::HashMap;
use std::sync::Arc;

use subtle::ConstantTimeEq;
use time::OffsetDateTime;

use crate::error::{ConfigError, ConfigRule, VerifyError};
use crate::principal::{CredentialKind, Principal, PrincipalType};
use crate::restrictions::AccessRestrictions;
use crate::secret::{SecretString, parse_sha256_hex, sha256};
use crate::verifier::{Shared, Token, Verification, Verifier};

/// The shortest plaintext static token accepted (Backstage's rule).
pub const MIN_STATIC_TOKEN_LEN: usize = 8;

/// One configured static token: a builder for the Rust API and the result of parsing a
/// `type: static` config entry.
#[derive(Clone, Debug)]
pub struct StaticToken {
    secret: TokenSecret,
    subject: String,
    restrictions: Option<AccessRestrictions>,
    expires_at: Option<OffsetDateTime>,
    allow_writes: bool,
    /// Where the entry came from, for error messages (`backend.auth.externalAccess[2]`).
    pub(crate) origin: String,
}

#[derive(Clone, Debug)]
enum TokenSecret {
    Plain(SecretString),
    Sha256Hex(SecretString),
}

impl StaticToken {
    /// A static token given in plaintext, for `subject` (the caller becomes
    /// `external:<subject>`). Checked when the [`Auth`](crate::Auth) is built: the token at
    /// least 8 characters, no whitespace; the subject non-empty, without whitespace,
    /// control characters or `:` (see the module docs).
    pub fn new(subject: impl Into<String>, token: impl Into<SecretString>) -> Self {
        Self::with_secret(subject.into(), TokenSecret::Plain(token.into()))
    }

    /// A static token given as the hex SHA-256 of its value (`tokenSha256`), so the secret
    /// itself never has to be in the configuration. Compute it with
    /// `printf %s "$TOKEN" | sha256sum`.
    pub fn from_sha256_hex(subject: impl Into<String>, hex: impl Into<String>) -> Self {
        Self::with_secret(
            subject.into(),
            TokenSecret::Sha256Hex(SecretString::new(hex.into())),
        )
    }

    fn with_secret(subject: String, secret: TokenSecret) -> Self {
        Self {
            secret,
            subject,
            restrictions: None,
            expires_at: None,
            allow_writes: false,
            origin: String::from("static_token"),
        }
    }

    /// The token stops working at this instant.
    pub fn expires_at(mut self, at: OffsetDateTime) -> Self {
        self.expires_at = Some(at);
        self
    }

    /// Allows writes (`POST`, `PUT`, `PATCH`, `DELETE`) with this token on every route that
    /// otherwise accepts it. Default `false`: a leaked CI token that can only read does far
    /// less harm.
    pub fn allow_writes(mut self, allow: bool) -> Self {
        self.allow_writes = allow;
        self
    }

    /// Restricts the token to some plugins, permissions and actions.
    pub fn restrict(mut self, restrictions: AccessRestrictions) -> Self {
        self.restrictions = Some(restrictions);
        self
    }

    /// The subject (without the `external:` prefix).
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The access restrictions, if any.
    pub fn restrictions(&self) -> Option<&AccessRestrictions> {
        self.restrictions.as_ref()
    }

    /// Whether writes are allowed.
    pub fn writes_allowed(&self) -> bool {
        self.allow_writes
    }

    /// The principal this token yields (the same for every request).
    pub(crate) fn principal(&self) -> Principal {
        let mut p = Principal::new(
            PrincipalType::Service,
            format!("external:{}", self.subject),
            CredentialKind::Static,
        )
        .with_read_only(!self.allow_writes);
        if let Some(r) = &self.restrictions {
            p = p.with_restrictions(r.clone());
        }
        if let Some(at) = self.expires_at {
            p = p.with_expiry(at);
        }
        p
    }

    /// The plaintext, when configured as such (for checks against other token shapes).
    pub(crate) fn plaintext(&self) -> Option<&str> {
        match &self.secret {
            TokenSecret::Plain(token) => Some(token.expose_secret()),
            TokenSecret::Sha256Hex(_) => None,
        }
    }

    /// Validates the entry and returns its digest.
    fn digest(&self) -> Result<[u8; 32], ConfigError> {
        let origin = &self.origin;
        if !crate::subject::is_segment(&self.subject) {
            return Err(ConfigError::new(
                format!("{origin}.options.subject"),
                ConfigRule::InvalidSubject,
            ));
        }
        match &self.secret {
            TokenSecret::Plain(token) => {
                let value = token.expose_secret();
                let path = format!("{origin}.options.token");
                if value.chars().count() < MIN_STATIC_TOKEN_LEN {
                    return Err(ConfigError::new(
                        path,
                        ConfigRule::TokenTooShort {
                            min: MIN_STATIC_TOKEN_LEN,
                        },
                    ));
                }
                if value.chars().any(char::is_whitespace) {
                    return Err(ConfigError::new(path, ConfigRule::TokenWhitespace));
                }
                if !value.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
                    return Err(ConfigError::new(path, ConfigRule::TokenNotVisibleAscii));
                }
                if value.len() > crate::extract::MAX_TOKEN_LEN {
                    return Err(ConfigError::new(path, ConfigRule::TokenTooLong));
                }
                if crate::classify::looks_like_jwt(value) {
                    return Err(ConfigError::new(
                        path,
                        ConfigRule::TokenMisclassified("a JWT"),
                    ));
                }
                if value.starts_with(crate::service_account::TOKEN_PREFIX) {
                    return Err(ConfigError::new(
                        path,
                        ConfigRule::TokenMisclassified("a service-account token"),
                    ));
                }
                Ok(sha256(value.as_bytes()))
            }
            TokenSecret::Sha256Hex(hex) => parse_sha256_hex(hex.expose_secret()).ok_or_else(|| {
                ConfigError::new(
                    format!("{origin}.options.tokenSha256"),
                    ConfigRule::BadTokenDigest,
                )
            }),
        }
    }
}

struct Entry {
    digest: [u8; 32],
    /// The same for every request; it carries the token's expiry.
    principal: Principal,
}

/// The table of configured static tokens, looked up by digest.
#[derive(Default)]
pub(crate) struct StaticTokens {
    by_prefix: HashMap<u128, Vec<Entry>>,
    len: usize,
}

impl StaticTokens {
    /// Builds the table; a token configured twice (in plaintext, as a digest, or both) is an
    /// error naming the second entry.
    pub(crate) fn new(tokens: &[StaticToken]) -> Result<Self, ConfigError> {
        let mut table = StaticTokens::default();
        for token in tokens {
            let digest = token.digest()?;
            let bucket = table.by_prefix.entry(prefix(&digest)).or_default();
            if bucket.iter().any(|e| e.digest == digest) {
                let field = match token.secret {
                    TokenSecret::Plain(_) => "token",
                    TokenSecret::Sha256Hex(_) => "tokenSha256",
                };
                return Err(ConfigError::new(
                    format!("{}.options.{field}", token.origin),
                    ConfigRule::DuplicateToken,
                ));
            }
            bucket.push(Entry {
                digest,
                principal: token.principal(),
            });
            table.len += 1;
        }
        Ok(table)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Looks a token up by its SHA-256: the principal, or why not.
    pub(crate) fn lookup(
        &self,
        digest: &[u8; 32],
        now: OffsetDateTime,
    ) -> Result<Principal, VerifyError> {
        let digest = *digest;
        let candidates = self
            .by_prefix
            .get(&prefix(&digest))
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        // Constant-time comparison of the full digest; see the module docs for why the
        // prefix lookup before it leaks nothing about configured tokens.
        let entry = candidates
            .iter()
            .find(|e| bool::from(e.digest.ct_eq(&digest)))
            .ok_or(VerifyError::Unrecognised)?;
        if entry.principal.expires_at().is_some_and(|at| now >= at) {
            return Err(VerifyError::Expired);
        }
        Ok(entry.principal.clone())
    }
}

fn prefix(digest: &[u8; 32]) -> u128 {
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    u128::from_le_bytes(bytes)
}

impl Verifier for StaticTokens {
    fn verify(self: &Arc<Self>, token: Token<'_>, _shared: &Arc<Shared>) -> Verification {
        Verification::done(self.lookup(token.hashes.digest(), token.now.wall()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::to_hex;
    use time::Duration;

    fn now() -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }

    #[test]
    fn plaintext_and_digest_entries_verify() {
        let hex = to_hex(&sha256(b"second-token-value"));
        let table = StaticTokens::new(&[
            StaticToken::new("ci", "first-token-value"),
            StaticToken::from_sha256_hex("ci", hex),
        ])
        .unwrap();
        let p = table.lookup(&sha256(b"first-token-value"), now()).unwrap();
        assert_eq!(p.subject(), "external:ci");
        assert!(p.is_read_only());
        assert!(table.lookup(&sha256(b"second-token-value"), now()).is_ok());
        assert_eq!(
            table.lookup(&sha256(b"third-token"), now()),
            Err(VerifyError::Unrecognised)
        );
    }

    #[test]
    fn duplicates_are_refused_across_forms() {
        let hex = to_hex(&sha256(b"first-token-value"));
        let mut second = StaticToken::from_sha256_hex("other", hex);
        second.origin = "backend.auth.externalAccess[1]".into();
        let err = StaticTokens::new(&[StaticToken::new("ci", "first-token-value"), second])
            .err()
            .unwrap();
        assert_eq!(
            err.path(),
            Some("backend.auth.externalAccess[1].options.tokenSha256")
        );
    }

    #[test]
    fn expiry() {
        let table =
            StaticTokens::new(&[StaticToken::new("ci", "expired-token-value")
                .expires_at(now() - Duration::seconds(1))])
            .unwrap();
        assert_eq!(
            table.lookup(&sha256(b"expired-token-value"), now()),
            Err(VerifyError::Expired)
        );
    }

    #[test]
    fn config_rules() {
        let bad = [
            StaticToken::new("ci", "short7c"),
            StaticToken::new("ci", "has white space"),
            StaticToken::new("c i", "long-enough-token"),
            StaticToken::new("ci", "eyJhbGciOi.eyJzdWIi.c2lnbmF0dXJl"),
            StaticToken::from_sha256_hex("ci", "abc"),
        ];
        for t in bad {
            let err = StaticTokens::new(std::slice::from_ref(&t)).err().unwrap();
            assert!(err.path().is_some(), "{err}");
        }
    }
}
