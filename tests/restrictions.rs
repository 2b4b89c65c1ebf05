//! `accessRestrictions` are enforced at the route: plugin, permission, and action (declared,
//! or implied by the method). Restrictions fail closed.

mod common;

use common::*;
use http::Method;
use s2s_auth::restrictions::{AccessRestriction, AccessRestrictions, Action};
use s2s_auth::{Auth, StaticToken};

#[tokio::test]
async fn rejects_token_restricted_to_other_plugin() {
    let h = Harness::standard();
    let (reply, event) = h
        .call(Method::GET, "/entities/42", Some(SCAFFOLDER_ONLY_TOKEN))
        .await;
    assert_forbidden(
        &reply,
        &event,
        "credential is restricted to plugins [scaffolder]; this service is `catalog`",
        "restricted_plugin",
    );
    assert_eq!(event.subject.as_deref(), Some("external:scaffolder-bot"));
}

#[tokio::test]
async fn rejects_declared_action_outside_restriction() {
    // `GET /entities/{id}/refresh` declares `action: update`: a read-restricted token may not
    // call it even though GET is a read method.
    let h = Harness::standard();
    let (reply, event) = h
        .call(Method::GET, "/entities/42/refresh", Some(READ_ACTION_TOKEN))
        .await;
    assert_forbidden(
        &reply,
        &event,
        "credential is restricted to other actions than `update`",
        "restricted_action",
    );
}

#[tokio::test]
async fn rejects_method_implied_action_outside_restriction() {
    // `/files/{*rest}` declares no action: DELETE implies `delete`. The token allows writes,
    // so it is the restriction, not read-only, that refuses.
    let h = Harness::standard();
    let (reply, event) = h
        .call(Method::DELETE, "/files/report.csv", Some(READ_ACTION_TOKEN))
        .await;
    assert_forbidden(
        &reply,
        &event,
        "credential is restricted to other actions than `delete`",
        "restricted_action",
    );
}

#[tokio::test]
async fn rejects_permission_outside_restriction() {
    let h = Harness::standard();
    let (reply, event) = h
        .call(Method::DELETE, "/entities/42", Some(READ_PERMISSION_TOKEN))
        .await;
    assert_forbidden(
        &reply,
        &event,
        "credential is restricted to other permissions than `catalog.entity.delete`",
        "restricted_permission",
    );
}

#[tokio::test]
async fn rejects_permission_restricted_token_on_route_without_permission() {
    let h = Harness::standard();
    let (reply, event) = h
        .call(
            Method::GET,
            "/files/report.csv",
            Some(READ_PERMISSION_TOKEN),
        )
        .await;
    assert_forbidden(
        &reply,
        &event,
        "credential is restricted to other permissions than (none declared)",
        "restricted_permission",
    );
}

#[tokio::test]
async fn accepts_request_matching_restrictions() {
    let h = Harness::standard();
    for token in [READ_ACTION_TOKEN, READ_PERMISSION_TOKEN] {
        let (reply, event) = h.call(Method::GET, "/entities/42", Some(token)).await;
        let principal = assert_allowed(&reply, &event);
        assert_eq!(principal["restrictions"][0]["plugin"], "catalog");
    }
    // Action-restricted to read, and the method implies read.
    let (reply, event) = h
        .call(Method::GET, "/files/report.csv", Some(READ_ACTION_TOKEN))
        .await;
    assert_allowed(&reply, &event);
}

#[tokio::test]
async fn builder_restrictions_are_enforced_like_yaml_ones() {
    let token = "builder-restricted-token-5d0c";
    let restrictions = AccessRestrictions::new([
        AccessRestriction::plugin("search"),
        AccessRestriction::plugin(SERVICE)
            .permissions(["catalog.entity.read"])
            .actions([Action::Read]),
    ])
    .expect("valid restrictions");
    let h = Harness::new(
        Auth::builder(SERVICE).static_token(
            StaticToken::new("indexer", token)
                .allow_writes(true)
                .restrict(restrictions),
        ),
    );
    let (reply, event) = h.call(Method::GET, "/entities/42", Some(token)).await;
    assert_eq!(reply.status, 403);
    // The builder registered no route, so `/entities/42` declares no permission.
    assert_eq!(event.reason, "restricted_permission");
}
