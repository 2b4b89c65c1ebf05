//! Service accounts: named machine principals an operator creates, scopes, hands tokens to,
//! rotates and switches off, everywhere within seconds.
//!
//! OpenSearch's service accounts are internal users with a password that each new token
//! resets; disabling one blocks new tokens while the old ones keep working. Here:
//!
//! - **no password, ever**: an account has opaque bearer tokens, and a create or update
//!   that carries a `password` or a `hash` is refused (400);
//! - **many tokens per account**, each named, with its own optional expiry and optional
//!   narrower permissions, revoked one by one: rotation is "add the new token, move the
//!   callers, revoke the old one", with both valid in between;
//! - **disable means every token**: a disabled account's tokens are all refused (401) on
//!   the replica that disabled it at once, and on replicas sharing the store within the
//!   staleness bound (default 5 s; PostgreSQL wakes them at once with `LISTEN`/`NOTIFY`);
//! - **least privilege**: an account's permissions are an `accessRestrictions` list (which
//!   plugins, which permissions, which actions), a token's are at most the account's, and
//!   both are enforced at the route like `accessRestrictions`;
//! - **leaks are findable**: every token starts with `s2s_sa_`, so a secret scanner finds
//!   it with [`TOKEN_PATTERN`] (`s2s_sa_[A-Za-z0-9_-]{43}`);
//! - **only a digest is stored** (SHA-256; a token holds 256 random bits, so no slow hash is
//!   needed), the plaintext is shown once, when the token is created;
//! - **last use is recorded** in batches (one store write per interval, not per request).
//!
//! A token verifies as a `service` principal with subject `service-account:<name>`,
//! credential `service-account`, no actor (the account acts for itself: the audit log
//! tells it apart from a service acting for a user) and the permissions both the account
//! and the token allow as its restrictions. Verification answers from a copy of the
//! accounts in memory: no store query on the request path. A token created on another
//! replica works here once this replica's copy is read again (at once with PostgreSQL,
//! within half the staleness bound otherwise). When the copy is older than the staleness
//! bound (the store does not answer), every service-account token is answered 503: this
//! replica cannot prove that the account was not disabled elsewhere.
//!
//! Sensitive routes refuse these tokens (403), and so does the admin API, whose every route
//! is sensitive and takes a user who is a configured admin.
//!
//! ```
//! use std::sync::Arc;
//! use s2s_auth::restrictions::{AccessRestriction, AccessRestrictions, Action};
//! use s2s_auth::service_account::{NewAccount, NewToken, ServiceAccounts};
//! use s2s_auth::store::MemoryStore;
//! use s2s_auth::{Auth, CredentialKind, Principal, PrincipalType};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let auth = Auth::builder("catalog")
//!     .service_accounts(
//!         ServiceAccounts::new(["user:default/ops-lead"]).store(Arc::new(MemoryStore::new())),
//!     )
//!     .build()?;
//! let admin = Principal::new(PrincipalType::User, "user:default/ops-lead", CredentialKind::User);
//! let accounts = auth.service_accounts().expect("configured");
//! accounts
//!     .create_account(&admin, NewAccount::new(
//!         "ci-deployer",
//!         AccessRestrictions::new([AccessRestriction::plugin("catalog").actions([Action::Read])])?,
//!     ))
//!     .await?;
//! let issued = accounts.create_token(&admin, "ci-deployer", NewToken::new("first")).await?;
//! assert!(issued.token.expose_secret().starts_with("s2s_sa_"));
//! # Ok(())
//! # }
//! ```

mod admin;
mod http;
mod registry;

use std::sync::Arc;
use std::time::Duration;

use crate::error::{ConfigError, ConfigRule};
use crate::secret::SecretString;
use crate::store::{Store, TokenDigest};

pub use admin::{AccountAdmin, AccountUpdate, IssuedAccountToken, NewAccount, NewToken, TokenInfo};
pub(crate) use http::router;
pub(crate) use registry::{AccountVerifier, Registry};

/// The prefix of every service-account token.
pub const TOKEN_PREFIX: &str = "s2s_sa_";

/// A regular expression matching a service-account token, for secret scanners: the prefix
/// and 43 base64url characters (256 random bits).
pub const TOKEN_PATTERN: &str = "s2s_sa_[A-Za-z0-9_-]{43}";

/// The length of a token: the prefix and 43 characters.
pub const TOKEN_LEN: usize = TOKEN_PREFIX.len() + 43;

/// Where the admin API is served unless configured otherwise.
pub const DEFAULT_PATH: &str = "/.s2s/auth/v1/service-accounts";

/// How stale a replica's copy of the accounts may be unless configured otherwise.
pub const DEFAULT_STALENESS: Duration = Duration::from_secs(5);

/// How often last-used times are written unless configured otherwise.
pub const DEFAULT_LAST_USED_INTERVAL: Duration = Duration::from_secs(60);

/// The largest request body the admin API reads.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// The longest a token may be valid when it has an expiry: ten years.
pub const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(10 * 366 * 24 * 3600);

/// Service accounts for an [`Auth`](crate::Auth)
/// ([`AuthBuilder::service_accounts`](crate::AuthBuilder::service_accounts)); YAML
/// `s2s.serviceAccounts`. See the [module docs](self).
#[derive(Clone)]
pub struct ServiceAccounts {
    pub(crate) admins: Vec<String>,
    pub(crate) store: Option<Arc<dyn Store>>,
    pub(crate) path: String,
    pub(crate) staleness: Duration,
    pub(crate) last_used_interval: Duration,
    /// Where the settings were given (`s2s.serviceAccounts`, or the builder): config errors
    /// name it.
    pub(crate) origin: String,
}

impl std::fmt::Debug for ServiceAccounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccounts")
            .field("admins", &self.admins)
            .field("path", &self.path)
            .field("staleness", &self.staleness)
            .field("last_used_interval", &self.last_used_interval)
            .finish_non_exhaustive()
    }
}

impl ServiceAccounts {
    /// Service accounts managed by these admins: user entity refs (`user:default/ops-lead`)
    /// or groups (`group:default/platform`, matched against the user's ownership refs). At
    /// least one is required: an admin API nobody may use is a mistake.
    pub fn new<I: IntoIterator<Item = S>, S: Into<String>>(admins: I) -> Self {
        Self {
            admins: admins.into_iter().map(Into::into).collect(),
            store: None,
            path: DEFAULT_PATH.to_owned(),
            staleness: DEFAULT_STALENESS,
            last_used_interval: DEFAULT_LAST_USED_INTERVAL,
            origin: String::from("service_accounts"),
        }
    }

    /// Where accounts and token digests are kept: the plugin key store unless set here, and
    /// a store in memory when there is neither (accounts are then lost on restart, and
    /// reach this process only). Replicas share one store (PostgreSQL for several hosts).
    pub fn store(mut self, store: Arc<dyn Store>) -> Self {
        self.store = Some(store);
        self
    }

    /// Serves the admin API under `path` instead of [`DEFAULT_PATH`].
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.path = path.into();
        self
    }

    /// How stale this replica's copy of the accounts may be (default 5 s, 10 ms to 1 h): it
    /// reads the store every half of it, and when its last good read is older, a
    /// service-account token is answered 503 rather than let in unchecked.
    pub fn staleness(mut self, staleness: Duration) -> Self {
        self.staleness = staleness;
        self
    }

    /// How often last-used times are written to the store (default 60 s, 100 ms to 1 h):
    /// one write per interval, whatever the number of requests.
    pub fn last_used_interval(mut self, interval: Duration) -> Self {
        self.last_used_interval = interval;
        self
    }

    /// Checks the settings; errors name the YAML path under `origin`.
    pub(crate) fn check(&self) -> Result<(), ConfigError> {
        let at = |key: &str| format!("{}.{key}", self.origin);
        if self.admins.is_empty() {
            return Err(ConfigError::new(
                at("admins"),
                ConfigRule::InvalidSetting(
                    "list at least one admin (a user or group entity ref): nobody could manage the accounts".into(),
                ),
            ));
        }
        for (i, admin) in self.admins.iter().enumerate() {
            let ok = admin.split_once(':').is_some_and(|(kind, rest)| {
                (kind == "user" || kind == "group") && rest.contains('/')
            });
            if !ok || admin.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(ConfigError::new(
                    format!("{}[{i}]", at("admins")),
                    ConfigRule::InvalidSetting(format!(
                        "`{admin}` is not an entity ref like user:default/jane or group:default/platform"
                    )),
                ));
            }
        }
        if !self.path.starts_with('/')
            || self.path.len() < 2
            || self.path.ends_with('/')
            || self.path.contains(['{', '}', '*', '?', '#'])
        {
            return Err(ConfigError::new(
                at("path"),
                ConfigRule::InvalidSetting(
                    "a path like /.s2s/auth/v1/service-accounts (no trailing slash, no parameters)"
                        .into(),
                ),
            ));
        }
        let range = |key: &str, value: Duration, min: Duration, max: Duration| {
            if value < min || value > max {
                Err(ConfigError::new(
                    at(key),
                    ConfigRule::InvalidSetting(format!("must be {min:?} to {max:?}")),
                ))
            } else {
                Ok(())
            }
        };
        range(
            "stalenessSeconds",
            self.staleness,
            crate::sync::MIN_STALENESS,
            Duration::from_secs(3600),
        )?;
        range(
            "lastUsedIntervalSeconds",
            self.last_used_interval,
            Duration::from_millis(100),
            Duration::from_secs(3600),
        )
    }

    /// The admin API's routes: (pattern, methods).
    pub(crate) fn routes(&self) -> Vec<(String, Vec<::http::Method>)> {
        use ::http::Method;
        let base = &self.path;
        vec![
            (base.clone(), vec![Method::GET, Method::POST]),
            (
                format!("{base}/{{name}}"),
                vec![Method::GET, Method::PATCH, Method::DELETE],
            ),
            (format!("{base}/{{name}}/enable"), vec![Method::POST]),
            (format!("{base}/{{name}}/disable"), vec![Method::POST]),
            (
                format!("{base}/{{name}}/tokens"),
                vec![Method::GET, Method::POST],
            ),
            (
                format!("{base}/{{name}}/tokens/{{id}}"),
                vec![Method::DELETE],
            ),
        ]
    }
}

/// A new token: `s2s_sa_` and 43 base64url characters of 256 random bits, and its digest.
/// `None` when the random source fails.
pub(crate) fn new_token() -> Option<(SecretString, TokenDigest)> {
    use base64::Engine as _;
    let bytes = crate::secret::random_bytes::<32>()?;
    let token = format!(
        "{TOKEN_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    );
    let digest = TokenDigest(crate::secret::sha256(token.as_bytes()));
    Some((SecretString::new(token), digest))
}

/// A new token id: `sat_` and 24 hex digits (96 random bits). `None` when the random
/// source fails.
pub(crate) fn new_token_id() -> Option<String> {
    let bytes = crate::secret::random_bytes::<12>()?;
    let id = bytes.iter().fold(String::from("sat_"), |mut s, b| {
        use std::fmt::Write;
        let _ = write!(s, "{b:02x}");
        s
    });
    Some(id)
}

/// Whether a token has the shape of a service-account token: the prefix, then exactly 43
/// base64url characters. Anything else with the prefix is refused without a lookup.
pub(crate) fn has_token_shape(token: &str) -> bool {
    token.len() == TOKEN_LEN
        && token.strip_prefix(TOKEN_PREFIX).is_some_and(|rest| {
            rest.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_have_the_published_shape_and_are_distinct() {
        let (a, da) = new_token().unwrap();
        let (b, db) = new_token().unwrap();
        assert_ne!(a.expose_secret(), b.expose_secret());
        assert_ne!(da, db);
        for t in [&a, &b] {
            assert!(has_token_shape(t.expose_secret()), "{}", t.expose_secret());
            assert_eq!(t.expose_secret().len(), TOKEN_LEN);
        }
        assert_eq!(
            TokenDigest(crate::secret::sha256(a.expose_secret().as_bytes())),
            da
        );
        assert!(!has_token_shape("s2s_sa_short"));
        assert!(!has_token_shape(&format!("s2s_sa_{}", "a".repeat(44))));
        assert!(!has_token_shape(&format!("s2s_sa_{}+", "a".repeat(42))));
        assert!(!has_token_shape(&format!("s2s_xx_{}", "a".repeat(43))));
        let id = new_token_id().unwrap();
        assert!(crate::store::is_valid_token_id(&id), "{id}");
    }

    #[test]
    fn settings_are_checked() {
        assert!(ServiceAccounts::new(["user:default/ops"]).check().is_ok());
        assert!(
            ServiceAccounts::new(["group:default/platform"])
                .check()
                .is_ok()
        );
        let empty: [&str; 0] = [];
        let e = ServiceAccounts::new(empty).check().unwrap_err();
        assert_eq!(e.path(), Some("service_accounts.admins"));
        for bad in [
            "ops",
            "user:ops",
            "service:default/x",
            "user:default/ops lead",
        ] {
            let e = ServiceAccounts::new([bad]).check().unwrap_err();
            assert_eq!(e.path(), Some("service_accounts.admins[0]"), "{bad}");
        }
        for bad in ["", "/", "admin", "/admin/", "/admin/{x}"] {
            let e = ServiceAccounts::new(["user:default/ops"])
                .path(bad)
                .check()
                .unwrap_err();
            assert_eq!(e.path(), Some("service_accounts.path"), "{bad}");
        }
        let e = ServiceAccounts::new(["user:default/ops"])
            .staleness(Duration::ZERO)
            .check()
            .unwrap_err();
        assert_eq!(e.path(), Some("service_accounts.stalenessSeconds"));
        let e = ServiceAccounts::new(["user:default/ops"])
            .last_used_interval(Duration::from_secs(7200))
            .check()
            .unwrap_err();
        assert_eq!(e.path(), Some("service_accounts.lastUsedIntervalSeconds"));
    }
}
