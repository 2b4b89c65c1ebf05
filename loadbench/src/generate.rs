//! `loadbench gen`: an ES256 and an RS256 (2048-bit) key with kids, their JWKS, and N
//! tokens per algorithm with distinct `sub` and `jti`, all for one issuer and audience.
//!
//! Keys come from aws-lc-rs (the crypto library s2s-auth and jsonwebtoken already link);
//! tokens are signed with `jsonwebtoken::encode`, and the public JWKs are derived from the
//! private keys by `Jwk::from_encoding_key`.

use std::fs;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde::Serialize;

use crate::Result;
use crate::args::Args;
use crate::fixture::{self, Labelled, Meta, SelfTest};

/// Far enough ahead for a full run (three rounds of every scenario take minutes).
const LIFETIME_SECS: u64 = 2 * 60 * 60;
const DEFAULT_COUNT: usize = 20_000;
/// The port run.sh serves the keys on unless told otherwise.
const DEFAULT_ISSUER: &str = "http://127.0.0.1:18481";
const DEFAULT_AUDIENCE: &str = "loadbench";

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    aud: &'a str,
    sub: String,
    jti: String,
    iat: u64,
    exp: u64,
}

/// One signing key and what a token needs to name it.
struct Signer {
    alg: Algorithm,
    kid: String,
    key: EncodingKey,
}

impl Signer {
    fn sign(&self, claims: &Claims<'_>) -> Result<String> {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        Ok(encode(&header, claims, &self.key)?)
    }

    fn jwk(&self) -> Result<Jwk> {
        let mut jwk = Jwk::from_encoding_key(&self.key, self.alg)?;
        jwk.common.key_id = Some(self.kid.clone());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        Ok(jwk)
    }
}

pub(crate) fn run(args: &mut Args) -> Result<()> {
    let dir = args.required("--dir")?;
    let count = match args.optional("--count")? {
        Some(n) => n.parse()?,
        None => DEFAULT_COUNT,
    };
    let issuer = args
        .optional("--issuer")?
        .unwrap_or_else(|| DEFAULT_ISSUER.to_owned());
    let audience = args
        .optional("--audience")?
        .unwrap_or_else(|| DEFAULT_AUDIENCE.to_owned());
    args.finish()?;
    let dir = Path::new(&dir);
    fs::create_dir_all(dir)?;

    // A nonce per run: tokens from two runs never collide in anyone's cache.
    let nonce = random_hex(4)?;
    let es256_der = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)?
        .to_pkcs8v1()?
        .as_ref()
        .to_vec();
    let rs256_pk8 = RsaKeyPair::generate(KeySize::Rsa2048)?.as_der()?;
    let rs256_der = rs256_pk8.as_ref().to_vec();
    let es256 = Signer {
        alg: Algorithm::ES256,
        kid: format!("es256-{nonce}"),
        key: EncodingKey::from_ec_der(&es256_der),
    };
    let rs256 = Signer {
        alg: Algorithm::RS256,
        kid: format!("rs256-{nonce}"),
        // jsonwebtoken (on aws-lc-rs) signs RSA with a PKCS#1 key; aws-lc-rs exports PKCS#8.
        key: EncodingKey::from_rsa_der(pkcs1_of_pkcs8(&rs256_der)?),
    };
    fs::write(fixture::path(dir, "es256.pk8"), &es256_der)?;
    fs::write(fixture::path(dir, "rs256.pk8"), &rs256_der)?;

    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let meta = Meta {
        issuer: issuer.clone(),
        audience: audience.clone(),
        es256_kid: es256.kid.clone(),
        rs256_kid: rs256.kid.clone(),
        expires_at: now + LIFETIME_SECS,
    };
    let jwks = JwkSet {
        keys: vec![es256.jwk()?, rs256.jwk()?],
    };
    fs::write(
        fixture::path(dir, fixture::META),
        serde_json::to_string_pretty(&meta)?,
    )?;
    fs::write(
        fixture::path(dir, fixture::JWKS),
        serde_json::to_string(&jwks)?,
    )?;

    let claims = |who: &str, i: usize| Claims {
        iss: &issuer,
        aud: &audience,
        sub: format!("svc-{who}-{i:05}"),
        jti: format!("{nonce}-{who}-{i:05}"),
        iat: now,
        exp: meta.expires_at,
    };
    for signer in [&es256, &rs256] {
        let name = format!("{}.tokens", signer.alg_name());
        let mut out = BufWriter::new(fs::File::create(fixture::path(dir, &name))?);
        for i in 0..count {
            writeln!(out, "{}", signer.sign(&claims(signer.alg_name(), i))?)?;
        }
        out.flush()?;
    }

    let selftest = self_test_tokens(&es256, &rs256, &issuer, &audience, now, &nonce)?;
    fs::write(
        fixture::path(dir, fixture::SELFTEST),
        serde_json::to_string_pretty(&selftest)?,
    )?;
    println!(
        "loadbench: wrote {count} ES256 and {count} RS256 tokens for {issuer} (aud {audience}), kids {} and {}, into {}",
        es256.kid,
        rs256.kid,
        dir.display()
    );
    Ok(())
}

impl Signer {
    fn alg_name(&self) -> &'static str {
        match self.alg {
            Algorithm::ES256 => "es256",
            _ => "rs256",
        }
    }
}

/// Two good tokens (not among the benchmark's) and one bad token per check every mode must
/// make: a server that accepts any of the bad ones is not verifying and must not be
/// benchmarked.
fn self_test_tokens(
    es256: &Signer,
    rs256: &Signer,
    issuer: &str,
    audience: &str,
    now: u64,
    nonce: &str,
) -> Result<SelfTest> {
    let claims = |sub: &str| Claims {
        iss: issuer,
        aud: audience,
        sub: format!("selftest-{sub}"),
        jti: format!("{nonce}-selftest-{sub}"),
        iat: now,
        exp: now + LIFETIME_SECS,
    };
    let labelled = |label: &str, token: String| Labelled {
        label: label.to_owned(),
        token,
    };
    // Signed by a key nobody published, under the published kid.
    let forger = Signer {
        alg: Algorithm::ES256,
        kid: es256.kid.clone(),
        key: EncodingKey::from_ec_der(
            EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)?
                .to_pkcs8v1()?
                .as_ref(),
        ),
    };
    let unknown_kid = Signer {
        alg: Algorithm::ES256,
        kid: format!("unpublished-{nonce}"),
        key: EncodingKey::from_ec_der(es256.key.as_bytes()),
    };
    let other_audience = format!("{audience}-other");
    let other_issuer = format!("{issuer}/other");
    let good_es256 = es256.sign(&claims("es256"))?;
    let mut tampered = good_es256.clone();
    // Change one character well inside the signature (the last one may carry only padding
    // bits): still base64url, no longer the signature.
    let at = tampered.len() - 10;
    let swap = if &tampered[at..=at] == "A" { "B" } else { "A" };
    tampered.replace_range(at..=at, swap);
    Ok(SelfTest {
        good: vec![
            labelled("es256", good_es256),
            labelled("rs256", rs256.sign(&claims("rs256"))?),
        ],
        bad: vec![
            labelled("forged_signature", forger.sign(&claims("forged"))?),
            labelled("tampered_signature", tampered),
            labelled("unknown_kid", unknown_kid.sign(&claims("unknown-kid"))?),
            labelled(
                "wrong_audience",
                es256.sign(&Claims {
                    aud: &other_audience,
                    ..claims("wrong-aud")
                })?,
            ),
            labelled(
                "wrong_issuer",
                es256.sign(&Claims {
                    iss: &other_issuer,
                    ..claims("wrong-iss")
                })?,
            ),
            labelled(
                "expired",
                rs256.sign(&Claims {
                    iat: now - 7200,
                    exp: now - 3600,
                    ..claims("expired")
                })?,
            ),
            labelled("not_a_jwt", String::from("not-a-jwt-at-all")),
        ],
    })
}

fn random_hex(bytes: usize) -> Result<String> {
    let mut buf = vec![0u8; bytes];
    SystemRandom::new().fill(&mut buf)?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// The `privateKey` OCTET STRING of a PKCS#8 `PrivateKeyInfo` (RFC 5208), which for RSA is
/// the PKCS#1 `RSAPrivateKey`:
/// `SEQUENCE { INTEGER version, SEQUENCE algorithm, OCTET STRING privateKey, ... }`.
fn pkcs1_of_pkcs8(der: &[u8]) -> Result<&[u8]> {
    let (info, _) = der_element(der, 0x30)?;
    let (_version, rest) = der_element(info, 0x02)?;
    let (_algorithm, rest) = der_element(rest, 0x30)?;
    let (private_key, _) = der_element(rest, 0x04)?;
    Ok(private_key)
}

/// One DER element with the given tag: its contents and what follows it.
fn der_element(input: &[u8], tag: u8) -> Result<(&[u8], &[u8])> {
    let malformed = || -> crate::Error { "malformed PKCS#8 key".into() };
    let (&found, rest) = input.split_first().ok_or_else(malformed)?;
    if found != tag {
        return Err(malformed());
    }
    let (&first, mut rest) = rest.split_first().ok_or_else(malformed)?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let octets = usize::from(first & 0x7f);
        if octets == 0 || octets > 4 || rest.len() < octets {
            return Err(malformed());
        }
        let (len_bytes, after) = rest.split_at(octets);
        rest = after;
        len_bytes
            .iter()
            .fold(0usize, |len, &b| (len << 8) | usize::from(b))
    };
    if rest.len() < len {
        return Err(malformed());
    }
    Ok(rest.split_at(len))
}
