//! One side of a comparison (raw decode, a request, `jwks_client_rs`), timed by criterion
//! or in batches, and the paired, interleaved checks that compare the sides.

use std::hint::black_box;
use std::time::Instant;

use axum::Router;
use criterion::{BenchmarkGroup, measurement::WallTime};
use http::{HeaderValue, StatusCode};
use jsonwebtoken::{DecodingKey, Validation};
use jwks_client_rs::JwksClient;
use jwks_client_rs::source::WebSource;
use serde_json::{Map, Value};
use tokio::runtime::Runtime;
use tower::ServiceExt;

use crate::fixture::{AUDIENCE, Alg, Fixtures, PerAlg};
use crate::report::request::{self, ITEM_URI};
use crate::report::{self, Figure};

pub const PAIRED_ROUNDS: usize = 100;
/// Operations per side per round: about 1–3 ms each, so a round takes some 10 ms.
pub const PAIRED_BATCH_CRYPTO: u32 = 50;
pub const PAIRED_BATCH_CHEAP: u32 = 1_000;

pub type Claims = Map<String, Value>;

/// One side of a comparison: something that verifies a token (or, for the no-auth request,
/// serves the same request without verifying).
#[derive(Clone, Copy)]
pub enum Side<'a> {
    Raw {
        token: &'a str,
        key: &'a DecodingKey,
        validation: &'a Validation,
    },
    Request {
        app: &'a Router,
        authorization: &'a HeaderValue,
    },
    Client {
        client: &'a JwksClient<WebSource>,
        token: &'a str,
    },
    /// Raw decode, then the no-auth request, in one iteration: what the layer's request is
    /// set against when it is compared with `jsonwebtoken::decode` (issue 11). Both run
    /// back to back, as in the layer's request, so each pays for the caches and branch
    /// history the other leaves, which subtracting two benches timed apart does not see.
    RawThenRequest {
        token: &'a str,
        key: &'a DecodingKey,
        validation: &'a Validation,
        app: &'a Router,
        authorization: &'a HeaderValue,
    },
}

impl Side<'_> {
    pub fn bench(self, group: &mut BenchmarkGroup<'_, WallTime>, rt: &Runtime, name: &str) {
        match self {
            Side::Raw {
                token,
                key,
                validation,
            } => {
                group.bench_function(name, |b| {
                    b.iter(|| jsonwebtoken::decode::<Claims>(black_box(token), key, validation));
                });
            }
            Side::Request { app, authorization } => {
                group.bench_function(name, |b| {
                    b.to_async(rt).iter(|| {
                        let req = request::get(ITEM_URI, authorization.clone());
                        let app = app.clone();
                        async move { black_box(app.oneshot(req).await.ok()) }
                    });
                });
            }
            Side::Client { client, token } => {
                group.bench_function(name, |b| {
                    b.to_async(rt)
                        .iter(|| client.decode::<Claims>(black_box(token), &[AUDIENCE]));
                });
            }
            Side::RawThenRequest {
                token,
                key,
                validation,
                app,
                authorization,
            } => {
                group.bench_function(name, |b| {
                    b.to_async(rt).iter(|| {
                        let decoded =
                            jsonwebtoken::decode::<Claims>(black_box(token), key, validation);
                        black_box(decoded.ok());
                        let req = request::get(ITEM_URI, authorization.clone());
                        let app = app.clone();
                        async move { black_box(app.oneshot(req).await.ok()) }
                    });
                });
            }
        }
    }

    /// Nanoseconds per operation over `n` operations, timed as one batch.
    pub fn batch(self, rt: &Runtime, n: u32) -> f64 {
        let start = Instant::now();
        match self {
            Side::Raw {
                token,
                key,
                validation,
            } => {
                for _ in 0..n {
                    black_box(
                        jsonwebtoken::decode::<Claims>(black_box(token), key, validation).ok(),
                    );
                }
            }
            Side::Request { app, authorization } => rt.block_on(async {
                for _ in 0..n {
                    let req = request::get(ITEM_URI, authorization.clone());
                    black_box(app.clone().oneshot(req).await.ok());
                }
            }),
            Side::Client { client, token } => rt.block_on(async {
                for _ in 0..n {
                    black_box(
                        client
                            .decode::<Claims>(black_box(token), &[AUDIENCE])
                            .await
                            .ok(),
                    );
                }
            }),
            Side::RawThenRequest {
                token,
                key,
                validation,
                app,
                authorization,
            } => rt.block_on(async {
                for _ in 0..n {
                    black_box(
                        jsonwebtoken::decode::<Claims>(black_box(token), key, validation).ok(),
                    );
                    let req = request::get(ITEM_URI, authorization.clone());
                    black_box(app.clone().oneshot(req).await.ok());
                }
            }),
        }
        start.elapsed().as_secs_f64() * 1e9 / f64::from(n)
    }

    /// Whether the side succeeds: the token verifies, or the request gets the handler's 200.
    pub fn outcome(self, rt: &Runtime) -> String {
        match self {
            Side::Raw {
                token,
                key,
                validation,
            } => match jsonwebtoken::decode::<Claims>(token, key, validation) {
                Ok(_) => "ok".to_owned(),
                Err(e) => format!("error: {e}"),
            },
            Side::Request { app, authorization } => {
                let req = request::get(ITEM_URI, authorization.clone());
                let (status, body) = request::send(rt, app, req);
                if status == StatusCode::OK && body == "ok" {
                    "ok".to_owned()
                } else {
                    format!("HTTP {status}: {body}")
                }
            }
            Side::Client { client, token } => {
                match rt.block_on(client.decode::<Claims>(token, &[AUDIENCE])) {
                    Ok(_) => "ok".to_owned(),
                    Err(e) => format!("error: {e}"),
                }
            }
            Side::RawThenRequest {
                token,
                key,
                validation,
                app,
                authorization,
            } => {
                let decoded = Side::Raw {
                    token,
                    key,
                    validation,
                }
                .outcome(rt);
                let request = Side::Request { app, authorization }.outcome(rt);
                if decoded == "ok" && request == "ok" {
                    "ok".to_owned()
                } else {
                    format!("decode: {decoded}; request: {request}")
                }
            }
        }
    }

    pub fn assert_ok(self, rt: &Runtime, what: &str) {
        let outcome = self.outcome(rt);
        assert_eq!(outcome, "ok", "{what}: the benched operation must succeed");
    }
}

// ---------------------------------------------------------------------------------------
// Paired, interleaved checks
// ---------------------------------------------------------------------------------------

/// Per-operation nanoseconds of each side in each round: `[side][round]`.
pub struct Rounds(pub Vec<Vec<f64>>);

/// Times every side of `sides` for [`PAIRED_ROUNDS`] rounds, round-robin (see
/// [`report::round_robin`]).
pub fn paired(rt: &Runtime, sides: &[(Side<'_>, u32)]) -> Rounds {
    Rounds(report::round_robin(PAIRED_ROUNDS, sides.len(), |s| {
        let (side, n) = sides[s];
        side.batch(rt, n)
    }))
}

impl Rounds {
    /// `metric` of each round's per-side times, summarized over rounds.
    pub fn figure(&self, metric: impl Fn(&[f64]) -> f64) -> Figure {
        let rounds = self.0[0].len();
        Figure::of(
            (0..rounds)
                .map(|r| {
                    let t: Vec<f64> = self.0.iter().map(|side| side[r]).collect();
                    metric(&t)
                })
                .collect(),
        )
    }
}

/// The indices of the sides in [`per_alg_sides`].
pub const RAW: usize = 0;
pub const NO_AUTH: usize = 1;
pub const FRESH: usize = 2;
pub const FRESH_CRATE: usize = 3;
pub const CLIENT: usize = 4;
pub const FLOOR: usize = 5;
pub const RAW_THEN_REQUEST: usize = 6;
pub const CACHED: usize = 7;

pub fn per_alg_sides<'a>(f: &'a Fixtures, a: &'a PerAlg) -> Vec<(Side<'a>, u32)> {
    let mut sides = vec![
        (f.raw(a), PAIRED_BATCH_CRYPTO),
        (f.no_auth(a), PAIRED_BATCH_CHEAP),
        (f.layer_fresh(a), PAIRED_BATCH_CRYPTO),
        (f.layer_fresh_crate(a), PAIRED_BATCH_CRYPTO),
        (f.jwks_client_rs(a), PAIRED_BATCH_CRYPTO),
        (f.floor(a), PAIRED_BATCH_CRYPTO),
        (f.raw_then_request(a), PAIRED_BATCH_CRYPTO),
    ];
    if a.alg == Alg::Es256 {
        sides.push((f.layer_cached(a), PAIRED_BATCH_CHEAP));
    }
    sides
}

/// The paired figures of one algorithm.
pub struct AlgChecks {
    pub alg: Alg,
    /// Per-side medians over rounds, ns.
    pub side_ns: Vec<f64>,
    pub fresh_full: Figure,
    pub fresh_isolated: Figure,
    /// The layer's extra cost over raw decode: (fresh − no-auth) − raw, ns.
    pub layer_extra: Figure,
    pub crate_over_builtin: Figure,
    pub client_over_raw: Figure,
    /// The floor as a request, read as the layer is: (floor − no-auth) ÷ raw.
    pub floor_isolated: Figure,
    /// The layer's request ÷ the floor's request (what the load bench compares).
    pub fresh_over_floor: Figure,
    /// The layer's request ÷ (raw decode then the no-auth request, one iteration).
    pub fresh_over_raw_then_request: Figure,
    pub cached_full: Option<Figure>,
    pub cached_isolated: Option<Figure>,
    /// What a cached request costs over the no-auth request, ns.
    pub cached_extra: Option<Figure>,
}

pub fn run_checks(rt: &Runtime, f: &Fixtures) -> Vec<AlgChecks> {
    println!(
        "Paired, interleaved checks ({PAIRED_ROUNDS} rounds; {PAIRED_BATCH_CRYPTO} verifications \
         or {PAIRED_BATCH_CHEAP} cheap requests a side)…"
    );
    f.algs
        .iter()
        .map(|a| {
            let r = paired(rt, &per_alg_sides(f, a));
            let side_ns = (0..r.0.len()).map(|i| r.figure(|t| t[i]).median).collect();
            let has_cached = a.alg == Alg::Es256;
            AlgChecks {
                alg: a.alg,
                side_ns,
                fresh_full: r.figure(|t| t[FRESH] / t[RAW]),
                fresh_isolated: r.figure(|t| (t[FRESH] - t[NO_AUTH]) / t[RAW]),
                layer_extra: r.figure(|t| t[FRESH] - t[NO_AUTH] - t[RAW]),
                crate_over_builtin: r.figure(|t| t[FRESH_CRATE] / t[FRESH]),
                client_over_raw: r.figure(|t| t[CLIENT] / t[RAW]),
                floor_isolated: r.figure(|t| (t[FLOOR] - t[NO_AUTH]) / t[RAW]),
                fresh_over_floor: r.figure(|t| t[FRESH] / t[FLOOR]),
                fresh_over_raw_then_request: r.figure(|t| t[FRESH] / t[RAW_THEN_REQUEST]),
                cached_full: has_cached.then(|| r.figure(|t| t[FRESH] / t[CACHED])),
                cached_isolated: has_cached
                    .then(|| r.figure(|t| (t[FRESH] - t[NO_AUTH]) / (t[CACHED] - t[NO_AUTH]))),
                cached_extra: has_cached.then(|| r.figure(|t| t[CACHED] - t[NO_AUTH])),
            }
        })
        .collect()
}
