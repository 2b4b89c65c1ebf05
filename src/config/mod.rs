//! YAML configuration in Backstage's shape, plus an `s2s` section for this crate.
//!
//! ```yaml
//! s2s:
//!   serviceId: catalog               # required, ^[a-z0-9_-]+$
//!   defaultPolicy: authenticated     # or `deny`
//!   routes:
//!     - path: /healthz
//!       unauthenticated: true
//!     - path: /entities/{id}
//!       methods: [GET]
//!       allow: [static, user]
//!       permission: catalog.entity.read
//!       action: read
//!     - path: /entities
//!       methods: [POST]
//!       allowStaticWrites: true
//!   users:                           # identity providers for user tokens
//!     - type: oidc                   # or `backstage` (typ vnd.backstage.user, aud backstage)
//!       issuer: https://login.example.com
//!       audience: catalog            # required for oidc
//!       jwksUrl: https://login.example.com/keys   # optional: skips OIDC discovery
//!       algorithm: [RS256]           # optional; never HMAC
//!       subjectClaim: sub            # optional; the claim holding the user's name
//!       namespace: corp              # optional, default `default`: users are user:corp/<name>
//!       sharedNamespace: false       # true on both: two providers' users are the same people
//!       requiredClaims: { azp: catalog-ui }   # optional: a value or a list per claim
//!       # dangerouslyAllowHttp: true # the insecure opt-out: keys over http off loopback
//!   verifiedCacheCapacity: 50000     # verified JWTs remembered (0 = off; at most 10 million)
//!   jwks:                            # the JWKS cache; every value optional (defaults shown)
//!     refreshSeconds: 600
//!     unknownKidCooldownSeconds: 30
//!     maxStaleSeconds: 86400
//!     fetchTimeoutSeconds: 5
//!     maxBodyBytes: 1048576
//!   leewaySeconds: 30
//!   discovery:                       # service id -> base URL: whose plugin tokens verify here
//!     scaffolder: http://scaffolder.internal:7007/api/scaffolder
//!   trustedActors: [scaffolder]      # may act for users without the IdP's proof (`act` form)
//!   pluginTokens:                    # this service issues plugin tokens
//!     keyDurationSeconds: 3600
//! backend:
//!   database:                        # where generated keys are kept (default: SQLite)
//!     client: pg                     # or better-sqlite3
//!     connection: ${DATABASE_URL}
//!   auth:
//!     pluginKeyStore:                # optional: `database` (default), `memory`, or `static`
//!       type: database
//!     externalAccess:
//!       - type: static
//!         options:
//!           token: ${CI_TOKEN}       # or tokenSha256: <64 hex digits>
//!           subject: ci-bot
//!           expiresAt: 2027-01-01T00:00:00Z   # optional, RFC 3339
//!           allowWrites: false                # optional, default false
//!         accessRestrictions:
//!           - plugin: catalog
//!             permission: [catalog.entity.read]
//!             permissionAttribute:
//!               action: [read]
//!       - type: jwks
//!         options:
//!           url: https://idp.example.com/.well-known/jwks.json
//!           issuer: https://idp.example.com      # required (string or list)
//!           audience: catalog                    # required (string or list)
//!           algorithm: [RS256, ES256]            # optional
//!           subjectPrefix: idp                   # external:idp:<sub>; required on all jwks entries but one
//!           requiredClaims:                      # optional: only these clients, this tenant
//!             azp: [ci-client, deploy-client]
//!             tenant: acme
//!           # dangerouslyAllowMissingIssuerOrAudience: true   # the insecure opt-out
//!           # dangerouslyAllowHttp: true         # the insecure opt-out: keys over http off loopback
//!       - type: legacy
//!         options:
//!           secret: ${LEGACY_SECRET}             # base64, >= 16 bytes decoded
//!           subject: old-backend
//!     keys:                                      # deprecated legacy secrets
//!       - secret: ${BACKEND_SECRET}
//! ```
//!
//! - `${NAME}` in any string is replaced by the environment variable `NAME` (after parsing,
//!   so a variable can never inject YAML structure); `$${` stands for a literal `${`. An
//!   unset variable is an error naming where it was used.
//! - Unknown keys in `s2s`, in `externalAccess` entries and in `keys` entries are errors (a
//!   misspelt `alowWrites` must not silently leave a token read-only, or worse, the other way
//!   round). Other keys of `backend.auth` are Backstage's and are ignored with a warning;
//!   `backend.auth.keys` is honoured with a deprecation warning, as Backstage does.
//! - Every error names the path of the bad value, and never prints a secret.
//! - Key sources (`url`, `jwksUrl`, an `issuer` whose keys are found by discovery) must be
//!   `https`, except loopback (`127.0.0.0/8`, `::1`, `localhost`) or `dangerouslyAllowHttp`.
//! - Subjects cannot collide: static and legacy subjects hold no `:`, `subjectPrefix`es are
//!   distinct (from each other, custom type names and static subjects), one `jwks` entry at
//!   most goes without one, and two user providers share a `namespace` only if both say
//!   `sharedNamespace: true` (README, "Credential kinds").
//!
//! ```
//! use s2s_auth::Auth;
//!
//! let yaml = "
//! s2s:
//!   serviceId: catalog
//! backend:
//!   auth:
//!     externalAccess:
//!       - type: static
//!         options: { token: short, subject: ci }
//! ";
//! let err = Auth::from_yaml_str(yaml).unwrap_err();
//! assert_eq!(err.path(), Some("backend.auth.externalAccess[0].options.token"));
//! assert!(!err.to_string().contains("short"));
//! ```

mod check;
mod external_access;
mod keys;
mod node;
mod s2s;

use std::path::Path;

use serde_json::Value;

use crate::auth::Auth;
use crate::builder::AuthBuilder;
use crate::error::{ConfigError, ConfigRule};

pub use check::{CheckReport, ConfigWarning, check_yaml_file, check_yaml_str_with_env};
pub use external_access::LEGACY_KEYS_SUBJECT;
use node::{Node, substitute_env};

impl AuthBuilder {
    /// Reads a YAML configuration, substituting `${VAR}` from the process environment.
    /// Add audit sinks to the returned builder, then [`build`](AuthBuilder::build) it.
    pub fn from_yaml_str(yaml: &str) -> Result<Self, ConfigError> {
        Self::from_yaml_str_with_env(yaml, |name| std::env::var(name).ok())
    }

    /// Reads a YAML configuration file (see [`AuthBuilder::from_yaml_str`]). A file over
    /// 1 MiB is refused (key files named by the config: over 64 KiB), so a path to a device
    /// or a runaway file cannot take the process's memory.
    pub fn from_yaml_file(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let yaml = read_capped(path, MAX_CONFIG_FILE_BYTES).map_err(|e| {
            ConfigError::new(
                "",
                ConfigRule::Io {
                    file: path.display().to_string(),
                    message: e.to_string(),
                },
            )
        })?;
        Self::from_yaml_str(&yaml)
    }

    /// Reads a YAML configuration, taking `${VAR}` values from `env` (for tests, or for a
    /// secret manager).
    pub fn from_yaml_str_with_env(
        yaml: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let mut root: Value = serde_saphyr::from_str(yaml).map_err(|e| {
            let (line, column) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
            ConfigError::new("", ConfigRule::Syntax { line, column })
        })?;
        substitute_env(&mut root, String::new(), &env)?;
        parse_root(&Node::root(&root))
    }
}

impl Auth {
    /// Reads a YAML configuration and builds the [`Auth`] (no extra audit sinks).
    pub fn from_yaml_str(yaml: &str) -> Result<Auth, ConfigError> {
        AuthBuilder::from_yaml_str(yaml)?.build()
    }
}

/// The top-level sections, in the order their errors are reported: `s2s`, then the plugin
/// token keys (`s2s.pluginTokens`, `backend.auth.pluginKeyStore`, `backend.database`), then
/// the rest of `backend.auth`.
fn parse_root(root: &Node<'_>) -> Result<AuthBuilder, ConfigError> {
    if root.value.is_null() {
        return Err(ConfigError::new("s2s.serviceId", ConfigRule::Required));
    }
    root.map()?;
    let s2s = root.required("s2s")?;
    let builder = s2s::parse_s2s(&s2s)?;
    let mut builder = keys::parse_plugin_tokens(root, &s2s, builder)?;
    if builder.service_accounts.is_some() {
        // The accounts live in `backend.database`: the key store's own connection when the
        // plugin keys are kept there too, else a store of their own. Without a database
        // they are kept in memory (lost on restart: fine for trying a config).
        if builder.pending_store.is_some() {
            builder.pending_account_store =
                builder.pending_store.as_ref().map(|(spec, _)| spec.clone());
        } else if root.get_in(&["backend", "database"])?.is_some() {
            builder.pending_account_store = Some(keys::parse_database(root)?);
        }
    }
    match root.get_in(&["backend", "auth"])? {
        Some(auth) => external_access::parse_backend_auth(&auth, builder),
        None => Ok(builder),
    }
}

/// The largest config file read (1 MiB): a real one is a few KiB; a path to a device or a
/// runaway file must not take the process's memory.
pub(crate) const MAX_CONFIG_FILE_BYTES: u64 = 1024 * 1024;

/// The largest key file read (64 KiB): a PEM key is under 4 KiB.
pub(crate) const MAX_KEY_FILE_BYTES: u64 = 64 * 1024;

/// Reads a UTF-8 file of at most `limit` bytes. A longer file (or an endless one, such as
/// `/dev/zero`) is an error after `limit + 1` bytes, never a read to the end.
pub(crate) fn read_capped(path: &Path, limit: u64) -> std::io::Result<String> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(path)?
        .take(limit + 1)
        .read_to_string(&mut text)?;
    if text.len() as u64 > limit {
        return Err(std::io::Error::new(
            std::io::ErrorKind::FileTooLarge,
            format!("larger than {limit} bytes"),
        ));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_endless_config_file_is_refused_not_read_to_the_end() {
        let err = AuthBuilder::from_yaml_file("/dev/zero").unwrap_err();
        assert!(matches!(err.rule(), ConfigRule::Io { .. }), "{err}");
        assert!(
            err.to_string().contains("larger than 1048576 bytes"),
            "{err}"
        );
    }

    #[test]
    fn a_file_at_the_cap_is_read_and_one_byte_over_is_not() {
        let dir = std::env::temp_dir().join(format!("s2s-cap-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("f");
        std::fs::write(&file, "a".repeat(16)).unwrap();
        assert_eq!(read_capped(&file, 16).unwrap().len(), 16);
        let err = read_capped(&file, 15).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::FileTooLarge);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn syntax_errors_do_not_quote_the_input() {
        let err = AuthBuilder::from_yaml_str("s2s: [secret-value-here\n  : : :").unwrap_err();
        assert!(matches!(err.rule(), ConfigRule::Syntax { .. }), "{err}");
        assert_eq!(err.path(), None);
        assert!(!err.to_string().contains("secret-value-here"));
    }
}
