//! Static signing keys from PEM files (Backstage's `pluginKeyStore: { type: static }`).
//!
//! The first key signs; every key is published, so a key can be retired by moving it down
//! the list for a while before removing it. Keys are ES256 (P-256): a PKCS#8 private key
//! (`-----BEGIN PRIVATE KEY-----`, e.g. `openssl genpkey -algorithm EC -pkeyopt
//! ec_paramgen_curve:P-256`) and its public key (`-----BEGIN PUBLIC KEY-----`, `openssl pkey
//! -pubout`). The public file must match the private key: a mismatch is a configuration
//! error, not a JWKS that verifies nothing.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, EncodingKey};

use crate::error::{ConfigError, ConfigRule};
use crate::secret::SecretString;

/// One static key: its id and PEM texts.
#[derive(Clone, Debug)]
pub struct StaticKey {
    key_id: String,
    private_pem: SecretString,
    public_pem: String,
    pub(crate) origin: String,
}

impl StaticKey {
    /// A key with id `key_id` (the JWK `kid`), from its PKCS#8 private key PEM and its
    /// SubjectPublicKeyInfo public key PEM.
    pub fn new(
        key_id: impl Into<String>,
        private_pem: impl Into<SecretString>,
        public_pem: impl Into<String>,
    ) -> Self {
        Self {
            key_id: key_id.into(),
            private_pem: private_pem.into(),
            public_pem: public_pem.into(),
            origin: String::from("static_key"),
        }
    }

    /// The signing key and its public JWK, checked.
    pub(crate) fn load(&self) -> Result<(EncodingKey, serde_json::Value), ConfigError> {
        let at = |field: &str| format!("{}.{field}", self.origin);
        if self.key_id.is_empty() || self.key_id.chars().any(char::is_whitespace) {
            return Err(ConfigError::new(
                at("keyId"),
                ConfigRule::BadKey("keyId must be non-empty, without whitespace"),
            ));
        }
        let private =
            pem_der(self.private_pem.expose_secret(), "PRIVATE KEY").ok_or_else(|| {
                ConfigError::new(
                    at("privateKeyFile"),
                    ConfigRule::BadKey("expected a PKCS#8 PEM (-----BEGIN PRIVATE KEY-----)"),
                )
            })?;
        // Parsing the pair checks it is a P-256 key in PKCS#8.
        aws_lc_rs::signature::EcdsaKeyPair::from_pkcs8(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &private,
        )
        .map_err(|_| {
            ConfigError::new(
                at("privateKeyFile"),
                ConfigRule::BadKey("not an ES256 (P-256) private key"),
            )
        })?;
        let key = EncodingKey::from_ec_der(&private);
        let mut jwk = Jwk::from_encoding_key(&key, Algorithm::ES256).map_err(|_| {
            ConfigError::new(
                at("privateKeyFile"),
                ConfigRule::BadKey("cannot derive the public key"),
            )
        })?;
        let public = pem_der(&self.public_pem, "PUBLIC KEY").ok_or_else(|| {
            ConfigError::new(
                at("publicKeyFile"),
                ConfigRule::BadKey("expected a PEM public key (-----BEGIN PUBLIC KEY-----)"),
            )
        })?;
        // An uncompressed P-256 point (0x04 || x || y) ends the SubjectPublicKeyInfo.
        let point = public
            .len()
            .checked_sub(65)
            .map(|start| &public[start..])
            .filter(|p| p[0] == 0x04)
            .ok_or_else(|| {
                ConfigError::new(
                    at("publicKeyFile"),
                    ConfigRule::BadKey("not a P-256 public key"),
                )
            })?;
        let matches = match &jwk.algorithm {
            AlgorithmParameters::EllipticCurve(p) => {
                let b64 = |s: &str| {
                    base64::engine::general_purpose::URL_SAFE_NO_PAD
                        .decode(s)
                        .ok()
                };
                b64(&p.x).as_deref() == Some(&point[1..33])
                    && b64(&p.y).as_deref() == Some(&point[33..])
            }
            _ => false,
        };
        if !matches {
            return Err(ConfigError::new(
                at("publicKeyFile"),
                ConfigRule::BadKey("the public key does not belong to the private key"),
            ));
        }
        jwk.common.key_id = Some(self.key_id.clone());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        let jwk = serde_json::to_value(&jwk).map_err(|_| {
            ConfigError::new(at("keyId"), ConfigRule::BadKey("cannot encode the JWK"))
        })?;
        Ok((key, jwk))
    }

    /// The key id.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }
}

/// The DER inside a PEM block with this label.
fn pem_der(pem: &str, label: &str) -> Option<Vec<u8>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = pem.find(&begin)? + begin.len();
    let stop = start + pem[start..].find(&end)?;
    let body: String = pem[start..stop]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    STANDARD.decode(body).ok()
}
