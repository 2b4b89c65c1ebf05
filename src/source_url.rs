//! Key sources over https (DESIGN.md section 7): a JWKS URL, or an issuer whose discovery
//! document names one, decides which keys sign valid tokens. Fetched over plain http, anyone
//! on the network path can swap the keys and sign any token. So key sources must be `https`,
//! except loopback addresses (the traffic never leaves the host: `127.0.0.0/8`, `::1`,
//! `localhost`) or an entry that says `dangerouslyAllowHttp: true`.
//!
//! The host is read by the same URL parser the HTTP client uses (WHATWG), so
//! `http://127.0.0.1@evil.example/` is seen as the request to `evil.example` it is.

use std::net::{Ipv4Addr, Ipv6Addr};

use reqwest::Url;

use crate::error::ConfigRule;

/// Whether `url` may be a key source: an http(s) URL with a host, `https` unless its host is
/// loopback or `allow_http` is set.
pub(crate) fn check(url: &str, allow_http: bool) -> Result<(), ConfigRule> {
    let parsed = Url::parse(url).map_err(|_| ConfigRule::NotHttpUrl)?;
    if parsed.host().is_none() {
        return Err(ConfigRule::NotHttpUrl);
    }
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if allow_http || is_loopback(&parsed) => Ok(()),
        "http" => Err(ConfigRule::HttpKeySource),
        _ => Err(ConfigRule::NotHttpUrl),
    }
}

/// The parser has normalised the host: a lower-case domain, a dotted IPv4 address (also
/// for forms like `0x7f.1`), or an IPv6 address in brackets.
fn is_loopback(url: &Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return v6.parse::<Ipv6Addr>().is_ok_and(|ip| ip.is_loopback());
    }
    host == "localhost" || host.parse::<Ipv4Addr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_or_loopback() {
        for ok in [
            "https://idp.example.com/jwks",
            "http://127.0.0.1:8080/jwks",
            "http://127.9.9.9/jwks",
            "http://[::1]:1/jwks",
            "http://localhost/jwks",
            "http://LOCALHOST:80/jwks",
        ] {
            assert_eq!(check(ok, false), Ok(()), "{ok}");
        }
        for http in [
            "http://idp.example.com/jwks",
            "http://127.0.0.1@evil.example/jwks",
            "http://10.0.0.1/jwks",
            "http://localhost.evil.example/jwks",
            "http://[::ffff:8.8.8.8]/jwks",
        ] {
            assert_eq!(check(http, false), Err(ConfigRule::HttpKeySource), "{http}");
            assert_eq!(check(http, true), Ok(()), "{http}");
        }
        for bad in [
            "idp.example.com/jwks",
            "ftp://idp/jwks",
            "file:///etc/jwks",
            "",
        ] {
            assert_eq!(check(bad, true), Err(ConfigRule::NotHttpUrl), "{bad}");
        }
    }
}
