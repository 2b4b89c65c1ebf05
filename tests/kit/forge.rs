//! Tokens built by hand: standard claims, any header signed with any key, unsigned tokens,
//! Backstage's legacy HS256 tokens, and the parts of a token read back (to change them).

use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

/// Seconds since the epoch.
pub fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

/// Unpadded base64url (JWT segments).
pub fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Lower-case hex of `n` random bytes: a `kid`, `jti` or name nobody else uses.
pub fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    aws_lc_rs::rand::fill(&mut bytes).expect("random bytes");
    hex(&bytes)
}

/// A JWS part (header or claims), decoded.
pub fn decode_part(part: &str) -> Value {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("a JSON object")
}

/// The unverified header and claims of a compact JWS.
pub fn header_and_claims(token: &str) -> (Value, Value) {
    let mut parts = token.split('.');
    let header = decode_part(parts.next().expect("a header"));
    let claims = decode_part(parts.next().expect("claims"));
    (header, claims)
}

/// Standard claims: `iss`, `aud`, `sub`, `iat` now, `exp` in ten minutes.
pub fn claims(iss: &str, aud: &str, sub: &str) -> Value {
    json!({ "iss": iss, "aud": aud, "sub": sub, "iat": now(), "exp": now() + 600 })
}

/// `b64(header).b64(claims).signature` with any header.
pub fn sign_raw(header: &Value, claims: &Value, key: &EncodingKey, alg: Algorithm) -> String {
    let message = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    let signature = jsonwebtoken::crypto::sign(message.as_bytes(), key, alg).expect("signing");
    format!("{message}.{signature}")
}

/// `b64(header).b64(claims).` — no signature at all.
pub fn unsigned(header: &Value, claims: &Value) -> String {
    format!(
        "{}.{}.",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    )
}

/// A Backstage legacy token: HS256 signed with the base64-decoded `secret_base64`.
pub fn legacy_token(secret_base64: &str, claims: &Value) -> String {
    let key = EncodingKey::from_base64_secret(secret_base64).expect("base64 secret");
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &key).expect("signing")
}

/// Claims of a valid legacy token: `sub: backstage-server`, `exp` in an hour, no `aud`.
pub fn legacy_claims() -> Value {
    legacy_claims_living(3600)
}

/// [`legacy_claims`] with `exp` in `secs` seconds.
pub fn legacy_claims_living(secs: u64) -> Value {
    json!({ "sub": "backstage-server", "iat": now(), "exp": now() + secs })
}
