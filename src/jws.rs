//! Signature verification over a JWS signing input, with keys parsed once.
//!
//! `jsonwebtoken::decode` hands aws-lc an RSA key as its modulus and exponent on every call,
//! and aws-lc then rebuilds the key and its Montgomery context each time: about 48,000
//! instructions of a 295,000-instruction RS256 verification (BENCHMARKS.md, issue 11). A
//! [`VerifyingKey`] keeps the same key material (read from the JWK by `jsonwebtoken`, so
//! the JWK parsing is the one the crate has always used) and parses it into aws-lc's form
//! the first time it verifies with an algorithm; later tokens reuse the parsed key.
//!
//! The primitives are the ones `jsonwebtoken`'s aws-lc backend uses, algorithm for
//! algorithm: `RSA_PKCS1_2048_8192_SHA{256,384,512}`, `RSA_PSS_2048_8192_SHA{256,384,512}`,
//! `ECDSA_P{256,384}_SHA{256,384}_FIXED`, `ED25519`, and HMAC with a constant-time compare.
//! So a token verifies here exactly when it verifies there (a test signs with every
//! algorithm and checks both agree, forged signatures included).

use std::borrow::Cow;
use std::sync::OnceLock;

use aws_lc_rs::hmac;
use aws_lc_rs::signature::{self as sig, ParsedPublicKey, RsaPublicKeyComponents};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, DecodingKeyKind};

use crate::error::VerifyError;

/// How many algorithms `jsonwebtoken::Algorithm` has: one parsed key slot each.
const ALGORITHMS: usize = 12;

/// A verification key (a public key, or a legacy HMAC secret), parsed into aws-lc's form on
/// its first use with each algorithm. Its `Debug` shows the key family only.
pub(crate) struct VerifyingKey {
    /// The material, as `jsonwebtoken` read it (zeroed when dropped, redacted in `Debug`).
    key: DecodingKey,
    /// One parsed key per algorithm, by [`index`]; `None` when the material does not form a
    /// key for that algorithm (every signature then fails, as it does in `jsonwebtoken`).
    parsed: [OnceLock<Option<Parsed>>; ALGORITHMS],
}

enum Parsed {
    Public(ParsedPublicKey),
    // Boxed: an HMAC key holds its precomputed state inline (over a kilobyte).
    Hmac(Box<hmac::Key>),
}

impl std::fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("family", &self.key.family())
            .finish_non_exhaustive()
    }
}

impl From<DecodingKey> for VerifyingKey {
    fn from(key: DecodingKey) -> Self {
        Self {
            key,
            parsed: Default::default(),
        }
    }
}

impl VerifyingKey {
    /// An HMAC secret (legacy tokens).
    pub(crate) fn hmac(secret: &[u8]) -> Self {
        DecodingKey::from_secret(secret).into()
    }

    /// The key's family (RSA, EC, Ed or HMAC).
    pub(crate) fn family(&self) -> AlgorithmFamily {
        self.key.family()
    }

    /// Checks `signature` (base64url, as in the token) over `message` (the signing input,
    /// `header.payload`) with `alg`. The caller has checked that `alg` is allowed; a key of
    /// another family is [`VerifyError::KeyAlgorithmMismatch`], as `jsonwebtoken` names it.
    pub(crate) fn verify(
        &self,
        alg: Algorithm,
        message: &[u8],
        signature: &str,
    ) -> Result<(), VerifyError> {
        if alg.family() != self.key.family() {
            return Err(VerifyError::KeyAlgorithmMismatch);
        }
        let slot = index(alg).ok_or(VerifyError::AlgorithmNotAllowed)?;
        let mut buf = [0u8; 1024];
        let signature = base64url(signature, &mut buf)
            .map_err(|_| VerifyError::Malformed("signature is not base64url"))?;
        let parsed = self.parsed[slot].get_or_init(|| self.parse(alg));
        let ok = match parsed {
            Some(Parsed::Public(key)) => key.verify_sig(message, &signature).is_ok(),
            Some(Parsed::Hmac(key)) => hmac::verify(key, message, &signature).is_ok(),
            None => false,
        };
        if ok {
            Ok(())
        } else {
            Err(VerifyError::BadSignature)
        }
    }

    fn parse(&self, alg: Algorithm) -> Option<Parsed> {
        use Algorithm as A;
        let rsa = |params: &'static sig::RsaParameters| match self.key.kind() {
            DecodingKeyKind::RsaModulusExponent { n, e } => RsaPublicKeyComponents { n, e }
                .to_parsed_public_key(params)
                .ok()
                .map(Parsed::Public),
            DecodingKeyKind::SecretOrDer(der) => {
                ParsedPublicKey::new(params, der).ok().map(Parsed::Public)
            }
        };
        let bytes = || match self.key.kind() {
            DecodingKeyKind::SecretOrDer(bytes) => Some(bytes.as_slice()),
            DecodingKeyKind::RsaModulusExponent { .. } => None,
        };
        let public = |alg: &'static dyn sig::VerificationAlgorithm| {
            ParsedPublicKey::new(alg, bytes()?).ok().map(Parsed::Public)
        };
        let secret = |alg| Some(Parsed::Hmac(Box::new(hmac::Key::new(alg, bytes()?))));
        match alg {
            A::RS256 => rsa(&sig::RSA_PKCS1_2048_8192_SHA256),
            A::RS384 => rsa(&sig::RSA_PKCS1_2048_8192_SHA384),
            A::RS512 => rsa(&sig::RSA_PKCS1_2048_8192_SHA512),
            A::PS256 => rsa(&sig::RSA_PSS_2048_8192_SHA256),
            A::PS384 => rsa(&sig::RSA_PSS_2048_8192_SHA384),
            A::PS512 => rsa(&sig::RSA_PSS_2048_8192_SHA512),
            A::ES256 => public(&sig::ECDSA_P256_SHA256_FIXED),
            A::ES384 => public(&sig::ECDSA_P384_SHA384_FIXED),
            A::EdDSA => public(&sig::ED25519),
            A::HS256 => secret(hmac::HMAC_SHA256),
            A::HS384 => secret(hmac::HMAC_SHA384),
            A::HS512 => secret(hmac::HMAC_SHA512),
            // An algorithm a later `jsonwebtoken` adds: no key for it here.
            _ => None,
        }
    }
}

/// The slot of `alg` in [`VerifyingKey::parsed`].
fn index(alg: Algorithm) -> Option<usize> {
    use Algorithm as A;
    Some(match alg {
        A::HS256 => 0,
        A::HS384 => 1,
        A::HS512 => 2,
        A::ES256 => 3,
        A::ES384 => 4,
        A::RS256 => 5,
        A::RS384 => 6,
        A::RS512 => 7,
        A::PS256 => 8,
        A::PS384 => 9,
        A::PS512 => 10,
        A::EdDSA => 11,
        _ => return None,
    })
}

/// `text` decoded from base64url without padding: into `buf` when it fits (a signature or
/// a header, read with no allocation), else onto the heap.
pub(crate) fn base64url<'b>(
    text: &str,
    buf: &'b mut [u8],
) -> Result<Cow<'b, [u8]>, base64::DecodeError> {
    use base64::DecodeSliceError;
    use base64::Engine as _;
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    if base64::decoded_len_estimate(text.len()) <= buf.len() {
        match engine.decode_slice(text, buf) {
            Ok(n) => return Ok(Cow::Borrowed(&buf[..n])),
            Err(DecodeSliceError::DecodeError(e)) => return Err(e),
            // Not with the estimate checked; the heap will do.
            Err(DecodeSliceError::OutputSliceTooSmall) => {}
        }
    }
    engine.decode(text).map(Cow::Owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// Decoded on the stack when it fits, on the heap when not, the same bytes either way;
    /// anything that is not base64url is refused whichever way it goes.
    #[test]
    fn base64url_in_a_buffer_or_on_the_heap() {
        for len in [0, 1, 2, 3, 47, 48, 49, 64, 65, 200] {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            let text = b64(&bytes);
            let mut buf = [0u8; 48];
            let fits = base64::decoded_len_estimate(text.len()) <= buf.len();
            let got = base64url(&text, &mut buf).unwrap();
            assert_eq!(&*got, bytes.as_slice(), "{len}");
            assert_eq!(matches!(got, Cow::Borrowed(_)), fits, "{len}");
        }
        for bad in ["a", "ab=", "a+b/", "ab cd", "Zm9v\n", "ZZ"] {
            assert!(base64url(bad, &mut [0u8; 48]).is_err(), "{bad}");
            assert!(base64url(bad, &mut [0u8; 0]).is_err(), "{bad}");
        }
    }

    /// Signs a signing input.
    type Sign = Box<dyn Fn(&[u8]) -> Vec<u8>>;

    /// Every algorithm with a fresh key: (alg, its signer, the public key as `jsonwebtoken`
    /// reads it from a JWK). Signed with aws-lc directly, not through `jsonwebtoken`.
    fn keys() -> Vec<(Algorithm, Sign, DecodingKey)> {
        use aws_lc_rs::rand::SystemRandom;
        use aws_lc_rs::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair};
        use std::sync::Arc;
        let mut out: Vec<(Algorithm, Sign, DecodingKey)> = Vec::new();
        let rsa = Arc::new(RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap());
        let public = aws_lc_rs::rsa::PublicKeyComponents::<Vec<u8>>::from(rsa.public_key());
        for (alg, padding) in [
            (
                Algorithm::RS256,
                &sig::RSA_PKCS1_SHA256 as &'static dyn sig::RsaEncoding,
            ),
            (Algorithm::RS384, &sig::RSA_PKCS1_SHA384),
            (Algorithm::RS512, &sig::RSA_PKCS1_SHA512),
            (Algorithm::PS256, &sig::RSA_PSS_SHA256),
            (Algorithm::PS384, &sig::RSA_PSS_SHA384),
            (Algorithm::PS512, &sig::RSA_PSS_SHA512),
        ] {
            let rsa = rsa.clone();
            let sign: Sign = Box::new(move |msg| {
                let mut out = vec![0; rsa.public_modulus_len()];
                rsa.sign(padding, &SystemRandom::new(), msg, &mut out)
                    .unwrap();
                out
            });
            let jwk = DecodingKey::from_rsa_components(&b64(&public.n), &b64(&public.e));
            out.push((alg, sign, jwk.unwrap()));
        }
        for (alg, signing) in [
            (Algorithm::ES256, &sig::ECDSA_P256_SHA256_FIXED_SIGNING),
            (Algorithm::ES384, &sig::ECDSA_P384_SHA384_FIXED_SIGNING),
        ] {
            let pkcs8 = EcdsaKeyPair::generate_pkcs8(signing, &SystemRandom::new()).unwrap();
            let pair = EcdsaKeyPair::from_pkcs8(signing, pkcs8.as_ref()).unwrap();
            let point = pair.public_key().as_ref().to_vec();
            let half = (point.len() - 1) / 2;
            let jwk = DecodingKey::from_ec_components(
                &b64(&point[1..1 + half]),
                &b64(&point[1 + half..]),
            );
            let sign: Sign = Box::new(move |msg| {
                pair.sign(&SystemRandom::new(), msg)
                    .unwrap()
                    .as_ref()
                    .to_vec()
            });
            out.push((alg, sign, jwk.unwrap()));
        }
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let jwk = DecodingKey::from_ed_components(&b64(pair.public_key().as_ref())).unwrap();
        let sign: Sign = Box::new(move |msg| pair.sign(msg).as_ref().to_vec());
        out.push((Algorithm::EdDSA, sign, jwk));
        for (alg, h) in [
            (Algorithm::HS256, hmac::HMAC_SHA256),
            (Algorithm::HS384, hmac::HMAC_SHA384),
            (Algorithm::HS512, hmac::HMAC_SHA512),
        ] {
            let secret = b"a legacy secret of thirty-two by";
            let key = hmac::Key::new(h, secret);
            let sign: Sign = Box::new(move |msg| hmac::sign(&key, msg).as_ref().to_vec());
            out.push((alg, sign, DecodingKey::from_secret(secret)));
        }
        out
    }

    /// A token with `alg` in its header, signed by `sign`.
    fn signed(alg: Algorithm, sign: &Sign) -> String {
        let header = b64(format!(r#"{{"alg":"{alg:?}"}}"#).as_bytes());
        let message = format!("{header}.{}", b64(br#"{"a":1}"#));
        let signature = b64(&sign(message.as_bytes()));
        format!("{message}.{signature}")
    }

    /// What `jsonwebtoken` says of the signature alone (claims not checked).
    fn jsonwebtoken_accepts(token: &str, alg: Algorithm, key: &DecodingKey) -> bool {
        let mut v = jsonwebtoken::Validation::new(alg);
        v.required_spec_claims.clear();
        v.validate_exp = false;
        v.validate_aud = false;
        jsonwebtoken::decode::<serde_json::Value>(token, key, &v).is_ok()
    }

    fn ours_accepts(token: &str, alg: Algorithm, key: &VerifyingKey) -> bool {
        let (message, signature) = token.rsplit_once('.').unwrap();
        key.verify(alg, message.as_bytes(), signature).is_ok()
    }

    /// Signed by every algorithm, as is and tampered with: this module and `jsonwebtoken`
    /// agree on each, and a key is parsed once however often it verifies.
    #[test]
    fn agrees_with_jsonwebtoken_on_every_algorithm() {
        for (alg, signing, public) in keys() {
            let token = signed(alg, &signing);
            let ours = VerifyingKey::from(public.clone());
            assert!(jsonwebtoken_accepts(&token, alg, &public), "{alg:?}");
            for _ in 0..3 {
                assert!(ours_accepts(&token, alg, &ours), "{alg:?}");
            }
            let (message, signature) = token.rsplit_once('.').unwrap();
            let mut bytes = URL_SAFE_NO_PAD.decode(signature).unwrap();
            let last = bytes.len() - 1;
            bytes[last] ^= 1;
            let forged_signature = format!("{message}.{}", b64(&bytes));
            let (header, payload) = message.split_once('.').unwrap();
            let forged_payload = format!("{header}.{}a.{signature}", &payload[..payload.len() - 1]);
            for forged in [forged_signature, forged_payload, format!("{message}.")] {
                assert!(!jsonwebtoken_accepts(&forged, alg, &public), "{alg:?}");
                assert!(!ours_accepts(&forged, alg, &ours), "{alg:?} {forged}");
            }
            assert_eq!(
                ours.verify(alg, message.as_bytes(), "not base64!"),
                Err(VerifyError::Malformed("signature is not base64url"))
            );
        }
    }

    /// A key of one family never verifies another family's algorithm; within a family, the
    /// other algorithms' signatures fail (an ES256 key asked to check ES384).
    #[test]
    fn refuses_other_families_and_other_curves() {
        let keys = keys();
        for (alg, signing, _) in &keys {
            let token = signed(*alg, signing);
            let (message, signature) = token.rsplit_once('.').unwrap();
            for (other_alg, _, public) in &keys {
                // The RSA algorithms share one key pair, and the HMAC ones one secret.
                let same_key = public.family() == alg.family()
                    && matches!(alg.family(), AlgorithmFamily::Rsa | AlgorithmFamily::Hmac);
                if other_alg == alg || same_key {
                    continue;
                }
                let key = VerifyingKey::from(public.clone());
                let result = key.verify(*alg, message.as_bytes(), signature);
                if public.family() == alg.family() {
                    assert_eq!(
                        result,
                        Err(VerifyError::BadSignature),
                        "{alg:?} {other_alg:?}"
                    );
                } else {
                    assert_eq!(
                        result,
                        Err(VerifyError::KeyAlgorithmMismatch),
                        "{alg:?} {other_alg:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn debug_shows_no_key_material() {
        let key = VerifyingKey::hmac(b"super-secret-hmac-key-material!!");
        let shown = format!("{key:?}");
        assert_eq!(shown, "VerifyingKey { family: Hmac, .. }");
    }
}
