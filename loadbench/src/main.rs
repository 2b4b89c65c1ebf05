//! The load benchmark's one binary (see `README.md` beside `Cargo.toml`):
//!
//! - `loadbench gen`: keys, the JWKS and the tokens, into a directory;
//! - `loadbench serve`: `GET /items` behind one of the modes (`noauth`, `floor`, `layer`,
//!   `tower-oauth2-resource-server`), on a one-thread runtime, after a self-test that every
//!   authenticating mode refuses bad tokens;
//! - `loadbench report`: the medians of `run.sh`'s measurements as Markdown, spliced into
//!   `BENCHMARKS.md`.
//!
//! `run.sh` drives all three; nothing here is meant to be run by CI.

#![forbid(unsafe_code)]

mod args;
mod fixture;
mod floor;
mod generate;
mod idp;
mod modes;
mod report;
mod selftest;

use std::process::ExitCode;

use args::Args;
use modes::Mode;

/// Errors end the process with a message; this is a tool, not a library.
pub(crate) type Error = Box<dyn std::error::Error + Send + Sync>;
pub(crate) type Result<T> = std::result::Result<T, Error>;

const USAGE: &str = "\
usage:
  loadbench gen    --dir DIR [--count N] [--issuer URL] [--audience AUD]
  loadbench serve  --dir DIR --mode MODE --port PORT [--cache N] [--jwks-url URL]
  loadbench report --results FILE --benchmarks FILE [--info 'Key: value']...

MODE: noauth | floor | layer | tower-oauth2-resource-server";

fn main() -> ExitCode {
    let mut args = Args::from_env();
    let outcome = match args.subcommand().as_deref() {
        Some("gen") => generate::run(&mut args),
        Some("serve") => serve(&mut args),
        Some("report") => report::run(&mut args),
        _ => Err(USAGE.into()),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("loadbench: {error}");
            ExitCode::FAILURE
        }
    }
}

/// What `serve` was told.
pub(crate) struct ServeOptions {
    pub(crate) mode: Mode,
    pub(crate) port: u16,
    /// `verified_cache_capacity` for the layer; `None` keeps the crate's default.
    pub(crate) cache: Option<u64>,
    /// A JWKS for the layer other than the one this process serves.
    pub(crate) jwks_url: Option<String>,
}

fn serve(args: &mut Args) -> Result<()> {
    let dir = args.required("--dir")?;
    let options = ServeOptions {
        mode: args.required("--mode")?.parse()?,
        port: args.required("--port")?.parse()?,
        cache: args.optional("--cache")?.map(|n| n.parse()).transpose()?,
        jwks_url: args.optional("--jwks-url")?,
    };
    args.finish()?;
    let fixture = fixture::Fixture::read(dir.as_ref())?;
    // One thread for everything (the server, the in-process key server, the self-test), so
    // CPU time per request compares between modes; run.sh pins the process to one core.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(modes::serve(fixture, options))
}
