//! The verified caller: [`Principal`], and its axum extractor.
//!
//! The layer puts a `Principal` into the request's extensions once a credential is verified.
//! Handlers take it as an extractor:
//!
//! ```
//! use axum::{routing::get, Router};
//! use s2s_auth::Principal;
//!
//! async fn whoami(principal: Principal) -> String {
//!     format!("{} via {}", principal.subject(), principal.credential())
//! }
//!
//! // On unauthenticated routes there may be nobody: `Option<Principal>` never rejects.
//! async fn health(principal: Option<Principal>) -> &'static str {
//!     if principal.is_some() { "ok (authenticated)" } else { "ok" }
//! }
//!
//! let app: Router = Router::new()
//!     .route("/whoami", get(whoami))
//!     .route("/healthz", get(health));
//! ```
//!
//! If `Principal` is asked for and the layer put none there (the route is unauthenticated
//! and the request carried no credential, or the layer is missing), the extractor rejects
//! with [`MissingPrincipal`]: a 401 with the layer's own challenge,
//! `WWW-Authenticate: Bearer realm="<service id>"`.

use std::fmt;
use std::sync::Arc;

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use http::request::Parts;
use serde::Serialize;
use time::OffsetDateTime;

pub use crate::service_id::is_valid_service_id;

use crate::restrictions::AccessRestrictions;
use crate::secret::SecretString;

/// The kind of credential a caller presented.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum CredentialKind {
    /// A user's token from the deployment's identity provider.
    User,
    /// A static token from `backend.auth.externalAccess` (`type: static`).
    Static,
    /// An external JWT verified against a JWKS URL (`type: jwks`).
    Jwks,
    /// A Backstage legacy HS256 token (`type: legacy`).
    Legacy,
    /// A token one service issued to call another.
    Plugin,
    /// A token with which a service acts on behalf of a user.
    Obo,
    /// A service-account token.
    ServiceAccount,
    /// A token of a custom external type (see [`custom`](crate::custom)).
    Custom,
    /// No credential at all.
    None,
}

impl CredentialKind {
    /// Every kind, in the order the access table shows them.
    pub const ALL: [CredentialKind; 9] = [
        CredentialKind::None,
        CredentialKind::User,
        CredentialKind::Static,
        CredentialKind::Jwks,
        CredentialKind::Legacy,
        CredentialKind::Plugin,
        CredentialKind::Obo,
        CredentialKind::ServiceAccount,
        CredentialKind::Custom,
    ];

    /// The name used in configuration (`allow: [static, user]`) and in audit events.
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialKind::User => "user",
            CredentialKind::Static => "static",
            CredentialKind::Jwks => "jwks",
            CredentialKind::Legacy => "legacy",
            CredentialKind::Plugin => "plugin",
            CredentialKind::Obo => "obo",
            CredentialKind::ServiceAccount => "service-account",
            CredentialKind::Custom => "custom",
            CredentialKind::None => "none",
        }
    }

    /// Parses a configuration name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// Whether a machine can mint the credential by itself: plugin and on-behalf-of tokens
    /// (this crate, or a peer using the same wire format), service-account tokens, and legacy
    /// HS256 tokens, which anyone holding the shared secret signs at will (every backend of a
    /// Backstage deployment that shares it). (Sensitive routes go further: they take a
    /// user's own credential only; see [`RoutePolicy::sensitive`](crate::RoutePolicy::sensitive).)
    pub fn is_machine_minted(self) -> bool {
        matches!(
            self,
            CredentialKind::Plugin
                | CredentialKind::Obo
                | CredentialKind::ServiceAccount
                | CredentialKind::Legacy
        )
    }
}

impl fmt::Display for CredentialKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What kind of party the principal is (Backstage's `user` / `service` / `none`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PrincipalType {
    /// A person.
    User,
    /// A machine: another service, a CI job, an external system.
    Service,
    /// Nobody.
    None,
}

impl fmt::Display for PrincipalType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PrincipalType::User => "user",
            PrincipalType::Service => "service",
            PrincipalType::None => "none",
        })
    }
}

/// A limited user token: the identity provider's proof of a user, which a service forwards
/// (inside a plugin token's `obo` claim) to act for that user. A secret: `Debug` shows only
/// its fingerprint.
#[derive(Clone, Debug)]
pub(crate) struct LimitedUserToken {
    pub(crate) token: SecretString,
    /// The user token's `exp` (unix seconds): no token on the user's behalf may outlive it.
    pub(crate) exp: u64,
}

impl PartialEq for LimitedUserToken {
    fn eq(&self, other: &Self) -> bool {
        self.exp == other.exp && self.token.expose_secret() == other.token.expose_secret()
    }
}

impl Eq for LimitedUserToken {}

/// A verified caller.
///
/// Serializes (for the examples' echo routes and for your own logs) as
/// `{"subject", "principalType", "credential", "actor", "restrictions", "expiresAt",
/// "readOnly"}`; nothing in it is secret.
///
/// Cloning is one reference count: the verified-token cache, the request's extensions and
/// every extractor share one copy (a cached request used to copy each field).
#[derive(Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Principal(Arc<Fields>);

/// The fields behind [`Principal`], in a module of their own so that their derived `Debug`
/// prints the name `Principal` (no hand-kept list of fields to forget one in).
mod fields {
    use super::*;

    #[derive(Clone, Debug, PartialEq, Eq, Serialize)]
    #[serde(rename_all = "camelCase")]
    pub(super) struct Principal {
        // Shared with the audit events that name it, not copied into them.
        pub(super) subject: Arc<str>,
        pub(super) principal_type: PrincipalType,
        pub(super) credential: CredentialKind,
        pub(super) actor: Option<Arc<str>>,
        pub(super) restrictions: Option<AccessRestrictions>,
        #[serde(with = "time::serde::rfc3339::option")]
        pub(super) expires_at: Option<OffsetDateTime>,
        pub(super) read_only: bool,
        #[serde(skip_serializing_if = "refs_are_empty")]
        pub(super) ownership_entity_refs: Arc<[String]>,
        #[serde(skip_serializing_if = "refs_are_empty")]
        pub(super) roles: Arc<[String]>,
        /// The identity provider's proof of this user, for acting on their behalf (see the `obo`
        /// module). A secret: never serialized, and `Debug` shows only its fingerprint.
        #[serde(skip)]
        pub(super) limited_user_token: Option<Arc<LimitedUserToken>>,
    }
}
use fields::Principal as Fields;

impl fmt::Debug for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl Principal {
    /// A principal of the given type, subject and credential kind, with no actor, no
    /// restrictions, no expiry, and writes allowed.
    pub fn new(
        principal_type: PrincipalType,
        subject: impl Into<String>,
        credential: CredentialKind,
    ) -> Self {
        Self(Arc::new(Fields {
            subject: subject.into().into(),
            principal_type,
            credential,
            actor: None,
            restrictions: None,
            expires_at: None,
            read_only: false,
            ownership_entity_refs: Arc::new([]),
            roles: Arc::new([]),
            limited_user_token: None,
        }))
    }

    /// Nobody: the principal of an unauthenticated request (subject `none`).
    pub fn none() -> Self {
        Self::new(PrincipalType::None, "none", CredentialKind::None)
    }

    /// Sets the actor: the service acting on behalf of this principal.
    pub fn with_actor(mut self, actor: impl Into<String>) -> Self {
        self.fields_mut().actor = Some(actor.into().into());
        self
    }

    /// Sets the access restrictions carried by the credential.
    pub fn with_restrictions(mut self, restrictions: AccessRestrictions) -> Self {
        self.fields_mut().restrictions = Some(restrictions);
        self
    }

    /// Sets when the credential expires.
    pub fn with_expiry(mut self, expires_at: OffsetDateTime) -> Self {
        self.fields_mut().expires_at = Some(expires_at);
        self
    }

    /// Marks the credential read-only: writes are refused unless the route allows them.
    pub fn with_read_only(mut self, read_only: bool) -> Self {
        self.fields_mut().read_only = read_only;
        self
    }

    /// Sets the entity refs the user owns through (Backstage user tokens' `ent` claim:
    /// the user and their groups).
    pub fn with_ownership_entity_refs(mut self, refs: Vec<String>) -> Self {
        self.fields_mut().ownership_entity_refs = refs.into();
        self
    }

    /// Sets the roles the credential carries (a just-in-time on-behalf-of token's `roles`).
    pub fn with_roles(mut self, roles: Vec<String>) -> Self {
        self.fields_mut().roles = roles.into();
        self
    }

    /// The roles the credential carries: a just-in-time on-behalf-of token's, decrypted
    /// (empty when the credential says nothing).
    pub fn roles(&self) -> &[String] {
        &self.0.roles
    }

    /// The entity refs the user owns through (empty when the credential says nothing).
    pub fn ownership_entity_refs(&self) -> &[String] {
        &self.0.ownership_entity_refs
    }

    pub(crate) fn with_limited_user_token(mut self, token: Option<Arc<LimitedUserToken>>) -> Self {
        self.fields_mut().limited_user_token = token;
        self
    }

    /// The fields to change: copied first only if another clone shares them (builders
    /// call this before the principal is ever shared).
    fn fields_mut(&mut self) -> &mut Fields {
        Arc::make_mut(&mut self.0)
    }

    pub(crate) fn limited_user_token(&self) -> Option<&Arc<LimitedUserToken>> {
        self.0.limited_user_token.as_ref()
    }

    /// The Backstage-style subject: `user:default/jane`, `plugin:scaffolder`,
    /// `external:ci-bot`, `service-account:indexer`.
    pub fn subject(&self) -> &str {
        &self.0.subject
    }

    /// The subject, shared (for audit events, which count it rather than copy it).
    pub(crate) fn shared_subject(&self) -> &Arc<str> {
        &self.0.subject
    }

    /// The actor, shared.
    pub(crate) fn shared_actor(&self) -> Option<&Arc<str>> {
        self.0.actor.as_ref()
    }

    /// User, service or nobody.
    pub fn principal_type(&self) -> PrincipalType {
        self.0.principal_type
    }

    /// The kind of credential that was verified.
    pub fn credential(&self) -> CredentialKind {
        self.0.credential
    }

    /// The service acting on behalf of this principal, if any.
    pub fn actor(&self) -> Option<&str> {
        self.0.actor.as_deref()
    }

    /// The access restrictions of the credential, if any.
    pub fn restrictions(&self) -> Option<&AccessRestrictions> {
        self.0.restrictions.as_ref()
    }

    /// When the credential expires, if it does.
    pub fn expires_at(&self) -> Option<OffsetDateTime> {
        self.0.expires_at
    }

    /// Whether writes (anything but `GET`, `HEAD`, `OPTIONS`) are refused unless the route
    /// allows them. Static tokens are read-only unless configured with `allowWrites: true`.
    pub fn is_read_only(&self) -> bool {
        self.0.read_only
    }
}

fn refs_are_empty(refs: &Arc<[String]>) -> bool {
    refs.is_empty()
}

/// The rejection of the [`Principal`] extractor when the request carries no principal.
///
/// Responds 401 with `WWW-Authenticate: Bearer realm="<service id>"` (the same challenge the
/// layer sends; a bare `Bearer` when no layer ran) and a Backstage-shaped JSON body. Seeing it
/// usually means the route is declared `unauthenticated` (take `Option<Principal>` there) or
/// the router is not wrapped in [`AuthLayer`](crate::layer::AuthLayer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingPrincipal {
    /// The service's realm, when the layer ran (it leaves its [`Realm`] in the request).
    pub(crate) realm: Option<Realm>,
}

/// The realm (this service's id) the layer leaves in every request it lets through, so a
/// rejection made later, by an extractor, answers with the same challenge as the layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Realm(pub(crate) Arc<str>);

impl fmt::Display for MissingPrincipal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("this route needs an authenticated caller")
    }
}

impl std::error::Error for MissingPrincipal {}

impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = MissingPrincipal;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Principal>()
            .cloned()
            .ok_or_else(|| MissingPrincipal {
                realm: parts.extensions.get::<Realm>().cloned(),
            })
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Principal {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<Principal>().cloned())
    }
}
