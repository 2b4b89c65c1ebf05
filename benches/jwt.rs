//! Benchmarks of JWT verification, all run side by side in one process (cargo feature
//! `jwks-client-rs`):
//!
//! - `raw`: `jsonwebtoken::decode` with a ready `DecodingKey` and `Validation` (the same
//!   checks the layer makes), for RS256, ES256 and EdDSA;
//! - `request/no_auth`: the same request to the same handler, no layer;
//! - `raw_then_request`: raw decode, then the no-auth request, in one iteration: the layer's
//!   request set against `jsonwebtoken::decode` with the same request around both (issue 11);
//! - `floor_request`: the same request through a hand-written `jsonwebtoken::decode`
//!   middleware (the load bench's floor), the control for subtracting the request;
//! - `layer_fresh`: the request through the layer, the verified-token cache off, so every
//!   request verifies the token (the JWKS is cached: no fetch is timed);
//! - `layer_fresh_crate_fetcher`: the same with `JwksClientRsFetcher` fetching the keys;
//! - `layer_cached`: the layer with its default verified-token cache, ES256;
//! - `jwks_client_rs`: `jwks_client_rs::JwksClient::decode` on the same tokens.
//!
//! All keys are generated at start and served by one in-process JWKS server that counts
//! its requests. After criterion, a full run measures each comparison again with a paired,
//! interleaved check, sends a storm of tokens with random unknown `kid`s to each contender
//! and counts the key fetches, and checks a few behaviours of `jwks_client_rs` that matter
//! when choosing a fetcher. Then it rewrites its section of `BENCHMARKS.md` (see `report`
//! and the `summary` module). The other modules, in `benches/jwt/`: `fixture` (keys, the
//! JWKS server, the layers and clients), `sides` (what is timed, and the paired checks),
//! `contenders` (what the storms and behaviour checks are sent to), `storm` and
//! `behaviours`.
//! `cargo test --features jwks-client-rs --benches` runs each routine once, and a storm of
//! 20 tokens, and writes nothing.

// Not every bench uses every helper.
#[allow(dead_code)]
mod report;

// Keys and the key server, shared with the tests.
#[path = "../tests/kit/mod.rs"]
mod kit;

// The crate root resolves `mod` paths next to itself (`benches/`): these live in
// `benches/jwt/`.
#[path = "jwt/behaviours.rs"]
mod behaviours;
#[path = "jwt/contenders.rs"]
mod contenders;
#[path = "jwt/fixture.rs"]
mod fixture;
#[path = "jwt/sides.rs"]
mod sides;
#[path = "jwt/storm.rs"]
mod storm;
#[path = "jwt/summary.rs"]
mod summary;

use std::hint::black_box;
use std::time::SystemTime;

use criterion::Criterion;
use jsonwebtoken::{Algorithm, Validation};
use s2s_auth::AuthBuilder;
use s2s_auth::secret::Fingerprint;
use tokio::runtime::Runtime;

use behaviours::behaviours;
use fixture::{ALGS, AUDIENCE, Alg, Fixtures, ISSUER};
use storm::{SMOKE_STORM_TOKENS, storms};

/// The limit on the layer's fresh verification over raw `jsonwebtoken::decode`.
const FRESH_LIMIT: f64 = 1.10;
/// Issue 11: the layer's fresh verification at most as costly as `jsonwebtoken::decode`.
const DECODE_LIMIT: f64 = 1.00;
/// The least speed-up of a cached verification over a fresh ES256 one.
const CACHED_LIMIT: f64 = 20.0;

// ---------------------------------------------------------------------------------------
// Criterion groups
// ---------------------------------------------------------------------------------------

fn benches(c: &mut Criterion, rt: &Runtime, f: &Fixtures) {
    let mut group = c.benchmark_group("raw");
    for a in &f.algs {
        f.raw(a).bench(&mut group, rt, a.alg.id());
    }
    group.finish();

    let mut group = c.benchmark_group("request");
    f.no_auth(f.alg(Alg::Es256))
        .bench(&mut group, rt, "no_auth");
    group.finish();

    let mut group = c.benchmark_group("floor_request");
    for a in &f.algs {
        f.floor(a).bench(&mut group, rt, a.alg.id());
    }
    group.finish();

    let mut group = c.benchmark_group("raw_then_request");
    for a in &f.algs {
        f.raw_then_request(a).bench(&mut group, rt, a.alg.id());
    }
    group.finish();

    let mut group = c.benchmark_group("layer_fresh");
    for a in &f.algs {
        f.layer_fresh(a).bench(&mut group, rt, a.alg.id());
    }
    group.finish();

    let mut group = c.benchmark_group("layer_fresh_crate_fetcher");
    for a in &f.algs {
        f.layer_fresh_crate(a).bench(&mut group, rt, a.alg.id());
    }
    group.finish();

    let mut group = c.benchmark_group("layer_cached");
    f.layer_cached(f.alg(Alg::Es256))
        .bench(&mut group, rt, "es256");
    group.finish();

    let mut group = c.benchmark_group("jwks_client_rs");
    for a in &f.algs {
        f.jwks_client_rs(a).bench(&mut group, rt, a.alg.id());
    }
    group.finish();

    components(c, f);

    // The first bench again, a minute later: how far apart criterion puts one measurement
    // taken twice in this run.
    let mut group = c.benchmark_group("repeat");
    f.raw(f.alg(Alg::Es256)).bench(&mut group, rt, "raw_es256");
    group.finish();
}

/// The `Validation` the layer builds for every fresh verification: the same calls, in the
/// same order, as its verifier (`src/external_jwks.rs`, `JwksVerifier::finish`).
fn layer_validation(alg: Algorithm, issuers: &[String], audiences: &[String]) -> Validation {
    let mut validation = Validation::new(alg);
    validation.leeway = AuthBuilder::DEFAULT_LEEWAY_SECS;
    validation.validate_nbf = true;
    let mut required = vec!["exp", "sub"];
    validation.set_issuer(issuers);
    required.push("iss");
    validation.set_audience(audiences);
    required.push("aud");
    validation.set_required_spec_claims(&required);
    validation
}

/// Parts of the layer's per-request work that the public API lets us time alone.
fn components(c: &mut Criterion, f: &Fixtures) {
    let mut group = c.benchmark_group("components");
    for a in &f.algs {
        let token = a.token.as_bytes();
        group.bench_function(format!("sha256_{}", a.alg.id()), |b| {
            b.iter(|| aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, black_box(token)));
        });
        group.bench_function(format!("fingerprint_{}", a.alg.id()), |b| {
            // The layer fingerprints the digest it already has, not the token again.
            let digest = report::sha256(token);
            b.iter(|| Fingerprint::of_digest(black_box(&digest)));
        });
    }
    let issuers = vec![ISSUER.to_owned()];
    let audiences = vec![AUDIENCE.to_owned()];
    group.bench_function("validation", |b| {
        b.iter(|| layer_validation(black_box(Algorithm::ES256), &issuers, &audiences));
    });
    group.finish();
}

/// Every criterion bench, in the order of [`benches`], and what it measures.
fn bench_list(f: &Fixtures) -> Vec<(String, String)> {
    let mut list = Vec::new();
    for alg in ALGS {
        list.push((
            format!("raw/{}", alg.id()),
            format!(
                "`jsonwebtoken::decode`, {} ({}), ready key and `Validation`",
                alg.name(),
                alg.key_type()
            ),
        ));
    }
    list.push((
        "request/no_auth".to_owned(),
        "the handler, no layer (same request and header)".to_owned(),
    ));
    for alg in ALGS {
        list.push((
            format!("floor_request/{}", alg.id()),
            format!(
                "the request through a `jsonwebtoken::decode` middleware (the load bench's \
                 floor), {}",
                alg.name()
            ),
        ));
    }
    for alg in ALGS {
        list.push((
            format!("raw_then_request/{}", alg.id()),
            format!(
                "`jsonwebtoken::decode` as in raw, then the no-auth request, in one \
                 iteration, {}",
                alg.name()
            ),
        ));
    }
    for alg in ALGS {
        list.push((
            format!("layer_fresh/{}", alg.id()),
            format!(
                "request through the layer, {}, verified-token cache off",
                alg.name()
            ),
        ));
    }
    for alg in ALGS {
        list.push((
            format!("layer_fresh_crate_fetcher/{}", alg.id()),
            format!(
                "the same, keys fetched by `JwksClientRsFetcher`, {}",
                alg.name()
            ),
        ));
    }
    list.push((
        "layer_cached/es256".to_owned(),
        "request through the layer, ES256, default verified-token cache (same token)".to_owned(),
    ));
    for alg in ALGS {
        list.push((
            format!("jwks_client_rs/{}", alg.id()),
            format!("`JwksClient::decode`, {}", alg.name()),
        ));
    }
    for a in &f.algs {
        let len = a.token.len();
        list.push((
            format!("components/sha256_{}", a.alg.id()),
            format!(
                "SHA-256 of the {len}-byte {} token (a static or service-account lookup's key; \
                 a JWT is hashed only for an audit event that is built)",
                a.alg.name()
            ),
        ));
        list.push((
            format!("components/fingerprint_{}", a.alg.id()),
            format!(
                "fingerprint of the {len}-byte {} token's digest (keyed SHA-256, audit event)",
                a.alg.name()
            ),
        ));
    }
    list.push((
        "components/validation".to_owned(),
        "building the layer's `Validation` (one issuer, one audience)".to_owned(),
    ));
    list.push((
        "repeat/raw_es256".to_owned(),
        "`raw/es256` again, benched last: this run's criterion noise".to_owned(),
    ));
    list
}

// ---------------------------------------------------------------------------------------
// main
// ---------------------------------------------------------------------------------------

fn main() {
    let started = SystemTime::now();
    let rt = report::runtime();
    let fixtures = Fixtures::new(&rt);
    let mut c = report::criterion(3, 50);
    benches(&mut c, &rt, &fixtures);
    c.final_summary();

    if report::is_full_run() {
        summary::write(started, &rt, &fixtures);
    } else {
        // A smoke test of the storm and the behaviour checks: nothing is written.
        let storms = storms(&rt, &fixtures, SMOKE_STORM_TOKENS);
        let _ = behaviours(&rt, &fixtures, &storms);
    }
}
