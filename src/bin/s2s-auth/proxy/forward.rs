//! The forwarder: what an allowed request becomes on its way to the upstream, and what the
//! upstream's response becomes on its way back.
//!
//! Request headers, in this order:
//!
//! 1. Hop-by-hop headers are dropped (RFC 9110 section 7.6.1): `Connection` and every
//!    header it names, `Keep-Alive`, `TE`, `Trailer`, `Transfer-Encoding`, `Upgrade`, every
//!    `Proxy-*`, and `Expect` (this proxy already answered it). The body's framing is
//!    rebuilt by the client: `Content-Length` when the client sent one, chunked otherwise.
//! 2. Every `X-Auth-*` header is dropped, whatever its case or name (and `X_Auth_*`, which
//!    CGI-style servers read as the same name): those names are the proxy's, and an
//!    upstream that trusts `X-Auth-Subject` must only ever see the proxy's.
//! 3. `Authorization` is dropped unless `proxy.passAuthorization: true`.
//! 4. `Host` becomes the upstream's; the client's goes to `X-Forwarded-Host`. The peer's
//!    address is appended to `X-Forwarded-For` (the last entry is the one this proxy saw;
//!    earlier ones are the client's claims). `X-Forwarded-Proto: http` (this listener
//!    speaks plain HTTP). `Via: 1.1 s2s-auth` is appended (RFC 9110 section 7.6.3).
//! 5. The verified principal, when there is one (see [`principal_headers`]).
//!
//! Response headers: the same hop-by-hop set is dropped and `Via` appended; everything
//! else, and the body, passes as the upstream sent it. Both bodies are streamed, frame by
//! frame, with hyper's back-pressure: memory does not grow with their size.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::response::{IntoResponse, Response};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{StatusCode, Version};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use s2s_auth::{CredentialKind, Principal};

use super::settings::Upstream;

/// The headers the proxy sets for the upstream; every client header starting with
/// `x-auth-` is removed first.
pub(crate) const SUBJECT: &str = "x-auth-subject";
pub(crate) const KIND: &str = "x-auth-kind";
pub(crate) const ACTOR: &str = "x-auth-actor";
pub(crate) const RESTRICTIONS: &str = "x-auth-restrictions";

/// How long an idle upstream connection is kept for the next request.
const POOL_IDLE: Duration = Duration::from_secs(60);

/// The connection pool to the upstream, shared by every config generation (a reload
/// swaps policies, not sockets).
pub(crate) type UpstreamClient = Client<HttpConnector, Body>;

/// A client for plain-http upstreams, with Nagle off (small requests and responses are
/// the common case, and waiting to coalesce them costs a round trip).
pub(crate) fn client(connect_timeout: Duration) -> UpstreamClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(connect_timeout));
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(POOL_IDLE)
        .build(connector)
}

/// Forwards allowed requests to one upstream with one config's settings.
pub(crate) struct Forwarder {
    pub(crate) client: UpstreamClient,
    pub(crate) upstream: Upstream,
    pub(crate) pass_authorization: bool,
    pub(crate) timeout: Duration,
}

impl Forwarder {
    /// Sends `request` (already allowed by the layer) upstream and streams the answer back:
    /// 502 when the upstream cannot be reached or fails, 504 when its response headers take
    /// longer than the timeout.
    pub(crate) async fn forward(self: Arc<Self>, request: Request) -> Response {
        let (mut parts, body) = request.into_parts();
        let path_and_query = parts
            .uri
            .path_and_query()
            .map_or("/", |pq| pq.as_str())
            .to_owned();
        let Ok(uri) = self.upstream.join(&path_and_query) else {
            return error(
                StatusCode::BAD_REQUEST,
                "InputError",
                "invalid request target",
                &parts.method,
                &parts.uri,
            );
        };
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| *addr);
        let original_host = parts.headers.get(header::HOST).cloned().or_else(|| {
            parts
                .uri
                .authority()
                .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        });
        let principal = parts.extensions.get::<Principal>();
        let mut headers = std::mem::take(&mut parts.headers);
        strip_request_headers(&mut headers, self.pass_authorization);
        add_forwarded_headers(&mut headers, peer, original_host);
        if let Some(principal) = principal {
            match principal_headers(principal) {
                Ok(set) => headers.extend(set),
                Err(()) => {
                    return error(
                        StatusCode::FORBIDDEN,
                        "NotAllowedError",
                        "the verified caller cannot be expressed in headers",
                        &parts.method,
                        &parts.uri,
                    );
                }
            }
        }

        let mut upstream_request = http::Request::new(body);
        *upstream_request.method_mut() = parts.method.clone();
        *upstream_request.uri_mut() = uri;
        *upstream_request.version_mut() = Version::HTTP_11;
        *upstream_request.headers_mut() = headers;

        let sent = tokio::time::timeout(self.timeout, self.client.request(upstream_request)).await;
        match sent {
            Ok(Ok(response)) => {
                let (mut parts, incoming) = response.into_parts();
                strip_hop_by_hop(&mut parts.headers);
                parts
                    .headers
                    .append(header::VIA, HeaderValue::from_static(VIA));
                Response::from_parts(parts, Body::new(incoming))
            }
            Ok(Err(err)) => {
                log_upstream_error(502, &err);
                error(
                    StatusCode::BAD_GATEWAY,
                    "BadGatewayError",
                    "upstream unavailable",
                    &parts.method,
                    &parts.uri,
                )
            }
            Err(_elapsed) => {
                log_upstream_error(504, &"no response headers within the upstream timeout");
                error(
                    StatusCode::GATEWAY_TIMEOUT,
                    "GatewayTimeoutError",
                    "upstream timeout",
                    &parts.method,
                    &parts.uri,
                )
            }
        }
    }
}

const VIA: &str = "1.1 s2s-auth";

/// The hop-by-hop headers of RFC 9110 section 7.6.1 (and the older `Keep-Alive` and
/// `Proxy-Connection`), dropped in both directions.
const HOP_BY_HOP: [HeaderName; 6] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Drops `Connection`, the headers it names, the fixed hop-by-hop set and `Proxy-*`.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
    remove_prefixed(headers, "proxy-");
}

/// Removes every header whose (lower-case) name starts with `prefix`, reading `_` as `-`:
/// CGI-style servers (WSGI, Rack, PHP) turn `X_Auth_Subject` and `X-Auth-Subject` into the
/// same `HTTP_X_AUTH_SUBJECT`, so an underscore spelling would otherwise pass as ours.
fn remove_prefixed(headers: &mut HeaderMap, prefix: &str) {
    let names: Vec<HeaderName> = headers
        .keys()
        .filter(|name| {
            let name = name.as_str().as_bytes();
            name.len() >= prefix.len()
                && name
                    .iter()
                    .zip(prefix.as_bytes())
                    .all(|(&n, &p)| n == p || (n == b'_' && p == b'-'))
        })
        .cloned()
        .collect();
    for name in names {
        headers.remove(name);
    }
}

/// Steps 1 to 3 of the module doc: hop-by-hop, `X-Auth-*`, `Authorization`, and `Host`
/// (the client sets the upstream's).
fn strip_request_headers(headers: &mut HeaderMap, pass_authorization: bool) {
    strip_hop_by_hop(headers);
    // http's HeaderName is always lower case, so this catches X-AUTH-Subject too.
    remove_prefixed(headers, "x-auth-");
    headers.remove(header::EXPECT);
    headers.remove(header::HOST);
    if !pass_authorization {
        headers.remove(header::AUTHORIZATION);
    }
}

/// Step 4: `X-Forwarded-For` (appended), `-Proto` and `-Host` (replaced), `Via` (appended).
fn add_forwarded_headers(
    headers: &mut HeaderMap,
    peer: Option<SocketAddr>,
    original_host: Option<HeaderValue>,
) {
    let x_forwarded_for = HeaderName::from_static("x-forwarded-for");
    if let Some(peer) = peer {
        let earlier: Vec<&str> = headers
            .get_all(&x_forwarded_for)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        let mut chain = earlier.join(", ");
        if !chain.is_empty() {
            chain.push_str(", ");
        }
        chain.push_str(&peer.ip().to_string());
        if let Ok(value) = HeaderValue::from_str(&chain) {
            headers.insert(x_forwarded_for, value);
        }
    }
    headers.insert(
        HeaderName::from_static("x-forwarded-proto"),
        HeaderValue::from_static("http"),
    );
    let x_forwarded_host = HeaderName::from_static("x-forwarded-host");
    match original_host {
        Some(host) => {
            headers.insert(x_forwarded_host, host);
        }
        None => {
            headers.remove(x_forwarded_host);
        }
    }
    headers.append(header::VIA, HeaderValue::from_static(VIA));
}

/// The verified principal as headers:
///
/// - `X-Auth-Subject`: [`Principal::subject`], e.g. `external:ci-bot`, `user:default/jane`,
///   `plugin:scaffolder`, `service-account:indexer`;
/// - `X-Auth-Kind`: the credential kind's config name ([`CredentialKind::as_str`]):
///   `static`, `jwks`, `legacy`, `user`, `plugin`, `obo`, `service-account`, `custom`;
/// - `X-Auth-Actor`, only when a service acts for a user ([`Principal::actor`]): the
///   subject is then the user, and this is `plugin:<service id>` for a plugin token carrying
///   the user (Backstage `obo`, or RFC 8693 `act` from a trusted actor), or `jit:<token id>`
///   for a just-in-time on-behalf-of token;
/// - `X-Auth-Restrictions`, only when the credential carries access restrictions: their
///   compact JSON in Backstage's shape, `[{"plugin":"catalog","permission":[..],..}]`.
///
/// Nothing when nobody was verified (an unauthenticated route called without a
/// credential): the upstream sees no `X-Auth-*` header at all. `Err` when a value cannot
/// be a header value (a control character in a subject).
fn principal_headers(principal: &Principal) -> Result<HeaderMap, ()> {
    let mut set = HeaderMap::new();
    if principal.credential() == CredentialKind::None {
        return Ok(set);
    }
    let value = |text: &str| HeaderValue::from_str(text).map_err(|_| ());
    set.insert(SUBJECT, value(principal.subject())?);
    set.insert(KIND, value(principal.credential().as_str())?);
    if let Some(actor) = principal.actor() {
        set.insert(ACTOR, value(actor)?);
    }
    if let Some(restrictions) = principal.restrictions() {
        let json = serde_json::to_string(restrictions).map_err(|_| ())?;
        set.insert(RESTRICTIONS, value(&json)?);
    }
    Ok(set)
}

/// One JSON line on stderr, beside the audit events: why the upstream failed, for the
/// operator (the client only learns "upstream unavailable").
fn log_upstream_error(status: u16, reason: &dyn std::fmt::Display) {
    let line = serde_json::json!({
        "proxy": "upstream_error",
        "status": status,
        "reason": reason.to_string(),
    });
    eprintln!("{line}");
}

/// A Backstage-shaped JSON error (the layer's own refusals have the same shape).
fn error(
    status: StatusCode,
    name: &str,
    message: &str,
    method: &http::Method,
    uri: &http::Uri,
) -> Response {
    let body = serde_json::json!({
        "error": { "name": name, "message": message },
        "request": { "method": method.as_str(), "url": uri.path() },
        "response": { "statusCode": status.as_u16() },
    });
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| {
                (
                    HeaderName::from_bytes(k.as_bytes()).unwrap(),
                    HeaderValue::from_str(v).unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn drops_hop_by_hop_and_what_connection_names() {
        let mut h = headers(&[
            ("connection", "keep-alive, X-Secret-Hop"),
            ("x-secret-hop", "1"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("trailer", "x-sum"),
            ("upgrade", "websocket"),
            ("proxy-authorization", "Basic eA=="),
            ("proxy-connection", "keep-alive"),
            ("content-length", "3"),
            ("accept", "*/*"),
        ]);
        strip_request_headers(&mut h, false);
        let mut left: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        left.sort_unstable();
        assert_eq!(left, ["accept", "content-length"]);
    }

    #[test]
    fn drops_every_x_auth_header_and_authorization_by_default() {
        let mut h = headers(&[
            ("X-Auth-Subject", "user:default/admin"),
            ("x-auth-anything", "1"),
            ("X-AUTH-KIND", "user"),
            ("X_Auth_Subject", "user:default/admin"),
            ("x-auth_actor", "plugin:x"),
            ("authorization", "Bearer t"),
        ]);
        strip_request_headers(&mut h, false);
        assert!(h.is_empty(), "{h:?}");
        let mut h = headers(&[("x-authority", "kept"), ("x_auth", "kept")]);
        strip_request_headers(&mut h, false);
        assert_eq!(h.len(), 2, "{h:?}");
        let mut h = headers(&[("authorization", "Bearer t")]);
        strip_request_headers(&mut h, true);
        assert_eq!(h["authorization"], "Bearer t");
    }

    #[test]
    fn appends_the_peer_to_x_forwarded_for() {
        let mut h = headers(&[
            ("x-forwarded-for", "10.0.0.1"),
            ("x-forwarded-proto", "https"),
        ]);
        let peer: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        add_forwarded_headers(
            &mut h,
            Some(peer),
            Some(HeaderValue::from_static("api.example")),
        );
        assert_eq!(h["x-forwarded-for"], "10.0.0.1, 127.0.0.1");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["x-forwarded-host"], "api.example");
        assert_eq!(h["via"], "1.1 s2s-auth");
    }

    #[test]
    fn no_principal_headers_for_nobody() {
        assert!(principal_headers(&Principal::none()).unwrap().is_empty());
        let p = Principal::new(
            s2s_auth::PrincipalType::User,
            "user:default/jane",
            CredentialKind::Plugin,
        )
        .with_actor("plugin:scaffolder");
        let h = principal_headers(&p).unwrap();
        assert_eq!(h[SUBJECT], "user:default/jane");
        assert_eq!(h[KIND], "plugin");
        assert_eq!(h[ACTOR], "plugin:scaffolder");
        assert!(h.get(RESTRICTIONS).is_none());
    }
}
