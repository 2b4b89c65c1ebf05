//! `s2s-auth`: the operator's command line for s2s-auth, and a sidecar for services not
//! written in Rust.
//!
//! ```text
//! s2s-auth token new --subject ci-bot          # a static token and the config lines for it
//! s2s-auth check --config auth.yaml            # every config error, and rotation warnings
//! s2s-auth table --config auth.yaml            # which routes each credential kind can reach
//! s2s-auth proxy --config auth.yaml --listen 127.0.0.1:7007 --upstream http://127.0.0.1:3000
//! ```
//!
//! Exit codes: 0 ok, 1 runtime error (a store that cannot be reached, an upstream that
//! cannot be bound), 2 usage or configuration error. Errors go to stderr, results to stdout.
//! Built with the `cli` feature: `cargo install --path . --features cli`.

#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod accounts;
mod check;
mod fail;
mod inspect;
mod keys;
mod obo;
mod proxy;
mod store_url;
mod table;
mod token;

pub(crate) use fail::Fail;

/// Service-to-service authentication for a deployment: create and check credentials, print
/// who may call what, and guard any HTTP service as a sidecar.
#[derive(Debug, Parser)]
#[command(name = "s2s-auth", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Static tokens (`new`, `hash`) and plugin tokens signed with a config's keys (`plugin`).
    Token(token::Args),
    /// New signing keys: an ES256 pair for the static plugin key store, an HS512 key for
    /// on-behalf-of tokens.
    Keys(keys::Args),
    /// Read a token from stdin and show what the layer would do with it (nothing is verified).
    Inspect(inspect::Args),
    /// Validate a config: every error with its path, and the warnings rotation needs.
    Check(check::Args),
    /// The access table of a config: which routes each kind of credential can reach.
    Table(table::Args),
    /// Service accounts and their tokens, in a store (`--store sqlite://...|postgres://...`).
    Accounts(accounts::Args),
    /// On-behalf-of token revocations, in a store.
    Obo(obo::Args),
    /// Run the layer in front of any HTTP service (a sidecar).
    Proxy(proxy::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // One thread: a current-thread runtime (no hand-offs between threads, the cheapest per
    // request); otherwise a multi-thread one, one worker per core unless told.
    let threads = match &cli.command {
        Command::Proxy(args) => args.threads(),
        _ => None,
    };
    let built = match threads {
        Some(1) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        Some(n) => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n)
            .enable_all()
            .build(),
        None => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build(),
    };
    let runtime = match built {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Token(args) => token::run(args).await,
            Command::Keys(args) => keys::run(args).await,
            Command::Inspect(args) => inspect::run(args).await,
            Command::Check(args) => check::run(args).await,
            Command::Table(args) => table::run(args).await,
            Command::Accounts(args) => accounts::run(args).await,
            Command::Obo(args) => obo::run(args).await,
            Command::Proxy(args) => proxy::run(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(fail) => fail.report(),
    }
}
