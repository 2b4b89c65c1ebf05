//! YAML configuration of the JWT verifiers: `type: jwks` and `type: legacy` entries, the
//! deprecated `backend.auth.keys`, `s2s.users`, `s2s.jwks` and `s2s.leewaySeconds`. Errors
//! name the exact path and never print a secret; a valid file works end to end.

mod common;

use std::time::{Duration, Instant};

use common::kit::*;
use common::*;
use http::Method;
use s2s_auth::error::ConfigRule;
use s2s_auth::{AuthBuilder, ConfigError};
use serde_json::json;

/// Parses and builds `yaml` (with `env`), expects an error, and checks that none of
/// `secrets` appears in its `Display` or `Debug` in any encoding.
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

#[track_caller]
fn error_at(yaml: &str, path: &str) -> ConfigError {
    let err = config_error(yaml, no_env, &[]);
    assert_eq!(err.path(), Some(path), "{err}");
    err
}

/// `backend.auth.externalAccess` with a static entry first, then `entry` (so it is `[1]`).
fn second_entry(entry: &str) -> String {
    format!(
        "s2s:\n  serviceId: catalog\nbackend:\n  auth:\n    externalAccess:\n      - type: static\n        options: {{ token: a-good-first-token, subject: first }}\n{entry}"
    )
}

/// A `type: jwks` entry with these options.
fn jwks_entry(options: &str) -> String {
    second_entry(&format!(
        "      - type: jwks\n        options: {{ {options} }}\n"
    ))
}

/// An `s2s` section with `extra` lines (indented two spaces) after `serviceId`.
fn s2s_with(extra: &str) -> String {
    format!("s2s:\n  serviceId: catalog\n{extra}")
}

const URL: &str = "url: 'https://idp.example.com/jwks'";

#[test]
fn jwks_entry_without_issuer_is_refused_with_the_reason() {
    let err = error_at(
        &jwks_entry(&format!("{URL}, audience: catalog")),
        "backend.auth.externalAccess[1].options.issuer",
    );
    assert_eq!(err.rule(), &ConfigRule::MissingIssuerOrAudience);
    let message = err.to_string();
    assert!(
        message.contains("dangerouslyAllowMissingIssuerOrAudience"),
        "{message}"
    );
}

#[test]
fn jwks_entry_without_audience_is_refused() {
    let err = error_at(
        &jwks_entry(&format!("{URL}, issuer: 'https://idp.example.com'")),
        "backend.auth.externalAccess[1].options.audience",
    );
    assert_eq!(err.rule(), &ConfigRule::MissingIssuerOrAudience);
    // Neither: the issuer is named first.
    error_at(
        &jwks_entry(URL),
        "backend.auth.externalAccess[1].options.issuer",
    );
}

#[test]
fn jwks_entry_with_the_explicit_opt_out_builds() {
    for options in [
        format!("{URL}, dangerouslyAllowMissingIssuerOrAudience: true"),
        format!("{URL}, audience: catalog, dangerouslyAllowMissingIssuerOrAudience: true"),
        format!(
            "{URL}, issuer: 'https://idp.example.com', dangerouslyAllowMissingIssuerOrAudience: true"
        ),
    ] {
        AuthBuilder::from_yaml_str_with_env(&jwks_entry(&options), no_env)
            .and_then(AuthBuilder::build)
            .unwrap_or_else(|e| panic!("{options}: {e}"));
    }
    // `false` is the same as not saying it.
    error_at(
        &jwks_entry(&format!(
            "{URL}, dangerouslyAllowMissingIssuerOrAudience: false"
        )),
        "backend.auth.externalAccess[1].options.issuer",
    );
    error_at(
        &jwks_entry(&format!(
            "{URL}, dangerouslyAllowMissingIssuerOrAudience: 'yes'"
        )),
        "backend.auth.externalAccess[1].options.dangerouslyAllowMissingIssuerOrAudience",
    );
}

const ISS_AUD: &str = "issuer: 'https://idp.example.com', audience: catalog";

#[test]
fn jwks_entry_refuses_hmac_algorithms() {
    for algorithm in ["HS256", "[ES256, HS256]", "HS512"] {
        let err = error_at(
            &jwks_entry(&format!("{URL}, {ISS_AUD}, algorithm: {algorithm}")),
            "backend.auth.externalAccess[1].options.algorithm",
        );
        assert_eq!(err.rule(), &ConfigRule::HmacFromJwks, "{err}");
    }
}

#[test]
fn jwks_entry_refuses_unknown_algorithms() {
    error_at(
        &jwks_entry(&format!("{URL}, {ISS_AUD}, algorithm: none")),
        "backend.auth.externalAccess[1].options.algorithm",
    );
    let err = error_at(
        &jwks_entry(&format!("{URL}, {ISS_AUD}, algorithm: [RS256, RS257]")),
        "backend.auth.externalAccess[1].options.algorithm[1]",
    );
    assert!(
        matches!(
            err.rule(),
            ConfigRule::UnknownName {
                what: "algorithm",
                ..
            }
        ),
        "{err}"
    );
    error_at(
        &jwks_entry(&format!("{URL}, {ISS_AUD}, algorithm: []")),
        "backend.auth.externalAccess[1].options.algorithm",
    );
}

#[test]
fn jwks_entry_checks_url_and_subject_prefix() {
    error_at(
        &jwks_entry(&format!("url: 'file:///etc/keys.json', {ISS_AUD}")),
        "backend.auth.externalAccess[1].options.url",
    );
    error_at(
        &jwks_entry(ISS_AUD),
        "backend.auth.externalAccess[1].options.url",
    );
    for prefix in ["'a:b'", "'a b'", "''"] {
        error_at(
            &jwks_entry(&format!("{URL}, {ISS_AUD}, subjectPrefix: {prefix}")),
            "backend.auth.externalAccess[1].options.subjectPrefix",
        );
    }
}

#[test]
fn jwks_entry_refuses_unknown_keys() {
    error_at(
        &jwks_entry(&format!("{URL}, {ISS_AUD}, issuers: ['https://x']")),
        "backend.auth.externalAccess[1].options.issuers",
    );
    error_at(
        &jwks_entry(&format!("{URL}, {ISS_AUD}, jwksUri: 'https://x'")),
        "backend.auth.externalAccess[1].options.jwksUri",
    );
}

/// A `type: legacy` entry with `secret: ${SECRET}` and `subject`.
fn legacy_entry(subject: &str) -> String {
    second_entry(&format!(
        "      - type: legacy\n        options:\n          secret: ${{SECRET}}\n          subject: {subject}\n"
    ))
}

#[test]
fn legacy_secret_must_be_base64_of_16_bytes() {
    let not_base64 = "this is not base64 but it is secret!";
    let short = b64_std(b"fifteen-bytes!!"); // 15 bytes
    for secret in [not_base64.to_owned(), short.clone(), "c2VjcmV0".to_owned()] {
        let env = |name: &str| (name == "SECRET").then(|| secret.clone());
        let err = config_error(&legacy_entry("old-backend"), env, &[&secret]);
        assert_eq!(
            err.path(),
            Some("backend.auth.externalAccess[1].options.secret"),
            "{err}"
        );
    }
    // 16 bytes is enough.
    let sixteen = b64_std(b"sixteen-bytes!!!");
    AuthBuilder::from_yaml_str_with_env(&legacy_entry("old-backend"), |_| Some(sixteen.clone()))
        .and_then(AuthBuilder::build)
        .expect("16 bytes is enough");
}

#[test]
fn legacy_entry_checks_subject_and_keys() {
    let secret = b64_std(b"a-perfectly-good-legacy-secret");
    let env = |_: &str| Some(secret.clone());
    let err = config_error(&legacy_entry("'old backend'"), env, &[&secret]);
    assert_eq!(
        err.path(),
        Some("backend.auth.externalAccess[1].options.subject")
    );
    let yaml = second_entry(
        "      - type: legacy\n        options: { secret: '${SECRET}', subject: a, algorithm: HS256 }\n",
    );
    let err = config_error(&yaml, env, &[&secret]);
    assert_eq!(
        err.path(),
        Some("backend.auth.externalAccess[1].options.algorithm")
    );
    let yaml = second_entry("      - type: legacy\n        options: { subject: a }\n");
    error_at(&yaml, "backend.auth.externalAccess[1].options.secret");
}

#[test]
fn deprecated_keys_errors_point_at_the_key() {
    let good = b64_std(b"a-perfectly-good-legacy-secret");
    let short = b64_std(b"too-short");
    let yaml = format!(
        "s2s:\n  serviceId: catalog\nbackend:\n  auth:\n    keys:\n      - secret: {good}\n      - secret: {short}\n"
    );
    let err = config_error(&yaml, no_env, &[&good, &short]);
    assert_eq!(err.path(), Some("backend.auth.keys[1].secret"));
    let yaml = "s2s:\n  serviceId: catalog\nbackend:\n  auth:\n    keys:\n      - secret: '!!!'\n";
    let err = config_error(yaml, no_env, &["!!!"]);
    assert_eq!(err.path(), Some("backend.auth.keys[0].secret"));
    let yaml = format!(
        "s2s:\n  serviceId: catalog\nbackend:\n  auth:\n    keys:\n      - secret: {good}\n        kid: one\n"
    );
    let err = config_error(&yaml, no_env, &[&good]);
    assert_eq!(err.path(), Some("backend.auth.keys[0].kid"));
    error_at(
        "s2s:\n  serviceId: catalog\nbackend:\n  auth:\n    keys:\n      - {}\n",
        "backend.auth.keys[0].secret",
    );
}

#[test]
fn users_entries_are_checked() {
    error_at(
        &s2s_with("  users:\n    - issuer: 'https://login.example.com'\n"),
        "s2s.users[0].audience",
    );
    error_at(
        &s2s_with(
            "  users:\n    - type: oidc\n      issuer: 'https://login.example.com'\n      audience: catalog\n    - type: oidc\n      issuer: 'https://other.example.com'\n",
        ),
        "s2s.users[1].audience",
    );
    // Backstage providers default to `aud: backstage`.
    AuthBuilder::from_yaml_str_with_env(
        &s2s_with("  users:\n    - type: backstage\n      issuer: 'https://backstage.example.com/api/auth'\n"),
        no_env,
    )
    .and_then(AuthBuilder::build)
    .expect("a Backstage provider needs no audience");
    let user = |extra: &str| {
        s2s_with(&format!(
            "  users:\n    - issuer: 'https://login.example.com'\n      audience: catalog\n{extra}"
        ))
    };
    error_at(&user("      type: saml\n"), "s2s.users[0].type");
    error_at(
        &user("      jwks_url: 'https://x'\n"),
        "s2s.users[0].jwks_url",
    );
    error_at(&user("      algorithm: HS256\n"), "s2s.users[0].algorithm");
    error_at(
        &user("      algorithm: [RS256, XS1]\n"),
        "s2s.users[0].algorithm[1]",
    );
    error_at(
        &s2s_with("  users:\n    - issuer: login.example.com\n      audience: catalog\n"),
        "s2s.users[0].issuer",
    );
    error_at(
        &s2s_with("  users:\n    - audience: catalog\n"),
        "s2s.users[0].issuer",
    );
}

#[test]
fn jwks_cache_and_leeway_settings_are_checked() {
    let jwks = |line: &str| s2s_with(&format!("  jwks:\n    {line}\n"));
    error_at(&jwks("refreshSecs: 60"), "s2s.jwks.refreshSecs");
    // The kid-miss cooldown cannot go below 6 s (10 fetches a minute).
    error_at(
        &jwks("unknownKidCooldownSeconds: 1"),
        "s2s.jwks.unknownKidCooldownSeconds",
    );
    // One validator for YAML and Rust: Rust may refresh every 200 ms (tests do), so YAML
    // may say 1 s; only zero, which would spin, is refused.
    error_at(&jwks("refreshSeconds: 0"), "s2s.jwks.refreshSeconds");
    error_at(
        &jwks("fetchTimeoutSeconds: 0"),
        "s2s.jwks.fetchTimeoutSeconds",
    );
    error_at(&jwks("maxBodyBytes: 100"), "s2s.jwks.maxBodyBytes");
    error_at(&jwks("maxStaleSeconds: -1"), "s2s.jwks.maxStaleSeconds");
    error_at(&s2s_with("  leewaySeconds: 301\n"), "s2s.leewaySeconds");
    error_at(&jwks("maxStaleSeconds: 604801"), "s2s.jwks.maxStaleSeconds");
    error_at(
        &jwks("fetchTimeoutSeconds: 18446744073709551615"),
        "s2s.jwks.fetchTimeoutSeconds",
    );
    error_at(&s2s_with("  leewaySeconds: '30'\n"), "s2s.leewaySeconds");
    AuthBuilder::from_yaml_str_with_env(
        &s2s_with("  jwks:\n    refreshSeconds: 60\n    unknownKidCooldownSeconds: 6\n    maxStaleSeconds: 0\n    fetchTimeoutSeconds: 60\n    maxBodyBytes: 1024\n  leewaySeconds: 0\n"),
        no_env,
    )
    .and_then(AuthBuilder::build)
    .expect("bounds are inclusive");
}

#[test]
fn builder_checks_the_same_ranges_as_yaml() {
    use s2s_auth::Auth;
    use s2s_auth::error::ConfigRule;
    use s2s_auth::jwks::JwksCacheConfig;
    let rule_at = |b: AuthBuilder| {
        let e = b.build().expect_err("out of range");
        (e.path().map(str::to_owned), e.rule().clone())
    };
    assert_eq!(
        rule_at(Auth::builder("catalog").leeway(Duration::from_secs(86_400))),
        (
            Some("s2s.leewaySeconds".to_owned()),
            ConfigRule::OutOfRange { min: 0, max: 300 }
        )
    );
    let tuned = |tune: fn(&mut JwksCacheConfig)| {
        let mut c = JwksCacheConfig::default();
        tune(&mut c);
        c
    };
    let zero_timeout = tuned(|c| c.fetch_timeout = Duration::ZERO);
    assert_eq!(
        rule_at(Auth::builder("catalog").jwks_cache_config(zero_timeout)),
        (
            Some("s2s.jwks.fetchTimeoutSeconds".to_owned()),
            ConfigRule::Zero
        )
    );
    let huge_stale = tuned(|c| c.max_stale = Duration::MAX);
    assert_eq!(
        rule_at(Auth::builder("catalog").jwks_cache_config(huge_stale))
            .0
            .as_deref(),
        Some("s2s.jwks.maxStaleSeconds")
    );
    let storm = tuned(|c| c.unknown_kid_cooldown = Duration::from_secs(1));
    assert_eq!(
        rule_at(Auth::builder("catalog").jwks_cache_config(storm)).1,
        ConfigRule::OutOfRange { min: 6, max: 3_600 }
    );
    assert_eq!(
        rule_at(
            Auth::builder("catalog").plugin_tokens(
                s2s_auth::PluginTokens::new(std::sync::Arc::new(
                    s2s_auth::store::MemoryStore::default()
                ))
                .key_duration(Duration::from_secs(u64::MAX))
            )
        )
        .0
        .as_deref(),
        Some("s2s.pluginTokens.keyDurationSeconds")
    );
}

// ---------------------------------------------------------------------------------------
// End to end
// ---------------------------------------------------------------------------------------

/// A configuration with every JWT verifier, all on one key server.
fn full_yaml(jwks_url: &str) -> String {
    format!(
        r#"
s2s:
  serviceId: catalog
  users:
    - type: oidc
      issuer: https://login.example.com
      jwksUrl: {jwks_url}
      audience: catalog
      sharedNamespace: true           # Backstage signs its users in here: the same people
    - type: backstage
      issuer: https://backstage.example.com/api/auth
      jwksUrl: {jwks_url}
      sharedNamespace: true
  jwks:
    refreshSeconds: 600
    unknownKidCooldownSeconds: 6
    maxStaleSeconds: 3600
    fetchTimeoutSeconds: 1
    maxBodyBytes: 65536
  leewaySeconds: 0
backend:
  auth:
    externalAccess:
      - type: jwks
        options:
          url: {jwks_url}
          issuer: https://idp.example.com
          audience: catalog
      - type: jwks
        options:
          url: {jwks_url}
          issuer: [https://ci.example.com, https://ci2.example.com]
          audience: [search, catalog]
          algorithm: [ES256]
          subjectPrefix: ci
      - type: jwks
        options:
          url: {jwks_url}
          issuer: https://partner.example.com
          audience: catalog
          subjectPrefix: partner      # only one jwks entry may go without one
        accessRestrictions:
          - plugin: scaffolder
      - type: legacy
        options:
          secret: ${{LEGACY}}
          subject: old-backend
"#
    )
}

fn legacy_env(name: &str) -> Option<String> {
    (name == "LEGACY").then(|| b64_std(b"yaml-configured-legacy-secret!!"))
}

#[tokio::test(flavor = "multi_thread")]
async fn full_configuration_works_end_to_end() {
    let ec = SigningKey::es256("ec-1");
    let rsa = SigningKey::rsa("rsa-1", 0);
    let server = KeyServer::start(&[&ec, &rsa]).await;
    let builder = AuthBuilder::from_yaml_str_with_env(&full_yaml(&server.jwks_url()), legacy_env)
        .expect("valid YAML");
    let h = Harness::new(builder);
    let get = |token: String| {
        let h = &h;
        async move { h.call(Method::GET, "/entities/42", Some(&token)).await }
    };

    // Subject mapping: external:<sub> and external:<subjectPrefix>:<sub>.
    let (reply, event) = get(rsa.sign(&claims("https://idp.example.com", SERVICE, "ci-bot"))).await;
    assert_eq!(assert_allowed(&reply, &event)["subject"], "external:ci-bot");
    let (reply, event) =
        get(ec.sign(&claims("https://ci2.example.com", SERVICE, "deploy-bot"))).await;
    let principal = assert_allowed(&reply, &event);
    assert_eq!(principal["subject"], "external:ci:deploy-bot");
    assert_eq!(principal["credential"], "jwks");
    // That entry lists ES256 only.
    let (reply, event) =
        get(rsa.sign(&claims("https://ci.example.com", SERVICE, "deploy-bot"))).await;
    assert_invalid_token(
        &reply,
        &event,
        "token algorithm is not allowed for this issuer",
        "alg_not_allowed",
    );
    // accessRestrictions on a jwks entry are enforced at the route.
    let (reply, event) =
        get(ec.sign(&claims("https://partner.example.com", SERVICE, "partner"))).await;
    assert_forbidden(
        &reply,
        &event,
        "credential is restricted to plugins [scaffolder]; this service is `catalog`",
        "restricted_plugin",
    );
    assert_eq!(event.subject.as_deref(), Some("external:partner:partner"));
    // Users, both kinds.
    let (reply, event) = get(ec.sign(&claims("https://login.example.com", SERVICE, "jane"))).await;
    assert_eq!(
        assert_allowed(&reply, &event)["subject"],
        "user:default/jane"
    );
    let mut header = ec.header();
    header.typ = Some("vnd.backstage.user".to_owned());
    let (reply, event) = get(ec.sign_with(
        header,
        &claims(
            "https://backstage.example.com/api/auth",
            "backstage",
            "user:default/joe",
        ),
    ))
    .await;
    assert_eq!(
        assert_allowed(&reply, &event)["subject"],
        "user:default/joe"
    );
    // Legacy.
    let secret = legacy_env("LEGACY").expect("set");
    let (reply, event) = get(legacy_token(&secret, &legacy_claims())).await;
    assert_eq!(
        assert_allowed(&reply, &event)["subject"],
        "external:old-backend"
    );
    // leewaySeconds: 0 — two seconds past exp is expired.
    let mut c = claims("https://idp.example.com", SERVICE, "ci-bot");
    c["exp"] = json!(now() - 2);
    let (reply, event) = get(rsa.sign(&c)).await;
    assert_invalid_token(&reply, &event, "token has expired", "token_expired");
    // Every entry shares the one URL: one fetch.
    assert_eq!(server.jwks_hits(), 1);

    // The access table has a column per JWT kind and one for the restricted entry.
    let columns = h.auth.access_table().columns().to_vec();
    for column in [
        "user",
        "jwks",
        "legacy",
        "backend.auth.externalAccess[2] (jwks)",
    ] {
        assert!(
            columns.iter().any(|c| c == column),
            "{column} in {columns:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn yaml_fetch_timeout_is_honoured() {
    let ec = SigningKey::es256("ec-1");
    let server = KeyServer::start(&[&ec]).await;
    server.set_mode(Mode::Hang(Duration::from_secs(30)));
    let builder = AuthBuilder::from_yaml_str_with_env(&full_yaml(&server.jwks_url()), legacy_env)
        .expect("valid YAML");
    let h = Harness::new(builder);
    let started = Instant::now();
    let (reply, event) = h
        .call(
            Method::GET,
            "/x",
            Some(&ec.sign(&claims("https://idp.example.com", SERVICE, "ci-bot"))),
        )
        .await;
    assert_keys_unavailable(&reply, &event);
    // fetchTimeoutSeconds: 1.
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "{took:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn opted_out_entry_takes_tokens_without_iss() {
    let ec = SigningKey::es256("ec-1");
    let server = KeyServer::start(&[&ec]).await;
    let yaml = format!(
        "s2s:\n  serviceId: catalog\nbackend:\n  auth:\n    externalAccess:\n      - type: jwks\n        options:\n          url: {}\n          audience: catalog\n          dangerouslyAllowMissingIssuerOrAudience: true\n",
        server.jwks_url()
    );
    let h = Harness::new(AuthBuilder::from_yaml_str_with_env(&yaml, no_env).expect("valid YAML"));
    let mut c = claims("ignored", SERVICE, "ci-bot");
    c.as_object_mut().expect("object").remove("iss");
    let (reply, event) = h.call(Method::GET, "/x", Some(&ec.sign(&c))).await;
    assert_eq!(assert_allowed(&reply, &event)["subject"], "external:ci-bot");
    // It still checks the audience it has.
    c["aud"] = json!("search");
    let (reply, event) = h.call(Method::GET, "/x", Some(&ec.sign(&c))).await;
    assert_invalid_token(
        &reply,
        &event,
        "token audience does not match",
        "wrong_audience",
    );
}
