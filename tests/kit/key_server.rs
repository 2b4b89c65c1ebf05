//! A JWKS and OpenID Connect discovery server on `127.0.0.1:0` that counts every request
//! and can rotate, fail, hang or serve garbage.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use serde_json::json;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::keys::{SigningKey, jwks};

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

/// A document served under every prefix (see [`KeyServer::set_document`]).
#[derive(Clone)]
enum Document {
    Body(Bytes),
    /// A 307 to the document of this name under the same prefix.
    Redirect(String),
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
    /// By name.
    documents: Mutex<HashMap<String, Document>>,
    jwks_hits: AtomicUsize,
    discovery_hits: AtomicUsize,
    other_hits: AtomicUsize,
    document_hits: AtomicUsize,
    /// Document requests by path.
    document_paths: Mutex<HashMap<String, usize>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A JWKS and OpenID Connect discovery server on `127.0.0.1`, serving `GET /jwks` and
/// `GET /.well-known/openid-configuration` (`{"issuer": <base>, "jwks_uri": <base>/jwks}`),
/// counting every request. The key set is also at `/.backstage/auth/v1/jwks.json` (counted
/// as `/jwks`), so the server can stand in for a service that issues plugin tokens, with
/// its base URL as the service's discovery entry. Documents of any content can be published
/// by name under every prefix (`/{prefix}/{name}`), so that several clients of one server
/// have URLs, and counts, of their own. Stops when dropped.
pub struct KeyServer {
    state: Arc<ServerState>,
    running: Running,
}

/// How the server runs, and so how it stops.
enum Running {
    /// A task on the runtime that started it.
    Task(JoinHandle<()>),
    /// Its own thread and runtime, until told to stop.
    Thread(Option<oneshot::Sender<()>>),
}

impl Drop for KeyServer {
    fn drop(&mut self) {
        match &mut self.running {
            Running::Task(task) => task.abort(),
            Running::Thread(stop) => {
                if let Some(stop) = stop.take() {
                    let _ = stop.send(());
                }
            }
        }
    }
}

impl KeyServer {
    /// Starts a server publishing `keys`, as a task on the current runtime.
    pub async fn start(keys: &[&SigningKey]) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let (state, app) = Self::app(&listener, keys);
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("key server runs");
        });
        Self {
            state,
            running: Running::Task(task),
        }
    }

    /// Starts a server publishing `keys` on a thread and runtime of its own, so that it
    /// never competes with the caller's runtime (a bench's timed requests) for time.
    pub fn start_on_own_thread(keys: &[&SigningKey]) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener
            .set_nonblocking(true)
            .expect("a non-blocking socket");
        let (stop, stopped) = oneshot::channel::<()>();
        let keys: Vec<SigningKey> = keys.iter().map(|&k| k.clone()).collect();
        let (ready, started) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a tokio runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("a listener");
                let (state, app) = Self::app(&listener, &keys.iter().collect::<Vec<_>>());
                let _ = ready.send(state);
                axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = stopped.await;
                    })
                    .await
                    .expect("key server runs");
            });
        });
        let state = started.recv().expect("the key server thread starts");
        Self {
            state,
            running: Running::Thread(Some(stop)),
        }
    }

    /// The shared state and the routes of a server listening on `listener`.
    fn app(listener: &tokio::net::TcpListener, keys: &[&SigningKey]) -> (Arc<ServerState>, Router) {
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
            .route("/{prefix}/{name}", get(serve_document))
            .fallback(serve_other)
            .with_state(state.clone());
        (state, app)
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

    /// Serves `body` (as JSON) at `/{prefix}/{name}`, for every prefix.
    pub fn set_document(&self, name: &str, body: Vec<u8>) {
        let document = Document::Body(Bytes::from(body));
        lock(&self.state.documents).insert(name.to_owned(), document);
    }

    /// Answers `/{prefix}/{name}` with a 307 to `/{prefix}/{to}`, for every prefix.
    pub fn set_redirect(&self, name: &str, to: &str) {
        let document = Document::Redirect(to.to_owned());
        lock(&self.state.documents).insert(name.to_owned(), document);
    }

    /// `<base>/{prefix}/{name}`.
    pub fn document_url(&self, prefix: &str, name: &str) -> String {
        format!("{}/{prefix}/{name}", self.state.base)
    }

    /// Requests to `/{prefix}/{name}` so far.
    pub fn document_hits(&self, prefix: &str, name: &str) -> usize {
        let paths = lock(&self.state.document_paths);
        paths
            .get(&format!("/{prefix}/{name}"))
            .copied()
            .unwrap_or(0)
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
        let s = &self.state;
        [
            &s.jwks_hits,
            &s.discovery_hits,
            &s.other_hits,
            &s.document_hits,
        ]
        .iter()
        .map(|n| n.load(Ordering::SeqCst))
        .sum()
    }
}

/// `body` as `application/json`.
fn json_response(body: impl Into<axum::body::Body>) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body.into()).into_response()
}

async fn serve_jwks(State(state): State<Arc<ServerState>>) -> Response {
    state.jwks_hits.fetch_add(1, Ordering::SeqCst);
    let mode = lock(&state.mode).clone().unwrap_or(Mode::Serve);
    let body = lock(&state.jwks).clone();
    let cache_control = lock(&state.cache_control).clone();
    let json = |body: String| {
        let mut response = json_response(body);
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
    json_response(doc.to_string())
}

async fn serve_document(
    State(state): State<Arc<ServerState>>,
    Path((prefix, name)): Path<(String, String)>,
    uri: Uri,
) -> Response {
    let document = lock(&state.documents).get(&name).cloned();
    let Some(document) = document else {
        return serve_other(State(state), uri).await;
    };
    state.document_hits.fetch_add(1, Ordering::SeqCst);
    *lock(&state.document_paths)
        .entry(format!("/{prefix}/{name}"))
        .or_default() += 1;
    match document {
        Document::Body(body) => json_response(body),
        Document::Redirect(to) => Redirect::temporary(&format!("/{prefix}/{to}")).into_response(),
    }
}

async fn serve_other(State(state): State<Arc<ServerState>>, uri: Uri) -> Response {
    state.other_hits.fetch_add(1, Ordering::SeqCst);
    (StatusCode::NOT_FOUND, format!("nothing at {}", uri.path())).into_response()
}
