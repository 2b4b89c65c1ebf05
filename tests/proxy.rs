#![cfg(feature = "cli")]
//! `s2s-auth proxy`, the real binary, in front of a real upstream on 127.0.0.1:0 that
//! records what reached it. One test per promise the sidecar makes to the service behind
//! it: only allowed requests arrive, the `X-Auth-*` headers are the proxy's alone, tokens
//! stay out unless asked for, bodies stream, and signals do what operators expect.

#[path = "kit/mod.rs"]
mod kit;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode};
use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Semaphore;

const BIN: &str = env!("CARGO_BIN_EXE_s2s-auth");

/// Every wait polls against this: the machine is slow and shared.
const PATIENCE: Duration = Duration::from_secs(60);

const CI_TOKEN: &str = "ci-token-0123456789";
const DEPLOY_TOKEN: &str = "deploy-token-0123456789";
const NEW_TOKEN: &str = "rotated-token-0123456789";
const RESTRICTED_TOKEN: &str = "restricted-token-0123456789";
/// base64 of 32 bytes.
const LEGACY_SECRET: &str = "cHJveHktdGVzdC1sZWdhY3ktc2VjcmV0LTMyLWJ5dGVz";

const MIB: usize = 1024 * 1024;
const BIG: usize = 50 * MIB;
/// The most the proxy's peak resident memory may grow while 50 MiB pass through it.
const MAX_GROWTH_KIB: u64 = 24 * 1024;

// --- the upstream ------------------------------------------------------------------------

/// What one request looked like when it reached the upstream.
#[derive(Clone, Debug)]
struct Seen {
    method: String,
    path_and_query: String,
    headers: HeaderMap,
    body_len: usize,
}

#[derive(Clone)]
struct Upstream {
    seen: Arc<Mutex<Vec<Seen>>>,
    /// Requests that reached a handler (counted on entry, before the body is read).
    entered: Arc<AtomicUsize>,
    /// `/gate` waits for a permit from the test.
    gate: Arc<Semaphore>,
}

impl Default for Upstream {
    fn default() -> Self {
        Self {
            seen: Arc::default(),
            entered: Arc::default(),
            gate: Arc::new(Semaphore::new(0)),
        }
    }
}

impl Upstream {
    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn last(&self) -> Seen {
        self.seen()
            .last()
            .cloned()
            .expect("the upstream saw a request")
    }

    fn count(&self) -> usize {
        self.entered.load(Ordering::SeqCst)
    }
}

/// Records the request (its body read frame by frame, never held), then answers:
/// `/slow` after 30 s, `/gate` once the test releases it, anything else `ok`.
async fn record(State(up): State<Upstream>, request: Request) -> Response {
    up.entered.fetch_add(1, Ordering::SeqCst);
    let (parts, mut body) = request.into_parts();
    let path = parts.uri.path().to_owned();
    if path == "/gate" {
        let _permit = up.gate.acquire().await.expect("the gate is never closed");
        return "done".into_response();
    }
    let mut body_len = 0;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.expect("the body streams").into_data() {
            body_len += data.len();
        }
    }
    up.seen.lock().unwrap().push(Seen {
        method: parts.method.to_string(),
        path_and_query: parts
            .uri
            .path_and_query()
            .map(|pq| pq.as_str().to_owned())
            .unwrap_or_default(),
        headers: parts.headers,
        body_len,
    });
    if path == "/slow" {
        tokio::time::sleep(Duration::from_secs(30)).await;
    }
    "ok".into_response()
}

async fn start_upstream() -> (Upstream, SocketAddr) {
    let up = Upstream::default();
    let app = Router::new().fallback(record).with_state(up.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (up, addr)
}

// --- the proxy ---------------------------------------------------------------------------

static NEXT_DIR: AtomicUsize = AtomicUsize::new(0);

/// A config file in a directory of its own, removed at drop.
struct ConfigFile {
    dir: PathBuf,
    path: PathBuf,
}

impl ConfigFile {
    fn new(yaml: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "s2s-auth-proxy-test-{}-{}",
            std::process::id(),
            NEXT_DIR.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("proxy.yaml");
        let file = Self { dir, path };
        file.write(yaml);
        file
    }

    /// Replaces the file in one rename, so a reload never reads half of it.
    fn write(&self, yaml: &str) {
        let next = self.dir.join("next.yaml");
        std::fs::write(&next, yaml).unwrap();
        std::fs::rename(&next, &self.path).unwrap();
    }
}

impl Drop for ConfigFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

struct Proxy {
    child: Child,
    addr: SocketAddr,
    stderr: Arc<Mutex<String>>,
    config: ConfigFile,
}

impl Proxy {
    fn start(config: ConfigFile, upstream: &str, extra: &[&str]) -> Self {
        let mut child = spawn(&config, upstream, extra);
        let stderr = collect_stderr(&mut child);
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(PATIENCE).unwrap_or_default();
        let Some(addr) = line
            .strip_prefix("listening on http://")
            .and_then(|rest| rest.split(',').next())
            .and_then(|addr| addr.parse().ok())
        else {
            let _ = child.kill();
            panic!(
                "no `listening on` line (got {line:?}); stderr:\n{}",
                stderr.lock().unwrap()
            );
        };
        assert!(
            line.trim_end()
                .ends_with(&format!("forwarding to {upstream}")),
            "{line}"
        );
        Self {
            child,
            addr,
            stderr,
            config,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn pid(&self) -> String {
        self.child.id().to_string()
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([name, &self.pid()])
            .status()
            .unwrap();
        assert!(status.success(), "kill {name} failed");
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits until stderr holds `needle` `times` times.
    async fn wait_for_stderr(&self, needle: &str, times: usize) {
        let start = Instant::now();
        while self.stderr().matches(needle).count() < times {
            assert!(
                start.elapsed() < PATIENCE,
                "stderr never said {needle:?} {times} times:\n{}",
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The process's peak resident set (`VmHWM`), in KiB.
    fn peak_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM in /proc/PID/status")
    }

    async fn wait_exit(&mut self) -> ExitStatus {
        wait_exit(&mut self.child).await
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(config: &ConfigFile, upstream: &str, extra: &[&str]) -> Child {
    Command::new(BIN)
        .arg("proxy")
        .arg("--config")
        .arg(&config.path)
        .args(["--listen", "127.0.0.1:0", "--upstream", upstream])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the s2s-auth binary runs")
}

fn collect_stderr(child: &mut Child) -> Arc<Mutex<String>> {
    let stderr = child.stderr.take().unwrap();
    let text = Arc::new(Mutex::new(String::new()));
    let sink = text.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { return };
            let mut text = sink.lock().unwrap();
            text.push_str(&line);
            text.push('\n');
        }
    });
    text
}

async fn wait_exit(child: &mut Child) -> ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(start.elapsed() < PATIENCE, "the proxy did not exit");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The test config: static tokens (read-only, a writer, a restricted one), a legacy
/// secret, and `extra_proxy` lines under `proxy:`.
fn config(static_token: &str, extra_proxy: &str) -> String {
    format!(
        "proxy:\n  upstreamTimeoutSeconds: 30\n{extra_proxy}\
s2s:
  serviceId: catalog
  routes:
    - path: /healthz
      unauthenticated: true
    - path: /entities
      methods: [GET]
      allow: [static, legacy]
    - path: /upload
      methods: [POST]
      allowStaticWrites: true
    - path: /admin/tokens
      sensitive: true
      allow: [user]
backend:
  auth:
    externalAccess:
      - type: static
        options: {{ token: {static_token}, subject: ci-bot }}
      - type: static
        options: {{ token: {DEPLOY_TOKEN}, subject: deployer, allowWrites: true }}
      - type: static
        options: {{ token: {RESTRICTED_TOKEN}, subject: entity-sync }}
        accessRestrictions:
          - plugin: catalog
      - type: legacy
        options: {{ secret: {LEGACY_SECRET}, subject: old-backend }}
"
    )
}

async fn start(yaml: &str, extra: &[&str]) -> (Upstream, Proxy) {
    let (up, addr) = start_upstream().await;
    let proxy = Proxy::start(ConfigFile::new(yaml), &format!("http://{addr}"), extra);
    (up, proxy)
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(PATIENCE)
        .build()
        .unwrap()
}

async fn get(url: &str, token: Option<&str>, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request = http().get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.expect("the proxy answers")
}

fn legacy_token() -> String {
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &serde_json::json!({ "sub": "backstage-server", "exp": exp }),
        &jsonwebtoken::EncodingKey::from_base64_secret(LEGACY_SECRET).unwrap(),
    )
    .unwrap()
}

fn header<'a>(seen: &'a Seen, name: &str) -> Option<&'a str> {
    seen.headers.get(name).map(|v| v.to_str().unwrap())
}

// --- forwarding --------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwards_a_static_token_caller_with_principal_headers() {
    let (up, proxy) = start(&config(CI_TOKEN, ""), &[]).await;
    let response = get(
        &proxy.url("/entities?kind=component&x=1"),
        Some(CI_TOKEN),
        &[],
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.text().await.unwrap(), "ok");
    let seen = up.last();
    assert_eq!(seen.method, "GET");
    assert_eq!(seen.path_and_query, "/entities?kind=component&x=1");
    assert_eq!(header(&seen, "x-auth-subject"), Some("external:ci-bot"));
    assert_eq!(header(&seen, "x-auth-kind"), Some("static"));
    assert_eq!(header(&seen, "x-auth-actor"), None);
    assert_eq!(header(&seen, "x-auth-restrictions"), None);
    assert_eq!(header(&seen, "x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(header(&seen, "x-forwarded-proto"), Some("http"));
    assert_eq!(
        header(&seen, "x-forwarded-host"),
        Some(proxy.addr.to_string().as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwards_a_legacy_token_caller_with_its_kind() {
    let (up, proxy) = start(&config(CI_TOKEN, ""), &[]).await;
    let response = get(&proxy.url("/entities"), Some(&legacy_token()), &[]).await;
    assert_eq!(response.status(), StatusCode::OK);
    let seen = up.last();
    assert_eq!(
        header(&seen, "x-auth-subject"),
        Some("external:old-backend")
    );
    assert_eq!(header(&seen, "x-auth-kind"), Some("legacy"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwards_access_restrictions_as_compact_json() {
    let (up, proxy) = start(&config(CI_TOKEN, ""), &[]).await;
    let response = get(&proxy.url("/entities"), Some(RESTRICTED_TOKEN), &[]).await;
    assert_eq!(response.status(), StatusCode::OK);
    let seen = up.last();
    assert_eq!(
        header(&seen, "x-auth-subject"),
        Some("external:entity-sync")
    );
    assert_eq!(
        header(&seen, "x-auth-restrictions"),
        Some(r#"[{"plugin":"catalog"}]"#)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removes_spoofed_x_auth_headers_from_the_client() {
    let (up, proxy) = start(&config(CI_TOKEN, ""), &[]).await;
    let spoofed = [
        ("X-Auth-Subject", "user:default/admin"),
        ("x-auth-kind", "user"),
        ("X-AUTH-ACTOR", "plugin:scaffolder"),
        ("x-auth-anything", "1"),
        // CGI-style upstreams read this as X-Auth-Subject.
        ("X_Auth_Subject", "user:default/admin"),
    ];
    let response = get(&proxy.url("/entities"), Some(CI_TOKEN), &spoofed).await;
    assert_eq!(response.status(), StatusCode::OK);
    let seen = up.last();
    let x_auth: Vec<(&str, &str)> = seen
        .headers
        .iter()
        .filter(|(name, _)| name.as_str().replace('_', "-").starts_with("x-auth-"))
        .map(|(name, value)| (name.as_str(), value.to_str().unwrap()))
        .collect();
    assert_eq!(
        x_auth,
        [
            ("x-auth-subject", "external:ci-bot"),
            ("x-auth-kind", "static")
        ]
    );

    // On an unauthenticated route, called without a credential: no X-Auth-* at all.
    let response = get(&proxy.url("/healthz"), None, &spoofed).await;
    assert_eq!(response.status(), StatusCode::OK);
    let seen = up.last();
    assert_eq!(seen.path_and_query, "/healthz");
    assert!(
        seen.headers
            .keys()
            .all(|name| !name.as_str().replace('_', "-").starts_with("x-auth-")),
        "{:?}",
        seen.headers
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removes_authorization_by_default() {
    let (up, proxy) = start(&config(CI_TOKEN, ""), &[]).await;
    let response = get(&proxy.url("/entities"), Some(CI_TOKEN), &[]).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&up.last(), "authorization"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passes_authorization_when_the_config_says_so() {
    let (up, proxy) = start(&config(CI_TOKEN, "  passAuthorization: true\n"), &[]).await;
    let response = get(&proxy.url("/entities"), Some(CI_TOKEN), &[]).await;
    assert_eq!(response.status(), StatusCode::OK);
    let expected = format!("Bearer {CI_TOKEN}");
    assert_eq!(header(&up.last(), "authorization"), Some(expected.as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drops_hop_by_hop_headers_and_what_connection_names() {
    let (up, proxy) = start(&config(CI_TOKEN, ""), &[]).await;
    let response = get(
        &proxy.url("/entities"),
        Some(CI_TOKEN),
        &[
            ("Connection", "keep-alive, X-Hop"),
            ("X-Hop", "secret-for-the-proxy"),
            ("Proxy-Authorization", "Basic eDp5"),
            ("X-End-To-End", "kept"),
        ],
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let seen = up.last();
    assert_eq!(header(&seen, "x-hop"), None);
    assert_eq!(header(&seen, "proxy-authorization"), None);
    assert_eq!(header(&seen, "x-end-to-end"), Some("kept"));
}

// --- refusals never reach the upstream ---------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_missing_and_bad_credentials_with_401_before_the_upstream() {
    let (up, proxy) = start(&config(CI_TOKEN, ""), &[]).await;
    let response = get(&proxy.url("/entities"), None, &[]).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        response.headers()["www-authenticate"],
        r#"Bearer realm="catalog""#
    );
    let response = get(&proxy.url("/entities"), Some("not-a-known-token-123"), &[]).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(up.count(), 0, "{:?}", up.seen());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_a_caller_the_route_does_not_allow_with_403_before_the_upstream() {
    let (up, proxy) = start(&config(CI_TOKEN, ""), &[]).await;
    // Sensitive: a user's own credential only.
    let response = get(&proxy.url("/admin/tokens"), Some(CI_TOKEN), &[]).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    // Read-only static token writing.
    let response = http()
        .post(proxy.url("/entities"))
        .bearer_auth(CI_TOKEN)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(up.count(), 0, "{:?}", up.seen());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_the_published_jwks_itself_instead_of_forwarding_it() {
    let yaml = "s2s:\n  serviceId: catalog\n  pluginTokens:\n    keyDurationSeconds: 600\n\
                backend:\n  auth:\n    pluginKeyStore:\n      type: memory\n";
    let (up, proxy) = start(yaml, &[]).await;
    let response = get(&proxy.url("/.backstage/auth/v1/jwks.json"), None, &[]).await;
    assert_eq!(response.status(), StatusCode::OK);
    let jwks: serde_json::Value = response.json().await.unwrap();
    // Served by the proxy (keys appear once the first plugin token is issued), not forwarded.
    assert!(jwks["keys"].is_array(), "{jwks}");
    assert_eq!(up.count(), 0);
}

// --- upstream failures -------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_502_with_a_json_body_when_the_upstream_is_down() {
    // A port nobody listens on: bound, then released.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let proxy = Proxy::start(
        ConfigFile::new(&config(CI_TOKEN, "")),
        &format!("http://{addr}"),
        &[],
    );
    let response = get(&proxy.url("/entities"), Some(CI_TOKEN), &[]).await;
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["message"], "upstream unavailable");
    assert_eq!(body["response"]["statusCode"], 502);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_504_when_the_upstream_is_slower_than_the_timeout() {
    let (up, proxy) = start(&config(CI_TOKEN, ""), &["--upstream-timeout", "1"]).await;
    let started = Instant::now();
    let response = get(&proxy.url("/slow"), Some(CI_TOKEN), &[]).await;
    assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "{:?}",
        started.elapsed()
    );
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["response"]["statusCode"], 504);
    assert_eq!(up.count(), 1);
}

// --- streaming ---------------------------------------------------------------------------

/// Reads an HTTP/1.1 response head from `stream`; returns the status code.
async fn read_status(stream: &mut tokio::net::TcpStream) -> u16 {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = stream.read(&mut byte).await.unwrap();
        assert!(n == 1, "the connection closed inside the head: {head:?}");
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    head.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status line")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_a_50_mib_upload_with_bounded_memory() {
    let (up, proxy) = start(&config(CI_TOKEN, ""), &[]).await;
    assert_eq!(get(&proxy.url("/healthz"), None, &[]).await.status(), 200);
    let before = proxy.peak_kib();

    // A client that writes the body in 64 KiB pieces as the proxy takes them.
    let upload = async {
        let mut stream = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
        let head = format!(
            "POST /upload HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {DEPLOY_TOKEN}\r\n\
             Content-Length: {BIG}\r\nConnection: close\r\n\r\n",
            proxy.addr
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        let chunk = vec![b'u'; 64 * 1024];
        for _ in 0..BIG / chunk.len() {
            stream.write_all(&chunk).await.unwrap();
        }
        read_status(&mut stream).await
    };
    let status = tokio::time::timeout(PATIENCE, upload)
        .await
        .expect("the upload finishes in time");
    assert_eq!(status, 200);

    assert_eq!(up.last().body_len, BIG);
    let growth = proxy.peak_kib().saturating_sub(before);
    eprintln!("peak RSS {before} KiB before, grew {growth} KiB");
    assert!(growth < MAX_GROWTH_KIB, "peak RSS grew {growth} KiB");
}

/// An upstream that answers `GET /download` with `BIG` bytes, written in 64 KiB pieces as
/// the proxy takes them (a raw socket: nothing in between buffers), and anything else `ok`.
async fn start_download_upstream() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if stream.read(&mut byte).await.unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(byte[0]);
                }
                if !head.starts_with(b"GET /download ") {
                    let reply =
                        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
                    let _ = stream.write_all(reply.as_bytes()).await;
                    return;
                }
                let reply = format!("HTTP/1.1 200 OK\r\nContent-Length: {BIG}\r\n\r\n");
                stream.write_all(reply.as_bytes()).await.unwrap();
                let chunk = vec![b'd'; 64 * 1024];
                for _ in 0..BIG / chunk.len() {
                    if stream.write_all(&chunk).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_a_50_mib_download_with_bounded_memory() {
    let addr = start_download_upstream().await;
    let proxy = Proxy::start(
        ConfigFile::new(&config(CI_TOKEN, "")),
        &format!("http://{addr}"),
        &[],
    );
    assert_eq!(get(&proxy.url("/healthz"), None, &[]).await.status(), 200);
    let before = proxy.peak_kib();

    let mut response = get(&proxy.url("/download"), Some(CI_TOKEN), &[]).await;
    assert_eq!(response.status(), StatusCode::OK);
    let mut received = 0;
    let read = async {
        while let Some(chunk) = response.chunk().await.unwrap() {
            received += chunk.len();
        }
    };
    tokio::time::timeout(PATIENCE, read)
        .await
        .expect("the download finishes in time");

    assert_eq!(received, BIG);
    let growth = proxy.peak_kib().saturating_sub(before);
    eprintln!("peak RSS {before} KiB before, grew {growth} KiB");
    assert!(growth < MAX_GROWTH_KIB, "peak RSS grew {growth} KiB");
}

// --- signals -----------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_swaps_in_a_changed_token_list() {
    // On the one-thread runtime (`--threads 1`): signals and reloads work there too.
    let (_up, proxy) = start(&config(CI_TOKEN, ""), &["--threads", "1"]).await;
    assert_eq!(
        get(&proxy.url("/entities"), Some(CI_TOKEN), &[])
            .await
            .status(),
        200
    );

    proxy.config.write(&config(NEW_TOKEN, ""));
    proxy.signal("-HUP");
    proxy.wait_for_stderr(r#""proxy":"reloaded""#, 1).await;

    let old = get(&proxy.url("/entities"), Some(CI_TOKEN), &[]).await;
    assert_eq!(old.status(), StatusCode::UNAUTHORIZED);
    let new = get(&proxy.url("/entities"), Some(NEW_TOKEN), &[]).await;
    assert_eq!(new.status(), StatusCode::OK);
}

/// A reload does not cut a request in flight: it was let in by the old config, and it
/// finishes (the upstream's answer reaches the client) after the new one has taken over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_lets_a_request_in_flight_finish_on_the_old_config() {
    let (up, proxy) = start(&config(CI_TOKEN, ""), &[]).await;
    let url = proxy.url("/gate");
    let in_flight = tokio::spawn(async move {
        let response = get(&url, Some(CI_TOKEN), &[]).await;
        (response.status(), response.text().await.unwrap())
    });
    let start = Instant::now();
    while up.count() == 0 {
        assert!(
            start.elapsed() < PATIENCE,
            "the request never reached the upstream"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    proxy.config.write(&config(NEW_TOKEN, ""));
    proxy.signal("-HUP");
    proxy.wait_for_stderr(r#""proxy":"reloaded""#, 1).await;
    let old = get(&proxy.url("/entities"), Some(CI_TOKEN), &[]).await;
    assert_eq!(
        old.status(),
        StatusCode::UNAUTHORIZED,
        "the new config is in force"
    );

    up.gate.add_permits(1);
    let (status, body) = in_flight.await.unwrap();
    assert_eq!((status, body.as_str()), (StatusCode::OK, "done"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_with_a_broken_config_keeps_the_old_one_and_says_why() {
    let (_up, proxy) = start(&config(CI_TOKEN, ""), &[]).await;
    // Too short (the minimum is 8): refused with its path, and never printed.
    proxy.config.write(&config("tiny", ""));
    proxy.signal("-HUP");
    proxy.wait_for_stderr(r#""proxy":"reload_failed""#, 1).await;
    let stderr = proxy.stderr();
    assert!(
        stderr.contains("backend.auth.externalAccess[0].options.token"),
        "{stderr}"
    );
    assert!(!stderr.contains("tiny"), "{stderr}");
    assert_eq!(
        get(&proxy.url("/entities"), Some(CI_TOKEN), &[])
            .await
            .status(),
        200
    );

    // A misspelt sidecar key is refused on reload too.
    proxy
        .config
        .write(&config(NEW_TOKEN, "  pasAuthorization: true\n"));
    proxy.signal("-HUP");
    proxy.wait_for_stderr(r#""proxy":"reload_failed""#, 2).await;
    assert!(
        proxy.stderr().contains("proxy.pasAuthorization"),
        "{}",
        proxy.stderr()
    );
    assert_eq!(
        get(&proxy.url("/entities"), Some(CI_TOKEN), &[])
            .await
            .status(),
        200
    );
    assert_eq!(
        get(&proxy.url("/entities"), Some(NEW_TOKEN), &[])
            .await
            .status(),
        401
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_the_in_flight_request_then_exits_0() {
    let (up, mut proxy) = start(&config(CI_TOKEN, ""), &[]).await;
    let url = proxy.url("/gate");
    let in_flight = tokio::spawn(async move {
        let response = get(&url, Some(CI_TOKEN), &[]).await;
        (response.status(), response.text().await.unwrap())
    });
    let start = Instant::now();
    while up.count() == 0 {
        assert!(
            start.elapsed() < PATIENCE,
            "the request never reached the upstream"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    proxy.signal("-TERM");
    proxy.wait_for_stderr(r#""proxy":"shutting_down""#, 1).await;
    // No new connections once shutting down.
    let start = Instant::now();
    while tokio::net::TcpStream::connect(proxy.addr).await.is_ok() {
        assert!(start.elapsed() < PATIENCE, "still accepting after SIGTERM");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        proxy.child.try_wait().unwrap().is_none(),
        "exited with a request in flight"
    );

    up.gate.add_permits(1);
    let (status, body) = in_flight.await.unwrap();
    assert_eq!((status, body.as_str()), (StatusCode::OK, "done"));
    let exit = proxy.wait_exit().await;
    assert_eq!(exit.code(), Some(0), "{}", proxy.stderr());
}

// --- start-up refusals -------------------------------------------------------------------

/// Runs the proxy expecting it to stop at start; returns its exit status and stderr.
async fn refused_at_start(yaml: &str, upstream: &str) -> (ExitStatus, String) {
    let config = ConfigFile::new(yaml);
    let mut child = spawn(&config, upstream, &[]);
    let stderr = collect_stderr(&mut child);
    let status = wait_exit(&mut child).await;
    // The reader thread sees end of file once the process is gone.
    let start = Instant::now();
    while stderr.lock().unwrap().is_empty() && start.elapsed() < PATIENCE {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let text = stderr.lock().unwrap().clone();
    (status, text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_an_unknown_proxy_key_at_start_with_its_path() {
    let (status, stderr) = refused_at_start(
        &config(CI_TOKEN, "  alowWrites: true\n"),
        "http://127.0.0.1:9",
    )
    .await;
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("proxy.alowWrites: unknown key"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_a_non_boolean_pass_authorization_at_start() {
    let (status, stderr) = refused_at_start(
        &config(CI_TOKEN, "  passAuthorization: maybe\n"),
        "http://127.0.0.1:9",
    )
    .await;
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("proxy.passAuthorization: expected true or false"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_an_https_upstream_at_start() {
    let (status, stderr) = refused_at_start(&config(CI_TOKEN, ""), "https://127.0.0.1:9").await;
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("https"), "{stderr}");
}

// --- users and on-behalf-of --------------------------------------------------------------

/// A user's token, and a just-in-time on-behalf-of token the sidecar itself issues to her:
/// the upstream sees the user both times, and the second time the actor (`jit:<jti>`)
/// naming the token that acted for her. The issue endpoint is the sidecar's own: the
/// upstream never sees that request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_and_an_on_behalf_of_token_reach_the_upstream_with_the_actor() {
    let idp = kit::Idp::start("idp-key").await;
    let yaml = format!(
        "proxy: {{}}
s2s:
  serviceId: catalog
  users:
    - type: oidc
      issuer: {}
      audience: catalog
  pluginTokens: {{}}
  onBehalfOf:
    justInTime:
      deploymentId: acme-test
backend:
  auth:
    pluginKeyStore:
      type: memory
",
        idp.issuer
    );
    let (up, proxy) = start(&yaml, &[]).await;
    let jane = idp.token("jane", "catalog");

    let response = get(&proxy.url("/entities"), Some(&jane), &[]).await;
    assert_eq!(response.status(), StatusCode::OK);
    let seen = up.last();
    assert_eq!(header(&seen, "x-auth-subject"), Some("user:default/jane"));
    assert_eq!(header(&seen, "x-auth-kind"), Some("user"));
    assert_eq!(header(&seen, "x-auth-actor"), None);
    let forwarded = up.count();

    let issued = http()
        .post(proxy.url("/.s2s/auth/v1/obo/token"))
        .bearer_auth(&jane)
        .header("content-type", "application/json")
        .body(r#"{"description":"a report for jane","durationSeconds":120}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(issued.status(), StatusCode::OK);
    let body: serde_json::Value = issued.json().await.unwrap();
    let token = body["authenticationToken"].as_str().unwrap().to_owned();
    assert_eq!(up.count(), forwarded, "the issue request was forwarded");
    let jti = kit::header_and_claims(&token).1["jti"]
        .as_str()
        .unwrap()
        .to_owned();

    let response = get(&proxy.url("/entities"), Some(&token), &[]).await;
    assert_eq!(response.status(), StatusCode::OK);
    let seen = up.last();
    assert_eq!(header(&seen, "x-auth-subject"), Some("user:default/jane"));
    assert_eq!(
        header(&seen, "x-auth-actor"),
        Some(format!("jit:{jti}").as_str())
    );
    assert!(header(&seen, "authorization").is_none());
}
