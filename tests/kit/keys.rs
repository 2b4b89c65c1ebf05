//! Signing keys generated at run time (nothing checked in), and their public JWKs.

use std::sync::OnceLock;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _,
};
use jsonwebtoken::jwk::{Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use serde_json::{Value, json};

use super::forge::sign_raw;

/// A private signing key with its `kid`, and the public JWK a key server publishes for it.
#[derive(Clone)]
pub struct SigningKey {
    pub kid: String,
    pub alg: Algorithm,
    pub encoding: EncodingKey,
    /// The private key's DER (PKCS#8 for EC and Ed25519, PKCS#1 for RSA).
    pub der: Vec<u8>,
}

impl SigningKey {
    /// A fresh P-256 key (ES256).
    pub fn es256(kid: &str) -> Self {
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .expect("P-256 key generation");
        Self::from_der(kid, Algorithm::ES256, pkcs8.as_ref().to_vec())
    }

    /// A fresh Ed25519 key (EdDSA).
    pub fn ed25519(kid: &str) -> Self {
        // jsonwebtoken reads the 48-byte PKCS#8 v1 form (v2 adds the public key).
        let pkcs8 =
            Ed25519KeyPair::generate_pkcs8v1(&SystemRandom::new()).expect("Ed25519 key generation");
        Self::from_der(kid, Algorithm::EdDSA, pkcs8.as_ref().to_vec())
    }

    /// An RSA 2048 key (RS256). Generation is slow, so `slot` picks one of a few keys made
    /// once per process: the same slot is the same key material.
    pub fn rsa(kid: &str, slot: usize) -> Self {
        Self::from_der(kid, Algorithm::RS256, rsa_pkcs1(slot))
    }

    /// The key `der` holds, for `alg`: PKCS#8 for ES256 and EdDSA, PKCS#1 for RS256.
    fn from_der(kid: &str, alg: Algorithm, der: Vec<u8>) -> Self {
        let encoding = match alg {
            Algorithm::ES256 => EncodingKey::from_ec_der(&der),
            Algorithm::EdDSA => EncodingKey::from_ed_der(&der),
            Algorithm::RS256 => EncodingKey::from_rsa_der(&der),
            other => unreachable!("the kit makes ES256, EdDSA and RS256 keys, not {other:?}"),
        };
        Self {
            kid: kid.to_owned(),
            alg,
            encoding,
            der,
        }
    }

    /// The public JWK: `kty`, key parameters, `alg`, `kid`, `use: sig`.
    pub fn public_jwk(&self) -> Jwk {
        let mut jwk = Jwk::from_encoding_key(&self.encoding, self.alg).expect("public JWK");
        jwk.common.key_id = Some(self.kid.clone());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        jwk
    }

    /// [`SigningKey::public_jwk`] as JSON.
    pub fn jwk(&self) -> Value {
        serde_json::to_value(self.public_jwk()).expect("a JWK serializes")
    }

    /// The key that verifies this key's signatures, made from its public JWK (as a verifier
    /// that downloaded it makes it).
    pub fn decoding_key(&self) -> DecodingKey {
        DecodingKey::from_jwk(&self.public_jwk()).expect("a public JWK decodes")
    }

    /// The RSA public key as X.509 `SubjectPublicKeyInfo` DER (what an attacker downloads).
    pub fn rsa_public_der(&self) -> Vec<u8> {
        let pair = aws_lc_rs::rsa::KeyPair::from_der(&self.der).expect("an RSA key");
        let public = pair.public_key();
        let der: aws_lc_rs::encoding::PublicKeyX509Der<'_> =
            public.as_der().expect("public key DER");
        der.as_ref().to_vec()
    }

    /// Signs `claims` with header `{alg, typ: JWT, kid}`.
    pub fn sign(&self, claims: &Value) -> String {
        self.sign_with(self.header(), claims)
    }

    /// The header [`SigningKey::sign`] uses, to modify.
    pub fn header(&self) -> Header {
        let mut h = Header::new(self.alg);
        h.kid = Some(self.kid.clone());
        h
    }

    /// Signs `claims` with `header`.
    pub fn sign_with(&self, header: Header, claims: &Value) -> String {
        jsonwebtoken::encode(&header, claims, &self.encoding).expect("signing")
    }

    /// Signs any JSON header (for headers `jsonwebtoken::Header` cannot express) with this
    /// key and algorithm.
    pub fn sign_raw(&self, header: &Value, claims: &Value) -> String {
        sign_raw(header, claims, &self.encoding, self.alg)
    }

    /// This key's base64url signature over `message` (a JWS signing input, or any bytes).
    pub fn signature(&self, message: &str) -> String {
        jsonwebtoken::crypto::sign(message.as_bytes(), &self.encoding, self.alg).expect("signing")
    }
}

/// A JWKS document holding `keys`' public JWKs.
pub fn jwks(keys: &[&SigningKey]) -> Value {
    json!({ "keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>() })
}

/// PKCS#1 `RSAPrivateKey` DER of the RSA key in `slot`, generated once per process.
fn rsa_pkcs1(slot: usize) -> Vec<u8> {
    static KEYS: [OnceLock<Vec<u8>>; 3] = [OnceLock::new(), OnceLock::new(), OnceLock::new()];
    KEYS[slot]
        .get_or_init(|| {
            let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
                .expect("RSA key generation");
            let pkcs8: aws_lc_rs::encoding::Pkcs8V1Der<'_> = pair.as_der().expect("RSA PKCS#8 DER");
            pkcs8_to_pkcs1(pkcs8.as_ref())
        })
        .clone()
}

/// The `privateKey` OCTET STRING of a PKCS#8 `PrivateKeyInfo`: for RSA, the PKCS#1 key that
/// `jsonwebtoken::EncodingKey::from_rsa_der` wants.
fn pkcs8_to_pkcs1(pkcs8: &[u8]) -> Vec<u8> {
    let (tag, info, _) = der_tlv(pkcs8);
    assert_eq!(tag, 0x30, "PrivateKeyInfo is a SEQUENCE");
    let (tag, _version, rest) = der_tlv(info);
    assert_eq!(tag, 0x02, "version INTEGER");
    let (tag, _algorithm, rest) = der_tlv(rest);
    assert_eq!(tag, 0x30, "AlgorithmIdentifier SEQUENCE");
    let (tag, key, _) = der_tlv(rest);
    assert_eq!(tag, 0x04, "privateKey OCTET STRING");
    key.to_vec()
}

/// One DER tag-length-value: `(tag, contents, rest)`.
fn der_tlv(input: &[u8]) -> (u8, &[u8], &[u8]) {
    let tag = input[0];
    let (len, header) = match input[1] {
        short if short < 0x80 => (usize::from(short), 2),
        long => {
            let n = usize::from(long & 0x7f);
            let len = input[2..2 + n]
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
            (len, 2 + n)
        }
    };
    (tag, &input[header..header + len], &input[header + len..])
}
