//! Plugin-to-plugin tokens from configuration: YAML with plugin tokens and a key store
//! (built with `build_async`), the errors that name the bad path, and a service with no
//! plugin tokens configured.

mod common;

use s2s_auth::error::ConfigRule;
use s2s_auth::error::IssueError;
use s2s_auth::plugin::JWKS_PATH;
use s2s_auth::{Auth, AuthBuilder, StaticDiscovery};
use serde_json::{Value, json};

use common::kit::header_and_claims;
use common::plugin::{Issuer, Receiver};
use common::serve;

// ---------------------------------------------------------------------------------------
// YAML
// ---------------------------------------------------------------------------------------

/// A service's YAML: `discovery` entries, plugin tokens with `key_duration` seconds, keys
/// in memory.
fn plugin_yaml(service: &str, discovery: &[(&str, &str)], key_duration: u64) -> String {
    let mut yaml = format!("s2s:\n  serviceId: {service}\n  discovery:\n");
    for (id, url) in discovery {
        yaml.push_str(&format!("    {id}: {url}\n"));
    }
    yaml.push_str(&format!(
        "  pluginTokens:\n    keyDurationSeconds: {key_duration}\n\
         backend:\n  auth:\n    pluginKeyStore:\n      type: memory\n"
    ));
    yaml
}

#[tokio::test]
async fn yaml_with_plugin_tokens_builds_async_and_issues_verifiable_tokens() {
    let yaml = plugin_yaml(
        "scaffolder",
        &[("catalog", "http://127.0.0.1:9/api/catalog")],
        600,
    );
    let auth = AuthBuilder::from_yaml_str(&yaml)
        .expect("valid YAML")
        .build_async()
        .await
        .expect("builds");
    let scaffolder = Issuer::serving(auth).await;
    let token = scaffolder.token("catalog").await;
    let (_, claims) = header_and_claims(&token);
    assert_eq!(
        claims["exp"].as_u64().expect("exp") - claims["iat"].as_u64().expect("iat"),
        600,
        "keyDurationSeconds bounds the lifetime"
    );

    // A receiver configured the same way (same key duration) accepts it.
    let catalog_yaml = plugin_yaml("catalog", &[("scaffolder", scaffolder.base())], 600);
    let catalog =
        Receiver::from_builder(AuthBuilder::from_yaml_str(&catalog_yaml).expect("valid YAML"))
            .await;
    catalog.accepts(&token, "scaffolder").await;
}

#[tokio::test]
async fn yaml_with_a_memory_key_store_builds_synchronously() {
    // Nothing to open: plain build() issues tokens.
    let yaml = plugin_yaml("scaffolder", &[], 600);
    let auth = AuthBuilder::from_yaml_str(&yaml)
        .expect("valid YAML")
        .build()
        .expect("a memory key store builds without build_async");
    assert!(auth.plugin_token("catalog").await.is_ok());
}

#[test]
fn yaml_naming_a_database_cannot_build_synchronously() {
    let yaml = "s2s:\n  serviceId: scaffolder\n  pluginTokens: {}\n\
                backend:\n  database:\n    client: better-sqlite3\n    connection: ':memory:'\n";
    let e = AuthBuilder::from_yaml_str(yaml)
        .expect("valid YAML")
        .build()
        .expect_err("a database must be opened");
    assert_eq!(e.path(), Some("backend.database"));
    assert_eq!(e.rule(), &ConfigRule::StoreNeedsAsync);
    assert!(e.to_string().contains("build_async"), "{e}");
}

#[test]
fn yaml_pg_without_connection_names_the_path() {
    let yaml = "s2s:\n  serviceId: scaffolder\n  pluginTokens: {}\n\
                backend:\n  auth:\n    pluginKeyStore:\n      type: database\n  database:\n    client: pg\n";
    let e = AuthBuilder::from_yaml_str(yaml).expect_err("pg needs a connection");
    assert_eq!(e.path(), Some("backend.database.connection"), "{e}");
}

#[test]
fn yaml_discovery_with_a_bad_entry_names_the_path() {
    for (entry, path) in [
        ("catalog: ftp://catalog.internal", "s2s.discovery.catalog"),
        ("catalog: not a url", "s2s.discovery.catalog"),
        ("catalog: 7007", "s2s.discovery.catalog"),
        ("Catalog: http://catalog.internal", "s2s.discovery.Catalog"),
        // A peer's keys over plain http, off loopback.
        ("catalog: http://catalog.internal", "s2s.discovery.catalog"),
    ] {
        let yaml = format!("s2s:\n  serviceId: search\n  discovery:\n    {entry}\n");
        let e = AuthBuilder::from_yaml_str(&yaml).expect_err(entry);
        assert_eq!(e.path(), Some(path), "{entry}: {e}");
    }
    // https, and plain http on loopback, are fine.
    for entry in [
        "catalog: https://catalog.internal",
        "catalog: http://127.0.0.1:7007",
    ] {
        let yaml = format!("s2s:\n  serviceId: search\n  discovery:\n    {entry}\n");
        assert!(AuthBuilder::from_yaml_str(&yaml).is_ok(), "{entry}");
    }
}

// ---------------------------------------------------------------------------------------
// Not configured
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn plugin_token_without_plugin_tokens_is_not_configured() {
    let auth = Auth::builder("search")
        .discovery(StaticDiscovery::new([("catalog", "http://127.0.0.1:9")]))
        .build()
        .expect("valid configuration");
    assert!(matches!(
        auth.plugin_token("catalog").await,
        Err(IssueError::NotConfigured)
    ));
    // Its JWKS route answers an empty set.
    let server = serve(auth.jwks_router().layer(auth.layer())).await;
    let jwks: Value = reqwest::get(format!("{}{JWKS_PATH}", server.base))
        .await
        .expect("answers")
        .json()
        .await
        .expect("JSON");
    assert_eq!(jwks, json!({ "keys": [] }));
}
