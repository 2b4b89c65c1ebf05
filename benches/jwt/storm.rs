//! The random-kid storm: tokens with unknown `kid`s sent to each contender, sequentially,
//! some in flight, or all at once, counting the JWKS fetches they cause.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use tokio::runtime::Runtime;

use crate::contenders::{Contender, Target};
use crate::fixture::{Alg, Fixtures, ISSUER, sign};
use crate::kit::random_hex;

/// Tokens with a random unknown `kid` sent in each storm (a full run; a smoke test sends 20).
pub const STORM_TOKENS: usize = 10_000;
/// Tokens in flight at once in the [`Mode::InFlight`] storms.
pub const STORM_IN_FLIGHT: usize = 100;
pub const SMOKE_STORM_TOKENS: usize = 20;

/// A fresh random `kid` nobody publishes.
pub fn random_kid() -> String {
    format!("storm-{}", random_hex(16))
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// One token after the other, each awaited.
    Sequential,
    /// [`STORM_IN_FLIGHT`] tokens in flight at any time, each as its own task: the next is
    /// sent as soon as one is answered.
    InFlight,
    /// Every token spawned at once as its own task, before any is answered.
    Burst,
}

impl Mode {
    pub fn what(self) -> &'static str {
        match self {
            Mode::Sequential => "sequential",
            Mode::InFlight => "100 in flight",
            Mode::Burst => "burst",
        }
    }

    pub fn slug(self) -> &'static str {
        match self {
            Mode::Sequential => "sequential",
            Mode::InFlight => "in-flight",
            Mode::Burst => "burst",
        }
    }
}

/// The storm contenders, built and warmed at start (one fetch each), so that when the storms
/// run after the timed benches each has held its keys for longer than the 30 s cooldown:
/// a service that has been up for a while, attacked.
pub struct StormCase {
    pub contender: Contender,
    pub mode: Mode,
    pub tenant: String,
    pub target: Target,
    pub warmed_at: Instant,
}

/// One storm: its contender and mode, the fetches it caused and what the tokens got.
pub struct StormResult {
    pub contender: Contender,
    pub mode: Mode,
    pub tokens: usize,
    pub fetches: usize,
    pub wall: Duration,
    /// How long the contender had held its keys (since its warm-up fetch) when the storm began.
    pub since_warm: Duration,
    pub outcomes: BTreeMap<String, usize>,
    /// A valid token right after the storm: its outcome, and the fetches it caused.
    pub valid_after: String,
    pub fetches_after: usize,
}

pub fn storms(rt: &Runtime, f: &Fixtures, n: usize) -> Vec<StormResult> {
    let es = f.alg(Alg::Es256);
    println!("Random-kid storms: signing {n} tokens with unknown kids…");
    let tokens: Vec<String> = (0..n)
        .map(|_| sign(&es.key, &random_kid(), ISSUER))
        .collect();
    f.storms
        .iter()
        .map(|case| {
            let count = || f.server.document_hits(&case.tenant, "jwks.json");
            let before = count();
            let since_warm = case.warmed_at.elapsed();
            let start = Instant::now();
            let outcomes: Vec<String> = rt.block_on(async {
                match case.mode {
                    Mode::Sequential => {
                        let mut out = Vec::with_capacity(n);
                        for t in &tokens {
                            out.push(case.target.outcome(t).await);
                        }
                        out
                    }
                    Mode::InFlight => {
                        let mut set = tokio::task::JoinSet::new();
                        let mut rest = tokens.iter();
                        for t in rest.by_ref().take(STORM_IN_FLIGHT) {
                            set.spawn(case.target.outcome(t));
                        }
                        let mut out = Vec::with_capacity(n);
                        while let Some(o) = set.join_next().await {
                            out.push(o.unwrap_or_else(|e| format!("task failed: {e}")));
                            if let Some(t) = rest.next() {
                                set.spawn(case.target.outcome(t));
                            }
                        }
                        out
                    }
                    Mode::Burst => {
                        let mut set = tokio::task::JoinSet::new();
                        for t in &tokens {
                            set.spawn(case.target.outcome(t));
                        }
                        let mut out = Vec::with_capacity(n);
                        while let Some(o) = set.join_next().await {
                            out.push(o.unwrap_or_else(|e| format!("task failed: {e}")));
                        }
                        out
                    }
                }
            });
            let wall = start.elapsed();
            let fetches = count() - before;
            let valid_after = rt.block_on(case.target.outcome(&es.token));
            let fetches_after = count() - before - fetches;
            let mut tally = BTreeMap::new();
            for o in outcomes {
                *tally.entry(o).or_insert(0) += 1;
            }
            println!(
                "  {} ({}): {fetches} fetches for {n} tokens in {:.2} s",
                case.contender.what(),
                case.mode.what(),
                wall.as_secs_f64()
            );
            StormResult {
                contender: case.contender,
                mode: case.mode,
                tokens: n,
                fetches,
                wall,
                since_warm,
                outcomes: tally,
                valid_after,
                fetches_after,
            }
        })
        .collect()
}
