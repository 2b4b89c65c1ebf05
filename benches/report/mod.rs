//! What every bench binary needs to report: criterion's estimates of this run, paired
//! checks and their figures, the machine, number formatting, the tables every section has,
//! and writing its own section of `BENCHMARKS.md`; and, in [`request`], the request every
//! request bench sends.
//!
//! `BENCHMARKS.md` has a short shared header, then one section per bench binary, each
//! between `<!-- bench:NAME:begin -->` and `<!-- bench:NAME:end -->`. A bench replaces
//! only its own section, in place, so each section's figures come from one run of its bench
//! and hand-written text outside the markers (a before/after comparison) stays.
//! Included by each bench with `mod report;`.

pub mod request;

use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The sections, in the order they appear in the file, and how to regenerate each.
const SECTIONS: [(&str, &str); 4] = [
    ("layer", "cargo bench --bench layer"),
    ("jwt", "cargo bench --features jwks-client-rs --bench jwt"),
    ("plugin", "cargo bench --bench plugin"),
    ("service_accounts", "cargo bench --bench service_accounts"),
];

/// The runtime every bench runs its requests on: tokio, current thread, timers on.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("invariant: a tokio runtime can be built")
}

/// Criterion as the benches use it: 1 s warm-up, `measure_secs` of `samples` samples, no
/// plots, and the command line's filters.
pub fn criterion(measure_secs: u64, samples: usize) -> criterion::Criterion {
    criterion::Criterion::default()
        .warm_up_time(std::time::Duration::from_secs(1))
        .measurement_time(std::time::Duration::from_secs(measure_secs))
        .sample_size(samples)
        .without_plots()
        .configure_from_args()
}

/// Whether this is a full `cargo bench` run. Criterion gets `--bench` from `cargo bench`;
/// without it (`cargo test --benches`) each routine ran once, untimed, and there is nothing
/// to report.
pub fn is_full_run() -> bool {
    std::env::args().any(|a| a == "--bench") && !std::env::args().any(|a| a == "--test")
}

/// Criterion's estimates of one bench, in nanoseconds.
#[derive(Clone, Copy, Debug)]
pub struct Estimate {
    pub mean: f64,
    pub mean_low: f64,
    pub mean_high: f64,
    pub median: f64,
}

/// Where criterion writes, by criterion's own rules: `$CRITERION_HOME`, else
/// `$CARGO_TARGET_DIR/criterion`, else the target directory `cargo metadata` names.
fn criterion_dir() -> PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return PathBuf::from(home);
    }
    if let Some(target) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(target).join("criterion");
    }
    let from_metadata = std::env::var_os("CARGO").and_then(|cargo| {
        let out = std::process::Command::new(cargo)
            .args(["metadata", "--format-version", "1", "--no-deps"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .ok()?;
        let meta: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        Some(PathBuf::from(meta["target_directory"].as_str()?))
    });
    from_metadata
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
        .join("criterion")
}

/// The estimates of `bench` (`group/name`), if criterion wrote them during this run.
fn read(dir: &Path, bench: &str, started: SystemTime) -> Result<Estimate, String> {
    let path = dir.join(bench).join("new").join("estimates.json");
    let fresh = std::fs::metadata(&path)
        .and_then(|m| m.modified())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if fresh < started {
        return Err(format!("{} predates this run", path.display()));
    }
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let num = |ptr: &str| {
        json.pointer(ptr)
            .and_then(serde_json::Value::as_f64)
            .ok_or_else(|| format!("{}: no {ptr}", path.display()))
    };
    Ok(Estimate {
        mean: num("/mean/point_estimate")?,
        mean_low: num("/mean/confidence_interval/lower_bound")?,
        mean_high: num("/mean/confidence_interval/upper_bound")?,
        median: num("/median/point_estimate")?,
    })
}

/// The estimates of every bench in `benches`, in order, all written during this run (an
/// error names the first missing or stale one).
pub fn read_all<'a>(
    benches: impl IntoIterator<Item = &'a str>,
    started: SystemTime,
) -> Result<Vec<Estimate>, String> {
    let dir = criterion_dir();
    benches
        .into_iter()
        .map(|bench| read(&dir, bench, started))
        .collect()
}

/// The estimates of every bench in `benches`, as [`read_all`], or `None` after saying on
/// stderr why section `name` of `BENCHMARKS.md` is not written (a filtered run).
pub fn estimates_of_this_run<'a>(
    name: &str,
    benches: impl IntoIterator<Item = &'a str>,
    started: SystemTime,
) -> Option<Vec<Estimate>> {
    match read_all(benches, started) {
        Ok(est) => Some(est),
        Err(why) => {
            let command = SECTIONS
                .iter()
                .find(|(n, _)| *n == name)
                .map_or("cargo bench", |(_, command)| command);
            eprintln!(
                "BENCHMARKS.md not written: every bench must run in the same invocation \
                 ({why}). Run `{command}` without a filter."
            );
            None
        }
    }
}

/// Per-operation nanoseconds of every side in every round (`[side][round]`), each from
/// `time(side)`: `rounds` rounds after one warm-up round, each timing every side once,
/// starting at the next side each round (round-robin), so that load from other processes,
/// which comes and goes over seconds, falls on every side of a round alike.
pub fn round_robin(
    rounds: usize,
    sides: usize,
    mut time: impl FnMut(usize) -> f64,
) -> Vec<Vec<f64>> {
    let mut times = vec![Vec::with_capacity(rounds); sides];
    for round in 0..=rounds {
        for i in 0..sides {
            let side = (round + i) % sides;
            let t = time(side);
            // Round 0 warms up.
            if round > 0 {
                times[side].push(t);
            }
        }
    }
    times
}

/// A paired figure: the median over rounds, and the interquartile range.
#[derive(Clone, Copy)]
pub struct Figure {
    pub median: f64,
    pub p25: f64,
    pub p75: f64,
}

impl Figure {
    /// The figure of one value per round.
    pub fn of(mut per_round: Vec<f64>) -> Self {
        let median = median(&mut per_round);
        let q = |p: f64| per_round[((per_round.len() - 1) as f64 * p).round() as usize];
        Self {
            median,
            p25: q(0.25),
            p75: q(0.75),
        }
    }

    /// The interquartile range, `p25 – p75`, each formatted by `fmt`.
    pub fn iqr(self, fmt: fn(f64) -> String) -> String {
        format!("{} – {}", fmt(self.p25), fmt(self.p75))
    }
}

fn file(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// CPU model, logical CPUs, memory, kernel, compiler and `profile` (how the bench ran).
fn machine(profile: &str) -> Vec<(&'static str, String)> {
    let cpuinfo = file("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or_else(|| "unknown".to_owned(), |(_, v)| v.trim().to_owned());
    let cpus = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    let usable = std::thread::available_parallelism().map_or(0, usize::from);
    let memory = file("/proc/meminfo")
        .and_then(|m| {
            let kib: f64 = m
                .lines()
                .find(|l| l.starts_with("MemTotal:"))?
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            Some(format!("{:.1} GiB", kib / 1024.0 / 1024.0))
        })
        .unwrap_or_else(|| "unknown".to_owned());
    let kernel = file("/proc/sys/kernel/osrelease")
        .map_or_else(|| "unknown".to_owned(), |k| k.trim().to_owned());
    let rustc =
        std::process::Command::new(std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into()))
            .arg("-V")
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map_or_else(
                || "unknown".to_owned(),
                |o| String::from_utf8_lossy(&o.stdout).trim().to_owned(),
            );
    vec![
        (
            "CPU",
            format!(
                "{model}, {cpus} logical CPUs in /proc/cpuinfo, {usable} usable by this process"
            ),
        ),
        ("Memory", memory),
        (
            "OS",
            format!(
                "{} {} (Linux {kernel})",
                std::env::consts::OS,
                std::env::consts::ARCH
            ),
        ),
        ("Compiler", rustc),
        ("Profile", profile.to_owned()),
    ]
}

/// The `### Machine` section: [`machine`] as a list.
pub fn machine_section(profile: &str) -> String {
    let mut md = String::from("### Machine\n\n");
    for (k, v) in machine(profile) {
        md.push_str(&format!("- **{k}:** {v}\n"));
    }
    md
}

/// The current time, `2026-01-31 12:34 UTC`.
pub fn now_utc() -> String {
    time::OffsetDateTime::now_utc()
        .format(time::macros::format_description!(
            "[year]-[month]-[day] [hour]:[minute] UTC"
        ))
        .unwrap_or_else(|_| "unknown".to_owned())
}

/// Nanoseconds: no decimals from 100 on, one below.
pub fn ns(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// A signed difference in nanoseconds.
pub fn signed(v: f64) -> String {
    let sign = if v < 0.0 { "−" } else { "+" };
    format!("{sign}{} ns", ns(v.abs()))
}

/// A ratio: three decimals below 10, one from 10 on.
pub fn ratio(v: f64) -> String {
    if v >= 10.0 {
        format!("{v:.1}×")
    } else {
        format!("{v:.3}×")
    }
}

/// How far `again` is from `first`, a measurement taken twice, in percent: `+3.2%`, `−0.4%`.
pub fn gap(again: f64, first: f64) -> String {
    let pct = (again / first - 1.0) * 100.0;
    format!("{}{:.1}%", if pct < 0.0 { "−" } else { "+" }, pct.abs())
}

/// The head of the "Every criterion measurement" table: the bench, what it measures,
/// criterion's mean, its 95% interval and median, then the `more` columns (numbers).
pub fn measurements_head(more: &[&str]) -> String {
    let mut head = String::from("| bench | what | mean ns | mean 95% CI | median ns |");
    let mut rule = String::from("|---|---|---:|---:|---:|");
    for column in more {
        head.push_str(&format!(" {column} |"));
        rule.push_str("---:|");
    }
    format!("{head}\n{rule}")
}

/// One row of that table: `bench`, `what`, its estimates, then the `more` cells.
pub fn measurement_row(bench: &str, what: &str, e: &Estimate, more: &[String]) -> String {
    let mut row = format!(
        "| `{bench}` | {what} | {} | {} – {} | {} |",
        ns(e.mean),
        ns(e.mean_low),
        ns(e.mean_high),
        ns(e.median)
    );
    for cell in more {
        row.push_str(&format!(" {cell} |"));
    }
    row
}

/// SHA-256 of some bytes (what the layer computes once per token).
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes).as_ref());
    out
}

/// The verdict on a target from both measurements: criterion's medians and the paired,
/// interleaved check.
pub fn verdict(criterion_ok: bool, paired_ok: bool) -> &'static str {
    match (criterion_ok, paired_ok) {
        (true, true) => "**PASS**",
        (false, false) => "**MISS**",
        (true, false) => "**split**: criterion PASS, paired MISS",
        (false, true) => "**split**: criterion MISS, paired PASS",
    }
}

/// The median of `v` (sorted in place).
pub fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        f64::midpoint(v[n / 2 - 1], v[n / 2])
    }
}

fn begin(name: &str) -> String {
    format!("<!-- bench:{name}:begin -->")
}

fn end(name: &str) -> String {
    format!("<!-- bench:{name}:end -->")
}

/// The shared header, written when the file is rebuilt (see [`write_section`]).
fn header() -> String {
    let mut h = String::from(
        "# Benchmarks\n\n\
         The sections between `<!-- bench:NAME:begin/end -->` markers are generated by the bench \
         binaries under [`benches/`](benches/): do not edit them by hand. Each binary rewrites \
         only its own section, in place, on a full run, so every figure in a section comes from \
         one process and one run, dated in the section; the sections may come from different \
         runs. Text outside the markers is hand-written and the benches leave it as it is.\n\n\
         To regenerate a section:\n\n```sh\n",
    );
    for (_, command) in SECTIONS {
        h.push_str(command);
        h.push('\n');
    }
    h.push_str("```\n");
    h
}

/// `text` with the body of its section `name` replaced by `body`, everything else unchanged;
/// `None` when `text` has no complete section `name` (the same markers [`sections`] reads).
fn splice(text: &str, name: &str, body: &str) -> Option<String> {
    let (b, e) = (begin(name), end(name));
    let mut offset = 0;
    let mut body_start = None;
    for line in text.split_inclusive('\n') {
        let marker = line.trim();
        match body_start {
            None if marker == b => body_start = Some(offset + line.len()),
            Some(start) if marker == e => {
                return Some(format!("{}\n{body}\n\n{}", &text[..start], &text[offset..]));
            }
            _ => {}
        }
        offset += line.len();
    }
    None
}

/// Splits `text` into its sections, in file order. A section runs from a line that is
/// exactly its begin marker to the line that is exactly its end marker. Text outside the
/// sections is the header (or, in a file that predates the markers, old content): it is not
/// kept, and neither is a section without its end marker.
fn sections(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut open: Option<(String, Vec<&str>)> = None;
    for line in text.lines() {
        let marker = line
            .trim()
            .strip_prefix("<!-- bench:")
            .and_then(|m| m.strip_suffix(" -->"));
        match (&mut open, marker) {
            (None, Some(m)) => {
                if let Some(name) = m.strip_suffix(":begin") {
                    open = Some((name.to_owned(), Vec::new()));
                }
            }
            (Some((name, body)), m) => {
                if m.is_some_and(|m| m.strip_suffix(":end") == Some(name.as_str())) {
                    let body = body.join("\n").trim_matches('\n').to_owned();
                    out.push((std::mem::take(name), body));
                    open = None;
                } else {
                    body.push(line);
                }
            }
            (None, None) => {}
        }
    }
    out
}

/// Replaces section `name` of `BENCHMARKS.md` with `body`, where it is: the rest of the file
/// (the header, the other sections, hand-written text outside the markers) stays byte for
/// byte. Without that section (or without the file) the file is rebuilt: the header, then
/// the known sections in their fixed order, then any others; text outside markers is then
/// not kept.
pub fn write_section(name: &str, body: &str) {
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("BENCHMARKS.md");
    let old = std::fs::read_to_string(&out).unwrap_or_default();
    if let Some(md) = splice(&old, name, body.trim_matches('\n')) {
        match std::fs::write(&out, md) {
            Ok(()) => println!("Wrote the `{name}` section of {}", out.display()),
            Err(e) => eprintln!("could not write {}: {e}", out.display()),
        }
        return;
    }
    let mut kept = sections(&old);
    if !old.trim().is_empty() && kept.is_empty() {
        println!(
            "{} has no section markers: its old content is replaced",
            out.display()
        );
    }
    match kept.iter_mut().find(|(n, _)| n == name) {
        Some(section) => section.1 = body.trim_matches('\n').to_owned(),
        None => kept.push((name.to_owned(), body.trim_matches('\n').to_owned())),
    }
    // Known sections in their fixed order, then any others in file order.
    let rank = |n: &str| {
        SECTIONS
            .iter()
            .position(|(s, _)| *s == n)
            .unwrap_or(SECTIONS.len())
    };
    kept.sort_by_key(|(n, _)| rank(n));
    let mut md = header();
    for (n, b) in &kept {
        md.push_str(&format!("\n{}\n\n{b}\n\n{}\n", begin(n), end(n)));
    }
    match std::fs::write(&out, md) {
        Ok(()) => println!("Wrote the `{name}` section of {}", out.display()),
        Err(e) => eprintln!("could not write {}: {e}", out.display()),
    }
}
