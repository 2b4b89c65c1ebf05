//! Try a configuration before it guards a real service.
//!
//! ```text
//! env $(grep -v '^#' examples/auth.env) \
//!   cargo run --example serve -- --config examples/auth.yaml --listen 127.0.0.1:7007
//! curl -i -H 'Authorization: Bearer ci-token-123456' http://127.0.0.1:7007/entities
//! ```
//!
//! Serves every route of the config's `s2s.routes`, and what the crate serves itself when the
//! config enables it: this service's published JWKS at `/.backstage/auth/v1/jwks.json` (plugin
//! tokens), the just-in-time token endpoints under `/.s2s/auth/v1/obo/token`
//! (`s2s.onBehalfOf.justInTime`), and the service-account admin API under
//! `/.s2s/auth/v1/service-accounts` (`s2s.serviceAccounts`, kept in `backend.database`);
//! each configured route answers 200 with
//! the JSON of the principal it saw (`subject`, `principalType`, `credential`, `actor`, `restrictions`,
//! `expiresAt`, `readOnly`). Refusals come from the layer, exactly as in production. At
//! start it prints the access table; every decision is written to stderr as a JSON line.
//!
//! Options: `--config FILE` (required), `--listen ADDR` (default 127.0.0.1:7007),
//! `--table-only` (print the access table as Markdown and JSON, then exit).

use std::collections::BTreeSet;
use std::process::ExitCode;

use axum::routing::any;
use axum::{Json, Router};
use s2s_auth::audit::JsonLinesSink;
use s2s_auth::{AuthBuilder, Principal};

struct Args {
    config: String,
    listen: String,
    table_only: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut config = None;
    let mut listen = String::from("127.0.0.1:7007");
    let mut table_only = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--config" => config = Some(args.next().ok_or("--config needs a file")?),
            "--listen" => listen = args.next().ok_or("--listen needs an address")?,
            "--table-only" => table_only = true,
            "-h" | "--help" => {
                return Err(String::from(
                    "usage: serve --config FILE [--listen ADDR] [--table-only]",
                ));
            }
            other => return Err(format!("unknown argument `{other}` (try --help)")),
        }
    }
    Ok(Args {
        config: config.ok_or("--config FILE is required (try examples/auth.yaml)")?,
        listen,
        table_only,
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let builder = AuthBuilder::from_yaml_file(&args.config)
        .map(|b| b.audit_sink(JsonLinesSink::new(std::io::stderr())));
    // build_async opens the key store the config names (SQLite or PostgreSQL), if any.
    let auth = match async { builder?.build_async().await }.await {
        Ok(auth) => auth,
        Err(error) => {
            // The error names the bad value's path and never prints a secret.
            eprintln!("configuration error: {error}");
            return ExitCode::FAILURE;
        }
    };

    // The access table shows a column per enabled service account: read them first.
    if let Some(accounts) = auth.service_accounts()
        && let Err(error) = accounts.reload().await
    {
        eprintln!("cannot read the service accounts: {error}");
        return ExitCode::FAILURE;
    }
    let table = auth.access_table();
    println!("{}", table.to_markdown());
    if args.table_only {
        println!("{:#}", table.to_json());
        return ExitCode::SUCCESS;
    }

    async fn echo(principal: Option<Principal>) -> Json<Principal> {
        Json(principal.unwrap_or_else(Principal::none))
    }
    // Each declared pattern answers every method under the config's own policies; the
    // router wrapper checks that every policy names a served path, and mounts what the crate
    // serves itself: the published JWKS (`/.backstage/auth/v1/jwks.json`) when the config
    // issues or verifies plugin tokens, the just-in-time issue endpoint
    // (`/.s2s/auth/v1/obo/token`) when `s2s.onBehalfOf.justInTime` is set, the
    // service-account admin API (`/.s2s/auth/v1/service-accounts`) when
    // `s2s.serviceAccounts` is.
    let builtin = auth.builtin_paths();
    let patterns: BTreeSet<String> = auth
        .routes()
        .into_iter()
        .map(|(p, _, _)| p.to_owned())
        .filter(|p| !builtin.contains(&p.as_str()))
        .collect();
    let mut router = auth.router();
    for pattern in &patterns {
        router = router.serve(pattern, any(echo));
    }
    let app: Router = match router.fallback(echo).into_router() {
        Ok(app) => app,
        Err(error) => {
            eprintln!("configuration error: {error}");
            return ExitCode::FAILURE;
        }
    };

    let listener = match tokio::net::TcpListener::bind(&args.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("cannot listen on {}: {e}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    println!(
        "serving `{}` on http://{} (audit events on stderr)",
        auth.service_id(),
        args.listen
    );
    if let Err(e) = axum::serve(listener, app).await {
        eprintln!("server error: {e}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
