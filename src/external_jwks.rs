//! JWKS-verified JWTs: external callers (`type: jwks`) and users (identity providers).
//!
//! Both are JWTs signed with keys published at a JWKS URL, so they share one verifier,
//! `JwksVerifier`; what differs is how the principal is made.
//!
//! - [`JwksAccess`]: Backstage's `externalAccess` entry of `type: jwks` (options `url`,
//!   `issuer`, `algorithm`, `audience`, `subjectPrefix`, `requiredClaims`). The caller
//!   becomes a `service` principal `external:<sub>` or `external:<subjectPrefix>:<sub>`.
//! - [`UserProvider`]: an identity provider for users, found by OIDC discovery
//!   (`<issuer>/.well-known/openid-configuration`) or a direct `jwksUrl`. The caller becomes
//!   a `user` principal whose subject is a user entity ref in the provider's namespace
//!   (`user:default/jane`, `user:corp/jane`).
//!
//! Secure by default: a `jwks` entry needs both `issuer` and `audience`. Large identity
//! providers sign every tenant's tokens with the same keys; without an issuer and audience
//! check, a token minted for someone else's application verifies here. Narrow it further to
//! the clients you mean with [`require_claim`](JwksAccess::require_claim) (`azp`,
//! `client_id`, `oid`, ...).
//!
//! **Subjects cannot collide** (the whole rule, for every credential kind, is in the
//! README's "Credential kinds"):
//! - Only one `jwks` entry may go without `subjectPrefix`; its callers are `external:<sub>`,
//!   and a `sub` holding `:` (`corp:deploy-bot`, which would pass for the `corp` entry's
//!   `deploy-bot`) or equal to a static or legacy subject (`ci-bot`) is refused with 401
//!   `wrong_subject`. Every other entry has a prefix of its own, distinct from the other
//!   prefixes, from custom type names and from static and legacy subjects.
//! - A user provider maps into a namespace of its own ([`UserProvider::namespace`], default
//!   `default`); two providers in one namespace are a config error unless both
//!   [share it](UserProvider::shared_namespace). An OIDC claim is a name inside the
//!   namespace: `user:admins/root` in an `email` claim is refused, not taken as an entity ref.
//!   Only a [Backstage provider](UserProvider::backstage)'s tokens carry whole entity refs.
//! - A `sub` (or subject claim) with whitespace or control characters is refused (401
//!   `wrong_subject`): no subject can inject a log line.
//!
//! **Keys over https**: the JWKS URL, and the issuer when keys are found by discovery, must
//! be `https`, except on loopback (`127.0.0.0/8`, `::1`, `localhost`) or with the per-entry
//! opt-out `dangerouslyAllowHttp` ([`JwksAccess::dangerously_allow_http`]). Over plain http,
//! anyone on the path can swap the keys and sign any token.
//!
//! ```
//! use s2s_auth::{Auth, JwksAccess, UserProvider};
//!
//! let auth = Auth::builder("catalog")
//!     .jwks_access(
//!         JwksAccess::new("https://idp.example.com/.well-known/jwks.json")
//!             .issuers(["https://idp.example.com"])
//!             .audiences(["catalog"])
//!             .subject_prefix("idp")
//!             // Only these two clients of the provider, not every one it has.
//!             .require_claim("azp", ["ci-client", "deploy-client"]),
//!     )
//!     .user_provider(
//!         UserProvider::oidc("https://login.example.com")
//!             .audiences(["catalog"])
//!             .namespace("corp"), // users become user:corp/<sub>
//!     )
//!     .build()?;
//! # let _ = auth;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::sync::Arc;

/// The JWT algorithms an entry may allow (`jsonwebtoken`'s, re-exported).
pub use jsonwebtoken::Algorithm;
use jsonwebtoken::Validation;
use serde_json::Value;

use crate::error::{ConfigError, ConfigRule, RequestError, VerifyError};
use crate::jwks::{JwksCache, OidcDiscovery, UsableKey, key_error};
use crate::jwt::{Claims, Unverified, check_iat, exp_claim, str_claim};
use crate::principal::{CredentialKind, Principal, PrincipalType};
use crate::required_claims::RequiredClaims;
use crate::restrictions::AccessRestrictions;
use crate::subject::{DEFAULT_NAMESPACE, UserSpace, is_clean, is_segment};
use crate::verifier::{Shared, Token, Verification, Verifier};

/// The asymmetric algorithms accepted when an entry lists none.
pub const DEFAULT_ALGORITHMS: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// The `typ` of Backstage user tokens.
pub const BACKSTAGE_USER_TYP: &str = "vnd.backstage.user";

/// An external caller whose JWTs are verified against a JWKS URL (`type: jwks`).
#[derive(Clone, Debug)]
pub struct JwksAccess {
    url: String,
    issuers: Option<Vec<String>>,
    audiences: Option<Vec<String>>,
    algorithms: Option<Vec<Algorithm>>,
    subject_prefix: Option<String>,
    restrictions: Option<AccessRestrictions>,
    required: RequiredClaims,
    allow_missing_issuer_or_audience: bool,
    allow_http: bool,
    pub(crate) origin: String,
}

impl JwksAccess {
    /// Tokens signed by keys at `url`. Add [`issuers`](Self::issuers) and
    /// [`audiences`](Self::audiences): without both the entry is refused.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            issuers: None,
            audiences: None,
            algorithms: None,
            subject_prefix: None,
            restrictions: None,
            required: RequiredClaims::default(),
            allow_missing_issuer_or_audience: false,
            allow_http: false,
            origin: String::from("jwks_access"),
        }
    }

    /// The accepted `iss` values.
    pub fn issuers<I: IntoIterator<Item = S>, S: Into<String>>(mut self, issuers: I) -> Self {
        self.issuers = Some(issuers.into_iter().map(Into::into).collect());
        self
    }

    /// The accepted `aud` values (the token must name at least one).
    pub fn audiences<I: IntoIterator<Item = S>, S: Into<String>>(mut self, audiences: I) -> Self {
        self.audiences = Some(audiences.into_iter().map(Into::into).collect());
        self
    }

    /// The accepted algorithms. Default: [`DEFAULT_ALGORITHMS`]. HMAC algorithms are refused
    /// (a JWKS publishes public keys; a shared secret there would let anyone sign).
    pub fn algorithms(mut self, algorithms: impl IntoIterator<Item = Algorithm>) -> Self {
        self.algorithms = Some(algorithms.into_iter().collect());
        self
    }

    /// The subject becomes `external:<prefix>:<sub>` instead of `external:<sub>` (config
    /// `subjectPrefix`). Required on every `jwks` entry but one, and distinct from the
    /// other entries' prefixes, custom type names and static or legacy subjects, so no two
    /// entries' callers share a subject; non-empty, without whitespace, control characters
    /// or `:`. [`build`](crate::AuthBuilder::build) checks it, at `...options.subjectPrefix`.
    pub fn subject_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.subject_prefix = Some(prefix.into());
        self
    }

    /// Accepts only tokens whose `claim` is one of `values` (or, for a list claim, holds
    /// one), config `requiredClaims: { <claim>: [<values>] }`. Any other token of the
    /// provider, or one without the claim, gets 401 naming the claim, never its value.
    /// Call it once per claim; values are strings, numbers or booleans.
    ///
    /// ```
    /// use s2s_auth::JwksAccess;
    ///
    /// let ci_only = JwksAccess::new("https://login.example.com/keys")
    ///     .issuers(["https://login.example.com"])
    ///     .audiences(["catalog"])
    ///     .require_claim("azp", ["ci-client"])
    ///     .require_claim("tenant", ["acme"]);
    /// # let _ = ci_only;
    /// ```
    pub fn require_claim<I, V>(mut self, claim: impl Into<String>, values: I) -> Self
    where
        I: IntoIterator<Item = V>,
        V: Into<Value>,
    {
        self.required
            .set(claim.into(), values.into_iter().map(Into::into).collect());
        self
    }

    /// Allows the JWKS URL to be plain `http` to a host that is not loopback (config
    /// `dangerouslyAllowHttp: true`). **Insecure**: anyone on the network path can replace
    /// the keys and sign any token. Only for a path that cannot be tampered with (a service
    /// mesh with mutual TLS underneath, a socket on the same host).
    pub fn dangerously_allow_http(mut self) -> Self {
        self.allow_http = true;
        self
    }

    /// The subject prefix, if any (for the build-time collision check).
    pub(crate) fn prefix(&self) -> Option<&str> {
        self.subject_prefix.as_deref()
    }

    /// The checks of this entry alone (the builder's validator calls it).
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let origin = &self.origin;
        crate::source_url::check(&self.url, self.allow_http)
            .map_err(|rule| ConfigError::new(format!("{origin}.options.url"), rule))?;
        if (self.issuers.is_none() || self.audiences.is_none())
            && !self.allow_missing_issuer_or_audience
        {
            let missing = if self.issuers.is_none() {
                "issuer"
            } else {
                "audience"
            };
            return Err(ConfigError::new(
                format!("{origin}.options.{missing}"),
                ConfigRule::MissingIssuerOrAudience,
            ));
        }
        check_algorithms(
            self.algorithms.clone(),
            &format!("{origin}.options.algorithm"),
        )?;
        self.required
            .validate(&format!("{origin}.options.requiredClaims"))
    }

    /// Restricts what callers of this entry may do.
    pub fn restrict(mut self, restrictions: AccessRestrictions) -> Self {
        self.restrictions = Some(restrictions);
        self
    }

    /// Accepts an entry without `issuer` or `audience` (config key
    /// `dangerouslyAllowMissingIssuerOrAudience`). **Insecure**: any token signed by the
    /// JWKS's keys verifies, including tokens the provider minted for other applications or
    /// tenants. Only for a JWKS whose keys sign nothing but tokens meant for you.
    pub fn dangerously_allow_missing_issuer_or_audience(mut self) -> Self {
        self.allow_missing_issuer_or_audience = true;
        self
    }

    /// The verifier; `reserved` are the static and legacy subjects, which a token of an
    /// entry without a prefix may not take.
    pub(crate) fn into_verifier(
        self,
        leeway: u64,
        reserved: Vec<String>,
    ) -> Result<JwksVerifier, ConfigError> {
        self.validate()?;
        let origin = &self.origin;
        let algorithms = check_algorithms(self.algorithms, &format!("{origin}.options.algorithm"))?;
        Ok(JwksVerifier::new(
            KeySource::Url(self.url),
            self.issuers,
            self.audiences,
            algorithms,
            self.restrictions,
            self.required,
            Mapping::External {
                prefix: self.subject_prefix,
                reserved,
            },
            self.origin,
            leeway,
        ))
    }
}

/// An identity provider for users.
#[derive(Clone, Debug)]
pub struct UserProvider {
    issuer: String,
    jwks_url: Option<String>,
    audiences: Vec<String>,
    algorithms: Option<Vec<Algorithm>>,
    subject_claim: String,
    backstage: bool,
    namespace: Option<String>,
    shared_namespace: bool,
    required: RequiredClaims,
    allow_http: bool,
    pub(crate) origin: String,
}

impl UserProvider {
    /// An OpenID Connect provider: keys found by discovery at
    /// `<issuer>/.well-known/openid-configuration`. Set [`audiences`](Self::audiences).
    pub fn oidc(issuer: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            jwks_url: None,
            audiences: Vec::new(),
            algorithms: None,
            subject_claim: String::from("sub"),
            backstage: false,
            namespace: None,
            shared_namespace: false,
            required: RequiredClaims::default(),
            allow_http: false,
            origin: String::from("user_provider"),
        }
    }

    /// A Backstage auth backend (`typ: vnd.backstage.user`, `aud: backstage`, the entity
    /// ref in `sub`), e.g. issuer `http://backstage:7007/api/auth`. Keys are found by
    /// discovery unless [`jwks_url`](Self::jwks_url) is set.
    pub fn backstage(issuer: impl Into<String>) -> Self {
        Self {
            audiences: vec![String::from("backstage")],
            backstage: true,
            ..Self::oidc(issuer)
        }
    }

    /// Takes keys from this URL instead of discovery.
    pub fn jwks_url(mut self, url: impl Into<String>) -> Self {
        self.jwks_url = Some(url.into());
        self
    }

    /// The accepted `aud` values (required for OIDC providers).
    pub fn audiences<I: IntoIterator<Item = S>, S: Into<String>>(mut self, audiences: I) -> Self {
        self.audiences = audiences.into_iter().map(Into::into).collect();
        self
    }

    /// The accepted algorithms. Default: [`DEFAULT_ALGORITHMS`].
    pub fn algorithms(mut self, algorithms: impl IntoIterator<Item = Algorithm>) -> Self {
        self.algorithms = Some(algorithms.into_iter().collect());
        self
    }

    /// The claim holding the user's name. Default `sub`. For an OIDC provider, the value
    /// `v` is a name in the provider's [`namespace`](Self::namespace): `user:<namespace>/v`;
    /// a value holding `:` or `/` is refused (401 `wrong_subject`), never taken as an entity
    /// ref, since `email` or `preferred_username` may be editable by the user. Only a
    /// [Backstage provider](Self::backstage)'s tokens carry whole entity refs
    /// (`user:<namespace>/<name>`), kept as they are.
    pub fn subject_claim(mut self, claim: impl Into<String>) -> Self {
        self.subject_claim = claim.into();
        self
    }

    /// The namespace this OIDC provider's users are in: `user:<namespace>/<name>` (config
    /// `namespace`). Default `default`. OIDC promises `sub` unique per issuer only, so two
    /// providers in one namespace would merge their users: [`build`](crate::AuthBuilder::build)
    /// refuses it (and an OIDC provider in `default` beside a Backstage provider) unless both
    /// say [`shared_namespace`](Self::shared_namespace). Lower-case letters and digits, with
    /// single `-` between, at most 63 characters. Not for Backstage providers, whose tokens
    /// name their own namespaces.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = Some(namespace.into());
        self
    }

    /// Says this provider's users may be the same people as another provider's in the
    /// same namespace (config `sharedNamespace: true`): both resolve to the same catalog
    /// users. Both providers must say it. For a Backstage provider, it also lets its tokens
    /// name the namespaces of OIDC providers that share theirs (otherwise refused, 401).
    pub fn shared_namespace(mut self) -> Self {
        self.shared_namespace = true;
        self
    }

    /// Accepts only tokens whose `claim` is one of `values` (config `requiredClaims`); see
    /// [`JwksAccess::require_claim`]. For a Backstage provider, a requirement on `sub`
    /// also applies to the user tokens inside on-behalf-of tokens (they carry no other).
    pub fn require_claim<I, V>(mut self, claim: impl Into<String>, values: I) -> Self
    where
        I: IntoIterator<Item = V>,
        V: Into<Value>,
    {
        self.required
            .set(claim.into(), values.into_iter().map(Into::into).collect());
        self
    }

    /// Allows the JWKS URL, or the issuer when keys are found by discovery, to be plain
    /// `http` to a host that is not loopback (config `dangerouslyAllowHttp: true`).
    /// **Insecure**: see [`JwksAccess::dangerously_allow_http`].
    pub fn dangerously_allow_http(mut self) -> Self {
        self.allow_http = true;
        self
    }

    /// Where this provider maps its users (for the build-time collision check).
    pub(crate) fn space(&self) -> UserSpace<'_> {
        UserSpace {
            path: format!("{}.namespace", self.origin),
            namespace: match (self.backstage, &self.namespace) {
                (true, _) => None,
                (false, ns) => Some(ns.as_deref().unwrap_or(DEFAULT_NAMESPACE)),
            },
            shared: self.shared_namespace,
        }
    }

    /// The checks of this provider alone (the builder's validator calls it).
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let origin = &self.origin;
        if !(self.issuer.starts_with("https://") || self.issuer.starts_with("http://")) {
            return Err(ConfigError::new(
                format!("{origin}.issuer"),
                ConfigRule::NotHttpUrl,
            ));
        }
        // The issuer is a key source only when keys are found by discovery.
        let (source, path) = match &self.jwks_url {
            Some(url) => (url, "jwksUrl"),
            None => (&self.issuer, "issuer"),
        };
        crate::source_url::check(source, self.allow_http)
            .map_err(|rule| ConfigError::new(format!("{origin}.{path}"), rule))?;
        if self.audiences.is_empty() {
            return Err(ConfigError::new(
                format!("{origin}.audience"),
                ConfigRule::AudienceRequired,
            ));
        }
        check_algorithms(self.algorithms.clone(), &format!("{origin}.algorithm"))?;
        if self.backstage && self.namespace.is_some() {
            return Err(ConfigError::new(
                format!("{origin}.namespace"),
                ConfigRule::NamespaceNotApplicable,
            ));
        }
        self.required.validate(&format!("{origin}.requiredClaims"))
    }

    /// The verifier; `excluded` are the namespaces a Backstage provider's entity refs may
    /// not name (other providers' own).
    pub(crate) fn into_verifier(
        self,
        leeway: u64,
        excluded: Vec<String>,
    ) -> Result<JwksVerifier, ConfigError> {
        self.validate()?;
        let origin = &self.origin;
        let algorithms = check_algorithms(self.algorithms, &format!("{origin}.algorithm"))?;
        let source = match self.jwks_url {
            Some(url) => KeySource::Url(url),
            None => KeySource::Discovery(OidcDiscovery::new(&self.issuer)),
        };
        Ok(JwksVerifier::new(
            source,
            Some(vec![self.issuer]),
            Some(self.audiences),
            algorithms,
            None,
            self.required,
            Mapping::User {
                claim: self.subject_claim,
                backstage: self.backstage,
                namespace: self
                    .namespace
                    .unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned()),
                excluded,
            },
            self.origin,
            leeway,
        ))
    }
}

fn check_algorithms(
    algorithms: Option<Vec<Algorithm>>,
    path: &str,
) -> Result<Vec<Algorithm>, ConfigError> {
    let algorithms = algorithms.unwrap_or_else(|| DEFAULT_ALGORITHMS.to_vec());
    if algorithms.is_empty() {
        return Err(ConfigError::new(path, ConfigRule::NoAlgorithm));
    }
    if algorithms
        .iter()
        .any(|a| matches!(a, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512))
    {
        return Err(ConfigError::new(path, ConfigRule::HmacFromJwks));
    }
    Ok(algorithms)
}

/// Where a verifier's keys come from.
#[derive(Debug)]
pub(crate) enum KeySource {
    Url(String),
    Discovery(OidcDiscovery),
}

/// How a verified token becomes a principal.
#[derive(Debug)]
pub(crate) enum Mapping {
    /// `external:<prefix>:<sub>`, or `external:<sub>` where `sub` is none of `reserved`
    /// (sorted: the static and legacy subjects).
    External {
        prefix: Option<String>,
        reserved: Vec<String>,
    },
    /// `user:<namespace>/<claim>`, or for a Backstage provider the entity ref in `claim`,
    /// in none of the `excluded` namespaces.
    User {
        claim: String,
        backstage: bool,
        namespace: String,
        excluded: Vec<String>,
    },
}

/// One JWKS-backed verifier (an external entry or a user provider).
#[derive(Debug)]
pub(crate) struct JwksVerifier {
    pub(crate) source: KeySource,
    pub(crate) issuers: Option<Vec<String>>,
    pub(crate) audiences: Option<Vec<String>>,
    pub(crate) restrictions: Option<AccessRestrictions>,
    required: RequiredClaims,
    pub(crate) mapping: Mapping,
    pub(crate) origin: String,
    /// One ready `Validation` per allowed algorithm (this is the allow-list), built once:
    /// building one per request (issuer and audience sets) cost ~380 ns, measured.
    validations: Vec<(Algorithm, Validation)>,
    /// For a Backstage identity provider: the same algorithms, for the limited user tokens
    /// inside on-behalf-of tokens (no `iss`, no `aud`: they carry only `sub iat exp`).
    limited: Vec<(Algorithm, Validation)>,
}

impl JwksVerifier {
    #[allow(clippy::too_many_arguments)]
    fn new(
        source: KeySource,
        issuers: Option<Vec<String>>,
        audiences: Option<Vec<String>>,
        algorithms: Vec<Algorithm>,
        restrictions: Option<AccessRestrictions>,
        required: RequiredClaims,
        mapping: Mapping,
        origin: String,
        leeway: u64,
    ) -> Self {
        let validations = algorithms
            .iter()
            .map(|&alg| {
                let mut v = Validation::new(alg);
                v.leeway = leeway;
                v.validate_nbf = true;
                let mut required = vec!["exp", "sub"];
                match &issuers {
                    Some(list) => {
                        v.set_issuer(list);
                        required.push("iss");
                    }
                    None => v.iss = None,
                }
                match &audiences {
                    Some(list) => {
                        v.set_audience(list);
                        required.push("aud");
                    }
                    None => v.validate_aud = false,
                }
                v.set_required_spec_claims(&required);
                (alg, v)
            })
            .collect();
        let backstage = matches!(
            mapping,
            Mapping::User {
                backstage: true,
                ..
            }
        );
        let limited = algorithms
            .iter()
            .filter(|_| backstage)
            .map(|&alg| {
                let mut v = Validation::new(alg);
                v.leeway = leeway;
                v.validate_nbf = true;
                v.iss = None;
                v.validate_aud = false;
                v.set_required_spec_claims(&["exp", "sub"]);
                (alg, v)
            })
            .collect();
        Self {
            source,
            issuers,
            audiences,
            restrictions,
            required,
            mapping,
            origin,
            validations,
            limited,
        }
    }

    pub(crate) fn credential(&self) -> CredentialKind {
        match self.mapping {
            Mapping::External { .. } => CredentialKind::Jwks,
            Mapping::User { .. } => CredentialKind::User,
        }
    }

    pub(crate) fn is_backstage_user(&self) -> bool {
        matches!(
            self.mapping,
            Mapping::User {
                backstage: true,
                ..
            }
        )
    }

    pub(crate) fn accepts_any_audience<'a>(&self, mut aud: impl Iterator<Item = &'a str>) -> bool {
        match &self.audiences {
            None => true,
            Some(list) => aud.any(|a| list.iter().any(|l| l == a)),
        }
    }

    /// The prepared validation for `alg`, if `alg` is allowed.
    fn validation(&self, alg: Algorithm) -> Option<&Validation> {
        self.validations
            .iter()
            .find(|(a, _)| *a == alg)
            .map(|(_, v)| v)
    }

    /// Whether `iss` is one of this verifier's issuers (never true for issuer-less entries).
    pub(crate) fn has_issuer(&self, iss: &str) -> bool {
        self.issuers
            .as_ref()
            .is_some_and(|list| list.iter().any(|i| i == iss))
    }

    /// Checks that need no key: algorithm allow-list and `typ`.
    pub(crate) fn precheck(&self, u: &Unverified) -> Result<(), VerifyError> {
        if self.validation(u.alg).is_none() {
            return Err(VerifyError::AlgorithmNotAllowed);
        }
        let typ = u.typ.as_deref();
        let backstage_typ = typ.is_some_and(|t| t.starts_with("vnd.backstage."));
        if self.is_backstage_user() {
            if typ != Some(BACKSTAGE_USER_TYP) {
                return Err(VerifyError::WrongType);
            }
        } else if backstage_typ {
            // A Backstage plugin or limited-user token presented as an external/OIDC token.
            return Err(VerifyError::WrongType);
        }
        Ok(())
    }

    /// The JWKS URL if already known without I/O.
    pub(crate) fn url_now(&self) -> Option<&str> {
        match &self.source {
            KeySource::Url(u) => Some(u),
            KeySource::Discovery(d) => d.resolved.get().map(String::as_str),
        }
    }

    pub(crate) async fn url(&self, cache: &JwksCache) -> Result<&str, RequestError> {
        match &self.source {
            KeySource::Url(u) => Ok(u),
            KeySource::Discovery(d) => d.jwks_url(cache).await,
        }
    }

    /// Verifies the signature and claims with `key`, and makes the principal. Returns the
    /// principal and the token's `exp`.
    pub(crate) fn finish(
        &self,
        token: &str,
        u: &Unverified,
        key: &UsableKey,
        leeway: u64,
    ) -> Result<(Principal, u64), VerifyError> {
        let validation = self
            .validation(u.alg)
            .ok_or(VerifyError::AlgorithmNotAllowed)?;
        let claims = crate::jwt::verify(token, u, &key.key, validation)?;
        check_iat(claims, leeway)?;
        let (exp, expiry) = exp_claim(claims)?;
        // The right provider, but is it one of the clients (tenants, ...) meant?
        self.required.check(claims)?;
        let principal = match &self.mapping {
            Mapping::External { prefix, reserved } => {
                let sub = str_claim(claims, "sub")?;
                let subject = match prefix {
                    Some(p) if is_clean(sub) => format!("external:{p}:{sub}"),
                    // Without a prefix, a `sub` may hold no `:` (it would pass for a prefixed
                    // entry's caller) and may not be a static or legacy caller's name.
                    None if is_segment(sub)
                        && reserved.binary_search_by(|r| r.as_str().cmp(sub)).is_err() =>
                    {
                        format!("external:{sub}")
                    }
                    _ => return Err(VerifyError::WrongSubject),
                };
                let mut p = Principal::new(PrincipalType::Service, subject, CredentialKind::Jwks);
                if let Some(r) = &self.restrictions {
                    p = p.with_restrictions(r.clone());
                }
                p
            }
            Mapping::User {
                claim,
                backstage,
                namespace,
                excluded,
            } => {
                let value = match claims.str(claim) {
                    Some(s) if !s.is_empty() => s,
                    _ => return Err(VerifyError::MissingClaim("user subject")),
                };
                let subject = if *backstage {
                    trusted_entity_ref(value, excluded)?
                } else {
                    name_in(namespace, value)?
                };
                let p = Principal::new(PrincipalType::User, subject, CredentialKind::User);
                if *backstage {
                    p.with_ownership_entity_refs(ownership_refs(claims)?)
                        .with_limited_user_token(crate::obo::limited_user_token(
                            u.alg,
                            u.kid.as_deref(),
                            claims,
                        ))
                } else {
                    p
                }
            }
        };
        Ok((principal.with_expiry(expiry), exp))
    }
}

impl JwksVerifier {
    /// Checks of a limited user token (from an on-behalf-of token's `obo` claim) that need no
    /// key: its `typ`, and an algorithm this identity provider signs with.
    pub(crate) fn precheck_limited(&self, u: &Unverified) -> Result<(), VerifyError> {
        if u.typ.as_deref() != Some(crate::obo::LIMITED_USER_TYP) {
            return Err(VerifyError::WrongType);
        }
        if !self.limited.iter().any(|(a, _)| *a == u.alg) {
            return Err(VerifyError::AlgorithmNotAllowed);
        }
        Ok(())
    }

    /// Verifies a limited user token with the identity provider's `key`: returns the user's
    /// entity ref, the token's `exp`, and the ownership refs if it lists any (older Backstage
    /// versions put `ent` in limited tokens).
    pub(crate) fn finish_limited(
        &self,
        token: &str,
        u: &Unverified,
        key: &UsableKey,
        leeway: u64,
    ) -> Result<(String, u64, Vec<String>), VerifyError> {
        let validation = self
            .limited
            .iter()
            .find(|(a, _)| *a == u.alg)
            .map(|(_, v)| v)
            .ok_or(VerifyError::AlgorithmNotAllowed)?;
        let claims = crate::jwt::verify(token, u, &key.key, validation)?;
        if !claims.contains_key("iat") {
            return Err(VerifyError::MissingClaim("iat"));
        }
        check_iat(claims, leeway)?;
        let (exp, _) = exp_claim(claims)?;
        self.required.only("sub").check(claims)?;
        let excluded = match &self.mapping {
            Mapping::User { excluded, .. } => excluded.as_slice(),
            Mapping::External { .. } => &[],
        };
        let subject = trusted_entity_ref(str_claim(claims, "sub")?, excluded)?;
        Ok((subject, exp, ownership_refs(claims)?))
    }
}

/// The `ent` claim of a Backstage token: the user and their groups (empty when absent).
fn ownership_refs(claims: &Claims) -> Result<Vec<String>, VerifyError> {
    match claims.get("ent").as_deref() {
        None => Ok(Vec::new()),
        Some(Value::Array(refs)) => refs
            .iter()
            .map(|r| r.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or(VerifyError::Malformed("ent holds a non-string")),
        Some(_) => Err(VerifyError::Malformed("ent is not a list")),
    }
}

/// `user:<namespace>/<value>`, for a claim of a provider that is not trusted with entity
/// refs: `value` is a name, and `:` or `/` in it (an entity ref in an editable `email`
/// claim) is refused.
fn name_in(namespace: &str, value: &str) -> Result<String, VerifyError> {
    if !is_clean(value) || value.contains([':', '/']) {
        return Err(VerifyError::WrongSubject);
    }
    Ok(format!("user:{namespace}/{value}"))
}

/// An entity ref from a Backstage provider ([`entity_ref`]) in none of the `excluded`
/// namespaces, which other providers have as their own.
fn trusted_entity_ref(value: &str, excluded: &[String]) -> Result<String, VerifyError> {
    let subject = entity_ref(value)?;
    let namespace = subject
        .strip_prefix("user:")
        .and_then(|rest| rest.split_once('/'))
        .map(|(ns, _)| ns);
    if namespace.is_some_and(|ns| excluded.iter().any(|e| e == ns)) {
        return Err(VerifyError::WrongSubject);
    }
    Ok(subject)
}

/// For tokens trusted with entity refs (Backstage's own): `user:<ns>/<name>` kept as is;
/// anything else becomes `user:default/<value>`.
pub(crate) fn entity_ref(value: &str) -> Result<String, VerifyError> {
    if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(VerifyError::WrongSubject);
    }
    if let Some(rest) = value.strip_prefix("user:") {
        return if rest.contains('/') {
            Ok(value.to_owned())
        } else {
            Ok(format!("user:default/{rest}"))
        };
    }
    if value.contains(':') {
        // Another kind of entity (group:, component:) is not a user.
        return Err(VerifyError::WrongSubject);
    }
    Ok(format!("user:default/{value}"))
}

impl Verifier for JwksVerifier {
    fn verify(self: &Arc<Self>, token: Token<'_>, shared: &Arc<Shared>) -> Verification {
        let Some(u) = token.jwt else {
            return Verification::done(Err(VerifyError::Malformed("not a JWT")));
        };
        if let Err(e) = self.precheck(&u) {
            return Verification::done(Err(e));
        }
        let fingerprint = token.hashes.for_cache();
        let now = token.now.unix_secs();
        if let Some(url) = self.url_now()
            && let Some(found) = shared.cache.cached_key(url, u.kid.as_deref(), u.alg)
        {
            return Verification::Done(found.map_err(key_error).and_then(|key| {
                let (p, exp) = self.finish(token.raw, &u, &key, shared.leeway)?;
                let keys = || vec![(url.to_owned(), u.kid.clone())];
                shared.remember(token.raw, fingerprint, &p, exp, now, keys);
                Ok(p)
            }));
        }
        // The key has to be fetched (or discovery has to run): the only asynchronous path.
        let this = self.clone();
        let shared = shared.clone();
        let raw = token.raw.to_owned();
        Verification::Pending(Box::pin(async move {
            let url = this.url(&shared.cache).await?.to_owned();
            let key = shared.key(&url, &u).await?;
            let (p, exp) = this.finish(&raw, &u, &key, shared.leeway)?;
            // The request's `now`, even after a fetch: an entry that expired meanwhile is
            // never answered (a hit checks `exp` against its own request's clock).
            shared.remember(&raw, fingerprint, &p, exp, now, || vec![(url, u.kid)]);
            Ok(p)
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entity_refs() {
        assert_eq!(entity_ref("jane").unwrap(), "user:default/jane");
        assert_eq!(entity_ref("user:team/jane").unwrap(), "user:team/jane");
        assert_eq!(entity_ref("user:jane").unwrap(), "user:default/jane");
        assert!(entity_ref("group:default/admins").is_err());
        assert!(entity_ref("ja ne").is_err());
    }

    #[test]
    fn oidc_names_are_names() {
        assert_eq!(name_in("corp", "jane").unwrap(), "user:corp/jane");
        for bad in ["user:admins/root", "a/b", "a:b", "ja\u{7}ne", "ja ne", ""] {
            assert!(name_in("corp", bad).is_err(), "{bad}");
        }
        let excluded = ["corp".to_owned()];
        assert!(trusted_entity_ref("user:corp/jane", &excluded).is_err());
        assert_eq!(
            trusted_entity_ref("user:default/jane", &excluded).unwrap(),
            "user:default/jane"
        );
    }

    #[test]
    fn secure_defaults() {
        let e = JwksAccess::new("https://idp/jwks")
            .into_verifier(30, Vec::new())
            .unwrap_err();
        assert_eq!(e.path(), Some("jwks_access.options.issuer"));
        let e = JwksAccess::new("https://idp/jwks")
            .issuers(["i"])
            .into_verifier(30, Vec::new())
            .unwrap_err();
        assert_eq!(e.path(), Some("jwks_access.options.audience"));
        assert!(
            JwksAccess::new("https://idp/jwks")
                .dangerously_allow_missing_issuer_or_audience()
                .into_verifier(30, Vec::new())
                .is_ok()
        );
        let e = JwksAccess::new("https://idp/jwks")
            .issuers(["i"])
            .audiences(["a"])
            .algorithms([Algorithm::HS256])
            .into_verifier(30, Vec::new())
            .unwrap_err();
        assert_eq!(e.path(), Some("jwks_access.options.algorithm"));
        assert!(
            UserProvider::oidc("https://idp")
                .into_verifier(30, Vec::new())
                .is_err()
        );
    }
}
