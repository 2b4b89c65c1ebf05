//! Static plugin-token keys from PEM files (`pluginKeyStore: { type: static }`).

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use axum::Router;
use base64::Engine as _;
use s2s_auth::plugin::StaticKey;
use s2s_auth::{Auth, AuthBuilder, PluginTokens, StaticDiscovery};
use serde_json::Value;

/// The SubjectPublicKeyInfo prefix of every P-256 public key (algorithm ids + bit string).
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).expect("base64 is ASCII"))
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

/// A fresh P-256 key pair as (private PKCS#8 PEM, public SPKI PEM).
fn key_pair() -> (String, String) {
    let pkcs8 =
        EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
            .expect("key generation");
    let pair =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).expect("parse");
    let mut spki = P256_SPKI_PREFIX.to_vec();
    spki.extend_from_slice(pair.public_key().as_ref());
    (pem("PRIVATE KEY", pkcs8.as_ref()), pem("PUBLIC KEY", &spki))
}

async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    base
}

#[tokio::test]
async fn first_static_key_signs_and_every_key_is_published() {
    let (private1, public1) = key_pair();
    let (private2, public2) = key_pair();
    let scaffolder = Auth::builder("scaffolder")
        .plugin_tokens(PluginTokens::static_keys([
            StaticKey::new("key-2026", private1.as_str(), public1),
            StaticKey::new("key-2025", private2.as_str(), public2),
        ]))
        .build()
        .expect("valid keys");
    let base = serve(scaffolder.jwks_router()).await;
    let jwks: Value = reqwest::get(format!("{base}/.backstage/auth/v1/jwks.json"))
        .await
        .expect("jwks")
        .json()
        .await
        .expect("json");
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| k["kid"].as_str().expect("kid"))
        .collect();
    assert_eq!(kids, ["key-2026", "key-2025"]);
    assert!(!jwks.to_string().contains("\"d\""), "no private member");

    let token = scaffolder.plugin_token("catalog").await.expect("a token");
    let header = jsonwebtoken::decode_header(token.expose_secret()).expect("header");
    assert_eq!(header.kid.as_deref(), Some("key-2026"));

    // A receiver verifies it against the published keys.
    let catalog = Auth::builder("catalog")
        .discovery(StaticDiscovery::new([("scaffolder", base.as_str())]))
        .build()
        .expect("valid config");
    let app = Router::new()
        .route(
            "/whoami",
            axum::routing::get(|p: s2s_auth::Principal| async move { p.subject().to_owned() }),
        )
        .layer(catalog.layer());
    let catalog_base = serve(app).await;
    let reply = reqwest::Client::new()
        .get(format!("{catalog_base}/whoami"))
        .bearer_auth(token.expose_secret())
        .send()
        .await
        .expect("reply");
    assert_eq!(reply.status(), 200);
    assert_eq!(reply.text().await.expect("body"), "plugin:scaffolder");
}

#[test]
fn a_public_key_of_another_pair_is_refused() {
    let (private1, _) = key_pair();
    let (_, public2) = key_pair();
    let err = Auth::builder("scaffolder")
        .plugin_tokens(PluginTokens::static_keys([StaticKey::new(
            "k",
            private1.as_str(),
            public2,
        )]))
        .build()
        .expect_err("mismatched pair");
    assert_eq!(err.path(), Some("static_keys[0].publicKeyFile"));
    assert!(!err.to_string().contains("PRIVATE"), "{err}");
}

#[test]
fn garbage_and_empty_key_lists_are_refused() {
    let (_, public) = key_pair();
    let err = Auth::builder("scaffolder")
        .plugin_tokens(PluginTokens::static_keys([StaticKey::new(
            "k",
            "not a pem",
            public,
        )]))
        .build()
        .expect_err("garbage");
    assert_eq!(err.path(), Some("static_keys[0].privateKeyFile"));
    let err = Auth::builder("scaffolder")
        .plugin_tokens(PluginTokens::static_keys([]))
        .build()
        .expect_err("no keys");
    assert_eq!(err.path(), Some("backend.auth.pluginKeyStore.static.keys"));
}

#[tokio::test]
async fn yaml_static_key_store_reads_the_files() {
    let dir = std::env::temp_dir().join(format!("s2s-static-keys-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let (private, public) = key_pair();
    let private_file = dir.join("private.pem");
    let public_file = dir.join("public.pem");
    std::fs::write(&private_file, &private).expect("write");
    std::fs::write(&public_file, &public).expect("write");
    let yaml = format!(
        "s2s:\n  serviceId: scaffolder\nbackend:\n  auth:\n    pluginKeyStore:\n      type: static\n      static:\n        keys:\n          - keyId: k1\n            algorithm: ES256\n            privateKeyFile: {}\n            publicKeyFile: {}\n",
        private_file.display(),
        public_file.display()
    );
    let auth = AuthBuilder::from_yaml_str(&yaml)
        .expect("parses")
        .build()
        .expect("builds");
    let token = auth.plugin_token("catalog").await.expect("a token");
    assert_eq!(
        jsonwebtoken::decode_header(token.expose_secret())
            .expect("header")
            .kid
            .as_deref(),
        Some("k1")
    );

    // A missing file is an error naming its config path, not the file's content.
    let missing = yaml.replace(
        &private_file.display().to_string(),
        "/nonexistent/private.pem",
    );
    let err = AuthBuilder::from_yaml_str(&missing).expect_err("missing file");
    assert_eq!(
        err.path(),
        Some("backend.auth.pluginKeyStore.static.keys[0].privateKeyFile")
    );
    // A key file path that names an endless device is refused after 64 KiB, not read until
    // memory runs out.
    let endless = yaml.replace(&private_file.display().to_string(), "/dev/zero");
    let err = AuthBuilder::from_yaml_str(&endless).expect_err("endless file");
    assert_eq!(
        err.path(),
        Some("backend.auth.pluginKeyStore.static.keys[0].privateKeyFile")
    );
    assert!(err.to_string().contains("larger than 65536 bytes"), "{err}");
    // Only ES256.
    let rs = yaml.replace("algorithm: ES256", "algorithm: RS256");
    let err = AuthBuilder::from_yaml_str(&rs).expect_err("RS256");
    assert_eq!(
        err.path(),
        Some("backend.auth.pluginKeyStore.static.keys[0].algorithm")
    );
    let _ = std::fs::remove_dir_all(&dir);
}
