//! A fake identity provider: one ES256 key that signs OpenID Connect tokens and Backstage
//! user tokens, published with OIDC discovery by a [`KeyServer`].
//!
//! Backstage user tokens carry `uip`: the identity provider's signature over the user's
//! limited token, which a service forwards to act on the user's behalf. The limited token
//! is built here by string formatting, independently of the crate's code, byte for byte as
//! Backstage's auth backend builds it: the crate must rebuild the same bytes.

use s2s_auth::UserProvider;
use serde_json::{Value, json};

use super::forge::{b64url, now, unsigned};
use super::key_server::KeyServer;
use super::keys::SigningKey;

/// How long the tokens of [`Idp::token`] and [`Idp::unsigned_token`] live: five minutes.
pub const TOKEN_LIFETIME: u64 = 300;

/// An identity provider on `127.0.0.1:0`: its key, and the key server publishing it with
/// OIDC discovery, whose base URL is the provider's OIDC issuer. Stops when dropped.
pub struct Idp {
    pub key: SigningKey,
    pub server: KeyServer,
    /// `iss` of its OIDC tokens: the server's base URL, which its discovery document names.
    pub issuer: String,
}

impl Idp {
    /// Starts a provider with a fresh ES256 key named `kid`.
    pub async fn start(kid: &str) -> Self {
        let key = SigningKey::es256(kid);
        let server = KeyServer::start(&[&key]).await;
        let issuer = server.base().to_owned();
        Self {
            key,
            server,
            issuer,
        }
    }

    /// Where its key set is.
    pub fn jwks_url(&self) -> String {
        self.server.jwks_url()
    }

    /// This provider as the Backstage auth backend at `backstage_issuer`.
    pub fn backstage_provider(&self, backstage_issuer: &str) -> UserProvider {
        UserProvider::backstage(backstage_issuer).jwks_url(self.jwks_url())
    }

    /// An OIDC token for `sub`, meant for `aud`, living [`TOKEN_LIFETIME`].
    pub fn token(&self, sub: &str, aud: &str) -> String {
        let now = now();
        self.key.sign(&json!({
            "iss": self.issuer, "sub": sub, "aud": aud, "iat": now, "exp": now + TOKEN_LIFETIME,
        }))
    }

    /// An unsigned token (`alg: none`, the oldest JWT attack) that claims to be this
    /// provider's, for `sub` and `aud`.
    pub fn unsigned_token(&self, sub: &str, aud: &str) -> String {
        unsigned(
            &json!({ "alg": "none", "typ": "JWT" }),
            &json!({ "iss": self.issuer, "sub": sub, "aud": aud, "exp": now() + TOKEN_LIFETIME }),
        )
    }

    /// A Backstage user token from the auth backend at `backstage_issuer` (this key) for
    /// `sub`, a member of `groups`, living until `exp`, with its `uip` proof.
    pub fn user_token(
        &self,
        backstage_issuer: &str,
        sub: &str,
        groups: &[&str],
        exp: u64,
    ) -> String {
        let user = UserClaims {
            iss: backstage_issuer,
            sub,
            groups,
            iat: now(),
            exp,
        };
        backstage_user_token(&self.key, &self.key, &user).token
    }

    /// The limited user token this provider vouches for.
    pub fn limited(&self, sub: &str, iat: u64, exp: u64) -> String {
        limited_token(&self.key.kid, &self.key, sub, iat, exp)
    }
}

/// Who a Backstage user token is for, from whom, and when.
pub struct UserClaims<'a> {
    /// The auth backend, `<backend>/api/auth`.
    pub iss: &'a str,
    pub sub: &'a str,
    /// Groups the user is a member of: `ent` is `sub` and these.
    pub groups: &'a [&'a str],
    pub iat: u64,
    pub exp: u64,
}

/// A Backstage user token, and the limited token its `uip` vouches for.
pub struct UserToken {
    pub token: String,
    pub limited: String,
}

/// A Backstage user token for `user` signed by `key`, whose `uip` is `prover`'s signature
/// over the limited token (`key` itself, or another key for a forged proof).
pub fn backstage_user_token(
    key: &SigningKey,
    prover: &SigningKey,
    user: &UserClaims<'_>,
) -> UserToken {
    let limited = limited_token(&key.kid, prover, user.sub, user.iat, user.exp);
    let (_, uip) = limited
        .rsplit_once('.')
        .expect("a limited token has a signature");
    let mut ent = vec![user.sub];
    ent.extend_from_slice(user.groups);
    let mut header = key.header();
    header.typ = Some("vnd.backstage.user".to_owned());
    let claims = json!({
        "iss": user.iss, "sub": user.sub, "ent": ent, "aud": "backstage",
        "iat": user.iat, "exp": user.exp, "uip": uip,
    });
    UserToken {
        token: key.sign_with(header, &claims),
        limited,
    }
}

/// A limited user token naming `kid`, signed by `prover`.
pub fn limited_token(kid: &str, prover: &SigningKey, sub: &str, iat: u64, exp: u64) -> String {
    let parts = limited_parts(kid, sub, iat, exp);
    format!("{parts}.{}", prover.signature(&parts))
}

/// The signed parts of a limited user token: base64url of the header `{"typ","alg","kid"}`,
/// a dot, base64url of the claims `{"sub","iat","exp"}`, members in that order.
pub fn limited_parts(kid: &str, sub: &str, iat: u64, exp: u64) -> String {
    let text = |s: &str| Value::from(s).to_string();
    let header = format!(
        r#"{{"typ":"vnd.backstage.limited-user","alg":"ES256","kid":{}}}"#,
        text(kid)
    );
    let claims = format!(r#"{{"sub":{},"iat":{iat},"exp":{exp}}}"#, text(sub));
    format!(
        "{}.{}",
        b64url(header.as_bytes()),
        b64url(claims.as_bytes())
    )
}
