//! Just-in-time on-behalf-of tokens (OpenSearch's model, with its weaknesses fixed): a
//! signed-in user asks this service for a short-lived token that lets a tool act as them
//! for a few minutes. Such a token can never mint more tokens or change credentials: its
//! credential kind is `obo`, and sensitive routes refuse it (403).
//!
//! **Issuing.** [`Auth::jit_token`](crate::Auth::jit_token), or over HTTP with
//! [`Auth::jit_router`](crate::Auth::jit_router): `POST /.s2s/auth/v1/obo/token` (and, when
//! asked, OpenSearch's `/_plugins/_security/api/generateonbehalfoftoken`) with
//! `{"description": string, "service": string?, "durationSeconds": integer or numeric
//! string?}` answers `{"user", "authenticationToken", "durationSeconds"}`. Only a user's own
//! credential may ask (the routes are sensitive).
//!
//! **The token** (a JWS, compact):
//!
//! ```text
//! header  {"alg": "ES256" | "HS512", "typ": "vnd.s2s-auth.obo", "kid": <key id>}
//! claims  {"iss": <deployment id>, "sub": <user entity ref>, "aud": <service> | "self-issued",
//!          "azp": <issuing service id>, "iat", "nbf" = iat, "exp", "jti": <random uuid>,
//!          "roles": [..]  or  "encrypted_roles": "<kid>.<nonce>.<ciphertext>"}
//! ```
//!
//! - Signed with this service's ES256 plugin keys (from the key store, with `kid`, rotating,
//!   published in its JWKS), or, when HS512 keys are configured, with the first of them
//!   (several at once, each with a `kid`, so a new key is added before the old one goes).
//!   An HS512 key shorter than 512 bits, measured on the decoded bytes, is a config error.
//! - `encrypted_roles`: AES-256-GCM with a random 96-bit nonce per token, the key named by
//!   its `kid`, and the token's `jti` as associated data (a sealed list moved to another
//!   token does not open). A key that is not 32 bytes is a config error.
//! - `exp` is required; the lifetime defaults to 300 s and is capped at 600 s (both
//!   configurable, the cap at most 3600 s), and never passes the asking user's own
//!   credential's expiry.
//!
//! **Verifying.** A token with this `typ` goes to this verifier alone. It checks the
//! signature (the key by `kid`), `iss` = the deployment id, `aud` = this service's id, or
//! `self-issued` when this service issued it (`azp`), `exp`, `nbf` and `iat` with the
//! leeway, a lifetime within the cap, and that the `jti` is not revoked. The principal is
//! the user (`principalType: user`, credential `obo`), with actor `jit:<jti>` (so the audit
//! log names the token that acted, and shows it is not the user in person) and the roles,
//! decrypted, in [`Principal::roles`](crate::Principal::roles).
//!
//! What OpenSearch does and this does not: one HS512 key without `kid` (rotating it kills
//! every token), a key length measured on the base64 text, roles in AES-ECB under a key cut
//! to 16 bytes, `aud` only checked to be non-empty, tokens without `exp` accepted, the
//! token logged at debug level, no audit event for issuance, no revocation.
//!
//! ```
//! use std::sync::Arc;
//! use s2s_auth::jit::{JitRequest, JitTokens};
//! use s2s_auth::{Auth, CredentialKind, PluginTokens, Principal, PrincipalType};
//! use s2s_auth::store::MemoryStore;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let auth = Auth::builder("catalog")
//!     .plugin_tokens(PluginTokens::new(Arc::new(MemoryStore::default())))
//!     .jit_tokens(JitTokens::new("acme-prod"))
//!     .build()?;
//! let jane = Principal::new(PrincipalType::User, "user:default/jane", CredentialKind::User)
//!     .with_expiry(time::OffsetDateTime::now_utc() + time::Duration::hours(1));
//! let issued = auth.jit_token(&jane, &JitRequest::new("a report run")).await?;
//! assert_eq!(issued.user, "user:default/jane");
//! assert_eq!(issued.duration_seconds, 300);
//! # Ok(())
//! # }
//! ```

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

use crate::error::{ConfigError, ConfigRule};
use crate::secret::SecretString;
use crate::store::Store;

mod endpoint;
mod issue;
mod roles;
mod verify;

pub(crate) use endpoint::parse_body;
pub(crate) use issue::Jit;
pub use issue::{JitIssued, JitRequest};
pub(crate) use verify::JitVerifier;

/// The `typ` of a just-in-time on-behalf-of token.
pub const JIT_TYP: &str = "vnd.s2s-auth.obo";
/// The audience of a token asked for without a `service`: only its issuer accepts it.
pub const SELF_ISSUED: &str = "self-issued";
/// Where the issue endpoint is served unless configured otherwise.
pub const DEFAULT_PATH: &str = "/.s2s/auth/v1/obo/token";
/// OpenSearch's path for the same endpoint, served too when asked
/// ([`JitTokens::opensearch_path`]), so OpenSearch clients work unchanged.
pub const OPENSEARCH_PATH: &str = "/_plugins/_security/api/generateonbehalfoftoken";
/// The largest request body the issue endpoint reads: 16 KiB (more is 413).
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// The lifetime a token gets when the request names none.
pub const DEFAULT_DURATION: Duration = Duration::from_secs(300);
/// The lifetime cap unless configured otherwise.
pub const DEFAULT_MAX_DURATION: Duration = Duration::from_secs(600);
/// The highest cap that can be configured.
pub const MAX_DURATION_CAP: Duration = Duration::from_secs(3600);

/// Whether `jti` has the shape of a just-in-time token's id: 1 to 255 bytes, no whitespace,
/// control character or `:`. The verifier refuses a token whose `jti` has another shape
/// (so such a `jti` can never need revoking); a revoking tool checks it the same way.
///
/// ```
/// use s2s_auth::jit::is_valid_jti;
///
/// assert!(is_valid_jti("0b6f7c1e-3d2a-4e59-9c1f-5a8e2d7b4c30"));
/// assert!(!is_valid_jti(""));
/// assert!(!is_valid_jti("two words"));
/// assert!(!is_valid_jti("jit:0b6f7c1e"));
/// assert!(!is_valid_jti(&"a".repeat(256)));
/// ```
pub fn is_valid_jti(jti: &str) -> bool {
    jti.len() <= 255 && crate::subject::is_segment(jti)
}
/// How stale a replica's copy of the revocations may be unless configured otherwise.
pub const DEFAULT_REVOCATION_STALENESS: Duration = crate::revocation::DEFAULT_STALENESS;
/// The shortest HS512 key, in decoded bytes (512 bits).
pub const MIN_HMAC_KEY_BYTES: usize = 64;

/// Just-in-time on-behalf-of tokens for an [`Auth`](crate::Auth)
/// ([`AuthBuilder::jit_tokens`](crate::AuthBuilder::jit_tokens)); YAML
/// `s2s.onBehalfOf.justInTime`. See the [module docs](self) for the format.
///
/// Every key is a secret: `Debug` shows their `kid`s only.
#[derive(Clone)]
pub struct JitTokens {
    pub(crate) deployment_id: String,
    pub(crate) default_duration: Duration,
    pub(crate) max_duration: Duration,
    pub(crate) hmac_keys: Vec<(String, SecretString)>,
    pub(crate) roles_keys: Vec<(String, SecretString)>,
    pub(crate) path: String,
    pub(crate) opensearch_path: bool,
    pub(crate) store: Option<Arc<dyn Store>>,
    pub(crate) revocation_staleness: Duration,
    pub(crate) revocation_admins: Vec<String>,
    pub(crate) trusted_issuers: Vec<String>,
    /// Where the settings were given (`s2s.onBehalfOf.justInTime`, or the builder):
    /// config errors name it.
    pub(crate) origin: String,
}

impl std::fmt::Debug for JitTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kids = |keys: &[(String, SecretString)]| -> Vec<String> {
            keys.iter().map(|(kid, _)| kid.clone()).collect()
        };
        f.debug_struct("JitTokens")
            .field("deployment_id", &self.deployment_id)
            .field("default_duration", &self.default_duration)
            .field("max_duration", &self.max_duration)
            .field("hmac_kids", &kids(&self.hmac_keys))
            .field("roles_kids", &kids(&self.roles_keys))
            .field("path", &self.path)
            .field("opensearch_path", &self.opensearch_path)
            .field("revocation_staleness", &self.revocation_staleness)
            .field("revocation_admins", &self.revocation_admins)
            .finish_non_exhaustive()
    }
}

impl JitTokens {
    /// Tokens naming `deployment_id` as their issuer (`iss`): the same for every service
    /// of one deployment, checked by each. Signed with the service's ES256 plugin keys
    /// (configure [`PluginTokens`](crate::PluginTokens)) unless [`hmac_key`](Self::hmac_key)
    /// adds shared keys.
    pub fn new(deployment_id: impl Into<String>) -> Self {
        Self {
            deployment_id: deployment_id.into(),
            default_duration: DEFAULT_DURATION,
            max_duration: DEFAULT_MAX_DURATION,
            hmac_keys: Vec::new(),
            roles_keys: Vec::new(),
            path: DEFAULT_PATH.to_owned(),
            opensearch_path: false,
            store: None,
            revocation_staleness: DEFAULT_REVOCATION_STALENESS,
            revocation_admins: Vec::new(),
            trusted_issuers: Vec::new(),
            origin: String::from("jit_tokens"),
        }
    }

    /// The lifetime when the request names none (default 300 s) and the cap (default
    /// 600 s, at most 3600 s). A longer request is granted the cap, and the response says so.
    pub fn durations(mut self, default: Duration, max: Duration) -> Self {
        self.default_duration = default;
        self.max_duration = max;
        self
    }

    /// An HS512 key (base64, at least 64 bytes decoded) under `kid`. The first key added
    /// signs; every key verifies, so a new key is added first and the old one removed once
    /// its tokens have expired.
    pub fn hmac_key(mut self, kid: impl Into<String>, base64_key: impl Into<String>) -> Self {
        self.hmac_keys
            .push((kid.into(), SecretString::new(base64_key.into())));
        self
    }

    /// Seals the roles (`encrypted_roles`, AES-256-GCM) with this key (base64, 32 bytes
    /// decoded) under `kid`. The first key added seals; every key opens.
    pub fn encrypt_roles(mut self, kid: impl Into<String>, base64_key: impl Into<String>) -> Self {
        self.roles_keys
            .push((kid.into(), SecretString::new(base64_key.into())));
        self
    }

    /// Serves the issue endpoint at `path` instead of [`DEFAULT_PATH`].
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.path = path.into();
        self
    }

    /// Also serves the issue endpoint at OpenSearch's [`OPENSEARCH_PATH`].
    pub fn opensearch_path(mut self, serve: bool) -> Self {
        self.opensearch_path = serve;
        self
    }

    /// Where issued tokens and revocations are kept: the plugin key store unless set here,
    /// and a store in memory when there is neither (revocations then reach this process
    /// only). Replicas that must refuse each other's revoked tokens share one store
    /// (PostgreSQL: a revocation reaches the others through `LISTEN`/`NOTIFY` at once, and
    /// by polling within the staleness otherwise).
    pub fn store(mut self, store: Arc<dyn Store>) -> Self {
        self.store = Some(store);
        self
    }

    /// How stale this replica's copy of the revocations may be (default 5 s): it reads the
    /// store every half of it, and when its last good read is older, a token is answered
    /// 503 rather than let in unchecked.
    pub fn revocation_staleness(mut self, staleness: Duration) -> Self {
        self.revocation_staleness = staleness;
        self
    }

    /// Users (entity refs, `user:default/admin`) who may revoke anyone's token; a user may
    /// always revoke their own.
    pub fn revocation_admins<I: IntoIterator<Item = S>, S: Into<String>>(
        mut self,
        users: I,
    ) -> Self {
        self.revocation_admins = users.into_iter().map(Into::into).collect();
        self
    }

    /// Other services of the deployment whose ES256 tokens for this service (`aud` = this
    /// service's id) are verified with their published keys, found by discovery
    /// ([`AuthBuilder::discovery`](crate::AuthBuilder::discovery)) like a plugin token's
    /// (https, or loopback). Tokens of a service not listed are refused without a fetch.
    /// (HS512 keys are shared: whoever holds them is trusted.)
    pub fn trusted_issuers<I: IntoIterator<Item = S>, S: Into<String>>(mut self, ids: I) -> Self {
        self.trusted_issuers = ids.into_iter().map(Into::into).collect();
        self
    }

    /// The revocation route: `DELETE <path>/{jti}`.
    pub(crate) fn revoke_pattern(&self) -> String {
        format!("{}/{{jti}}", self.path.trim_end_matches('/'))
    }

    /// The paths the issue endpoint is served at.
    pub(crate) fn paths(&self) -> Vec<String> {
        let mut paths = vec![self.path.clone()];
        if self.opensearch_path && self.path != OPENSEARCH_PATH {
            paths.push(OPENSEARCH_PATH.to_owned());
        }
        paths
    }

    /// Every check of the settings, with the config path of what is wrong.
    pub(crate) fn check(&self) -> Result<(), ConfigError> {
        let at = |what: &str| format!("{}.{what}", self.origin);
        if !crate::subject::is_segment(&self.deployment_id) || self.deployment_id.len() > 255 {
            return Err(ConfigError::new(
                at("deploymentId"),
                ConfigRule::InvalidJitSetting(
                    "must be 1 to 255 characters without whitespace, control characters or `:`",
                ),
            ));
        }
        if self.default_duration.is_zero() {
            return Err(ConfigError::new(
                at("defaultDurationSeconds"),
                ConfigRule::Zero,
            ));
        }
        if self.max_duration > MAX_DURATION_CAP || self.max_duration.is_zero() {
            return Err(ConfigError::new(
                at("maxDurationSeconds"),
                ConfigRule::OutOfRange {
                    min: 1,
                    max: MAX_DURATION_CAP.as_secs(),
                },
            ));
        }
        if self.default_duration > self.max_duration {
            return Err(ConfigError::new(
                at("defaultDurationSeconds"),
                ConfigRule::InvalidJitSetting("must not exceed maxDurationSeconds"),
            ));
        }
        if self.revocation_staleness < Duration::from_millis(10)
            || self.revocation_staleness > Duration::from_secs(3600)
        {
            return Err(ConfigError::new(
                at("revocationStalenessSeconds"),
                ConfigRule::OutOfRange { min: 1, max: 3600 },
            ));
        }
        for (i, id) in self.trusted_issuers.iter().enumerate() {
            if !crate::service_id::is_valid_service_id(id) {
                return Err(ConfigError::new(
                    format!("{}.trustedIssuers[{i}]", self.origin),
                    ConfigRule::InvalidServiceId,
                ));
            }
        }
        for (i, admin) in self.revocation_admins.iter().enumerate() {
            if !admin.starts_with("user:")
                || crate::external_jwks::entity_ref(admin).ok().as_deref() != Some(admin.as_str())
            {
                return Err(ConfigError::new(
                    format!("{}.revocationAdmins[{i}]", self.origin),
                    ConfigRule::InvalidJitSetting("a user entity ref: user:<namespace>/<name>"),
                ));
            }
        }
        if !self.path.starts_with('/') {
            return Err(ConfigError::new(at("path"), ConfigRule::PathNotAbsolute));
        }
        self.hmac_secrets()?;
        self.roles_secrets()?;
        Ok(())
    }

    /// The HS512 keys, decoded and checked.
    pub(crate) fn hmac_secrets(&self) -> Result<Vec<(String, Vec<u8>)>, ConfigError> {
        decode_keys(
            &self.hmac_keys,
            &format!("{}.hmacKeys", self.origin),
            |bytes| {
                (bytes.len() < MIN_HMAC_KEY_BYTES).then_some(ConfigRule::SecretTooShort {
                    min_bytes: MIN_HMAC_KEY_BYTES,
                })
            },
        )
    }

    /// The roles keys, decoded and checked.
    pub(crate) fn roles_secrets(&self) -> Result<Vec<(String, Vec<u8>)>, ConfigError> {
        decode_keys(
            &self.roles_keys,
            &format!("{}.rolesKeys", self.origin),
            |bytes| {
                (bytes.len() != 32).then_some(ConfigRule::InvalidJitSetting(
                    "an AES-256-GCM key must decode to exactly 32 bytes",
                ))
            },
        )
    }
}

/// Decodes base64 keys (standard or URL-safe alphabet), each `kid` a clean name used once.
fn decode_keys(
    keys: &[(String, SecretString)],
    path: &str,
    refuse: impl Fn(&[u8]) -> Option<ConfigRule>,
) -> Result<Vec<(String, Vec<u8>)>, ConfigError> {
    let mut out: Vec<(String, Vec<u8>)> = Vec::with_capacity(keys.len());
    for (i, (kid, key)) in keys.iter().enumerate() {
        let at = format!("{path}[{i}]");
        if !crate::subject::is_segment(kid) || kid.len() > 255 || kid.contains('.') {
            return Err(ConfigError::new(
                format!("{at}.kid"),
                ConfigRule::InvalidJitSetting(
                    "a kid is 1 to 255 characters without whitespace, control characters, `:` or `.`",
                ),
            ));
        }
        if out.iter().any(|(k, _)| k == kid) {
            return Err(ConfigError::new(
                format!("{at}.kid"),
                ConfigRule::InvalidJitSetting("this kid is used twice"),
            ));
        }
        let text = key.expose_secret().trim();
        let bytes = STANDARD
            .decode(text)
            .or_else(|_| URL_SAFE_NO_PAD.decode(text))
            .map_err(|_| ConfigError::new(format!("{at}.key"), ConfigRule::SecretNotBase64))?;
        if let Some(rule) = refuse(&bytes) {
            return Err(ConfigError::new(format!("{at}.key"), rule));
        }
        out.push((kid.clone(), bytes));
    }
    Ok(out)
}
