//! `--store URL` (or `S2S_STORE`): which store the `accounts` and `obo` subcommands change,
//! opened (and migrated) exactly as a service opens it.
//!
//! A PostgreSQL URL may hold a password: it is never printed. [`StoreUrl`]'s `Display` is
//! the URL with the password (and any `password=` parameter) replaced by `***`, and every
//! message about the store is scrubbed of the password's text as well, whatever the
//! database driver put in it.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use s2s_auth::store::{PostgresStore, SqliteStore, Store, StoreError};

use crate::Fail;

/// The environment variable read when `--store` is not given.
pub(crate) const ENV: &str = "S2S_STORE";

/// The accepted forms, for the usage error and `--help`.
pub(crate) const FORMS: &str =
    "sqlite://PATH (or sqlite:PATH), postgres://USER:PASSWORD@HOST:PORT/DB (or postgresql://...)";

/// How long opening the store may take before the command gives up (a firewall that drops
/// packets would otherwise hold it for the driver's own, much longer, timeouts).
const OPEN_TIMEOUT: Duration = Duration::from_secs(20);

/// A parsed `--store` value.
pub(crate) enum StoreUrl {
    /// A SQLite file (or `:memory:`, which forgets everything when the command ends).
    Sqlite(String),
    /// A PostgreSQL URL, password and all: shown only through [`redact`].
    Postgres(String),
}

/// The `--store URL` option, one definition for every subcommand that writes a store
/// (flattened into their arguments).
#[derive(Debug, clap::Args)]
pub(crate) struct StoreArg {
    /// The store: sqlite://PATH (or sqlite:PATH), postgres://... or postgresql://...
    /// [default: $S2S_STORE]. The URL's password is never printed.
    #[arg(long, global = true, value_name = "URL")]
    store: Option<String>,
}

impl StoreArg {
    /// The store named by `--store`, or by `S2S_STORE` when it is absent.
    pub(crate) fn url(&self) -> Result<StoreUrl, Fail> {
        StoreUrl::from_arg(self.store.as_deref())
    }
}

impl StoreUrl {
    /// Reads `--store`, or `S2S_STORE` when it is absent.
    fn from_arg(arg: Option<&str>) -> Result<Self, Fail> {
        let from_env;
        let url = match arg {
            Some(url) => url,
            None => {
                from_env = std::env::var(ENV).map_err(|_| {
                    Fail::Usage(format!("give the store with --store URL or {ENV}: {FORMS}"))
                })?;
                from_env.as_str()
            }
        };
        Self::parse(url)
    }

    /// Reads one URL: a bad scheme is a usage error naming the accepted forms.
    pub(crate) fn parse(url: &str) -> Result<Self, Fail> {
        let url = url.trim();
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(StoreUrl::Postgres(url.to_owned()));
        }
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .ok_or_else(|| {
                Fail::Usage(format!(
                    "--store `{}` is not a store URL; expected {FORMS}",
                    redact(url)
                ))
            })?;
        if path.is_empty() || path.chars().any(char::is_control) {
            return Err(Fail::Usage(format!(
                "--store `{}` names no SQLite file; expected {FORMS}",
                redact(url)
            )));
        }
        Ok(StoreUrl::Sqlite(path.to_owned()))
    }

    /// Opens the store and runs its migrations, as a service does. Failing to reach it is
    /// a runtime error (exit 1); the message never holds the password.
    pub(crate) async fn open(&self) -> Result<Arc<dyn Store>, Fail> {
        // SQLite creates a missing file: a typo in the path would look like an empty store
        // (no accounts, nothing revoked) and the change would land where no service reads.
        if let StoreUrl::Sqlite(path) = self
            && path != ":memory:"
            && !std::path::Path::new(path).exists()
        {
            return Err(Fail::Runtime(format!(
                "no SQLite database at {path}: check the path (the service creates the file when \
                 it first starts; `touch {path}` makes an empty one this command will set up)"
            )));
        }
        let opening = async {
            Ok::<Arc<dyn Store>, StoreError>(match self {
                StoreUrl::Sqlite(path) => Arc::new(SqliteStore::open(path).await?),
                StoreUrl::Postgres(url) => Arc::new(PostgresStore::connect(url).await?),
            })
        };
        match tokio::time::timeout(OPEN_TIMEOUT, opening).await {
            Ok(Ok(store)) => Ok(store),
            Ok(Err(StoreError::Invalid(e))) => Err(Fail::Usage(
                self.scrub(format!("cannot open the store {self}: {e}")),
            )),
            Ok(Err(e)) => Err(Fail::Runtime(
                self.scrub(format!("cannot open the store {self}: {e}")),
            )),
            Err(_) => Err(Fail::Runtime(format!(
                "cannot open the store {self}: no answer within {} s",
                OPEN_TIMEOUT.as_secs()
            ))),
        }
    }

    /// Removes the password's text from a message (a driver may quote the URL, or parts of
    /// it, in its errors).
    pub(crate) fn scrub(&self, message: String) -> String {
        match self {
            StoreUrl::Sqlite(_) => message,
            StoreUrl::Postgres(url) => passwords(url)
                .into_iter()
                .filter(|p| !p.is_empty())
                .fold(message, |m, p| m.replace(&p, "***")),
        }
    }
}

impl fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreUrl::Sqlite(path) => write!(f, "sqlite://{path}"),
            StoreUrl::Postgres(url) => f.write_str(&redact(url)),
        }
    }
}

/// The URL with the password of its user info and any `password=` parameter replaced by
/// `***`.
pub(crate) fn redact(url: &str) -> String {
    let mut shown = String::with_capacity(url.len());
    let rest = match url.split_once("://") {
        Some((scheme, rest)) => {
            shown.push_str(scheme);
            shown.push_str("://");
            rest
        }
        None => url,
    };
    // The user info ends at the last `@` before the path (a password may hold `@`).
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            match userinfo.split_once(':') {
                Some((user, _)) => {
                    shown.push_str(user);
                    shown.push_str(":***");
                }
                None => shown.push_str(userinfo),
            }
            shown.push('@');
            shown.push_str(host);
        }
        None => shown.push_str(authority),
    }
    match tail.split_once('?') {
        Some((path, query)) => {
            shown.push_str(path);
            shown.push('?');
            let params: Vec<String> = query
                .split('&')
                .map(|param| match param.split_once('=') {
                    Some((key, _)) if key.eq_ignore_ascii_case("password") => {
                        format!("{key}=***")
                    }
                    _ => param.to_owned(),
                })
                .collect();
            shown.push_str(&params.join("&"));
        }
        None => shown.push_str(tail),
    }
    shown
}

/// Every form of the URL's password a message might quote: as written, and decoded.
fn passwords(url: &str) -> Vec<String> {
    let mut found = Vec::new();
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    if let Some((userinfo, _)) = authority.rsplit_once('@')
        && let Some((_, password)) = userinfo.split_once(':')
    {
        found.push(password.to_owned());
    }
    if let Some((_, query)) = rest.split_once('?') {
        for param in query.split('&') {
            if let Some((key, value)) = param.split_once('=')
                && key.eq_ignore_ascii_case("password")
            {
                found.push(value.to_owned());
            }
        }
    }
    let decoded: Vec<String> = found.iter().filter_map(|p| percent_decode(p)).collect();
    found.extend(decoded);
    found
}

/// `%XX` decoded, when that changes anything and gives UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    if !text.contains('%') {
        return None;
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                let value = hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0);
                out.push(u8::try_from(value).unwrap_or(b'?'));
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_never_shown() {
        for (url, shown) in [
            (
                "postgres://app:hunter2@db:5432/s2s",
                "postgres://app:***@db:5432/s2s",
            ),
            (
                "postgresql://app:p%40ss@db/s2s?sslmode=require&password=x",
                "postgresql://app:***@db/s2s?sslmode=require&password=***",
            ),
            ("postgres://app@db/s2s", "postgres://app@db/s2s"),
            ("postgres://a:b@c@db/s2s", "postgres://a:***@db/s2s"),
            ("sqlite:///var/lib/s2s.db", "sqlite:///var/lib/s2s.db"),
        ] {
            assert_eq!(redact(url), shown);
        }
        let url = StoreUrl::parse("postgres://app:p%40ss@db/s2s").unwrap_or_else(|_| {
            unreachable!("a postgres URL parses");
        });
        assert_eq!(
            url.scrub("auth failed for p@ss and p%40ss".into()),
            "auth failed for *** and ***"
        );
    }

    #[test]
    fn schemes_are_checked() {
        assert!(
            matches!(StoreUrl::parse("sqlite:///tmp/x.db"), Ok(StoreUrl::Sqlite(p)) if p == "/tmp/x.db")
        );
        assert!(matches!(StoreUrl::parse("sqlite:x.db"), Ok(StoreUrl::Sqlite(p)) if p == "x.db"));
        for bad in [
            "mysql://u:secret@db/x",
            "/tmp/x.db",
            "sqlite://",
            "http://x",
        ] {
            match StoreUrl::parse(bad) {
                Err(Fail::Usage(m)) => assert!(!m.contains("secret"), "{m}"),
                _ => panic!("{bad} should be refused"),
            }
        }
    }
}
