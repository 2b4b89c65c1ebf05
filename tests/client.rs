//! The outbound client: token reuse, and the principals it must not act for.

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use http::Method;
use s2s_auth::{
    AccessRestriction, AccessRestrictions, Auth, ClientError, CredentialKind, IssueError,
    MemoryStore, PluginTokens, Principal, PrincipalType, S2sClient, StaticDiscovery,
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
    assert!(matches!(err, IssueError::RestrictedPrincipal), "{err}");
    let err = client
        .request(Some(&restricted), "catalog", Method::GET, "/entities")
        .await
        .expect_err("no request either");
    assert!(matches!(
        err,
        ClientError::Token(IssueError::RestrictedPrincipal)
    ));
    assert_eq!(client.tokens_issued(), 0, "no token was minted");
}

#[tokio::test]
async fn does_not_silently_call_as_the_service_for_a_user() {
    let user = Principal::new(
        PrincipalType::User,
        "user:default/jane",
        CredentialKind::User,
    );
    let err = client()
        .token_for(Some(&user), "catalog")
        .await
        .expect_err("no on-behalf-of tokens yet");
    assert!(matches!(err, IssueError::CannotDelegate(_)), "{err}");
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
