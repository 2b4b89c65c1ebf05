//! `s2s-auth proxy`: the layer and a config's `s2s.routes` policies in front of any HTTP
//! service (a sidecar for services not written in Rust).
//!
//! Every request is decided exactly as an axum service built on this crate would decide
//! it: refusals (401, 403, 400, 503) come from the layer and never reach the upstream.
//! Allowed requests are forwarded with their path and query, the verified caller in
//! `X-Auth-Subject`, `X-Auth-Kind`, `X-Auth-Actor` and `X-Auth-Restrictions` (see
//! [`forward`] for exactly what each holds and which client headers are dropped), and both
//! bodies streamed. What the crate serves itself is served here, not forwarded: the
//! published JWKS (`/.backstage/auth/v1/jwks.json`), the just-in-time on-behalf-of routes
//! and the service-account admin API, when the config enables them.
//!
//! Signals: SIGTERM and SIGINT stop accepting, let in-flight requests finish, and exit 0.
//! SIGHUP reads the config file again and swaps the new policies in atomically; requests
//! already running finish on the old ones. A config that fails to load keeps the old one
//! (stderr says why, by path and rule; never a secret).

mod forward;
mod settings;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::routing::any;
use s2s_auth::AuthBuilder;
use s2s_auth::audit::JsonLinesSink;
use s2s_auth::error::ConfigRule;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

use crate::Fail;
use forward::{Forwarder, UpstreamClient};
pub(crate) use settings::{Settings, Upstream, settings_from_yaml};

/// Arguments of `s2s-auth proxy`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  # Guard a service on port 3000; clients call port 7007.
  s2s-auth proxy --config auth.yaml --listen 127.0.0.1:7007 --upstream http://127.0.0.1:3000

  # Reload the config (new tokens, new routes) without dropping a request:
  kill -HUP \"$(pidof s2s-auth)\"

  # The config file holds the sidecar's own settings too (unknown keys are refused):
  #   proxy:
  #     upstream: http://127.0.0.1:3000     # --upstream wins
  #     upstreamTimeoutSeconds: 30          # --upstream-timeout wins
  #     passAuthorization: false            # true forwards the client's Authorization

The upstream receives X-Auth-Subject, X-Auth-Kind, X-Auth-Actor (a service acting for a
user) and X-Auth-Restrictions (compact JSON), set by the proxy; every X-Auth-* header a
client sends is removed first. See examples/proxy.yaml.")]
pub(crate) struct Args {
    /// The config file (the library's `s2s` and `backend` sections, and `proxy`).
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// Where to accept clients (`127.0.0.1:0` picks a free port; the line on stdout names it).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:7007")]
    listen: String,
    /// The service to forward allowed requests to: `http://HOST:PORT[/base]` (no https).
    /// Overrides `proxy.upstream`.
    #[arg(long, value_name = "URL")]
    upstream: Option<String>,
    /// Seconds the upstream may take to send its response headers before the client gets
    /// 504. Overrides `proxy.upstreamTimeoutSeconds` (default 30).
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=86_400))]
    upstream_timeout: Option<u64>,
    /// Threads serving requests (default: one per core). `1` runs everything on one thread,
    /// with no hand-offs between threads: the cheapest per request when the sidecar gets
    /// one core (or less) of its own.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    threads: Option<u16>,
}

impl Args {
    /// The worker threads asked for, if any (`main` builds the runtime from it).
    pub(crate) fn threads(&self) -> Option<usize> {
        self.threads.map(usize::from)
    }
}

pub(crate) async fn run(args: Args) -> Result<(), Fail> {
    let flag_upstream = args
        .upstream
        .as_deref()
        .map(|url| Upstream::parse(url).map_err(|e| Fail::Usage(format!("--upstream {e}"))))
        .transpose()?;
    // One writer for every generation's events, flushed at exit.
    let sink = Arc::new(JsonLinesSink::new(std::io::stderr()));
    let loader = Loader {
        config: args.config,
        flag_upstream,
        flag_timeout: args.upstream_timeout.map(Duration::from_secs),
        sink: sink.clone(),
        client: None,
    };
    let mut loader = loader;
    let first = loader.load().await?;
    let upstream = first.upstream.to_string();
    let (current, watcher) = watch::channel(first.router);

    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .map_err(|e| Fail::Runtime(format!("cannot listen on {}: {e}", args.listen)))?;
    let bound = listener
        .local_addr()
        .map_err(|e| Fail::Runtime(format!("cannot read the bound address: {e}")))?;
    let mut terminate = signal_stream(SignalKind::terminate())?;
    let mut interrupt = signal_stream(SignalKind::interrupt())?;
    let mut hangup = signal_stream(SignalKind::hangup())?;

    // Each request clones the router current when it arrives and runs to the end on it.
    let app = Router::new().fallback(move |request: Request| {
        let mut router = watcher.borrow().clone();
        async move {
            match tower::Service::call(&mut router, request).await {
                Ok(response) => response,
                Err(never) => match never {},
            }
        }
    });
    tokio::spawn(async move {
        while hangup.recv().await.is_some() {
            match loader.load().await {
                Ok(generation) => {
                    // The old router lives on in the requests that cloned it, until they end.
                    drop(current.send_replace(generation.router));
                    log(
                        "reloaded",
                        &format!("forwarding to {}", generation.upstream),
                    );
                }
                Err(fail) => log(
                    "reload_failed",
                    &format!("{fail}; keeping the previous config"),
                ),
            }
        }
    });

    println!("listening on http://{bound}, forwarding to {upstream}");
    let shutdown = async move {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        }
        log("shutting_down", "finishing in-flight requests");
    };
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        // Small requests and responses are the common case: no Nagle delay on them.
        let _ = tcp.set_nodelay(true);
    });
    let served = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await;
    sink.flush(Duration::from_secs(2));
    served.map_err(|e| Fail::Runtime(format!("server error: {e}")))
}

fn signal_stream(kind: SignalKind) -> Result<tokio::signal::unix::Signal, Fail> {
    signal(kind).map_err(|e| Fail::Runtime(format!("cannot listen for signals: {e}")))
}

/// One line on stderr about the proxy itself, JSON like the audit events beside it.
fn log(event: &str, message: &str) {
    eprintln!(
        "{}",
        serde_json::json!({ "proxy": event, "message": message })
    );
}

/// Reads the config file into a ready router; called at start and on every SIGHUP.
struct Loader {
    config: PathBuf,
    flag_upstream: Option<Upstream>,
    flag_timeout: Option<Duration>,
    sink: Arc<JsonLinesSink>,
    /// The upstream connection pool, made once and kept across reloads.
    client: Option<UpstreamClient>,
}

/// One config's router and where it forwards.
struct Generation {
    router: Router,
    upstream: Upstream,
}

impl Loader {
    async fn load(&mut self) -> Result<Generation, Fail> {
        let yaml = read_config(&self.config)?;
        let settings: Settings = settings_from_yaml(&yaml).map_err(Fail::Usage)?;
        let upstream = self
            .flag_upstream
            .clone()
            .or(settings.upstream.clone())
            .ok_or_else(|| {
                Fail::Usage(String::from(
                    "no upstream: give --upstream http://HOST:PORT or proxy.upstream in the config",
                ))
            })?;
        let timeout = self.flag_timeout.unwrap_or(settings.upstream_timeout);
        let builder = AuthBuilder::from_yaml_str(&yaml).map_err(config_fail)?;
        let auth = builder
            .audit_sink(self.sink.clone())
            .build_async()
            .await
            .map_err(config_fail)?;
        if let Some(accounts) = auth.service_accounts() {
            accounts
                .reload()
                .await
                .map_err(|e| Fail::Runtime(format!("cannot read the service accounts: {e}")))?;
        }
        let client = self
            .client
            .get_or_insert_with(|| forward::client(timeout))
            .clone();
        let forwarder = Arc::new(Forwarder {
            client,
            upstream: upstream.clone(),
            pass_authorization: settings.pass_authorization,
            timeout,
        });
        let handler = move |request: Request| forwarder.clone().forward(request);

        // Every declared pattern is forwarded under its policy, and so is every other path
        // (the fallback, under the default policy). What the crate serves itself (JWKS,
        // on-behalf-of, service accounts) is left to `auth.router()`, which mounts it only
        // when no route here claims its paths: so none is declared here.
        let builtin = auth.builtin_paths();
        let patterns: BTreeSet<String> = auth
            .routes()
            .into_iter()
            .map(|(pattern, _, _)| pattern.to_owned())
            .filter(|pattern| !builtin.contains(&pattern.as_str()))
            .collect();
        let mut router = auth.router();
        for pattern in &patterns {
            router = router.serve(pattern, any(handler.clone()));
        }
        let router = router
            .fallback(handler)
            .into_router()
            .map_err(config_fail)?;
        Ok(Generation { router, upstream })
    }
}

/// The config file as text (the library caps it the same way when it reads it itself).
fn read_config(path: &Path) -> Result<String, Fail> {
    const MAX_BYTES: u64 = 1024 * 1024;
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|file| file.take(MAX_BYTES + 1).read_to_string(&mut text))
        .map_err(|e| Fail::Usage(format!("cannot read {}: {e}", path.display())))?;
    if text.len() as u64 > MAX_BYTES {
        return Err(Fail::Usage(format!(
            "{}: larger than {MAX_BYTES} bytes",
            path.display()
        )));
    }
    Ok(text)
}

/// A config error (its path and rule, never a secret): exit 2, except a store that cannot
/// be reached, which is the environment's fault (exit 1).
fn config_fail(error: s2s_auth::ConfigError) -> Fail {
    let message = format!("configuration error: {error}");
    match error.rule() {
        ConfigRule::StoreUnavailable(_) => Fail::Runtime(message),
        _ => Fail::Usage(message),
    }
}
