//! `encrypted_roles`: a user's roles sealed with AES-256-GCM, so a token in a log or a
//! browser does not tell who may do what.
//!
//! Format: `<kid>.<base64url(nonce)>.<base64url(ciphertext and tag)>`; the plaintext is the
//! JSON list of roles; the nonce is 96 random bits per token; the token's `jti` is the
//! associated data, so a sealed list copied into another token does not open.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::error::VerifyError;

/// The roles keys, by `kid`; the first seals.
pub(crate) struct RolesKeys {
    keys: Vec<(String, LessSafeKey)>,
}

impl std::fmt::Debug for RolesKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kids: Vec<&str> = self.keys.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("RolesKeys").field("kids", &kids).finish()
    }
}

impl RolesKeys {
    /// From decoded 32-byte keys (checked by [`JitTokens::check`](super::JitTokens)).
    pub(crate) fn new(keys: Vec<(String, Vec<u8>)>) -> Option<Self> {
        let keys: Vec<(String, LessSafeKey)> = keys
            .into_iter()
            .filter_map(|(kid, bytes)| {
                let key = UnboundKey::new(&AES_256_GCM, &bytes).ok()?;
                Some((kid, LessSafeKey::new(key)))
            })
            .collect();
        (!keys.is_empty()).then_some(Self { keys })
    }

    /// Seals `roles` for the token `jti`.
    pub(crate) fn seal(&self, roles: &[String], jti: &str) -> Result<String, String> {
        let (kid, key) = &self.keys[0];
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).map_err(|_| "no random nonce".to_owned())?;
        let mut data = serde_json::to_vec(roles).map_err(|e| e.to_string())?;
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(jti.as_bytes()),
            &mut data,
        )
        .map_err(|_| "sealing failed".to_owned())?;
        Ok(format!(
            "{kid}.{}.{}",
            URL_SAFE_NO_PAD.encode(nonce),
            URL_SAFE_NO_PAD.encode(&data)
        ))
    }

    /// Opens a sealed list of the token `jti`: any failure (unknown kid, tampered, moved
    /// from another token, not a list of strings) is the same refusal.
    pub(crate) fn open(&self, sealed: &str, jti: &str) -> Result<Vec<String>, VerifyError> {
        const REFUSED: VerifyError = VerifyError::Malformed("encrypted_roles do not open");
        let mut parts = sealed.split('.');
        let (Some(kid), Some(nonce), Some(data), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(REFUSED);
        };
        let (_, key) = self.keys.iter().find(|(k, _)| k == kid).ok_or(REFUSED)?;
        let nonce = URL_SAFE_NO_PAD.decode(nonce).map_err(|_| REFUSED)?;
        let nonce = Nonce::try_assume_unique_for_key(&nonce).map_err(|_| REFUSED)?;
        let mut data = URL_SAFE_NO_PAD.decode(data).map_err(|_| REFUSED)?;
        let plain = key
            .open_in_place(nonce, Aad::from(jti.as_bytes()), &mut data)
            .map_err(|_| REFUSED)?;
        serde_json::from_slice(plain).map_err(|_| REFUSED)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> RolesKeys {
        RolesKeys::new(vec![("r1".into(), vec![7; 32]), ("r0".into(), vec![9; 32])]).unwrap()
    }

    #[test]
    fn seals_and_opens_and_refuses_every_tampering() {
        let k = keys();
        let roles = vec!["group:default/admins".to_owned(), "reader".to_owned()];
        let sealed = k.seal(&roles, "jti-1").unwrap();
        assert!(sealed.starts_with("r1."));
        assert!(!sealed.contains("admins"));
        assert_eq!(k.open(&sealed, "jti-1").unwrap(), roles);
        // Two seals of the same list differ (random nonce).
        assert_ne!(k.seal(&roles, "jti-1").unwrap(), sealed);
        // Moved to another token.
        assert!(k.open(&sealed, "jti-2").is_err());
        // Any bit of the ciphertext flipped, the nonce changed, another kid, garbage.
        let (head, data) = sealed.rsplit_once('.').unwrap();
        let mut bytes = URL_SAFE_NO_PAD.decode(data).unwrap();
        bytes[0] ^= 1;
        let flipped = format!("{head}.{}", URL_SAFE_NO_PAD.encode(&bytes));
        let other_nonce = {
            let mut p: Vec<&str> = sealed.split('.').collect();
            let n = URL_SAFE_NO_PAD.encode([0u8; 12]);
            p[1] = Box::leak(n.into_boxed_str());
            p.join(".")
        };
        for bad in [
            flipped,
            other_nonce,
            sealed.replacen("r1.", "r0.", 1),
            sealed.replacen("r1.", "nope.", 1),
            "r1.x".to_owned(),
            String::new(),
        ] {
            assert_eq!(
                k.open(&bad, "jti-1"),
                Err(VerifyError::Malformed("encrypted_roles do not open")),
                "{bad}"
            );
        }
    }

    #[test]
    fn debug_shows_kids_only() {
        assert_eq!(
            format!("{:?}", keys()),
            r#"RolesKeys { kids: ["r1", "r0"] }"#
        );
    }
}
