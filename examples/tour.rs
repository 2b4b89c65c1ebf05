//! A guided tour of s2s-auth: a real axum server on 127.0.0.1, called by a real HTTP client.
//!
//! ```text
//! cargo run --example tour
//! ```
//!
//! Every credential kind this version verifies is shown allowed and refused, with the exact
//! status, the `WWW-Authenticate` challenge, the audit event, and at the end the access
//! table.

use std::sync::Arc;

use axum::routing::{get, post};
use axum::{Json, Router};
use http::Method;
use s2s_auth::{
    AccessRestriction, AccessRestrictions, Action, Auth, MemoryAuditSink, Principal, RoutePolicy,
    StaticToken,
};

const CI_TOKEN: &str = "ci-read-only-7f3a9c1e5b";
const DEPLOY_TOKEN: &str = "deploy-writer-2b8d4f6a0c";
const SCAFFOLDER_ONLY_TOKEN: &str = "scaffolder-only-9e1c3a5f7b";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let audit = Arc::new(MemoryAuditSink::default());

    // The whole configuration of the `catalog` service, in Rust. The same can be said in
    // YAML: see examples/auth.yaml and `cargo run --example serve`.
    let auth = Auth::builder("catalog")
        // A CI job: read-only, like every static token unless told otherwise.
        .static_token(StaticToken::new("ci-bot", CI_TOKEN))
        // A deployment pipeline that may write.
        .static_token(StaticToken::new("deployer", DEPLOY_TOKEN).allow_writes(true))
        // A token meant for the scaffolder service only, and only to read there.
        .static_token(
            StaticToken::new("templates-sync", SCAFFOLDER_ONLY_TOKEN).restrict(
                AccessRestrictions::new([
                    AccessRestriction::plugin("scaffolder").actions([Action::Read])
                ])?,
            ),
        )
        .route("/healthz", [Method::GET], RoutePolicy::unauthenticated())
        .route(
            "/entities",
            [Method::GET],
            RoutePolicy::authenticated()
                .permission("catalog.entity.read")
                .action(Action::Read),
        )
        .route(
            "/entities",
            [Method::POST],
            RoutePolicy::authenticated()
                .permission("catalog.entity.create")
                .action(Action::Create),
        )
        .route(
            "/admin/tokens",
            [],
            RoutePolicy::authenticated()
                .allow([s2s_auth::CredentialKind::User])
                .sensitive(true),
        )
        .audit_sink(audit.clone())
        .build()?;

    async fn whoami(principal: Option<Principal>) -> Json<Principal> {
        Json(principal.unwrap_or_else(Principal::none))
    }
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/entities", get(whoami).post(whoami))
        .route("/admin/tokens", post(whoami))
        .layer(auth.layer());

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    println!("s2s-auth tour: service `catalog` listening on {base}\n");

    let client = reqwest::Client::new();
    let ci = Some(("ci-bot's token", CI_TOKEN));
    let deployer = Some(("deployer's token", DEPLOY_TOKEN));
    let restricted = Some(("templates-sync's token", SCAFFOLDER_ONLY_TOKEN));
    let garbage = Some(("a made-up token", "not-a-configured-token"));
    // (what it shows, method, path, the token as (label, value), the status to expect)
    type Step<'a> = (&'a str, Method, &'a str, Option<(&'a str, &'a str)>, u16);
    #[rustfmt::skip]
    let steps: &[Step<'_>] = &[
        ("No credentials on a protected route", Method::GET, "/entities", None, 401),
        ("A CI job's static token reads", Method::GET, "/entities", ci, 200),
        ("The same token tries to write: static tokens are read-only", Method::POST, "/entities", ci, 403),
        ("A static token with allowWrites: true writes", Method::POST, "/entities", deployer, 200),
        ("A token restricted to the scaffolder plugin, sent to catalog", Method::GET, "/entities", restricted, 403),
        ("An unauthenticated health route, no credentials", Method::GET, "/healthz", None, 200),
        ("A garbage token", Method::GET, "/entities", garbage, 401),
        ("A static token on a users-only, sensitive route", Method::POST, "/admin/tokens", deployer, 403),
    ];
    let mut surprises = Vec::new();
    for (i, (title, method, path, token, expected)) in steps.iter().enumerate() {
        println!("{}. {title}", i + 1);
        let mut request = client.request(method.clone(), format!("{base}{path}"));
        match token {
            Some((label, token)) => {
                println!("   {method} {path}  Authorization: Bearer <{label}>");
                request = request.bearer_auth(token);
            }
            None => println!("   {method} {path}  (no Authorization header)"),
        }
        let response = request.send().await?;
        let status = response.status();
        let challenge = response
            .headers()
            .get(http::header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response.text().await?;
        println!("   -> {status}");
        if status.as_u16() != *expected {
            surprises.push(format!("step {}: expected {expected}, got {status}", i + 1));
        }
        if let Some(challenge) = challenge {
            println!("   WWW-Authenticate: {challenge}");
        }
        println!("   body: {body}");
        if let Some(event) = audit.last() {
            println!(
                "   audit: {:?} {} (route {}, subject {}, token {})",
                event.decision,
                event.reason,
                event.route,
                event.subject.as_deref().unwrap_or("-"),
                event
                    .token_fingerprint
                    .map_or_else(|| "-".to_owned(), |f| format!("fp:{f}")),
            );
        }
        println!();
    }

    println!("{}", auth.access_table().to_markdown());
    println!("Every cell above is computed by the same function that decided the requests.");
    // The tour doubles as a smoke test in CI: a step with an unexpected status fails it.
    if !surprises.is_empty() {
        return Err(surprises.join("; ").into());
    }
    Ok(())
}
