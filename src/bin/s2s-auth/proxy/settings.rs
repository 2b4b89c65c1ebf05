//! The sidecar's own settings: the top-level `proxy:` section of the config file.
//!
//! ```yaml
//! proxy:
//!   upstream: http://127.0.0.1:3000   # the --upstream flag wins
//!   upstreamTimeoutSeconds: 30        # the --upstream-timeout flag wins
//!   passAuthorization: false
//! ```
//!
//! The library reads `s2s` and `backend` and ignores other top-level keys, so this section
//! is read here, strictly: an unknown key is an error, not a default. A misspelt
//! `pasAuthorization: false` is harmless, but a misspelt key in a later, riskier setting
//! must never be silently dropped; the rule holds for every key from the start.

use std::time::Duration;

use http::Uri;
use serde_json::Value;

/// The keys `proxy:` may hold, in the order the error message lists them.
const KEYS: [&str; 3] = ["passAuthorization", "upstream", "upstreamTimeoutSeconds"];

/// The default for `upstreamTimeoutSeconds`.
pub(crate) const DEFAULT_TIMEOUT_SECONDS: u64 = 30;

/// The longest `upstreamTimeoutSeconds` (a day): a larger value is a typo, and a request
/// held open longer pins its connection for nothing.
const MAX_TIMEOUT_SECONDS: u64 = 86_400;

/// The `proxy:` section, with its defaults applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Settings {
    /// Whether the client's `Authorization` header reaches the upstream. Default `false`:
    /// the upstream gets the verified principal in `X-Auth-*` headers, and a bearer token it
    /// never sees cannot leak from its logs or be replayed by it. Turn it on only for an
    /// upstream that must call on with the caller's own credential.
    pub(crate) pass_authorization: bool,
    /// How long the upstream may take to send its response headers (default 30 s).
    pub(crate) upstream_timeout: Duration,
    /// Where to forward, if the config names it (`--upstream` wins).
    pub(crate) upstream: Option<Upstream>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            pass_authorization: false,
            upstream_timeout: Duration::from_secs(DEFAULT_TIMEOUT_SECONDS),
            upstream: None,
        }
    }
}

/// An `http://host:port[/base]` upstream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Upstream {
    /// `http://host:port`, as given.
    scheme_authority: String,
    /// The base path without its trailing `/` (empty for none): `/base` + `/entities`.
    base_path: String,
}

impl Upstream {
    /// Parses an upstream URL. Only `http://` is supported: the sidecar runs beside its
    /// service (loopback or a pod's network), and TLS to the upstream is not built.
    pub(crate) fn parse(url: &str) -> Result<Self, String> {
        let uri: Uri = url
            .parse()
            .map_err(|_| format!("`{url}` is not a URL (expected http://HOST:PORT)"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") => {
                return Err(format!(
                    "`{url}`: https upstreams are not supported; run the sidecar beside \
                     the service and give its plain http:// address"
                ));
            }
            _ => return Err(format!("`{url}`: expected an http:// URL")),
        }
        let Some(authority) = uri.authority() else {
            return Err(format!("`{url}`: expected http://HOST:PORT"));
        };
        if authority.as_str().contains('@') {
            return Err(format!(
                "`{url}`: credentials in the upstream URL are not supported"
            ));
        }
        if uri.query().is_some() {
            return Err(format!("`{url}`: an upstream URL takes no query"));
        }
        Ok(Self {
            scheme_authority: format!("http://{authority}"),
            base_path: uri.path().trim_end_matches('/').to_owned(),
        })
    }

    /// The upstream URI for a request's path and query.
    pub(crate) fn join(&self, path_and_query: &str) -> Result<Uri, http::Error> {
        let uri = format!(
            "{}{}{}",
            self.scheme_authority, self.base_path, path_and_query
        );
        Ok(Uri::try_from(uri)?)
    }
}

impl std::fmt::Display for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}", self.scheme_authority, self.base_path)
    }
}

/// Reads the `proxy:` section of a config file (the rest of the file is the library's).
/// No section, or `proxy:` with nothing under it, gives the defaults. Errors name the
/// value's path: `proxy.passAuthorization: expected true or false`.
pub(crate) fn settings_from_yaml(yaml: &str) -> Result<Settings, String> {
    // The library reports syntax errors with their line; this only needs the tree.
    let root: Value = serde_saphyr::from_str(yaml)
        .map_err(|_| String::from("the config is not valid YAML (see `s2s-auth check`)"))?;
    let Some(section) = root.get("proxy") else {
        return Ok(Settings::default());
    };
    let map = match section {
        Value::Null => return Ok(Settings::default()),
        Value::Object(map) => map,
        _ => return Err(String::from("proxy: expected a mapping")),
    };
    let mut settings = Settings::default();
    for (key, value) in map {
        let path = format!("proxy.{key}");
        match key.as_str() {
            "passAuthorization" => {
                settings.pass_authorization = value
                    .as_bool()
                    .ok_or_else(|| format!("{path}: expected true or false"))?;
            }
            "upstreamTimeoutSeconds" => {
                let seconds = value
                    .as_u64()
                    .filter(|s| (1..=MAX_TIMEOUT_SECONDS).contains(s))
                    .ok_or_else(|| {
                        format!(
                            "{path}: expected a whole number of seconds, 1 to {MAX_TIMEOUT_SECONDS}"
                        )
                    })?;
                settings.upstream_timeout = Duration::from_secs(seconds);
            }
            "upstream" => {
                let url = value
                    .as_str()
                    .ok_or_else(|| format!("{path}: expected an http:// URL"))?;
                if url.contains("${") {
                    // The library substitutes `${VAR}` in its own sections only.
                    return Err(format!(
                        "{path}: `${{VAR}}` is not substituted here; give --upstream instead"
                    ));
                }
                settings.upstream = Some(Upstream::parse(url).map_err(|e| format!("{path}: {e}"))?);
            }
            _ => {
                return Err(format!("{path}: unknown key (known: {})", KEYS.join(", ")));
            }
        }
    }
    Ok(settings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_section_gives_the_defaults() {
        let settings = settings_from_yaml("s2s: { serviceId: catalog }").unwrap();
        assert_eq!(settings, Settings::default());
        assert!(!settings.pass_authorization);
        assert_eq!(settings.upstream_timeout, Duration::from_secs(30));
        let empty = settings_from_yaml("s2s: { serviceId: catalog }\nproxy:\n").unwrap();
        assert_eq!(empty, Settings::default());
    }

    #[test]
    fn reads_every_key() {
        let settings = settings_from_yaml(
            "proxy:\n  passAuthorization: true\n  upstreamTimeoutSeconds: 5\n  upstream: http://127.0.0.1:3000/base/\n",
        )
        .unwrap();
        assert!(settings.pass_authorization);
        assert_eq!(settings.upstream_timeout, Duration::from_secs(5));
        let upstream = settings.upstream.unwrap();
        assert_eq!(upstream.to_string(), "http://127.0.0.1:3000/base");
        assert_eq!(
            upstream.join("/a?b=c").unwrap().to_string(),
            "http://127.0.0.1:3000/base/a?b=c"
        );
    }

    #[test]
    fn refuses_a_misspelt_key_with_its_path() {
        let err = settings_from_yaml("proxy:\n  alowWrites: true\n").unwrap_err();
        assert!(err.starts_with("proxy.alowWrites: unknown key"), "{err}");
    }

    #[test]
    fn refuses_a_non_boolean_pass_authorization() {
        let err = settings_from_yaml("proxy:\n  passAuthorization: \"yes\"\n").unwrap_err();
        assert_eq!(err, "proxy.passAuthorization: expected true or false");
    }

    #[test]
    fn refuses_a_zero_timeout_and_https_upstreams() {
        let err = settings_from_yaml("proxy:\n  upstreamTimeoutSeconds: 0\n").unwrap_err();
        assert!(err.starts_with("proxy.upstreamTimeoutSeconds:"), "{err}");
        let err = settings_from_yaml("proxy:\n  upstream: https://x:1\n").unwrap_err();
        assert!(
            err.starts_with("proxy.upstream:") && err.contains("https"),
            "{err}"
        );
        let err = settings_from_yaml("proxy: [1]\n").unwrap_err();
        assert_eq!(err, "proxy: expected a mapping");
    }
}
