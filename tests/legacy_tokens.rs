//! Backstage legacy tokens (`type: legacy`, and the deprecated `backend.auth.keys`): HS256,
//! `sub: backstage-server`, no `aud`, `exp` required; several secrets for rotation.

mod common;

use common::kit::*;
use common::*;
use http::Method;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use s2s_auth::restrictions::{AccessRestriction, AccessRestrictions};
use s2s_auth::{Auth, AuthBuilder, CredentialKind, LegacySecret};
use serde_json::{Value, json};

/// Base64 of 32 bytes: the current secret.
fn secret_a() -> String {
    b64_std(b"legacy-secret-a-0123456789abcdef")
}

/// Base64 of 32 bytes: the next secret (rotation).
fn secret_b() -> String {
    b64_std(b"legacy-secret-b-fedcba9876543210")
}

fn harness() -> Harness {
    Harness::new(
        Auth::builder(SERVICE)
            .legacy_secret(LegacySecret::new(secret_a(), "old-backend"))
            .legacy_secret(LegacySecret::new(secret_b(), "old-backend")),
    )
}

async fn get(h: &Harness, token: &str) -> (Reply, s2s_auth::audit::AuditEvent) {
    h.call(Method::GET, "/entities/42", Some(token)).await
}

#[tokio::test]
async fn valid_legacy_token_yields_external_subject() {
    let h = harness();
    let (reply, event) = get(&h, &legacy_token(&secret_a(), &legacy_claims())).await;
    let principal = assert_allowed(&reply, &event);
    assert_eq!(principal["subject"], "external:old-backend");
    assert_eq!(principal["credential"], "legacy");
    assert_eq!(principal["principalType"], "service");
    assert_eq!(principal["readOnly"], false);
    assert!(principal["expiresAt"].is_string());
    assert_eq!(event.subject.as_deref(), Some("external:old-backend"));
    assert_eq!(event.credential, Some(CredentialKind::Legacy));
}

#[tokio::test]
async fn both_secrets_are_accepted_during_rotation() {
    let h = Harness::new(
        Auth::builder(SERVICE)
            .legacy_secret(LegacySecret::new(secret_a(), "backend-a"))
            .legacy_secret(LegacySecret::new(secret_b(), "backend-b")),
    );
    for (secret, subject) in [
        (secret_a(), "external:backend-a"),
        (secret_b(), "external:backend-b"),
    ] {
        let (reply, event) = get(&h, &legacy_token(&secret, &legacy_claims())).await;
        let principal = assert_allowed(&reply, &event);
        assert_eq!(principal["subject"], subject);
    }
    // A secret nobody configured.
    let other = b64_std(b"some-other-backend-secret-0000000");
    let (reply, event) = get(&h, &legacy_token(&other, &legacy_claims())).await;
    assert_invalid_token(&reply, &event, "signature does not verify", "bad_signature");
}

#[tokio::test]
async fn rejects_legacy_token_with_audience() {
    let h = harness();
    for aud in [
        json!(SERVICE),
        json!(["catalog", "search"]),
        json!("backstage"),
    ] {
        let mut c = legacy_claims();
        c["aud"] = aud;
        let (reply, event) = get(&h, &legacy_token(&secret_a(), &c)).await;
        assert_invalid_token(
            &reply,
            &event,
            "legacy tokens must not carry an aud claim",
            "legacy_with_audience",
        );
    }
}

#[tokio::test]
async fn rejects_legacy_token_with_another_subject() {
    let h = harness();
    for sub in [
        "plugin:catalog",
        "user:default/admin",
        "backstage-server ",
        "Backstage-Server",
    ] {
        let mut c = legacy_claims();
        c["sub"] = json!(sub);
        let (reply, event) = get(&h, &legacy_token(&secret_b(), &c)).await;
        assert_invalid_token(
            &reply,
            &event,
            "token subject is not accepted",
            "wrong_subject",
        );
    }
    let mut c = legacy_claims();
    c.as_object_mut().expect("object").remove("sub");
    let (reply, event) = get(&h, &legacy_token(&secret_a(), &c)).await;
    assert_invalid_token(&reply, &event, "token has no `sub` claim", "missing_claim");
}

#[tokio::test]
async fn rejects_expired_and_exp_less_legacy_tokens() {
    let h = harness();
    let mut c = legacy_claims();
    c["exp"] = json!(now() - 3600);
    let (reply, event) = get(&h, &legacy_token(&secret_a(), &c)).await;
    assert_invalid_token(&reply, &event, "token has expired", "token_expired");

    c.as_object_mut().expect("object").remove("exp");
    let (reply, event) = get(&h, &legacy_token(&secret_a(), &c)).await;
    assert_invalid_token(&reply, &event, "token has no `exp` claim", "missing_claim");

    let mut c = legacy_claims();
    c["nbf"] = json!(now() + 3600);
    let (reply, event) = get(&h, &legacy_token(&secret_a(), &c)).await;
    assert_invalid_token(
        &reply,
        &event,
        "token is not valid yet (nbf)",
        "not_yet_valid",
    );

    let mut c = legacy_claims();
    c["iat"] = json!(now() + 3600);
    let (reply, event) = get(&h, &legacy_token(&secret_a(), &c)).await;
    assert_invalid_token(
        &reply,
        &event,
        "token was issued in the future (iat)",
        "issued_in_future",
    );
}

#[tokio::test]
async fn rejects_other_algorithms_for_legacy_tokens() {
    let h = harness();
    // RS256, as an RSA-holding attacker (or a confused client) would send it.
    let rsa = SigningKey::rsa("rsa-1", 0);
    let mut header = rsa.header();
    header.kid = None;
    let (reply, event) = get(&h, &rsa.sign_with(header, &legacy_claims())).await;
    assert_invalid_token(
        &reply,
        &event,
        "token algorithm is not allowed for this issuer",
        "alg_not_allowed",
    );
    // The right secret, but HS384 / HS512.
    let secret = b"legacy-secret-a-0123456789abcdef";
    for alg in [Algorithm::HS384, Algorithm::HS512] {
        let token = jsonwebtoken::encode(
            &Header::new(alg),
            &legacy_claims(),
            &EncodingKey::from_secret(secret),
        )
        .expect("signing");
        let (reply, event) = get(&h, &token).await;
        assert_invalid_token(
            &reply,
            &event,
            "token algorithm is not allowed for this issuer",
            "alg_not_allowed",
        );
    }
    // And unsigned.
    let (reply, event) = get(
        &h,
        &unsigned(&json!({"alg": "none", "typ": "JWT"}), &legacy_claims()),
    )
    .await;
    assert_invalid_token(
        &reply,
        &event,
        "unsigned tokens (alg none) are never accepted",
        "alg_none",
    );
}

#[tokio::test]
async fn legacy_secret_restrictions_are_enforced() {
    let h = Harness::new(
        Auth::builder(SERVICE).legacy_secret(
            LegacySecret::new(secret_a(), "old-backend").restrict(
                AccessRestrictions::new([AccessRestriction::plugin("scaffolder")])
                    .expect("valid restrictions"),
            ),
        ),
    );
    let (reply, event) = get(&h, &legacy_token(&secret_a(), &legacy_claims())).await;
    assert_forbidden(
        &reply,
        &event,
        "credential is restricted to plugins [scaffolder]; this service is `catalog`",
        "restricted_plugin",
    );
    assert_eq!(event.subject.as_deref(), Some("external:old-backend"));
}

/// YAML with a `type: legacy` entry and a deprecated `backend.auth.keys` secret.
fn yaml_harness() -> Harness {
    let yaml = format!(
        "s2s:\n  serviceId: catalog\nbackend:\n  auth:\n    keys:\n      - secret: {}\n    externalAccess:\n      - type: legacy\n        options:\n          secret: {}\n          subject: old-backend\n",
        secret_a(),
        secret_b()
    );
    Harness::new(AuthBuilder::from_yaml_str_with_env(&yaml, no_env).expect("valid YAML"))
}

#[tokio::test]
async fn yaml_legacy_entries_and_deprecated_keys_are_honoured() {
    let h = yaml_harness();
    let (reply, event) = get(&h, &legacy_token(&secret_b(), &legacy_claims())).await;
    assert_eq!(
        assert_allowed(&reply, &event)["subject"],
        "external:old-backend"
    );
    // `backend.auth.keys` callers are Backstage's `external:backstage-plugins`.
    let (reply, event) = get(&h, &legacy_token(&secret_a(), &legacy_claims())).await;
    assert_eq!(
        assert_allowed(&reply, &event)["subject"],
        "external:backstage-plugins"
    );
}

#[tokio::test]
async fn standard_config_honours_its_legacy_key() {
    let h = Harness::standard();
    let (reply, event) = get(&h, &legacy_token(LEGACY_SECRET, &legacy_claims())).await;
    let principal: Value = assert_allowed(&reply, &event);
    assert_eq!(principal["subject"], "external:backstage-plugins");
    assert_eq!(principal["credential"], "legacy");
}
