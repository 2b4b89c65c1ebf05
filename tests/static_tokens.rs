//! Static tokens (Backstage `externalAccess` `type: static`): who they make the caller,
//! expiry, digests, rotation, and read-only by default.

mod common;

use common::*;
use http::Method;
use s2s_auth::{Auth, AuthBuilder, RoutePolicy, StaticToken};
use time::{Duration, OffsetDateTime};

#[tokio::test]
async fn static_token_yields_external_service_principal() {
    let h = Harness::standard();
    let (reply, event) = h.call(Method::GET, "/entities/42", Some(CI_TOKEN)).await;
    let principal = assert_allowed(&reply, &event);
    assert_eq!(principal["subject"], "external:ci-bot");
    assert_eq!(principal["credential"], "static");
    assert_eq!(principal["principalType"], "service");
    assert_eq!(principal["actor"], serde_json::Value::Null);
    assert_eq!(principal["readOnly"], true);
    assert_eq!(event.subject.as_deref(), Some("external:ci-bot"));
}

#[tokio::test]
async fn rejects_unknown_static_token() {
    let h = Harness::standard();
    let (reply, event) = h
        .call(Method::GET, "/entities/42", Some(UNKNOWN_TOKEN))
        .await;
    assert_invalid_token(
        &reply,
        &event,
        "token is not recognised",
        "token_unrecognised",
    );
    assert_eq!(event.subject, None);
}

#[tokio::test]
async fn rejects_static_token_expired_in_yaml() {
    let h = Harness::standard();
    let (reply, event) = h
        .call(Method::GET, "/entities/42", Some(EXPIRED_TOKEN))
        .await;
    assert_invalid_token(&reply, &event, "token has expired", "token_expired");
}

#[tokio::test]
async fn rejects_static_token_expired_via_builder() {
    let token = "expired-builder-token-6b2d";
    let h = Harness::new(
        Auth::builder(SERVICE).static_token(
            StaticToken::new("old-job", token)
                .expires_at(OffsetDateTime::now_utc() - Duration::hours(1)),
        ),
    );
    let (reply, event) = h.call(Method::GET, "/entities/42", Some(token)).await;
    assert_invalid_token(&reply, &event, "token has expired", "token_expired");
}

#[tokio::test]
async fn static_token_with_future_expiry_works() {
    let token = "fresh-builder-token-9c1e";
    let h = Harness::new(
        Auth::builder(SERVICE).static_token(
            StaticToken::new("new-job", token)
                .expires_at(OffsetDateTime::now_utc() + Duration::hours(1)),
        ),
    );
    let (reply, event) = h.call(Method::GET, "/entities/42", Some(token)).await;
    let principal = assert_allowed(&reply, &event);
    assert_eq!(principal["subject"], "external:new-job");
    assert!(principal["expiresAt"].is_string());
}

#[tokio::test]
async fn accepts_token_sha256_entry() {
    let h = Harness::standard();
    let (reply, event) = h
        .call(Method::GET, "/entities/42", Some(HASHED_TOKEN))
        .await;
    let principal = assert_allowed(&reply, &event);
    assert_eq!(principal["subject"], "external:hashed-caller");
    assert_eq!(principal["credential"], "static");
}

#[tokio::test]
async fn token_sha256_is_not_itself_a_token() {
    // Presenting the digest from the config must not authenticate.
    let h = Harness::standard();
    let digest = sha256_hex(HASHED_TOKEN);
    let (reply, event) = h.call(Method::GET, "/entities/42", Some(&digest)).await;
    assert_invalid_token(
        &reply,
        &event,
        "token is not recognised",
        "token_unrecognised",
    );
}

#[tokio::test]
async fn accepts_upper_case_token_sha256_via_builder() {
    let token = "builder-hashed-token-1f7a";
    let h = Harness::new(
        Auth::builder(SERVICE).static_token(StaticToken::from_sha256_hex(
            "hashed",
            sha256_hex(token).to_uppercase(),
        )),
    );
    let (reply, event) = h.call(Method::GET, "/entities/42", Some(token)).await;
    assert_eq!(assert_allowed(&reply, &event)["subject"], "external:hashed");
}

#[tokio::test]
async fn accepts_both_tokens_during_rotation() {
    let h = Harness::standard();
    for token in [CI_TOKEN, CI_TOKEN_NEXT] {
        let (reply, event) = h.call(Method::GET, "/entities/42", Some(token)).await;
        let principal = assert_allowed(&reply, &event);
        assert_eq!(principal["subject"], "external:ci-bot");
    }
}

#[tokio::test]
async fn rejects_jwt_shaped_token_without_jwt_verifier() {
    // Static tokens only: the standard configuration also has a legacy secret, which would
    // take this HS256 token (and find its signature bad).
    let h = Harness::new(Auth::builder(SERVICE).static_token(StaticToken::new("ci-bot", CI_TOKEN)));
    let (reply, event) = h
        .call(Method::GET, "/entities/42", Some(JWT_SHAPED_TOKEN))
        .await;
    assert_invalid_token(
        &reply,
        &event,
        "token is a JWT but no JWT issuer is configured",
        "no_jwt_verifier",
    );
}

async fn assert_read_only(method: Method) {
    let h = Harness::standard();
    let (reply, event) = h
        .call(method.clone(), "/files/report.csv", Some(CI_TOKEN))
        .await;
    let description = format!(
        "static credential is read-only; {method} needs allowWrites on the token or allowStaticWrites on the route"
    );
    assert_forbidden(&reply, &event, &description, "read_only_credential");
    assert_eq!(event.subject.as_deref(), Some("external:ci-bot"));
    assert_eq!(event.method, method.as_str());
}

#[tokio::test]
async fn static_token_is_read_only_on_post() {
    assert_read_only(Method::POST).await;
}

#[tokio::test]
async fn static_token_is_read_only_on_put() {
    assert_read_only(Method::PUT).await;
}

#[tokio::test]
async fn static_token_is_read_only_on_patch() {
    assert_read_only(Method::PATCH).await;
}

#[tokio::test]
async fn static_token_is_read_only_on_delete() {
    assert_read_only(Method::DELETE).await;
}

#[tokio::test]
async fn static_token_may_get_head_and_options() {
    let h = Harness::standard();
    for method in [Method::GET, Method::HEAD, Method::OPTIONS] {
        let (reply, event) = h
            .call(method.clone(), "/files/report.csv", Some(CI_TOKEN))
            .await;
        assert_eq!(reply.status, 200, "{method}");
        assert_eq!(event.reason, "allowed", "{method}");
        assert_eq!(event.method, method.as_str());
    }
}

#[tokio::test]
async fn allow_writes_entry_may_post() {
    let h = Harness::standard();
    let (reply, event) = h
        .call(Method::POST, "/files/report.csv", Some(WRITER_TOKEN))
        .await;
    let principal = assert_allowed(&reply, &event);
    assert_eq!(principal["subject"], "external:deployer");
    assert_eq!(principal["readOnly"], false);
}

#[tokio::test]
async fn allow_writes_via_builder_may_delete() {
    let token = "builder-writer-token-3e8b";
    let h = Harness::new(
        Auth::builder(SERVICE).static_token(StaticToken::new("writer", token).allow_writes(true)),
    );
    let (reply, event) = h.call(Method::DELETE, "/entities/42", Some(token)).await;
    assert_allowed(&reply, &event);
}

#[tokio::test]
async fn route_allow_static_writes_lets_static_token_post() {
    let h = Harness::standard();
    let (reply, event) = h.call(Method::POST, "/imports", Some(CI_TOKEN)).await;
    assert_allowed(&reply, &event);
    assert_eq!(event.route, "/imports");
}

#[tokio::test]
async fn route_allow_static_writes_via_builder() {
    let h = Harness::new(
        Auth::builder(SERVICE)
            .static_token(StaticToken::new("ci-bot", CI_TOKEN))
            .route(
                "/imports",
                [Method::POST],
                RoutePolicy::authenticated().allow_static_writes(true),
            ),
    );
    let (reply, event) = h.call(Method::POST, "/imports", Some(CI_TOKEN)).await;
    assert_allowed(&reply, &event);
    // Only that route: a write elsewhere is still refused.
    let (reply, event) = h.call(Method::POST, "/entities", Some(CI_TOKEN)).await;
    assert_eq!(reply.status, 403);
    assert_eq!(event.reason, "read_only_credential");
}

#[tokio::test]
async fn env_substituted_token_authenticates() {
    let yaml = "
s2s:
  serviceId: catalog
backend:
  auth:
    externalAccess:
      - type: static
        options: { token: '${CI_TOKEN}', subject: ci-bot }
";
    let builder = AuthBuilder::from_yaml_str_with_env(yaml, |name| {
        (name == "CI_TOKEN").then(|| CI_TOKEN.to_owned())
    })
    .expect("valid config");
    let h = Harness::new(builder);
    let (reply, event) = h.call(Method::GET, "/entities", Some(CI_TOKEN)).await;
    assert_eq!(assert_allowed(&reply, &event)["subject"], "external:ci-bot");
}
