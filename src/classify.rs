//! Classification: choosing the **one** verifier for a token by its shape alone, before
//! anything about it is trusted.
//!
//! Backstage tries every verifier in turn and swallows their errors, which hides the real
//! reason a token failed and costs one attempt per verifier. Here the shape decides:
//!
//! | shape | verifier |
//! |---|---|
//! | three base64url segments, the first starting `eyJ` (a JSON object) | JWT verifiers (chosen further by the unverified header and `iss`) |
//! | anything else | the static-token table |
//!
//! Configuration refuses static tokens that would be classified otherwise (a plaintext
//! static token shaped like a JWT), so a configured token always reaches its verifier.

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
    if !token.starts_with("eyJ") {
        return false;
    }
    let mut segments = 0;
    for segment in token.split('.') {
        segments += 1;
        if (segment.is_empty() && segments < 3)
            || !segment
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return false;
        }
    }
    segments == 3
}

#[cfg(test)]
mod tests {
    use super::*;

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
