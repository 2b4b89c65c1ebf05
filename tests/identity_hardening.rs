//! Getting the wrong name on a real caller (issue 10, items 1, 2, 3 and 9): subjects that
//! collide across entries and kinds, log lines injected through `sub`, two providers' users
//! merged into one, entity refs smuggled in editable claims, keys fetched over plain http,
//! and any client of the right provider calling where only some are meant to. One test per
//! attack, through a real router.

mod common;

use common::kit::*;
use common::*;
use http::Method;
use s2s_auth::error::ConfigRule;
use s2s_auth::{Auth, AuthBuilder, ConfigError, JwksAccess, StaticToken, UserProvider};
use serde_json::{Value, json};

const CORP: &str = "https://corp.example.com";
const PARTNER: &str = "https://partner.example.com";

async fn get(h: &Harness, token: &str) -> (Reply, s2s_auth::audit::AuditEvent) {
    h.call(Method::GET, "/entities/42", Some(token)).await
}

#[track_caller]
fn assert_wrong_subject(reply: &Reply, event: &s2s_auth::audit::AuditEvent) {
    assert_invalid_token(
        reply,
        event,
        "token subject is not accepted",
        "wrong_subject",
    );
}

fn yaml_error(yaml: &str) -> ConfigError {
    AuthBuilder::from_yaml_str_with_env(yaml, no_env)
        .and_then(AuthBuilder::build)
        .expect_err("the configuration is refused")
}

#[track_caller]
fn refused_at(err: &ConfigError, path: &str) {
    assert_eq!(err.path(), Some(path), "{err}");
}

// ---------------------------------------------------------------------------------------
// 1. Subjects cannot collide
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn unprefixed_sub_with_a_colon_cannot_pass_for_a_prefixed_entrys_caller() {
    let key = SigningKey::es256("ec-1");
    let server = KeyServer::start(&[&key]).await;
    let h = Harness::new(
        Auth::builder(SERVICE)
            .jwks_access(
                JwksAccess::new(server.jwks_url())
                    .issuers([PARTNER])
                    .audiences([SERVICE]),
            )
            .jwks_access(
                JwksAccess::new(server.jwks_url())
                    .issuers([CORP])
                    .audiences([SERVICE])
                    .subject_prefix("corp"),
            ),
    );
    // The real deploy-bot of corp.
    let (reply, event) = get(&h, &key.sign(&claims(CORP, SERVICE, "deploy-bot"))).await;
    assert_eq!(
        assert_allowed(&reply, &event)["subject"],
        "external:corp:deploy-bot"
    );
    // A partner client named `corp:deploy-bot` would have been the same subject.
    let (reply, event) = get(&h, &key.sign(&claims(PARTNER, SERVICE, "corp:deploy-bot"))).await;
    assert_wrong_subject(&reply, &event);
    assert_eq!(event.subject, None);
}

#[tokio::test(flavor = "multi_thread")]
async fn jwks_client_named_like_a_static_caller_cannot_pass_for_it() {
    let key = SigningKey::es256("ec-1");
    let server = KeyServer::start(&[&key]).await;
    let h = Harness::new(
        Auth::builder(SERVICE)
            .static_token(StaticToken::new("ci-bot", CI_TOKEN))
            .jwks_access(
                JwksAccess::new(server.jwks_url())
                    .issuers([PARTNER])
                    .audiences([SERVICE]),
            ),
    );
    let (reply, event) = h.call(Method::GET, "/entities/42", Some(CI_TOKEN)).await;
    assert_eq!(assert_allowed(&reply, &event)["subject"], "external:ci-bot");
    let (reply, event) = get(&h, &key.sign(&claims(PARTNER, SERVICE, "ci-bot"))).await;
    assert_wrong_subject(&reply, &event);
    // Any other name is the partner's own.
    let (reply, event) = get(&h, &key.sign(&claims(PARTNER, SERVICE, "sync-job"))).await;
    assert_eq!(
        assert_allowed(&reply, &event)["subject"],
        "external:sync-job"
    );
}

#[test]
fn entries_whose_subjects_could_collide_are_refused_at_build() {
    let jwks = |issuer: &str, prefix: Option<&str>| {
        let prefix = prefix.map_or(String::new(), |p| format!(", subjectPrefix: '{p}'"));
        format!(
            "      - type: jwks\n        options: {{ url: 'https://keys.example.com/jwks', issuer: '{issuer}', audience: catalog{prefix} }}\n"
        )
    };
    let config = |entries: &[String]| {
        format!(
            "s2s:\n  serviceId: catalog\nbackend:\n  auth:\n    externalAccess:\n{}",
            entries.concat()
        )
    };
    let statik = |subject: &str| {
        format!(
            "      - type: static\n        options: {{ token: a-long-token-for-{subject}, subject: '{subject}' }}\n"
        )
    };
    // Two entries without a prefix would both name their callers external:<sub>.
    let err = yaml_error(&config(&[jwks(CORP, None), jwks(PARTNER, None)]));
    refused_at(&err, "backend.auth.externalAccess[1].options.subjectPrefix");
    assert_eq!(
        err.rule(),
        &ConfigRule::SubjectPrefixRequired {
            other: "backend.auth.externalAccess[0]".into()
        }
    );
    // The same prefix twice, or a static subject's name as a prefix.
    let err = yaml_error(&config(&[
        jwks(CORP, Some("idp")),
        jwks(PARTNER, Some("idp")),
    ]));
    refused_at(&err, "backend.auth.externalAccess[1].options.subjectPrefix");
    assert!(matches!(err.rule(), ConfigRule::SubjectTaken { name, by }
        if name == "idp" && by == "backend.auth.externalAccess[0]"));
    let err = yaml_error(&config(&[statik("corp"), jwks(CORP, Some("corp"))]));
    refused_at(&err, "backend.auth.externalAccess[1].options.subjectPrefix");
    // A prefix or a static subject holding the separator.
    let err = yaml_error(&config(&[jwks(CORP, Some("corp:x"))]));
    refused_at(&err, "backend.auth.externalAccess[0].options.subjectPrefix");
    assert_eq!(err.rule(), &ConfigRule::InvalidSubjectPrefix);
    let err = yaml_error(&config(&[statik("corp:deploy-bot")]));
    refused_at(&err, "backend.auth.externalAccess[0].options.subject");
    assert_eq!(err.rule(), &ConfigRule::InvalidSubject);
    // A static and a legacy caller with one name.
    let legacy = "      - type: legacy\n        options: { secret: bGVnYWN5LXNoYXJlZC1zZWNyZXQtbmV2ZXItbG9nZ2Vk, subject: old }\n";
    let err = yaml_error(&config(&[legacy.to_owned(), statik("old")]));
    refused_at(&err, "backend.auth.externalAccess[1].options.subject");
    // Several tokens of one static caller stay allowed (rotation).
    AuthBuilder::from_yaml_str_with_env(
        &config(&[statik("ci"), statik("ci").replace("for-ci", "for-ci-next")]),
        no_env,
    )
    .and_then(AuthBuilder::build)
    .expect("one caller, two tokens");
}

#[test]
fn subject_prefix_has_the_same_rules_in_rust_as_in_yaml() {
    let access = |prefix: &str| {
        JwksAccess::new("https://keys.example.com/jwks")
            .issuers([CORP])
            .audiences([SERVICE])
            .subject_prefix(prefix)
    };
    for bad in ["corp:x", "", "co rp", "corp\u{0}"] {
        let err = Auth::builder(SERVICE)
            .jwks_access(access(bad))
            .build()
            .expect_err("refused");
        refused_at(&err, "jwks_access[0].options.subjectPrefix");
        assert_eq!(err.rule(), &ConfigRule::InvalidSubjectPrefix);
    }
    let err = Auth::builder(SERVICE)
        .static_token(StaticToken::new("corp", "a-long-enough-token"))
        .jwks_access(access("corp"))
        .build()
        .expect_err("refused");
    refused_at(&err, "jwks_access[0].options.subjectPrefix");
    let err = Auth::builder(SERVICE)
        .static_token(StaticToken::new("ci:bot", "a-long-enough-token"))
        .build()
        .expect_err("refused");
    refused_at(&err, "static_token[0].options.subject");
}

#[tokio::test(flavor = "multi_thread")]
async fn control_characters_and_whitespace_in_sub_are_refused() {
    let key = SigningKey::es256("ec-1");
    let server = KeyServer::start(&[&key]).await;
    let h = Harness::new(
        Auth::builder(SERVICE)
            .jwks_access(
                JwksAccess::new(server.jwks_url())
                    .issuers([PARTNER])
                    .audiences([SERVICE]),
            )
            .jwks_access(
                JwksAccess::new(server.jwks_url())
                    .issuers([CORP])
                    .audiences([SERVICE])
                    .subject_prefix("corp"),
            )
            .user_provider(
                UserProvider::oidc("https://login.example.com")
                    .jwks_url(server.jwks_url())
                    .audiences(["catalog-ui"]),
            ),
    );
    // A forged log line, an ANSI escape, a tab, a NUL, a non-breaking space.
    let subs = [
        "ci-bot\nallow decision=allow subject=external:admin",
        "ci-bot\u{1b}[2K",
        "ci\tbot",
        "ci\u{0}bot",
        "ci\u{a0}bot",
        "ci bot",
    ];
    for sub in subs {
        for (iss, aud) in [
            (PARTNER, SERVICE),
            (CORP, SERVICE),
            ("https://login.example.com", "catalog-ui"),
        ] {
            let (reply, event) = get(&h, &key.sign(&claims(iss, aud, sub))).await;
            assert_wrong_subject(&reply, &event);
            assert!(!reply.everything().contains(sub), "{sub:?}");
        }
    }
}

// ---------------------------------------------------------------------------------------
// 2. User subjects name their provider
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn two_providers_jane_are_two_principals() {
    let corp = Idp::start("corp-key").await;
    let partner = Idp::start("partner-key").await;
    let h = Harness::new(
        Auth::builder(SERVICE)
            .user_provider(
                UserProvider::oidc(&corp.issuer)
                    .audiences([SERVICE])
                    .namespace("corp"),
            )
            .user_provider(
                UserProvider::oidc(&partner.issuer)
                    .audiences([SERVICE])
                    .namespace("partner"),
            ),
    );
    let (reply, event) = get(&h, &corp.token("jane", SERVICE)).await;
    assert_eq!(assert_allowed(&reply, &event)["subject"], "user:corp/jane");
    let (reply, event) = get(&h, &partner.token("jane", SERVICE)).await;
    assert_eq!(
        assert_allowed(&reply, &event)["subject"],
        "user:partner/jane"
    );
}

#[test]
fn two_providers_in_one_namespace_is_a_config_error_unless_both_share_it() {
    let users = |first: &str, second: &str| {
        format!(
            "s2s:\n  serviceId: catalog\n  users:\n    - {{ issuer: '{CORP}', audience: catalog{first} }}\n    - {{ issuer: '{PARTNER}', audience: catalog{second} }}\n"
        )
    };
    // Both in `default`, the default.
    let err = yaml_error(&users("", ""));
    refused_at(&err, "s2s.users[1].namespace");
    assert_eq!(
        err.rule(),
        &ConfigRule::NamespaceTaken {
            namespace: "default".into(),
            by: "s2s.users[0]".into()
        }
    );
    // Named the same; or shared by one side only.
    refused_at(
        &yaml_error(&users(", namespace: corp", ", namespace: corp")),
        "s2s.users[1].namespace",
    );
    refused_at(
        &yaml_error(&users(", sharedNamespace: true", "")),
        "s2s.users[1].namespace",
    );
    // Not a namespace.
    let err = yaml_error(&users(", namespace: Corp/x", ""));
    refused_at(&err, "s2s.users[0].namespace");
    assert_eq!(err.rule(), &ConfigRule::InvalidNamespace);
    // Both say they share it: the same people, on purpose.
    for ok in [
        users(", sharedNamespace: true", ", sharedNamespace: true"),
        users(", namespace: corp", ", namespace: partner"),
    ] {
        AuthBuilder::from_yaml_str_with_env(&ok, no_env)
            .and_then(AuthBuilder::build)
            .expect("builds");
    }
    // In Rust, the same rule: an OIDC provider in `default` beside a Backstage provider.
    let err = Auth::builder(SERVICE)
        .user_provider(UserProvider::oidc(CORP).audiences([SERVICE]))
        .user_provider(UserProvider::backstage(
            "https://backstage.example.com/api/auth",
        ))
        .build()
        .expect_err("refused");
    refused_at(&err, "user_provider[1].namespace");
    Auth::builder(SERVICE)
        .user_provider(
            UserProvider::oidc(CORP)
                .audiences([SERVICE])
                .shared_namespace(),
        )
        .user_provider(
            UserProvider::backstage("https://backstage.example.com/api/auth").shared_namespace(),
        )
        .build()
        .expect("shared on both sides");
}

#[tokio::test(flavor = "multi_thread")]
async fn backstage_token_cannot_claim_another_providers_own_namespace() {
    let idp = Idp::start("idp-key").await;
    let backstage = "https://backstage.example.com/api/auth";
    let h = Harness::new(
        Auth::builder(SERVICE)
            .user_provider(
                UserProvider::oidc(&idp.issuer)
                    .audiences([SERVICE])
                    .namespace("corp"),
            )
            .user_provider(idp.backstage_provider(backstage)),
    );
    let exp = now() + 300;
    let (reply, event) = get(
        &h,
        &idp.user_token(backstage, "user:default/jane", &[], exp),
    )
    .await;
    assert_eq!(
        assert_allowed(&reply, &event)["subject"],
        "user:default/jane"
    );
    let (reply, event) = get(&h, &idp.user_token(backstage, "user:corp/jane", &[], exp)).await;
    assert_wrong_subject(&reply, &event);
    let (reply, event) = get(&h, &idp.token("jane", SERVICE)).await;
    assert_eq!(assert_allowed(&reply, &event)["subject"], "user:corp/jane");
}

#[tokio::test(flavor = "multi_thread")]
async fn entity_ref_in_an_email_claim_is_not_taken_as_an_entity_ref() {
    let idp = Idp::start("idp-key").await;
    let h = Harness::new(
        Auth::builder(SERVICE).user_provider(
            UserProvider::oidc(&idp.issuer)
                .audiences([SERVICE])
                .subject_claim("email"),
        ),
    );
    let with_email = |email: &str| {
        let mut c = claims(&idp.issuer, SERVICE, "00u1a2b3c4");
        c["email"] = json!(email);
        idp.key.sign(&c)
    };
    for smuggled in [
        "user:admins/root",
        "user:root",
        "group:default/admins",
        "../root",
    ] {
        let (reply, event) = get(&h, &with_email(smuggled)).await;
        assert_wrong_subject(&reply, &event);
    }
    let (reply, event) = get(&h, &with_email("jane@example.com")).await;
    assert_eq!(
        assert_allowed(&reply, &event)["subject"],
        "user:default/jane@example.com"
    );
}

// ---------------------------------------------------------------------------------------
// 3. Key sources over https
// ---------------------------------------------------------------------------------------

#[test]
fn http_key_source_off_loopback_is_a_config_error_naming_its_path() {
    let jwks = |url: &str, extra: &str| {
        format!(
            "s2s:\n  serviceId: catalog\nbackend:\n  auth:\n    externalAccess:\n      - type: jwks\n        options: {{ url: '{url}', issuer: '{CORP}', audience: catalog{extra} }}\n"
        )
    };
    for url in [
        "http://keys.example.com/jwks",
        "http://10.0.0.7/jwks",
        // The host is evil.example, whatever the userinfo says.
        "http://127.0.0.1@evil.example/jwks",
        "http://localhost.evil.example/jwks",
    ] {
        let err = yaml_error(&jwks(url, ""));
        refused_at(&err, "backend.auth.externalAccess[0].options.url");
        assert_eq!(err.rule(), &ConfigRule::HttpKeySource, "{url}");
    }
    let users =
        |entry: &str| format!("s2s:\n  serviceId: catalog\n  users:\n    - {{ {entry} }}\n");
    let err = yaml_error(&users(
        "issuer: 'https://login.example.com', jwksUrl: 'http://login.example.com/keys', audience: catalog",
    ));
    refused_at(&err, "s2s.users[0].jwksUrl");
    // Keys found by discovery at the issuer: the issuer is the key source.
    let err = yaml_error(&users(
        "issuer: 'http://login.example.com', audience: catalog",
    ));
    refused_at(&err, "s2s.users[0].issuer");
    let err = yaml_error(&users(
        "type: backstage, issuer: 'http://backstage:7007/api/auth'",
    ));
    refused_at(&err, "s2s.users[0].issuer");
    // An http issuer is only a name when the keys come from an https jwksUrl.
    AuthBuilder::from_yaml_str_with_env(
        &users("type: backstage, issuer: 'http://backstage:7007/api/auth', jwksUrl: 'https://backstage.example.com/jwks'"),
        no_env,
    )
    .and_then(AuthBuilder::build)
    .expect("builds");
    // In Rust, the same.
    let err = Auth::builder(SERVICE)
        .jwks_access(
            JwksAccess::new("http://keys.example.com/jwks")
                .issuers([CORP])
                .audiences([SERVICE]),
        )
        .build()
        .expect_err("refused");
    refused_at(&err, "jwks_access[0].options.url");
    // The explicit opt-out, per entry.
    AuthBuilder::from_yaml_str_with_env(
        &jwks(
            "http://keys.example.com/jwks",
            ", dangerouslyAllowHttp: true",
        ),
        no_env,
    )
    .and_then(AuthBuilder::build)
    .expect("opted out");
}

#[tokio::test(flavor = "multi_thread")]
async fn loopback_http_and_the_explicit_opt_out_verify_tokens() {
    let key = SigningKey::es256("ec-1");
    // Loopback: the kit's key server on http://127.0.0.1, and by the name localhost.
    let server = KeyServer::start(&[&key]).await;
    let by_name = server.jwks_url().replace("127.0.0.1", "localhost");
    for url in [server.jwks_url(), by_name] {
        let h = Harness::new(
            Auth::builder(SERVICE)
                .jwks_access(JwksAccess::new(url).issuers([CORP]).audiences([SERVICE])),
        );
        let (reply, event) = get(&h, &key.sign(&claims(CORP, SERVICE, "ci"))).await;
        assert_eq!(assert_allowed(&reply, &event)["subject"], "external:ci");
    }
    // Off loopback, opted out (keys served in process, at an http URL).
    let url = "http://keys.internal/jwks";
    let fetcher = InProcessJwks::default();
    fetcher.serve_document(url, jwks(&[&key]).to_string().into_bytes());
    let h = Harness::new(
        Auth::builder(SERVICE).key_fetcher(fetcher).jwks_access(
            JwksAccess::new(url)
                .issuers([CORP])
                .audiences([SERVICE])
                .dangerously_allow_http(),
        ),
    );
    let (reply, event) = get(&h, &key.sign(&claims(CORP, SERVICE, "ci"))).await;
    assert_eq!(assert_allowed(&reply, &event)["subject"], "external:ci");
}

// ---------------------------------------------------------------------------------------
// 9. Required claims
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn token_from_the_right_provider_with_the_wrong_azp_is_refused() {
    let key = SigningKey::es256("ec-1");
    let server = KeyServer::start(&[&key]).await;
    let yaml = format!(
        "s2s:\n  serviceId: catalog\nbackend:\n  auth:\n    externalAccess:\n      - type: jwks\n        options:\n          url: {}\n          issuer: {CORP}\n          audience: catalog\n          requiredClaims: {{ azp: [ci-client, deploy-client], tenant: acme }}\n",
        server.jwks_url()
    );
    let h = Harness::new(AuthBuilder::from_yaml_str_with_env(&yaml, no_env).expect("valid"));
    let token = |extra: Value| {
        let mut c = claims(CORP, SERVICE, "svc-1");
        for (k, v) in extra.as_object().expect("an object") {
            c[k] = v.clone();
        }
        key.sign(&c)
    };
    let (reply, event) = get(
        &h,
        &token(json!({"azp": "deploy-client", "tenant": "acme"})),
    )
    .await;
    assert_eq!(assert_allowed(&reply, &event)["subject"], "external:svc-1");

    // The right provider, another of its clients.
    let (reply, event) = get(&h, &token(json!({"azp": "intruder-app", "tenant": "acme"}))).await;
    assert_invalid_token(
        &reply,
        &event,
        "token claim `azp` is not accepted",
        "claim_not_accepted",
    );
    assert!(!reply.everything().contains("intruder-app"));
    assert!(!event.message.contains("intruder-app"));
    // Another tenant; and no azp at all.
    let (reply, event) = get(&h, &token(json!({"azp": "ci-client", "tenant": "evil"}))).await;
    assert_invalid_token(
        &reply,
        &event,
        "token claim `tenant` is not accepted",
        "claim_not_accepted",
    );
    let (reply, event) = get(&h, &token(json!({"tenant": "acme"}))).await;
    assert_invalid_token(&reply, &event, "token has no `azp` claim", "missing_claim");
}

#[tokio::test(flavor = "multi_thread")]
async fn user_provider_requires_claims_too() {
    let idp = Idp::start("idp-key").await;
    let h = Harness::new(
        Auth::builder(SERVICE).user_provider(
            UserProvider::oidc(&idp.issuer)
                .audiences([SERVICE])
                .require_claim("tid", ["tenant-a"]),
        ),
    );
    let mut c = claims(&idp.issuer, SERVICE, "jane");
    c["tid"] = json!("tenant-a");
    let (reply, event) = get(&h, &idp.key.sign(&c)).await;
    assert_eq!(
        assert_allowed(&reply, &event)["subject"],
        "user:default/jane"
    );
    c["tid"] = json!("tenant-b");
    let (reply, event) = get(&h, &idp.key.sign(&c)).await;
    assert_invalid_token(
        &reply,
        &event,
        "token claim `tid` is not accepted",
        "claim_not_accepted",
    );
    // Bad requirements are config errors with their path.
    let err = yaml_error(&format!(
        "s2s:\n  serviceId: catalog\n  users:\n    - {{ issuer: '{CORP}', audience: catalog, requiredClaims: {{ azp: [] }} }}\n"
    ));
    refused_at(&err, "s2s.users[0].requiredClaims.azp");
    assert_eq!(err.rule(), &ConfigRule::BadRequiredClaimValue);
}
