//! The directory `gen` writes and `serve` reads: one place names every file.
//!
//! ```text
//! meta.json        issuer, audience, kids, expiry
//! jwks.json        the public keys (what the in-process key server publishes)
//! es256.pk8        the ES256 private key, PKCS#8 DER
//! rs256.pk8        the RS256 (2048-bit) private key, PKCS#8 DER
//! es256.tokens     N ES256 tokens, one a line (distinct sub and jti)
//! rs256.tokens     N RS256 tokens, one a line
//! selftest.json    tokens for the start-up self-test only: two good, several bad
//! ```

use std::fs;
use std::path::{Path, PathBuf};

use jsonwebtoken::jwk::JwkSet;
use serde::{Deserialize, Serialize};

use crate::Result;

pub(crate) const META: &str = "meta.json";
pub(crate) const JWKS: &str = "jwks.json";
pub(crate) const SELFTEST: &str = "selftest.json";

/// What every mode is configured with, so they all accept the same tokens.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Meta {
    /// `iss` of every good token; also the base URL of the in-process key server (its
    /// discovery document is at `<issuer>/.well-known/openid-configuration`).
    pub(crate) issuer: String,
    pub(crate) audience: String,
    pub(crate) es256_kid: String,
    pub(crate) rs256_kid: String,
    /// Unix seconds; every good token expires then.
    pub(crate) expires_at: u64,
}

impl Meta {
    pub(crate) fn jwks_url(&self) -> String {
        format!("{}/jwks.json", self.issuer)
    }
}

/// Tokens the self-test sends before the server is declared ready.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct SelfTest {
    /// Must get 200 in every mode: one per algorithm, not among the benchmark's tokens.
    pub(crate) good: Vec<Labelled>,
    /// Must get 401 in every mode that authenticates.
    pub(crate) bad: Vec<Labelled>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Labelled {
    pub(crate) label: String,
    pub(crate) token: String,
}

/// Everything `serve` needs, read once at start.
pub(crate) struct Fixture {
    pub(crate) meta: Meta,
    /// The JWKS as written, served byte for byte.
    pub(crate) jwks_json: String,
    pub(crate) jwks: JwkSet,
    pub(crate) selftest: SelfTest,
}

impl Fixture {
    pub(crate) fn read(dir: &Path) -> Result<Self> {
        let meta: Meta = serde_json::from_str(&read(dir, META)?)?;
        let jwks_json = read(dir, JWKS)?;
        let jwks = serde_json::from_str(&jwks_json)?;
        let selftest = serde_json::from_str(&read(dir, SELFTEST)?)?;
        Ok(Self {
            meta,
            jwks_json,
            jwks,
            selftest,
        })
    }
}

pub(crate) fn path(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}

fn read(dir: &Path, name: &str) -> Result<String> {
    let file = path(dir, name);
    fs::read_to_string(&file)
        .map_err(|e| format!("{}: {e} (run `loadbench gen` first)", file.display()).into())
}
