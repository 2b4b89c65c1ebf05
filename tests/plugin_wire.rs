//! Plugin-to-plugin tokens on the wire, end to end through real servers on `127.0.0.1:0`:
//! the issuing service serves its `jwks_router()` (behind its own layer), the receiving
//! service serves a router behind `auth.layer()`, and discovery connects them by base URL.
//! Backstage's wire format, the audience, `typ`, subject and algorithm checks, and forged
//! tokens. Every refusal is checked for its status, its exact `WWW-Authenticate` challenge
//! and its audit reason.
//!
//! Tokens with arbitrary headers or claims are forged with a key of the test's own,
//! published by a `KeyServer` that discovery names as `scaffolder`.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::StatusCode;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Validation};
use s2s_auth::error::{IssueError, VerifyError};
use s2s_auth::plugin::PLUGIN_TYP;
use s2s_auth::plugin::ServiceDiscovery;
use s2s_auth::{Auth, PluginTokens, StaticDiscovery};
use serde_json::{Map, Value, json};

use common::SERVICE;
use common::kit::{KeyServer, SigningKey, decode_part, header_and_claims, now};
use common::plugin::{Issuer, Receiver, assert_invalid, memory_store};

// ---------------------------------------------------------------------------------------
// Fakes: a discovery that counts its calls, a scaffolder that forges
// ---------------------------------------------------------------------------------------

/// Discovery that counts its calls: `known` services at their base URL and, with
/// `catch_all`, every other id at that URL (so a missing check would show as a call, and
/// then as a fetch).
#[derive(Clone, Default)]
struct CountingDiscovery {
    known: StaticDiscovery,
    catch_all: Option<String>,
    calls: Arc<AtomicUsize>,
}

impl CountingDiscovery {
    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

impl ServiceDiscovery for CountingDiscovery {
    fn base_url(&self, service_id: &str) -> Option<String> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.known
            .base_url(service_id)
            .or_else(|| self.catch_all.clone())
    }
}

/// A forging key for `scaffolder`, and the key server publishing it at the plugin JWKS
/// path: discovery entries pointing at the server make its key the caller's key.
async fn fake_scaffolder() -> (SigningKey, KeyServer) {
    let key = SigningKey::es256("fake-scaffolder-key");
    let server = KeyServer::start(&[&key]).await;
    (key, server)
}

/// A `catalog` receiver that finds `scaffolder` at `server`.
async fn catalog_trusting(server: &KeyServer) -> Receiver {
    Receiver::knowing(SERVICE, "scaffolder", server.base()).await
}

/// Valid plugin-token claims from `sub` to `aud`, living ten minutes.
fn plugin_claims(sub: &str, aud: &str) -> Value {
    json!({ "sub": sub, "aud": aud, "iat": now(), "exp": now() + 600 })
}

/// Signs `claims` with `key` under the header `{typ, alg: <key's>, kid: <key's>}`, leaving
/// `typ` out for `None`.
fn forge(key: &SigningKey, typ: Option<&str>, claims: &Value) -> String {
    let mut header = json!({ "alg": key.alg, "kid": key.kid });
    if let Some(typ) = typ {
        header["typ"] = json!(typ);
    }
    key.sign_raw(&header, claims)
}

/// A plugin token forged with `key`: the right header, any claims.
fn forge_plugin(key: &SigningKey, claims: &Value) -> String {
    forge(key, Some(PLUGIN_TYP), claims)
}

// ---------------------------------------------------------------------------------------
// Issuing and verifying
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn scaffolder_token_is_accepted_by_catalog_in_backstage_wire_format() {
    let scaffolder = Issuer::start("scaffolder", memory_store()).await;
    let catalog = Receiver::knowing(SERVICE, "scaffolder", scaffolder.base()).await;

    let before = now();
    let token = scaffolder.token("catalog").await;
    let after = now();

    let (header, claims) = header_and_claims(&token);
    let kid = header["kid"].as_str().expect("a kid").to_owned();
    assert_eq!(
        header,
        json!({ "typ": "vnd.backstage.plugin", "alg": "ES256", "kid": kid })
    );
    let parsed = uuid::Uuid::parse_str(&kid).expect("the kid is a UUID");
    assert_eq!(parsed.hyphenated().to_string(), kid, "canonical UUID form");
    let names: Vec<&str> = claims
        .as_object()
        .expect("claims are an object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(sorted_strs(names), ["aud", "exp", "iat", "sub"]);
    assert_eq!(claims["sub"], "scaffolder");
    assert_eq!(claims["aud"], "catalog");
    let iat = claims["iat"].as_u64().expect("iat is a number");
    let exp = claims["exp"].as_u64().expect("exp is a number");
    assert!((before..=after).contains(&iat), "iat {iat} is now");
    assert_eq!(exp - iat, 3600);

    catalog.accepts(&token, "scaffolder").await;
    // Again: the same answer (now from the verified-token cache).
    catalog.accepts(&token, "scaffolder").await;
}

fn sorted_strs(mut v: Vec<&str>) -> Vec<&str> {
    v.sort_unstable();
    v
}

#[tokio::test]
async fn token_for_catalog_sent_to_search_is_wrong_audience() {
    let scaffolder = Issuer::start("scaffolder", memory_store()).await;
    let search = Receiver::knowing("search", "scaffolder", scaffolder.base()).await;
    let catalog = Receiver::knowing(SERVICE, "scaffolder", scaffolder.base()).await;
    let for_catalog = scaffolder.token("catalog").await;

    let (reply, event) = search.call(&for_catalog).await;
    assert_invalid(&reply, &event, "search", &VerifyError::WrongAudience);

    // The token itself is fine where it was meant to go, and search takes its own.
    catalog.accepts(&for_catalog, "scaffolder").await;
    let for_search = scaffolder.token("search").await;
    search.accepts(&for_search, "scaffolder").await;
    // And catalog refuses search's.
    catalog
        .refuses(&for_search, &VerifyError::WrongAudience)
        .await;
}

#[tokio::test]
async fn plugin_token_with_typ_changed_is_refused() {
    let (key, server) = fake_scaffolder().await;
    let catalog = catalog_trusting(&server).await;
    let claims = plugin_claims("scaffolder", "catalog");

    // Control: the forged key is the caller's published key, so only `typ` decides below.
    catalog
        .accepts(&forge_plugin(&key, &claims), "scaffolder")
        .await;

    for typ in [
        Some("JWT"),
        None,
        Some("VND.BACKSTAGE.PLUGIN"),
        Some("vnd.backstage.plugin+jwt"),
        Some("vnd.backstage.limited-user"),
    ] {
        let (reply, event) = catalog.call(&forge(&key, typ, &claims)).await;
        assert_invalid(&reply, &event, SERVICE, &VerifyError::WrongType);
    }
}

#[tokio::test]
async fn user_token_presented_as_plugin_token_is_refused() {
    let (key, server) = fake_scaffolder().await;
    let catalog = catalog_trusting(&server).await;
    let fetches = server.total_hits();

    // A Backstage user token (issued by the deployment's auth backend), sent to a service
    // configured only for plugin tokens: no such issuer.
    let user = json!({
        "iss": "http://backstage.example/api/auth",
        "sub": "user:default/jane",
        "ent": ["user:default/jane"],
        "aud": "backstage",
        "iat": now(),
        "exp": now() + 600,
    });
    let (reply, event) = catalog
        .call(&forge(&key, Some("vnd.backstage.user"), &user))
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_invalid(&reply, &event, SERVICE, &VerifyError::UnknownIssuer);

    // The same with plugin-token claims (sub `scaffolder`, aud `catalog`): still not a
    // plugin token.
    let (reply, event) = catalog
        .call(&forge(
            &key,
            Some("vnd.backstage.user"),
            &plugin_claims("scaffolder", "catalog"),
        ))
        .await;
    assert_invalid(&reply, &event, SERVICE, &VerifyError::WrongType);

    assert_eq!(
        server.total_hits(),
        fetches,
        "decided without fetching keys"
    );
}

#[tokio::test]
async fn subject_that_is_not_a_service_id_is_refused_before_discovery() {
    let (key, server) = fake_scaffolder().await;
    let discovery = CountingDiscovery {
        catch_all: Some(server.base().to_owned()),
        ..CountingDiscovery::default()
    };
    let catalog = Receiver::start(SERVICE, discovery.clone()).await;

    for sub in [
        "../admin",
        "scaffolder/x",
        "http://evil",
        "SCAFFOLDER",
        "scaffolder/../../admin",
        "scaffolder.evil.example",
        "scaffolder?x=1",
        "",
    ] {
        let token = forge_plugin(&key, &plugin_claims(sub, "catalog"));
        let (reply, event) = catalog.call(&token).await;
        assert_invalid(&reply, &event, SERVICE, &VerifyError::WrongSubject);
    }
    assert_eq!(discovery.calls(), 0, "discovery never saw a bad subject");
    assert_eq!(server.total_hits(), 0, "no key was fetched");

    // Control: a valid subject does go through discovery to the (catch-all) key server.
    catalog
        .accepts(
            &forge_plugin(&key, &plugin_claims("scaffolder", "catalog")),
            "scaffolder",
        )
        .await;
    assert_eq!(discovery.calls(), 1);
    assert_eq!(server.jwks_hits(), 1);
}

#[tokio::test]
async fn unknown_caller_is_refused_without_fetching() {
    let (key, server) = fake_scaffolder().await;
    let discovery = CountingDiscovery {
        known: StaticDiscovery::new([("scaffolder", server.base())]),
        ..CountingDiscovery::default()
    };
    let catalog = Receiver::start(SERVICE, discovery.clone()).await;

    let token = forge_plugin(&key, &plugin_claims("billing", "catalog"));
    catalog.refuses(&token, &VerifyError::UnknownCaller).await;
    assert_eq!(discovery.calls(), 1, "asked once, about `billing`");
    assert_eq!(server.total_hits(), 0, "no key was fetched");
}

#[tokio::test]
async fn caller_keys_over_plain_http_off_loopback_are_never_fetched() {
    // A discovery (the user's own, say) that puts scaffolder at a plain-http address: its
    // keys would travel where anyone on the path could swap them.
    let (key, server) = fake_scaffolder().await;
    let discovery = CountingDiscovery {
        known: StaticDiscovery::new([("scaffolder", "http://scaffolder.example.com/api")]),
        ..CountingDiscovery::default()
    };
    let catalog = Receiver::start(SERVICE, discovery).await;
    let token = forge_plugin(&key, &plugin_claims("scaffolder", "catalog"));
    catalog
        .refuses(&token, &VerifyError::InsecureKeySource)
        .await;
    assert_eq!(server.total_hits(), 0, "no key was fetched");
}

#[tokio::test]
async fn plugin_token_living_longer_than_the_key_duration_is_refused() {
    let (key, server) = fake_scaffolder().await;
    let catalog = catalog_trusting(&server).await;
    let lifetime = |secs: u64| {
        let iat = now();
        forge_plugin(
            &key,
            &json!({ "sub": "scaffolder", "aud": "catalog", "iat": iat, "exp": iat + secs }),
        )
    };

    // Default key duration 1 h, leeway 30 s.
    catalog.accepts(&lifetime(3600 + 30), "scaffolder").await;
    catalog
        .refuses(&lifetime(3600 + 31), &VerifyError::LifetimeTooLong)
        .await;
    catalog
        .refuses(&lifetime(2 * 3600 + 1), &VerifyError::LifetimeTooLong)
        .await;
    catalog
        .refuses(&lifetime(365 * 24 * 3600), &VerifyError::LifetimeTooLong)
        .await;
}

#[tokio::test]
async fn plugin_token_missing_a_required_claim_is_refused() {
    let (key, server) = fake_scaffolder().await;
    let catalog = catalog_trusting(&server).await;

    for (missing, error) in [
        ("iat", VerifyError::MissingClaim("iat")),
        ("exp", VerifyError::MissingClaim("exp")),
        ("aud", VerifyError::MissingClaim("aud")),
        ("sub", VerifyError::MissingClaim("sub")),
    ] {
        let mut claims = plugin_claims("scaffolder", "catalog");
        claims
            .as_object_mut()
            .expect("an object")
            .remove(missing)
            .expect("the claim was there");
        let (reply, event) = catalog.call(&forge_plugin(&key, &claims)).await;
        assert_invalid(&reply, &event, SERVICE, &error);
    }
}

#[tokio::test]
async fn plugin_token_with_another_alg_is_refused_before_fetching() {
    let (_, server) = fake_scaffolder().await;
    let catalog = catalog_trusting(&server).await;
    let claims = plugin_claims("scaffolder", "catalog");

    let rsa = SigningKey::rsa("fake-scaffolder-rsa", 0);
    let eddsa = SigningKey::ed25519("fake-scaffolder-eddsa");
    // The key server serves them too: the refusal is the algorithm's, not a missing key's.
    server.set_keys(&[&rsa, &eddsa]);
    let hmac = common::kit::sign_raw(
        &json!({ "typ": PLUGIN_TYP, "alg": "HS256", "kid": "fake-scaffolder-key" }),
        &claims,
        &EncodingKey::from_secret(b"a shared secret nobody configured"),
        Algorithm::HS256,
    );
    for token in [
        forge_plugin(&rsa, &claims),
        forge_plugin(&eddsa, &claims),
        hmac,
    ] {
        catalog
            .refuses(&token, &VerifyError::AlgorithmNotAllowed)
            .await;
    }
    assert_eq!(server.total_hits(), 0, "no key was fetched");
}

#[tokio::test]
async fn forged_plugin_tokens_fail_the_check_they_break() {
    let (key, server) = fake_scaffolder().await;
    let claims = plugin_claims("scaffolder", "catalog");

    // Another key under the published key's kid.
    let impostor = SigningKey::es256(&key.kid);
    catalog_trusting(&server)
        .await
        .refuses(
            &forge_plugin(&impostor, &claims),
            &VerifyError::BadSignature,
        )
        .await;

    // A kid the caller never published.
    let unpublished = SigningKey::es256("never-published");
    catalog_trusting(&server)
        .await
        .refuses(
            &forge_plugin(&unpublished, &claims),
            &VerifyError::UnknownKey,
        )
        .await;

    // Expired (beyond the leeway).
    let expired = json!({
        "sub": "scaffolder", "aud": "catalog", "iat": now() - 700, "exp": now() - 100,
    });
    catalog_trusting(&server)
        .await
        .refuses(&forge_plugin(&key, &expired), &VerifyError::Expired)
        .await;

    // A real token from the real scaffolder, its claims changed (signature kept).
    let scaffolder = Issuer::start("scaffolder", memory_store()).await;
    let real = scaffolder.token("catalog").await;
    let mut parts: Vec<String> = real.split('.').map(str::to_owned).collect();
    let mut changed = decode_part(&parts[1]);
    changed["exp"] = json!(changed["exp"].as_u64().expect("exp") + 60);
    parts[1] = URL_SAFE_NO_PAD.encode(changed.to_string());
    Receiver::knowing(SERVICE, "scaffolder", scaffolder.base())
        .await
        .refuses(&parts.join("."), &VerifyError::BadSignature)
        .await;
}

#[tokio::test]
async fn issued_token_verifies_with_plain_jsonwebtoken_and_the_published_jwk() {
    let scaffolder = Issuer::start("scaffolder", memory_store()).await;
    let token = scaffolder.token("catalog").await;
    let jwks = scaffolder.jwks().await;

    // An independent code path: jsonwebtoken's own header parser, JWK import and decode.
    let header = jsonwebtoken::decode_header(&token).expect("a JOSE header");
    assert_eq!(header.alg, Algorithm::ES256);
    assert_eq!(header.typ.as_deref(), Some("vnd.backstage.plugin"));
    let kid = header.kid.expect("a kid");
    let published = jwks["keys"]
        .as_array()
        .expect("a list")
        .iter()
        .find(|k| k["kid"] == kid.as_str())
        .expect("the token's key is published");
    let jwk: Jwk = serde_json::from_value(published.clone()).expect("a standard JWK");
    let key = DecodingKey::from_jwk(&jwk).expect("a usable public key");

    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_audience(&["catalog"]);
    validation.set_required_spec_claims(&["exp", "sub", "aud"]);
    validation.leeway = 0;
    let data = jsonwebtoken::decode::<Map<String, Value>>(&token, &key, &validation)
        .expect("the token verifies with plain jsonwebtoken");
    assert_eq!(data.claims["sub"], "scaffolder");
    assert_eq!(data.claims["aud"], "catalog");
    assert!(data.claims["iat"].is_u64());

    // The same code path does check: another audience, or a changed payload, fails.
    let mut for_search = validation.clone();
    for_search.set_audience(&["search"]);
    let e = jsonwebtoken::decode::<Map<String, Value>>(&token, &key, &for_search)
        .expect_err("wrong audience");
    assert_eq!(e.kind(), &jsonwebtoken::errors::ErrorKind::InvalidAudience);
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let mut claims = decode_part(&parts[1]);
    claims["sub"] = json!("admin");
    parts[1] = URL_SAFE_NO_PAD.encode(claims.to_string());
    let e = jsonwebtoken::decode::<Map<String, Value>>(&parts.join("."), &key, &validation)
        .expect_err("changed payload");
    assert_eq!(e.kind(), &jsonwebtoken::errors::ErrorKind::InvalidSignature);
}

#[tokio::test]
async fn plugin_token_for_an_invalid_target_is_refused_before_any_key() {
    let store = memory_store();
    let auth = Auth::builder("scaffolder")
        .plugin_tokens(PluginTokens::new(store.clone()))
        .build()
        .expect("valid configuration");
    for target in ["../x", "", "Catalog", "catalog/x", "http://evil"] {
        match auth.plugin_token(target).await {
            Err(IssueError::InvalidTarget(t)) => assert_eq!(t, target),
            other => panic!("{target:?}: {other:?}"),
        }
    }
    assert!(
        store
            .public_keys("scaffolder", 0)
            .await
            .expect("listed")
            .is_empty(),
        "no key was made for a refused target"
    );
}
