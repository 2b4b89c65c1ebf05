//! The keys this service signs plugin tokens with: `s2s.pluginTokens`,
//! `backend.auth.pluginKeyStore` (`database`, `memory`, or `static` PEM files) and
//! `backend.database`, where the `database` store keeps them.

use std::time::Duration;

use super::node::Node;
use crate::builder::AuthBuilder;
use crate::error::{ConfigError, ConfigRule};
use crate::plugin::{PluginTokens, StaticKey};
use crate::secret::SecretString;
use crate::store::{MemoryStore, StoreSpec};

/// Plugin tokens, if `s2s.pluginTokens` or `backend.auth.pluginKeyStore` asks for them.
pub(super) fn parse_plugin_tokens(
    root: &Node<'_>,
    s2s: &Node<'_>,
    mut builder: AuthBuilder,
) -> Result<AuthBuilder, ConfigError> {
    let plugin_tokens = s2s.get("pluginTokens")?;
    let key_store = root.get_in(&["backend", "auth", "pluginKeyStore"])?;
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
            // Nothing to open: builds with plain build(), no build_async needed.
            "memory" => {
                builder = builder.plugin_tokens(
                    PluginTokens::new(MemoryStore::new()).key_duration(key_duration),
                );
            }
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
    Ok(builder)
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
            super::read_capped(std::path::Path::new(file), super::MAX_KEY_FILE_BYTES).map_err(|e| {
                let why = if e.kind() == std::io::ErrorKind::FileTooLarge {
                    e.to_string()
                } else {
                    e.kind().to_string()
                };
                node.err(ConfigRule::KeyFile(why))
            })
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
pub(super) fn parse_database(root: &Node<'_>) -> Result<StoreSpec, ConfigError> {
    let Some(db) = root.get_in(&["backend", "database"])? else {
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
