//! The outbound client: token reuse, and the principals it must not act for.

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use http::Method;
use s2s_auth::client::ClientError;
use s2s_auth::error::{DelegationError, IssueError};
use s2s_auth::restrictions::{AccessRestriction, AccessRestrictions};
use s2s_auth::store::MemoryStore;
use s2s_auth::{
    Auth, CredentialKind, PluginTokens, Principal, PrincipalType, S2sClient, StaticDiscovery,
};

fn scaffolder() -> Auth {
    Auth::builder("scaffolder")
        .plugin_tokens(PluginTokens::new(Arc::new(MemoryStore::default())))
        .build()
        .expect("valid config")
}

fn client() -> S2sClient {
    S2sClient::new(
        scaffolder(),
        StaticDiscovery::new([("catalog", "http://127.0.0.1:9/api/catalog")]),
    )
}

#[tokio::test]
async fn reuses_one_token_for_a_thousand_calls() {
    let client = client();
    let first = client.token_for(None, "catalog").await.expect("a token");
    for _ in 0..1000 {
        let again = client.token_for(None, "catalog").await.expect("a token");
        assert_eq!(again.expose_secret(), first.expose_secret());
    }
    assert_eq!(client.tokens_issued(), 1);
    // Another target gets its own token.
    client.token_for(None, "search").await.expect("a token");
    assert_eq!(client.tokens_issued(), 2);
}

#[tokio::test]
async fn concurrent_first_calls_share_one_token() {
    let client = Arc::new(client());
    let calls: Vec<_> = (0..100)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.token_for(None, "catalog").await.is_ok() })
        })
        .collect();
    for call in calls {
        assert!(call.await.expect("task"));
    }
    assert_eq!(client.tokens_issued(), 1);
}

#[tokio::test]
async fn refuses_to_delegate_a_restricted_principal() {
    let restricted = Principal::new(
        PrincipalType::Service,
        "external:ci-bot",
        CredentialKind::Static,
    )
    .with_restrictions(
        AccessRestrictions::new([AccessRestriction::plugin("scaffolder")]).expect("valid"),
    );
    let client = client();
    let err = client
        .token_for(Some(&restricted), "catalog")
        .await
        .expect_err("restricted principals cannot be delegated");
    assert!(
        matches!(err, IssueError::CannotDelegate(DelegationError::Restricted)),
        "{err}"
    );
    let err = client
        .request(Some(&restricted), "catalog", Method::GET, "/entities")
        .await
        .expect_err("no request either");
    assert!(matches!(
        err,
        ClientError::Token(IssueError::CannotDelegate(DelegationError::Restricted))
    ));
    assert_eq!(client.tokens_issued(), 0, "no token was minted");
    // Nor directly, nor for a user whose credential is restricted.
    let restricted_user = user("jane", 900).with_restrictions(
        AccessRestrictions::new([AccessRestriction::plugin("scaffolder")]).expect("valid"),
    );
    for who in [&restricted, &restricted_user] {
        let err = scaffolder()
            .on_behalf_of_token(who, "catalog")
            .await
            .expect_err("restricted principals cannot be delegated");
        assert!(
            matches!(err, IssueError::CannotDelegate(DelegationError::Restricted)),
            "{err}"
        );
    }
}

/// The claims of a token this test's client minted (read unverified).
fn claims(token: &s2s_auth::secret::SecretString) -> serde_json::Value {
    use base64::Engine as _;
    let payload = token.expose_secret().split('.').nth(1).expect("claims");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("JSON")
}

/// A user, as a user-token verifier makes one, whose token expires in `secs` seconds.
fn user(name: &str, secs: i64) -> Principal {
    Principal::new(
        PrincipalType::User,
        format!("user:default/{name}"),
        CredentialKind::User,
    )
    .with_expiry(time::OffsetDateTime::now_utc() + time::Duration::seconds(secs))
}

#[tokio::test]
async fn acts_for_users_and_reuses_each_users_token() {
    let client = client();
    let jane = user("jane", 900);
    let first = client
        .token_for(Some(&jane), "catalog")
        .await
        .expect("an on-behalf-of token");
    // Never as the service: the user is the subject, the service the actor.
    let c = claims(&first);
    assert_eq!(c["sub"], "user:default/jane");
    assert_eq!(c["act"]["sub"], "scaffolder");
    assert_eq!(c["aud"], "catalog");
    for _ in 0..1000 {
        let again = client
            .token_for(Some(&jane), "catalog")
            .await
            .expect("a token");
        assert_eq!(again.expose_secret(), first.expose_secret());
    }
    assert_eq!(client.tokens_issued(), 1);
    // Another user, another target, or the service itself: a token each.
    client
        .token_for(Some(&user("joe", 900)), "catalog")
        .await
        .expect("a token");
    client
        .token_for(Some(&jane), "search")
        .await
        .expect("a token");
    let own = client.token_for(None, "catalog").await.expect("a token");
    assert_eq!(claims(&own)["sub"], "scaffolder");
    assert_eq!(client.tokens_issued(), 4);
}

#[tokio::test]
async fn on_behalf_of_tokens_never_outlive_the_user_token() {
    let client = client();
    let jane = user("jane", 120);
    let token = client
        .token_for(Some(&jane), "catalog")
        .await
        .expect("a token");
    let expires = jane.expires_at().expect("an expiry").unix_timestamp();
    let c = claims(&token);
    assert_eq!(
        c["exp"].as_i64(),
        Some(expires),
        "clamped to the user's exp, not 1 h"
    );
    assert!(c["iat"].as_i64().expect("iat") <= expires);
}

#[tokio::test]
async fn refuses_users_it_cannot_act_for() {
    let client = client();
    for (who, why) in [
        (user("jane", -5), DelegationError::Expired),
        (
            Principal::new(
                PrincipalType::User,
                "user:default/jane",
                CredentialKind::User,
            ),
            DelegationError::NoExpiry,
        ),
    ] {
        let err = client
            .token_for(Some(&who), "catalog")
            .await
            .expect_err("no token");
        assert!(
            matches!(err, IssueError::CannotDelegate(reason) if reason == why),
            "{err}"
        );
    }
    let err = scaffolder()
        .on_behalf_of_token(&Principal::none(), "catalog")
        .await
        .expect_err("nobody cannot be acted for");
    assert!(
        matches!(err, IssueError::CannotDelegate(DelegationError::NotAUser)),
        "{err}"
    );
    assert_eq!(client.tokens_issued(), 0);
}

#[tokio::test]
async fn unknown_target_is_an_error() {
    let err = client()
        .request(None, "billing", Method::GET, "/x")
        .await
        .expect_err("not in discovery");
    assert!(matches!(err, ClientError::UnknownService(s) if s == "billing"));
}

#[tokio::test]
async fn calls_another_service_end_to_end() {
    let issuer = scaffolder();
    // scaffolder publishes its keys...
    let jwks_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let scaffolder_base = format!("http://{}", jwks_listener.local_addr().expect("addr"));
    let jwks_app: Router = issuer.jwks_router();
    tokio::spawn(async move { axum::serve(jwks_listener, jwks_app).await });
    // ...and catalog accepts its tokens.
    let catalog = Auth::builder("catalog")
        .discovery(StaticDiscovery::new([(
            "scaffolder",
            scaffolder_base.as_str(),
        )]))
        .build()
        .expect("valid config");
    let app = Router::new()
        .route(
            "/api/catalog/entities",
            get(|p: Principal| async move { p.subject().to_owned() }),
        )
        .layer(catalog.layer());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let catalog_base = format!(
        "http://{}/api/catalog",
        listener.local_addr().expect("addr")
    );
    tokio::spawn(async move { axum::serve(listener, app).await });

    let client = S2sClient::new(
        issuer,
        StaticDiscovery::new([("catalog", catalog_base.as_str())]),
    );
    for _ in 0..3 {
        let response = client
            .request(None, "catalog", Method::GET, "/entities")
            .await
            .expect("a request")
            .send()
            .await
            .expect("a response");
        assert_eq!(response.status(), 200);
        assert_eq!(response.text().await.expect("body"), "plugin:scaffolder");
    }
    assert_eq!(client.tokens_issued(), 1);
}
