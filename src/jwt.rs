//! JWT plumbing shared by every JWT verifier: reading the header and claims once (to choose
//! a verifier, before anything is trusted), then verifying the signature over the signing
//! input and checking the claims from that one read, each failure named by the check that
//! failed.
//!
//! The header is parsed here rather than by `jsonwebtoken::decode_header`, so that each
//! refusal is precise: `alg: none` and the key-carrying headers `jku`, `x5u`, `jwk`, `x5c`
//! get their own error instead of a generic parse failure. Those headers are refused
//! outright: keys come only from configured JWKS URLs, and a token that tries to name its own
//! key is an attack or a misconfiguration either way.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, Validation};
use serde::Deserialize;
use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::error::VerifyError;
use crate::jws::VerifyingKey;

/// The latest `exp` accepted: 9999-12-31T23:59:59Z, the last second `time` represents
/// without its `large-dates` feature (which another crate in the build may turn on, so the
/// bound is written out rather than left to the conversion).
pub(crate) const MAX_EXP: u64 = 253_402_300_799;

/// What a token says about itself, before anything is verified: its header and its claims,
/// read once, here. Classification chooses a verifier from them; [`verify`] then checks the
/// signature over the same bytes and the claims from this same read, so no part of the token
/// is parsed twice and no two readers of it can disagree.
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
    /// Every claim; trusted only once [`verify`] has checked the signature over them.
    claims: Map<String, Value>,
    /// The token's length, and where its signing input (`header.payload`) ends: [`verify`]
    /// checks it is given the token these claims were read from.
    token_len: usize,
    signing_input_end: usize,
}

impl Unverified {
    /// An unverified claim, for choosing where the key comes from; never trusted.
    pub(crate) fn claim(&self, name: &str) -> Option<&Value> {
        self.claims.get(name)
    }
}

impl std::fmt::Debug for Unverified {
    /// The header fields and the claims that choose a verifier; not the other claims (an
    /// on-behalf-of token's `obo` claim is a credential).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Unverified")
            .field("alg", &self.alg)
            .field("typ", &self.typ)
            .field("kid", &self.kid)
            .field("iss", &self.iss)
            .field("aud", &self.aud)
            .field("sub", &self.sub)
            .finish_non_exhaustive()
    }
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

/// Reads the header and claims of a compact JWS without verifying it.
pub(crate) fn inspect(token: &str) -> Result<Unverified, VerifyError> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(_sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(VerifyError::Malformed("not a compact JWS"));
    };
    let signing_input_end = header.len() + 1 + payload.len();
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
    let claims = decode_claims(payload)?;
    let iss = match claims.get("iss") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(VerifyError::Malformed("iss is not a string")),
    };
    let aud = match claims.get("aud") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.clone()),
                _ => Err(VerifyError::Malformed("aud holds a non-string")),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(VerifyError::Malformed("aud is not a string or list")),
    };
    let sub = match claims.get("sub") {
        Some(Value::String(s)) => Some(s.clone()),
        _ => None,
    };
    let act = claims.get("act").filter(|v| !v.is_null()).cloned();
    Ok(Unverified {
        alg,
        typ: header.typ,
        kid: header.kid,
        iss,
        aud,
        sub,
        act,
        claims,
        token_len: token.len(),
        signing_input_end,
    })
}

/// The claims of a JWS payload: a JSON object in which no claim appears twice (RFC 7519
/// section 4 lets a parser take the last of two; two readers of one token that take
/// different ones disagree about who it is for, so a repeated claim is refused).
fn decode_claims(payload: &str) -> Result<Map<String, Value>, VerifyError> {
    struct Unique(Map<String, Value>);
    impl<'de> Deserialize<'de> for Unique {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct Visit;
            impl<'de> serde::de::Visitor<'de> for Visit {
                type Value = Map<String, Value>;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("a JSON object without repeated names")
                }
                fn visit_map<A: serde::de::MapAccess<'de>>(
                    self,
                    mut access: A,
                ) -> Result<Self::Value, A::Error> {
                    let mut claims = Map::new();
                    while let Some((name, value)) = access.next_entry::<String, Value>()? {
                        if claims.insert(name, value).is_some() {
                            return Err(serde::de::Error::custom(REPEATED));
                        }
                    }
                    Ok(claims)
                }
            }
            d.deserialize_map(Visit).map(Unique)
        }
    }
    const REPEATED: &str = "repeated claim";
    let bytes = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| VerifyError::Malformed("claims are not base64url"))?;
    match serde_json::from_slice::<Unique>(&bytes) {
        Ok(Unique(claims)) => Ok(claims),
        Err(e) if e.to_string().starts_with(REPEATED) => {
            Err(VerifyError::Malformed("a claim appears twice"))
        }
        Err(_) => Err(VerifyError::Malformed("claims are not a JSON object")),
    }
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

/// The verified token's `exp` (a whole number of seconds, checked by [`verify`] already)
/// and the instant it names ([`expiry`]).
pub(crate) fn exp_claim(claims: &Map<String, Value>) -> Result<(u64, OffsetDateTime), VerifyError> {
    let exp = claims
        .get("exp")
        .and_then(Value::as_u64)
        .ok_or(VerifyError::Malformed("exp is not a number"))?;
    Ok((exp, expiry(exp)?))
}

/// Verifies the signature of `token` (the token `u` was read from) with `key`, then its
/// standard claims as `validation` asks, and returns the claims, now verified. Every JWT
/// verifier checks here, so every failure is named the same way.
///
/// The checks and their order are `jsonwebtoken::decode`'s (a test compares the two on a
/// grid of claims and options): the algorithm must be allowed and of the key's family, the
/// signature must verify, and only then are the claims looked at ([`validate`]). The
/// difference is the work: the header and claims are not parsed again, and the key is
/// parsed once ([`VerifyingKey`]).
pub(crate) fn verify<'u>(
    token: &str,
    u: &'u Unverified,
    key: &VerifyingKey,
    validation: &Validation,
) -> Result<&'u Map<String, Value>, VerifyError> {
    let end = u.signing_input_end;
    if token.len() != u.token_len || token.as_bytes().get(end) != Some(&b'.') {
        // Not the token `u` was read from: a bug in the caller, refused all the same.
        return Err(VerifyError::Malformed("token does not decode"));
    }
    if !validation.algorithms.contains(&u.alg) {
        return Err(VerifyError::AlgorithmNotAllowed);
    }
    if key.family() != u.alg.family() {
        return Err(VerifyError::KeyAlgorithmMismatch);
    }
    if validation
        .algorithms
        .iter()
        .any(|a| a.family() != key.family())
    {
        return Err(VerifyError::AlgorithmNotAllowed);
    }
    key.verify(u.alg, &token.as_bytes()[..end], &token[end + 1..])?;
    validate(&u.claims, validation, jsonwebtoken::get_current_timestamp())?;
    Ok(&u.claims)
}

/// A standard claim, read as `jsonwebtoken` reads it for validation.
enum Claim<T> {
    Absent,
    /// Present as `null`.
    Null,
    Read(T),
    /// Present, of a type the claim cannot have.
    Unreadable,
}

impl<'a, T> Claim<T> {
    fn read(
        claims: &'a Map<String, Value>,
        name: &str,
        f: impl FnOnce(&'a Value) -> Option<T>,
    ) -> Self {
        match claims.get(name) {
            None => Claim::Absent,
            Some(Value::Null) => Claim::Null,
            Some(v) => f(v).map_or(Claim::Unreadable, Claim::Read),
        }
    }

    fn is_read(&self) -> bool {
        matches!(self, Claim::Read(_))
    }
}

/// A NumericDate as `jsonwebtoken` takes it: a whole number of seconds from 0 to 2^64 - 1,
/// or a finite, non-negative float below 2^64, rounded.
fn seconds(v: &Value) -> Option<u64> {
    let n = v.as_number()?;
    n.as_u64().or_else(|| {
        let f = n.as_f64()?;
        (n.is_f64() && f.is_finite() && f >= 0.0 && f < u64::MAX as f64).then(|| f.round() as u64)
    })
}

/// A string, or a list of strings (`iss` and `aud`).
fn strings(v: &Value) -> Option<Vec<&str>> {
    match v {
        Value::String(s) => Some(vec![s.as_str()]),
        Value::Array(items) => items.iter().map(Value::as_str).collect(),
        _ => None,
    }
}

/// Checks the standard claims as `validation` asks, at `now`, with `jsonwebtoken`'s rules:
/// the required claims present and readable, `exp` and `nbf` within the leeway, `sub`, `iss`
/// and `aud` among the accepted values (a list of `iss` or `aud` values passes when any of
/// them is accepted). An `exp` that is there but names no real date is
/// [`VerifyError::ExpOutOfRange`], not a missing claim.
fn validate(
    claims: &Map<String, Value>,
    validation: &Validation,
    now: u64,
) -> Result<(), VerifyError> {
    let exp = Claim::read(claims, "exp", seconds);
    let nbf = Claim::read(claims, "nbf", seconds);
    let sub = Claim::read(claims, "sub", Value::as_str);
    let iss = Claim::read(claims, "iss", strings);
    let aud = Claim::read(claims, "aud", strings);
    let required = |name: &str| validation.required_spec_claims.contains(name);
    if required("exp") && !exp.is_read() {
        return Err(match exp {
            Claim::Unreadable => VerifyError::ExpOutOfRange,
            _ => VerifyError::MissingClaim("exp"),
        });
    }
    for (name, present) in [
        ("sub", sub.is_read()),
        ("iss", iss.is_read()),
        ("aud", aud.is_read()),
        ("nbf", nbf.is_read()),
    ] {
        if required(name) && !present {
            return Err(VerifyError::MissingClaim(name));
        }
    }
    if validation.validate_exp || validation.validate_nbf {
        if validation.validate_exp && matches!(exp, Claim::Null | Claim::Unreadable) {
            return Err(VerifyError::ExpOutOfRange);
        }
        if validation.validate_nbf && matches!(nbf, Claim::Null | Claim::Unreadable) {
            return Err(VerifyError::Malformed("nbf is out of range"));
        }
        let early = validation.reject_tokens_expiring_in_less_than;
        if let Claim::Read(exp) = exp {
            if exp < early {
                return Err(VerifyError::Malformed("token expires too soon"));
            }
            if validation.validate_exp && exp - early < now.saturating_sub(validation.leeway) {
                return Err(VerifyError::Expired);
            }
        }
        if let Claim::Read(nbf) = nbf
            && validation.validate_nbf
            && nbf > now.saturating_add(validation.leeway)
        {
            return Err(VerifyError::NotYetValid);
        }
    }
    if let (Claim::Read(sub), Some(accepted)) = (&sub, validation.sub.as_deref())
        && *sub != accepted
    {
        return Err(VerifyError::WrongSubject);
    }
    if let (Claim::Read(iss), Some(accepted)) = (&iss, &validation.iss)
        && !iss.iter().any(|i| accepted.contains(*i))
    {
        return Err(VerifyError::WrongIssuer);
    }
    if !validation.validate_aud {
        return Ok(());
    }
    match (&aud, &validation.aud) {
        (Claim::Read(_), None) => Err(VerifyError::WrongAudience),
        (Claim::Read(aud), Some(accepted)) if !aud.iter().any(|a| accepted.contains(*a)) => {
            Err(VerifyError::WrongAudience)
        }
        _ => Ok(()),
    }
}

/// Refuses a token whose `iat` is later than now plus the leeway: a clock that far ahead,
/// or a token minted to start in the future, is not trusted.
pub(crate) fn check_iat(claims: &Map<String, Value>, leeway: u64) -> Result<(), VerifyError> {
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
    claims: &'a Map<String, Value>,
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

    #[test]
    fn refuses_a_repeated_claim() {
        for claims in [
            r#"{"sub":"a","sub":"b"}"#,
            r#"{"aud":"x","exp":1,"aud":"y"}"#,
            r#"{"azp":"ci","azp":"evil"}"#,
        ] {
            assert_eq!(
                inspect(&token(r#"{"alg":"ES256"}"#, claims)).unwrap_err(),
                VerifyError::Malformed("a claim appears twice"),
                "{claims}"
            );
        }
        // The same name at another depth is not a repeat.
        let u = inspect(&token(
            r#"{"alg":"ES256"}"#,
            r#"{"sub":"a","act":{"sub":"b"}}"#,
        ));
        assert_eq!(u.unwrap().sub.as_deref(), Some("a"));
    }

    /// `verify` checks the token it is given is the one the claims were read from.
    #[test]
    fn verify_refuses_another_token_than_the_one_read() {
        let secret = b"0123456789abcdef0123456789abcdef";
        let key = VerifyingKey::hmac(secret);
        let enc = jsonwebtoken::EncodingKey::from_secret(secret);
        let header = jsonwebtoken::Header::new(Algorithm::HS256);
        let one = jsonwebtoken::encode(&header, &serde_json::json!({"sub": "a"}), &enc).unwrap();
        let other = jsonwebtoken::encode(&header, &serde_json::json!({"sub": "bb"}), &enc).unwrap();
        let mut v = Validation::new(Algorithm::HS256);
        v.required_spec_claims.clear();
        v.validate_exp = false;
        let u = inspect(&one).unwrap();
        assert_eq!(verify(&one, &u, &key, &v).unwrap()["sub"], "a");
        assert_eq!(
            verify(&other, &u, &key, &v).unwrap_err(),
            VerifyError::Malformed("token does not decode")
        );
    }

    /// How the crate named `jsonwebtoken::decode`'s errors before it verified tokens itself.
    fn jsonwebtoken_verdict(
        token: &str,
        claims: &Value,
        v: &Validation,
    ) -> Result<(), VerifyError> {
        use jsonwebtoken::errors::ErrorKind as K;
        let key = jsonwebtoken::DecodingKey::from_secret(SECRET);
        let Err(e) = jsonwebtoken::decode::<Map<String, Value>>(token, &key, v) else {
            return Ok(());
        };
        Err(match e.kind() {
            K::ExpiredSignature => VerifyError::Expired,
            K::ImmatureSignature => VerifyError::NotYetValid,
            K::InvalidAudience => VerifyError::WrongAudience,
            K::InvalidIssuer => VerifyError::WrongIssuer,
            K::InvalidSubject => VerifyError::WrongSubject,
            // An `exp` that is there but does not read as seconds: no real date.
            K::MissingRequiredClaim(c) if c == "exp" && !claims["exp"].is_null() => {
                VerifyError::ExpOutOfRange
            }
            K::MissingRequiredClaim(c) => VerifyError::MissingClaim(match c.as_str() {
                "exp" => "exp",
                "iss" => "iss",
                "aud" => "aud",
                "sub" => "sub",
                "nbf" => "nbf",
                _ => "a required claim",
            }),
            K::InvalidClaimFormat(c) if c == "exp" => VerifyError::ExpOutOfRange,
            K::InvalidClaimFormat(c) if c == "nbf" => VerifyError::Malformed("nbf is out of range"),
            other => panic!("unexpected jsonwebtoken error {other:?}"),
        })
    }

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    /// The claim checks give `jsonwebtoken::decode`'s verdict, error for error, on 40,000
    /// combinations of claims (absent, null, in and out of range, of the wrong type, lists)
    /// and options (required claims, issuers, audiences, leeway, what is validated).
    #[test]
    fn claim_checks_agree_with_jsonwebtoken() {
        use serde_json::json;
        let now = jsonwebtoken::get_current_timestamp();
        let absent = Value::Null; // `Value::Null` here means: leave the claim out.
        let times = |base: u64| {
            vec![
                absent.clone(),
                json!(null),
                json!(base + 300),
                json!(base - 30),
                json!(base - 300),
                json!((base + 300) as f64 + 0.4),
                json!(1e300),
                json!(-1),
                json!("soon"),
                json!(u64::MAX),
                json!(true),
            ]
        };
        let exps = times(now);
        let nbfs = times(now);
        let names = |a: &str, b: &str| {
            vec![
                absent.clone(),
                json!(null),
                json!(a),
                json!(b),
                json!([b, a]),
                json!([b]),
                json!([]),
                json!([5]),
                json!(5),
            ]
        };
        let isss = names("https://a", "https://b");
        let auds = names("svc", "other");
        let subs = vec![
            absent.clone(),
            json!(null),
            json!("x"),
            json!("y"),
            json!(5),
        ];
        let required: [&[&str]; 6] = [
            &["exp"],
            &["exp", "sub"],
            &["exp", "iss", "aud"],
            &[],
            &["nbf"],
            &["aud"],
        ];
        let enc = jsonwebtoken::EncodingKey::from_secret(SECRET);
        let key = VerifyingKey::hmac(SECRET);
        let header = jsonwebtoken::Header::new(Algorithm::HS256);
        // A fixed pseudo-random walk through the grid, the same on every run.
        let mut state: u64 = 0x5eed_1234_abcd_ef01;
        let mut pick = |n: usize| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((state >> 33) as usize) % n
        };
        let mut compared = 0;
        for _ in 0..40_000 {
            let mut claims = Map::new();
            for (name, values) in [
                ("exp", &exps),
                ("nbf", &nbfs),
                ("iss", &isss),
                ("aud", &auds),
                ("sub", &subs),
            ] {
                let i = pick(values.len());
                // Index 0 is "absent"; a JSON null elsewhere is a present null.
                if i != 0 {
                    claims.insert(name.to_owned(), values[i].clone());
                }
            }
            let mut v = Validation::new(Algorithm::HS256);
            let names = required[pick(required.len())];
            v.set_required_spec_claims(names);
            v.leeway = [0, 60][pick(2)];
            v.validate_exp = pick(4) != 0;
            v.validate_nbf = pick(2) == 0;
            v.validate_aud = pick(4) != 0;
            if pick(2) == 0 {
                v.set_issuer(&["https://a"]);
            }
            if pick(3) != 0 {
                v.set_audience(&["svc"]);
            }
            if pick(8) == 0 {
                v.sub = Some("x".to_owned());
            }
            let claims = Value::Object(claims);
            let token = jsonwebtoken::encode(&header, &claims, &enc).unwrap();
            let u = inspect(&token);
            let ours = u
                .as_ref()
                .map_err(Clone::clone)
                .and_then(|u| verify(&token, u, &key, &v).map(|_| ()));
            if let Err(VerifyError::Malformed(
                "iss is not a string" | "aud holds a non-string" | "aud is not a string or list",
            )) = u
            {
                // Refused before any verifier is chosen, stricter than `jsonwebtoken`.
                continue;
            }
            let theirs = jsonwebtoken_verdict(&token, &claims, &v);
            let readable = |name: &str| match claims.get(name) {
                None | Some(Value::Null) => false,
                Some(v) if name == "exp" || name == "nbf" => seconds(v).is_some(),
                Some(v) if name == "sub" => v.is_string(),
                Some(v) => strings(v).is_some(),
            };
            let missing = names.iter().filter(|n| !readable(n)).count();
            if missing > 1 {
                // `jsonwebtoken` checks required claims in a `HashSet`'s order: which one it
                // names first varies; that one is missing does not.
                assert_eq!(ours.is_ok(), theirs.is_ok(), "{claims} {v:?}");
            } else {
                assert_eq!(ours, theirs, "{claims} {v:?}");
            }
            compared += 1;
        }
        // The rest are refused before any verifier is chosen (an `iss` or `aud` of another type).
        assert!(compared > 12_000, "{compared}");
    }
}
