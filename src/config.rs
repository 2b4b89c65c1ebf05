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
//!       subjectClaim: sub            # optional; the claim holding the user
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
//!           subjectPrefix: idp                   # optional: external:idp:<sub>
//!           # dangerouslyAllowMissingIssuerOrAudience: true   # the insecure opt-out
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

use std::path::Path;

use http::Method;
use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::auth::Auth;
use crate::builder::AuthBuilder;
use crate::error::{ConfigError, ConfigRule};
use crate::external_jwks::{JwksAccess, UserProvider};
use crate::jwks::JwksCacheConfig;
use crate::legacy::LegacySecret;
use crate::plugin::{PluginTokens, StaticDiscovery, StaticKey};
use crate::policy::{DefaultPolicy, RoutePolicy, RouteSpec};
use crate::principal::CredentialKind;
use crate::restrictions::{AccessRestriction, AccessRestrictions, Action, RestrictionError};
use crate::secret::SecretString;
use crate::static_token::StaticToken;
use crate::store::StoreSpec;
use jsonwebtoken::Algorithm;
use std::time::Duration;

impl AuthBuilder {
    /// Reads a YAML configuration, substituting `${VAR}` from the process environment.
    /// Add audit sinks to the returned builder, then [`build`](AuthBuilder::build) it.
    pub fn from_yaml_str(yaml: &str) -> Result<Self, ConfigError> {
        Self::from_yaml_str_with_env(yaml, |name| std::env::var(name).ok())
    }

    /// Reads a YAML configuration file (see [`AuthBuilder::from_yaml_str`]).
    pub fn from_yaml_file(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let yaml = std::fs::read_to_string(path).map_err(|e| {
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

/// A value and where it is.
struct Node<'a> {
    value: &'a Value,
    path: String,
}

impl<'a> Node<'a> {
    fn root(value: &'a Value) -> Self {
        Node {
            value,
            path: String::new(),
        }
    }

    fn err(&self, rule: ConfigRule) -> ConfigError {
        ConfigError::new(self.display_path(), rule)
    }

    fn display_path(&self) -> String {
        if self.path.is_empty() {
            "<root>".to_owned()
        } else {
            self.path.clone()
        }
    }

    fn map(&self) -> Result<&'a Map<String, Value>, ConfigError> {
        self.value
            .as_object()
            .ok_or_else(|| self.err(ConfigRule::Expected("a mapping")))
    }

    fn key_path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// The child at `key`, if present and not null.
    fn get(&self, key: &str) -> Result<Option<Node<'a>>, ConfigError> {
        Ok(self
            .map()?
            .get(key)
            .filter(|v| !v.is_null())
            .map(|value| Node {
                value,
                path: self.key_path(key),
            }))
    }

    fn required(&self, key: &str) -> Result<Node<'a>, ConfigError> {
        self.get(key)?
            .ok_or_else(|| ConfigError::new(self.key_path(key), ConfigRule::Required))
    }

    /// Refuses keys other than `allowed`.
    fn only_keys(&self, allowed: &[&str]) -> Result<(), ConfigError> {
        for key in self.map()?.keys() {
            if !allowed.contains(&key.as_str()) {
                return Err(ConfigError::new(
                    self.key_path(key),
                    ConfigRule::UnknownKey {
                        expected: allowed.join(", "),
                    },
                ));
            }
        }
        Ok(())
    }

    fn str(&self) -> Result<&'a str, ConfigError> {
        self.value.as_str().ok_or_else(|| {
            self.err(ConfigRule::Expected(
                "a string (quote it if it looks like a number)",
            ))
        })
    }

    /// A whole number (seconds, bytes). Its range is the builder's to check, with the same
    /// rule for YAML and Rust.
    fn whole_number(&self) -> Result<u64, ConfigError> {
        self.value
            .as_u64()
            .ok_or_else(|| self.err(ConfigRule::Expected("a whole number")))
    }

    fn bool(&self) -> Result<bool, ConfigError> {
        self.value
            .as_bool()
            .ok_or_else(|| self.err(ConfigRule::Expected("true or false")))
    }

    fn list(&self) -> Result<Vec<Node<'a>>, ConfigError> {
        let items = self
            .value
            .as_array()
            .ok_or_else(|| self.err(ConfigRule::Expected("a list")))?;
        Ok(items
            .iter()
            .enumerate()
            .map(|(i, value)| Node {
                value,
                path: format!("{}[{i}]", self.path),
            })
            .collect())
    }

    /// A string or a list of strings (Backstage allows both for several options).
    fn str_or_list(&self) -> Result<Vec<(&'a str, String)>, ConfigError> {
        if let Some(s) = self.value.as_str() {
            return Ok(vec![(s, self.path.clone())]);
        }
        let items = self.list()?;
        if items.is_empty() {
            return Err(self.err(ConfigRule::Expected(
                "a string or a non-empty list of strings",
            )));
        }
        items
            .iter()
            .map(|n| Ok((n.str()?, n.path.clone())))
            .collect()
    }
}

fn parse_root(root: &Node<'_>) -> Result<AuthBuilder, ConfigError> {
    if root.value.is_null() {
        return Err(ConfigError::new("s2s.serviceId", ConfigRule::Required));
    }
    root.map()?;
    let s2s = root.required("s2s")?;
    s2s.only_keys(&[
        "serviceId",
        "defaultPolicy",
        "routes",
        "users",
        "jwks",
        "leewaySeconds",
        "discovery",
        "trustedActors",
        "pluginTokens",
    ])?;
    let service_id = s2s.required("serviceId")?;
    let id = service_id.str()?;
    if !crate::service_id::is_valid_service_id(id) {
        return Err(service_id.err(ConfigRule::InvalidServiceId));
    }
    let mut builder = Auth::builder(id);
    if let Some(node) = s2s.get("defaultPolicy")? {
        builder = builder.default_policy(match node.str()? {
            "authenticated" => DefaultPolicy::Authenticated,
            "deny" => DefaultPolicy::Deny,
            _ => {
                return Err(node.err(ConfigRule::UnknownName {
                    what: "default policy",
                    expected: "`authenticated` or `deny`".into(),
                }));
            }
        });
    }
    if let Some(routes) = s2s.get("routes")? {
        for route in routes.list()? {
            builder.routes.push(parse_route(&route)?);
        }
    }
    if let Some(users) = s2s.get("users")? {
        for provider in users.list()? {
            builder = builder.user_provider(parse_user_provider(&provider)?);
        }
    }
    if let Some(jwks) = s2s.get("jwks")? {
        builder.jwks_config = parse_jwks_cache(&jwks)?;
    }
    if let Some(leeway) = s2s.get("leewaySeconds")? {
        builder.leeway_secs = leeway.whole_number()?;
    }
    if let Some(discovery) = s2s.get("discovery")? {
        let mut urls = Vec::new();
        for (id, url) in discovery.map()? {
            let path = discovery.key_path(id);
            if !crate::service_id::is_valid_service_id(id) {
                return Err(ConfigError::new(path, ConfigRule::InvalidServiceId));
            }
            let url = url
                .as_str()
                .filter(|u| u.starts_with("http://") || u.starts_with("https://"))
                .ok_or_else(|| ConfigError::new(&path, ConfigRule::NotHttpUrl))?;
            urls.push((id.clone(), url.to_owned()));
        }
        builder = builder.discovery(StaticDiscovery::new(urls));
    }
    if let Some(actors) = s2s.get("trustedActors")? {
        let mut ids = Vec::new();
        for actor in actors.list()? {
            let id = actor.str()?;
            if !crate::service_id::is_valid_service_id(id) {
                return Err(actor.err(ConfigRule::InvalidServiceId));
            }
            ids.push(id.to_owned());
        }
        builder = builder.trusted_actors(ids);
    }
    let plugin_tokens = s2s.get("pluginTokens")?;
    let key_store = root
        .get("backend")?
        .map(|b| b.get("auth"))
        .transpose()?
        .flatten()
        .map(|a| a.get("pluginKeyStore"))
        .transpose()?
        .flatten();
    if plugin_tokens.is_some() || key_store.is_some() {
        let mut key_duration = Duration::from_secs(3600);
        if let Some(p) = &plugin_tokens {
            p.only_keys(&["keyDurationSeconds"])?;
            if let Some(d) = p.get("keyDurationSeconds")? {
                key_duration = Duration::from_secs(d.whole_number()?);
            }
        }
        let kind = match &key_store {
            Some(ks) => {
                ks.only_keys(&["type", "static"])?;
                match ks.get("type")? {
                    None => "database",
                    Some(t) => match t.str()? {
                        "database" => "database",
                        "memory" => "memory",
                        "static" => "static",
                        _ => {
                            return Err(t.err(ConfigRule::UnknownName {
                                what: "key store type",
                                expected: "`database`, `memory` or `static`".into(),
                            }));
                        }
                    },
                }
            }
            None => "database",
        };
        match kind {
            "memory" => builder.pending_store = Some((StoreSpec::Memory, key_duration)),
            "static" => {
                let ks = key_store.as_ref().ok_or_else(|| {
                    ConfigError::new("backend.auth.pluginKeyStore", ConfigRule::Required)
                })?;
                let keys = parse_static_keys(&ks.required("static")?)?;
                builder = builder
                    .plugin_tokens(PluginTokens::static_keys(keys).key_duration(key_duration));
            }
            _ => builder.pending_store = Some((parse_database(root)?, key_duration)),
        }
    }
    if let Some(auth) = root
        .get("backend")?
        .map(|b| b.get("auth"))
        .transpose()?
        .flatten()
    {
        for key in auth.map()?.keys() {
            if !["externalAccess", "keys", "pluginKeyStore"].contains(&key.as_str()) {
                tracing::warn!(
                    target: "s2s_auth::config",
                    key = %auth.key_path(key),
                    "configuration key is not used by s2s-auth and is ignored"
                );
            }
        }
        if let Some(list) = auth.get("externalAccess")? {
            for entry in list.list()? {
                builder = match parse_external_access(&entry)? {
                    External::Static(t) => builder.static_token(t),
                    External::Jwks(j) => builder.jwks_access(j),
                    External::Legacy(l) => builder.legacy_secret(l),
                };
            }
        }
        if let Some(keys) = auth.get("keys")? {
            tracing::warn!(
                target: "s2s_auth::config",
                "backend.auth.keys is deprecated (as in Backstage): use externalAccess entries of type: legacy"
            );
            for key in keys.list()? {
                key.only_keys(&["secret"])?;
                let secret = key.required("secret")?;
                let mut legacy =
                    LegacySecret::new(SecretString::new(secret.str()?), LEGACY_KEYS_SUBJECT);
                legacy.origin = key.path.clone();
                // Paths for `keys[i]` entries point at `secret`, not at `options.secret`.
                legacy.options_prefix = false;
                builder = builder.legacy_secret(legacy);
            }
        }
    }
    Ok(builder)
}

fn parse_route(node: &Node<'_>) -> Result<RouteSpec, ConfigError> {
    node.only_keys(&[
        "path",
        "methods",
        "unauthenticated",
        "allow",
        "permission",
        "action",
        "sensitive",
        "allowStaticWrites",
    ])?;
    let pattern = node.required("path")?.str()?.to_owned();
    let mut methods = Vec::new();
    if let Some(list) = node.get("methods")? {
        for (name, path) in list.str_or_list()? {
            methods.push(parse_method(name).ok_or_else(|| {
                ConfigError::new(
                    path,
                    ConfigRule::UnknownName {
                        what: "method",
                        expected: "GET, HEAD, POST, PUT, PATCH, DELETE or OPTIONS".into(),
                    },
                )
            })?);
        }
    }
    let flag =
        |key: &str| -> Result<bool, ConfigError> { node.get(key)?.map_or(Ok(false), |n| n.bool()) };
    let mut policy = if flag("unauthenticated")? {
        RoutePolicy::unauthenticated()
    } else {
        RoutePolicy::authenticated()
    };
    if let Some(allow) = node.get("allow")? {
        let mut kinds = Vec::new();
        for item in allow.list()? {
            let name = item.str()?;
            kinds.push(
                CredentialKind::parse(name)
                    .filter(|k| *k != CredentialKind::None)
                    .ok_or_else(|| {
                        item.err(ConfigRule::UnknownName {
                            what: "credential kind",
                            expected:
                                "user, static, jwks, legacy, plugin, obo, service-account or custom"
                                    .into(),
                        })
                    })?,
            );
        }
        policy = policy.allow(kinds);
    }
    if let Some(p) = node.get("permission")? {
        policy = policy.permission(p.str()?);
    }
    if let Some(a) = node.get("action")? {
        policy = policy.action(parse_action(&a, a.str()?)?);
    }
    if flag("sensitive")? {
        policy = policy.sensitive();
    }
    policy = policy.allow_static_writes(flag("allowStaticWrites")?);
    Ok(RouteSpec {
        pattern,
        methods,
        policy,
        origin: node.path.clone(),
        builtin: false,
    })
}

fn parse_method(name: &str) -> Option<Method> {
    [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
        Method::OPTIONS,
    ]
    .into_iter()
    .find(|m| m.as_str() == name)
}

fn parse_action(node: &Node<'_>, name: &str) -> Result<Action, ConfigError> {
    Action::parse(name).ok_or_else(|| {
        ConfigError::new(
            node.path.clone(),
            ConfigRule::UnknownName {
                what: "action",
                expected: "create, read, update or delete".into(),
            },
        )
    })
}

/// `pluginKeyStore.static.keys`: `[{publicKeyFile, privateKeyFile, keyId, algorithm}]`, the
/// files read now (a missing or unreadable file is an error naming its config path).
fn parse_static_keys(node: &Node<'_>) -> Result<Vec<StaticKey>, ConfigError> {
    node.only_keys(&["keys"])?;
    let mut keys = Vec::new();
    for entry in node.required("keys")?.list()? {
        entry.only_keys(&["publicKeyFile", "privateKeyFile", "keyId", "algorithm"])?;
        if let Some(a) = entry.get("algorithm")?
            && a.str()? != "ES256"
        {
            return Err(a.err(ConfigRule::UnknownName {
                what: "algorithm",
                expected: "ES256 (the one plugin tokens use)".into(),
            }));
        }
        let read = |field: &str| -> Result<String, ConfigError> {
            let node = entry.required(field)?;
            let file = node.str()?;
            std::fs::read_to_string(file)
                .map_err(|e| node.err(ConfigRule::KeyFile(e.kind().to_string())))
        };
        let mut key = StaticKey::new(
            entry.required("keyId")?.str()?,
            SecretString::new(read("privateKeyFile")?),
            read("publicKeyFile")?,
        );
        key.origin = entry.path.clone();
        keys.push(key);
    }
    Ok(keys)
}

/// `backend.database` (Backstage's shape): `client: better-sqlite3 | sqlite3 | pg`,
/// `connection`: a file name or `:memory:` for SQLite, a URL for PostgreSQL. Absent: a SQLite
/// file `s2s-auth.sqlite` in the working directory (the embedded default).
fn parse_database(root: &Node<'_>) -> Result<StoreSpec, ConfigError> {
    let Some(db) = root
        .get("backend")?
        .map(|b| b.get("database"))
        .transpose()?
        .flatten()
    else {
        return Ok(StoreSpec::Sqlite(String::from("s2s-auth.sqlite")));
    };
    db.only_keys(&["client", "connection"])?;
    let client = db.required("client")?;
    let connection = db.get("connection")?;
    match client.str()? {
        "better-sqlite3" | "sqlite3" | "sqlite" => {
            let path = match connection {
                Some(c) => c.str()?.to_owned(),
                None => String::from("s2s-auth.sqlite"),
            };
            Ok(StoreSpec::Sqlite(path))
        }
        "pg" | "postgres" | "postgresql" => {
            let c = connection
                .ok_or_else(|| ConfigError::new(db.key_path("connection"), ConfigRule::Required))?;
            let url = c.str()?;
            if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                return Err(c.err(ConfigRule::Expected("a postgres:// URL")));
            }
            Ok(StoreSpec::Postgres(SecretString::new(url)))
        }
        _ => Err(client.err(ConfigRule::UnknownName {
            what: "database client",
            expected: "better-sqlite3 or pg".into(),
        })),
    }
}

/// The subject of callers holding a `backend.auth.keys` secret (Backstage's name for them).
pub const LEGACY_KEYS_SUBJECT: &str = "backstage-plugins";

enum External {
    Static(StaticToken),
    Jwks(JwksAccess),
    Legacy(LegacySecret),
}

fn parse_external_access(entry: &Node<'_>) -> Result<External, ConfigError> {
    entry.only_keys(&["type", "options", "accessRestrictions"])?;
    let kind = entry.required("type")?;
    let restrictions = match entry.get("accessRestrictions")? {
        Some(list) => Some(parse_restrictions(&list)?),
        None => None,
    };
    match kind.str()? {
        "static" => parse_static(entry, restrictions).map(External::Static),
        "jwks" => parse_jwks(entry, restrictions).map(External::Jwks),
        "legacy" => parse_legacy(entry, restrictions).map(External::Legacy),
        _ => Err(kind.err(ConfigRule::UnknownName {
            what: "type",
            expected: "static, jwks or legacy".into(),
        })),
    }
}

fn parse_jwks(
    entry: &Node<'_>,
    restrictions: Option<AccessRestrictions>,
) -> Result<JwksAccess, ConfigError> {
    let options = entry.required("options")?;
    options.only_keys(&[
        "url",
        "issuer",
        "algorithm",
        "audience",
        "subjectPrefix",
        "dangerouslyAllowMissingIssuerOrAudience",
    ])?;
    let mut access = JwksAccess::new(options.required("url")?.str()?);
    access.origin = entry.path.clone();
    if let Some(i) = options.get("issuer")? {
        access = access.issuers(i.str_or_list()?.into_iter().map(|(s, _)| s));
    }
    if let Some(a) = options.get("audience")? {
        access = access.audiences(a.str_or_list()?.into_iter().map(|(s, _)| s));
    }
    if let Some(a) = options.get("algorithm")? {
        access = access.algorithms(parse_algorithms(&a)?);
    }
    if let Some(p) = options.get("subjectPrefix")? {
        let prefix = p.str()?;
        if prefix.is_empty() || prefix.chars().any(|c| c.is_whitespace() || c == ':') {
            return Err(p.err(ConfigRule::InvalidSubjectPrefix));
        }
        access = access.subject_prefix(prefix);
    }
    if let Some(d) = options.get("dangerouslyAllowMissingIssuerOrAudience")?
        && d.bool()?
    {
        access = access.dangerously_allow_missing_issuer_or_audience();
    }
    if let Some(r) = restrictions {
        access = access.restrict(r);
    }
    Ok(access)
}

fn parse_legacy(
    entry: &Node<'_>,
    restrictions: Option<AccessRestrictions>,
) -> Result<LegacySecret, ConfigError> {
    let options = entry.required("options")?;
    options.only_keys(&["secret", "subject"])?;
    let secret = options.required("secret")?.str()?;
    let subject = options.required("subject")?.str()?;
    let mut legacy = LegacySecret::new(SecretString::new(secret), subject);
    legacy.origin = entry.path.clone();
    if let Some(r) = restrictions {
        legacy = legacy.restrict(r);
    }
    Ok(legacy)
}

fn parse_algorithms(node: &Node<'_>) -> Result<Vec<Algorithm>, ConfigError> {
    node.str_or_list()?
        .into_iter()
        .map(|(name, path)| {
            name.parse::<Algorithm>().map_err(|_| {
                ConfigError::new(
                    path,
                    ConfigRule::UnknownName {
                        what: "algorithm",
                        expected: "RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384 or EdDSA"
                            .into(),
                    },
                )
            })
        })
        .collect()
}

fn parse_user_provider(node: &Node<'_>) -> Result<UserProvider, ConfigError> {
    node.only_keys(&[
        "type",
        "issuer",
        "jwksUrl",
        "audience",
        "algorithm",
        "subjectClaim",
    ])?;
    let issuer = node.required("issuer")?.str()?;
    let mut provider = match node.get("type")? {
        None => UserProvider::oidc(issuer),
        Some(t) => match t.str()? {
            "oidc" => UserProvider::oidc(issuer),
            "backstage" => UserProvider::backstage(issuer),
            _ => {
                return Err(t.err(ConfigRule::UnknownName {
                    what: "type",
                    expected: "oidc or backstage".into(),
                }));
            }
        },
    };
    provider.origin = node.path.clone();
    if let Some(u) = node.get("jwksUrl")? {
        provider = provider.jwks_url(u.str()?);
    }
    if let Some(a) = node.get("audience")? {
        provider = provider.audiences(a.str_or_list()?.into_iter().map(|(s, _)| s));
    }
    if let Some(a) = node.get("algorithm")? {
        provider = provider.algorithms(parse_algorithms(&a)?);
    }
    if let Some(c) = node.get("subjectClaim")? {
        provider = provider.subject_claim(c.str()?);
    }
    Ok(provider)
}

fn parse_jwks_cache(node: &Node<'_>) -> Result<JwksCacheConfig, ConfigError> {
    node.only_keys(&[
        "refreshSeconds",
        "unknownKidCooldownSeconds",
        "maxStaleSeconds",
        "fetchTimeoutSeconds",
        "maxBodyBytes",
    ])?;
    let mut c = JwksCacheConfig::default();
    if let Some(n) = node.get("refreshSeconds")? {
        c.refresh_interval = Duration::from_secs(n.whole_number()?);
    }
    if let Some(n) = node.get("unknownKidCooldownSeconds")? {
        c.unknown_kid_cooldown = Duration::from_secs(n.whole_number()?);
    }
    if let Some(n) = node.get("maxStaleSeconds")? {
        c.max_stale = Duration::from_secs(n.whole_number()?);
    }
    if let Some(n) = node.get("fetchTimeoutSeconds")? {
        c.fetch_timeout = Duration::from_secs(n.whole_number()?);
    }
    if let Some(n) = node.get("maxBodyBytes")? {
        // Saturates: a value too big for this machine fails the builder's range check.
        c.max_body_bytes = usize::try_from(n.whole_number()?).unwrap_or(usize::MAX);
    }
    Ok(c)
}

fn parse_static(
    entry: &Node<'_>,
    restrictions: Option<AccessRestrictions>,
) -> Result<StaticToken, ConfigError> {
    let options = entry.required("options")?;
    options.only_keys(&[
        "token",
        "tokenSha256",
        "subject",
        "expiresAt",
        "allowWrites",
    ])?;
    let subject = options.required("subject")?.str()?;
    let mut token = match (options.get("token")?, options.get("tokenSha256")?) {
        (Some(t), None) => StaticToken::new(subject, SecretString::new(t.str()?)),
        (None, Some(h)) => StaticToken::from_sha256_hex(subject, h.str()?),
        (Some(_), Some(_)) => {
            return Err(options.err(ConfigRule::Exclusive("token or tokenSha256")));
        }
        (None, None) => {
            return Err(ConfigError::new(
                options.key_path("token"),
                ConfigRule::Required,
            ));
        }
    };
    token.origin = entry.path.clone();
    if let Some(at) = options.get("expiresAt")? {
        let when = OffsetDateTime::parse(at.str()?, &Rfc3339).map_err(|_| {
            at.err(ConfigRule::Expected(
                "an RFC 3339 time, like 2027-01-31T00:00:00Z",
            ))
        })?;
        token = token.expires_at(when);
    }
    if let Some(w) = options.get("allowWrites")? {
        token = token.allow_writes(w.bool()?);
    }
    if let Some(r) = restrictions {
        token = token.restrict(r);
    }
    Ok(token)
}

fn parse_restrictions(list: &Node<'_>) -> Result<AccessRestrictions, ConfigError> {
    let items = list.list()?;
    let mut restrictions = Vec::new();
    for item in &items {
        item.only_keys(&["plugin", "permission", "permissionAttribute"])?;
        let mut r = AccessRestriction::plugin(item.required("plugin")?.str()?);
        if let Some(p) = item.get("permission")? {
            r = r.permissions(p.str_or_list()?.into_iter().map(|(s, _)| s));
        }
        if let Some(attr) = item.get("permissionAttribute")? {
            attr.only_keys(&["action"])?;
            let action = attr.required("action")?;
            let mut actions = Vec::new();
            for (name, path) in action.str_or_list()? {
                actions.push(Action::parse(name).ok_or_else(|| {
                    ConfigError::new(
                        path,
                        ConfigRule::UnknownName {
                            what: "action",
                            expected: "create, read, update or delete".into(),
                        },
                    )
                })?);
            }
            r = r.actions(actions);
        }
        restrictions.push(r);
    }
    AccessRestrictions::new(restrictions).map_err(|e| {
        let at = |i: usize| format!("{}[{i}].plugin", list.path);
        let find = |p: &str| {
            items
                .iter()
                .enumerate()
                .filter(|(_, n)| {
                    n.get("plugin")
                        .ok()
                        .flatten()
                        .and_then(|n| n.value.as_str())
                        == Some(p)
                })
                .map(|(i, _)| i)
                .next_back()
                .unwrap_or(0)
        };
        match &e {
            RestrictionError::DuplicatePlugin(p) | RestrictionError::InvalidPlugin(p) => {
                ConfigError::new(at(find(p)), ConfigRule::Restriction(e))
            }
            RestrictionError::EmptyList(p) => ConfigError::new(
                format!("{}[{}]", list.path, find(p)),
                ConfigRule::Restriction(e),
            ),
            _ => ConfigError::new(list.path.clone(), ConfigRule::Restriction(e)),
        }
    })
}

/// Replaces `${NAME}` in every string, depth first, keeping track of the path.
fn substitute_env(
    value: &mut Value,
    path: String,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(), ConfigError> {
    match value {
        Value::String(s) if s.contains('$') => {
            *s = expand(s, &path, env)?;
        }
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                substitute_env(item, format!("{path}[{i}]"), env)?;
            }
        }
        Value::Object(map) => {
            for (key, item) in map.iter_mut() {
                let child = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                substitute_env(item, child, env)?;
            }
        }
        _ => {}
    }
    Ok(())
}

fn expand(
    s: &str,
    path: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, ConfigError> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i..];
        if let Some(tail) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = tail;
        } else if let Some(tail) = after.strip_prefix("${") {
            let end = tail
                .find('}')
                .ok_or_else(|| ConfigError::new(path, ConfigRule::UnclosedEnv))?;
            let name = &tail[..end];
            let valid = !name.is_empty()
                && !name.starts_with(|c: char| c.is_ascii_digit())
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !valid {
                return Err(ConfigError::new(path, ConfigRule::BadEnvName));
            }
            let value = env(name).ok_or_else(|| {
                ConfigError::new(
                    path,
                    ConfigRule::MissingEnv {
                        var: name.to_owned(),
                    },
                )
            })?;
            out.push_str(&value);
            rest = &tail[end + 1..];
        } else {
            out.push('$');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        (name == "CI_TOKEN").then(|| "from-the-environment".to_owned())
    }

    #[test]
    fn expands_env() {
        assert_eq!(
            expand("a${CI_TOKEN}b", "p", &env).unwrap(),
            "afrom-the-environmentb"
        );
        assert_eq!(
            expand("$${CI_TOKEN} $5", "p", &env).unwrap(),
            "${CI_TOKEN} $5"
        );
        let err = expand("${NOPE}", "x.y", &env).unwrap_err();
        assert_eq!(err.path(), Some("x.y"));
        assert!(matches!(err.rule(), ConfigRule::MissingEnv { var } if var == "NOPE"));
        let rule = |s: &str| expand(s, "p", &env).unwrap_err().rule().clone();
        assert_eq!(rule("${"), ConfigRule::UnclosedEnv);
        assert_eq!(rule("${A-B}"), ConfigRule::BadEnvName);
    }

    #[test]
    fn syntax_errors_do_not_quote_the_input() {
        let err = AuthBuilder::from_yaml_str("s2s: [secret-value-here\n  : : :").unwrap_err();
        assert!(matches!(err.rule(), ConfigRule::Syntax { .. }), "{err}");
        assert_eq!(err.path(), None);
        assert!(!err.to_string().contains("secret-value-here"));
    }
}
