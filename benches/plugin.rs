//! Criterion benchmarks of plugin-to-plugin tokens, plain and on behalf of a user, all run
//! side by side in one process:
//!
//! - `issue`: `Auth::plugin_token("catalog")` next to `jsonwebtoken::encode` of the same
//!   header and claims with a ready ES256 `EncodingKey`; `Auth::on_behalf_of_token(&jane,
//!   "catalog")` for a Backstage user next to `encode` of its claims (the same, plus `obo`);
//! - `verify`: `jsonwebtoken::decode` with the issuer's public key and the plugin verifier's
//!   `Validation`; the same request to the handler without the layer; the request through
//!   the layer with the verified-token cache off (every request verifies the signature:
//!   "fresh") and on (the same token every request: "cached"). Then the same for an
//!   on-behalf-of token, whose raw baseline is two `decode`s: the plugin token with the
//!   issuer's key, then the limited user token in its `obo` claim with the identity
//!   provider's;
//! - `client`: `S2sClient::token_for(None, "catalog")` and `token_for(Some(&jane),
//!   "catalog")` on clients that already hold the token;
//! - `repeat`: `verify/raw_decode` again, benched last: this run's noise.
//!
//! Two services and an identity provider share the process (see the `fixture` module):
//! `scaffolder` verifies jane's Backstage user token and issues, `catalog` verifies. Both get
//! keys from one in-process `KeyFetcher`: scaffolder's published JWKS from its own
//! `jwks_router()` with `oneshot`, the identity provider's from memory. No socket, no network.
//!
//! `cargo bench --bench plugin` runs them, then a paired, interleaved check of every ratio,
//! and rewrites its section of `BENCHMARKS.md` (see `report` and the `summary` module).
//! `cargo test --benches` runs each routine once and the 1,000-call reuse counts, and
//! writes nothing.

// Not every bench uses every helper (this one sets no targets, so it has no verdicts).
#[allow(dead_code)]
mod report;

// The crate root resolves `mod` paths next to itself (`benches/`): these live in
// `benches/plugin/`.
#[path = "plugin/fixture.rs"]
mod fixture;
#[path = "plugin/summary.rs"]
mod summary;
// The fake identity provider and the in-process key fetcher, shared with the tests.
#[path = "../tests/kit/mod.rs"]
mod kit;

use std::hint::black_box;
use std::time::{Instant, SystemTime};

use criterion::Criterion;
use tokio::runtime::Runtime;

use fixture::Fixtures;
use report::Figure;

const PAIRED_ROUNDS: usize = 100;
/// Operations per side per round: an ES256 signature or verification takes tens of µs.
const BATCH_CRYPTO: u32 = 50;
const BATCH_CHEAP: u32 = 1_000;

/// Everything timed, in the order of [`OPS`].
#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    RawEncode,
    Issue,
    RawEncodeObo,
    IssueObo,
    RawDecode,
    NoAuth,
    Fresh,
    Cached,
    RawDecodeObo,
    OboFresh,
    OboCached,
    Reuse,
    OboReuse,
}

/// Each operation: its criterion bench and its paired batch size.
const OPS: [(Op, &str, u32); 13] = [
    (Op::RawEncode, "issue/raw_encode", BATCH_CRYPTO),
    (Op::Issue, "issue/plugin_token", BATCH_CRYPTO),
    (Op::RawEncodeObo, "issue/raw_encode_obo", BATCH_CRYPTO),
    (Op::IssueObo, "issue/on_behalf_of_token", BATCH_CRYPTO),
    (Op::RawDecode, "verify/raw_decode", BATCH_CRYPTO),
    (Op::NoAuth, "verify/no_auth", BATCH_CHEAP),
    (Op::Fresh, "verify/layer_fresh", BATCH_CRYPTO),
    (Op::Cached, "verify/layer_cached", BATCH_CHEAP),
    (Op::RawDecodeObo, "verify/raw_decode_x2_obo", BATCH_CRYPTO),
    (Op::OboFresh, "verify/obo_layer_fresh", BATCH_CRYPTO),
    (Op::OboCached, "verify/obo_layer_cached", BATCH_CHEAP),
    (Op::Reuse, "client/token_for_reused", BATCH_CHEAP),
    (Op::OboReuse, "client/token_for_user_reused", BATCH_CHEAP),
];

impl Op {
    fn what(self) -> &'static str {
        match self {
            Op::RawEncode => "`jsonwebtoken::encode`, ES256, ready header, claims and key",
            Op::Issue => "`Auth::plugin_token(\"catalog\")`",
            Op::RawEncodeObo => "`jsonwebtoken::encode` as above, the claims with `obo`",
            Op::IssueObo => "`Auth::on_behalf_of_token(&jane, \"catalog\")`, delegated form",
            Op::RawDecode => "`jsonwebtoken::decode`, ES256, ready key and `Validation`",
            Op::NoAuth => "the handler, no layer (same request and header)",
            Op::Fresh => "request through the layer, verified-token cache off",
            Op::Cached => "request through the layer, verified-token cache on, same token",
            Op::RawDecodeObo => {
                "2 × `jsonwebtoken::decode`: the obo token, then the limited token in its `obo`"
            }
            Op::OboFresh => "obo token through the layer, verified-token cache off",
            Op::OboCached => "obo token through the layer, verified-token cache on, same token",
            Op::Reuse => "`S2sClient::token_for(None, \"catalog\")`, token already held",
            Op::OboReuse => "`S2sClient::token_for(Some(&jane), \"catalog\")`, token already held",
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

/// Per-operation nanoseconds of every op in every round (`[op][round]`): each round times a
/// batch of every op, round-robin (see [`report::round_robin`]).
fn paired(rt: &Runtime, f: &Fixtures) -> Vec<Vec<f64>> {
    report::round_robin(PAIRED_ROUNDS, OPS.len(), |k| {
        let (op, _, n) = OPS[k];
        rt.block_on(async {
            let start = Instant::now();
            for _ in 0..n {
                black_box(f.run(op).await.is_ok());
            }
            start.elapsed().as_secs_f64() * 1e9 / f64::from(n)
        })
    })
}

/// `metric` of each round's per-op times, summarized over rounds.
fn figure(times: &[Vec<f64>], metric: impl Fn(&dyn Fn(Op) -> f64) -> f64) -> Figure {
    Figure::of(
        (0..PAIRED_ROUNDS)
            .map(|r| metric(&|op: Op| times[op as usize][r]))
            .collect(),
    )
}

fn main() {
    let started = SystemTime::now();
    let rt = report::runtime();
    let fixtures = Fixtures::new(&rt);
    let mut c = report::criterion(3, 50);
    benches(&mut c, &rt, &fixtures);
    c.final_summary();
    if report::is_full_run() {
        summary::write(started, &rt, &fixtures);
    }
}
