//! Fail closed (DESIGN.md section 3, issue 9): a policy that names a path nobody serves is an
//! error at start, not a silently unguarded route; a method no policy names gets the path's
//! strictest policy, never the permissive default; an unauthenticated route never hands its
//! handler a principal that an authenticated route would have refused. And the
//! [`AuthRouter`](s2s_auth::router::AuthRouter) that makes the first rule checkable, end to end.

mod common;

use std::sync::Arc;

use axum::Router;
use axum::routing::{any, get, post};
use http::{Method, StatusCode};
use s2s_auth::audit::MemoryAuditSink;
use s2s_auth::error::ConfigRule;
use s2s_auth::plugin::JWKS_PATH;
use s2s_auth::store::MemoryStore;
use s2s_auth::{
    Auth, AuthBuilder, ConfigError, CredentialKind, DefaultPolicy, PluginTokens, Principal,
    PrincipalType, RoutePolicy, StaticDiscovery, StaticToken,
};
use serde_json::Value;

use common::{
    CI_TOKEN, EXPIRED_TOKEN, Harness, Reply, SCAFFOLDER_ONLY_TOKEN, SERVICE, Served, WRITER_TOKEN,
    assert_forbidden, assert_refused, bare_challenge, bearer, request, send,
};

/// Answers with the principal the layer handed on, or `null`.
async fn echo(principal: Option<Principal>) -> axum::Json<Option<Principal>> {
    axum::Json(principal)
}

/// `into_router()`'s error for `auth`'s policies around a router serving `/healthz`,
/// `/admin/tokens` and `/entities/{name}`.
fn wrap_error(auth: &Auth) -> ConfigError {
    auth.router::<()>()
        .route("/healthz", get(echo), RoutePolicy::unauthenticated())
        .route(
            "/admin/tokens",
            post(echo),
            RoutePolicy::users().sensitive(),
        )
        .route("/entities/{name}", get(echo), RoutePolicy::authenticated())
        .into_router()
        .expect_err("a policy for a path nobody serves")
}

// ---------------------------------------------------------------------------------------
// A policy cannot miss its route
// ---------------------------------------------------------------------------------------

#[test]
fn misspelled_config_route_fails_at_start_with_a_suggestion() {
    let yaml = "s2s:\n  serviceId: catalog\n  routes:\n    - path: /healthz\n      unauthenticated: true\n    - path: /admin/token\n      sensitive: true\n";
    let auth = Auth::from_yaml_str(yaml).expect("the config alone is valid");
    let err = wrap_error(&auth);
    assert_eq!(err.path(), Some("s2s.routes[1].path"));
    assert_eq!(
        err.rule(),
        &ConfigRule::NoSuchRoute {
            path: "/admin/token".into(),
            suggestion: Some("/admin/tokens".into()),
        }
    );
    assert_eq!(
        err.to_string(),
        "s2s.routes[1].path: no route /admin/token; did you mean /admin/tokens?"
    );
}

#[test]
fn misspelled_builder_route_fails_at_start_with_a_suggestion() {
    let auth = Auth::builder(SERVICE)
        .route(
            "/admin/token",
            [Method::POST],
            RoutePolicy::users().sensitive(),
        )
        .build()
        .expect("the builder alone is valid");
    let err = wrap_error(&auth);
    assert_eq!(err.path(), Some("route(\"/admin/token\").path"));
    assert_eq!(
        err.rule(),
        &ConfigRule::NoSuchRoute {
            path: "/admin/token".into(),
            suggestion: Some("/admin/tokens".into()),
        }
    );
}

#[test]
fn route_far_from_any_served_path_gets_no_suggestion() {
    let yaml = "s2s:\n  serviceId: catalog\n  routes:\n    - path: /metrics\n";
    let err = wrap_error(&Auth::from_yaml_str(yaml).expect("valid config"));
    assert_eq!(err.path(), Some("s2s.routes[0].path"));
    assert_eq!(
        err.rule(),
        &ConfigRule::NoSuchRoute {
            path: "/metrics".into(),
            suggestion: None,
        }
    );
    assert_eq!(err.to_string(), "s2s.routes[0].path: no route /metrics");
}

#[tokio::test]
async fn config_route_matches_served_route_whatever_its_parameter_is_called() {
    let yaml = "s2s:\n  serviceId: catalog\n  routes:\n    - path: /entities/{id}\n      methods: [DELETE]\n      allow: [user]\n";
    let auth = AuthBuilder::from_yaml_str(yaml)
        .expect("valid config")
        .static_token(StaticToken::new("deployer", WRITER_TOKEN).allow_writes(true))
        .build()
        .expect("builds");
    let app = auth
        .router()
        .route("/entities/{name}", any(echo), RoutePolicy::authenticated())
        .into_router();
    // `{id}` and `{name}` are one route; the router's own policy covers the other methods.
    let app = app.expect("the policy names a served route");
    let reply = send(&app, bearer(Method::DELETE, "/entities/42", WRITER_TOKEN)).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.body);
    let reply = send(&app, bearer(Method::GET, "/entities/42", WRITER_TOKEN)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
}

// ---------------------------------------------------------------------------------------
// A method nobody listed gets the path's strictest policy
// ---------------------------------------------------------------------------------------

/// `scaffolder`, issuing plugin tokens and serving its JWKS on `127.0.0.1:0`.
async fn scaffolder() -> (Auth, Served) {
    let auth = Auth::builder("scaffolder")
        .plugin_tokens(PluginTokens::new(Arc::new(MemoryStore::default())))
        .build()
        .expect("scaffolder configuration builds");
    let served = common::serve(auth.jwks_router().layer(auth.layer())).await;
    (auth, served)
}

/// Jane, as a user principal `scaffolder` received, whose token lives ten more minutes.
fn jane() -> Principal {
    let expires = time::OffsetDateTime::now_utc() + time::Duration::minutes(10);
    Principal::new(
        PrincipalType::User,
        "user:default/jane",
        CredentialKind::User,
    )
    .with_expiry(expires)
}

/// `catalog`, taking plugin and on-behalf-of tokens from scaffolder at `base` and the
/// writer's static token, serving `/admin/tokens` for every method with `any(...)` but with
/// policies for `GET` (any caller) and `POST` (users, sensitive) only.
fn catalog_with_admin(base: &str, audit: Arc<MemoryAuditSink>) -> (Router, Auth) {
    Auth::builder(SERVICE)
        .discovery(StaticDiscovery::new([("scaffolder", base)]))
        .trusted_actors(["scaffolder"])
        .static_token(StaticToken::new("deployer", WRITER_TOKEN).allow_writes(true))
        .audit_sink(audit)
        .build()
        .expect("catalog configuration builds")
        .router()
        .route_for(
            "/admin/tokens",
            [Method::GET],
            any(echo),
            RoutePolicy::authenticated(),
        )
        .route_for(
            "/admin/tokens",
            [Method::POST],
            post(echo),
            RoutePolicy::users().sensitive(),
        )
        .into_parts()
        .expect("every policy names a served route")
}

/// The JSON cell of the access table for `route`, `method` and `column`.
fn cell(table: &Value, route: &str, method: &str, column: &str) -> Value {
    table["rows"]
        .as_array()
        .expect("rows is a list")
        .iter()
        .find(|r| r["route"] == route && r["method"] == method)
        .unwrap_or_else(|| panic!("no row for {method} {route}: {table:#}"))["cells"][column]
        .clone()
}

#[tokio::test]
async fn unlisted_method_on_a_sensitive_path_is_refused_to_every_machine_credential() {
    let (scaffolder, served) = scaffolder().await;
    let audit = Arc::new(MemoryAuditSink::default());
    let (app, catalog) = catalog_with_admin(&served.base, audit.clone());
    let plugin = scaffolder
        .plugin_token(SERVICE)
        .await
        .expect("plugin token");
    let obo = scaffolder
        .on_behalf_of_token(&jane(), SERVICE)
        .await
        .expect("on-behalf-of token");

    // The declared methods still work as declared: the credentials themselves are good.
    for token in [plugin.expose_secret(), obo.expose_secret(), WRITER_TOKEN] {
        let reply = send(&app, bearer(Method::GET, "/admin/tokens", token)).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    }

    let kind_refused = |kind: &str| {
        format!("{kind} credentials are not allowed on this route (allowed: user, obo)")
    };
    let sensitive = "Token-authenticated callers cannot create tokens or change credentials (route is sensitive: obo credentials, and any acting for a user, are refused)";
    let cases = [
        (
            plugin.expose_secret(),
            "plugin",
            kind_refused("plugin"),
            "credential_kind_not_allowed",
        ),
        (
            obo.expose_secret(),
            "obo",
            sensitive.to_owned(),
            "sensitive_route",
        ),
        (
            WRITER_TOKEN,
            "external:deployer",
            kind_refused("static"),
            "credential_kind_not_allowed",
        ),
    ];
    let table = catalog.access_table().to_json();
    for (token, column, message, reason) in &cases {
        audit.clear();
        let reply = send(&app, bearer(Method::PATCH, "/admin/tokens", token)).await;
        let events = audit.events();
        assert_eq!(events.len(), 1, "{events:#?}");
        assert_forbidden(&reply, &events[0], message, reason);
        assert_eq!(events[0].route, "/admin/tokens");
        // The access table says the same for methods nobody listed.
        let cell = cell(&table, "/admin/tokens", "other (write)", column);
        assert_eq!(cell["status"], 403, "{column}: {cell}");
        assert_eq!(cell["reason"], *reason, "{column}: {cell}");
        assert_eq!(cell["message"], *message, "{column}: {cell}");
    }
}

#[tokio::test]
async fn unlisted_method_under_default_deny_is_refused() {
    let audit = Arc::new(MemoryAuditSink::default());
    let app = Auth::builder(SERVICE)
        .static_token(StaticToken::new("deployer", WRITER_TOKEN).allow_writes(true))
        .default_policy(DefaultPolicy::Deny)
        .audit_sink(audit.clone())
        .build()
        .expect("builds")
        .router()
        .route_for(
            "/entities",
            [Method::GET],
            any(echo),
            RoutePolicy::authenticated(),
        )
        .into_router()
        .expect("valid router");
    let reply = send(&app, bearer(Method::GET, "/entities", WRITER_TOKEN)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let reply = send(&app, bearer(Method::PATCH, "/entities", WRITER_TOKEN)).await;
    let event = audit.last().expect("audited");
    assert_forbidden(
        &reply,
        &event,
        "route is not listed and the default policy is deny",
        "default_deny",
    );
}

// ---------------------------------------------------------------------------------------
// An unauthenticated route never hands on a principal an authenticated route would refuse
// ---------------------------------------------------------------------------------------

/// `GET /healthz` (unauthenticated) with `token`: let through without a principal, and the
/// audit event says why the credential was ignored.
#[track_caller]
fn assert_ignored(reply: &Reply, event: &s2s_auth::audit::AuditEvent, ignored: &str) {
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.json(), Value::Null, "the handler saw no principal");
    assert_eq!(event.reason, "unauthenticated_route");
    assert_eq!(event.ignored.as_deref(), Some(ignored));
    assert!(
        event.message.starts_with("credential ignored: "),
        "{}",
        event.message
    );
}

#[tokio::test]
async fn token_restricted_to_another_plugin_is_ignored_on_an_unauthenticated_route() {
    let h = Harness::standard();
    let (reply, event) = h
        .call(Method::GET, "/healthz", Some(SCAFFOLDER_ONLY_TOKEN))
        .await;
    assert_ignored(&reply, &event, "restricted_plugin");
    assert_eq!(
        event.message,
        "credential ignored: credential is restricted to plugins [scaffolder]; this service is `catalog`"
    );
}

#[tokio::test]
async fn expired_token_is_ignored_on_an_unauthenticated_route() {
    let h = Harness::standard();
    let (reply, event) = h.call(Method::GET, "/healthz", Some(EXPIRED_TOKEN)).await;
    assert_ignored(&reply, &event, "token_expired");
}

#[tokio::test]
async fn read_only_token_writing_is_ignored_on_an_unauthenticated_route() {
    let h = Harness::standard();
    let (reply, event) = h.call(Method::POST, "/healthz", Some(CI_TOKEN)).await;
    assert_ignored(&reply, &event, "read_only_credential");
    // The same token reading is a principal there.
    let (reply, event) = h.call(Method::GET, "/healthz", Some(CI_TOKEN)).await;
    assert_eq!(reply.json()["subject"], "external:ci-bot");
    assert_eq!(event.ignored, None);
}

#[tokio::test]
async fn valid_unrestricted_token_yields_its_principal_on_an_unauthenticated_route() {
    let h = Harness::standard();
    let (reply, event) = h.call(Method::POST, "/healthz", Some(WRITER_TOKEN)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.json()["subject"], "external:deployer");
    assert_eq!(event.reason, "unauthenticated_route");
    assert_eq!(event.ignored, None);
    assert_eq!(event.message, "");
    assert_eq!(event.subject.as_deref(), Some("external:deployer"));
}

// ---------------------------------------------------------------------------------------
// The AuthRouter, end to end
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn every_way_of_adding_routes_to_the_auth_router_guards_them() {
    let auth = Auth::builder(SERVICE)
        .static_token(StaticToken::new("ci-bot", CI_TOKEN))
        .plugin_tokens(PluginTokens::new(Arc::new(MemoryStore::default())))
        .build()
        .expect("builds");
    let admin = auth
        .router()
        .route("/tokens", get(echo), RoutePolicy::authenticated());
    let reports = auth
        .router()
        .route("/reports", get(echo), RoutePolicy::authenticated());
    let (app, bound) = auth
        .router()
        .route("/entities", get(echo), RoutePolicy::authenticated())
        .route_for(
            "/entities/{id}",
            [Method::GET],
            get(echo),
            RoutePolicy::authenticated(),
        )
        .nest("/admin", admin)
        .merge(reports)
        .fallback(echo)
        .into_parts()
        .expect("valid router");

    for path in [
        "/entities",
        "/entities/42",
        "/admin/tokens",
        "/reports",
        "/nobody-declared-this",
    ] {
        let reply = send(
            &app,
            request(Method::GET, path).body(Default::default()).unwrap(),
        )
        .await;
        assert_eq!(
            reply.status,
            StatusCode::UNAUTHORIZED,
            "{path}: {}",
            reply.body
        );
        assert_eq!(
            reply.www_authenticate(),
            Some(bare_challenge().as_str()),
            "{path}"
        );
        let reply = send(&app, bearer(Method::GET, path, CI_TOKEN)).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}: {}", reply.body);
        assert_eq!(reply.json()["subject"], "external:ci-bot", "{path}");
    }

    // The published JWKS is mounted, and public.
    let reply = send(
        &app,
        request(Method::GET, JWKS_PATH)
            .body(Default::default())
            .unwrap(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert!(reply.json()["keys"].is_array(), "{}", reply.body);

    // The Auth returned beside the router knows the router's routes.
    let routes: Vec<String> = bound
        .access_table()
        .rows()
        .iter()
        .map(|r| r.route.clone())
        .collect();
    for route in [
        "/entities",
        "/entities/{id}",
        "/admin/tokens",
        "/reports",
        JWKS_PATH,
        "<unlisted>",
    ] {
        assert!(routes.iter().any(|r| r == route), "{route} in {routes:?}");
    }
}

#[tokio::test]
async fn published_jwks_is_reachable_under_default_deny() {
    let audit = Arc::new(MemoryAuditSink::default());
    let app = Auth::builder(SERVICE)
        .plugin_tokens(PluginTokens::new(Arc::new(MemoryStore::default())))
        .default_policy(DefaultPolicy::Deny)
        .audit_sink(audit.clone())
        .build()
        .expect("builds")
        .router()
        .route("/healthz", get(echo), RoutePolicy::unauthenticated())
        .into_router()
        .expect("valid router");
    let reply = send(
        &app,
        request(Method::GET, JWKS_PATH)
            .body(Default::default())
            .unwrap(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(
        audit.last().expect("audited").reason,
        "unauthenticated_route"
    );
    // Anything else nobody declared is refused, credentials first.
    let reply = send(
        &app,
        request(Method::GET, "/other")
            .body(Default::default())
            .unwrap(),
    )
    .await;
    let event = audit.last().expect("audited");
    assert_refused(
        &reply,
        &event,
        401,
        &bare_challenge(),
        "missing_credentials",
    );
}

#[test]
fn config_and_router_policy_for_the_same_route_and_method_is_a_duplicate() {
    let yaml =
        "s2s:\n  serviceId: catalog\n  routes:\n    - path: /entities\n      methods: [GET]\n";
    let err = Auth::from_yaml_str(yaml)
        .expect("valid config")
        .router::<()>()
        .route_for(
            "/entities",
            [Method::GET],
            get(echo),
            RoutePolicy::unauthenticated(),
        )
        .into_router()
        .expect_err("two policies for GET /entities");
    assert_eq!(
        err.rule(),
        &ConfigRule::DuplicateRoutePolicy {
            pattern: "/entities".into()
        }
    );
    assert_eq!(err.path(), Some("router.route(\"/entities\").methods"));
}
