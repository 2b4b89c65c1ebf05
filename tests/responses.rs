//! Refusal bodies in Backstage's shape, and the `Principal` extractor's own rejection.

mod common;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use common::*;
use http::{Method, StatusCode, header};
use s2s_auth::Principal;
use serde_json::json;

#[track_caller]
fn assert_body(reply: &Reply, name: &str, message: &str, method: &str, url: &str) {
    assert_eq!(reply.content_type(), Some("application/json"));
    assert_eq!(
        reply.json(),
        json!({
            "error": { "name": name, "message": message },
            "request": { "method": method, "url": url },
            "response": { "statusCode": reply.status.as_u16() },
        })
    );
}

#[tokio::test]
async fn unauthorized_body_has_backstage_shape() {
    let h = Harness::standard();
    let (reply, _) = h.call(Method::GET, "/entities/42", None).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_body(
        &reply,
        "AuthenticationError",
        "missing credentials",
        "GET",
        "/entities/42",
    );
    let (reply, _) = h
        .call(Method::GET, "/entities/42", Some(UNKNOWN_TOKEN))
        .await;
    assert_body(
        &reply,
        "AuthenticationError",
        "token is not recognised",
        "GET",
        "/entities/42",
    );
}

#[tokio::test]
async fn bad_request_body_has_backstage_shape() {
    let h = Harness::standard();
    let req = with_authorization(Method::PUT, "/entities/42", &[b"Bearer a", b"Bearer b"]);
    let (reply, _) = h.send(req).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_body(
        &reply,
        "InputError",
        "more than one Authorization header",
        "PUT",
        "/entities/42",
    );
}

#[tokio::test]
async fn forbidden_body_has_backstage_shape() {
    let h = Harness::standard();
    let (reply, _) = h.call(Method::POST, "/files/a/b", Some(CI_TOKEN)).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert_body(
        &reply,
        "NotAllowedError",
        "static credential is read-only; POST needs allowWrites on the token or allowStaticWrites on the route",
        "POST",
        "/files/a/b",
    );
}

#[tokio::test]
async fn body_url_never_includes_the_query() {
    let h = Harness::standard();
    let (reply, _) = h
        .call(Method::GET, "/entities/42?secret=hunter2hunter2", None)
        .await;
    assert_eq!(reply.json()["request"]["url"], "/entities/42");
    assert!(!reply.everything().contains("hunter2hunter2"));
}

#[tokio::test]
async fn principal_extractor_without_layer_is_401() {
    let router = Router::new().route(
        "/whoami",
        get(|p: Principal| async move { p.subject().to_owned() }),
    );
    let req = request(Method::GET, "/whoami")
        .header(header::AUTHORIZATION, format!("Bearer {CI_TOKEN}"))
        .body(Body::empty())
        .expect("valid request");
    let reply = send(&router, req).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.www_authenticate(), Some("Bearer"));
    assert_eq!(reply.content_type(), Some("application/json"));
    assert_eq!(
        reply.json(),
        json!({
            "error": {
                "name": "AuthenticationError",
                "message": "this route needs an authenticated caller",
            },
            "response": { "statusCode": 401 },
        })
    );
}

#[tokio::test]
async fn principal_extractor_on_unauthenticated_route_without_token_is_401() {
    // The layer lets the request through but has nobody to inject: a handler that insists on
    // a `Principal` still refuses, with the extractor's rejection.
    let h = Harness::standard();
    let router = Router::new()
        .route(
            "/healthz",
            get(|p: Principal| async move { p.subject().to_owned() }),
        )
        .layer(h.auth.layer());
    let reply = send(
        &router,
        request(Method::GET, "/healthz")
            .body(Body::empty())
            .expect("valid request"),
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    // The same challenge the layer itself sends: the realm is this service.
    assert_eq!(reply.www_authenticate(), Some(bare_challenge().as_str()));
}

#[tokio::test]
async fn principal_extractor_without_the_layer_answers_a_bare_challenge() {
    let router = Router::new().route(
        "/whoami",
        get(|p: Principal| async move { p.subject().to_owned() }),
    );
    let reply = send(
        &router,
        request(Method::GET, "/whoami")
            .body(Body::empty())
            .expect("valid request"),
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.www_authenticate(), Some("Bearer"));
}
