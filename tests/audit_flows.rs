//! Audit beyond requests (DESIGN.md section 7): issuing a plugin token, issuing one on behalf
//! of a user, generating and publishing a signing key, and pruning expired keys are each an
//! event, saying who, for whom and until when; and no event, however it is printed, holds a
//! token, a piece of one, or private key material.

mod common;

use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::encoding::{AsBigEndian, EcPrivateKeyBin};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use http::{Method, StatusCode};
use s2s_auth::audit::{AuditEvent, Decision, EventKind, JsonLinesSink, MemoryAuditSink};
use s2s_auth::plugin::JWKS_PATH;
use s2s_auth::plugin::StaticKey;
use s2s_auth::secret::SecretString;
use s2s_auth::store::{MemoryStore, PublicKeyRecord, Store};
use s2s_auth::{Auth, CredentialKind, PluginTokens, Principal, PrincipalType};
use serde_json::Value;

use common::kit::{SigningKey, now};
use common::{SharedBuf, b64_std, b64url, hex, request, send};

/// A service whose events go to memory and, as JSON lines, to a buffer.
struct Audited {
    auth: Auth,
    memory: Arc<MemoryAuditSink>,
    lines: SharedBuf,
    /// Writes `lines` on a thread of its own: flushed before they are read.
    sink: Arc<JsonLinesSink>,
}

impl Audited {
    fn new(service: &str, tokens: PluginTokens) -> Self {
        let memory = Arc::new(MemoryAuditSink::default());
        let lines = SharedBuf::default();
        let sink = Arc::new(JsonLinesSink::new(lines.clone()));
        let auth = Auth::builder(service)
            .plugin_tokens(tokens)
            .audit_sink(memory.clone())
            .audit_sink(sink.clone())
            .build()
            .expect("configuration builds");
        Self {
            auth,
            memory,
            lines,
            sink,
        }
    }

    /// The kinds of the events recorded so far, in order.
    fn kinds(&self) -> Vec<EventKind> {
        self.memory.events().iter().map(|e| e.event).collect()
    }

    /// The one event of `kind`.
    #[track_caller]
    fn only(&self, kind: EventKind) -> AuditEvent {
        let mut found: Vec<AuditEvent> = self
            .memory
            .events()
            .into_iter()
            .filter(|e| e.event == kind)
            .collect();
        assert_eq!(found.len(), 1, "one {kind:?} event: {found:#?}");
        found.remove(0)
    }

    /// The one event of `kind` about the key `kid`.
    #[track_caller]
    fn only_for(&self, kind: EventKind, kid: &str) -> AuditEvent {
        let mut found: Vec<AuditEvent> = self
            .memory
            .events()
            .into_iter()
            .filter(|e| e.event == kind && e.kid.as_deref() == Some(kid))
            .collect();
        assert_eq!(found.len(), 1, "one {kind:?} event for {kid}: {found:#?}");
        found.remove(0)
    }

    /// The JSON lines written so far.
    fn json_lines(&self) -> Vec<Value> {
        assert!(
            self.sink.flush(Duration::from_secs(5)),
            "the sink catches up"
        );
        self.lines
            .contents()
            .lines()
            .map(|l| serde_json::from_str(l).expect("each line is one JSON object"))
            .collect()
    }

    /// Asserts that none of `needles` appears in any event, printed with `Debug`,
    /// serialized with `serde_json`, or as `JsonLinesSink` wrote it.
    #[track_caller]
    fn assert_nothing_of(&self, needles: &[String]) {
        assert!(
            self.sink.flush(Duration::from_secs(5)),
            "the sink catches up"
        );
        let mut printed = vec![self.lines.contents()];
        for event in self.memory.events() {
            printed.push(format!("{event:?}"));
            printed.push(format!("{event:#?}"));
            printed.push(serde_json::to_string(&event).expect("events serialize"));
        }
        assert!(!printed[0].is_empty(), "the JSON lines sink was written to");
        for text in &printed {
            for needle in needles {
                assert!(!text.contains(needle.as_str()), "{needle:?} in {text}");
            }
        }
    }
}

fn memory_store() -> Arc<dyn Store> {
    Arc::new(MemoryStore::default())
}

/// The token and each of its three segments.
fn token_parts(token: &SecretString) -> Vec<String> {
    let token = token.expose_secret();
    let mut parts = vec![token.to_owned()];
    parts.extend(token.split('.').map(str::to_owned));
    assert_eq!(parts.len(), 4, "a compact JWS: {token}");
    parts
}

fn claims(token: &SecretString) -> Value {
    let payload = token.expose_secret().split('.').nth(1).expect("a payload");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64url")).expect("JSON")
}

fn header(token: &SecretString) -> Value {
    let header = token.expose_secret().split('.').next().expect("a header");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).expect("base64url")).expect("JSON")
}

/// The instant of a claim given in unix seconds.
fn instant(claim: &Value) -> time::OffsetDateTime {
    let secs = claim.as_i64().expect("unix seconds");
    time::OffsetDateTime::from_unix_timestamp(secs).expect("a valid instant")
}

/// Every printable form of some secret bytes.
fn byte_forms(bytes: &[u8]) -> Vec<String> {
    vec![
        hex(bytes),
        hex(bytes).to_uppercase(),
        b64_std(bytes),
        STANDARD_NO_PAD.encode(bytes),
        b64url(bytes),
    ]
}

/// Lifecycle events have no request: empty method and route, allow, 200.
#[track_caller]
fn assert_lifecycle(event: &AuditEvent, service: &str) {
    assert_eq!(event.decision, Decision::Allow);
    assert_eq!(event.status, 200);
    assert_eq!(event.service_id, service);
    assert_eq!(event.method, "");
    assert_eq!(event.route, "");
    assert!(!event.request_id.is_empty());
}

// ---------------------------------------------------------------------------------------
// Issuing
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn issuing_a_plugin_token_is_audited_without_the_token() {
    let scaffolder = Audited::new("scaffolder", PluginTokens::new(memory_store()));
    let token = scaffolder
        .auth
        .plugin_token("catalog")
        .await
        .expect("a plugin token");

    // The first token needs the first key: generated, published, then used; the next key
    // is generated and published with it, a key duration before it signs.
    assert_eq!(
        scaffolder.kinds(),
        [
            EventKind::KeyGenerated,
            EventKind::KeyPublished,
            EventKind::KeyGenerated,
            EventKind::KeyPublished,
            EventKind::TokenIssued
        ]
    );
    let issued = scaffolder.only(EventKind::TokenIssued);
    assert_lifecycle(&issued, "scaffolder");
    assert_eq!(issued.reason, "token_issued");
    assert_eq!(issued.credential, Some(CredentialKind::Plugin));
    assert_eq!(issued.principal_type, Some(PrincipalType::Service));
    assert_eq!(issued.subject.as_deref(), Some("scaffolder"));
    assert_eq!(
        issued.actor, None,
        "a service acting for itself has no actor"
    );
    assert_eq!(issued.target.as_deref(), Some("catalog"));
    assert_eq!(issued.expires_at, Some(instant(&claims(&token)["exp"])));
    assert_eq!(issued.token_fingerprint, Some(token.fingerprint()));
    assert_eq!(issued.kid, None);

    scaffolder.assert_nothing_of(&token_parts(&token));
}

#[tokio::test]
async fn issuing_on_behalf_of_a_user_is_audited_as_the_user_with_the_service_as_actor() {
    let scaffolder = Audited::new("scaffolder", PluginTokens::new(memory_store()));
    let user_expires = time::OffsetDateTime::now_utc() + time::Duration::minutes(10);
    let jane = Principal::new(
        PrincipalType::User,
        "user:default/jane",
        CredentialKind::User,
    )
    .with_expiry(user_expires);
    let token = scaffolder
        .auth
        .on_behalf_of_token(&jane, "catalog")
        .await
        .expect("an on-behalf-of token");

    let issued = scaffolder.only(EventKind::TokenIssued);
    assert_lifecycle(&issued, "scaffolder");
    assert_eq!(issued.credential, Some(CredentialKind::Obo));
    assert_eq!(issued.principal_type, Some(PrincipalType::User));
    assert_eq!(issued.subject.as_deref(), Some("user:default/jane"));
    assert_eq!(issued.actor.as_deref(), Some("plugin:scaffolder"));
    assert_eq!(issued.target.as_deref(), Some("catalog"));
    let expires_at = issued.expires_at.expect("an expiry");
    assert_eq!(expires_at, instant(&claims(&token)["exp"]));
    assert!(
        expires_at <= user_expires,
        "never past the user's own token"
    );
    assert_eq!(issued.token_fingerprint, Some(token.fingerprint()));

    scaffolder.assert_nothing_of(&token_parts(&token));
}

// ---------------------------------------------------------------------------------------
// Keys
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_new_signing_key_is_audited_as_generated_then_published() {
    let key_duration = Duration::from_secs(600);
    let store = memory_store();
    let first = Audited::new(
        "scaffolder",
        PluginTokens::new(store.clone()).key_duration(key_duration),
    );
    let token = first.auth.plugin_token("catalog").await.expect("a token");
    let kid = header(&token)["kid"].as_str().expect("a kid").to_owned();

    let generated = first.only_for(EventKind::KeyGenerated, &kid);
    let published = first.only_for(EventKind::KeyPublished, &kid);
    for (event, reason) in [(&generated, "key_generated"), (&published, "key_published")] {
        assert_lifecycle(event, "scaffolder");
        assert_eq!(event.reason, reason);
        assert_eq!(
            event.kid.as_deref(),
            Some(kid.as_str()),
            "the key that signed"
        );
        assert_eq!(event.token_fingerprint, None);
        assert_eq!(event.subject, None);
    }
    // Signs for one key duration; stays published for three.
    let signs_until = generated.expires_at.expect("when it stops signing");
    let published_until = published.expires_at.expect("when it leaves the JWKS");
    assert_eq!(published_until - signs_until, 2 * key_duration);
    let from_now = signs_until - time::OffsetDateTime::now_utc();
    assert!(
        from_now > time::Duration::seconds(590) && from_now <= key_duration,
        "{from_now}"
    );
    // The next key, published with it: in the JWKS for a key duration before it signs, for
    // one more after that (at the latest), and then for two.
    let next: Vec<AuditEvent> = first
        .memory
        .events()
        .into_iter()
        .filter(|e| e.event == EventKind::KeyPublished && e.kid.as_deref() != Some(&kid))
        .collect();
    assert_eq!(next.len(), 1, "{next:#?}");
    let next_kid = next[0].kid.clone().expect("a kid");
    let next_published_until = next[0].expires_at.expect("when it leaves the JWKS");
    assert_eq!(next_published_until - published_until, key_duration);
    let next_generated = first.only_for(EventKind::KeyGenerated, &next_kid);
    assert_eq!(
        next_generated.expires_at.expect("when it stops signing") - signs_until,
        key_duration
    );

    // The second token reuses the key: no new key events.
    first.memory.clear();
    first.auth.plugin_token("search").await.expect("a token");
    assert_eq!(first.kinds(), [EventKind::TokenIssued]);

    // A replica on the same store brings its own key, audited with its own kid.
    let replica = Audited::new(
        "scaffolder",
        PluginTokens::new(store).key_duration(key_duration),
    );
    let token = replica.auth.plugin_token("catalog").await.expect("a token");
    let replica_kid = header(&token)["kid"].as_str().expect("a kid").to_owned();
    assert_ne!(replica_kid, kid);
    for kind in [EventKind::KeyGenerated, EventKind::KeyPublished] {
        assert_lifecycle(&replica.only_for(kind, &replica_kid), "scaffolder");
    }
    // No event of either holds a JWK, let alone its private member.
    for audited in [&first, &replica] {
        audited.assert_nothing_of(&[
            "\"d\"".to_owned(),
            "PRIVATE KEY".to_owned(),
            "\"kty\"".to_owned(),
        ]);
    }
}

#[tokio::test]
async fn pruning_expired_keys_is_audited_with_how_many() {
    let store = memory_store();
    let t = now() as i64;
    for (service, kid) in [
        ("scaffolder", "expired-key"),
        ("search", "expired-search-key"),
    ] {
        let record = PublicKeyRecord {
            service_id: service.to_owned(),
            kid: kid.to_owned(),
            jwk: SigningKey::es256(kid).jwk(),
            expires_at: t - 10,
        };
        store.put_public_key(&record).await.expect("stored");
    }
    let scaffolder = Audited::new("scaffolder", PluginTokens::new(store));
    scaffolder
        .auth
        .plugin_token("catalog")
        .await
        .expect("a token");

    // Pruned on rotation, once the new key is published (and before the next key is).
    assert_eq!(
        scaffolder.kinds(),
        [
            EventKind::KeyGenerated,
            EventKind::KeyPublished,
            EventKind::KeysPruned,
            EventKind::KeyGenerated,
            EventKind::KeyPublished,
            EventKind::TokenIssued
        ]
    );
    let pruned = scaffolder.only(EventKind::KeysPruned);
    assert_lifecycle(&pruned, "scaffolder");
    assert_eq!(pruned.reason, "keys_pruned");
    assert_eq!(pruned.message, "2 expired public key(s) left the store");
    assert_eq!(pruned.kid, None);
    let json = serde_json::to_value(&pruned).expect("serializes");
    assert_eq!(json["event"], "keys_pruned");
}

// ---------------------------------------------------------------------------------------
// Secrets and the JSON shape
// ---------------------------------------------------------------------------------------

/// A fresh P-256 key as (PKCS#8 DER, private scalar, private PEM, public PEM).
fn static_key_pair() -> (Vec<u8>, Vec<u8>, String, String) {
    /// The SubjectPublicKeyInfo prefix of every P-256 public key.
    const P256_SPKI_PREFIX: [u8; 26] = [
        0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08,
        0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
    ];
    let pem = |label: &str, der: &[u8]| {
        let b64 = STANDARD.encode(der);
        let lines: Vec<&str> = b64
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).expect("base64 is ASCII"))
            .collect();
        format!(
            "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
            lines.join("\n")
        )
    };
    let pkcs8 =
        EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
            .expect("key generation");
    let pair =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).expect("parse");
    let mut spki = P256_SPKI_PREFIX.to_vec();
    spki.extend_from_slice(pair.public_key().as_ref());
    let scalar: EcPrivateKeyBin = pair.private_key().as_be_bytes().expect("the scalar");
    let der = pkcs8.as_ref().to_vec();
    let private = pem("PRIVATE KEY", &der);
    (
        der,
        scalar.as_ref().to_vec(),
        private,
        pem("PUBLIC KEY", &spki),
    )
}

#[tokio::test]
async fn no_event_holds_a_token_or_private_key_material() {
    let (der, scalar, private_pem, public_pem) = static_key_pair();
    let scaffolder = Audited::new(
        "scaffolder",
        PluginTokens::static_keys([StaticKey::new("key-2026", private_pem.as_str(), public_pem)]),
    );
    let plugin = scaffolder
        .auth
        .plugin_token("catalog")
        .await
        .expect("a token");
    let expires = time::OffsetDateTime::now_utc() + time::Duration::minutes(10);
    let jane = Principal::new(
        PrincipalType::User,
        "user:default/jane",
        CredentialKind::User,
    )
    .with_expiry(expires);
    let obo = scaffolder
        .auth
        .on_behalf_of_token(&jane, "catalog")
        .await
        .expect("a token");
    // And a request carrying the token, through the layer.
    let app: axum::Router = scaffolder.auth.jwks_router().layer(scaffolder.auth.layer());
    let reply = send(
        &app,
        common::bearer(Method::GET, JWKS_PATH, plugin.expose_secret()),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(
        scaffolder.memory.events().len(),
        3,
        "two issued, one request"
    );

    let mut needles = token_parts(&plugin);
    needles.extend(token_parts(&obo));
    needles.extend(byte_forms(&der));
    needles.extend(byte_forms(&scalar));
    needles.extend(
        private_pem
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .map(str::to_owned),
    );
    needles.push("PRIVATE KEY".to_owned());
    scaffolder.assert_nothing_of(&needles);
}

#[tokio::test]
async fn lifecycle_and_request_events_have_their_json_shape() {
    let scaffolder = Audited::new("scaffolder", PluginTokens::new(memory_store()));
    let token = scaffolder
        .auth
        .plugin_token("catalog")
        .await
        .expect("a token");
    let app: axum::Router = scaffolder.auth.jwks_router().layer(scaffolder.auth.layer());
    let reply = send(
        &app,
        request(Method::GET, JWKS_PATH)
            .body(Default::default())
            .expect("a request"),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);

    let lines = scaffolder.json_lines();
    let kinds: Vec<&str> = lines
        .iter()
        .map(|l| l["event"].as_str().expect("event is a string"))
        .collect();
    // The signing key, then the next key (published ahead of its turn).
    assert_eq!(
        kinds,
        [
            "key_generated",
            "key_published",
            "key_generated",
            "key_published",
            "token_issued",
            "request"
        ]
    );

    let kid = header(&token)["kid"].clone();
    for (i, key_event) in lines[..4].iter().enumerate() {
        if i < 2 {
            assert_eq!(key_event["kid"], kid);
        } else {
            assert!(key_event["kid"].is_string() && key_event["kid"] != kid);
        }
        assert!(key_event["expiresAt"].is_string(), "{key_event}");
        assert!(key_event.get("target").is_none(), "{key_event}");
    }

    let issued = &lines[4];
    assert_eq!(issued["reason"], "token_issued");
    assert_eq!(issued["target"], "catalog");
    assert_eq!(issued["subject"], "scaffolder");
    assert_eq!(issued["credential"], "plugin");
    assert_eq!(issued["principalType"], "service");
    assert_eq!(issued["actor"], Value::Null);
    assert_eq!(issued["serviceId"], "scaffolder");
    assert_eq!(issued["decision"], "allow");
    assert_eq!(issued["method"], "");
    assert_eq!(issued["route"], "");
    assert_eq!(
        issued["tokenFingerprint"],
        token.fingerprint().to_string(),
        "the fingerprint, as Display prints it"
    );
    let expires_at = issued["expiresAt"].as_str().expect("an RFC 3339 string");
    let parsed =
        time::OffsetDateTime::parse(expires_at, &time::format_description::well_known::Rfc3339)
            .expect("RFC 3339");
    assert_eq!(parsed, instant(&claims(&token)["exp"]));
    assert!(issued.get("kid").is_none(), "{issued}");

    // A request event: the lifecycle-only members are left out.
    let served = &lines[5];
    assert_eq!(served["reason"], "unauthenticated_route");
    assert_eq!(served["method"], "GET");
    assert_eq!(served["route"], JWKS_PATH);
    for member in ["target", "kid", "expiresAt", "ignored"] {
        assert!(served.get(member).is_none(), "{member} in {served}");
    }
}
