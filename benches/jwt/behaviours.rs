//! Behaviours of `jwks_client_rs` that matter when choosing a fetcher, measured on the three
//! contenders.

use tokio::runtime::Runtime;

use crate::contenders::{CONTENDERS, Target, label};
use crate::fixture::{Alg, Fixtures, sign};
use crate::storm::StormResult;

/// One behaviour, measured on the three contenders.
pub struct Behaviour {
    pub what: &'static str,
    pub source: &'static str,
    /// Built-in fetcher, `JwksClientRsFetcher`, `JwksClient::decode`.
    pub results: [String; 3],
}

/// What happens to a valid ES256 token when each contender, cold, takes its keys from
/// `doc`; with the fetches each made.
pub fn cold_outcomes(rt: &Runtime, f: &Fixtures, doc: &str, token: &str) -> [String; 3] {
    CONTENDERS.map(|contender| {
        let tenant = format!("check-{}", contender.slug());
        let before = f.server.total_hits();
        let outcome = rt
            .block_on(Target::new(contender, &f.server.document_url(&tenant, doc)).outcome(token));
        let fetches = f.server.total_hits() - before;
        format!(
            "{} ({fetches} fetch{})",
            label(&outcome),
            if fetches == 1 { "" } else { "es" }
        )
    })
}

pub fn behaviours(rt: &Runtime, f: &Fixtures, storms: &[StormResult]) -> Vec<Behaviour> {
    println!("Behaviour checks…");
    let es = f.alg(Alg::Es256);
    let storm_counts = CONTENDERS.map(|c| {
        storms
            .iter()
            .filter(|s| s.contender == c)
            .map(|s| format!("{} / {} ({})", s.fetches, s.tokens, s.mode.what()))
            .collect::<Vec<_>>()
            .join("; ")
    });
    let wrong_issuer = sign(&es.key, &Alg::Es256.kid(), "https://someone-else.example");
    let iss = [
        label(&rt.block_on(Target::Layer(f.fresh.clone()).outcome(&wrong_issuer))),
        label(&rt.block_on(Target::Layer(f.fresh_crate.clone()).outcome(&wrong_issuer))),
        label(&rt.block_on(Target::Client(f.client.clone()).outcome(&wrong_issuer))),
    ];
    let rows = vec![
        Behaviour {
            what: "a token with an unknown `kid`: JWKS fetches per storm (fetches / tokens)",
            source: "`cache.rs`: `get_or_refresh` calls `try_refresh` on every cache miss; no cooldown",
            results: storm_counts,
        },
        Behaviour {
            what: "a 2 MiB JWKS (the three keys and a 2 MiB `padding` member), a valid token",
            source: "`source.rs`: `fetch_keys` reads the body with `.json().await`, no size limit",
            results: cold_outcomes(rt, f, "big.json", &es.token),
        },
        Behaviour {
            what: "the three keys and one `kty: oct` key, a valid token",
            source: "`keyset.rs`: `JsonWebKey` is a serde enum tagged by `kty` with only RSA, EC, OKP; one unknown key fails the set",
            results: cold_outcomes(rt, f, "with-oct.json", &es.token),
        },
        Behaviour {
            what: "the three keys and one EC key without `kid`, a valid token",
            source: "`keyset.rs`: `key_id: String`, required in every key",
            results: cold_outcomes(rt, f, "with-kidless.json", &es.token),
        },
        Behaviour {
            what: "the JWKS URL answers 307 to the real JWKS",
            source: "`source.rs`: `reqwest::ClientBuilder::default()`, whose redirect policy follows up to 10",
            results: cold_outcomes(rt, f, "redirect.json", &es.token),
        },
        Behaviour {
            what: "a validly signed token from another issuer (known `kid`)",
            source: "`client.rs`: `decode` sets only the audience on its `Validation`; `iss` is never checked",
            results: iss,
        },
    ];
    for b in &rows {
        println!("  {}: {}", b.what, b.results.join(" | "));
    }
    rows
}
