//! Criterion benchmarks of plugin-to-plugin tokens, all run side by side in one process:
//!
//! - `issue`: `Auth::plugin_token("catalog")` next to `jsonwebtoken::encode` of the same
//!   header and claims with a ready ES256 `EncodingKey`;
//! - `verify`: `jsonwebtoken::decode` with the issuer's public key and the plugin verifier's
//!   `Validation`; the same request to the handler without the layer; the request through
//!   the layer with the verified-token cache off (every request verifies the signature:
//!   "fresh") and on (the same token every request: "cached");
//! - `client`: `S2sClient::token_for(None, "catalog")` on a client that already holds a token;
//! - `repeat`: `verify/raw_decode` again, benched last: this run's noise.
//!
//! Two services share the process: `scaffolder` issues, `catalog` verifies. `catalog` gets
//! scaffolder's keys from [`JwksFromRouter`], a `KeyFetcher` that calls scaffolder's
//! `jwks_router()` with `oneshot`: the published JWKS, with no socket and no network.
//!
//! `cargo bench --bench plugin` runs them, then a paired, interleaved check of every ratio,
//! and rewrites its section of `BENCHMARKS.md` (see `report`). `cargo test --benches` runs
//! each routine once and the 1,000-call reuse count, and writes nothing.

// Not every bench uses every helper (this one sets no targets, so it has no verdicts).
#[allow(dead_code)]
mod report;

use std::fmt::Write as _;
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use axum::Router;
use axum::body::Body;
use axum::routing::get;
use criterion::Criterion;
use http::header::AUTHORIZATION;
use http::{HeaderValue, Method, Request, StatusCode, Uri};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use s2s_auth::jwks::FetchFuture;
use s2s_auth::plugin::{JWKS_PATH, PLUGIN_TOKEN_LIFETIME, PLUGIN_TYP};
use s2s_auth::{
    Auth, DEFAULT_LEEWAY_SECS, FetchError, FetchedDocument, KeyFetcher, MemoryStore, PluginTokens,
    RoutePolicy, S2sClient, StaticDiscovery,
};
use serde_json::{Map, Value, json};
use tokio::runtime::Runtime;
use tower::ServiceExt;

const CALLER: &str = "scaffolder";
const TARGET: &str = "catalog";
/// Where discovery says the caller is. Nothing listens there: [`JwksFromRouter`] answers.
const CALLER_BASE: &str = "http://scaffolder.bench.invalid/api/scaffolder";
const ITEM_PATH: &str = "/items/{id}";
const ITEM_URI: &str = "/items/42";
const REUSE_CALLS: u32 = 1_000;

const PAIRED_ROUNDS: usize = 100;
/// Operations per side per round: an ES256 signature or verification takes tens of µs.
const BATCH_CRYPTO: u32 = 50;
const BATCH_CHEAP: u32 = 1_000;

/// Everything timed, in the order of [`OPS`].
#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    RawEncode,
    Issue,
    RawDecode,
    NoAuth,
    Fresh,
    Cached,
    Reuse,
}

/// Each operation: its criterion bench and its paired batch size.
const OPS: [(Op, &str, u32); 7] = [
    (Op::RawEncode, "issue/raw_encode", BATCH_CRYPTO),
    (Op::Issue, "issue/plugin_token", BATCH_CRYPTO),
    (Op::RawDecode, "verify/raw_decode", BATCH_CRYPTO),
    (Op::NoAuth, "verify/no_auth", BATCH_CHEAP),
    (Op::Fresh, "verify/layer_fresh", BATCH_CRYPTO),
    (Op::Cached, "verify/layer_cached", BATCH_CHEAP),
    (Op::Reuse, "client/token_for_reused", BATCH_CHEAP),
];

impl Op {
    fn what(self) -> &'static str {
        match self {
            Op::RawEncode => "`jsonwebtoken::encode`, ES256, ready header, claims and key",
            Op::Issue => "`Auth::plugin_token(\"catalog\")`",
            Op::RawDecode => "`jsonwebtoken::decode`, ES256, ready key and `Validation`",
            Op::NoAuth => "the handler, no layer (same request and header)",
            Op::Fresh => "request through the layer, verified-token cache off",
            Op::Cached => "request through the layer, verified-token cache on, same token",
            Op::Reuse => "`S2sClient::token_for(None, \"catalog\")`, token already held",
        }
    }
}

async fn ok() -> &'static str {
    "ok"
}

fn bearer(token: &str) -> HeaderValue {
    HeaderValue::from_str(&format!("Bearer {token}"))
        .expect("invariant: a JWT is a valid header value")
}

fn request(authorization: HeaderValue) -> Request<Body> {
    let mut req = Request::new(Body::empty());
    *req.method_mut() = Method::GET;
    *req.uri_mut() = Uri::from_static(ITEM_URI);
    req.headers_mut().insert(AUTHORIZATION, authorization);
    req
}

/// A `KeyFetcher` that answers the caller's JWKS URL from the caller's own `jwks_router()`,
/// in process, and counts its fetches. The body goes back without the route's
/// `Cache-Control: max-age=60`, so the cache keeps its default 10-minute refresh and no
/// background refresh falls inside a run.
struct JwksFromRouter {
    jwks: Router,
    fetches: AtomicUsize,
}

impl KeyFetcher for JwksFromRouter {
    fn fetch<'a>(&'a self, url: &'a str, max_bytes: usize) -> FetchFuture<'a> {
        Box::pin(async move {
            self.fetches.fetch_add(1, Ordering::Relaxed);
            let path = url
                .strip_prefix(CALLER_BASE)
                .ok_or(FetchError::Status(404))?;
            let req = Request::get(path)
                .body(Body::empty())
                .map_err(|e| FetchError::Transport(e.to_string()))?;
            let Ok(res) = self.jwks.clone().oneshot(req).await;
            if !res.status().is_success() {
                return Err(FetchError::Status(res.status().as_u16()));
            }
            let body = axum::body::to_bytes(res.into_body(), max_bytes)
                .await
                .map_err(|_| FetchError::TooLarge { limit: max_bytes })?;
            Ok(FetchedDocument::new(body.to_vec()))
        })
    }
}

/// `catalog`: the items route behind its layer, trusting `scaffolder` by discovery.
fn receiver(fetcher: &Arc<JwksFromRouter>, verified_cache: bool) -> Router {
    let mut builder = Auth::builder(TARGET)
        .discovery(StaticDiscovery::new([(CALLER, CALLER_BASE)]))
        .key_fetcher(fetcher.clone())
        .route(ITEM_PATH, [Method::GET], RoutePolicy::authenticated());
    if !verified_cache {
        builder = builder.verified_cache_capacity(0);
    }
    let auth = builder
        .build()
        .expect("invariant: the bench configuration is valid");
    Router::new().route(ITEM_PATH, get(ok)).layer(auth.layer())
}

fn new_client(issuer: &Auth) -> S2sClient {
    S2sClient::new(
        issuer.clone(),
        StaticDiscovery::new([(TARGET, "http://catalog.bench.invalid/api/catalog")]),
    )
}

/// Everything the benches use, built once and checked before anything is timed.
struct Fixtures {
    issuer: Auth,
    fetcher: Arc<JwksFromRouter>,
    warm_fetches: usize,
    /// The raw encode: a P-256 key generated as the issuer generates its own, and the header
    /// and claims `plugin_token` builds.
    encoding: EncodingKey,
    header: Header,
    claims: Value,
    /// The raw decode: one token from the issuer, its published key, the verifier's checks.
    token: String,
    authorization: HeaderValue,
    decoding: DecodingKey,
    validation: Validation,
    plain: Router,
    fresh: Router,
    cached: Router,
    client: S2sClient,
    /// A new client's issuances over [`REUSE_CALLS`] calls, and their wall time.
    reuse_count: (u64, Duration),
}

impl Fixtures {
    fn new(rt: &Runtime) -> Self {
        let issuer = Auth::builder(CALLER)
            .plugin_tokens(PluginTokens::new(Arc::new(MemoryStore::default())))
            .build()
            .expect("invariant: the bench configuration is valid");
        let fetcher = Arc::new(JwksFromRouter {
            jwks: issuer.jwks_router(),
            fetches: AtomicUsize::new(0),
        });
        rt.block_on(async {
            // The first token generates and publishes the issuer's key.
            let token = issuer.plugin_token(TARGET).await.expect("a plugin token");
            let token = token.expose_secret().to_owned();
            let jwks = fetcher
                .fetch(&format!("{CALLER_BASE}{JWKS_PATH}"), 1 << 16)
                .await
                .expect("the published JWKS");
            let jwks: JwkSet = serde_json::from_slice(&jwks.body).expect("a JWK set");
            // Only the layers' fetches count.
            fetcher.fetches.store(0, Ordering::Relaxed);
            let [jwk] = jwks.keys.as_slice() else {
                panic!("one published key, got {}", jwks.keys.len())
            };
            let mut header = Header::new(Algorithm::ES256);
            header.typ = Some(PLUGIN_TYP.to_owned());
            header.kid.clone_from(&jwk.common.key_id);
            let iat = jsonwebtoken::get_current_timestamp();
            let pkcs8 = EcdsaKeyPair::generate_pkcs8(
                &ECDSA_P256_SHA256_FIXED_SIGNING,
                &SystemRandom::new(),
            )
            .expect("invariant: P-256 key generation works");
            // The checks the plugin verifier makes (`PluginVerifier::new`).
            let mut validation = Validation::new(Algorithm::ES256);
            validation.leeway = DEFAULT_LEEWAY_SECS;
            validation.validate_nbf = true;
            validation.set_audience(&[TARGET]);
            validation.set_required_spec_claims(&["exp", "sub", "aud"]);

            let client = new_client(&issuer);
            client.token_for(None, TARGET).await.expect("a token");
            let counted = new_client(&issuer);
            let start = Instant::now();
            for _ in 0..REUSE_CALLS {
                counted.token_for(None, TARGET).await.expect("a token");
            }
            let reuse_count = (counted.tokens_issued(), start.elapsed());
            assert_eq!(reuse_count.0, 1, "{REUSE_CALLS} calls must reuse one token");

            let f = Self {
                encoding: EncodingKey::from_ec_der(pkcs8.as_ref()),
                header,
                claims: json!({
                    "sub": CALLER,
                    "aud": TARGET,
                    "iat": iat,
                    "exp": iat + PLUGIN_TOKEN_LIFETIME.as_secs(),
                }),
                authorization: bearer(&token),
                token,
                decoding: DecodingKey::from_jwk(jwk).expect("the published JWK decodes"),
                validation,
                plain: Router::new().route(ITEM_PATH, get(ok)),
                fresh: receiver(&fetcher, false),
                cached: receiver(&fetcher, true),
                client,
                reuse_count,
                warm_fetches: 0,
                fetcher,
                issuer,
            };
            f.check().await
        })
    }

    /// Every operation succeeds (warming each JWKS cache), and the layer is in the path: a
    /// token for another audience is refused.
    async fn check(mut self) -> Self {
        assert!(
            OPS.iter()
                .enumerate()
                .all(|(i, (op, ..))| *op as usize == i),
            "OPS lists every Op in declaration order: results are indexed by `op as usize`"
        );
        for (op, bench, _) in OPS {
            if let Err(e) = self.run(op).await {
                panic!("{bench}: the benched operation must succeed: {e}");
            }
        }
        let other = self.issuer.plugin_token("search").await.expect("a token");
        for app in [&self.fresh, &self.cached] {
            let Ok(res) = app
                .clone()
                .oneshot(request(bearer(other.expose_secret())))
                .await;
            assert_eq!(
                res.status(),
                StatusCode::UNAUTHORIZED,
                "the layer must be in the path"
            );
        }
        self.warm_fetches = self.fetches();
        self
    }

    fn fetches(&self) -> usize {
        self.fetcher.fetches.load(Ordering::Relaxed)
    }

    /// One operation.
    async fn run(&self, op: Op) -> Result<(), String> {
        match op {
            Op::RawEncode => {
                jsonwebtoken::encode(&self.header, black_box(&self.claims), &self.encoding)
                    .map(|t| drop(black_box(t)))
                    .map_err(|e| e.to_string())
            }
            Op::Issue => self
                .issuer
                .plugin_token(black_box(TARGET))
                .await
                .map(|t| drop(black_box(t)))
                .map_err(|e| e.to_string()),
            Op::RawDecode => jsonwebtoken::decode::<Map<String, Value>>(
                black_box(&self.token),
                &self.decoding,
                &self.validation,
            )
            .map(|t| drop(black_box(t)))
            .map_err(|e| e.to_string()),
            Op::NoAuth => self.send(&self.plain).await,
            Op::Fresh => self.send(&self.fresh).await,
            Op::Cached => self.send(&self.cached).await,
            Op::Reuse => self
                .client
                .token_for(None, black_box(TARGET))
                .await
                .map(|t| drop(black_box(t)))
                .map_err(|e| e.to_string()),
        }
    }

    /// One request: build it, clone the `Router` (one `Arc`), await `oneshot`.
    async fn send(&self, app: &Router) -> Result<(), String> {
        let Ok(res) = app
            .clone()
            .oneshot(request(self.authorization.clone()))
            .await;
        match res.status() {
            StatusCode::OK => Ok(()),
            status => Err(format!("HTTP {status}")),
        }
    }
}

fn benches(c: &mut Criterion, rt: &Runtime, f: &Fixtures) {
    for name in ["issue", "verify", "client"] {
        let mut group = c.benchmark_group(name);
        for (op, bench, _) in OPS {
            if let Some(id) = bench.strip_prefix(name).and_then(|b| b.strip_prefix('/')) {
                group.bench_function(id, |b| b.to_async(rt).iter(|| f.run(op)));
            }
        }
        group.finish();
    }
    let mut group = c.benchmark_group("repeat");
    group.bench_function("raw_decode", |b| {
        b.to_async(rt).iter(|| f.run(Op::RawDecode));
    });
    group.finish();
}

/// A paired figure: the median over rounds, and the interquartile range.
#[derive(Clone, Copy)]
struct Figure {
    median: f64,
    p25: f64,
    p75: f64,
}

/// Per-operation nanoseconds of every op in every round (`[op][round]`): each round times a
/// batch of every op, starting at the next op each round (round-robin), so that load from
/// other processes, which comes and goes over seconds, falls on every op of a round alike.
fn paired(rt: &Runtime, f: &Fixtures) -> Vec<Vec<f64>> {
    let mut times = vec![Vec::with_capacity(PAIRED_ROUNDS); OPS.len()];
    for round in 0..=PAIRED_ROUNDS {
        for i in 0..OPS.len() {
            let k = (round + i) % OPS.len();
            let (op, _, n) = OPS[k];
            let per_op = rt.block_on(async {
                let start = Instant::now();
                for _ in 0..n {
                    black_box(f.run(op).await.is_ok());
                }
                start.elapsed().as_secs_f64() * 1e9 / f64::from(n)
            });
            // Round 0 warms up.
            if round > 0 {
                times[k].push(per_op);
            }
        }
    }
    times
}

/// `metric` of each round's per-op times, summarized over rounds.
fn figure(times: &[Vec<f64>], metric: impl Fn(&dyn Fn(Op) -> f64) -> f64) -> Figure {
    let mut v: Vec<f64> = (0..PAIRED_ROUNDS)
        .map(|r| metric(&|op: Op| times[op as usize][r]))
        .collect();
    let median = report::median(&mut v);
    let q = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
    Figure {
        median,
        p25: q(0.25),
        p75: q(0.75),
    }
}

fn main() {
    let started = SystemTime::now();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("invariant: a tokio runtime can be built");
    let fixtures = Fixtures::new(&rt);
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50)
        .without_plots()
        .configure_from_args();
    benches(&mut c, &rt, &fixtures);
    c.final_summary();
    if report::is_full_run() {
        summary::write(started, &rt, &fixtures);
    }
}

/// This bench's section of `BENCHMARKS.md`.
mod summary {
    use super::*;
    use crate::report::{Estimate, machine, now_utc, ns, signed};

    pub(super) fn write(started: SystemTime, rt: &Runtime, f: &Fixtures) {
        let benches = OPS.iter().map(|(_, b, ..)| *b).chain(["repeat/raw_decode"]);
        let est = match report::read_all(benches, started) {
            Ok(est) => est,
            Err(why) => {
                eprintln!(
                    "BENCHMARKS.md not written: every bench must run in the same invocation \
                     ({why}). Run `cargo bench --bench plugin` without a filter."
                );
                return;
            }
        };
        let timed_fetches = f.fetches() - f.warm_fetches;
        println!(
            "Paired, interleaved check ({PAIRED_ROUNDS} rounds; {BATCH_CRYPTO} signatures or \
             verifications, or {BATCH_CHEAP} cheap operations, per op per round)…"
        );
        let times = paired(rt, f);
        report::write_section("plugin", &render(&est, &times, timed_fetches, f));
    }

    /// `1,000` for 1000.
    fn count(n: u32) -> String {
        match n {
            1_000.. => format!("{},{:03}", n / 1_000, n % 1_000),
            _ => n.to_string(),
        }
    }

    fn ratio(v: f64) -> String {
        if v >= 10.0 {
            format!("{v:.1}×")
        } else {
            format!("{v:.3}×")
        }
    }

    #[allow(clippy::too_many_lines)] // one linear document
    fn render(est: &[Estimate], times: &[Vec<f64>], timed_fetches: usize, f: &Fixtures) -> String {
        use Op::{Cached, Fresh, Issue, NoAuth, RawDecode, RawEncode, Reuse};
        let e = |op: Op| est[op as usize];
        let side = |op: Op| figure(times, |t| t(op)).median;
        let repeat_gap = {
            let pct = (est[OPS.len()].median / e(Op::RawDecode).median - 1.0) * 100.0;
            format!("{}{:.1}%", if pct < 0.0 { "−" } else { "+" }, pct.abs())
        };
        // (what, numerator, what the numerator is less of, denominator)
        #[rustfmt::skip] // a table
        let rows: [(&str, Op, Option<Op>, Op); 6] = [
            ("issuance: `plugin_token` ÷ raw `encode`", Issue, None, RawEncode),
            ("fresh: request through the layer ÷ raw `decode`", Fresh, None, RawDecode),
            ("fresh: (layer − no-auth request) ÷ raw `decode`", Fresh, Some(NoAuth), RawDecode),
            ("cached: request through the layer ÷ raw `decode`", Cached, None, RawDecode),
            ("cached speed-up: fresh ÷ cached request", Fresh, None, Cached),
            ("client: `plugin_token` ÷ reused `token_for`", Issue, None, Reuse),
        ];

        let mut md = String::new();
        let w = &mut md;
        let _ = writeln!(w, "## Plugin tokens\n");
        let _ = writeln!(
            w,
            "Generated by `cargo bench --bench plugin` ([`benches/plugin.rs`](benches/plugin.rs)) \
             on **{}**. The bench rewrites this section on every full run. Every figure in it \
             comes from one process and one run.\n",
            now_utc()
        );
        let _ = writeln!(w, "### Machine\n");
        for (k, v) in machine(
            "`bench` (optimised), criterion 0.8 (1 s warm-up, 3 s of samples, 50 samples), tokio \
             current-thread runtime",
        ) {
            let _ = writeln!(w, "- **{k}:** {v}");
        }
        let _ = writeln!(
            w,
            "\n> A shared, noisy 2-core machine: other jobs (builds, tests) run on it at the same \
             time, in bursts. Read absolute times as an order of magnitude. A measure of this \
             run's noise: criterion benched `verify/raw_decode` twice, some 20 s apart \
             (`repeat/raw_decode`), and the medians differ by **{repeat_gap}**. This is why \
             every ratio is also measured by a paired, interleaved check, whose interquartile \
             range over rounds is given with it.\n"
        );

        let _ = writeln!(w, "### Setup\n");
        let _ = writeln!(
            w,
            "Two services in one process: `{CALLER}` issues (`PluginTokens::new(MemoryStore)`; \
             its first token generates and publishes its ES256 key) and `{TARGET}` verifies \
             (`.discovery(..)` names `{CALLER}` at an address where nothing listens). `{TARGET}` \
             gets the key from a `KeyFetcher` of the bench's own (`.key_fetcher(..)`) that calls \
             `{CALLER}`'s `jwks_router()` with `oneshot`: the published JWKS, in process, no \
             socket. It drops the route's `max-age=60`, so the JWKS cache keeps its 10-minute \
             refresh: {} fetches while the two layers warmed up, **{timed_fetches}** after.\n\n\
             - **raw `encode`**: the header (ES256, `typ: {PLUGIN_TYP}`, the issuer's `kid`) and \
             claims (`sub`, `aud`, `iat`, `exp`) that `plugin_token` builds, built once, signed \
             with a P-256 key generated as the issuer generates its own.\n\
             - **raw `decode`**: a token from `plugin_token`, the `DecodingKey` of the published \
             JWK and the plugin verifier's `Validation` (ES256, `aud` = `{TARGET}`, \
             {DEFAULT_LEEWAY_SECS} s leeway, `nbf`, `exp`/`sub`/`aud` required).\n\
             - **layer, fresh / cached**: `GET {ITEM_URI}` with that token through an axum \
             `Router` and `{TARGET}`'s layer, its verified-token cache off \
             (`.verified_cache_capacity(0)`: every request verifies the signature) or on (the \
             same token every request). **no-auth**: the same request without the layer.\n\
             - **client**: `token_for(None, \"{TARGET}\")` on an `S2sClient` that already holds \
             a token for `{TARGET}`.\n\n\
             Every operation, the raw ones too, runs in the same tokio harness. **criterion** \
             compares medians (and means) of separate benches run one after the other; \
             **paired** is the median over {PAIRED_ROUNDS} rounds of the per-round ratio, each \
             round timing {BATCH_CRYPTO} signatures or verifications, or {} cheap operations, of \
             every operation in turn. No targets are set.\n",
            f.warm_fetches,
            count(BATCH_CHEAP)
        );

        let _ = writeln!(w, "### Ratios\n");
        let _ = writeln!(
            w,
            "| comparison | criterion (median) | criterion (mean) | paired | paired IQR |"
        );
        let _ = writeln!(w, "|---|---:|---:|---:|---:|");
        let less = |x: f64, base: Option<f64>| x - base.unwrap_or(0.0);
        let mut console = Vec::new();
        for (what, num, minus, den) in rows {
            let crit = less(e(num).median, minus.map(|m| e(m).median)) / e(den).median;
            let crit_mean = less(e(num).mean, minus.map(|m| e(m).mean)) / e(den).mean;
            let p = figure(times, |t| less(t(num), minus.map(t)) / t(den));
            let _ = writeln!(
                w,
                "| {what} | {} | {} | {} | {} – {} |",
                ratio(crit),
                ratio(crit_mean),
                ratio(p.median),
                ratio(p.p25),
                ratio(p.p75)
            );
            console.push(format!("{what}: {} paired", ratio(p.median)));
        }
        let _ = writeln!(
            w,
            "\n**What the crate adds** (paired medians, per operation). `plugin_token` costs \
             **{}** over the raw signature ({} ns): the signing-key lookup, the header and \
             `serde_json` claims it builds per token, the service-id check. A fresh \
             verification through the layer, less the no-auth request ({} ns), costs **{}** \
             over raw `decode` ({} ns): hashing the token, reading its header and claims \
             unverified, discovery and the JWKS-cache lookup, the checks `decode` does not make \
             (`iat`, the lifetime, `sub`, `obo`), the route policy, the principal and the audit \
             event. Cached, the \
             layer adds {} to the no-auth request and checks no signature.\n",
            signed(figure(times, |t| t(Issue) - t(RawEncode)).median),
            ns(side(RawEncode)),
            ns(side(NoAuth)),
            signed(figure(times, |t| t(Fresh) - t(NoAuth) - t(RawDecode)).median),
            ns(side(RawDecode)),
            signed(figure(times, |t| t(Cached) - t(NoAuth)).median)
        );

        let (issued, wall) = f.reuse_count;
        let benched_issued = f.client.tokens_issued();
        let _ = writeln!(w, "### Outbound client reuse\n");
        let _ = writeln!(
            w,
            "{} calls to `token_for(None, \"{TARGET}\")` on a new client: **{issued} \
             issuance** (`tokens_issued()`), {:.0} µs for all of them, the issuance included. \
             The benched client issued {benched_issued} {} over all the calls criterion and the \
             paired check made to it. Reusing the held token costs **{} ns** a call (criterion \
             median; {} ns paired), a fresh issuance **{} ns** ({} ns paired): a mutex, a map \
             lookup, a clock read and a `String` clone, against an ES256 signature.\n",
            count(REUSE_CALLS),
            wall.as_secs_f64() * 1e6,
            if benched_issued == 1 {
                "token"
            } else {
                "tokens"
            },
            ns(e(Reuse).median),
            ns(side(Reuse)),
            ns(e(Issue).median),
            ns(side(Issue))
        );

        let _ = writeln!(w, "### Every criterion measurement\n");
        let _ = writeln!(
            w,
            "Time per iteration. For the request benches one iteration builds the request, \
             clones the `Router` (one `Arc`) and awaits `oneshot`. No tracing subscriber is \
             installed, so audit events are built but not formatted.\n"
        );
        let _ = writeln!(
            w,
            "| bench | what | mean ns | mean 95% CI | median ns | paired median ns |"
        );
        let _ = writeln!(w, "|---|---|---:|---:|---:|---:|");
        let repeat = (
            "repeat/raw_decode",
            "`verify/raw_decode` again, benched last",
            None,
        );
        let list = OPS
            .iter()
            .map(|&(op, bench, _)| (bench, op.what(), Some(op)))
            .chain([repeat]);
        for ((bench, what, op), x) in list.zip(est) {
            let _ = writeln!(
                w,
                "| `{bench}` | {what} | {} | {} – {} | {} | {} |",
                ns(x.mean),
                ns(x.mean_low),
                ns(x.mean_high),
                ns(x.median),
                op.map_or_else(|| "–".to_owned(), |op| ns(side(op)))
            );
        }

        let _ = writeln!(w, "\n### How to reproduce\n");
        let _ = writeln!(
            w,
            "```sh\ncargo bench --bench plugin\n```\n\n\
             This runs every criterion group and the paired check and rewrites this section. \
             With a filter (`cargo bench --bench plugin -- issue`) only some benches run and \
             the file is left alone. `cargo test --benches` runs each routine once and the \
             {}-call reuse count, and writes nothing.",
            count(REUSE_CALLS)
        );

        println!(
            "\n{}\nissuances per {} calls: {issued}",
            console.join("\n"),
            count(REUSE_CALLS)
        );
        md
    }
}
