//! JWT plumbing shared by every JWT verifier: reading the unverified header and claims
//! (only to choose a verifier), and mapping `jsonwebtoken`'s errors to the check that failed.
//!
//! The header is parsed here rather than by `jsonwebtoken::decode_header`, so that each
//! refusal is precise: `alg: none` and the key-carrying headers `jku`, `x5u`, `jwk`, `x5c`
//! get their own error instead of a generic parse failure. Those headers are refused
//! outright: keys come only from configured JWKS URLs, and a token that tries to name its own
//! key is an attack or a misconfiguration either way.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use serde::Deserialize;
use serde_json::Value;
use time::OffsetDateTime;

use crate::error::VerifyError;

/// The latest `exp` accepted: 9999-12-31T23:59:59Z, the last second `time` represents
/// without its `large-dates` feature (which another crate in the build may turn on, so the
/// bound is written out rather than left to the conversion).
pub(crate) const MAX_EXP: u64 = 253_402_300_799;

/// What a token says about itself, before anything is verified.
#[derive(Debug)]
pub(crate) struct Unverified {
    pub(crate) alg: Algorithm,
    pub(crate) typ: Option<String>,
    pub(crate) kid: Option<String>,
    pub(crate) iss: Option<String>,
    pub(crate) aud: Vec<String>,
    /// Only for choosing a verifier and checking its shape before discovery; never trusted.
    pub(crate) sub: Option<String>,
    /// The RFC 8693 `act` claim of an on-behalf-of token, if any; never trusted.
    pub(crate) act: Option<Value>,
}

#[derive(Deserialize)]
struct RawHeader {
    alg: Option<String>,
    typ: Option<String>,
    kid: Option<String>,
    jku: Option<Value>,
    x5u: Option<Value>,
    jwk: Option<Value>,
    x5c: Option<Value>,
    crit: Option<Value>,
}

#[derive(Deserialize)]
struct RawClaims {
    iss: Option<Value>,
    aud: Option<Value>,
    sub: Option<Value>,
    act: Option<Value>,
}

/// Reads the header and the `iss`/`aud` claims of a compact JWS without verifying it.
pub(crate) fn inspect(token: &str) -> Result<Unverified, VerifyError> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(_sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(VerifyError::Malformed("not a compact JWS"));
    };
    let header: RawHeader = decode_part(header, "header")?;
    for (present, name) in [
        (header.jku.is_some(), "jku"),
        (header.x5u.is_some(), "x5u"),
        (header.jwk.is_some(), "jwk"),
        (header.x5c.is_some(), "x5c"),
    ] {
        if present {
            return Err(VerifyError::KeyInHeader(name));
        }
    }
    if header.crit.is_some() {
        // RFC 7515 4.1.11: a recipient that does not understand a critical extension must
        // reject the token. We understand none.
        return Err(VerifyError::Malformed("unsupported `crit` header"));
    }
    let alg = match header.alg.as_deref() {
        None => return Err(VerifyError::Malformed("header has no alg")),
        Some(a) if a.eq_ignore_ascii_case("none") => return Err(VerifyError::AlgorithmNone),
        Some(a) => a
            .parse::<Algorithm>()
            .map_err(|_| VerifyError::Malformed("unknown alg"))?,
    };
    let claims: RawClaims = decode_part(payload, "claims")?;
    let iss = match claims.iss {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(_) => return Err(VerifyError::Malformed("iss is not a string")),
    };
    let aud = match claims.aud {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => vec![s],
        Some(Value::Array(items)) => items
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Ok(s),
                _ => Err(VerifyError::Malformed("aud holds a non-string")),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(VerifyError::Malformed("aud is not a string or list")),
    };
    let sub = match claims.sub {
        Some(Value::String(s)) => Some(s),
        _ => None,
    };
    Ok(Unverified {
        alg,
        typ: header.typ,
        kid: header.kid,
        iss,
        aud,
        sub,
        act: claims.act,
    })
}

pub(crate) fn decode_part<T: serde::de::DeserializeOwned>(
    part: &str,
    what: &'static str,
) -> Result<T, VerifyError> {
    let bytes = URL_SAFE_NO_PAD.decode(part).map_err(|_| {
        VerifyError::Malformed(if what == "header" {
            "header is not base64url"
        } else {
            "claims are not base64url"
        })
    })?;
    let not_an_object = VerifyError::Malformed(if what == "header" {
        "header is not a JSON object"
    } else {
        "claims are not a JSON object"
    });
    // serde also reads a struct from a JSON array (`["ES256", null, ...]` as a header); RFC
    // 7515 and 7519 say header and claims are objects, and jsonwebtoken reads them so.
    if bytes.trim_ascii_start().first() != Some(&b'{') {
        return Err(not_an_object);
    }
    serde_json::from_slice(&bytes).map_err(|_| not_an_object)
}

/// The instant an `exp` names, or [`VerifyError::ExpOutOfRange`] when it names no real date.
///
/// Every verifier converts `exp` here, and nowhere else: `exp as i64` turns 2^64 - 1 into -1
/// (1969), and a date past year 9999 cannot be printed in an audit event or a cache entry.
/// `jsonwebtoken` accepts any `exp` up to 2^64 - 1 as "not expired", so the bound is ours.
pub(crate) fn expiry(exp: u64) -> Result<OffsetDateTime, VerifyError> {
    if exp > MAX_EXP {
        return Err(VerifyError::ExpOutOfRange);
    }
    let secs = i64::try_from(exp).map_err(|_| VerifyError::ExpOutOfRange)?;
    OffsetDateTime::from_unix_timestamp(secs).map_err(|_| VerifyError::ExpOutOfRange)
}

/// The verified token's `exp` (a whole number of seconds, checked by `jsonwebtoken` already)
/// and the instant it names ([`expiry`]).
pub(crate) fn exp_claim(
    claims: &serde_json::Map<String, Value>,
) -> Result<(u64, OffsetDateTime), VerifyError> {
    let exp = claims
        .get("exp")
        .and_then(Value::as_u64)
        .ok_or(VerifyError::Malformed("exp is not a number"))?;
    Ok((exp, expiry(exp)?))
}

/// Verifies `token`'s signature and standard claims with `jsonwebtoken`, and returns its
/// claims; every JWT verifier decodes here, so every failure is named the same way.
pub(crate) fn decode(
    token: &str,
    key: &jsonwebtoken::DecodingKey,
    validation: &jsonwebtoken::Validation,
) -> Result<serde_json::Map<String, Value>, VerifyError> {
    jsonwebtoken::decode::<serde_json::Map<String, Value>>(token, key, validation)
        .map(|data| data.claims)
        .map_err(|e| match map_error(&e) {
            // `jsonwebtoken` calls an `exp` it cannot read as seconds (-1, 1e300, "soon")
            // missing. It checks claims only after the signature, so the payload read again
            // here is the signed one: an `exp` that is there names no real date.
            VerifyError::MissingClaim("exp") if has_exp(token) => VerifyError::ExpOutOfRange,
            other => other,
        })
}

/// Whether the (already verified) payload of `token` has a non-null `exp`.
fn has_exp(token: &str) -> bool {
    #[derive(Deserialize)]
    struct Exp {
        exp: Option<Value>,
    }
    token
        .split('.')
        .nth(1)
        .and_then(|payload| decode_part::<Exp>(payload, "claims").ok())
        .is_some_and(|claims| claims.exp.is_some_and(|v| !v.is_null()))
}

/// Maps a `jsonwebtoken` error to the check that failed.
fn map_error(e: &jsonwebtoken::errors::Error) -> VerifyError {
    use jsonwebtoken::errors::ErrorKind as K;
    match e.kind() {
        K::InvalidSignature => VerifyError::BadSignature,
        K::ExpiredSignature => VerifyError::Expired,
        K::ImmatureSignature => VerifyError::NotYetValid,
        K::InvalidAudience => VerifyError::WrongAudience,
        K::InvalidIssuer => VerifyError::WrongIssuer,
        K::MissingRequiredClaim(c) => VerifyError::MissingClaim(match c.as_str() {
            "exp" => "exp",
            "iss" => "iss",
            "aud" => "aud",
            "sub" => "sub",
            "nbf" => "nbf",
            _ => "a required claim",
        }),
        // `exp` or `nbf` that `jsonwebtoken` cannot read as seconds from 0 to 2^64 - 1
        // (-1, 1e300, a string): no real date either way. (For a required `exp`,
        // `jsonwebtoken` says "missing" instead: see `decode`.)
        K::InvalidClaimFormat(c) if c == "exp" => VerifyError::ExpOutOfRange,
        K::InvalidClaimFormat(c) if c == "nbf" => VerifyError::Malformed("nbf is out of range"),
        K::InvalidAlgorithm => VerifyError::AlgorithmNotAllowed,
        K::InvalidKeyFormat | K::InvalidEcdsaKey | K::InvalidRsaKey(_) => {
            VerifyError::KeyAlgorithmMismatch
        }
        _ => VerifyError::Malformed("token does not decode"),
    }
}

/// Refuses a token whose `iat` is later than now plus the leeway: a clock that far ahead,
/// or a token minted to start in the future, is not trusted.
pub(crate) fn check_iat(
    claims: &serde_json::Map<String, Value>,
    leeway: u64,
) -> Result<(), VerifyError> {
    if let Some(iat) = claims.get("iat") {
        let iat = iat
            .as_f64()
            .ok_or(VerifyError::Malformed("iat is not a number"))?;
        let now = jsonwebtoken::get_current_timestamp() as f64;
        if iat > now + leeway as f64 {
            return Err(VerifyError::IssuedInFuture);
        }
    }
    Ok(())
}

/// A string claim.
pub(crate) fn str_claim<'a>(
    claims: &'a serde_json::Map<String, Value>,
    name: &'static str,
) -> Result<&'a str, VerifyError> {
    match claims.get(name) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        Some(_) => Err(VerifyError::Malformed("a claim has the wrong type")),
        None => Err(VerifyError::MissingClaim(name)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        URL_SAFE_NO_PAD.encode(s)
    }

    fn token(header: &str, claims: &str) -> String {
        format!("{}.{}.c2ln", b64(header), b64(claims))
    }

    #[test]
    fn reads_header_and_claims() {
        let u = inspect(&token(
            r#"{"alg":"ES256","typ":"JWT","kid":"k1"}"#,
            r#"{"iss":"https://idp","aud":["a","b"]}"#,
        ))
        .unwrap();
        assert_eq!(u.alg, Algorithm::ES256);
        assert_eq!(u.kid.as_deref(), Some("k1"));
        assert_eq!(u.iss.as_deref(), Some("https://idp"));
        assert_eq!(u.aud, vec!["a", "b"]);
    }

    #[test]
    fn expiry_is_bounded_to_year_9999() {
        assert_eq!(
            expiry(MAX_EXP).unwrap(),
            time::macros::datetime!(9999-12-31 23:59:59 UTC)
        );
        assert_eq!(expiry(0).unwrap(), OffsetDateTime::UNIX_EPOCH);
        for exp in [MAX_EXP + 1, i64::MAX as u64, i64::MAX as u64 + 1, u64::MAX] {
            assert_eq!(
                expiry(exp).unwrap_err(),
                VerifyError::ExpOutOfRange,
                "{exp}"
            );
        }
    }

    #[test]
    fn refuses_none_and_key_headers() {
        assert_eq!(
            inspect(&token(r#"{"alg":"none"}"#, "{}")).unwrap_err(),
            VerifyError::AlgorithmNone
        );
        assert_eq!(
            inspect(&token(r#"{"alg":"NoNe"}"#, "{}")).unwrap_err(),
            VerifyError::AlgorithmNone
        );
        for h in ["jku", "x5u", "jwk", "x5c"] {
            let header = format!(r#"{{"alg":"RS256","{h}":"x"}}"#);
            assert_eq!(
                inspect(&token(&header, "{}")).unwrap_err(),
                VerifyError::KeyInHeader(h)
            );
        }
        assert!(inspect("a.b").is_err());
        assert!(inspect(&token(r#"{"alg":"XX1"}"#, "{}")).is_err());
        assert!(inspect(&token(r#"{"alg":"RS256"}"#, r#"{"iss":5}"#)).is_err());
    }

    /// serde reads a struct from an array too: `["ES256",null,...]` was a header with an
    /// `alg`, and `["https://idp",...]` claims with an `iss`.
    #[test]
    fn refuses_header_and_claims_written_as_arrays() {
        let header = r#"["ES256",null,null,null,null,null,null,null]"#;
        assert_eq!(
            inspect(&token(header, "{}")).unwrap_err(),
            VerifyError::Malformed("header is not a JSON object")
        );
        let claims = r#"["https://idp.example.com",null,null,null]"#;
        assert_eq!(
            inspect(&token(r#"{"alg":"ES256"}"#, claims)).unwrap_err(),
            VerifyError::Malformed("claims are not a JSON object")
        );
    }
}
