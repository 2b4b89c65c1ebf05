//! Turning a JWKS document into usable verification keys, one key at a time.
//!
//! A JWK that cannot be used (unknown `kty`, `use: enc`, a symmetric `oct` key, missing or
//! malformed fields, a curve that does not match its `alg`) is skipped alone and logged; the
//! rest of the set still works. Symmetric keys are never taken from a JWKS: a published
//! "secret" is no secret, and accepting one would let anyone mint tokens.

use std::collections::HashMap;
use std::sync::Arc;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};

use crate::jws::VerifyingKey;

/// One verification key.
pub(crate) struct UsableKey {
    pub(crate) kid: Option<String>,
    /// The algorithms this key may verify: the JWK's `alg` if it names one, else every
    /// algorithm its key type and curve allow.
    pub(crate) algorithms: Vec<Algorithm>,
    /// Parsed into aws-lc's form on first use, once per algorithm.
    pub(crate) key: VerifyingKey,
}

impl std::fmt::Debug for UsableKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UsableKey")
            .field("kid", &self.kid)
            .field("algorithms", &self.algorithms)
            .finish_non_exhaustive()
    }
}

/// The usable keys of one JWKS document.
#[derive(Debug)]
pub(crate) struct KeySet {
    /// Looked up by the token's `kid` on every verification that is not a cache hit: hashed
    /// with `foldhash` ([`seeded_hasher`](crate::secret::seeded_hasher)), not SipHash (about
    /// 180 instructions a lookup less). Only the JWKS document inserts; a token's `kid` only
    /// looks up.
    by_kid: HashMap<String, Arc<UsableKey>, foldhash::quality::SeedableRandomState>,
    all: Vec<Arc<UsableKey>>,
    /// How many JWKs were skipped.
    pub(crate) skipped: usize,
}

impl Default for KeySet {
    fn default() -> Self {
        Self {
            by_kid: HashMap::with_hasher(crate::secret::seeded_hasher()),
            all: Vec::new(),
            skipped: 0,
        }
    }
}

/// Why a JWKS document as a whole was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum JwksParseError {
    #[error("JWKS is not a JSON object with a `keys` array")]
    NotAKeySet,
}

impl KeySet {
    /// Parses a JWKS document. Only the document's outer shape can fail it.
    pub(crate) fn parse(body: &[u8], url: &str) -> Result<Self, JwksParseError> {
        #[derive(serde::Deserialize)]
        struct Raw {
            keys: Vec<serde_json::Value>,
        }
        // serde also reads a struct from a JSON array (`[[key, ...]]`); RFC 7517 section 5
        // says a JWK Set is an object, and a parser that takes more than the format is one
        // place where two readers of the same bytes disagree.
        if body.trim_ascii_start().first() != Some(&b'{') {
            return Err(JwksParseError::NotAKeySet);
        }
        let raw: Raw = serde_json::from_slice(body).map_err(|_| JwksParseError::NotAKeySet)?;
        let mut set = KeySet::default();
        for (i, value) in raw.keys.into_iter().enumerate() {
            match usable(value) {
                Ok(key) => {
                    let key = Arc::new(key);
                    if let Some(kid) = &key.kid {
                        // The first key with a kid wins; a set that repeats a kid is broken,
                        // and picking deterministically is better than picking at random.
                        set.by_kid.entry(kid.clone()).or_insert_with(|| key.clone());
                    }
                    set.all.push(key);
                }
                Err(reason) => {
                    set.skipped += 1;
                    tracing::warn!(target: "s2s_auth::jwks", %url, index = i, reason, "skipping unusable JWK");
                }
            }
        }
        Ok(set)
    }

    /// The key for a token's `kid` and `alg`.
    pub(crate) fn find(&self, kid: Option<&str>, alg: Algorithm) -> Lookup {
        match kid {
            Some(kid) => match self.by_kid.get(kid) {
                Some(key) if key.algorithms.contains(&alg) => Lookup::Found(key.clone()),
                Some(_) => Lookup::AlgorithmMismatch,
                None => Lookup::UnknownKid,
            },
            None => {
                let mut matching = self.all.iter().filter(|k| k.algorithms.contains(&alg));
                match (matching.next(), matching.next()) {
                    (Some(key), None) => Lookup::Found(key.clone()),
                    (None, _) => Lookup::UnknownKid,
                    (Some(_), Some(_)) => Lookup::KidRequired,
                }
            }
        }
    }

    pub(crate) fn contains_kid(&self, kid: &str) -> bool {
        self.by_kid.contains_key(kid)
    }

    pub(crate) fn len(&self) -> usize {
        self.all.len()
    }

    /// The key ids of the set (for the fuzz targets, which look each one up).
    #[cfg(feature = "fuzzing")]
    pub(crate) fn kids(&self) -> impl Iterator<Item = &str> {
        self.by_kid.keys().map(String::as_str)
    }
}

/// The result of looking a key up in one set.
#[derive(Debug)]
pub(crate) enum Lookup {
    Found(Arc<UsableKey>),
    UnknownKid,
    AlgorithmMismatch,
    KidRequired,
}

fn usable(value: serde_json::Value) -> Result<UsableKey, &'static str> {
    let jwk: Jwk = serde_json::from_value(value).map_err(|_| "malformed or incomplete JWK")?;
    if jwk.common.public_key_use == Some(PublicKeyUse::Encryption) {
        return Err("`use: enc` key");
    }
    let by_type: Vec<Algorithm> = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => AlgorithmFamily::Rsa.algorithms().to_vec(),
        AlgorithmParameters::EllipticCurve(p) => match p.curve {
            EllipticCurve::P256 => vec![Algorithm::ES256],
            EllipticCurve::P384 => vec![Algorithm::ES384],
            _ => return Err("unsupported elliptic curve"),
        },
        AlgorithmParameters::OctetKeyPair(p) => match p.curve {
            EllipticCurve::Ed25519 => vec![Algorithm::EdDSA],
            _ => return Err("unsupported OKP curve"),
        },
        AlgorithmParameters::OctetKey(_) => return Err("symmetric (oct) key in a JWKS"),
        _ => return Err("unknown key type"),
    };
    let algorithms = match jwk.common.key_algorithm {
        None => by_type,
        Some(alg) => {
            let alg = signing_algorithm(alg).ok_or("`alg` is not a signature algorithm")?;
            if !by_type.contains(&alg) {
                return Err("`alg` does not match the key type or curve");
            }
            vec![alg]
        }
    };
    let key = DecodingKey::from_jwk(&jwk).map_err(|_| "key material does not decode")?;
    Ok(UsableKey {
        kid: jwk.common.key_id.clone(),
        algorithms,
        key: key.into(),
    })
}

fn signing_algorithm(alg: KeyAlgorithm) -> Option<Algorithm> {
    Some(match alg {
        KeyAlgorithm::ES256 => Algorithm::ES256,
        KeyAlgorithm::ES384 => Algorithm::ES384,
        KeyAlgorithm::RS256 => Algorithm::RS256,
        KeyAlgorithm::RS384 => Algorithm::RS384,
        KeyAlgorithm::RS512 => Algorithm::RS512,
        KeyAlgorithm::PS256 => Algorithm::PS256,
        KeyAlgorithm::PS384 => Algorithm::PS384,
        KeyAlgorithm::PS512 => Algorithm::PS512,
        KeyAlgorithm::EdDSA => Algorithm::EdDSA,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const EC: &str = r#"{"kty":"EC","crv":"P-256","kid":"ec1","alg":"ES256","use":"sig",
        "x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}"#;

    #[test]
    fn skips_bad_keys_one_by_one() {
        let body = format!(
            r#"{{"keys":[{EC},
            {{"kty":"oct","k":"c2VjcmV0","kid":"hmac"}},
            {{"kty":"EC","crv":"P-256","kid":"enc","use":"enc","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}},
            {{"kty":"EC","crv":"P-256","kid":"mismatch","alg":"RS256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}},
            {{"kty":"XYZ","kid":"weird"}},
            {{"kid":"nothing"}},
            42]}}"#
        );
        let set = KeySet::parse(body.as_bytes(), "test").unwrap();
        assert_eq!(set.len(), 1);
        assert_eq!(set.skipped, 6);
        assert!(matches!(
            set.find(Some("ec1"), Algorithm::ES256),
            Lookup::Found(_)
        ));
        assert!(matches!(
            set.find(Some("ec1"), Algorithm::RS256),
            Lookup::AlgorithmMismatch
        ));
        assert!(matches!(
            set.find(Some("hmac"), Algorithm::HS256),
            Lookup::UnknownKid
        ));
        assert!(matches!(set.find(None, Algorithm::ES256), Lookup::Found(_)));
    }

    #[test]
    fn refuses_documents_that_are_not_key_sets() {
        for body in [&b"[]"[..], b"{}", b"not json", b"{\"keys\":{}}"] {
            assert_eq!(
                KeySet::parse(body, "test").unwrap_err(),
                JwksParseError::NotAKeySet
            );
        }
    }

    /// Found by the `jwks` fuzz target: serde reads a struct from an array too, so
    /// `[[<jwk>]]` was a key set with that key.
    #[test]
    fn refuses_a_key_set_written_as_an_array() {
        for body in [
            format!("[[{EC}]]"),
            format!(" \t[[{EC}]]"),
            "[[]]".to_owned(),
        ] {
            assert_eq!(
                KeySet::parse(body.as_bytes(), "test").unwrap_err(),
                JwksParseError::NotAKeySet
            );
        }
        let object = format!(" \n{{\"keys\":[{EC}]}}");
        assert_eq!(KeySet::parse(object.as_bytes(), "test").unwrap().len(), 1);
    }
}
