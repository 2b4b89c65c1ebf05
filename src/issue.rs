//! Issuing: the tokens this service mints for calling other services, as itself
//! ([`Auth::plugin_token`]) or on behalf of a user ([`Auth::on_behalf_of_token`]). Every
//! token issued is an audit event (`token_issued`: target, subject, actor, expiry and the
//! token's fingerprint, never the token).

use crate::audit::{AuditText, EventKind};
use crate::auth::Auth;
use crate::error::{DelegationError, IssueError};
use crate::plugin::{KeyManager, issue, now, token_times};
use crate::principal::{CredentialKind, Principal, PrincipalType};
use crate::secret::SecretString;

impl Auth {
    /// Mints a plugin-to-plugin token for calling `target` as this service (Backstage wire
    /// format). Rotates and publishes a new signing key first when one is due; a key is never
    /// used before its public half is in the store.
    pub async fn plugin_token(&self, target: &str) -> Result<SecretString, IssueError> {
        let keys = self.keys()?;
        let token = issue(keys, self.service_id(), target, None, None).await?;
        self.audit_issued(
            &token,
            self.service_id(),
            None,
            CredentialKind::Plugin,
            target,
        );
        Ok(token)
    }

    /// Mints a plugin token for calling `target` **on behalf of** `principal`, the user who
    /// called this service (see the [`obo`](crate::obo) module for the wire format):
    ///
    /// - a Backstage user whose token carried the identity provider's proof (`uip`): the
    ///   delegated form, with the limited user token in `obo`; the receiver verifies the user
    ///   against the identity provider;
    /// - any other user (OIDC, an on-behalf-of principal in the actor form): the actor form,
    ///   `sub` the user and `act: {"sub": <this service>}`; receivers accept it only if they
    ///   list this service in their trusted actors.
    ///
    /// Its `exp` never passes the user's token's. Errors: [`IssueError::CannotDelegate`] with
    /// the reason: [`DelegationError::Restricted`] for a principal with access restrictions
    /// (a token on its behalf would escape them), [`DelegationError::NotAUser`] for a
    /// machine or nobody (call as this service with [`plugin_token`](Self::plugin_token)),
    /// [`DelegationError::NoExpiry`] or [`DelegationError::Expired`] for a user whose
    /// credential cannot bound the new token.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use s2s_auth::{Auth, CredentialKind, PluginTokens, Principal, PrincipalType};
    /// use s2s_auth::error::{DelegationError, IssueError};
    /// use s2s_auth::store::MemoryStore;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let scaffolder = Auth::builder("scaffolder")
    ///     .plugin_tokens(PluginTokens::new(Arc::new(MemoryStore::default())))
    ///     .build()?;
    /// let expires = time::OffsetDateTime::now_utc() + time::Duration::minutes(10);
    /// let jane = Principal::new(PrincipalType::User, "user:default/jane", CredentialKind::User)
    ///     .with_expiry(expires);
    /// let token = scaffolder.on_behalf_of_token(&jane, "catalog").await?;
    /// assert!(token.expose_secret().starts_with("eyJ"));
    ///
    /// let ci = Principal::new(PrincipalType::Service, "external:ci", CredentialKind::Static);
    /// assert!(matches!(
    ///     scaffolder.on_behalf_of_token(&ci, "catalog").await,
    ///     Err(IssueError::CannotDelegate(DelegationError::NotAUser))
    /// ));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn on_behalf_of_token(
        &self,
        principal: &Principal,
        target: &str,
    ) -> Result<SecretString, IssueError> {
        let user_exp = delegable(principal)?;
        let keys = self.keys()?;
        let service_id = self.service_id();
        let actor = format!("plugin:{service_id}");
        let token = if let Some(limited) = principal.limited_user_token() {
            let obo = serde_json::Value::from(limited.token.expose_secret());
            let max_exp = user_exp.min(limited.exp);
            issue(keys, service_id, target, Some(("obo", obo)), Some(max_exp)).await?
        } else {
            let act = serde_json::json!({ "sub": service_id });
            issue(
                keys,
                principal.subject(),
                target,
                Some(("act", act)),
                Some(user_exp),
            )
            .await?
        };
        self.audit_issued(
            &token,
            principal.subject(),
            Some(&actor),
            CredentialKind::Obo,
            target,
        );
        Ok(token)
    }

    fn keys(&self) -> Result<&KeyManager, IssueError> {
        self.pipeline
            .keys
            .as_deref()
            .ok_or(IssueError::NotConfigured)
    }

    /// The `token_issued` event: who the token names, for whom, until when; never the token.
    fn audit_issued(
        &self,
        token: &SecretString,
        subject: &str,
        actor: Option<&str>,
        credential: CredentialKind,
        target: &str,
    ) {
        let expires_at = token_times(token).and_then(|(_, exp)| crate::jwt::expiry(exp).ok());
        self.pipeline.auditor.record_lifecycle(
            EventKind::TokenIssued,
            self.service_id(),
            "token_issued",
            |e| {
                e.subject = Some(AuditText::from(subject.to_owned()));
                e.principal_type = Some(if credential == CredentialKind::Obo {
                    PrincipalType::User
                } else {
                    PrincipalType::Service
                });
                e.credential = Some(credential);
                e.actor = actor.map(|a| AuditText::from(a.to_owned()));
                e.target = Some(target.to_owned());
                e.expires_at = expires_at;
                e.token_fingerprint = Some(token.fingerprint());
            },
        );
    }
}

/// Whether a token may be issued on behalf of `principal`, and the `exp` that bounds it:
/// the credential this service received for the user, so a second hop never outlives the
/// first (and neither outlives the user's own token).
fn delegable(principal: &Principal) -> Result<u64, DelegationError> {
    if principal.restrictions().is_some() {
        return Err(DelegationError::Restricted);
    }
    if principal.principal_type() != PrincipalType::User {
        return Err(DelegationError::NotAUser);
    }
    let exp = principal
        .expires_at()
        .map(|t| u64::try_from(t.unix_timestamp()).unwrap_or(0))
        .ok_or(DelegationError::NoExpiry)?;
    if exp <= now() {
        return Err(DelegationError::Expired);
    }
    Ok(exp)
}
