//! The request every request bench sends, and the handler that answers it.

use axum::Router;
use axum::body::Body;
use http::header::AUTHORIZATION;
use http::{HeaderValue, Method, Request, StatusCode, Uri};
use tokio::runtime::Runtime;
use tower::ServiceExt;

/// The route the request benches serve, with a path parameter.
pub const ITEM_PATH: &str = "/items/{id}";
/// The path they send.
pub const ITEM_URI: &str = "/items/42";

/// The one handler every request bench calls.
pub async fn ok() -> &'static str {
    "ok"
}

/// `Bearer <token>`.
pub fn bearer(token: &str) -> HeaderValue {
    HeaderValue::from_str(&format!("Bearer {token}"))
        .expect("invariant: a bench token is a valid header value")
}

/// `GET uri` with `Authorization: authorization`.
pub fn get(uri: &'static str, authorization: HeaderValue) -> Request<Body> {
    let mut req = Request::new(Body::empty());
    *req.method_mut() = Method::GET;
    *req.uri_mut() = Uri::from_static(uri);
    req.headers_mut().insert(AUTHORIZATION, authorization);
    req
}

/// Sends one request; returns the status and the body.
pub fn send(rt: &Runtime, app: &Router, req: Request<Body>) -> (StatusCode, String) {
    rt.block_on(async {
        let res = app
            .clone()
            .oneshot(req)
            .await
            .expect("invariant: axum routers are infallible");
        let status = res.status();
        let body = axum::body::to_bytes(res.into_body(), 1 << 16)
            .await
            .expect("invariant: the bodies are small");
        (status, String::from_utf8_lossy(&body).into_owned())
    })
}
