//! The access table: rendered as Markdown and JSON, one column per credential kind and per
//! configured caller, and never in disagreement with what the layer does.

mod common;

use common::*;
use http::Method;
use serde_json::Value;

/// The JSON row for `route` and `method`.
fn row<'a>(json: &'a Value, route: &str, method: &str) -> &'a Value {
    json["rows"]
        .as_array()
        .expect("rows is a list")
        .iter()
        .find(|r| r["route"] == route && r["method"] == method)
        .unwrap_or_else(|| panic!("no row for {method} {route}"))
}

#[test]
fn markdown_lists_routes_and_columns() {
    let md = Harness::standard().auth.access_table().to_markdown();
    assert!(
        md.starts_with("Access table for service `catalog`\n"),
        "{md}"
    );
    assert!(
        md.contains(
            "| route | method | none | static | legacy | external:ci-bot | external:ci-bot (#2) | external:hashed-caller |"
        ),
        "{md}"
    );
    assert!(
        md.contains("| `/healthz` | * (read) | allow | allow |"),
        "{md}"
    );
    assert!(
        md.contains("| `/files/{*rest}` | * (write) | 401 needs credentials | 403 read-only |"),
        "{md}"
    );
    assert!(
        md.contains("| `/imports` | POST | 401 needs credentials | allow |"),
        "{md}"
    );
    assert!(md.contains("| `<unlisted>` | * (read) |"), "{md}");
}

#[test]
fn json_static_post_on_plain_route_is_read_only() {
    let json = Harness::standard().auth.access_table().to_json();
    assert_eq!(json["serviceId"], "catalog");
    let cell = &row(&json, "/files/{*rest}", "* (write)")["cells"]["static"];
    assert_eq!(cell["allowed"], false);
    assert_eq!(cell["status"], 403);
    assert_eq!(cell["reason"], "read_only_credential");
    assert_eq!(
        cell["message"],
        "static credential is read-only; POST needs allowWrites on the token or allowStaticWrites on the route"
    );
    // The route that allows static writes does.
    let cell = &row(&json, "/imports", "POST")["cells"]["static"];
    assert_eq!(cell["allowed"], true);
    assert_eq!(cell["status"], 200);
    assert_eq!(cell["reason"], "allowed");
}

#[test]
fn json_has_a_column_per_configured_caller() {
    let json = Harness::standard().auth.access_table().to_json();
    let columns: Vec<&str> = json["columns"]
        .as_array()
        .expect("columns is a list")
        .iter()
        .map(|c| c.as_str().expect("column names are strings"))
        .collect();
    assert_eq!(
        columns,
        [
            "none",
            "static",
            "legacy",
            "external:ci-bot",
            "external:ci-bot (#2)",
            "external:hashed-caller",
            "external:old-job",
            "external:deployer",
            "external:scaffolder-bot",
            "external:reader",
            "external:entity-reader",
        ]
    );
    let cells = &row(&json, "/files/{*rest}", "* (write)")["cells"];
    assert_eq!(cells["external:deployer"]["allowed"], true);
    assert_eq!(cells["external:ci-bot"]["reason"], "read_only_credential");
    assert_eq!(cells["none"]["status"], 401);
    assert_eq!(cells["none"]["reason"], "missing_credentials");
}

#[test]
fn json_restricted_caller_column_shows_restricted_plugin() {
    let json = Harness::standard().auth.access_table().to_json();
    let cell = &row(&json, "/entities/{id}", "GET")["cells"]["external:scaffolder-bot"];
    assert_eq!(cell["allowed"], false);
    assert_eq!(cell["status"], 403);
    assert_eq!(cell["reason"], "restricted_plugin");
    let cell = &row(&json, "/entities/{id}", "DELETE")["cells"]["external:entity-reader"];
    assert_eq!(cell["reason"], "restricted_permission");
    let cell = &row(&json, "/entities/{id}/refresh", "GET")["cells"]["external:reader"];
    assert_eq!(cell["reason"], "restricted_action");
}

#[test]
fn expired_caller_column_shows_token_expired() {
    let json = Harness::standard().auth.access_table().to_json();
    let cells = &row(&json, "/entities/{id}", "GET")["cells"];
    assert_eq!(cells["external:old-job"]["allowed"], false);
    assert_eq!(cells["external:old-job"]["status"], 401);
    assert_eq!(cells["external:old-job"]["reason"], "token_expired");
    // Unauthenticated routes let it in, as the layer does (the token is ignored there).
    let cells = &row(&json, "/healthz", "* (read)")["cells"];
    assert_eq!(cells["external:old-job"]["allowed"], true);
}

#[test]
fn table_shows_no_static_column_without_static_tokens() {
    let auth = s2s_auth::Auth::builder(SERVICE)
        .build()
        .expect("valid configuration");
    assert_eq!(auth.access_table().columns(), ["none"]);
}

/// A concrete path for a row's route pattern.
fn concrete_path(route: &str) -> String {
    match route {
        "<unlisted>" => "/not/listed".to_owned(),
        r => r.replace("{id}", "42").replace("{*rest}", "a/b.txt"),
    }
}

#[tokio::test]
async fn table_agrees_with_live_requests() {
    let h = Harness::standard();
    let table = h.auth.access_table();
    let columns = table.columns().to_vec();
    // Column order: none, static (a read-only unrestricted static token), legacy (a valid
    // token signed with `backend.auth.keys[0]`), then the configured callers in
    // configuration order.
    let legacy = kit::legacy_token(LEGACY_SECRET, &kit::legacy_claims());
    let mut tokens: Vec<Option<&str>> = vec![None, Some(CI_TOKEN), Some(&legacy)];
    tokens.extend(CONFIGURED_TOKENS.iter().map(|t| Some(*t)));
    assert_eq!(columns.len(), tokens.len());

    for row in table.rows() {
        let method = match row.method.as_str() {
            "* (read)" => Method::GET,
            "* (write)" => Method::POST,
            "other (read)" => Method::OPTIONS,
            "other (write)" => Method::PATCH,
            m => m.parse().expect("a method name"),
        };
        let path = concrete_path(&row.route);
        for ((column, cell), token) in row.cells.iter().zip(&tokens) {
            let (reply, event) = h.call(method.clone(), &path, *token).await;
            let live_reason = match event.reason.as_str() {
                "unauthenticated_route" => "allowed",
                r => r,
            };
            assert_eq!(
                (cell.status, cell.reason.as_str()),
                (reply.status.as_u16(), live_reason),
                "{method} {path} as {column}: table says {cell:?}, layer says {event:?}"
            );
        }
    }
}

#[test]
fn plugin_and_obo_columns_where_they_can_verify() {
    use s2s_auth::{Auth, RoutePolicy, StaticDiscovery, UserProvider};
    let discovery = || StaticDiscovery::new([("scaffolder", "http://127.0.0.1:9")]);
    let route = |b: s2s_auth::AuthBuilder| {
        b.route(
            "/admin/tokens",
            [Method::POST],
            RoutePolicy::authenticated().sensitive(),
        )
        .build()
        .expect("builds")
    };
    let columns = |auth: &Auth| auth.access_table().columns().to_vec();

    // Plugin tokens, but nothing to verify a user with: no obo column.
    let plugin_only = route(Auth::builder(SERVICE).discovery(discovery()));
    assert_eq!(columns(&plugin_only), ["none", "plugin"]);
    // A Backstage identity provider checks the users of `obo`; trusted actors name them.
    let backstage = route(
        Auth::builder(SERVICE)
            .discovery(discovery())
            .user_provider(UserProvider::backstage("https://backstage/api/auth")),
    );
    assert_eq!(columns(&backstage), ["none", "user", "plugin", "obo"]);
    let actors = route(
        Auth::builder(SERVICE)
            .discovery(discovery())
            .trusted_actors(["scaffolder"]),
    );
    assert_eq!(columns(&actors), ["none", "plugin", "obo"]);

    // Acting for a user is refused on sensitive routes; the user alone is not.
    let json = backstage.access_table().to_json();
    let cells = &row(&json, "/admin/tokens", "POST")["cells"];
    assert_eq!(cells["user"]["status"], 200);
    assert_eq!(cells["obo"]["status"], 403);
    assert_eq!(cells["obo"]["reason"], "sensitive_route");
}
