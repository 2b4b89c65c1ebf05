//! JWT helpers: signing keys generated at test time (nothing checked in), token minting, and
//! in-process key servers on `127.0.0.1` (a JWKS / OpenID Connect server that can rotate,
//! fail, hang or serve garbage, and a raw server for oversized bodies that counts what it
//! managed to send).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _,
};
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use jsonwebtoken::jwk::{Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::b64url;

/// Seconds since the epoch.
pub fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

// ---------------------------------------------------------------------------------------
// Keys
// ---------------------------------------------------------------------------------------

/// A private signing key with its `kid`, and the public JWK a key server publishes for it.
#[derive(Clone)]
pub struct SigningKey {
    pub kid: String,
    pub alg: Algorithm,
    pub encoding: EncodingKey,
    /// The private key's DER (PKCS#8 for EC and Ed25519, PKCS#1 for RSA).
    pub der: Vec<u8>,
}

impl SigningKey {
    /// A fresh P-256 key (ES256).
    pub fn es256(kid: &str) -> Self {
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .expect("P-256 key generation");
        let der = pkcs8.as_ref().to_vec();
        Self {
            kid: kid.to_owned(),
            alg: Algorithm::ES256,
            encoding: EncodingKey::from_ec_der(&der),
            der,
        }
    }

    /// A fresh Ed25519 key (EdDSA).
    pub fn ed25519(kid: &str) -> Self {
        // jsonwebtoken reads the 48-byte PKCS#8 v1 form.
        let pkcs8 =
            Ed25519KeyPair::generate_pkcs8v1(&SystemRandom::new()).expect("Ed25519 key generation");
        let der = pkcs8.as_ref().to_vec();
        Self {
            kid: kid.to_owned(),
            alg: Algorithm::EdDSA,
            encoding: EncodingKey::from_ed_der(&der),
            der,
        }
    }

    /// An RSA 2048 key (RS256). Generation is slow, so `slot` picks one of a few keys made
    /// once per test binary: the same slot is the same key material.
    pub fn rsa(kid: &str, slot: usize) -> Self {
        let der = rsa_pkcs1(slot);
        Self {
            kid: kid.to_owned(),
            alg: Algorithm::RS256,
            encoding: EncodingKey::from_rsa_der(&der),
            der,
        }
    }

    /// The public JWK: `kty`, key parameters, `alg`, `kid`, `use: sig`.
    pub fn jwk(&self) -> Value {
        let mut jwk = Jwk::from_encoding_key(&self.encoding, self.alg).expect("public JWK");
        jwk.common.key_id = Some(self.kid.clone());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        serde_json::to_value(jwk).expect("a JWK serializes")
    }

    /// The RSA public key as X.509 `SubjectPublicKeyInfo` DER (what an attacker downloads).
    pub fn rsa_public_der(&self) -> Vec<u8> {
        let pair = aws_lc_rs::rsa::KeyPair::from_der(&self.der).expect("an RSA key");
        let public = pair.public_key();
        let der: aws_lc_rs::encoding::PublicKeyX509Der<'_> =
            public.as_der().expect("public key DER");
        der.as_ref().to_vec()
    }

    /// Signs `claims` with header `{alg, typ: JWT, kid}`.
    pub fn sign(&self, claims: &Value) -> String {
        self.sign_with(self.header(), claims)
    }

    /// The header [`SigningKey::sign`] uses, to modify.
    pub fn header(&self) -> Header {
        let mut h = Header::new(self.alg);
        h.kid = Some(self.kid.clone());
        h
    }

    /// Signs `claims` with `header`.
    pub fn sign_with(&self, header: Header, claims: &Value) -> String {
        jsonwebtoken::encode(&header, claims, &self.encoding).expect("signing")
    }

    /// Signs any JSON header (for headers `jsonwebtoken::Header` cannot express) with this
    /// key and algorithm.
    pub fn sign_raw(&self, header: &Value, claims: &Value) -> String {
        sign_raw(header, claims, &self.encoding, self.alg)
    }
}

/// `b64(header).b64(claims).signature` with any header.
pub fn sign_raw(header: &Value, claims: &Value, key: &EncodingKey, alg: Algorithm) -> String {
    let message = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    let signature = jsonwebtoken::crypto::sign(message.as_bytes(), key, alg).expect("signing");
    format!("{message}.{signature}")
}

/// `b64(header).b64(claims).` — no signature at all.
pub fn unsigned(header: &Value, claims: &Value) -> String {
    format!(
        "{}.{}.",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    )
}

/// A JWKS document holding `keys`' public JWKs.
pub fn jwks(keys: &[&SigningKey]) -> Value {
    json!({ "keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>() })
}

/// PKCS#1 `RSAPrivateKey` DER of the RSA key in `slot`, generated once per test binary.
fn rsa_pkcs1(slot: usize) -> Vec<u8> {
    static KEYS: [OnceLock<Vec<u8>>; 3] = [OnceLock::new(), OnceLock::new(), OnceLock::new()];
    KEYS[slot]
        .get_or_init(|| {
            let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
                .expect("RSA key generation");
            let pkcs8: aws_lc_rs::encoding::Pkcs8V1Der<'_> = pair.as_der().expect("RSA PKCS#8 DER");
            pkcs8_to_pkcs1(pkcs8.as_ref())
        })
        .clone()
}

/// The `privateKey` OCTET STRING of a PKCS#8 `PrivateKeyInfo`: for RSA, the PKCS#1 key that
/// `jsonwebtoken::EncodingKey::from_rsa_der` wants.
fn pkcs8_to_pkcs1(pkcs8: &[u8]) -> Vec<u8> {
    let (tag, info, _) = der_tlv(pkcs8);
    assert_eq!(tag, 0x30, "PrivateKeyInfo is a SEQUENCE");
    let (tag, _version, rest) = der_tlv(info);
    assert_eq!(tag, 0x02, "version INTEGER");
    let (tag, _algorithm, rest) = der_tlv(rest);
    assert_eq!(tag, 0x30, "AlgorithmIdentifier SEQUENCE");
    let (tag, key, _) = der_tlv(rest);
    assert_eq!(tag, 0x04, "privateKey OCTET STRING");
    key.to_vec()
}

/// One DER tag-length-value: `(tag, contents, rest)`.
fn der_tlv(input: &[u8]) -> (u8, &[u8], &[u8]) {
    let tag = input[0];
    let (len, header) = match input[1] {
        short if short < 0x80 => (usize::from(short), 2),
        long => {
            let n = usize::from(long & 0x7f);
            let len = input[2..2 + n]
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
            (len, 2 + n)
        }
    };
    (tag, &input[header..header + len], &input[header + len..])
}

/// A Backstage legacy token: HS256 signed with the base64-decoded `secret_base64`.
pub fn legacy_token(secret_base64: &str, claims: &Value) -> String {
    let key = EncodingKey::from_base64_secret(secret_base64).expect("base64 secret");
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &key).expect("signing")
}

/// Claims of a valid legacy token: `sub: backstage-server`, `exp` in an hour, no `aud`.
pub fn legacy_claims() -> Value {
    json!({ "sub": "backstage-server", "iat": now(), "exp": now() + 3600 })
}

// ---------------------------------------------------------------------------------------
// The key server
// ---------------------------------------------------------------------------------------

/// What the key server's `/jwks` answers.
#[derive(Clone, Debug)]
pub enum Mode {
    /// The current key set.
    Serve,
    /// 500.
    Fail,
    /// Nothing for this long, then the key set.
    Hang(Duration),
    /// 200 with a body that is not JSON.
    Malformed,
}

#[derive(Default)]
struct ServerState {
    base: String,
    jwks: Mutex<String>,
    mode: Mutex<Option<Mode>>,
    /// The `issuer` the discovery document names (default: the server's base URL).
    discovery_issuer: Mutex<Option<String>>,
    /// A `Cache-Control` header for `/jwks` answers, if set.
    cache_control: Mutex<Option<String>>,
    jwks_hits: AtomicUsize,
    discovery_hits: AtomicUsize,
    other_hits: AtomicUsize,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A JWKS and OpenID Connect discovery server on `127.0.0.1`, serving `GET /jwks` and
/// `GET /.well-known/openid-configuration` (`{"issuer": <base>, "jwks_uri": <base>/jwks}`),
/// counting every request. The key set is also at `/.backstage/auth/v1/jwks.json` (counted
/// as `/jwks`), so the server can stand in for a service that issues plugin tokens, with
/// its base URL as the service's discovery entry. Stops when dropped.
pub struct KeyServer {
    state: Arc<ServerState>,
    task: JoinHandle<()>,
}

impl Drop for KeyServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl KeyServer {
    /// Starts a server publishing `keys`.
    pub async fn start(keys: &[&SigningKey]) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("address"));
        let state = Arc::new(ServerState {
            base,
            jwks: Mutex::new(jwks(keys).to_string()),
            ..ServerState::default()
        });
        let app = Router::new()
            .route("/jwks", get(serve_jwks))
            .route("/.backstage/auth/v1/jwks.json", get(serve_jwks))
            .route("/.well-known/openid-configuration", get(serve_discovery))
            .fallback(serve_other)
            .with_state(state.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("key server runs");
        });
        Self { state, task }
    }

    /// `http://127.0.0.1:<port>`: also the issuer of discovery tests.
    pub fn base(&self) -> &str {
        &self.state.base
    }

    /// `<base>/jwks`.
    pub fn jwks_url(&self) -> String {
        format!("{}/jwks", self.state.base)
    }

    /// Publishes another key set from now on (rotation).
    pub fn set_keys(&self, keys: &[&SigningKey]) {
        self.set_body(jwks(keys).to_string());
    }

    /// Publishes any document at `/jwks`.
    pub fn set_body(&self, body: String) {
        *lock(&self.state.jwks) = body;
    }

    pub fn set_mode(&self, mode: Mode) {
        *lock(&self.state.mode) = Some(mode);
    }

    /// Sends `Cache-Control: <value>` with every key set from now on.
    pub fn set_cache_control(&self, value: &str) {
        *lock(&self.state.cache_control) = Some(value.to_owned());
    }

    /// Makes the discovery document name `issuer` instead of this server.
    pub fn set_discovery_issuer(&self, issuer: &str) {
        *lock(&self.state.discovery_issuer) = Some(issuer.to_owned());
    }

    /// Requests to `/jwks` so far.
    pub fn jwks_hits(&self) -> usize {
        self.state.jwks_hits.load(Ordering::SeqCst)
    }

    /// Requests to the discovery document so far.
    pub fn discovery_hits(&self) -> usize {
        self.state.discovery_hits.load(Ordering::SeqCst)
    }

    /// Requests of any kind so far.
    pub fn total_hits(&self) -> usize {
        self.jwks_hits() + self.discovery_hits() + self.state.other_hits.load(Ordering::SeqCst)
    }
}

async fn serve_jwks(State(state): State<Arc<ServerState>>) -> Response {
    state.jwks_hits.fetch_add(1, Ordering::SeqCst);
    let mode = lock(&state.mode).clone().unwrap_or(Mode::Serve);
    let body = lock(&state.jwks).clone();
    let cache_control = lock(&state.cache_control).clone();
    let json = |body: String| {
        let mut response = ([(header::CONTENT_TYPE, "application/json")], body).into_response();
        if let Some(value) = cache_control.as_deref().and_then(|v| v.parse().ok()) {
            response.headers_mut().insert(header::CACHE_CONTROL, value);
        }
        response
    };
    match mode {
        Mode::Serve => json(body),
        Mode::Fail => (StatusCode::INTERNAL_SERVER_ERROR, "key server is down").into_response(),
        Mode::Hang(how_long) => {
            tokio::time::sleep(how_long).await;
            json(body)
        }
        Mode::Malformed => json("{\"keys\": [ this is not JSON".to_owned()),
    }
}

async fn serve_discovery(State(state): State<Arc<ServerState>>) -> Response {
    state.discovery_hits.fetch_add(1, Ordering::SeqCst);
    let issuer = lock(&state.discovery_issuer)
        .clone()
        .unwrap_or_else(|| state.base.clone());
    let doc = json!({ "issuer": issuer, "jwks_uri": format!("{}/jwks", state.base) });
    (
        [(header::CONTENT_TYPE, "application/json")],
        doc.to_string(),
    )
        .into_response()
}

async fn serve_other(State(state): State<Arc<ServerState>>, uri: Uri) -> Response {
    state.other_hits.fetch_add(1, Ordering::SeqCst);
    (StatusCode::NOT_FOUND, format!("nothing at {}", uri.path())).into_response()
}

// ---------------------------------------------------------------------------------------
// The oversized-body server
// ---------------------------------------------------------------------------------------

/// A raw HTTP/1.1 server answering every request with a `total`-byte JSON-looking body,
/// either with `Content-Length` or chunked without it. The body is written in 16 KiB pieces,
/// paced (1 ms apart), and every piece the socket accepted is counted, so a test can tell
/// whether the client read it all or hung up early.
pub struct BigBodyServer {
    pub url: String,
    written: Arc<AtomicUsize>,
    finished: Arc<AtomicBool>,
    requests: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Drop for BigBodyServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl BigBodyServer {
    pub async fn start(total: usize, content_length: bool) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}/jwks", listener.local_addr().expect("address"));
        let written = Arc::new(AtomicUsize::new(0));
        let finished = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(AtomicUsize::new(0));
        let (w, f, r) = (written.clone(), finished.clone(), requests.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                let (w, f, r) = (w.clone(), f.clone(), r.clone());
                tokio::spawn(async move {
                    // Read the request head.
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match socket.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    r.fetch_add(1, Ordering::SeqCst);
                    let framing = if content_length {
                        format!("content-length: {total}\r\n")
                    } else {
                        "transfer-encoding: chunked\r\n".to_owned()
                    };
                    let response_head = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n{framing}\r\n"
                    );
                    if socket.write_all(response_head.as_bytes()).await.is_err() {
                        return;
                    }
                    // `{"keys":[` followed by spaces: valid JSON's beginning, never its end.
                    let piece = 16 * 1024;
                    let mut sent = 0;
                    while sent < total {
                        let n = piece.min(total - sent);
                        let mut data = vec![b' '; n];
                        if sent == 0 {
                            data[..9].copy_from_slice(b"{\"keys\":[");
                        }
                        let ok = if content_length {
                            socket.write_all(&data).await.is_ok()
                        } else {
                            let mut framed = format!("{n:x}\r\n").into_bytes();
                            framed.extend_from_slice(&data);
                            framed.extend_from_slice(b"\r\n");
                            socket.write_all(&framed).await.is_ok()
                        };
                        if !ok {
                            return;
                        }
                        sent += n;
                        w.fetch_add(n, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                    if !content_length && socket.write_all(b"0\r\n\r\n").await.is_err() {
                        return;
                    }
                    f.store(true, Ordering::SeqCst);
                });
            }
        });
        Self {
            url,
            written,
            finished,
            requests,
            task,
        }
    }

    /// Body bytes the socket accepted so far.
    pub fn written(&self) -> usize {
        self.written.load(Ordering::SeqCst)
    }

    /// Whether a whole body was ever sent.
    pub fn finished(&self) -> bool {
        self.finished.load(Ordering::SeqCst)
    }

    /// Requests received.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

// ---------------------------------------------------------------------------------------
// Assertions
// ---------------------------------------------------------------------------------------

/// Asserts a 503 because no key could be had: `Retry-After` (returned, at least 1 s), no
/// challenge (it is not the credential's fault), Backstage's error body, and the audit
/// event `keys_unavailable`.
#[track_caller]
pub fn assert_keys_unavailable(reply: &super::Reply, event: &s2s_auth::AuditEvent) -> u64 {
    assert_eq!(reply.status.as_u16(), 503, "body: {}", reply.body);
    let retry_after: u64 = reply
        .headers
        .get(header::RETRY_AFTER)
        .expect("a 503 carries Retry-After")
        .to_str()
        .expect("ASCII")
        .parse()
        .expect("Retry-After is whole seconds");
    assert!(retry_after >= 1, "Retry-After {retry_after}");
    assert_eq!(reply.www_authenticate(), None);
    assert_eq!(reply.content_type(), Some("application/json"));
    let body = reply.json();
    assert_eq!(body["error"]["name"], "ServiceUnavailableError");
    assert_eq!(body["response"]["statusCode"], 503);
    assert_eq!(event.decision, s2s_auth::Decision::Deny);
    assert_eq!(event.reason, "keys_unavailable");
    assert_eq!(event.status, 503);
    assert_eq!(event.service_id, super::SERVICE);
    retry_after
}

/// Standard claims: `iss`, `aud`, `sub`, `iat` now, `exp` in ten minutes.
pub fn claims(iss: &str, aud: &str, sub: &str) -> Value {
    json!({ "iss": iss, "aud": aud, "sub": sub, "iat": now(), "exp": now() + 600 })
}
