//! Verification: sends each token to exactly one verifier (chosen by the `classify` module)
//! and returns its principal or the check that failed. Nothing is retried with another
//! verifier. The verifiers themselves meet one contract (the `verifier` module), one file
//! each.

use std::sync::Arc;

use time::OffsetDateTime;

use crate::classify::{Known, Route, TokenClass, classify};
use crate::clock::Now;
use crate::custom::CustomVerifier;
use crate::error::VerifyError;
use crate::external_jwks::JwksVerifier;
use crate::extract::Bearer;
use crate::legacy::LegacyVerifier;
use crate::plugin::PluginVerifier;
use crate::secret::{Fingerprint, sha256};
use crate::static_token::StaticTokens;
use crate::verifier::{Shared, Token, Verification, Verifier};

/// Every verifier of a service.
pub(crate) struct Verifiers {
    pub(crate) static_tokens: Arc<StaticTokens>,
    pub(crate) custom: Vec<Arc<CustomVerifier>>,
    pub(crate) jwks: Vec<Arc<JwksVerifier>>,
    pub(crate) legacy: Arc<LegacyVerifier>,
    pub(crate) plugin: Option<Arc<PluginVerifier>>,
    pub(crate) jit: Option<Arc<crate::jit::JitVerifier>>,
    pub(crate) accounts: Option<Arc<crate::service_account::AccountVerifier>>,
    pub(crate) shared: Arc<Shared>,
}

impl Verifiers {
    pub(crate) fn known(&self) -> Known<'_> {
        Known {
            custom: &self.custom,
            jwks: &self.jwks,
            legacy: !self.legacy.is_empty(),
            plugin: self.plugin.is_some(),
            jit: self.jit.is_some(),
        }
    }

    /// Starts verifying a token; returns the verification and the token's audit
    /// fingerprint (none for a token refused before it is hashed: not visible ASCII).
    pub(crate) fn verify(&self, raw: Bearer<'_>, now: Now) -> (Verification, Option<Fingerprint>) {
        // A token verified before: the same bytes were checked, classified and verified by
        // this same configuration, so no byte check, classification, parsing, hashing or
        // signature check (the cache holds only JWTs, so a static token just misses). The
        // event's clock reading is the cache's and the key ages': one read per request.
        if let Some((p, fingerprint)) =
            self.shared
                .remembered(raw.as_bytes(), now.unix_secs(), now.mono_ms())
        {
            return (Verification::Done(Ok(p)), Some(fingerprint));
        }
        let raw = match raw.checked() {
            Ok(raw) => raw,
            Err(e) => return (Verification::Done(Err(e)), None),
        };
        // Hashed once: the static-token lookup key and (through one more short hash) the
        // audit fingerprint.
        let digest = sha256(raw.as_bytes());
        let fingerprint = Fingerprint::of_digest(&digest);
        (
            self.dispatch(raw, digest, fingerprint, now.wall()),
            Some(fingerprint),
        )
    }

    fn dispatch(
        &self,
        raw: &str,
        digest: [u8; 32],
        fingerprint: Fingerprint,
        now: OffsetDateTime,
    ) -> Verification {
        let mut token = Token {
            raw,
            digest,
            fingerprint,
            now,
            jwt: None,
        };
        let known = self.known();
        let route = match classify(raw) {
            TokenClass::Opaque => known.classify_opaque(raw),
            TokenClass::Jwt => {
                if !known.any_jwt() {
                    return Verification::done(Err(VerifyError::NoJwtVerifier));
                }
                match known.classify_jwt(raw) {
                    Ok((route, u)) => {
                        token.jwt = Some(u);
                        route
                    }
                    Err(e) => return Verification::done(Err(e)),
                }
            }
        };
        let shared = &self.shared;
        match route {
            Route::Static => self.static_tokens.verify(token, shared),
            Route::Custom(i) => self.custom[i].verify(token, shared),
            Route::Legacy => self.legacy.verify(token, shared),
            Route::Jwks(i) => self.jwks[i].verify(token, shared),
            Route::Plugin => match &self.plugin {
                Some(plugin) => plugin.verify(token, shared),
                None => Verification::done(Err(VerifyError::Unsupported("plugin-to-plugin"))),
            },
            Route::ServiceAccount => match &self.accounts {
                Some(accounts) => accounts.verify(token, shared),
                None => Verification::done(Err(VerifyError::Unsupported("service-account"))),
            },
            Route::Jit => match &self.jit {
                Some(jit) => jit.verify(token, shared),
                None => {
                    Verification::done(Err(VerifyError::Unsupported("just-in-time on-behalf-of")))
                }
            },
        }
    }
}
