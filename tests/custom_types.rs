//! Custom external token types (issue 9 item 4): your own `externalAccess` `type:`,
//! registered on the builder, chosen by prefix, and policed like every built-in kind.
//!
//! The threat model, one test per rule: a token goes to exactly one verifier (its prefix
//! decides, nothing is tried in turn); a custom verifier's refusal names its reason; what a
//! custom identity claims (subject, expiry, read-only) is checked, not trusted; restrictions
//! and route policies apply as they do to static tokens; prefixes that would steal other
//! tokens are refused at build; and the token never leaves the layer.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::*;
use http::Method;
use s2s_auth::custom::{
    CustomAccess, ExternalIdentity, ExternalTokenError, ExternalTokenType, ExternalTokenVerifier,
    VerifyFuture,
};
use s2s_auth::error::ConfigRule;
use s2s_auth::restrictions::{AccessRestriction, AccessRestrictions};
use s2s_auth::{Auth, AuthBuilder, ConfigError, CredentialKind, PrincipalType, RoutePolicy};
use serde_json::Value;
use time::{Duration, OffsetDateTime};

// -- the tokens

/// A plain static token (subject `ci-bot`).
const STATIC_TOKEN: &str = "ci-bot-static-token-5f2c9a7e41d0";
/// An Acme key (prefix `acme_`) for `deploy-bot`.
const ACME_TOKEN: &str = "acme_deploy-bot-key-4c8e1f9a2b6d";
/// Carries Acme's prefix, but Acme never issued it.
const ACME_UNKNOWN_TOKEN: &str = "acme_nobody-issued-this-key-0d3b";
/// An Acme key of the entry restricted to plugin `scaffolder` (prefix `scaf_`).
const SCAFFOLDER_TOKEN: &str = "scaf_scaffolder-bot-key-71e2a0c4";
/// A Globex key (type `globex`, prefix `glx_`) for `nightly-job`.
const GLOBEX_TOKEN: &str = "glx_nightly-job-key-93ad5e07b1c8";

// -- the custom types under test

/// How many times a verifier was asked.
#[derive(Clone, Default)]
struct Calls(Arc<AtomicUsize>);

impl Calls {
    fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }

    fn bump(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A verifier answering from a script: a listed token gets its answer, any other
/// `Invalid("unknown key")`. Counts every call.
struct Scripted {
    prefix: String,
    answers: Vec<(String, Result<ExternalIdentity, ExternalTokenError>)>,
    calls: Calls,
}

impl Scripted {
    fn new(prefix: &str, calls: &Calls) -> Self {
        Self {
            prefix: prefix.to_owned(),
            answers: Vec::new(),
            calls: calls.clone(),
        }
    }

    fn answer(mut self, token: &str, answer: Result<ExternalIdentity, ExternalTokenError>) -> Self {
        self.answers.push((token.to_owned(), answer));
        self
    }
}

impl ExternalTokenVerifier for Scripted {
    fn prefix(&self) -> &str {
        &self.prefix
    }

    fn verify<'a>(&'a self, token: &'a str) -> VerifyFuture<'a> {
        self.calls.bump();
        Box::pin(async move {
            self.answers
                .iter()
                .find(|(t, _)| t == token)
                .map_or(Err(ExternalTokenError::Invalid("unknown key")), |(_, a)| {
                    a.clone()
                })
        })
    }
}

/// A `type:` whose entries read `options: { prefix: <default acme_>, keys: {<token>:
/// <subject>} }`; every verifier it makes counts into `calls`.
struct KeyType {
    name: &'static str,
    calls: Calls,
}

impl KeyType {
    fn new(name: &'static str, calls: &Calls) -> Self {
        Self {
            name,
            calls: calls.clone(),
        }
    }
}

impl ExternalTokenType for KeyType {
    fn type_name(&self) -> &str {
        self.name
    }

    fn initialize(&self, options: &Value) -> Result<Arc<dyn ExternalTokenVerifier>, String> {
        let prefix = options
            .get("prefix")
            .map_or(Some("acme_"), Value::as_str)
            .ok_or("options.prefix must be a string")?;
        let keys = options
            .get("keys")
            .and_then(Value::as_object)
            .ok_or("options.keys must map keys to subjects")?;
        let mut verifier = Scripted::new(prefix, &self.calls);
        for (key, subject) in keys {
            let subject = subject.as_str().ok_or("a subject must be a string")?;
            verifier = verifier.answer(key, Ok(ExternalIdentity::new(subject)));
        }
        Ok(Arc::new(verifier))
    }
}

// -- the service under test

/// A static token, the legacy secret, two `acme` entries (one restricted to `scaffolder`)
/// and a `globex` entry; `/admin/tokens` is sensitive, `/users/me` sensitive and for users
/// only, `POST /imports` for custom credentials only.
fn yaml() -> String {
    format!(
        r#"
s2s:
  serviceId: catalog
  routes:
    - path: /healthz
      unauthenticated: true
    - path: /admin/tokens
      sensitive: true
    - path: /users/me
      sensitive: true
      allow: [user]
    - path: /imports
      methods: [POST]
      allow: [custom]
backend:
  auth:
    keys:
      - secret: {LEGACY_SECRET}
    externalAccess:
      - type: static
        options:
          token: {STATIC_TOKEN}
          subject: ci-bot
      - type: acme
        options:
          keys:
            {ACME_TOKEN}: deploy-bot
      - type: acme
        options:
          prefix: scaf_
          keys:
            {SCAFFOLDER_TOKEN}: scaffolder-bot
        accessRestrictions:
          - plugin: scaffolder
      - type: globex
        options:
          prefix: glx_
          keys:
            {GLOBEX_TOKEN}: nightly-job
"#
    )
}

/// The YAML service, with its two types registered after the file is read, and the call
/// counters of each type.
struct Yaml {
    h: Harness,
    acme: Calls,
    globex: Calls,
}

impl Yaml {
    fn new() -> Self {
        let (acme, globex) = (Calls::default(), Calls::default());
        let builder = AuthBuilder::from_yaml_str_with_env(&yaml(), no_env)
            .expect("the custom-types configuration parses")
            .external_token_type(KeyType::new("acme", &acme))
            .external_token_type(KeyType::new("globex", &globex));
        Self {
            h: Harness::new(builder),
            acme,
            globex,
        }
    }
}

/// A service whose one custom entry, given in Rust, is `verifier` (type `acme`).
fn rust_service(verifier: Scripted) -> Harness {
    Harness::new(
        Auth::builder(SERVICE).custom_access(CustomAccess::new("acme", Arc::new(verifier))),
    )
}

/// A service whose Acme verifier answers `token` with `answer`.
fn answering(token: &str, answer: Result<ExternalIdentity, ExternalTokenError>) -> Harness {
    rust_service(Scripted::new("acme_", &Calls::default()).answer(token, answer))
}

/// Asserts an allowed custom caller: principal `external:acme:<subject>`, kind `custom`,
/// type service, in the handler and in the audit event. Returns the principal.
#[track_caller]
fn assert_custom_caller(
    reply: &Reply,
    event: &s2s_auth::audit::AuditEvent,
    subject: &str,
) -> Value {
    let principal = assert_allowed(reply, event);
    assert_eq!(principal["subject"], subject);
    assert_eq!(principal["credential"], "custom");
    assert_eq!(principal["principalType"], "service");
    assert_eq!(principal["actor"], Value::Null);
    assert_eq!(event.subject.as_deref(), Some(subject));
    assert_eq!(event.credential, Some(CredentialKind::Custom));
    assert_eq!(event.principal_type, Some(PrincipalType::Service));
    assert!(event.token_fingerprint.is_some());
    principal
}

/// The configuration error `builder` fails to build with.
#[track_caller]
fn build_error(builder: AuthBuilder) -> ConfigError {
    match builder.build() {
        Ok(auth) => panic!("the configuration should be refused, built {auth:?}"),
        Err(e) => e,
    }
}

/// The configuration error of `yaml`, with type `acme` registered.
#[track_caller]
fn yaml_error(yaml: &str) -> ConfigError {
    let builder = AuthBuilder::from_yaml_str_with_env(yaml, no_env)
        .expect("the YAML parses: the error is found at build")
        .external_token_type(KeyType::new("acme", &Calls::default()));
    build_error(builder)
}

/// `externalAccess` holding the given entries (YAML list items, indented by 6).
fn with_entries(entries: &str) -> String {
    format!("s2s: {{ serviceId: catalog }}\nbackend:\n  auth:\n    externalAccess:\n{entries}")
}

/// The one `acme` entry with this prefix, as an `externalAccess` item.
fn acme_entry(prefix: &str) -> String {
    format!(
        "      - type: acme\n        options: {{ prefix: \"{prefix}\", keys: {{ {prefix}some-key-0123: bot }} }}\n"
    )
}

// -- verification

#[tokio::test]
async fn yaml_custom_type_verifies_its_token() {
    let y = Yaml::new();
    let (reply, event) =
        y.h.call(Method::GET, "/entities/42", Some(ACME_TOKEN))
            .await;
    let principal = assert_custom_caller(&reply, &event, "external:acme:deploy-bot");
    assert_eq!(principal["readOnly"], false);
    assert_eq!(principal["expiresAt"], Value::Null);
    assert_eq!(principal["restrictions"], Value::Null);
    assert_eq!(y.acme.count(), 1);
    assert_eq!(y.globex.count(), 0);
}

/// `from_yaml_str` keeps the unknown `type: acme` pending; the type registered on the
/// returned builder resolves it at build (the [`Yaml`] service is built this way).
#[tokio::test]
async fn type_registered_after_reading_yaml_resolves_at_build() {
    let calls = Calls::default();
    let yaml = with_entries(&format!(
        "      - type: acme\n        options: {{ keys: {{ {ACME_TOKEN}: deploy-bot }} }}\n"
    ));
    let read = AuthBuilder::from_yaml_str(&yaml).expect("an unregistered type is not an error yet");
    let h = Harness::new(read.external_token_type(KeyType::new("acme", &calls)));
    let (reply, event) = h.call(Method::GET, "/entities/42", Some(ACME_TOKEN)).await;
    assert_custom_caller(&reply, &event, "external:acme:deploy-bot");
    assert_eq!(calls.count(), 1);
}

#[tokio::test]
async fn rust_custom_access_verifies_its_token() {
    let calls = Calls::default();
    let h = rust_service(
        Scripted::new("acme_", &calls).answer(ACME_TOKEN, Ok(ExternalIdentity::new("deploy-bot"))),
    );
    let (reply, event) = h.call(Method::POST, "/entities", Some(ACME_TOKEN)).await;
    let principal = assert_custom_caller(&reply, &event, "external:acme:deploy-bot");
    // Not read-only unless the identity says so.
    assert_eq!(principal["readOnly"], false);
    assert_eq!(calls.count(), 1);
}

#[tokio::test]
async fn custom_identity_expiring_later_is_accepted_with_its_expiry() {
    let later = OffsetDateTime::now_utc() + Duration::hours(1);
    let h = answering(
        ACME_TOKEN,
        Ok(ExternalIdentity::new("deploy-bot").expires_at(later)),
    );
    let (reply, event) = h.call(Method::GET, "/entities/42", Some(ACME_TOKEN)).await;
    let principal = assert_custom_caller(&reply, &event, "external:acme:deploy-bot");
    assert!(principal["expiresAt"].is_string(), "{principal}");
}

// -- classification: by prefix, never in turn

#[tokio::test]
async fn static_token_never_reaches_a_custom_verifier() {
    let y = Yaml::new();
    let (reply, event) =
        y.h.call(Method::GET, "/entities/42", Some(STATIC_TOKEN))
            .await;
    let principal = assert_allowed(&reply, &event);
    assert_eq!(principal["subject"], "external:ci-bot");
    assert_eq!(event.credential, Some(CredentialKind::Static));
    assert_eq!((y.acme.count(), y.globex.count()), (0, 0));
}

/// Backstage would try every handler on an unknown token; here it goes to the static table
/// only, and is refused for what it is.
#[tokio::test]
async fn unknown_opaque_token_is_not_tried_on_custom_verifiers() {
    let y = Yaml::new();
    let (reply, event) =
        y.h.call(Method::GET, "/entities/42", Some(UNKNOWN_TOKEN))
            .await;
    assert_invalid_token(
        &reply,
        &event,
        "token is not recognised",
        "token_unrecognised",
    );
    assert_eq!((y.acme.count(), y.globex.count()), (0, 0));
}

/// Prefixes match exactly, case and all: `ACME_` and `acme-` are not `acme_`.
#[tokio::test]
async fn token_resembling_a_prefix_is_not_sent_to_its_verifier() {
    let y = Yaml::new();
    for token in [
        "ACME_deploy-bot-key-4c8e1f9a2b6d",
        "acme-deploy-bot-key-4c8e1f9a2b6d",
    ] {
        let (reply, event) = y.h.call(Method::GET, "/entities/42", Some(token)).await;
        assert_invalid_token(
            &reply,
            &event,
            "token is not recognised",
            "token_unrecognised",
        );
    }
    assert_eq!(y.acme.count(), 0);
}

#[tokio::test]
async fn jwt_never_reaches_a_custom_verifier() {
    let y = Yaml::new();
    // An HS256 token without `iss`: the legacy secrets' (and its signature is not theirs).
    let (reply, event) =
        y.h.call(Method::GET, "/entities/42", Some(JWT_SHAPED_TOKEN))
            .await;
    assert_invalid_token(&reply, &event, "signature does not verify", "bad_signature");
    assert_eq!((y.acme.count(), y.globex.count()), (0, 0));
}

#[tokio::test]
async fn two_custom_types_each_get_only_their_own_tokens() {
    let y = Yaml::new();
    let (reply, event) =
        y.h.call(Method::GET, "/entities/42", Some(GLOBEX_TOKEN))
            .await;
    assert_custom_caller(&reply, &event, "external:globex:nightly-job");
    assert_eq!((y.acme.count(), y.globex.count()), (0, 1));

    let (reply, event) =
        y.h.call(Method::GET, "/entities/42", Some(ACME_TOKEN))
            .await;
    assert_custom_caller(&reply, &event, "external:acme:deploy-bot");
    assert_eq!((y.acme.count(), y.globex.count()), (1, 1));

    // Globex's prefix on a key only Acme knows: Globex alone is asked, and refuses it.
    let stolen = format!("glx_{}", &ACME_TOKEN["acme_".len()..]);
    let (reply, event) = y.h.call(Method::GET, "/entities/42", Some(&stolen)).await;
    assert_invalid_token(
        &reply,
        &event,
        "token refused: unknown key",
        "token_rejected",
    );
    assert_eq!((y.acme.count(), y.globex.count()), (1, 2));
}

// -- refusals

#[tokio::test]
async fn rejected_custom_token_names_the_verifiers_reason() {
    let calls = Calls::default();
    let h = rust_service(Scripted::new("acme_", &calls));
    let (reply, event) = h
        .call(Method::GET, "/entities/42", Some(ACME_UNKNOWN_TOKEN))
        .await;
    assert_invalid_token(
        &reply,
        &event,
        "token refused: unknown key",
        "token_rejected",
    );
    assert_eq!(event.subject, None);
    assert_eq!(event.credential, None);
    assert!(event.token_fingerprint.is_some());
    assert_eq!(calls.count(), 1, "one verifier, asked once");
}

/// The issuer being down is not the caller's fault: 503, `Retry-After` as the verifier said,
/// no challenge.
#[tokio::test]
async fn custom_issuer_unavailable_is_503_with_retry_after() {
    let h = answering(
        ACME_TOKEN,
        Err(ExternalTokenError::Unavailable {
            retry_after_secs: 7,
        }),
    );
    let (reply, event) = h.call(Method::GET, "/entities/42", Some(ACME_TOKEN)).await;
    assert_eq!(assert_keys_unavailable(&reply, &event), 7);
    assert_eq!(event.subject, None);
}

#[tokio::test]
async fn rejects_custom_subject_with_space_newline_or_nothing() {
    for subject in ["deploy bot", "deploy-bot\nadmin", ""] {
        let h = answering(ACME_TOKEN, Ok(ExternalIdentity::new(subject)));
        let (reply, event) = h.call(Method::GET, "/entities/42", Some(ACME_TOKEN)).await;
        assert_invalid_token(
            &reply,
            &event,
            "token subject is not accepted",
            "wrong_subject",
        );
        assert_eq!(event.subject, None, "subject {subject:?}");
    }
}

#[tokio::test]
async fn rejects_custom_identity_expired() {
    let earlier = OffsetDateTime::now_utc() - Duration::minutes(1);
    let h = answering(
        ACME_TOKEN,
        Ok(ExternalIdentity::new("deploy-bot").expires_at(earlier)),
    );
    let (reply, event) = h.call(Method::GET, "/entities/42", Some(ACME_TOKEN)).await;
    assert_invalid_token(&reply, &event, "token has expired", "token_expired");
}

#[tokio::test]
async fn read_only_custom_identity_cannot_write() {
    let h = answering(
        ACME_TOKEN,
        Ok(ExternalIdentity::new("deploy-bot").read_only(true)),
    );
    let (reply, event) = h.call(Method::GET, "/entities/42", Some(ACME_TOKEN)).await;
    let principal = assert_custom_caller(&reply, &event, "external:acme:deploy-bot");
    assert_eq!(principal["readOnly"], true);

    let (reply, event) = h.call(Method::POST, "/entities", Some(ACME_TOKEN)).await;
    assert_forbidden(
        &reply,
        &event,
        "custom credential is read-only; POST needs allowWrites on the token or allowStaticWrites on the route",
        "read_only_credential",
    );
    assert_eq!(event.subject.as_deref(), Some("external:acme:deploy-bot"));
}

/// Where the route lets read-only credentials write, a read-only custom identity may too,
/// as a static token without `allowWrites` may.
#[tokio::test]
async fn read_only_custom_identity_writes_where_route_allows_static_writes() {
    let verifier = Scripted::new("acme_", &Calls::default()).answer(
        ACME_TOKEN,
        Ok(ExternalIdentity::new("deploy-bot").read_only(true)),
    );
    let h = Harness::new(
        Auth::builder(SERVICE)
            .custom_access(CustomAccess::new("acme", Arc::new(verifier)))
            .route(
                "/imports",
                [Method::POST],
                RoutePolicy::authenticated().allow_static_writes(true),
            ),
    );
    let (reply, event) = h.call(Method::POST, "/imports", Some(ACME_TOKEN)).await;
    assert_custom_caller(&reply, &event, "external:acme:deploy-bot");
}

/// Nothing remembers a custom verdict (only JWTs are cached): a key the issuer revokes is
/// refused on the very next request.
#[tokio::test]
async fn custom_token_is_verified_on_every_request() {
    let y = Yaml::new();
    for _ in 0..3 {
        let (reply, event) =
            y.h.call(Method::GET, "/entities/42", Some(ACME_TOKEN))
                .await;
        assert_custom_caller(&reply, &event, "external:acme:deploy-bot");
    }
    assert_eq!(y.acme.count(), 3);
}

/// A health check must not fail because the custom issuer is down: the credential is
/// ignored there, and the audit event says why.
#[tokio::test]
async fn custom_issuer_unavailable_is_ignored_on_unauthenticated_route() {
    let down = Scripted::new("acme_", &Calls::default()).answer(
        ACME_TOKEN,
        Err(ExternalTokenError::Unavailable {
            retry_after_secs: 7,
        }),
    );
    let h = Harness::new(
        Auth::builder(SERVICE)
            .custom_access(CustomAccess::new("acme", Arc::new(down)))
            .route("/healthz", [], RoutePolicy::unauthenticated()),
    );
    let (reply, event) = h.call(Method::GET, "/healthz", Some(ACME_TOKEN)).await;
    assert_eq!(reply.status.as_u16(), 200, "{}", reply.body);
    assert_eq!(reply.json(), Value::Null);
    assert_eq!(reply.headers.get(http::header::RETRY_AFTER), None);
    assert_eq!(event.reason, "unauthenticated_route");
    assert_eq!(event.ignored.as_deref(), Some("keys_unavailable"));
    assert_eq!(event.subject, None);
}

// -- restrictions and route policies

#[tokio::test]
async fn yaml_restricted_custom_caller_cannot_call_other_plugin() {
    let y = Yaml::new();
    let (reply, event) =
        y.h.call(Method::GET, "/entities/42", Some(SCAFFOLDER_TOKEN))
            .await;
    assert_forbidden(
        &reply,
        &event,
        "credential is restricted to plugins [scaffolder]; this service is `catalog`",
        "restricted_plugin",
    );
    assert_eq!(
        event.subject.as_deref(),
        Some("external:acme:scaffolder-bot")
    );
    assert_eq!(event.credential, Some(CredentialKind::Custom));
}

#[tokio::test]
async fn rust_restricted_custom_caller_cannot_call_other_plugin() {
    let restrictions = AccessRestrictions::new([AccessRestriction::plugin("scaffolder")])
        .expect("one plugin is a valid restriction");
    let verifier = Scripted::new("acme_", &Calls::default())
        .answer(ACME_TOKEN, Ok(ExternalIdentity::new("deploy-bot")));
    let h = Harness::new(
        Auth::builder(SERVICE)
            .custom_access(CustomAccess::new("acme", Arc::new(verifier)).restrict(restrictions)),
    );
    let (reply, event) = h.call(Method::GET, "/entities/42", Some(ACME_TOKEN)).await;
    assert_forbidden(
        &reply,
        &event,
        "credential is restricted to plugins [scaffolder]; this service is `catalog`",
        "restricted_plugin",
    );
}

/// A custom credential is a token a machine holds: like a static or JWKS token, a route
/// marked `sensitive` refuses it (only a user's own credential passes).
#[tokio::test]
async fn custom_credential_is_refused_on_a_sensitive_route() {
    let y = Yaml::new();
    let (reply, event) =
        y.h.call(Method::GET, "/admin/tokens", Some(ACME_TOKEN))
            .await;
    assert_forbidden(
        &reply,
        &event,
        "Token-authenticated callers cannot create tokens or change credentials (route is sensitive: custom credentials, and any acting for a user, are refused)",
        "sensitive_route",
    );
}

#[tokio::test]
async fn sensitive_route_whose_allow_excludes_custom_refuses_it() {
    let y = Yaml::new();
    let (reply, event) = y.h.call(Method::GET, "/users/me", Some(ACME_TOKEN)).await;
    assert_forbidden(
        &reply,
        &event,
        "custom credentials are not allowed on this route (allowed: user)",
        "credential_kind_not_allowed",
    );
}

#[tokio::test]
async fn yaml_route_allowing_only_custom_admits_custom_and_refuses_static() {
    let y = Yaml::new();
    let (reply, event) = y.h.call(Method::POST, "/imports", Some(ACME_TOKEN)).await;
    assert_custom_caller(&reply, &event, "external:acme:deploy-bot");

    let (reply, event) = y.h.call(Method::POST, "/imports", Some(STATIC_TOKEN)).await;
    assert_forbidden(
        &reply,
        &event,
        "static credentials are not allowed on this route (allowed: custom)",
        "credential_kind_not_allowed",
    );
}

// -- the access table

#[test]
fn access_table_has_custom_columns() {
    let table = Yaml::new().h.auth.access_table();
    assert_eq!(
        table.columns(),
        [
            "none",
            "static",
            "legacy",
            "custom",
            "backend.auth.externalAccess[2] (custom)",
            "external:ci-bot",
        ]
    );
    let md = table.to_markdown();
    assert!(
        md.contains("| `/imports` | POST | 401 needs credentials | 403 kind not allowed | 403 kind not allowed | allow | 403 other plugin |"),
        "{md}"
    );
}

#[test]
fn access_table_names_a_rust_restricted_entry_by_its_builder_call() {
    let restrictions = AccessRestrictions::new([AccessRestriction::plugin("scaffolder")])
        .expect("one plugin is a valid restriction");
    let auth = Auth::builder(SERVICE)
        .custom_access(CustomAccess::new(
            "acme",
            Arc::new(Scripted::new("acme_", &Calls::default())),
        ))
        .custom_access(
            CustomAccess::new("globex", Arc::new(Scripted::new("glx_", &Calls::default())))
                .restrict(restrictions),
        )
        .build()
        .expect("two custom entries build");
    assert_eq!(
        auth.access_table().columns(),
        ["none", "custom", "custom_access[1] (custom)"]
    );
}

#[tokio::test]
async fn access_table_custom_columns_agree_with_live_requests() {
    let y = Yaml::new();
    let json = y.h.auth.access_table().to_json();
    let restricted = "backend.auth.externalAccess[2] (custom)";
    let cases = [
        (
            "/imports",
            "POST",
            Method::POST,
            "/imports",
            "custom",
            ACME_TOKEN,
        ),
        (
            "/imports",
            "POST",
            Method::POST,
            "/imports",
            restricted,
            SCAFFOLDER_TOKEN,
        ),
        (
            "/users/me",
            "* (read)",
            Method::GET,
            "/users/me",
            "custom",
            ACME_TOKEN,
        ),
        (
            "/admin/tokens",
            "* (write)",
            Method::POST,
            "/admin/tokens",
            "custom",
            ACME_TOKEN,
        ),
        (
            "<unlisted>",
            "* (read)",
            Method::GET,
            "/entities/42",
            "custom",
            ACME_TOKEN,
        ),
        (
            "<unlisted>",
            "* (read)",
            Method::GET,
            "/entities/42",
            restricted,
            SCAFFOLDER_TOKEN,
        ),
    ];
    for (route, label, method, uri, column, token) in cases {
        let row = json["rows"]
            .as_array()
            .expect("rows is a list")
            .iter()
            .find(|r| r["route"] == route && r["method"] == label)
            .unwrap_or_else(|| panic!("no row for {label} {route}"));
        let cell = &row["cells"][column];
        let (reply, event) = y.h.call(method, uri, Some(token)).await;
        let case = format!("{label} {route} as {column}");
        assert_eq!(cell["status"], reply.status.as_u16(), "{case}");
        assert_eq!(cell["reason"], event.reason.as_str(), "{case}");
        assert_eq!(cell["message"], event.message.as_str(), "{case}");
    }
}

// -- configuration errors

#[test]
fn refuses_yaml_type_nobody_registered() {
    let yaml = with_entries(&format!(
        "      - type: static\n        options: {{ token: {STATIC_TOKEN}, subject: ci-bot }}\n      - type: acme\n        options: {{}}\n"
    ));
    let builder =
        AuthBuilder::from_yaml_str_with_env(&yaml, no_env).expect("the YAML itself parses");
    let err = build_error(builder);
    assert_eq!(err.path(), Some("backend.auth.externalAccess[1].type"));
    assert!(
        matches!(err.rule(), ConfigRule::UnknownName { what: "type", .. }),
        "{err:?}"
    );
}

#[test]
fn refuses_custom_options_initialize_refused() {
    let err = yaml_error(&with_entries(
        "      - type: acme\n        options: { prefix: acme_ }\n",
    ));
    assert_eq!(err.path(), Some("backend.auth.externalAccess[0].options"));
    assert_eq!(
        err.rule(),
        &ConfigRule::CustomOptions("options.keys must map keys to subjects".into())
    );
}

#[test]
fn refuses_custom_prefix_shorter_than_three() {
    let err = yaml_error(&with_entries(&acme_entry("a_")));
    assert_eq!(err.path(), Some("backend.auth.externalAccess[0].options"));
    assert!(
        matches!(err.rule(), ConfigRule::BadCustomPrefix { prefix, .. } if prefix == "a_"),
        "{err:?}"
    );
}

/// A custom prefix `eyJ` would take every JWT away from the JWT verifiers.
#[test]
fn refuses_custom_prefix_that_matches_jwts() {
    let err = yaml_error(&with_entries(&acme_entry("eyJ")));
    assert_eq!(err.path(), Some("backend.auth.externalAccess[0].options"));
    assert!(
        matches!(err.rule(), ConfigRule::BadCustomPrefix { prefix, .. } if prefix == "eyJ"),
        "{err:?}"
    );
}

/// `s2s_sa_` is the crate's own service-account prefix.
#[test]
fn refuses_custom_prefix_of_the_crates_own_tokens() {
    let err = yaml_error(&with_entries(&acme_entry("s2s_sa_")));
    assert_eq!(err.path(), Some("backend.auth.externalAccess[0].options"));
    assert!(
        matches!(err.rule(), ConfigRule::BadCustomPrefix { prefix, .. } if prefix == "s2s_sa_"),
        "{err:?}"
    );
}

/// `acme_x...` would match both `acme_` and `acme_x`: a token must have one verifier.
#[test]
fn refuses_overlapping_custom_prefixes() {
    let err = yaml_error(&with_entries(&format!(
        "{}{}",
        acme_entry("acme_"),
        acme_entry("acme_x")
    )));
    assert_eq!(err.path(), Some("backend.auth.externalAccess[1].options"));
    assert!(
        matches!(err.rule(), ConfigRule::BadCustomPrefix { prefix, .. } if prefix == "acme_x"),
        "{err:?}"
    );
}

#[test]
fn refuses_overlapping_custom_prefixes_given_in_rust() {
    let err = build_error(
        Auth::builder(SERVICE)
            .custom_access(CustomAccess::new(
                "acme",
                Arc::new(Scripted::new("acme_x", &Calls::default())),
            ))
            .custom_access(CustomAccess::new(
                "globex",
                Arc::new(Scripted::new("acme_", &Calls::default())),
            )),
    );
    assert_eq!(err.path(), Some("custom_access[1].options"));
    assert!(
        matches!(err.rule(), ConfigRule::BadCustomPrefix { prefix, .. } if prefix == "acme_"),
        "{err:?}"
    );
}

/// A static token the custom prefix would steal could never be used: refused at the static
/// token, without quoting it.
#[test]
fn refuses_static_token_starting_with_a_custom_prefix() {
    let stolen = "acme_looks-like-an-acme-key-5e9c";
    let err = yaml_error(&with_entries(&format!(
        "      - type: static\n        options: {{ token: {STATIC_TOKEN}, subject: ci-bot }}\n      - type: static\n        options: {{ token: {stolen}, subject: lost }}\n{}",
        acme_entry("acme_")
    )));
    assert_eq!(
        err.path(),
        Some("backend.auth.externalAccess[1].options.token")
    );
    assert!(
        matches!(err.rule(), ConfigRule::TokenMisclassified(_)),
        "{err:?}"
    );
    assert!(!err.to_string().contains(stolen), "{err}");
}

#[test]
fn refuses_custom_type_named_like_a_built_in_type() {
    let err = build_error(
        Auth::builder(SERVICE).external_token_type(KeyType::new("static", &Calls::default())),
    );
    assert_eq!(err.path(), Some("external_token_type(\"static\")"));
    assert_eq!(err.rule(), &ConfigRule::DuplicateType("static".into()));
}

#[test]
fn refuses_custom_type_registered_twice() {
    let err = build_error(
        Auth::builder(SERVICE)
            .external_token_type(KeyType::new("acme", &Calls::default()))
            .external_token_type(KeyType::new("acme", &Calls::default())),
    );
    assert_eq!(err.path(), Some("external_token_type(\"acme\")"));
    assert_eq!(err.rule(), &ConfigRule::DuplicateType("acme".into()));
}

/// `CustomAccess::new` names the type as `type:` does (the principal becomes
/// `external:<type>:<subject>`), so it must meet the rule `external_token_type` enforces:
/// `^[a-z0-9_-]+$` and not a built-in type. Today `""`, `static` and `acme:admin` build, and
/// their callers become `external::<subject>`, `external:static:<subject>` and
/// `external:acme:admin:<subject>` (the last indistinguishable from type `acme`'s subject
/// `admin:<subject>`).
#[test]
fn refuses_rust_custom_access_with_a_taken_or_invalid_type_name() {
    for name in ["static", "acme:admin", ""] {
        let err = build_error(Auth::builder(SERVICE).custom_access(CustomAccess::new(
            name,
            Arc::new(Scripted::new("acme_", &Calls::default())),
        )));
        assert!(
            err.path()
                .is_some_and(|p| p.starts_with("custom_access[0]")),
            "type {name:?}: {err:?}"
        );
        assert_eq!(
            err.rule(),
            &ConfigRule::DuplicateType(name.into()),
            "type {name:?}"
        );
    }
}

// -- no secret leaks

#[tokio::test]
async fn custom_token_never_leaves_the_layer() {
    let y = Yaml::new();
    let down = answering(
        ACME_TOKEN,
        Err(ExternalTokenError::Unavailable {
            retry_after_secs: 7,
        }),
    );
    let cases = [
        (&y.h, Method::GET, "/entities/42", ACME_TOKEN),
        (&y.h, Method::GET, "/users/me", ACME_TOKEN),
        (&y.h, Method::GET, "/entities/42", ACME_UNKNOWN_TOKEN),
        (&y.h, Method::GET, "/entities/42", SCAFFOLDER_TOKEN),
        (&y.h, Method::GET, "/healthz", SCAFFOLDER_TOKEN),
        (&down, Method::GET, "/entities/42", ACME_TOKEN),
    ];
    for (h, method, uri, token) in cases {
        let (reply, event) = h.call(method.clone(), uri, Some(token)).await;
        let debug = format!("{event:?}");
        let json = serde_json::to_string(&event).expect("audit events serialize");
        let seen = reply.everything();
        for form in leak_forms(token) {
            let case = format!("{method} {uri}");
            assert!(!debug.contains(&form), "{case}: audit Debug leaks: {debug}");
            assert!(!json.contains(&form), "{case}: audit JSON leaks: {json}");
            assert!(!seen.contains(&form), "{case}: response leaks: {seen}");
        }
    }
    let auth = format!("{:?}", y.h.auth);
    assert!(!auth.contains(ACME_TOKEN), "{auth}");
}
