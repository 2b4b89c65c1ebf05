//! Secrets in logs, errors or `Debug` output (DESIGN.md section 8): one run over every good
//! and bad case, with every log line (TRACE and up), every audit event, every response and
//! every `Debug` rendering captured, then searched for every token in every encoding.
//!
//! One test in this binary on purpose: the subscriber is installed with
//! `tracing::subscriber::with_default`, which is thread-local, and the requests run on a
//! current-thread runtime inside it.

mod common;

use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::body::Body;
use axum::routing::any;
use common::kit::{KeyServer, SigningKey, claims, legacy_claims, legacy_token, now, unsigned};
use common::*;
use http::{Method, Request};
use s2s_auth::audit::{JsonLinesSink, MemoryAuditSink};
use s2s_auth::secret::SecretString;
use s2s_auth::{Auth, AuthBuilder, DefaultPolicy, Principal, RoutePolicy, StaticToken};

/// A token sent that is 9 KiB long: distinctive, so an echo of it would be found.
fn oversized_token() -> String {
    CI_TOKEN.repeat(9 * 1024 / CI_TOKEN.len() + 1)
}

/// `Basic` credentials carrying a configured token as the password.
fn basic_credentials() -> String {
    b64_std(format!("ci-bot:{CI_TOKEN}").as_bytes())
}

/// The decoded legacy secret of the standard configuration (`LEGACY_SECRET` is its base64).
const LEGACY_SECRET_TEXT: &str = "legacy-shared-secret-never-logged";

/// Legacy tokens signed with the standard configuration's secret (valid, with `aud`, with
/// another `sub`, expired) and one with an unknown secret. Minted once, so every use sees
/// the same strings.
fn legacy_tokens() -> &'static [String] {
    static TOKENS: OnceLock<Vec<String>> = OnceLock::new();
    TOKENS.get_or_init(|| {
        let mut with_aud = legacy_claims();
        with_aud["aud"] = serde_json::json!("catalog");
        let mut other_sub = legacy_claims();
        other_sub["sub"] = serde_json::json!("plugin:catalog");
        let mut expired = legacy_claims();
        expired["exp"] = serde_json::json!(now() - 3600);
        let unknown = b64_std(b"a-legacy-secret-nobody-configured");
        vec![
            legacy_token(LEGACY_SECRET, &legacy_claims()),
            legacy_token(LEGACY_SECRET, &with_aud),
            legacy_token(LEGACY_SECRET, &other_sub),
            legacy_token(LEGACY_SECRET, &expired),
            legacy_token(&unknown, &legacy_claims()),
        ]
    })
}

const JWT_ISSUER: &str = "https://idp.example.com";

/// The signing key of the JWKS part of the run.
fn jwks_key() -> &'static SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(|| SigningKey::es256("ec-1"))
}

/// JWKS-verified tokens: valid, for another audience, expired, naming an unknown kid,
/// forged, unsigned, and carrying a `jku`.
fn jwks_tokens() -> &'static [String] {
    static TOKENS: OnceLock<Vec<String>> = OnceLock::new();
    TOKENS.get_or_init(|| {
        let key = jwks_key();
        let good = claims(JWT_ISSUER, SERVICE, "ci-bot");
        let mut expired = good.clone();
        expired["exp"] = serde_json::json!(now() - 3600);
        let mut unknown_kid = key.header();
        unknown_kid.kid = Some("nobody".to_owned());
        let mut jku = key.header();
        jku.jku = Some("http://127.0.0.1:9/jwks".to_owned());
        vec![
            key.sign(&good),
            key.sign(&claims(JWT_ISSUER, "search", "ci-bot")),
            key.sign(&expired),
            key.sign_with(unknown_kid, &good),
            SigningKey::es256("ec-1").sign(&good),
            unsigned(&serde_json::json!({"alg": "none", "kid": "ec-1"}), &good),
            key.sign_with(jku, &good),
        ]
    })
}

/// One request of the run: method, URI, raw `Authorization` values, `x-request-id`.
type Case = (Method, String, Vec<Vec<u8>>, Option<&'static str>);

/// Every request of the run.
fn cases() -> Vec<Case> {
    let bearer = |t: &str| vec![format!("Bearer {t}").into_bytes()];
    let mut cases = vec![
        // Extraction.
        (Method::GET, "/entities/42".into(), vec![], None),
        (
            Method::GET,
            "/entities/42".into(),
            vec![format!("Basic {}", basic_credentials()).into_bytes()],
            None,
        ),
        (
            Method::GET,
            "/entities/42".into(),
            vec![
                format!("Bearer {CI_TOKEN}").into_bytes(),
                format!("Bearer {WRITER_TOKEN}").into_bytes(),
            ],
            None,
        ),
        (
            Method::GET,
            "/entities/42".into(),
            vec![b"Bearer".to_vec()],
            None,
        ),
        (
            Method::GET,
            "/entities/42".into(),
            vec![format!("Bearer {CI_TOKEN} {WRITER_TOKEN}").into_bytes()],
            None,
        ),
        (
            Method::GET,
            "/entities/42".into(),
            bearer(&oversized_token()),
            None,
        ),
        (
            Method::GET,
            "/entities/42".into(),
            vec![format!("Bearer caf\u{e9}-{CI_TOKEN}").into_bytes()],
            None,
        ),
        (
            Method::GET,
            format!("/entities/42?access_token={CI_TOKEN}"),
            vec![],
            None,
        ),
        (
            Method::GET,
            format!("/entities/42?access_token={WRITER_TOKEN}"),
            bearer(WRITER_TOKEN),
            None,
        ),
        (
            Method::GET,
            "/entities/42".into(),
            vec![format!("bearer {CI_TOKEN}").into_bytes()],
            None,
        ),
        // Static tokens.
        (
            Method::GET,
            "/entities/42".into(),
            bearer(UNKNOWN_TOKEN),
            None,
        ),
        (
            Method::GET,
            "/entities/42".into(),
            bearer(EXPIRED_TOKEN),
            None,
        ),
        (
            Method::GET,
            "/entities/42".into(),
            bearer(JWT_SHAPED_TOKEN),
            None,
        ),
        (
            Method::GET,
            "/entities/42".into(),
            bearer(HASHED_TOKEN),
            None,
        ),
        (
            Method::GET,
            "/entities/42".into(),
            bearer(CI_TOKEN_NEXT),
            None,
        ),
        (Method::POST, "/files/x".into(), bearer(WRITER_TOKEN), None),
        (Method::POST, "/imports".into(), bearer(CI_TOKEN), None),
        // Restrictions.
        (
            Method::GET,
            "/entities/42".into(),
            bearer(SCAFFOLDER_ONLY_TOKEN),
            None,
        ),
        (
            Method::GET,
            "/entities/42/refresh".into(),
            bearer(READ_ACTION_TOKEN),
            None,
        ),
        (
            Method::DELETE,
            "/files/x".into(),
            bearer(READ_ACTION_TOKEN),
            None,
        ),
        (
            Method::DELETE,
            "/entities/42".into(),
            bearer(READ_PERMISSION_TOKEN),
            None,
        ),
        (
            Method::GET,
            "/files/x".into(),
            bearer(READ_PERMISSION_TOKEN),
            None,
        ),
        (
            Method::GET,
            "/entities/42".into(),
            bearer(READ_PERMISSION_TOKEN),
            None,
        ),
        // Policies.
        (Method::GET, "/healthz".into(), vec![], None),
        (Method::GET, "/healthz".into(), bearer(CI_TOKEN), None),
        (Method::GET, "/healthz".into(), bearer(UNKNOWN_TOKEN), None),
        (Method::GET, "/healthz".into(), bearer(EXPIRED_TOKEN), None),
        (Method::GET, "/users/me".into(), bearer(CI_TOKEN), None),
        (Method::GET, "/admin/tokens".into(), bearer(CI_TOKEN), None),
        (Method::HEAD, "/entities/42".into(), bearer(CI_TOKEN), None),
        (Method::GET, "/not/listed".into(), bearer(CI_TOKEN), None),
        // Audit.
        (
            Method::GET,
            "/entities/42".into(),
            bearer(CI_TOKEN),
            Some("req-leak-check-1"),
        ),
        (
            Method::GET,
            "/entities/42".into(),
            vec![],
            Some("has spaces in it"),
        ),
        // The handler renders the verified principal with `{:?}`.
        (Method::GET, "/debug".into(), bearer(WRITER_TOKEN), None),
        (
            Method::GET,
            "/debug".into(),
            bearer(READ_ACTION_TOKEN),
            None,
        ),
    ];
    // Legacy tokens (the standard configuration honours `backend.auth.keys`).
    for token in legacy_tokens() {
        cases.push((Method::GET, "/entities/42".into(), bearer(token), None));
    }
    cases.push((
        Method::GET,
        "/debug".into(),
        bearer(&legacy_tokens()[0]),
        None,
    ));
    cases.push((
        Method::GET,
        "/healthz".into(),
        bearer(&legacy_tokens()[2]),
        None,
    ));
    // Read-only on every writing method, and the reading ones.
    for method in [
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
        Method::GET,
        Method::HEAD,
        Method::OPTIONS,
    ] {
        cases.push((method, "/files/x".into(), bearer(CI_TOKEN), None));
    }
    cases
}

fn to_request((method, uri, authorization, request_id): &Case) -> Request<Body> {
    let values: Vec<&[u8]> = authorization.iter().map(Vec::as_slice).collect();
    let mut req = with_authorization(method.clone(), uri, &values);
    if let Some(id) = request_id {
        req.headers_mut().insert(
            "x-request-id",
            id.parse()
                .expect("test request ids are valid header values"),
        );
    }
    req
}

/// Configurations that must fail, each holding a secret somewhere.
fn bad_configs() -> Vec<String> {
    let entry = |options: &str| {
        format!(
            "s2s:\n  serviceId: catalog\nbackend:\n  auth:\n    externalAccess:\n      - type: static\n        options: {{ {options} }}\n"
        )
    };
    vec![
        entry("token: Ab3-xy7, subject: ci"),
        entry(&format!("token: '{CI_TOKEN} {WRITER_TOKEN}', subject: ci")),
        entry(&format!("token: {CI_TOKEN}, subject: 'ci bot'")),
        entry(&format!("token: {CI_TOKEN}, subject: ci, alowWrites: true")),
        entry(&format!("token: {CI_TOKEN}, subject: ci, expiresAt: soon")),
        entry(&format!(
            "token: {CI_TOKEN}, tokenSha256: {}, subject: ci",
            sha256_hex(HASHED_TOKEN)
        )),
        entry("token: '${MISSING_TOKEN}', subject: ci"),
        format!(
            "s2s:\n  serviceId: catalog\nbackend:\n  auth:\n    externalAccess:\n      - type: static\n        options: {{ token: {CI_TOKEN}, subject: a }}\n      - type: static\n        options: {{ token: {CI_TOKEN}, subject: b }}\n"
        ),
        format!(
            "s2s:\n  serviceId: catalog\nbackend:\n  auth:\n    externalAccess:\n      - type: static\n        options: {{ token: {CI_TOKEN}, subject: a }}\n      - type: static\n        options: {{ tokenSha256: {}, subject: b }}\n",
            sha256_hex(CI_TOKEN)
        ),
        format!("s2s: [{CI_TOKEN}\n  : : {WRITER_TOKEN}"),
        // Legacy secrets: too short, not base64, and a good one next to a bad entry.
        "s2s:\n  serviceId: catalog\nbackend:\n  auth:\n    keys:\n      - secret: c2hvcnQtc2VjcmV0\n".to_owned(),
        format!(
            "s2s:\n  serviceId: catalog\nbackend:\n  auth:\n    externalAccess:\n      - type: legacy\n        options: {{ secret: '{CI_TOKEN} x', subject: a }}\n"
        ),
        format!(
            "s2s:\n  serviceId: catalog\nbackend:\n  auth:\n    keys:\n      - secret: {LEGACY_SECRET}\n        kid: k\n"
        ),
        format!(
            "s2s:\n  serviceId: catalog\nbackend:\n  auth:\n    keys:\n      - secret: {LEGACY_SECRET}\n    externalAccess:\n      - type: jwks\n        options: {{ url: 'https://idp.example.com/jwks', audience: catalog }}\n"
        ),
    ]
}

/// Everything secret that the run configures or sends, in every form it could leak in.
fn needles() -> Vec<String> {
    let mut secrets: Vec<String> = CONFIGURED_TOKENS.iter().map(|s| (*s).to_owned()).collect();
    secrets.extend([
        LEGACY_SECRET.to_owned(),
        LEGACY_SECRET_TEXT.to_owned(),
        "c2hvcnQtc2VjcmV0".to_owned(),
        "short-secret".to_owned(),
        UNKNOWN_TOKEN.to_owned(),
        JWT_SHAPED_TOKEN.to_owned(),
        oversized_token(),
        basic_credentials(),
        format!("ci-bot:{CI_TOKEN}"),
        sha256_hex(HASHED_TOKEN),
        sha256_hex(CI_TOKEN),
        "Ab3-xy7".to_owned(),
    ]);
    secrets.extend(legacy_tokens().iter().cloned());
    secrets.extend(jwks_tokens().iter().cloned());
    let mut needles: Vec<String> = secrets.iter().flat_map(|s| leak_forms(s)).collect();
    needles.sort();
    needles.dedup();
    needles
}

#[test]
fn no_token_or_secret_in_logs_audit_responses_or_debug() {
    // The search below is only as good as its hex encoder (base64 is the `base64` crate's).
    assert_eq!(hex(b"\x01\xab"), "01ab");

    let logs = SharedBuf::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(logs.clone())
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .finish();

    let mut outputs: Vec<(String, String)> = Vec::new();
    let audit = Arc::new(MemoryAuditSink::default());
    let json_lines = SharedBuf::default();
    let json_sink = Arc::new(JsonLinesSink::new(json_lines.clone()));

    tracing::subscriber::with_default(subscriber, || {
        // Configuration, including Backstage keys s2s-auth ignores with a warning.
        let builder = standard_builder()
            .audit_sink(audit.clone())
            .audit_sink(json_sink.clone());
        outputs.push(("Debug of AuthBuilder".into(), format!("{builder:?}")));
        let auth = builder.build().expect("standard configuration builds");
        outputs.push(("Debug of Auth".into(), format!("{auth:?}")));
        let table = auth.access_table();
        outputs.push((
            "access table".into(),
            format!("{}\n{}\n{table:?}", table.to_markdown(), table.to_json()),
        ));

        let deny = Auth::builder(SERVICE)
            .static_token(StaticToken::new("ci-bot", CI_TOKEN))
            .route(
                "/entities/{id}",
                [Method::GET],
                RoutePolicy::authenticated(),
            )
            .default_policy(DefaultPolicy::Deny)
            .audit_sink(audit.clone())
            .build()
            .expect("valid configuration");

        for yaml in bad_configs() {
            let err = AuthBuilder::from_yaml_str_with_env(&yaml, no_env)
                .and_then(AuthBuilder::build)
                .expect_err("bad configuration");
            outputs.push((
                format!("ConfigError for {yaml:?}"),
                format!("{err} | {err:?}"),
            ));
        }

        // Secrets' own Debug and Display.
        for token in [
            StaticToken::new("ci-bot", CI_TOKEN),
            StaticToken::from_sha256_hex("hashed", sha256_hex(HASHED_TOKEN)),
            StaticToken::new("w", WRITER_TOKEN).allow_writes(true),
        ] {
            outputs.push(("Debug of StaticToken".into(), format!("{token:?}")));
        }
        outputs.push((
            "Debug of LegacySecret".into(),
            format!(
                "{:?}",
                s2s_auth::LegacySecret::new(LEGACY_SECRET, "old-backend")
            ),
        ));
        let secret = SecretString::from(CI_TOKEN);
        outputs.push((
            "SecretString".into(),
            format!("{secret:?} {secret} {}", secret.fingerprint()),
        ));

        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a current-thread runtime");
        runtime.block_on(async {
            let router = echo_router()
                .route(
                    "/debug",
                    any(|p: Principal| async move { format!("{p:?}") }),
                )
                .layer(auth.layer());
            let deny_router: Router = echo_router().layer(deny.layer());
            for case in cases() {
                let reply = send(&router, to_request(&case)).await;
                outputs.push((
                    format!("response to {} {}", case.0, case.1),
                    reply.everything(),
                ));
            }
            for path in ["/entities/42", "/reports"] {
                let reply = send(&deny_router, bearer(Method::GET, path, CI_TOKEN)).await;
                outputs.push((format!("response to GET {path} (deny)"), reply.everything()));
            }
            // JWKS-verified tokens, against a live key server and against one that is down.
            let server = KeyServer::start(&[jwks_key()]).await;
            for (name, url) in [
                ("up", server.jwks_url()),
                ("down", "http://127.0.0.1:9/jwks".to_owned()),
            ] {
                let jwks_auth = Auth::builder(SERVICE)
                    .jwks_access(
                        s2s_auth::JwksAccess::new(url)
                            .issuers([JWT_ISSUER])
                            .audiences([SERVICE]),
                    )
                    .audit_sink(audit.clone())
                    .build()
                    .expect("valid configuration");
                outputs.push((
                    format!("Debug of Auth (jwks, {name})"),
                    format!("{jwks_auth:?}"),
                ));
                let jwks_router = echo_router()
                    .route(
                        "/debug",
                        any(|p: Principal| async move { format!("{p:?}") }),
                    )
                    .layer(jwks_auth.layer());
                for token in jwks_tokens() {
                    for path in ["/debug", "/entities/42"] {
                        let reply = send(&jwks_router, bearer(Method::GET, path, token)).await;
                        outputs.push((
                            format!("response to GET {path} (jwks, {name})"),
                            reply.everything(),
                        ));
                    }
                }
            }
        });
    });

    let events = audit.events();
    assert!(events.len() >= cases().len(), "every request is audited");
    for event in &events {
        outputs.push((
            format!("audit event {}", event.request_id),
            format!(
                "{event:?}\n{}",
                serde_json::to_string(event).expect("events serialize")
            ),
        ));
    }
    // The sink writes on a thread of its own: wait for it.
    assert!(json_sink.flush(std::time::Duration::from_secs(10)));
    outputs.push(("JSON lines sink".into(), json_lines.contents()));
    let log = logs.contents();

    // The capture really captured: audit events and the config warning are in the log, so the
    // search below is not vacuous.
    let audit_lines = log
        .lines()
        .filter(|l| l.contains("s2s_auth::audit"))
        .count();
    assert_eq!(
        audit_lines,
        events.len(),
        "one log line per audit event:\n{log}"
    );
    assert!(log.contains("token_unrecognised"), "{log}");
    assert!(
        log.contains("backend.auth.keys"),
        "the ignored-key warning:\n{log}"
    );
    assert!(log.contains("external:ci-bot"), "{log}");
    // ...and the JWT part ran: legacy tokens, JWKS tokens, a key server that is down.
    for reason in [
        "legacy_with_audience",
        "external:backstage-plugins",
        "wrong_audience",
        "key_in_header",
        "keys_unavailable",
    ] {
        assert!(log.contains(reason), "{reason} not in the log:\n{log}");
    }
    outputs.push(("captured logs".into(), log));

    let needles = needles();
    let mut leaks = Vec::new();
    for (what, text) in &outputs {
        for needle in &needles {
            if text.contains(needle.as_str()) {
                leaks.push(format!("{needle:?} in {what}"));
            }
        }
    }
    assert!(leaks.is_empty(), "secrets leaked:\n{}", leaks.join("\n"));
}
