//! Audit events: one per decision, with the fields an investigator needs and never the token.

mod common;

use std::sync::Arc;

use axum::body::Body;
use common::*;
use http::Method;
use s2s_auth::audit::{Decision, JsonLinesSink};
use s2s_auth::{CredentialKind, PrincipalType};
use serde_json::Value;

#[tokio::test]
async fn audit_event_for_allowed_request() {
    let h = Harness::standard();
    let (_, event) = h.call(Method::GET, "/entities/42", Some(CI_TOKEN)).await;
    assert_eq!(event.decision, Decision::Allow);
    assert_eq!(event.reason, "allowed");
    assert_eq!(event.status, 200);
    assert_eq!(event.message, "");
    assert_eq!(event.service_id, "catalog");
    assert_eq!(event.route, "/entities/{id}");
    assert_eq!(event.method, "GET");
    assert_eq!(event.subject.as_deref(), Some("external:ci-bot"));
    assert_eq!(event.credential, Some(CredentialKind::Static));
    assert_eq!(event.principal_type, Some(PrincipalType::Service));
    assert_eq!(event.actor, None, "a caller acting for itself has no actor");
    let fingerprint = event
        .token_fingerprint
        .expect("a token was sent")
        .to_string();
    assert_eq!(fingerprint.len(), 12);
    assert_ne!(fingerprint, CI_TOKEN);
    assert!(!CI_TOKEN.contains(&fingerprint));
    assert!(!fingerprint.contains(&CI_TOKEN[..8]));
    assert!(!event.request_id.is_empty());
}

#[tokio::test]
async fn audit_event_for_refused_request() {
    let h = Harness::standard();
    let (_, event) = h.call(Method::DELETE, "/entities/42", Some(CI_TOKEN)).await;
    assert_eq!(event.decision, Decision::Deny);
    assert_eq!(event.reason, "read_only_credential");
    assert_eq!(event.status, 403);
    assert_eq!(
        event.message,
        "static credential is read-only; DELETE needs allowWrites on the token or allowStaticWrites on the route"
    );
    assert_eq!(event.route, "/entities/{id}");
    assert_eq!(event.method, "DELETE");
    // The caller was verified before the policy refused it: the event says who.
    assert_eq!(event.subject.as_deref(), Some("external:ci-bot"));
    assert_eq!(event.credential, Some(CredentialKind::Static));
    assert!(event.token_fingerprint.is_some());
}

#[tokio::test]
async fn audit_event_for_unverified_token_has_fingerprint_but_no_subject() {
    let h = Harness::standard();
    let (_, event) = h
        .call(Method::GET, "/entities/42", Some(UNKNOWN_TOKEN))
        .await;
    assert_eq!(event.reason, "token_unrecognised");
    assert_eq!(event.subject, None);
    assert_eq!(event.credential, None);
    let fingerprint = event.token_fingerprint.expect("a token was sent");
    assert_ne!(fingerprint.to_string(), UNKNOWN_TOKEN);
}

#[tokio::test]
async fn audit_fingerprints_identify_tokens_without_revealing_them() {
    let h = Harness::standard();
    let (_, a) = h.call(Method::GET, "/entities/1", Some(CI_TOKEN)).await;
    let (_, b) = h.call(Method::GET, "/entities/2", Some(CI_TOKEN)).await;
    let (_, c) = h
        .call(Method::GET, "/entities/3", Some(CI_TOKEN_NEXT))
        .await;
    assert_eq!(a.token_fingerprint, b.token_fingerprint);
    assert_ne!(a.token_fingerprint, c.token_fingerprint);
    // Keyed: not a prefix of the token's plain SHA-256.
    let fingerprint = a.token_fingerprint.expect("a token was sent").to_string();
    assert!(!sha256_hex(CI_TOKEN).starts_with(&fingerprint));
}

#[tokio::test]
async fn audit_has_no_fingerprint_without_token() {
    let h = Harness::standard();
    let (_, event) = h.call(Method::GET, "/entities/42", None).await;
    assert_eq!(event.token_fingerprint, None);
    assert_eq!(event.reason, "missing_credentials");
    assert_eq!(event.status, 401);
}

#[tokio::test]
async fn audit_route_is_unlisted_for_unlisted_paths() {
    let h = Harness::standard();
    let (_, event) = h.call(Method::GET, "/not/listed", Some(CI_TOKEN)).await;
    assert_eq!(event.route, "<unlisted>");
    let (_, event) = h.call(Method::GET, "/files/a/b", Some(CI_TOKEN)).await;
    assert_eq!(event.route, "/files/{*rest}");
}

#[tokio::test]
async fn audit_uses_x_request_id() {
    let h = Harness::standard();
    let req = request(Method::GET, "/entities/42")
        .header("x-request-id", "req-7f3a-0001")
        .header("authorization", format!("Bearer {CI_TOKEN}"))
        .body(Body::empty())
        .expect("valid request");
    let (_, event) = h.send(req).await;
    assert_eq!(event.request_id, "req-7f3a-0001");
    // Refusals carry it too.
    let req = request(Method::GET, "/entities/42")
        .header("x-request-id", "req-7f3a-0002")
        .body(Body::empty())
        .expect("valid request");
    let (_, event) = h.send(req).await;
    assert_eq!(event.request_id, "req-7f3a-0002");
}

#[tokio::test]
async fn audit_replaces_unsafe_x_request_id() {
    // A request id with spaces or control characters could forge log lines; an overlong one
    // bloats them. Both are replaced by a generated id.
    let h = Harness::standard();
    let long = "r".repeat(129);
    for id in ["two words", "tab\tid", long.as_str(), ""] {
        let req = request(Method::GET, "/entities/42")
            .header("x-request-id", id)
            .body(Body::empty())
            .expect("valid request");
        let (_, event) = h.send(req).await;
        assert_ne!(event.request_id, id);
        assert!(!event.request_id.is_empty());
        assert!(
            event.request_id.bytes().all(|b| b.is_ascii_graphic()),
            "{:?}",
            event.request_id
        );
    }
}

#[tokio::test]
async fn generated_request_ids_are_unique() {
    let h = Harness::standard();
    let (_, a) = h.call(Method::GET, "/entities/1", None).await;
    let (_, b) = h.call(Method::GET, "/entities/1", None).await;
    assert_ne!(a.request_id, b.request_id);
}

#[tokio::test]
async fn json_lines_sink_writes_one_line_per_event() {
    let buf = SharedBuf::default();
    let sink = Arc::new(JsonLinesSink::new(buf.clone()));
    let h = Harness::new(standard_builder().audit_sink(sink.clone()));
    h.call(Method::GET, "/entities/42", Some(CI_TOKEN)).await;
    h.call(Method::POST, "/entities/42", Some(CI_TOKEN)).await;
    h.call(Method::GET, "/healthz", None).await;
    // The sink writes on a thread of its own: wait for it.
    assert!(sink.flush(std::time::Duration::from_secs(5)));
    assert_eq!(sink.dropped(), 0);

    let text = buf.contents();
    assert!(text.ends_with('\n'));
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is one JSON object"))
        .collect();
    assert_eq!(lines.len(), 3, "{text}");

    assert_eq!(lines[0]["decision"], "allow");
    assert_eq!(lines[0]["reason"], "allowed");
    assert_eq!(lines[0]["status"], 200);
    assert_eq!(lines[0]["route"], "/entities/{id}");
    assert_eq!(lines[0]["method"], "GET");
    assert_eq!(lines[0]["subject"], "external:ci-bot");
    assert_eq!(lines[0]["credential"], "static");
    assert_eq!(lines[0]["principalType"], "service");
    assert_eq!(lines[0]["serviceId"], "catalog");
    assert!(lines[0]["tokenFingerprint"].is_string());
    assert!(lines[0]["requestId"].is_string());
    assert!(lines[0]["time"].is_string());

    assert_eq!(lines[1]["decision"], "deny");
    assert_eq!(lines[1]["reason"], "read_only_credential");
    assert_eq!(lines[1]["status"], 403);

    assert_eq!(lines[2]["decision"], "allow");
    assert_eq!(lines[2]["reason"], "unauthenticated_route");
    assert_eq!(lines[2]["tokenFingerprint"], Value::Null);

    for secret in CONFIGURED_TOKENS {
        for form in leak_forms(secret) {
            assert!(!text.contains(&form), "{form} in {text}");
        }
    }
}

#[tokio::test]
async fn every_sink_sees_every_event() {
    let second = Arc::new(s2s_auth::audit::MemoryAuditSink::default());
    let h = Harness::new(standard_builder().audit_sink(second.clone()));
    h.call(Method::GET, "/entities/42", Some(CI_TOKEN)).await;
    h.call(Method::GET, "/entities/42", None).await;
    let reasons: Vec<String> = second
        .events()
        .into_iter()
        .map(|e| e.reason.to_string())
        .collect();
    assert_eq!(reasons, ["allowed", "missing_credentials"]);
}
