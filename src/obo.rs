//! On-behalf-of: a service calling another for the user who called it.
//!
//! Two forms, both carried by a plugin token (`typ: vnd.backstage.plugin`) that the acting
//! service signs with its own key:
//!
//! - **Delegated (Backstage)**: the claim `obo` holds a *limited user token*, which the
//!   receiver verifies against the identity provider. The acting service cannot invent the
//!   user: only the identity provider can sign for them. A Backstage user token carries the
//!   proof as its `uip` claim: the signature the identity provider made, when it issued the
//!   user token, over
//!
//!   ```text
//!   base64url({"typ":"vnd.backstage.limited-user","alg":<alg>,"kid":<kid>})
//!   . base64url({"sub":<sub>,"iat":<iat>,"exp":<exp>})
//!   ```
//!
//!   built from the user token's own header and claims, members in that order. A service
//!   that verified the user token rebuilds those two parts byte for byte and appends `uip`;
//!   the result is a token the identity provider signed that names the user and nothing
//!   else (no audience, no issuer), so on its own it opens no route: this crate refuses a
//!   limited user token presented directly.
//! - **Actor (RFC 8693)**: for users of an identity provider with no limited form (OIDC), the
//!   plugin token's `sub` is the user and `act: {"sub": <acting service>}` names the
//!   service. The receiver cannot check the user with the identity provider, so it takes
//!   the acting service's word, and only from services it lists as trusted to act for users
//!   ([`AuthBuilder::trusted_actors`](crate::AuthBuilder::trusted_actors)).
//!
//! Either way the receiver's principal is the **user** (`principalType: user`, credential
//! `obo`) with the acting service as its actor (`plugin:<id>`), so the user's own rights
//! apply and the audit log shows who acted. An on-behalf-of token never outlives the user's
//! token: the issuer clamps its `exp`, and the receiver refuses one that claims longer.
//! A principal with access restrictions cannot be delegated at all.
//!
//! ```
//! use std::sync::Arc;
//! use s2s_auth::obo::LIMITED_USER_TYP;
//! use s2s_auth::{Auth, CredentialKind, PluginTokens, Principal, PrincipalType};
//! use s2s_auth::store::MemoryStore;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let scaffolder = Auth::builder("scaffolder")
//!     .plugin_tokens(PluginTokens::new(Arc::new(MemoryStore::default())))
//!     .build()?;
//! // An OIDC user (no limited token to forward): the actor form.
//! let jane = Principal::new(PrincipalType::User, "user:default/jane", CredentialKind::User)
//!     .with_expiry(time::OffsetDateTime::now_utc() + time::Duration::minutes(5));
//! let token = scaffolder.on_behalf_of_token(&jane, "catalog").await?;
//! assert_eq!(token.expose_secret().split('.').count(), 3);
//! // A Backstage user's forwarded proof carries this `typ`; alone it opens no route.
//! assert_eq!(LIMITED_USER_TYP, "vnd.backstage.limited-user");
//! # Ok(())
//! # }
//! ```

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use serde::Serialize;
use serde_json::Value;

use crate::error::VerifyError;
use crate::jwt::Claims;
use crate::principal::LimitedUserToken;
use crate::secret::SecretString;

/// The `typ` of Backstage limited user tokens.
pub const LIMITED_USER_TYP: &str = "vnd.backstage.limited-user";

/// Rebuilds the limited user token of a verified Backstage user token, if it carries the
/// `uip` proof. `claims` are the verified claims; `alg` and `kid` its header's.
pub(crate) fn limited_user_token(
    alg: Algorithm,
    kid: Option<&str>,
    claims: &Claims,
) -> Option<Arc<LimitedUserToken>> {
    // Field order is the wire format: the identity provider signed exactly these bytes.
    #[derive(Serialize)]
    struct Header<'a> {
        typ: &'a str,
        alg: Algorithm,
        #[serde(skip_serializing_if = "Option::is_none")]
        kid: Option<&'a str>,
    }
    #[derive(Serialize)]
    struct Payload<'a> {
        sub: &'a Value,
        iat: &'a Value,
        exp: &'a Value,
    }
    let uip = claims.str("uip")?;
    // A signature is base64url; anything else cannot be one, and must not smuggle a `.`.
    if uip.is_empty()
        || !uip
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return None;
    }
    let exp = claims.get("exp")?;
    let (sub, iat) = (claims.get("sub")?, claims.get("iat")?);
    let header = serde_json::to_vec(&Header {
        typ: LIMITED_USER_TYP,
        alg,
        kid,
    })
    .ok()?;
    // Receivers require `iat` in a limited token; without it there is nothing to forward.
    let payload = serde_json::to_vec(&Payload {
        sub: &sub,
        iat: &iat,
        exp: &exp,
    })
    .ok()?;
    let token = format!(
        "{}.{}.{uip}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload)
    );
    Some(Arc::new(LimitedUserToken {
        token: SecretString::new(token),
        exp: exp.as_u64()?,
    }))
}

/// The acting service named by an `act` claim (`{"sub": "<service id>"}`), unverified or
/// verified alike: the shape is checked here, the trust by the caller.
pub(crate) fn actor(act: &Value) -> Result<&str, VerifyError> {
    let sub = act
        .as_object()
        .and_then(|o| o.get("sub"))
        .and_then(Value::as_str)
        .ok_or(VerifyError::Malformed(
            "act is not an object naming a service in sub",
        ))?;
    if !crate::service_id::is_valid_service_id(sub) {
        return Err(VerifyError::WrongSubject);
    }
    Ok(sub)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(value: Value) -> Claims {
        Claims::from_json(value.to_string()).unwrap()
    }

    #[test]
    fn rebuilds_the_signed_parts_in_wire_order() {
        let c = claims(json!({
            "iss": "http://backstage/api/auth", "aud": "backstage",
            "exp": 1712075314, "sub": "user:default/jane", "iat": 1712071714,
            "ent": ["user:default/jane"], "uip": "c2lnbmF0dXJl",
        }));
        let limited = limited_user_token(Algorithm::ES256, Some("k1"), &c).unwrap();
        let mut parts = limited.token.expose_secret().split('.');
        let header = URL_SAFE_NO_PAD.decode(parts.next().unwrap()).unwrap();
        let payload = URL_SAFE_NO_PAD.decode(parts.next().unwrap()).unwrap();
        assert_eq!(
            header,
            br#"{"typ":"vnd.backstage.limited-user","alg":"ES256","kid":"k1"}"#
        );
        assert_eq!(
            payload,
            br#"{"sub":"user:default/jane","iat":1712071714,"exp":1712075314}"#
        );
        assert_eq!(parts.next(), Some("c2lnbmF0dXJl"));
        assert_eq!(limited.exp, 1712075314);
    }

    #[test]
    fn no_proof_no_limited_token() {
        let base = json!({"sub": "user:default/jane", "iat": 1, "exp": 2});
        assert!(limited_user_token(Algorithm::ES256, None, &claims(base.clone())).is_none());
        // Without `iat` the limited token would be refused downstream: none is made.
        let no_iat = json!({"sub": "user:default/jane", "exp": 2, "uip": "c2ln"});
        assert!(limited_user_token(Algorithm::ES256, None, &claims(no_iat)).is_none());
        for bad in [json!(""), json!("a.b"), json!(7), json!("sig=")] {
            let mut c = base.clone();
            c["uip"] = bad;
            let c = claims(c);
            assert!(limited_user_token(Algorithm::ES256, None, &c).is_none());
        }
    }

    #[test]
    fn actor_shapes() {
        assert_eq!(actor(&json!({"sub": "scaffolder"})).unwrap(), "scaffolder");
        assert!(actor(&json!("scaffolder")).is_err());
        assert!(actor(&json!({"sub": "../x"})).is_err());
        assert!(actor(&json!({})).is_err());
    }
}
