//! Required claims (`requiredClaims`): narrowing who at an identity provider may call.
//!
//! An issuer and an audience check say "a token this provider minted for this service".
//! At a large provider, many clients and tenants can get such a token; the claims that say
//! which one (`azp`, `client_id`, `oid`, `tid`, `sub`, or any claim of your own) narrow it to
//! the callers you mean. Each required claim lists its accepted values; a token is accepted
//! when the claim equals one of them or, for a claim that is a list (like `groups`), holds
//! one of them. A token without the claim, or with another value, is refused with 401
//! `token claim `azp` is not accepted` (or `token has no `azp` claim`): the claim is named,
//! its value never is (it would tell a prober which values exist, and it may be personal).
//!
//! `azp` and `client_id` are different claims (OIDC's authorized party, RFC 9068's client
//! id): require the one your provider sets.

use serde_json::Value;

use crate::error::{ConfigError, ConfigRule, VerifyError};
use crate::jwt::Claims;

/// The longest claim name accepted.
const MAX_NAME_LEN: usize = 128;

/// Claims a token must carry, each with its accepted values, in the order given.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct RequiredClaims(Vec<(String, Vec<Value>)>);

impl RequiredClaims {
    /// Requires `claim` to be one of `values` (replacing an earlier requirement on it).
    pub(crate) fn set(&mut self, claim: String, values: Vec<Value>) {
        self.0.retain(|(name, _)| *name != claim);
        self.0.push((claim, values));
    }

    /// Checks the names and values; `path` is the `requiredClaims` path.
    pub(crate) fn validate(&self, path: &str) -> Result<(), ConfigError> {
        for (name, values) in &self.0 {
            let at = format!("{path}.{name}");
            let name_ok = (1..=MAX_NAME_LEN).contains(&name.len())
                && name
                    .bytes()
                    .all(|b| (0x21..=0x7e).contains(&b) && b != b'"' && b != b'\\');
            if !name_ok {
                return Err(ConfigError::new(path, ConfigRule::InvalidClaimName));
            }
            let scalar =
                |v: &Value| matches!(v, Value::String(_) | Value::Number(_) | Value::Bool(_));
            if values.is_empty() || !values.iter().all(scalar) {
                return Err(ConfigError::new(at, ConfigRule::BadRequiredClaimValue));
            }
        }
        Ok(())
    }

    /// Whether `claims` satisfy every requirement; the error names the first claim that
    /// does not.
    pub(crate) fn check(&self, claims: &Claims) -> Result<(), VerifyError> {
        for (name, accepted) in &self.0 {
            let ok = match claims.get(name).as_deref() {
                None | Some(Value::Null) => {
                    return Err(VerifyError::MissingRequiredClaim(name.clone()));
                }
                Some(Value::Array(items)) => items.iter().any(|i| accepted.contains(i)),
                Some(value) => accepted.contains(value),
            };
            if !ok {
                return Err(VerifyError::ClaimNotAccepted(name.clone()));
            }
        }
        Ok(())
    }

    /// Only the requirement on `claim`, if any (for tokens that carry only some claims).
    pub(crate) fn only(&self, claim: &str) -> Self {
        Self(self.0.iter().filter(|(n, _)| n == claim).cloned().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_lists_and_absence() {
        let mut r = RequiredClaims::default();
        r.set("azp".into(), vec![json!("ci"), json!("deploy")]);
        r.set("email_verified".into(), vec![json!(true)]);
        let claims = |v: Value| Claims::from_json(v.to_string()).unwrap();
        assert_eq!(
            r.check(&claims(json!({"azp": "ci", "email_verified": true}))),
            Ok(())
        );
        assert_eq!(
            r.check(&claims(json!({"azp": "evil", "email_verified": true}))),
            Err(VerifyError::ClaimNotAccepted("azp".into()))
        );
        assert_eq!(
            r.check(&claims(
                json!({"azp": ["evil", "deploy"], "email_verified": true})
            )),
            Ok(())
        );
        assert_eq!(
            r.check(&claims(json!({"azp": "ci", "email_verified": "true"}))),
            Err(VerifyError::ClaimNotAccepted("email_verified".into()))
        );
        assert_eq!(
            r.check(&claims(json!({"email_verified": true}))),
            Err(VerifyError::MissingRequiredClaim("azp".into()))
        );
    }

    #[test]
    fn config_rules() {
        let mut r = RequiredClaims::default();
        r.set("a\"b".into(), vec![json!("x")]);
        assert_eq!(r.validate("p").unwrap_err().path(), Some("p"));
        let mut r = RequiredClaims::default();
        r.set("azp".into(), vec![]);
        assert_eq!(r.validate("p").unwrap_err().path(), Some("p.azp"));
        let mut r = RequiredClaims::default();
        r.set("azp".into(), vec![json!({"nested": 1})]);
        assert!(r.validate("p").is_err());
    }
}
