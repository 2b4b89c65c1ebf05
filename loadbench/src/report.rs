//! `loadbench report`: reads run.sh's measurements (a TSV, one line per server run), takes
//! the median over rounds of each figure, and writes the Markdown between
//! `<!-- bench:load:begin -->` and `<!-- bench:load:end -->` in `BENCHMARKS.md` (adding a
//! "Load benchmark (wrk)" section with the markers at the end when they are absent), and to
//! stdout.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;

use crate::Result;
use crate::args::Args;

const BEGIN: &str = "<!-- bench:load:begin -->";
const END: &str = "<!-- bench:load:end -->";
const ALGS: [&str; 2] = ["ES256", "RS256"];

/// The scenarios in report order, with what each one sends.
const SCENARIOS: [(&str, &str); 4] = [
    (
        "repeated",
        "One token on every request; after the warm-up the layer's cache holds it",
    ),
    (
        "distinct",
        "10,000 distinct tokens, cycled; the layer's default cache (50,000 entries) holds them all after the warm-up",
    ),
    (
        "shift",
        "The layer warmed with 10,000 ES256 tokens (one wrk run, not measured), then 10,000 new RS256 tokens measured in the same process",
    ),
    (
        "overflow",
        "20,000 distinct tokens, cycled through a 10,000-entry cache",
    ),
];

/// Server ids as run.sh writes them, with what they are.
const SERVERS: [(&str, &str); 7] = [
    ("noauth", "axum, no authentication"),
    ("floor", "floor: `jsonwebtoken::decode`, ready keys"),
    ("layer", "s2s-auth layer, default cache"),
    (
        "layer-outer",
        "s2s-auth layer around the router (`auth.layer().layer(router)`), default cache",
    ),
    ("layer-cache-10k", "s2s-auth layer, cache 10,000"),
    ("layer-cache-off", "s2s-auth layer, cache off"),
    (
        "tower-oauth2-resource-server",
        "tower-oauth2-resource-server 0.12",
    ),
];

/// A ratio the issue sets a target for: req/s of `over` ÷ req/s of `under`.
struct Target {
    scenario: &'static str,
    what: &'static str,
    over: &'static str,
    under: &'static str,
    at_least: f64,
}

const TARGETS: [Target; 5] = [
    Target {
        scenario: "repeated",
        what: "repeated: layer (default cache) ÷ noauth",
        over: "layer",
        under: "noauth",
        at_least: 0.85,
    },
    Target {
        scenario: "repeated",
        what: "repeated: layer around the router (default cache) ÷ noauth",
        over: "layer-outer",
        under: "noauth",
        at_least: 0.85,
    },
    Target {
        scenario: "distinct",
        what: "distinct: layer (cache off) ÷ floor",
        over: "layer-cache-off",
        under: "floor",
        at_least: 1.00,
    },
    Target {
        scenario: "shift",
        what: "shift: layer (cache 10,000) ÷ layer (cache off)",
        over: "layer-cache-10k",
        under: "layer-cache-off",
        at_least: 2.0,
    },
    Target {
        scenario: "overflow",
        what: "overflow: layer (cache 10,000) ÷ layer (cache off)",
        over: "layer-cache-10k",
        under: "layer-cache-off",
        at_least: 0.97,
    },
];

/// The rounds of one (scenario, algorithm, server).
#[derive(Default)]
struct Runs {
    /// The round of each run, in the order of the figures below.
    rounds: Vec<u32>,
    rps: Vec<f64>,
    p99_us: Vec<f64>,
    cpu_us: Vec<f64>,
}

impl Runs {
    fn rps(&self) -> f64 {
        median(&self.rps)
    }
    fn cpu(&self) -> f64 {
        median(&self.cpu_us)
    }
    fn rps_in(&self, round: u32) -> Option<f64> {
        let i = self.rounds.iter().position(|&r| r == round)?;
        Some(self.rps[i])
    }
}

/// The per-round ratios of `over`'s req/s to `under`'s, for the rounds both ran in. Within
/// a round the two ran one right after the other, so a slow minute on a shared machine
/// slows both and mostly cancels out of the ratio.
fn paired(over: &Runs, under: &Runs) -> Vec<f64> {
    over.rounds
        .iter()
        .filter_map(|&r| Some(over.rps_in(r)? / under.rps_in(r)?))
        .collect()
}

type Key = (String, String, String);

pub(crate) fn run(args: &mut Args) -> Result<()> {
    let results = args.required("--results")?;
    let benchmarks = args.required("--benchmarks")?;
    let info = args.all("--info")?;
    args.finish()?;

    let runs = read(&results)?;
    let section = render(&runs, &info);
    let current = fs::read_to_string(&benchmarks)?;
    fs::write(&benchmarks, splice(&current, &section)?)?;
    println!("{section}");
    println!("loadbench: wrote the load section of {benchmarks}");
    Ok(())
}

fn read(path: &str) -> Result<BTreeMap<Key, Runs>> {
    let mut runs: BTreeMap<Key, Runs> = BTreeMap::new();
    for (n, line) in fs::read_to_string(path)?.lines().enumerate() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split('\t').collect();
        let [round, scenario, alg, server, rps, p99, cpu, _requests] = fields[..] else {
            return Err(format!("{path}:{}: expected 8 tab-separated fields", n + 1).into());
        };
        let entry = runs
            .entry((scenario.to_owned(), alg.to_owned(), server.to_owned()))
            .or_default();
        entry.rounds.push(round.parse()?);
        entry.rps.push(rps.parse()?);
        entry.p99_us.push(p99.parse()?);
        entry.cpu_us.push(cpu.parse()?);
    }
    Ok(runs)
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => sorted[n / 2],
        _ => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

fn label(server: &str) -> &str {
    SERVERS
        .iter()
        .find(|(id, _)| *id == server)
        .map_or(server, |(_, label)| label)
}

fn get<'a>(
    runs: &'a BTreeMap<Key, Runs>,
    scenario: &str,
    alg: &str,
    server: &str,
) -> Option<&'a Runs> {
    runs.get(&(scenario.to_owned(), alg.to_owned(), server.to_owned()))
}

fn render(runs: &BTreeMap<Key, Runs>, info: &[String]) -> String {
    let mut md = String::new();
    md.push_str(
        "_Written by `loadbench/run.sh` (see [loadbench/README.md](loadbench/README.md)); do not edit by hand. \
         Each figure is the median over the rounds; rounds are interleaved (every server once, then every server again)._\n\n",
    );
    for line in info {
        let _ = writeln!(md, "- {line}");
    }

    md.push_str("\n### Targets\n\n");
    md.push_str(
        "Three readings of each ratio. **req/s ratio**: of the medians of req/s. **paired**: \
         the median over rounds of the ratio within each round, where the two servers ran one \
         right after the other (the range over rounds beside it), so a slow minute on a \
         shared machine, which slows both, mostly cancels. **CPU ratio**: the same comparison \
         by the server's CPU time per request (the under-server's µs ÷ the over-server's), \
         which holds even where something besides the server's own work limits throughput \
         (wrk, or other jobs on the server's core). The verdict is PASS when the req/s ratio \
         and the paired ratio both meet the target, MISS when neither does, and MIXED \
         otherwise (the difference is then within this run's noise).\n\n",
    );
    md.push_str(
        "| ratio | alg | req/s ratio | paired | paired range | CPU ratio | target | verdict |\n\
         |---|---|---:|---:|---:|---:|---:|---|\n",
    );
    for target in &TARGETS {
        for alg in ALGS {
            let (Some(over), Some(under)) = (
                get(runs, target.scenario, alg, target.over),
                get(runs, target.scenario, alg, target.under),
            ) else {
                continue;
            };
            let ratio = over.rps() / under.rps();
            let per_round = paired(over, under);
            let pair = median(&per_round);
            let low = per_round.iter().copied().fold(f64::INFINITY, f64::min);
            let high = per_round.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let cpu_ratio = under.cpu() / over.cpu();
            let verdict = match (ratio >= target.at_least, pair >= target.at_least) {
                (true, true) => "PASS",
                (false, false) => "MISS",
                _ => "MIXED",
            };
            let _ = writeln!(
                md,
                "| {} | {alg} | {ratio:.3} | {pair:.3} | {low:.3} – {high:.3} | {cpu_ratio:.3} | ≥ {:.2} | **{verdict}** |",
                target.what, target.at_least
            );
        }
    }

    for (scenario, what) in SCENARIOS {
        let rows: Vec<_> = runs.iter().filter(|((s, _, _), _)| s == scenario).collect();
        if rows.is_empty() {
            continue;
        }
        let _ = write!(
            md,
            "\n### `{scenario}`\n\n{what}.\n\n\
             | alg | server | req/s | p99 ms | CPU µs/request | req/s per round |\n\
             |---|---|---:|---:|---:|---|\n"
        );
        // Report order: by algorithm, then servers in the order of SERVERS.
        for alg in ALGS {
            for (server, _) in SERVERS {
                let Some(r) = get(runs, scenario, alg, server) else {
                    continue;
                };
                let rounds: Vec<String> = r.rps.iter().map(|v| format!("{v:.0}")).collect();
                let _ = writeln!(
                    md,
                    "| {alg} | {} | {:.0} | {:.2} | {:.1} | {} |",
                    label(server),
                    r.rps(),
                    median(&r.p99_us) / 1000.0,
                    r.cpu(),
                    rounds.join(" / ")
                );
            }
        }
    }
    md
}

/// `current` with the text between the markers replaced by `section`; the markers (in a new
/// section at the end) added when absent.
fn splice(current: &str, section: &str) -> Result<String> {
    match (current.find(BEGIN), current.find(END)) {
        (Some(begin), Some(end)) if begin < end => {
            let head = &current[..begin + BEGIN.len()];
            let tail = &current[end..];
            Ok(format!("{head}\n\n{section}\n{tail}"))
        }
        (None, None) => {
            let mut out = current.trim_end().to_owned();
            let _ = write!(
                out,
                "\n\n## Load benchmark (wrk)\n\n{BEGIN}\n\n{section}\n{END}\n"
            );
            Ok(out)
        }
        _ => Err(
            format!("BENCHMARKS.md: {BEGIN} and {END} must both be there, in that order").into(),
        ),
    }
}
