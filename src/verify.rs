//! Verification: sends each token to exactly one verifier (chosen by the `classify` module)
//! and returns its principal or the check that failed. Nothing is retried with another
//! verifier. The verifiers themselves meet one contract (the `verifier` module), one file
//! each.

use std::sync::Arc;

use crate::classify::{Known, Route, TokenClass, classify};
use crate::clock::Now;
use crate::custom::CustomVerifier;
use crate::error::VerifyError;
use crate::external_jwks::JwksVerifier;
use crate::extract::Bearer;
use crate::legacy::LegacyVerifier;
use crate::plugin::PluginVerifier;
use crate::static_token::StaticTokens;
use crate::verifier::{Shared, Token, TokenFingerprint, TokenHashes, Verification, Verifier};

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

    /// Starts verifying a token; returns the verification and where the token's audit
    /// fingerprint comes from. `audited`: whether an allow's event will be built
    /// ([`Auditor::observes_allow`](crate::audit::Auditor::observes_allow)), so that the
    /// fingerprint is computed only when something reads it.
    #[inline]
    pub(crate) fn verify<'a>(
        &self,
        raw: Bearer<'a>,
        now: Now,
        audited: bool,
    ) -> (Verification, TokenFingerprint<'a>) {
        // A token verified before: the same bytes were checked, classified and verified by
        // this same configuration, so no byte check, classification, parsing, hashing or
        // signature check (the cache holds only JWTs, so a static token just misses). The
        // event's clock reading is the cache's and the key ages': one read per request.
        if let Some((p, fingerprint)) = self.shared.remembered(raw.as_bytes(), now, audited) {
            let fingerprint = match fingerprint {
                Some(f) => TokenFingerprint::Known(f),
                None => TokenFingerprint::Later(raw.as_bytes()),
            };
            return (Verification::Done(Ok(p)), fingerprint);
        }
        self.verify_fresh(raw, now, audited)
    }

    /// A token not in the verified-token cache: checked, classified and sent to its
    /// verifier. Kept out of [`verify`](Self::verify) so that a hit's path stays small.
    #[inline(never)]
    fn verify_fresh<'a>(
        &self,
        raw: Bearer<'a>,
        now: Now,
        audited: bool,
    ) -> (Verification, TokenFingerprint<'a>) {
        let raw = match raw.checked() {
            Ok(raw) => raw,
            Err(e) => return (Verification::Done(Err(e)), TokenFingerprint::None),
        };
        let hashes = TokenHashes::new(raw.as_bytes(), audited);
        let verification = self.dispatch(Token {
            raw,
            hashes: &hashes,
            now,
            jwt: None,
        });
        (verification, hashes.into_fingerprint())
    }

    fn dispatch(&self, mut token: Token<'_>) -> Verification {
        let raw = token.raw;
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
