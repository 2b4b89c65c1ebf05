//! User tokens: OpenID Connect providers (keys found by discovery or a JWKS URL) and
//! Backstage user tokens (`typ: vnd.backstage.user`, `aud: backstage`).

mod common;

use std::time::Duration;

use common::kit::*;
use common::*;
use http::Method;
use s2s_auth::{Auth, CredentialKind, JwksAccess, PrincipalType, UserProvider};
use serde_json::{Value, json};

async fn get(h: &Harness, token: &str) -> (Reply, s2s_auth::audit::AuditEvent) {
    h.call(Method::GET, "/entities/42", Some(token)).await
}

/// A Backstage user token.
fn backstage_token(key: &SigningKey, iss: &str, sub: &str) -> String {
    let mut header = key.header();
    header.typ = Some("vnd.backstage.user".to_owned());
    key.sign_with(header, &claims(iss, "backstage", sub))
}

#[tokio::test(flavor = "multi_thread")]
async fn oidc_user_token_via_discovery() {
    let key = SigningKey::rsa("rsa-1", 0);
    let server = KeyServer::start(&[&key]).await;
    // The issuer is the server itself: keys are found at <issuer>/.well-known/openid-configuration.
    let h = Harness::new(
        Auth::builder(SERVICE)
            .user_provider(UserProvider::oidc(server.base()).audiences([SERVICE])),
    );
    let (reply, event) = get(&h, &key.sign(&claims(server.base(), SERVICE, "jane"))).await;
    let principal = assert_allowed(&reply, &event);
    assert_eq!(principal["subject"], "user:default/jane");
    assert_eq!(principal["principalType"], "user");
    assert_eq!(principal["credential"], "user");
    assert_eq!(event.principal_type, Some(PrincipalType::User));
    assert_eq!(event.credential, Some(CredentialKind::User));
    assert_eq!((server.discovery_hits(), server.jwks_hits()), (1, 1));

    // Discovery and keys are remembered.
    let (reply, event) = get(&h, &key.sign(&claims(server.base(), SERVICE, "joe"))).await;
    assert_eq!(
        assert_allowed(&reply, &event)["subject"],
        "user:default/joe"
    );
    assert_eq!((server.discovery_hits(), server.jwks_hits()), (1, 1));

    // The usual checks apply.
    let (reply, event) = get(&h, &key.sign(&claims(server.base(), "search", "jane"))).await;
    assert_invalid_token(
        &reply,
        &event,
        "token audience does not match",
        "wrong_audience",
    );
    let mut c = claims(server.base(), SERVICE, "jane");
    c["exp"] = json!(now() - 3600);
    let (reply, event) = get(&h, &key.sign(&c)).await;
    assert_invalid_token(&reply, &event, "token has expired", "token_expired");
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_first_requests_discover_once() {
    let key = SigningKey::es256("ec-1");
    let server = KeyServer::start(&[&key]).await;
    let h = Harness::new(
        Auth::builder(SERVICE)
            .user_provider(UserProvider::oidc(server.base()).audiences([SERVICE])),
    );
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let router = h.router.clone();
            let token = key.sign(&claims(server.base(), SERVICE, &format!("user-{i}")));
            tokio::spawn(async move { send(&router, bearer(Method::GET, "/x", &token)).await })
        })
        .collect();
    for task in tasks {
        let reply = task.await.expect("request task");
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
    assert_eq!((server.discovery_hits(), server.jwks_hits()), (1, 1));
}

#[tokio::test(flavor = "multi_thread")]
async fn user_subject_mapping() {
    let key = SigningKey::es256("ec-1");
    let server = KeyServer::start(&[&key]).await;
    let issuer = "https://login.example.com";
    let h = Harness::new(
        Auth::builder(SERVICE).user_provider(
            UserProvider::oidc(issuer)
                .jwks_url(server.jwks_url())
                .audiences([SERVICE])
                .subject_claim("preferred_username"),
        ),
    );
    let with_name = |name: Value| {
        let mut c = claims(issuer, SERVICE, "00u1a2b3c4");
        c["preferred_username"] = name;
        key.sign(&c)
    };
    let (reply, event) = get(&h, &with_name(json!("jane.doe"))).await;
    assert_eq!(
        assert_allowed(&reply, &event)["subject"],
        "user:default/jane.doe"
    );
    // Not a user, or not a usable name; and an OIDC claim is a name in the provider's
    // namespace, never an entity ref (`user:jane`, `user:admins/root` are refused).
    for name in [
        "group:default/admins",
        "jane doe",
        "user:jane",
        "user:admins/root",
    ] {
        let (reply, event) = get(&h, &with_name(json!(name))).await;
        assert_invalid_token(
            &reply,
            &event,
            "token subject is not accepted",
            "wrong_subject",
        );
    }
    for name in [json!(""), json!(42), Value::Null] {
        let (reply, event) = get(&h, &with_name(name)).await;
        assert_invalid_token(
            &reply,
            &event,
            "token has no `user subject` claim",
            "missing_claim",
        );
    }
    // No discovery: the JWKS URL was given.
    assert_eq!(server.discovery_hits(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn backstage_user_tokens() {
    let key = SigningKey::es256("ec-1");
    let server = KeyServer::start(&[&key]).await;
    let issuer = "https://backstage.example.com/api/auth";
    let h = Harness::new(
        Auth::builder(SERVICE)
            .user_provider(UserProvider::backstage(issuer).jwks_url(server.jwks_url())),
    );
    let (reply, event) = get(&h, &backstage_token(&key, issuer, "user:default/jane")).await;
    let principal = assert_allowed(&reply, &event);
    assert_eq!(principal["subject"], "user:default/jane");
    assert_eq!(principal["principalType"], "user");
    assert_eq!(principal["credential"], "user");

    // Backstage user tokens carry `aud: backstage`, not the service id.
    let mut header = key.header();
    header.typ = Some("vnd.backstage.user".to_owned());
    let (reply, event) = get(
        &h,
        &key.sign_with(header, &claims(issuer, SERVICE, "user:default/jane")),
    )
    .await;
    assert_invalid_token(
        &reply,
        &event,
        "token audience does not match",
        "wrong_audience",
    );
    // Without the Backstage typ, it is not a Backstage user token.
    let (reply, event) = get(
        &h,
        &key.sign(&claims(issuer, "backstage", "user:default/jane")),
    )
    .await;
    assert_invalid_token(
        &reply,
        &event,
        "token type (typ) is not accepted here",
        "wrong_type",
    );
    // Another issuer.
    let (reply, event) = get(
        &h,
        &backstage_token(
            &key,
            "https://other.example.com/api/auth",
            "user:default/jane",
        ),
    )
    .await;
    assert_invalid_token(
        &reply,
        &event,
        "token issuer is not configured",
        "unknown_issuer",
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn backstage_user_tokens_via_discovery() {
    let key = SigningKey::ed25519("ed-1");
    let server = KeyServer::start(&[&key]).await;
    let h =
        Harness::new(Auth::builder(SERVICE).user_provider(UserProvider::backstage(server.base())));
    let (reply, event) = get(
        &h,
        &backstage_token(&key, server.base(), "user:default/jane"),
    )
    .await;
    assert_eq!(
        assert_allowed(&reply, &event)["subject"],
        "user:default/jane"
    );
    assert_eq!((server.discovery_hits(), server.jwks_hits()), (1, 1));
}

#[tokio::test(flavor = "multi_thread")]
async fn discovery_naming_another_issuer_gives_503() {
    let key = SigningKey::es256("ec-1");
    let server = KeyServer::start(&[&key]).await;
    // A discovery document that claims to be someone else's (OIDC Discovery 4.3).
    server.set_discovery_issuer("https://evil.example.com");
    let h = Harness::new(
        Auth::builder(SERVICE)
            .user_provider(UserProvider::oidc(server.base()).audiences([SERVICE])),
    );
    let token = key.sign(&claims(server.base(), SERVICE, "jane"));
    let (reply, event) = get(&h, &token).await;
    let retry_after = assert_keys_unavailable(&reply, &event);
    assert!((1..=30).contains(&retry_after), "{retry_after}");
    // Its jwks_uri was never used, and discovery is not retried at once.
    let (reply, event) = get(&h, &token).await;
    assert_keys_unavailable(&reply, &event);
    assert_eq!((server.discovery_hits(), server.jwks_hits()), (1, 0));
}

#[tokio::test(flavor = "multi_thread")]
async fn failing_discovery_gives_503_quickly() {
    let key = SigningKey::es256("ec-1");
    let server = KeyServer::start(&[&key]).await;
    // No discovery document under this issuer: the server answers 404.
    let issuer = format!("{}/tenant-a", server.base());
    let h = Harness::new(
        Auth::builder(SERVICE).user_provider(UserProvider::oidc(&issuer).audiences([SERVICE])),
    );
    let started = std::time::Instant::now();
    let (reply, event) = get(&h, &key.sign(&claims(&issuer, SERVICE, "jane"))).await;
    assert_keys_unavailable(&reply, &event);
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(server.jwks_hits(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn same_issuer_for_users_and_services_is_told_apart_by_audience() {
    // One identity provider issues both user tokens (aud `catalog`) and machine tokens
    // (aud `catalog-api`).
    let key = SigningKey::es256("ec-1");
    let server = KeyServer::start(&[&key]).await;
    let issuer = "https://login.example.com";
    let h = Harness::new(
        Auth::builder(SERVICE)
            .jwks_access(
                JwksAccess::new(server.jwks_url())
                    .issuers([issuer])
                    .audiences(["catalog-api"]),
            )
            .user_provider(
                UserProvider::oidc(issuer)
                    .jwks_url(server.jwks_url())
                    .audiences([SERVICE]),
            ),
    );
    let (reply, event) = get(&h, &key.sign(&claims(issuer, SERVICE, "jane"))).await;
    assert_eq!(
        assert_allowed(&reply, &event)["subject"],
        "user:default/jane"
    );
    let (reply, event) = get(&h, &key.sign(&claims(issuer, "catalog-api", "ci-bot"))).await;
    assert_eq!(assert_allowed(&reply, &event)["subject"], "external:ci-bot");
    let mut c = claims(issuer, SERVICE, "jane");
    c["aud"] = json!([SERVICE, "catalog-api"]);
    let (reply, event) = get(&h, &key.sign(&c)).await;
    assert_invalid_token(
        &reply,
        &event,
        "token matches more than one configured issuer and audience",
        "ambiguous_issuer",
    );
    let (reply, event) = get(&h, &key.sign(&claims(issuer, "search", "jane"))).await;
    assert_invalid_token(
        &reply,
        &event,
        "token audience does not match",
        "wrong_audience",
    );
}
