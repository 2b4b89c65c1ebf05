//! Configuration errors: each names the exact path of the bad value, and none prints a
//! secret (neither `Display` nor `Debug`).

mod common;

use common::*;
use s2s_auth::error::ConfigRule;
use s2s_auth::{Auth, AuthBuilder, ConfigError, StaticToken};

/// Parses and builds `yaml`, expects an error, and checks that no `secret` appears in it.
#[track_caller]
fn config_error(yaml: &str, env: impl Fn(&str) -> Option<String>, secrets: &[&str]) -> ConfigError {
    let err = AuthBuilder::from_yaml_str_with_env(yaml, env)
        .and_then(AuthBuilder::build)
        .expect_err("the configuration is invalid");
    let shown = format!("{err} {err:?}");
    for secret in secrets {
        for form in leak_forms(secret) {
            assert!(!shown.contains(&form), "{form:?} leaked in {shown:?}");
        }
    }
    err
}

/// `s2s: {serviceId: catalog}` followed by `backend.auth.externalAccess: <entries>`.
fn with_entries(entries: &str) -> String {
    format!("s2s:\n  serviceId: catalog\nbackend:\n  auth:\n    externalAccess:\n{entries}")
}

const GOOD_ENTRY: &str =
    "      - type: static\n        options: { token: a-good-first-token, subject: first }\n";

#[test]
fn rejects_7_character_config_token() {
    let yaml = with_entries(&format!(
        "{GOOD_ENTRY}      - type: static\n        options: {{ token: Ab3-xy7, subject: ci }}\n"
    ));
    let err = config_error(&yaml, no_env, &["Ab3-xy7", "a-good-first-token"]);
    assert_eq!(
        err.path(),
        Some("backend.auth.externalAccess[1].options.token")
    );
    assert_eq!(err.rule(), &ConfigRule::TokenTooShort { min: 8 });
    // The one place text is checked: what an operator reads.
    assert_eq!(
        err.to_string(),
        "backend.auth.externalAccess[1].options.token: token must be at least 8 characters"
    );
}

#[test]
fn accepts_8_character_config_token() {
    let yaml =
        with_entries("      - type: static\n        options: { token: Ab3-xy78, subject: ci }\n");
    assert!(
        AuthBuilder::from_yaml_str_with_env(&yaml, no_env)
            .and_then(AuthBuilder::build)
            .is_ok()
    );
}

#[test]
fn rejects_whitespace_in_config_token() {
    for token in [
        "two words-token",
        "tab\\there-token",
        "ends-in-newline-token\\n",
        "no\\u00a0break-space",
    ] {
        let yaml = with_entries(&format!(
            "      - type: static\n        options: {{ token: \"{token}\", subject: ci }}\n"
        ));
        let err = config_error(
            &yaml,
            no_env,
            &["two words-token", "here-token", "break-space"],
        );
        assert_eq!(
            err.path(),
            Some("backend.auth.externalAccess[0].options.token"),
            "{token}"
        );
        assert_eq!(err.rule(), &ConfigRule::TokenWhitespace, "{err}");
    }
}

#[test]
fn rejects_non_ascii_config_token() {
    let yaml = with_entries(
        "      - type: static\n        options: { token: caf\u{e9}-long-token, subject: ci }\n",
    );
    let err = config_error(&yaml, no_env, &["caf\u{e9}-long-token"]);
    assert_eq!(
        err.path(),
        Some("backend.auth.externalAccess[0].options.token")
    );
}

#[test]
fn rejects_jwt_shaped_config_token() {
    let yaml = with_entries(&format!(
        "      - type: static\n        options: {{ token: {JWT_SHAPED_TOKEN}, subject: ci }}\n"
    ));
    let err = config_error(&yaml, no_env, &[JWT_SHAPED_TOKEN]);
    assert_eq!(
        err.path(),
        Some("backend.auth.externalAccess[0].options.token")
    );
}

#[test]
fn rejects_whitespace_in_subject() {
    let yaml = with_entries(
        "      - type: static\n        options: { token: a-long-enough-token, subject: 'ci bot' }\n",
    );
    let err = config_error(&yaml, no_env, &["a-long-enough-token"]);
    assert_eq!(
        err.path(),
        Some("backend.auth.externalAccess[0].options.subject")
    );
}

#[test]
fn rejects_duplicate_plaintext_token() {
    let yaml = with_entries(&format!(
        "{GOOD_ENTRY}      - type: static\n        options: {{ token: a-good-first-token, subject: other }}\n"
    ));
    let err = config_error(&yaml, no_env, &["a-good-first-token"]);
    assert_eq!(
        err.path(),
        Some("backend.auth.externalAccess[1].options.token")
    );
}

#[test]
fn rejects_plaintext_and_sha256_of_the_same_token() {
    let digest = sha256_hex("a-good-first-token");
    let yaml = with_entries(&format!(
        "{GOOD_ENTRY}      - type: static\n        options: {{ tokenSha256: {digest}, subject: other }}\n"
    ));
    let err = config_error(&yaml, no_env, &["a-good-first-token", &digest]);
    assert_eq!(
        err.path(),
        Some("backend.auth.externalAccess[1].options.tokenSha256")
    );

    // And the other way round.
    let yaml = with_entries(&format!(
        "      - type: static\n        options: {{ tokenSha256: {digest}, subject: other }}\n{GOOD_ENTRY}"
    ));
    let err = config_error(&yaml, no_env, &["a-good-first-token", &digest]);
    assert_eq!(
        err.path(),
        Some("backend.auth.externalAccess[1].options.token")
    );
}

#[test]
fn rejects_token_and_token_sha256_together() {
    let digest = sha256_hex("another-long-token");
    let yaml = with_entries(&format!(
        "      - type: static\n        options: {{ token: a-good-first-token, tokenSha256: {digest}, subject: ci }}\n"
    ));
    let err = config_error(&yaml, no_env, &["a-good-first-token", &digest]);
    assert_eq!(err.path(), Some("backend.auth.externalAccess[0].options"));
}

#[test]
fn rejects_malformed_token_sha256() {
    let yaml = with_entries(
        "      - type: static\n        options: { tokenSha256: abc123, subject: ci }\n",
    );
    let err = config_error(&yaml, no_env, &[]);
    assert_eq!(
        err.path(),
        Some("backend.auth.externalAccess[0].options.tokenSha256")
    );
}

#[test]
fn rejects_entry_without_token() {
    let yaml = with_entries("      - type: static\n        options: { subject: ci }\n");
    let err = config_error(&yaml, no_env, &[]);
    assert_eq!(
        err.path(),
        Some("backend.auth.externalAccess[0].options.token")
    );
}

#[test]
fn rejects_unknown_key_in_options() {
    let yaml = with_entries(
        "      - type: static\n        options: { token: a-long-enough-token, subject: ci, alowWrites: true }\n",
    );
    let err = config_error(&yaml, no_env, &["a-long-enough-token"]);
    assert_eq!(
        err.path(),
        Some("backend.auth.externalAccess[0].options.alowWrites")
    );
}

#[test]
fn rejects_unknown_key_in_entry() {
    let yaml = with_entries(
        "      - type: static\n        options: { token: a-long-enough-token, subject: ci }\n        accessRestriction:\n          - plugin: catalog\n",
    );
    let err = config_error(&yaml, no_env, &["a-long-enough-token"]);
    assert_eq!(
        err.path(),
        Some("backend.auth.externalAccess[0].accessRestriction")
    );
}

#[test]
fn rejects_unknown_key_in_restriction() {
    let yaml = with_entries(
        "      - type: static\n        options: { token: a-long-enough-token, subject: ci }\n        accessRestrictions:\n          - plugin: catalog\n            permissions: [catalog.entity.read]\n",
    );
    let err = config_error(&yaml, no_env, &["a-long-enough-token"]);
    assert_eq!(
        err.path(),
        Some("backend.auth.externalAccess[0].accessRestrictions[0].permissions")
    );
}

#[test]
fn rejects_unknown_key_in_permission_attribute() {
    let yaml = with_entries(
        "      - type: static\n        options: { token: a-long-enough-token, subject: ci }\n        accessRestrictions:\n          - plugin: catalog\n            permissionAttribute: { actions: [read] }\n",
    );
    let err = config_error(&yaml, no_env, &["a-long-enough-token"]);
    assert_eq!(
        err.path(),
        Some("backend.auth.externalAccess[0].accessRestrictions[0].permissionAttribute.actions")
    );
}

#[test]
fn rejects_unknown_key_in_s2s() {
    let yaml = "s2s:\n  serviceId: catalog\n  defaultPolicies: deny\n";
    let err = config_error(yaml, no_env, &[]);
    assert_eq!(err.path(), Some("s2s.defaultPolicies"));
}

#[test]
fn rejects_unknown_key_in_route() {
    let yaml =
        "s2s:\n  serviceId: catalog\n  routes:\n    - path: /entities\n      method: [GET]\n";
    let err = config_error(yaml, no_env, &[]);
    assert_eq!(err.path(), Some("s2s.routes[0].method"));
}

#[test]
fn rejects_unknown_action_in_permission_attribute() {
    let yaml = with_entries(
        "      - type: static\n        options: { token: a-long-enough-token, subject: ci }\n        accessRestrictions:\n          - plugin: catalog\n            permissionAttribute:\n              action: [read, remove]\n",
    );
    let err = config_error(&yaml, no_env, &["a-long-enough-token"]);
    assert_eq!(
        err.path(),
        Some("backend.auth.externalAccess[0].accessRestrictions[0].permissionAttribute.action[1]")
    );
}

#[test]
fn rejects_unknown_action_on_route() {
    let yaml = "s2s:\n  serviceId: catalog\n  routes:\n    - path: /entities\n      action: Read\n";
    let err = config_error(yaml, no_env, &[]);
    assert_eq!(err.path(), Some("s2s.routes[0].action"));
}

#[test]
fn rejects_same_plugin_twice_in_access_restrictions() {
    let yaml = with_entries(
        "      - type: static\n        options: { token: a-long-enough-token, subject: ci }\n        accessRestrictions:\n          - plugin: catalog\n          - plugin: search\n          - plugin: catalog\n",
    );
    let err = config_error(&yaml, no_env, &["a-long-enough-token"]);
    assert_eq!(
        err.path(),
        Some("backend.auth.externalAccess[0].accessRestrictions[2].plugin")
    );
}

#[test]
fn rejects_unknown_external_access_type() {
    // `jwks` is a type now; type names are case-sensitive.
    for kind in ["magic", "JWKS"] {
        let yaml = with_entries(&format!(
            "      - type: {kind}\n        options: {{ token: a-long-enough-token, subject: ci }}\n"
        ));
        let err = config_error(&yaml, no_env, &["a-long-enough-token"]);
        assert_eq!(
            err.path(),
            Some("backend.auth.externalAccess[0].type"),
            "{kind}"
        );
    }
}

#[test]
fn rejects_missing_env_variable() {
    let yaml = with_entries(&format!(
        "{GOOD_ENTRY}      - type: static\n        options: {{ token: '${{NOT_SET_TOKEN}}', subject: ci }}\n"
    ));
    let err = config_error(&yaml, no_env, &["a-good-first-token"]);
    assert_eq!(
        err.rule(),
        &ConfigRule::MissingEnv {
            var: "NOT_SET_TOKEN".to_owned(),
        }
    );
    assert_eq!(
        err.path(),
        Some("backend.auth.externalAccess[1].options.token")
    );
}

#[test]
fn env_substitution_fills_a_token() {
    let yaml = with_entries(
        "      - type: static\n        options: { token: 'prefix-${CI_TOKEN}', subject: ci }\n",
    );
    let builder = AuthBuilder::from_yaml_str_with_env(&yaml, |name| {
        (name == "CI_TOKEN").then(|| CI_TOKEN.to_owned())
    })
    .expect("valid configuration");
    let debug = format!("{builder:?}");
    for form in leak_forms(CI_TOKEN) {
        assert!(!debug.contains(&form), "{debug}");
    }
    assert!(builder.build().is_ok());
}

#[test]
fn env_values_cannot_inject_yaml() {
    // Substitution happens after parsing: a value with YAML syntax stays one string (and
    // here, a token with whitespace in it, which the token rules then refuse).
    let injected = "x-token-value\nallowWrites: true";
    let yaml = with_entries(
        "      - type: static\n        options: { token: '${CI_TOKEN}', subject: ci }\n",
    );
    let err = config_error(
        &yaml,
        |name| (name == "CI_TOKEN").then(|| injected.to_owned()),
        &[injected, "x-token-value"],
    );
    assert_eq!(
        err.path(),
        Some("backend.auth.externalAccess[0].options.token")
    );
}

#[test]
fn rejects_bad_expires_at() {
    let yaml = with_entries(
        "      - type: static\n        options: { token: a-long-enough-token, subject: ci, expiresAt: 'next tuesday' }\n",
    );
    let err = config_error(&yaml, no_env, &["a-long-enough-token"]);
    assert_eq!(
        err.path(),
        Some("backend.auth.externalAccess[0].options.expiresAt")
    );
}

#[test]
fn rejects_conflicting_route_patterns() {
    let yaml = "s2s:\n  serviceId: catalog\n  routes:\n    - path: /entities/{id}\n    - path: /entities/{name}\n";
    let err = config_error(yaml, no_env, &[]);
    assert_eq!(err.path(), Some("s2s.routes[1].path"));
}

#[test]
fn rejects_route_without_leading_slash() {
    let yaml = "s2s:\n  serviceId: catalog\n  routes:\n    - path: entities\n";
    let err = config_error(yaml, no_env, &[]);
    assert_eq!(err.path(), Some("s2s.routes[0].path"));
}

#[test]
fn rejects_two_policies_for_the_same_method() {
    let yaml = "s2s:\n  serviceId: catalog\n  routes:\n    - path: /entities\n      methods: [GET]\n    - path: /entities\n      methods: [POST, GET]\n";
    let err = config_error(yaml, no_env, &[]);
    assert_eq!(err.path(), Some("s2s.routes[1].methods"));
}

#[test]
fn rejects_unknown_method() {
    let yaml = "s2s:\n  serviceId: catalog\n  routes:\n    - path: /entities\n      methods: [GET, FETCH]\n";
    let err = config_error(yaml, no_env, &[]);
    assert_eq!(err.path(), Some("s2s.routes[0].methods[1]"));
    // Method names are case-sensitive (RFC 9110).
    let yaml = "s2s:\n  serviceId: catalog\n  routes:\n    - path: /entities\n      methods: get\n";
    let err = config_error(yaml, no_env, &[]);
    assert_eq!(err.path(), Some("s2s.routes[0].methods"));
}

#[test]
fn rejects_unknown_credential_kind_in_allow() {
    let yaml = "s2s:\n  serviceId: catalog\n  routes:\n    - path: /entities\n      allow: [static, robot]\n";
    let err = config_error(yaml, no_env, &[]);
    assert_eq!(err.path(), Some("s2s.routes[0].allow[1]"));
}

#[test]
fn rejects_unauthenticated_route_with_other_rules() {
    let yaml = "s2s:\n  serviceId: catalog\n  routes:\n    - path: /healthz\n      unauthenticated: true\n      sensitive: true\n";
    let err = config_error(yaml, no_env, &[]);
    assert_eq!(err.path(), Some("s2s.routes[0]"));
}

#[test]
fn rejects_invalid_service_id() {
    let err = config_error("s2s:\n  serviceId: Catalog/v2\n", no_env, &[]);
    assert_eq!(err.path(), Some("s2s.serviceId"));
    let err = Auth::builder("Catalog/v2").build().expect_err("invalid id");
    assert_eq!(err.path(), Some("s2s.serviceId"));
}

#[test]
fn yaml_syntax_error_does_not_echo_the_input() {
    let secret = "s3cr3t-in-a-broken-file";
    let yaml = format!(
        "backend:\n  auth:\n    externalAccess:\n      - type: static\n        options: {{ token: [{secret}\n   : : :"
    );
    let err = config_error(&yaml, no_env, &[secret]);
    assert!(matches!(err.rule(), ConfigRule::Syntax { .. }), "{err}");
    assert_eq!(err.path(), None);
}

#[test]
fn builder_errors_name_the_static_token() {
    let err = Auth::builder(SERVICE)
        .static_token(StaticToken::new("first", "a-good-first-token"))
        .static_token(StaticToken::new("second", "Ab3-xy7"))
        .build()
        .expect_err("7 characters is too short");
    assert_eq!(err.path(), Some("static_token[1].options.token"));
    assert!(!format!("{err} {err:?}").contains("Ab3-xy7"));
}

/// `s2s.verifiedCacheCapacity` is read, and out of range or not a number it is an error
/// naming that path (the same rule as `AuthBuilder::verified_cache_capacity`).
#[test]
fn verified_cache_capacity_from_yaml() {
    let yaml =
        |value: &str| format!("s2s:\n  serviceId: catalog\n  verifiedCacheCapacity: {value}\n");
    for ok in ["0", "1", "50000", "10000000"] {
        AuthBuilder::from_yaml_str(&yaml(ok))
            .and_then(AuthBuilder::build)
            .unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
    for bad in ["10000001", "-1", "lots", "1.5"] {
        let err = AuthBuilder::from_yaml_str(&yaml(bad))
            .and_then(AuthBuilder::build)
            .expect_err(bad);
        assert_eq!(
            err.path(),
            Some("s2s.verifiedCacheCapacity"),
            "{bad}: {err}"
        );
    }
}
