//! Issuing: the tokens this service mints for calling other services, as itself
//! ([`Auth::plugin_token`]) or on behalf of a user ([`Auth::on_behalf_of_token`]), and the
//! just-in-time tokens it mints for its users ([`Auth::jit_token`], over HTTP
//! [`Auth::jit_router`]). Every
//! token issued is an audit event (`token_issued`: target, subject, actor, expiry and the
//! token's fingerprint, never the token).

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, Request, StatusCode, header};

use crate::audit::{AuditText, EventKind};
use crate::auth::Auth;
use crate::error::{DelegationError, IssueError};
use crate::jit::{JitIssued, JitRequest, MAX_BODY_BYTES};
use crate::plugin::{KeyManager, issue, now, token_times};
use crate::principal::{CredentialKind, Principal, PrincipalType};
use crate::response::Refusals;
use crate::revocation::REVOCATION_GRACE_SECS;
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

impl Auth {
    /// Issues a just-in-time on-behalf-of token for `user` (see the [`jit`](crate::jit)
    /// module): only for a user's own credential (`user`, no actor, no access
    /// restrictions). The lifetime is the request's (or the default), at most the cap, and
    /// never past the user's own credential's expiry. Audited as `token_issued` with the
    /// token's fingerprint and the description, never the token.
    ///
    /// Errors: [`IssueError::NotConfigured`] without [`jit_tokens`](crate::AuthBuilder::jit_tokens);
    /// [`IssueError::CannotDelegate`] for anyone but a user acting for themselves, or a
    /// user whose credential has no expiry or has expired; [`IssueError::InvalidTarget`]
    /// for a `service` that is not a service id; [`IssueError::BadRequest`] for a zero
    /// duration.
    pub async fn jit_token(
        &self,
        user: &Principal,
        request: &JitRequest,
    ) -> Result<JitIssued, IssueError> {
        let jit = self
            .pipeline
            .jit
            .as_ref()
            .ok_or(IssueError::NotConfigured)?;
        jit.issue(&self.pipeline.auditor, user, request).await
    }
    /// A router serving the just-in-time issue endpoint at the configured paths (see the
    /// [`jit`](crate::jit) module), or nothing when [`jit_tokens`](crate::AuthBuilder::jit_tokens)
    /// is not configured (the paths are then 404). Merge it into your router before applying
    /// [`Auth::layer`]: its routes are registered as sensitive and for users only, so only a
    /// user's own credential reaches it. [`Auth::router`](crate::Auth::router) mounts it by
    /// itself.
    ///
    /// Answers 200 `{"user", "authenticationToken", "durationSeconds"}` (`Cache-Control:
    /// no-store`); 400 for a body that is not a JSON object, an unknown field
    /// (`Unrecognized parameter: <name>`), a missing or non-string `description`, a
    /// non-string `service` or one that is not a service id, a `durationSeconds` that is not
    /// a positive whole number (or such a number in a string); 413 for a body over 16 KiB;
    /// 403 for a caller that is not a user acting for themselves.
    pub fn jit_router<S: Clone + Send + Sync + 'static>(&self) -> axum::Router<S> {
        let mut router = axum::Router::new();
        let Some(jit) = &self.pipeline.jit else {
            return router;
        };
        let auth = self.clone();
        router = router.route(
            &jit.config.revoke_pattern(),
            axum::routing::delete(
                move |axum::extract::Path(jti): axum::extract::Path<String>,
                      request: Request<Body>| {
                    let auth = auth.clone();
                    async move { auth.revoke_endpoint(&jti, request).await }
                },
            ),
        );
        for path in jit.config.paths() {
            let auth = self.clone();
            router = router.route(
                &path,
                axum::routing::post(move |request: Request<Body>| {
                    let auth = auth.clone();
                    async move { auth.issue_endpoint(request).await }
                }),
            );
        }
        router
    }

    /// Revokes the just-in-time token `jti` (see the [`jit`](crate::jit) module): refused on
    /// this replica at once, and on replicas sharing the store within the revocation
    /// staleness. Only the token's own user (acting for themselves) or a configured
    /// revocation admin may. Audited as `token_revoked`. Returns the token's `exp`, until
    /// which the revocation is kept.
    ///
    /// Errors: [`IssueError::NotConfigured`], [`IssueError::UnknownToken`] (no live token
    /// with this `jti`), [`IssueError::NotYours`], [`IssueError::CannotDelegate`] for a
    /// caller that is not a user acting for themselves, [`IssueError::Store`].
    pub async fn revoke_jit_token(&self, by: &Principal, jti: &str) -> Result<i64, IssueError> {
        let jit = self
            .pipeline
            .jit
            .as_ref()
            .ok_or(IssueError::NotConfigured)?;
        if by.credential() != CredentialKind::User || by.actor().is_some() {
            return Err(DelegationError::NotAUser.into());
        }
        // Still revocable while a verifier could take it: until `exp` plus the grace.
        let now = i64::try_from(now()).unwrap_or(i64::MAX);
        let issued = jit
            .store
            .issued_token(jti, now.saturating_sub(REVOCATION_GRACE_SECS))
            .await?
            .ok_or(IssueError::UnknownToken)?;
        let admin = jit
            .config
            .revocation_admins
            .iter()
            .any(|a| a == by.subject());
        if issued.subject != by.subject() && !admin {
            return Err(IssueError::NotYours);
        }
        jit.denylist.start();
        jit.denylist.revoke(jti, issued.expires_at).await?;
        self.pipeline.auditor.record_lifecycle(
            EventKind::TokenRevoked,
            self.service_id(),
            "token_revoked",
            |e| {
                e.subject = Some(AuditText::from(by.subject().to_owned()));
                e.principal_type = Some(PrincipalType::User);
                e.credential = Some(by.credential());
                e.target = Some(jti.to_owned());
                e.expires_at = time::OffsetDateTime::from_unix_timestamp(issued.expires_at).ok();
                e.message = format!("revoked the token of {}", issued.subject);
            },
        );
        Ok(issued.expires_at)
    }

    async fn revoke_endpoint(&self, jti: &str, request: Request<Body>) -> Response {
        let answer = Refusals::of(&request);
        let refuse = |status, name, message: &str| answer.refuse(status, name, message);
        let Some(principal) = request.extensions().get::<Principal>().cloned() else {
            return refuse(
                StatusCode::UNAUTHORIZED,
                "AuthenticationError",
                "missing credentials",
            );
        };
        match self.revoke_jit_token(&principal, jti).await {
            Ok(_) => StatusCode::NO_CONTENT.into_response(),
            Err(IssueError::UnknownToken | IssueError::NotConfigured) => refuse(
                StatusCode::NOT_FOUND,
                "NotFoundError",
                "no live token has this jti",
            ),
            Err(e @ (IssueError::NotYours | IssueError::CannotDelegate(_))) => {
                refuse(StatusCode::FORBIDDEN, "NotAllowedError", &e.to_string())
            }
            Err(e) => {
                tracing::warn!(target: "s2s_auth::jit", error = %e, "cannot revoke a just-in-time token");
                answer.unavailable("cannot revoke now; retry later")
            }
        }
    }

    async fn issue_endpoint(&self, request: Request<Body>) -> Response {
        let answer = Refusals::of(&request);
        let refuse = |status, name, message: &str| answer.refuse(status, name, message);
        let Some(principal) = request.extensions().get::<Principal>().cloned() else {
            return refuse(
                StatusCode::UNAUTHORIZED,
                "AuthenticationError",
                "missing credentials",
            );
        };
        let bytes = match answer.read_body(request, MAX_BODY_BYTES).await {
            Ok(bytes) => bytes,
            Err(refused) => return refused,
        };
        let parsed = match crate::jit::parse_body(&bytes) {
            Ok(parsed) => parsed,
            Err(message) => return refuse(StatusCode::BAD_REQUEST, "InputError", &message),
        };
        match self.jit_token(&principal, &parsed).await {
            Ok(issued) => {
                let body = serde_json::json!({
                    "user": issued.user,
                    "authenticationToken": issued.token.expose_secret(),
                    "durationSeconds": issued.duration_seconds,
                });
                let mut response = axum::Json(body).into_response();
                response
                    .headers_mut()
                    .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                response
            }
            Err(IssueError::CannotDelegate(why)) => refuse(
                StatusCode::FORBIDDEN,
                "NotAllowedError",
                &format!(
                    "Token-authenticated callers cannot create tokens or change credentials ({why})"
                ),
            ),
            Err(e @ (IssueError::InvalidTarget(_) | IssueError::BadRequest(_))) => {
                refuse(StatusCode::BAD_REQUEST, "InputError", &e.to_string())
            }
            Err(IssueError::NotConfigured) => {
                refuse(StatusCode::NOT_FOUND, "NotFoundError", "not found")
            }
            Err(e) => {
                tracing::warn!(target: "s2s_auth::jit", error = %e, "cannot issue a just-in-time token");
                answer.unavailable("cannot issue a token now; retry later")
            }
        }
    }
}
