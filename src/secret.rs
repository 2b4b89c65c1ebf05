//! Secrets as types: tokens and keys whose `Debug` and `Display` never show the value.
//!
//! Every credential the crate touches is wrapped in [`SecretString`] as soon as it is read,
//! so that a stray `{:?}` in a log line, an error message or a panic message prints a short
//! [`Fingerprint`] instead of the secret.
//!
//! ```
//! use s2s_auth::secret::SecretString;
//!
//! let token = SecretString::from("a-very-secret-token");
//! let shown = format!("{token:?} {token}");
//! assert!(!shown.contains("a-very-secret-token"));
//! assert_eq!(token.expose_secret(), "a-very-secret-token");
//! ```

use std::fmt;
use std::sync::OnceLock;

use aws_lc_rs::{digest, rand};

/// A secret string (a token, a shared secret). `Debug` and `Display` print only its
/// [`Fingerprint`]; the value is reachable through [`SecretString::expose_secret`] alone.
#[derive(Clone)]
pub struct SecretString(Box<str>);

impl SecretString {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into().into_boxed_str())
    }

    /// The secret itself. Every call site of this method is a place where the secret leaves
    /// its wrapper; keep them few and never log the result.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }

    /// A short, non-reversible identifier of this secret, fit for logs and audit events.
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(self.0.as_bytes())
    }
}

impl From<String> for SecretString {
    fn from(value: String) -> Self {
        Self::new(value)
    }
}

impl From<&str> for SecretString {
    fn from(value: &str) -> Self {
        Self::new(value)
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretString({})", self.fingerprint())
    }
}

impl fmt::Display for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<secret {}>", self.fingerprint())
    }
}

/// A short identifier of a secret: 12 hex digits of `SHA-256(K || SHA-256(secret))`, where `K`
/// is a 16-byte (128-bit) key drawn at random when the process starts. 16 bytes keep
/// `K || digest` within one SHA-256 block (48 bytes and the padding): one compression, not
/// two.
///
/// Why keyed: a plain hash prefix of a short static token could be reversed offline by
/// trying every 8-character string; without `K` it cannot. Why over the digest: a static
/// or service-account token is looked up by its SHA-256 anyway, so its fingerprint costs
/// one more short hash instead of a second pass over the token. The layer computes a
/// fingerprint only for an audit event that is built (or a cache entry while allows are
/// audited); a token answered from the verified-token cache reuses the one stored with
/// it. The cost of the key is that fingerprints are stable within one process only:
/// correlate across replicas by the audit event's subject, not by fingerprint.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; 6]);

impl Fingerprint {
    /// The fingerprint of some secret bytes.
    pub fn of(secret: &[u8]) -> Self {
        Self::of_digest(&sha256(secret))
    }

    /// The fingerprint of a secret whose SHA-256 is `digest` (the same as
    /// [`Fingerprint::of`] on the secret).
    pub fn of_digest(digest: &[u8; 32]) -> Self {
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(fingerprint_key());
        ctx.update(digest);
        let tag = ctx.finish();
        let mut out = [0u8; 6];
        out.copy_from_slice(&tag.as_ref()[..6]);
        Self(out)
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

impl serde::Serialize for Fingerprint {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

fn fingerprint_key() -> &'static [u8; 16] {
    static KEY: OnceLock<[u8; 16]> = OnceLock::new();
    KEY.get_or_init(|| {
        let mut bytes = [0u8; 16];
        rand::fill(&mut bytes).expect("invariant: the operating system's random source works");
        bytes
    })
}

/// A `foldhash` hasher for a map whose keys come from outside (tokens, `kid`s, key-set
/// URLs), seeded from the operating system's random numbers: foldhash's own seed comes from
/// addresses, which is enough against accidents but is not a secret. Without random numbers
/// from the OS it falls back to foldhash's own seed (a collision then costs time, never a
/// wrong answer: every map compares whole keys).
pub(crate) fn seeded_hasher() -> foldhash::quality::SeedableRandomState {
    use foldhash::SharedSeed;
    use foldhash::quality::SeedableRandomState;
    static SHARED: OnceLock<Option<SharedSeed>> = OnceLock::new();
    let random = || random_bytes::<8>().map(u64::from_ne_bytes);
    let shared = SHARED.get_or_init(|| random().map(SharedSeed::from_u64));
    match (shared, random()) {
        (Some(shared), Some(seed)) => SeedableRandomState::with_seed(seed, shared),
        _ => SeedableRandomState::random(),
    }
}

/// `N` bytes from the operating system's random source (aws-lc-rs), or `None` when it
/// fails: a secret is never made from bytes that are not random.
pub(crate) fn random_bytes<const N: usize>() -> Option<[u8; N]> {
    let mut bytes = [0u8; N];
    rand::fill(&mut bytes).ok()?;
    Some(bytes)
}

/// SHA-256 of some bytes.
pub(crate) fn sha256(bytes: &[u8]) -> [u8; 32] {
    let d = digest::digest(&digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// Lower-case hex of some bytes.
pub(crate) fn to_hex(bytes: &[u8]) -> String {
    use fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Parses exactly 64 hex digits (either case) into a SHA-256 digest.
pub(crate) fn parse_sha256_hex(hex: &str) -> Option<[u8; 32]> {
    let bytes = hex.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        out[i] = (hi * 16 + lo) as u8;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_hide_the_secret() {
        let s = SecretString::from("hunter2-hunter2");
        assert!(!format!("{s:?}").contains("hunter2"));
        assert!(!format!("{s}").contains("hunter2"));
        assert_eq!(
            s.fingerprint(),
            SecretString::from("hunter2-hunter2").fingerprint()
        );
        assert_ne!(
            s.fingerprint(),
            SecretString::from("hunter3-hunter3").fingerprint()
        );
    }

    #[test]
    fn hex_round_trip() {
        let d = sha256(b"abc");
        assert_eq!(
            to_hex(&d),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(parse_sha256_hex(&to_hex(&d)), Some(d));
        assert_eq!(parse_sha256_hex(&to_hex(&d).to_uppercase()), Some(d));
        assert_eq!(parse_sha256_hex("zz"), None);
        assert_eq!(parse_sha256_hex(&"g".repeat(64)), None);
    }
}
