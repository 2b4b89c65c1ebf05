//! Classification: choosing the **one** verifier for a token by its shape alone, before
//! anything about it is trusted.
//!
//! Backstage tries every verifier in turn and swallows their errors, which hides the real
//! reason a token failed and costs one attempt per verifier. Here the shape decides:
//!
//! | shape | verifier |
//! |---|---|
//! | three base64url segments, the first starting `eyJ` (a JSON object) | JWT verifiers (chosen further by the unverified header and `iss`) |
//! | anything else, starting with `s2s_sa_` | the service-account verifier |
//! | anything else, starting with a custom type's prefix (`acme_`) | that custom type's verifier |
//! | anything else | the static-token table |
//!
//! A JWT is then sent on by its *unverified* header and claims, read once here (refusing
//! `alg: none` and key-carrying headers before anything else looks at it):
//!
//! 1. `typ: vnd.backstage.plugin` goes to the plugin-token verifier (plugin-to-plugin and
//!    on-behalf-of tokens); `typ: vnd.backstage.limited-user` is refused on its own (it only
//!    vouches for a user inside an on-behalf-of token);
//! 2. `typ: vnd.backstage.user` goes to the Backstage user providers with that `iss`;
//! 3. a token with an `iss` goes to the one verifier configured for that issuer (and, if
//!    several share the issuer, that audience). An `iss` nobody configured is refused at
//!    once, with no network call, unless an issuer-less entry was explicitly allowed;
//! 4. an HS256 token without `iss` goes to the legacy secrets.
//!
//! Configuration refuses static tokens that would be classified otherwise (a plaintext
//! static token shaped like a JWT), so a configured token always reaches its verifier.

use std::sync::Arc;

use crate::custom::CustomVerifier;
use crate::error::VerifyError;
use crate::external_jwks::{BACKSTAGE_USER_TYP, JwksVerifier};
use crate::jwt::{Unverified, inspect};
use crate::obo::LIMITED_USER_TYP;
use crate::plugin::PLUGIN_TYP;

/// The one verifier a token goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Route {
    /// The static-token table.
    Static,
    /// The JWKS verifier at this index.
    Jwks(usize),
    /// The legacy secrets.
    Legacy,
    /// The plugin-token verifier.
    Plugin,
    /// The custom external type at this index (an opaque token with its prefix).
    Custom(usize),
    /// The just-in-time on-behalf-of verifier.
    Jit,
    /// The service-account verifier (an opaque token with the `s2s_sa_` prefix).
    ServiceAccount,
}

/// What is configured, as classification needs to know it.
pub(crate) struct Known<'a> {
    pub(crate) custom: &'a [Arc<CustomVerifier>],
    pub(crate) jwks: &'a [Arc<JwksVerifier>],
    pub(crate) legacy: bool,
    pub(crate) plugin: bool,
    pub(crate) jit: bool,
}

impl Known<'_> {
    /// The verifier of an opaque token: the custom type whose prefix it carries (the
    /// builder makes sure no prefix is a prefix of another, so there is at most one), else
    /// the static-token table.
    pub(crate) fn classify_opaque(&self, token: &str) -> Route {
        // The prefix is reserved: no custom prefix and no static token may start with it
        // (the builder refuses them), so it always means a service-account token.
        if token.starts_with(crate::service_account::TOKEN_PREFIX) {
            return Route::ServiceAccount;
        }
        self.custom
            .iter()
            .position(|c| token.starts_with(c.0.verifier.prefix()))
            .map_or(Route::Static, Route::Custom)
    }

    /// Whether any verifier takes JWTs.
    pub(crate) fn any_jwt(&self) -> bool {
        !self.jwks.is_empty() || self.legacy || self.plugin || self.jit
    }

    /// Reads a JWT's unverified header and claims and chooses its verifier.
    pub(crate) fn classify_jwt(&self, token: &str) -> Result<(Route, Unverified), VerifyError> {
        let u = inspect(token)?;
        let route = self.route(&u)?;
        Ok((route, u))
    }

    /// Chooses the one verifier for a JWT, from its unverified header and claims (also
    /// used by `inspect`, to name the verifier without verifying).
    pub(crate) fn route(&self, u: &Unverified) -> Result<Route, VerifyError> {
        match u.typ.as_deref() {
            Some(PLUGIN_TYP) if self.plugin => return Ok(Route::Plugin),
            Some(PLUGIN_TYP) => return Err(VerifyError::Unsupported("plugin-to-plugin")),
            Some(crate::jit::JIT_TYP) if self.jit => return Ok(Route::Jit),
            Some(crate::jit::JIT_TYP) => {
                return Err(VerifyError::Unsupported("just-in-time on-behalf-of"));
            }
            // A limited user token opens no route on its own: it only vouches for the user
            // inside an on-behalf-of token.
            Some(LIMITED_USER_TYP) => return Err(VerifyError::WrongType),
            _ => {}
        }
        let backstage_user = u.typ.as_deref() == Some(BACKSTAGE_USER_TYP);
        let Some(iss) = u.iss() else {
            if u.alg == jsonwebtoken::Algorithm::HS256 && self.legacy {
                return Ok(Route::Legacy);
            }
            // Only an entry that explicitly gave up the issuer check takes issuer-less tokens.
            if let Some(route) = self.pick(|v| v.issuers.is_none(), u) {
                return route;
            }
            // Issuer-less tokens are otherwise legacy-shaped: the legacy verifier names the
            // check they fail (another `alg` than HS256).
            if self.legacy {
                return Ok(Route::Legacy);
            }
            // Plugin tokens are the other issuer-less kind: where they are verified, an
            // issuer-less token that is none of the above fails on its `typ`.
            if self.plugin {
                return Err(VerifyError::WrongType);
            }
            return Err(VerifyError::MissingClaim("iss"));
        };
        let by_issuer =
            |v: &JwksVerifier| v.has_issuer(iss) && (!backstage_user || v.is_backstage_user());
        if let Some(route) = self.pick(by_issuer, u) {
            return route;
        }
        if backstage_user && self.jwks.iter().any(|v| v.has_issuer(iss)) {
            // A Backstage user token from an issuer configured for other kinds of tokens.
            return Err(VerifyError::WrongType);
        }
        self.pick(|v| v.issuers.is_none() && !backstage_user, u)
            .unwrap_or(Err(VerifyError::UnknownIssuer))
    }

    /// The one verifier passing `filter`, narrowed by the token's audience when several do.
    fn pick(
        &self,
        filter: impl Fn(&JwksVerifier) -> bool,
        u: &Unverified,
    ) -> Option<Result<Route, VerifyError>> {
        let mut candidates = (0..self.jwks.len()).filter(|&i| filter(&self.jwks[i]));
        let first = candidates.next()?;
        if candidates.next().is_none() {
            return Some(Ok(Route::Jwks(first)));
        }
        // Several: the ones that accept one of the token's audiences.
        let mut narrowed = (0..self.jwks.len())
            .filter(|&i| filter(&self.jwks[i]) && self.jwks[i].accepts_any_audience(u.aud()));
        Some(match (narrowed.next(), narrowed.next()) {
            (Some(one), None) => Ok(Route::Jwks(one)),
            // No audience matches any of them: the first will say "wrong audience".
            (None, _) => Ok(Route::Jwks(first)),
            (Some(_), Some(_)) => Err(VerifyError::Ambiguous),
        })
    }
}

/// The verifier family a token goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TokenClass {
    /// A compact JWS.
    Jwt,
    /// An opaque string: looked up in the static-token table.
    Opaque,
}

/// Classifies a token (already checked to be visible ASCII and at most 8 KiB).
pub(crate) fn classify(token: &str) -> TokenClass {
    if looks_like_jwt(token) {
        TokenClass::Jwt
    } else {
        TokenClass::Opaque
    }
}

/// Three base64url segments, the first beginning with `eyJ` (base64 of `{"`) and the first two
/// non-empty. The signature may be empty, so an unsigned (`alg: none`) token reaches the JWT
/// path and is refused for what it is, not as an unknown static token.
pub(crate) fn looks_like_jwt(token: &str) -> bool {
    let bytes = token.as_bytes();
    if !bytes.starts_with(b"eyJ") {
        return false;
    }
    // No early exit, and 32 bytes at a time in `u8` lanes, which the compiler turns into
    // wide instructions (issue 11: a fold over the whole token with a `bool` and a `usize`
    // count did not vectorise, about 2,400 instructions for a 290-byte token; this is about
    // 1,000): every byte base64url or a dot, and exactly two dots.
    fn not_base64url_or_dot(b: u8) -> u8 {
        let letter = (b | 0x20).wrapping_sub(b'a') < 26;
        let digit = b.wrapping_sub(b'0') < 10;
        u8::from(!(letter | digit | (b == b'.') | (b == b'-') | (b == b'_')))
    }
    let (blocks, rest) = bytes.as_chunks::<32>();
    let mut bad = rest
        .iter()
        .fold(0u8, |bad, &b| bad | not_base64url_or_dot(b));
    let mut dots = rest.iter().filter(|&&b| b == b'.').count();
    for block in blocks {
        bad |= block
            .iter()
            .fold(0u8, |bad, &b| bad | not_base64url_or_dot(b));
        // At most 32 in a block: no overflow.
        dots += usize::from(block.iter().fold(0u8, |n, &b| n + u8::from(b == b'.')));
    }
    if bad != 0 || dots != 2 {
        return false;
    }
    // The first two segments non-empty: the header (starts with `eyJ`, so non-empty) is
    // followed by a claims segment that is not just the second dot.
    match token.split_once('.') {
        Some((_, rest)) => !rest.starts_with('.'),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape rule written plainly, to check the one-pass version against.
    fn looks_like_jwt_plainly(token: &str) -> bool {
        let segments: Vec<&str> = token.split('.').collect();
        token.starts_with("eyJ")
            && segments.len() == 3
            && !segments[0].is_empty()
            && !segments[1].is_empty()
            && segments.iter().all(|s| {
                s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            })
    }

    #[test]
    fn the_one_pass_shape_check_agrees_with_the_plain_rule() {
        let base = "eyJhbGciOiJI.eyJzdWIiOiIx.c2ln";
        for i in 0..base.len() {
            for b in 0..=255u8 {
                let mut bytes = base.as_bytes().to_vec();
                bytes[i] = b;
                if let Ok(token) = std::str::from_utf8(&bytes) {
                    assert_eq!(
                        looks_like_jwt(token),
                        looks_like_jwt_plainly(token),
                        "{token:?}"
                    );
                }
            }
        }
        // Longer than one 32-byte block, so that every byte position of a block and of the
        // rest after the blocks is checked.
        let long = format!(
            "eyJ{}.{}.{}",
            "a".repeat(40),
            "b".repeat(33),
            "c".repeat(29)
        );
        for i in 0..long.len() {
            for b in [
                b'.', b'+', b'/', b'=', b' ', b'@', b'[', b'`', b'{', 0x7f, b'Z', b'9',
            ] {
                let mut bytes = long.as_bytes().to_vec();
                bytes[i] = b;
                let token = std::str::from_utf8(&bytes).unwrap();
                assert_eq!(
                    looks_like_jwt(token),
                    looks_like_jwt_plainly(token),
                    "{token:?}"
                );
            }
        }
        for token in [
            "eyJ", "eyJ.", "eyJ..", "eyJ.a.", "eyJ.a.b.", "eyJa..b", ".eyJ.a",
        ] {
            assert_eq!(
                looks_like_jwt(token),
                looks_like_jwt_plainly(token),
                "{token:?}"
            );
        }
    }

    #[test]
    fn shapes() {
        assert_eq!(classify("eyJhbGciOiJI.eyJzdWIiOiIx.c2ln"), TokenClass::Jwt);
        assert_eq!(classify("eyJhbGciOiJI.eyJzdWIiOiIx."), TokenClass::Jwt);
        assert_eq!(classify("eyJhbGciOiJI..c2ln"), TokenClass::Opaque);
        assert_eq!(classify("eyJa.b.c.d"), TokenClass::Opaque);
        assert_eq!(classify("abc.def.ghi"), TokenClass::Opaque);
        assert_eq!(classify("static-token-123"), TokenClass::Opaque);
        assert_eq!(classify("eyJ+.a.b"), TokenClass::Opaque);
    }
}
