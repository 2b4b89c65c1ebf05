//! Custom external token types: your own `externalAccess` `type:`, verified by your code,
//! chosen by classification like the built-in kinds and policed like every other caller.
//!
//! Backstage lets a backend register external token handlers
//! (`externalTokenHandlersServiceRef`) and then tries every handler on every token. Here a
//! custom type claims its tokens by a **prefix** (`acme_` for Acme's API keys), so an opaque
//! token goes to exactly one verifier and a refusal names the real reason. Prefixes are
//! checked at build: none may be a prefix of another, none may look like a JWT (`eyJ`) or
//! take the crate's own prefixes (`s2s_`), and no static token may start with one.
//!
//! ```
//! use std::sync::Arc;
//! use s2s_auth::custom::{ExternalIdentity, ExternalTokenError, ExternalTokenType, ExternalTokenVerifier, VerifyFuture};
//! use s2s_auth::{Auth, ConfigError};
//!
//! /// Acme's API keys: `acme_<key>`, checked against a list (a real one would call Acme).
//! struct AcmeKeys { known: Vec<(String, String)> }
//!
//! impl ExternalTokenVerifier for AcmeKeys {
//!     fn prefix(&self) -> &str { "acme_" }
//!     fn verify<'a>(&'a self, token: &'a str) -> VerifyFuture<'a> {
//!         Box::pin(async move {
//!             self.known.iter()
//!                 .find(|(key, _)| key == token)
//!                 .map(|(_, who)| ExternalIdentity::new(who.clone()))
//!                 .ok_or(ExternalTokenError::Invalid("unknown Acme key"))
//!         })
//!     }
//! }
//!
//! /// The `type: acme` of `externalAccess`, with `options: { keys: {<key>: <subject>} }`.
//! struct Acme;
//!
//! impl ExternalTokenType for Acme {
//!     fn type_name(&self) -> &str { "acme" }
//!     fn initialize(&self, options: &serde_json::Value) -> Result<Arc<dyn ExternalTokenVerifier>, String> {
//!         let keys = options.get("keys").and_then(|k| k.as_object())
//!             .ok_or("options.keys must map keys to subjects")?;
//!         let known = keys.iter()
//!             .map(|(k, v)| Ok((k.clone(), v.as_str().ok_or("a subject must be a string")?.to_owned())))
//!             .collect::<Result<_, &str>>()?;
//!         Ok(Arc::new(AcmeKeys { known }))
//!     }
//! }
//!
//! let yaml = "
//! s2s: { serviceId: catalog }
//! backend:
//!   auth:
//!     externalAccess:
//!       - type: acme
//!         options: { keys: { acme_k3y-for-the-deploy-bot: deploy-bot } }
//! ";
//! let auth = s2s_auth::AuthBuilder::from_yaml_str(yaml)?
//!     .external_token_type(Acme)
//!     .build()?;
//! // `acme_...` tokens now go to AcmeKeys only; the caller is `external:acme:deploy-bot`,
//! // with credential kind `custom`.
//! # let _ = auth;
//! # Ok::<(), ConfigError>(())
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use time::OffsetDateTime;

use crate::error::{ConfigError, ConfigRule, RequestError, VerifyError};
use crate::principal::{CredentialKind, Principal, PrincipalType};
use crate::restrictions::AccessRestrictions;
use crate::verifier::{Shared, Token, Verification, Verifier, now_or_later};

/// The future an [`ExternalTokenVerifier`] returns.
pub type VerifyFuture<'a> =
    Pin<Box<dyn Future<Output = Result<ExternalIdentity, ExternalTokenError>> + Send + 'a>>;

/// A kind of external token you verify yourself: the `type:` of an `externalAccess` entry.
/// Register it with [`AuthBuilder::external_token_type`](crate::AuthBuilder::external_token_type).
pub trait ExternalTokenType: Send + Sync + 'static {
    /// The `type:` name in configuration: `^[a-z0-9_-]+$`, not one of the built-in types
    /// (`static`, `jwks`, `legacy`).
    fn type_name(&self) -> &str;

    /// Builds the verifier of one configuration entry from its `options` (the YAML mapping
    /// as JSON). The error explains what is wrong; it is reported at the entry's
    /// `options` path, so never put a secret in it.
    fn initialize(
        &self,
        options: &serde_json::Value,
    ) -> Result<Arc<dyn ExternalTokenVerifier>, String>;
}

/// An `Arc` of a type is the same type, so one can be shared and handed over as it is.
impl<T: ExternalTokenType + ?Sized> ExternalTokenType for Arc<T> {
    fn type_name(&self) -> &str {
        (**self).type_name()
    }

    fn initialize(
        &self,
        options: &serde_json::Value,
    ) -> Result<Arc<dyn ExternalTokenVerifier>, String> {
        (**self).initialize(options)
    }
}

/// Verifies the tokens of one custom entry.
pub trait ExternalTokenVerifier: Send + Sync + 'static {
    /// The prefix that marks this entry's tokens (at least 3 visible ASCII characters, e.g.
    /// `acme_`). Classification sends every opaque token that starts with it here, and
    /// nowhere else.
    fn prefix(&self) -> &str;

    /// Verifies `token` (it starts with [`prefix`](Self::prefix)). Called on the request
    /// path: keep it quick; it may await (a call to the issuing system).
    fn verify<'a>(&'a self, token: &'a str) -> VerifyFuture<'a>;
}

/// Who a custom token belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExternalIdentity {
    subject: String,
    expires_at: Option<OffsetDateTime>,
    read_only: bool,
}

impl ExternalIdentity {
    /// The caller `subject` (the principal becomes `external:<type>:<subject>`; a subject
    /// that is empty or holds whitespace or control characters is refused with 401).
    pub fn new(subject: impl Into<String>) -> Self {
        Self {
            subject: subject.into(),
            expires_at: None,
            read_only: false,
        }
    }

    /// When the token expires (the layer refuses it from then on, 401).
    pub fn expires_at(mut self, at: OffsetDateTime) -> Self {
        self.expires_at = Some(at);
        self
    }

    /// Whether writes are refused unless the route allows static writes (like a static
    /// token without `allowWrites`). Default `false`.
    pub fn read_only(mut self, read_only: bool) -> Self {
        self.read_only = read_only;
        self
    }
}

/// Why a custom token was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExternalTokenError {
    /// The token is not valid (401). The reason is a fixed text: it is sent to the caller
    /// and logged, so it must never hold the token.
    #[error("{0}")]
    Invalid(&'static str),
    /// The system that checks the token cannot be reached (503 with `Retry-After`).
    #[error("the token's issuer is unavailable")]
    Unavailable {
        /// Seconds until a retry may succeed.
        retry_after_secs: u64,
    },
}

/// One custom entry given in Rust: its `type:` name, its verifier and (optionally) its
/// access restrictions. Add it with
/// [`AuthBuilder::custom_access`](crate::AuthBuilder::custom_access); from YAML, entries are
/// made by the [`ExternalTokenType`] registered for their `type:`.
#[derive(Clone)]
pub struct CustomAccess {
    pub(crate) type_name: String,
    pub(crate) verifier: Arc<dyn ExternalTokenVerifier>,
    pub(crate) restrictions: Option<AccessRestrictions>,
    pub(crate) origin: String,
}

impl std::fmt::Debug for CustomAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CustomAccess")
            .field("type_name", &self.type_name)
            .field("prefix", &self.verifier.prefix())
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

impl CustomAccess {
    /// An entry of type `type_name` (subjects become `external:<type_name>:<subject>`).
    pub fn new(type_name: impl Into<String>, verifier: Arc<dyn ExternalTokenVerifier>) -> Self {
        Self {
            type_name: type_name.into(),
            verifier,
            restrictions: None,
            origin: String::from("custom_access"),
        }
    }

    /// Restricts what its callers may do (`accessRestrictions`).
    pub fn restrict(mut self, restrictions: AccessRestrictions) -> Self {
        self.restrictions = Some(restrictions);
        self
    }
}

/// A YAML entry of a type that is not built in, resolved at build against the registered
/// types (so types can be registered after the file is read).
#[derive(Debug)]
pub(crate) struct PendingCustom {
    pub(crate) origin: String,
    pub(crate) type_name: String,
    pub(crate) options: serde_json::Value,
    pub(crate) restrictions: Option<AccessRestrictions>,
}

/// The built-in `externalAccess` types: a custom type may not take their names.
pub(crate) const BUILT_IN_TYPES: [&str; 3] = ["static", "jwks", "legacy"];

/// Resolves the YAML entries against the registered types and checks every custom entry
/// (type names, prefixes, and static tokens that a prefix would steal).
pub(crate) fn resolve(
    types: &[Arc<dyn ExternalTokenType>],
    pending: Vec<PendingCustom>,
    mut entries: Vec<CustomAccess>,
    static_plaintexts: &[(&str, &str)],
) -> Result<Vec<Arc<CustomVerifier>>, ConfigError> {
    for (i, t) in types.iter().enumerate() {
        let name = t.type_name();
        let taken = BUILT_IN_TYPES.contains(&name)
            || types[..i].iter().any(|o| o.type_name() == name)
            || !crate::service_id::is_valid_service_id(name);
        if taken {
            return Err(ConfigError::new(
                format!("external_token_type({name:?})"),
                ConfigRule::DuplicateType(name.to_owned()),
            ));
        }
    }
    for p in pending {
        let Some(t) = types.iter().find(|t| t.type_name() == p.type_name) else {
            let registered: Vec<&str> = types.iter().map(|t| t.type_name()).collect();
            let expected = if registered.is_empty() {
                "static, jwks or legacy (or register a custom type with external_token_type)"
                    .to_owned()
            } else {
                format!("static, jwks, legacy or {}", registered.join(", "))
            };
            return Err(ConfigError::new(
                format!("{}.type", p.origin),
                ConfigRule::UnknownName {
                    what: "type",
                    expected,
                },
            ));
        };
        let verifier = t.initialize(&p.options).map_err(|why| {
            ConfigError::new(
                format!("{}.options", p.origin),
                ConfigRule::CustomOptions(why),
            )
        })?;
        entries.push(CustomAccess {
            type_name: p.type_name,
            verifier,
            restrictions: p.restrictions,
            origin: p.origin,
        });
    }
    for (i, e) in entries.iter().enumerate() {
        // The type is part of every subject (`external:<type>:<subject>`): a name with `:`
        // or none at all would let one entry's callers pass for another's.
        if BUILT_IN_TYPES.contains(&e.type_name.as_str())
            || !crate::service_id::is_valid_service_id(&e.type_name)
        {
            return Err(ConfigError::new(
                format!("{}.type", e.origin),
                ConfigRule::DuplicateType(e.type_name.clone()),
            ));
        }
        let prefix = e.verifier.prefix();
        let bad = |why| {
            ConfigError::new(
                format!("{}.options", e.origin),
                ConfigRule::BadCustomPrefix {
                    prefix: prefix.to_owned(),
                    why,
                },
            )
        };
        if prefix.len() < 3 || !prefix.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
            return Err(bad("must be at least 3 visible ASCII characters"));
        }
        // A JWT starts `eyJ`; `s2s_` is this crate's own (service-account tokens).
        if prefix.starts_with("eyJ") || "eyJ".starts_with(prefix) {
            return Err(bad("would also match JWTs"));
        }
        if prefix.starts_with("s2s_") || "s2s_".starts_with(prefix) {
            return Err(bad("overlaps the crate's own s2s_ tokens"));
        }
        let overlapping = entries[..i].iter().any(|o| {
            let other = o.verifier.prefix();
            other.starts_with(prefix) || prefix.starts_with(other)
        });
        if overlapping {
            return Err(bad(
                "overlaps another custom type's prefix: a token must have one verifier",
            ));
        }
        if let Some((path, _)) = static_plaintexts
            .iter()
            .find(|(_, t)| t.starts_with(prefix))
        {
            return Err(ConfigError::new(
                format!("{path}.options.token"),
                ConfigRule::TokenMisclassified("a custom type's token"),
            ));
        }
    }
    Ok(entries
        .into_iter()
        .map(|e| Arc::new(CustomVerifier(e)))
        .collect())
}

/// One configured custom entry, checked and ready to verify.
#[derive(Debug)]
pub(crate) struct CustomVerifier(pub(crate) CustomAccess);

impl CustomVerifier {
    fn principal(
        &self,
        id: ExternalIdentity,
        now: OffsetDateTime,
    ) -> Result<Principal, RequestError> {
        let clean = !id.subject.is_empty()
            && !id
                .subject
                .chars()
                .any(|c| c.is_whitespace() || c.is_control());
        if !clean {
            return Err(VerifyError::WrongSubject.into());
        }
        if id.expires_at.is_some_and(|at| now >= at) {
            return Err(VerifyError::Expired.into());
        }
        let mut p = Principal::new(
            PrincipalType::Service,
            format!("external:{}:{}", self.0.type_name, id.subject),
            CredentialKind::Custom,
        )
        .with_read_only(id.read_only);
        if let Some(at) = id.expires_at {
            p = p.with_expiry(at);
        }
        if let Some(r) = &self.0.restrictions {
            p = p.with_restrictions(r.clone());
        }
        Ok(p)
    }
}

impl Verifier for CustomVerifier {
    fn verify(self: &Arc<Self>, token: Token<'_>, _shared: &Arc<Shared>) -> Verification {
        let this = self.clone();
        let raw = token.raw.to_owned();
        let now = token.now.wall();
        now_or_later(async move {
            match this.0.verifier.verify(&raw).await {
                Ok(id) => this.principal(id, now),
                Err(ExternalTokenError::Invalid(reason)) => {
                    Err(VerifyError::Rejected(reason).into())
                }
                Err(ExternalTokenError::Unavailable { retry_after_secs }) => {
                    Err(RequestError::KeysUnavailable {
                        retry_after_secs: retry_after_secs.max(1),
                    })
                }
            }
        })
    }
}
