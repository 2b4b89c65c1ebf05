//! Errors, one enum per boundary:
//!
//! - [`RequestError`]: why a request was refused (bad header, bad credential, not allowed).
//!   Mapped to an HTTP response in exactly one place (the `response` module).
//! - [`VerifyError`]: which check a credential failed (a part of `RequestError`).
//! - [`Forbidden`]: which policy rule refused a verified caller (a part of `RequestError`).
//! - [`ConfigError`]: a bad configuration value: its path and the [`ConfigRule`] it breaks.
//! - [`IssueError`]: why a token could not be issued.
//! - [`DelegationError`]: why this service cannot act for a principal.
//!
//! No variant carries a token or a secret: messages name the check, never the credential.

use std::fmt;

use http::Method;

use crate::principal::CredentialKind;
use crate::restrictions::Action;

/// Why a request was refused. Each variant maps to one status (DESIGN.md section 6):
/// 400 for a malformed request, 401 for missing or invalid credentials, 403 for a valid
/// caller that may not do this.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// 400: more than one `Authorization` header.
    #[error("more than one Authorization header")]
    DuplicateAuthorization,
    /// 400: the `Authorization` header could not be parsed (for example `Bearer` with no
    /// token, or a token with spaces in it).
    #[error("malformed Authorization header: {0}")]
    MalformedAuthorization(&'static str),
    /// 400: an access token in the query string. It is never read; the request is refused
    /// so the caller learns to stop leaking tokens into URLs and logs.
    #[error("access tokens in the URL query are not accepted; send Authorization: Bearer")]
    TokenInQuery,
    /// 401: no credential on a route that needs one.
    #[error("missing credentials")]
    MissingCredentials,
    /// 401: an `Authorization` scheme other than `Bearer`.
    #[error("unsupported authorization scheme; use Bearer")]
    UnsupportedScheme,
    /// 401: the credential failed a check.
    #[error(transparent)]
    InvalidToken(#[from] VerifyError),
    /// 403: the caller is valid but may not do this here.
    #[error(transparent)]
    Forbidden(#[from] Forbidden),
    /// 503: the key needed to verify the token cannot be had right now (the key source is
    /// unreachable and nothing usable is cached). Answered with `Retry-After`.
    #[error("signing keys are unavailable; retry in {retry_after_secs} s")]
    KeysUnavailable {
        /// Seconds until a retry may succeed (the `Retry-After` header).
        retry_after_secs: u64,
    },
    /// The token can be revoked, and this replica could not read the revocations within
    /// their staleness bound: it cannot prove the token was not revoked elsewhere (503,
    /// fail closed).
    #[error("revocations cannot be checked now; retry in {retry_after_secs} s")]
    RevocationsUnavailable {
        /// Seconds until a retry may succeed.
        retry_after_secs: u64,
    },
}

impl RequestError {
    /// The HTTP status this error maps to.
    pub fn status(&self) -> http::StatusCode {
        use http::StatusCode;
        match self {
            RequestError::DuplicateAuthorization
            | RequestError::MalformedAuthorization(_)
            | RequestError::TokenInQuery => StatusCode::BAD_REQUEST,
            RequestError::MissingCredentials
            | RequestError::UnsupportedScheme
            | RequestError::InvalidToken(_) => StatusCode::UNAUTHORIZED,
            RequestError::Forbidden(_) => StatusCode::FORBIDDEN,
            RequestError::KeysUnavailable { .. } | RequestError::RevocationsUnavailable { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        }
    }

    /// A stable, snake_case name of the reason, used as the audit event's `reason`.
    pub fn code(&self) -> &'static str {
        match self {
            RequestError::DuplicateAuthorization => "duplicate_authorization_header",
            RequestError::MalformedAuthorization(_) => "malformed_authorization_header",
            RequestError::TokenInQuery => "token_in_query",
            RequestError::MissingCredentials => "missing_credentials",
            RequestError::UnsupportedScheme => "unsupported_scheme",
            RequestError::InvalidToken(e) => e.code(),
            RequestError::Forbidden(e) => e.code(),
            RequestError::KeysUnavailable { .. } => "keys_unavailable",
            RequestError::RevocationsUnavailable { .. } => "revocations_unavailable",
        }
    }
}

/// Which check a credential failed. Every variant is a 401 `invalid_token`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The token is longer than the limit (8 KiB). Checked before anything else reads it.
    #[error("token is longer than {limit} bytes")]
    TooLong {
        /// The limit in bytes.
        limit: usize,
    },
    /// The token holds a byte outside visible ASCII (`0x21..=0x7e`).
    #[error("token contains characters outside visible ASCII")]
    NotVisibleAscii,
    /// No configured credential matches the token.
    #[error("token is not recognised")]
    Unrecognised,
    /// The token looks like a JWT but no verifier for JWTs is configured.
    #[error("token is a JWT but no JWT issuer is configured")]
    NoJwtVerifier,
    /// The credential has expired.
    #[error("token has expired")]
    Expired,
    /// `exp` names no real date: later than 9999-12-31T23:59:59Z (2^64 - 1, say), negative,
    /// or not a number of seconds at all. Refused rather than wrapped or clamped: an `exp`
    /// read as `i64` would turn 2^64 - 1 into 1969.
    #[error("exp is out of range")]
    ExpOutOfRange,
    /// The token is not a well-formed JWT (the detail names which part).
    #[error("token is malformed: {0}")]
    Malformed(&'static str),
    /// `alg: none`: an unsigned token. Never accepted.
    #[error("unsigned tokens (alg none) are never accepted")]
    AlgorithmNone,
    /// The header carries a key or a key URL (`jku`, `x5u`, `jwk`, `x5c`). Keys come only
    /// from configured sources; such headers are refused, never followed.
    #[error("token header carries `{0}`; keys are only taken from configured JWKS URLs")]
    KeyInHeader(&'static str),
    /// The token's `alg` is not in the verifier's allow-list.
    #[error("token algorithm is not allowed for this issuer")]
    AlgorithmNotAllowed,
    /// The key named by `kid` does not allow the token's `alg` (or its type does not match).
    #[error("signing key does not allow the token's algorithm")]
    KeyAlgorithmMismatch,
    /// The signature does not verify.
    #[error("signature does not verify")]
    BadSignature,
    /// `nbf` is in the future.
    #[error("token is not valid yet (nbf)")]
    NotYetValid,
    /// `iat` is in the future.
    #[error("token was issued in the future (iat)")]
    IssuedInFuture,
    /// `aud` does not name this service (or an accepted audience).
    #[error("token audience does not match")]
    WrongAudience,
    /// `iss` is not an accepted issuer.
    #[error("token issuer does not match")]
    WrongIssuer,
    /// A required claim is missing.
    #[error("token has no `{0}` claim")]
    MissingClaim(&'static str),
    /// No verifier is configured for the token's issuer (decided without any network call).
    #[error("token issuer is not configured")]
    UnknownIssuer,
    /// Several verifiers would accept the token's issuer and audience.
    #[error("token matches more than one configured issuer and audience")]
    Ambiguous,
    /// The key set has no key with the token's `kid`, even after a refresh.
    #[error("signing key is unknown (kid)")]
    UnknownKey,
    /// The token names no `kid` and the key set has several keys for its algorithm.
    #[error("token has no kid and the key set has several keys")]
    KidRequired,
    /// The token's `typ` is not what this kind of credential must carry.
    #[error("token type (typ) is not accepted here")]
    WrongType,
    /// The subject is not what this kind of credential must carry.
    #[error("token subject is not accepted")]
    WrongSubject,
    /// A legacy token carried an `aud` claim (Backstage legacy tokens have none).
    #[error("legacy tokens must not carry an aud claim")]
    LegacyWithAudience,
    /// A plugin token from a service that discovery does not know.
    #[error("calling service is unknown (no discovery entry)")]
    UnknownCaller,
    /// A plugin token living longer than the key duration plus leeway.
    #[error("token lifetime is longer than allowed")]
    LifetimeTooLong,
    /// An on-behalf-of token in the actor form (`act`) from a service not listed as trusted
    /// to act for users.
    #[error("acting service is not trusted to act for users")]
    UntrustedActor,
    /// The limited user token inside an on-behalf-of token (`obo`) failed a check; the
    /// detail names which.
    #[error("on-behalf-of user token: {0}")]
    OnBehalfOfUser(Box<VerifyError>),
    /// An on-behalf-of token that would outlive the user's own token.
    #[error("on-behalf-of token outlives the user's token")]
    OutlivesUserToken,
    /// An on-behalf-of token (`obo`) where no Backstage identity provider is configured to
    /// verify its user (or several are, and the token cannot say which).
    #[error("on-behalf-of token: {0}")]
    NoUserProvider(&'static str),
    /// Discovery gave the calling service a base URL that is neither `https` nor loopback:
    /// its keys would travel where anyone on the path could swap them.
    #[error("calling service's key source is not https")]
    InsecureKeySource,
    /// A custom external type's verifier refused the token; the text is its fixed reason.
    #[error("token refused: {0}")]
    Rejected(&'static str),
    /// A claim the entry requires (`requiredClaims`) holds none of the accepted values: the
    /// right provider, but another client or tenant. Names the claim, never its value.
    #[error("token claim `{0}` is not accepted")]
    ClaimNotAccepted(String),
    /// A claim the entry requires (`requiredClaims`) is missing.
    #[error("token has no `{0}` claim")]
    MissingRequiredClaim(String),
    /// A kind of token this version does not verify yet.
    #[error("{0} tokens are not supported by this version")]
    Unsupported(&'static str),
    /// The token was revoked (a just-in-time on-behalf-of token, by its `jti`).
    #[error("token has been revoked")]
    Revoked,
    /// A service-account token of a disabled account.
    #[error("service account is disabled")]
    AccountDisabled,
}

impl VerifyError {
    /// A stable, snake_case name of the failed check.
    pub fn code(&self) -> &'static str {
        match self {
            VerifyError::TooLong { .. } => "token_too_long",
            VerifyError::NotVisibleAscii => "token_not_visible_ascii",
            VerifyError::Unrecognised => "token_unrecognised",
            VerifyError::NoJwtVerifier => "no_jwt_verifier",
            VerifyError::Expired => "token_expired",
            VerifyError::ExpOutOfRange => "exp_out_of_range",
            VerifyError::Malformed(_) => "token_malformed",
            VerifyError::AlgorithmNone => "alg_none",
            VerifyError::KeyInHeader(_) => "key_in_header",
            VerifyError::AlgorithmNotAllowed => "alg_not_allowed",
            VerifyError::KeyAlgorithmMismatch => "key_alg_mismatch",
            VerifyError::BadSignature => "bad_signature",
            VerifyError::NotYetValid => "not_yet_valid",
            VerifyError::IssuedInFuture => "issued_in_future",
            VerifyError::WrongAudience => "wrong_audience",
            VerifyError::WrongIssuer => "wrong_issuer",
            VerifyError::MissingClaim(_) => "missing_claim",
            VerifyError::UnknownIssuer => "unknown_issuer",
            VerifyError::Ambiguous => "ambiguous_issuer",
            VerifyError::UnknownKey => "unknown_key",
            VerifyError::KidRequired => "kid_required",
            VerifyError::WrongType => "wrong_type",
            VerifyError::WrongSubject => "wrong_subject",
            VerifyError::LegacyWithAudience => "legacy_with_audience",
            VerifyError::UnknownCaller => "unknown_caller",
            VerifyError::LifetimeTooLong => "lifetime_too_long",
            VerifyError::UntrustedActor => "untrusted_actor",
            VerifyError::OnBehalfOfUser(_) => "obo_user_token_invalid",
            VerifyError::OutlivesUserToken => "obo_outlives_user_token",
            VerifyError::NoUserProvider(_) => "obo_no_user_provider",
            VerifyError::Rejected(_) => "token_rejected",
            VerifyError::InsecureKeySource => "insecure_key_source",
            VerifyError::ClaimNotAccepted(_) => "claim_not_accepted",
            VerifyError::MissingRequiredClaim(_) => "missing_claim",
            VerifyError::Unsupported(_) => "unsupported_token",
            VerifyError::Revoked => "token_revoked",
            VerifyError::AccountDisabled => "account_disabled",
        }
    }
}

/// Which policy rule refused a verified caller. Every variant is a 403 `insufficient_scope`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Forbidden {
    /// The route is not listed and the default policy is `deny`.
    #[error("route is not listed and the default policy is deny")]
    DefaultDeny,
    /// The route is declared, but its policies name other methods and cannot be combined
    /// into one for this method (no credential kind is allowed by all of them).
    #[error("{method} is not declared for this route")]
    MethodNotDeclared {
        /// The method of the request.
        method: Method,
    },
    /// The route does not accept this kind of credential.
    #[error("{kind} credentials are not allowed on this route (allowed: {allowed})")]
    KindNotAllowed {
        /// The kind presented.
        kind: CredentialKind,
        /// The kinds the route allows, comma-separated.
        allowed: String,
    },
    /// The route is sensitive and the credential is not a user's own: a token a machine can
    /// hold, or one acting for someone else.
    #[error(
        "Token-authenticated callers cannot create tokens or change credentials (route is sensitive: {kind} credentials, and any acting for a user, are refused)"
    )]
    Sensitive {
        /// The kind presented.
        kind: CredentialKind,
    },
    /// A read-only credential (a static token by default) tried to write.
    #[error(
        "{kind} credential is read-only; {method} needs allowWrites on the token or allowStaticWrites on the route"
    )]
    ReadOnly {
        /// The kind presented.
        kind: CredentialKind,
        /// The method of the request.
        method: Method,
    },
    /// The credential's access restrictions do not include this service.
    #[error("credential is restricted to plugins [{allowed}]; this service is `{service}`")]
    PluginRestricted {
        /// This service's id.
        service: String,
        /// The plugins the credential may call.
        allowed: String,
    },
    /// The credential's access restrictions do not include the route's permission.
    #[error("credential is restricted to other permissions than {permission}")]
    PermissionRestricted {
        /// The route's permission, or `(none declared)`.
        permission: String,
    },
    /// The credential's access restrictions do not include the route's action.
    #[error("credential is restricted to other actions than `{action}`")]
    ActionRestricted {
        /// The route's action.
        action: Action,
    },
}

impl Forbidden {
    /// A stable, snake_case name of the rule.
    pub fn code(&self) -> &'static str {
        match self {
            Forbidden::DefaultDeny => "default_deny",
            Forbidden::MethodNotDeclared { .. } => "method_not_declared",
            Forbidden::KindNotAllowed { .. } => "credential_kind_not_allowed",
            Forbidden::Sensitive { .. } => "sensitive_route",
            Forbidden::ReadOnly { .. } => "read_only_credential",
            Forbidden::PluginRestricted { .. } => "restricted_plugin",
            Forbidden::PermissionRestricted { .. } => "restricted_permission",
            Forbidden::ActionRestricted { .. } => "restricted_action",
        }
    }
}

/// Why a token could not be issued.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IssueError {
    /// Plugin tokens (or, for [`Auth::jit_token`](crate::Auth::jit_token), just-in-time
    /// tokens) are not configured on this `Auth`.
    #[error("token issuing is not configured")]
    NotConfigured,
    /// The target is not a valid service id.
    #[error("`{0}` is not a valid service id")]
    InvalidTarget(String),
    /// The store refused or is unreachable: no key is used before its public half is stored.
    #[error("cannot publish the signing key: {0}")]
    Store(#[from] crate::store::StoreError),
    /// Key generation or signing failed.
    #[error("signing failed: {0}")]
    Signing(String),
    /// No live just-in-time token has this `jti` (never issued here, or expired).
    #[error("no live token has this jti")]
    UnknownToken,
    /// Only the token's own user, or a revocation admin, may revoke it.
    #[error("only the token's user or a revocation admin may revoke it")]
    NotYours,
    /// The request cannot be granted as asked; the text says why.
    #[error("{0}")]
    BadRequest(&'static str),
    /// This service cannot act on behalf of the principal; the variant says why.
    #[error("cannot act on behalf of this principal: {0}")]
    CannotDelegate(#[from] DelegationError),
}

/// Why a service-account operation ([`AccountAdmin`](crate::service_account::AccountAdmin))
/// was refused; [`status`](Self::status) is what the admin API answers.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AccountError {
    /// Service accounts are not configured on this `Auth` (404).
    #[error("service accounts are not configured")]
    NotConfigured,
    /// Only a user's own credential may manage service accounts (403).
    #[error(
        "Token-authenticated callers cannot create tokens or change credentials (service accounts are managed by users)"
    )]
    NotAUser,
    /// The user is not among the configured admins (403).
    #[error("only a service-account admin may manage service accounts")]
    NotAdmin,
    /// The request is malformed or asks for something not allowed; the text says what (400).
    #[error("{0}")]
    BadRequest(String),
    /// No such account or token (404).
    #[error("{0}")]
    NotFound(String),
    /// The name, id or digest is taken, or the account is disabled (409).
    #[error("{0}")]
    Conflict(String),
    /// The store cannot be reached (503); worth a retry.
    #[error("{0}")]
    Unavailable(String),
}

impl AccountError {
    /// The HTTP status the admin API answers with.
    pub fn status(&self) -> http::StatusCode {
        use http::StatusCode;
        match self {
            AccountError::NotConfigured | AccountError::NotFound(_) => StatusCode::NOT_FOUND,
            AccountError::NotAUser | AccountError::NotAdmin => StatusCode::FORBIDDEN,
            AccountError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AccountError::Conflict(_) => StatusCode::CONFLICT,
            AccountError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

impl From<crate::store::StoreError> for AccountError {
    fn from(e: crate::store::StoreError) -> Self {
        use crate::store::StoreError as E;
        match e {
            E::Invalid(m) => AccountError::BadRequest(m),
            E::Conflict(m) => AccountError::Conflict(m),
            E::NotFound(m) => AccountError::NotFound(m),
            // The message may name the database; it is logged, not answered.
            E::Unavailable(m) => AccountError::Unavailable(m),
        }
    }
}

/// Why this service cannot act on behalf of a principal (see
/// [`Auth::on_behalf_of_token`](crate::Auth::on_behalf_of_token)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DelegationError {
    /// Only a user can be acted for; a service calls as itself (a plugin token).
    #[error("only a user can be acted for; a service calls as itself")]
    NotAUser,
    /// The user's credential has no expiry, so nothing would bound a token on their behalf.
    #[error("the user's credential has no expiry")]
    NoExpiry,
    /// The user's credential has expired.
    #[error("the user's credential has expired")]
    Expired,
    /// The principal carries access restrictions: a token on its behalf would escape them
    /// (Backstage #35347).
    #[error("a restricted credential cannot be delegated")]
    Restricted,
}

/// A bad configuration value: where it is, and which rule it breaks.
///
/// `path` names the value the way the YAML does
/// (`backend.auth.externalAccess[2].options.token`, `s2s.leewaySeconds`); an entry added in
/// Rust is named by its builder call (`static_token[0].options.token`). `rule` is the rule,
/// to match on. Neither ever includes a secret.
///
/// ```
/// use s2s_auth::{Auth, StaticToken};
/// use s2s_auth::error::ConfigRule;
///
/// let err = Auth::builder("catalog")
///     .static_token(StaticToken::new("ci-bot", "short"))
///     .build()
///     .unwrap_err();
/// assert_eq!(err.path(), Some("static_token[0].options.token"));
/// assert_eq!(err.rule(), &ConfigRule::TokenTooShort { min: 8 });
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct ConfigError {
    path: String,
    rule: ConfigRule,
}

impl ConfigError {
    pub(crate) fn new(path: impl Into<String>, rule: ConfigRule) -> Self {
        ConfigError {
            path: path.into(),
            rule,
        }
    }

    /// The path of the bad value; `None` for errors about the whole file (syntax, I/O).
    pub fn path(&self) -> Option<&str> {
        (!self.path.is_empty()).then_some(self.path.as_str())
    }

    /// The rule the value breaks.
    pub fn rule(&self) -> &ConfigRule {
        &self.rule
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.rule)
        } else {
            write!(f, "{}: {}", self.path, self.rule)
        }
    }
}

impl fmt::Debug for ConfigError {
    // Same as Display: it holds no secrets, and a readable `{:?}` (as printed by
    // `main() -> Result`) helps more than a struct dump.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for ConfigError {}

/// The rule a configuration value breaks. Each variant's text is what an operator reads
/// after the value's path.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigRule {
    // -- the file itself
    /// The YAML could not be parsed. Only the position is kept: parser messages can quote
    /// the input, and the input may hold secrets.
    #[error("YAML syntax error at line {line}, column {column}")]
    Syntax {
        /// 1-based line, 0 when unknown.
        line: u64,
        /// 1-based column, 0 when unknown.
        column: u64,
    },
    /// The config file could not be read.
    #[error("cannot read {file}: {message}")]
    Io {
        /// The file.
        file: String,
        /// The operating system's message.
        message: String,
    },
    /// A `${VAR}` reference to an environment variable that is not set.
    #[error("environment variable `{var}` is not set")]
    MissingEnv {
        /// The variable's name.
        var: String,
    },
    /// `${` without a closing `}`.
    #[error("unclosed `${{` (write `$${{` for a literal `${{`)")]
    UnclosedEnv,
    /// `${...}` naming something that is not a variable name.
    #[error("`${{...}}` must name an environment variable (letters, digits, `_`)")]
    BadEnvName,
    // -- shapes
    /// A required value is missing.
    #[error("required")]
    Required,
    /// A key this section does not know (a misspelling must not silently change behaviour).
    #[error("unknown key (expected one of: {expected})")]
    UnknownKey {
        /// The keys allowed here, comma-separated.
        expected: String,
    },
    /// A value of the wrong type or form; the text says what was expected.
    #[error("expected {0}")]
    Expected(&'static str),
    /// A number outside its range.
    #[error("expected a whole number from {min} to {max}")]
    OutOfRange {
        /// The smallest allowed value.
        min: u64,
        /// The largest allowed value.
        max: u64,
    },
    /// A duration or count that must be more than zero.
    #[error("must be more than zero")]
    Zero,
    /// A name that is not one of a fixed set (a type, a method, an algorithm, ...).
    #[error("unknown {what} (expected {expected})")]
    UnknownName {
        /// What kind of name (`type`, `method`, `credential kind`, ...).
        what: &'static str,
        /// The names allowed, in words.
        expected: String,
    },
    /// Two options that exclude each other.
    #[error("give either {0}, not both")]
    Exclusive(&'static str),
    // -- identities
    /// Not a service id (`^[a-z0-9_-]+$`).
    #[error("not a valid service id (^[a-z0-9_-]+$)")]
    InvalidServiceId,
    /// A subject that is empty or holds whitespace, control characters or `:` (the
    /// separator of `external:<prefix>:<sub>`, so a subject with one could pass for another
    /// entry's caller).
    #[error("subject must be non-empty, without whitespace, control characters or `:`")]
    InvalidSubject,
    /// A `subjectPrefix` that is empty or has whitespace, control characters or `:`.
    #[error("subjectPrefix must be non-empty, without whitespace, control characters or `:`")]
    InvalidSubjectPrefix,
    /// A second `jwks` entry without `subjectPrefix`: both would name their callers
    /// `external:<sub>`, so one provider's `sub` could pass for the other's.
    #[error(
        "required: {other} already names its callers external:<sub>; give this entry a \
         subjectPrefix of its own (its callers become external:<prefix>:<sub>)"
    )]
    SubjectPrefixRequired {
        /// The entry without a prefix that came first.
        other: String,
    },
    /// A subject prefix or a subject already taken by another entry (a `jwks` prefix, a
    /// custom type's name, a static or legacy subject).
    #[error("`{name}` is already taken by {by}: two entries' callers would share subjects")]
    SubjectTaken {
        /// The prefix or subject.
        name: String,
        /// The path of the entry that has it.
        by: String,
    },
    /// A user namespace that is not a Backstage namespace (`^[a-z0-9]+(-[a-z0-9]+)*$`, at
    /// most 63 characters).
    #[error(
        "namespace must be lower-case letters and digits, with single `-` between, at most 63 characters"
    )]
    InvalidNamespace,
    /// A `namespace` on a Backstage provider, whose tokens carry whole entity refs.
    #[error(
        "a Backstage provider's tokens carry whole entity refs; namespace is for OIDC providers"
    )]
    NamespaceNotApplicable,
    /// Two user providers mapping into the same namespace, without both saying they share
    /// it: two people with the same name at two providers would become one user.
    #[error(
        "users of {by} are already in namespace `{namespace}`: give this provider a namespace \
         of its own, or set sharedNamespace: true on both if they resolve to the same users"
    )]
    NamespaceTaken {
        /// The namespace (`*` for a Backstage provider's, which is every namespace).
        namespace: String,
        /// The path of the provider that has it.
        by: String,
    },
    /// A `requiredClaims` claim name that is empty, too long or holds `"`, `\` or
    /// characters outside visible ASCII (it is quoted in `WWW-Authenticate`).
    #[error(
        "a required claim's name must be 1 to 128 visible ASCII characters, without `\"` or `\\`"
    )]
    InvalidClaimName,
    /// A `requiredClaims` entry without an accepted value, or with a value that is not a
    /// string, a number or a boolean.
    #[error("expected a string, number or boolean, or a non-empty list of them")]
    BadRequiredClaimValue,
    // -- static tokens
    /// A static token shorter than the minimum.
    #[error("token must be at least {min} characters")]
    TokenTooShort {
        /// The minimum length.
        min: usize,
    },
    /// A static token longer than a request may carry.
    #[error("token is longer than the 8 KiB a request may carry")]
    TokenTooLong,
    /// A static token with whitespace.
    #[error("token must not contain whitespace")]
    TokenWhitespace,
    /// A static token outside visible ASCII.
    #[error("token must be visible ASCII (it travels in an HTTP header)")]
    TokenNotVisibleAscii,
    /// A static token that classification would send elsewhere.
    #[error(
        "token is shaped like {0} and would be sent to another verifier; use an opaque random string"
    )]
    TokenMisclassified(&'static str),
    /// The same static token configured twice.
    #[error("this token is already configured in an earlier entry")]
    DuplicateToken,
    /// `tokenSha256` that is not 64 hex digits.
    #[error("tokenSha256 must be 64 hex digits (the SHA-256 of the token)")]
    BadTokenDigest,
    // -- keys and secrets
    /// A legacy secret that is not base64.
    #[error("secret must be base64")]
    SecretNotBase64,
    /// A shared secret too short to resist brute force.
    #[error(
        "secret must decode to at least {min_bytes} bytes (a short HMAC secret can be brute-forced)"
    )]
    SecretTooShort {
        /// The minimum, in decoded bytes.
        min_bytes: usize,
    },
    /// A just-in-time token setting that cannot be used; the text says why.
    #[error("{0}")]
    InvalidJitSetting(&'static str),
    /// A setting that cannot be used; the text says what would do.
    #[error("{0}")]
    InvalidSetting(String),
    /// A key file or key that cannot be used; the text says why.
    #[error("{0}")]
    BadKey(&'static str),
    /// A key file that cannot be read.
    #[error("cannot read the file: {0}")]
    KeyFile(String),
    /// An HMAC algorithm for a JWKS entry.
    #[error(
        "HMAC algorithms are never accepted from a JWKS (a published shared secret lets anyone sign)"
    )]
    HmacFromJwks,
    /// An algorithm list with nothing in it.
    #[error("lists no algorithm")]
    NoAlgorithm,
    /// A static key store with no key.
    #[error("lists no key")]
    NoKey,
    // -- URLs and sources
    /// A URL that is not http(s).
    #[error("expected an http(s) URL")]
    NotHttpUrl,
    /// A key source (JWKS URL, or an issuer used for discovery) over plain http to a host
    /// that is not loopback: anyone on the path could swap the keys and sign any token.
    #[error(
        "keys must be fetched over https (http only to 127.0.0.0/8, ::1 or localhost); set \
         dangerouslyAllowHttp: true on this entry only if the network path cannot be tampered with"
    )]
    HttpKeySource,
    /// A JWKS entry without `issuer` or `audience`, without the explicit opt-out.
    #[error(
        "required: identity providers sign many applications' tokens with the same keys, so \
         without both an issuer and an audience check a token minted for someone else verifies \
         here. Set dangerouslyAllowMissingIssuerOrAudience: true only if this JWKS signs nothing \
         but tokens meant for this service"
    )]
    MissingIssuerOrAudience,
    /// A user provider without an audience.
    #[error(
        "required: without an audience check, a token the provider minted for any other \
         application verifies here"
    )]
    AudienceRequired,
    /// Access restrictions that break a rule.
    #[error(transparent)]
    Restriction(#[from] crate::restrictions::RestrictionError),
    /// A configuration naming a key store was built without opening it.
    #[error("this configuration names a key store, which must be opened: use build_async()")]
    StoreNeedsAsync,
    /// The key store could not be opened.
    #[error("cannot open the key store: {0}")]
    StoreUnavailable(String),
    /// The HTTP client for key sources could not be built.
    #[error("cannot build the HTTP client: {0}")]
    HttpClient(String),
    // -- custom external types
    /// A custom type's prefix that cannot work; the text says why.
    #[error("custom token prefix `{prefix}` {why}")]
    BadCustomPrefix {
        /// The prefix.
        prefix: String,
        /// Why it is refused.
        why: &'static str,
    },
    /// A custom type's `initialize` refused the entry's options.
    #[error("{0}")]
    CustomOptions(String),
    /// Two custom types registered under one name, or one named like a built-in type.
    #[error("type `{0}` is already taken")]
    DuplicateType(String),
    // -- policies
    /// A route path not starting with `/`.
    #[error("a route path must start with `/`")]
    PathNotAbsolute,
    /// A route pattern the router refuses (a conflict with another pattern, bad syntax).
    #[error("route pattern refused: {0}")]
    PatternRefused(String),
    /// Two policies for the same pattern and method.
    #[error("`{pattern}` already has a policy for this method")]
    DuplicateRoutePolicy {
        /// The pattern.
        pattern: String,
    },
    /// A policy for a path the wrapped router does not serve (a misspelling would otherwise
    /// leave the real route on the default policy).
    #[error("no route {path}{}", suggestion.as_ref().map(|s| format!("; did you mean {s}?")).unwrap_or_default())]
    NoSuchRoute {
        /// The path of the policy.
        path: String,
        /// The closest served route, if one is close.
        suggestion: Option<String>,
    },
    /// An unauthenticated route with rules that only apply to authenticated callers.
    #[error("an unauthenticated route takes no allow, permission, sensitive or allowStaticWrites")]
    UnauthenticatedWithRules,
    /// `allow` with no kind in it.
    #[error("allow lists no credential kind; use the deny default policy or remove the route")]
    EmptyAllow,
    // -- combinations
    /// Trusted actors without discovery to find their keys.
    #[error("trusted actors need s2s.discovery, to find each actor's keys")]
    ActorsNeedDiscovery,
    /// The least JWKS refresh interval is above the greatest.
    #[error("the least refresh interval is above the greatest")]
    RefreshBoundsInverted,
}
