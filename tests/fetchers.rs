//! The built-in fetcher and `JwksClientRsFetcher` (feature `jwks-client-rs`) keep the same
//! protections: no redirects, the body cap while streaming, unusable keys (including `use:
//! enc` keys of every type) skipped one by one. Each test is one attack, driven through a
//! real router against a real key server, once per fetcher; the one difference left (a key
//! without `kid`) has its own test.

#![cfg(feature = "jwks-client-rs")]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::kit::*;
use common::*;
use http::Method;
use s2s_auth::jwks::JwksClientRsFetcher;
use s2s_auth::{Auth, JwksAccess};
use serde_json::{Value, json};

const ISSUER: &str = "https://idp.example.com";

#[derive(Clone, Copy, Debug, PartialEq)]
enum Fetcher {
    /// The default: no `key_fetcher` call at all.
    BuiltIn,
    JwksClientRs,
}

const FETCHERS: [Fetcher; 2] = [Fetcher::BuiltIn, Fetcher::JwksClientRs];

/// A service with one `jwks` entry at `url`, fetching with `fetcher`.
fn harness(url: &str, fetcher: Fetcher) -> Harness {
    let builder = Auth::builder(SERVICE)
        .jwks_access(JwksAccess::new(url).issuers([ISSUER]).audiences([SERVICE]));
    Harness::new(match fetcher {
        Fetcher::BuiltIn => builder,
        Fetcher::JwksClientRs => builder.key_fetcher(Arc::new(
            JwksClientRsFetcher::new(Duration::from_secs(5)).expect("a fetcher"),
        )),
    })
}

/// A valid token signed by `key` (naming its `kid`).
fn token(key: &SigningKey) -> String {
    key.sign(&claims(ISSUER, SERVICE, "ci-bot"))
}

/// A valid token signed by `key`, without `kid`.
fn token_without_kid(key: &SigningKey) -> String {
    let mut header = key.header();
    header.kid = None;
    key.sign_with(header, &claims(ISSUER, SERVICE, "ci-bot"))
}

fn unknown_key() -> String {
    challenge("invalid_token", "signing key is unknown (kid)")
}

#[tokio::test(flavor = "multi_thread")]
async fn jwks_redirect_is_not_followed() {
    let key = SigningKey::es256("k1");
    let server = KeyServer::start(&[]).await;
    server.set_document("real.json", jwks(&[&key]).to_string().into_bytes());
    server.set_redirect("moved.json", "real.json");
    for fetcher in FETCHERS {
        let prefix = format!("{fetcher:?}");
        let h = harness(&server.document_url(&prefix, "moved.json"), fetcher);
        let (reply, event) = h.call(Method::GET, "/x", Some(&token(&key))).await;
        assert_keys_unavailable(&reply, &event);
        assert_eq!(
            server.document_hits(&prefix, "moved.json"),
            1,
            "{fetcher:?}"
        );
        assert_eq!(
            server.document_hits(&prefix, "real.json"),
            0,
            "{fetcher:?} followed the redirect"
        );
    }
}

/// Asserts a 5 MiB key set is refused by every fetcher before it is read whole.
async fn assert_big_body_refused(content_length: bool) {
    const FIVE_MIB: usize = 5 * 1024 * 1024;
    let key = SigningKey::es256("k1");
    for fetcher in FETCHERS {
        let big = BigBodyServer::start(FIVE_MIB, content_length).await;
        let h = harness(&big.url, fetcher);
        let started = Instant::now();
        let (reply, event) = h.call(Method::GET, "/x", Some(&token(&key))).await;
        assert_keys_unavailable(&reply, &event);
        assert!(started.elapsed() < Duration::from_secs(5), "{fetcher:?}");
        assert_eq!(big.requests(), 1, "{fetcher:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
        let written = big.written();
        assert!(!big.finished(), "{fetcher:?} read the whole body");
        assert!(
            written < 3 * 1024 * 1024,
            "{fetcher:?}: {written} bytes sent before the client hung up"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_jwks_with_content_length_is_refused_unread() {
    assert_big_body_refused(true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_chunked_jwks_is_refused_while_streaming() {
    assert_big_body_refused(false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn valid_keys_padded_past_the_cap_are_refused() {
    // The document jwks_client_rs's own transport read whole and used: real keys, and a
    // 2 MiB member nobody reads.
    let key = SigningKey::es256("k1");
    let mut doc = jwks(&[&key]);
    doc["padding"] = json!("x".repeat(2 * 1024 * 1024));
    let server = KeyServer::start(&[]).await;
    server.set_document("padded.json", doc.to_string().into_bytes());
    for fetcher in FETCHERS {
        let h = harness(
            &server.document_url(&format!("{fetcher:?}"), "padded.json"),
            fetcher,
        );
        let (reply, event) = h.call(Method::GET, "/x", Some(&token(&key))).await;
        assert_keys_unavailable(&reply, &event);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn enc_keys_are_skipped_for_every_key_type() {
    let sig = [
        SigningKey::es256("ec-sig"),
        SigningKey::rsa("rsa-sig", 0),
        SigningKey::ed25519("ed-sig"),
    ];
    let enc = [
        SigningKey::es256("ec-enc"),
        SigningKey::rsa("rsa-enc", 1),
        SigningKey::ed25519("ed-enc"),
    ];
    let mut keys: Vec<Value> = sig.iter().map(SigningKey::jwk).collect();
    for key in &enc {
        let mut jwk = key.jwk();
        jwk["use"] = json!("enc");
        keys.push(jwk);
    }
    let server = KeyServer::start(&[]).await;
    server.set_document(
        "mixed.json",
        json!({ "keys": keys }).to_string().into_bytes(),
    );
    for fetcher in FETCHERS {
        let h = harness(
            &server.document_url(&format!("{fetcher:?}"), "mixed.json"),
            fetcher,
        );
        for key in &sig {
            let (reply, event) = h.call(Method::GET, "/x", Some(&token(key))).await;
            assert_allowed(&reply, &event);
        }
        for key in &enc {
            let (reply, event) = h.call(Method::GET, "/x", Some(&token(key))).await;
            assert_eq!(reply.status, 401, "{fetcher:?} used {}", key.kid);
            assert_refused(&reply, &event, 401, &unknown_key(), "unknown_key");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn one_unusable_key_does_not_fail_the_set() {
    let good = SigningKey::es256("good");
    let keys = vec![
        json!({ "kty": "oct", "kid": "hmac", "alg": "HS256", "k": b64url(b"a-shared-secret") }),
        json!({ "kty": "XYZ", "kid": "future" }),
        json!({ "kty": "RSA", "kid": "no-modulus", "e": "AQAB" }),
        json!(42),
        good.jwk(),
    ];
    let server = KeyServer::start(&[]).await;
    server.set_document(
        "mixed.json",
        json!({ "keys": keys }).to_string().into_bytes(),
    );
    for fetcher in FETCHERS {
        let h = harness(
            &server.document_url(&format!("{fetcher:?}"), "mixed.json"),
            fetcher,
        );
        let (reply, event) = h.call(Method::GET, "/x", Some(&token(&good))).await;
        assert_allowed(&reply, &event);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn key_without_kid_is_used_only_by_the_built_in_fetcher() {
    // The one difference left, and it is stricter: jwks_client_rs's key model requires
    // `kid`, so `JwksClientRsFetcher` leaves such a key out.
    let key = SigningKey::es256("unnamed");
    let mut jwk = key.jwk();
    jwk.as_object_mut()
        .expect("a JWK is an object")
        .remove("kid");
    let server = KeyServer::start(&[]).await;
    server.set_document(
        "kidless.json",
        json!({ "keys": [jwk] }).to_string().into_bytes(),
    );
    let token = token_without_kid(&key);

    let url = |f: Fetcher| server.document_url(&format!("{f:?}"), "kidless.json");
    let h = harness(&url(Fetcher::BuiltIn), Fetcher::BuiltIn);
    let (reply, event) = h.call(Method::GET, "/x", Some(&token)).await;
    assert_allowed(&reply, &event);

    let h = harness(&url(Fetcher::JwksClientRs), Fetcher::JwksClientRs);
    let (reply, event) = h.call(Method::GET, "/x", Some(&token)).await;
    assert_refused(&reply, &event, 401, &unknown_key(), "unknown_key");
}
