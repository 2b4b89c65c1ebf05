//! A guided tour of s2s-auth: a real axum server on 127.0.0.1, called by a real HTTP client.
//!
//! ```text
//! cargo run --example tour
//! ```
//!
//! Every credential kind this version verifies is shown allowed and refused, with the exact
//! status, the `WWW-Authenticate` challenge, the audit event, and at the end the access
//! table and the tokens and keys the services issued. `catalog` declares its routes with
//! their policies (`auth.router()`); `search` wraps a plain router in the layer. It also shows
//! the fail-closed rules: a method no policy names gets the path's strictest policy, and a
//! credential an authenticated route would refuse is dropped on an unauthenticated one. And
//! it shows the hardening: subjects that would collide with another credential's or inject
//! a log line are refused, a token from an unmeant client (`azp`) too, no token a machine
//! holds (static, legacy, plugin) reaches a sensitive route, and a JWKS URL over plain http
//! stops start-up. Then jane, a user, works through the two credentials OpenSearch added:
//! a just-in-time token acting as her (issued, used, refused where it may not go, revoked),
//! and a service account (`ci-deployer`, read-only on the catalog): its token, a rotation
//! with both tokens valid, the account switched off (both refused) and on, the old token
//! revoked.
//!
//! Three services run: `catalog` (the one toured), `scaffolder` (which calls catalog as
//! itself and on behalf of its users) and `search`. An identity provider runs in the same
//! process (OIDC discovery and a JWKS on 127.0.0.1), so nothing leaves the machine.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::routing::{MethodRouter, any, get, post};
use axum::{Json, Router};
use http::{Method, StatusCode};
use s2s_auth::audit::{EventKind, MemoryAuditSink};
use s2s_auth::custom::{
    CustomAccess, ExternalIdentity, ExternalTokenError, ExternalTokenVerifier, VerifyFuture,
};
use s2s_auth::restrictions::{AccessRestriction, AccessRestrictions, Action};
use s2s_auth::store::MemoryStore;
use s2s_auth::{
    Auth, CredentialKind, JwksAccess, LegacySecret, PluginTokens, Principal, RoutePolicy,
    S2sClient, StaticDiscovery, StaticToken, UserProvider,
};

const CI_TOKEN: &str = "ci-read-only-7f3a9c1e5b";
const DEPLOY_TOKEN: &str = "deploy-writer-2b8d4f6a0c";
const SCAFFOLDER_ONLY_TOKEN: &str = "scaffolder-only-9e1c3a5f7b";
/// The shared secret of an old Backstage backend (legacy HS256 tokens), base64 as Backstage
/// configures it. 32 bytes: "tour-legacy-secret-32-bytes-long".
const LEGACY_SECRET: &str = "dG91ci1sZWdhY3ktc2VjcmV0LTMyLWJ5dGVzLWxvbmc=";

/// The deployment's HS512 key for just-in-time tokens (64 bytes, base64).
const JIT_KEY: &str =
    "dG91ci1qdXN0LWluLXRpbWUta2V5LW9mLXNpeHR5LWZvdXItYnl0ZXMtYXQtbGVhc3QtZm9yLWhzNTEyISEhIQ==";

/// A tiny identity provider (an ES256 key, its JWKS, and OIDC discovery), from the test kit.
#[path = "../tests/kit/mod.rs"]
mod kit;

/// A custom external token type: Acme's API keys (`acme_<key>`), checked against a list. A
/// real one would ask Acme; classification sends it every token with its prefix, and only
/// those.
struct AcmeKeys;

const ACME_KEY: &str = "acme_k3y-of-the-release-bot-4c1d";

impl ExternalTokenVerifier for AcmeKeys {
    fn prefix(&self) -> &str {
        "acme_"
    }

    fn verify<'a>(&'a self, token: &'a str) -> VerifyFuture<'a> {
        Box::pin(async move {
            if token == ACME_KEY {
                Ok(ExternalIdentity::new("release-bot"))
            } else {
                Err(ExternalTokenError::Invalid("unknown Acme key"))
            }
        })
    }
}

async fn whoami(principal: Option<Principal>) -> Json<Principal> {
    Json(principal.unwrap_or_else(Principal::none))
}

/// scaffolder's `/catalog/{*path}`: calls catalog's `/{path}` for whoever called scaffolder
/// (a user: on their behalf), and answers with catalog's status and body.
async fn call_catalog(
    State(client): State<Arc<S2sClient>>,
    principal: Principal,
    method: Method,
    Path(path): Path<String>,
) -> (StatusCode, String) {
    let request = match client
        .request(Some(&principal), "catalog", method, &format!("/{path}"))
        .await
    {
        Ok(request) => request,
        // For example a restricted credential, which is never delegated.
        Err(e) => return (StatusCode::FORBIDDEN, e.to_string()),
    };
    match request.send().await {
        Ok(response) => (
            StatusCode::from_u16(response.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY),
            response.text().await.unwrap_or_default(),
        ),
        Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let audit = Arc::new(MemoryAuditSink::default());
    let idp = kit::Idp::start("tour-key-1").await;

    // Two more services in this process. `scaffolder` verifies its users (OIDC and Backstage
    // user tokens), issues plugin-to-plugin tokens, publishes its keys at
    // /.backstage/auth/v1/jwks.json, and calls catalog (as itself, or on behalf of its
    // caller). `search` accepts plugin tokens too. Discovery (service id -> base URL) tells
    // each where the others are.
    let backstage_issuer = format!("{}/api/auth", idp.issuer);
    // The OIDC and Backstage providers below sign in the same people, so they say they
    // share their namespace (without it, two providers' `jane` would be refused as a merge).
    let backstage_users = || idp.backstage_provider(&backstage_issuer).shared_namespace();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let scaffolder_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let scaffolder_base = format!("http://{}", scaffolder_listener.local_addr()?);
    let scaffolder = Auth::builder("scaffolder")
        .plugin_tokens(PluginTokens::new(MemoryStore::default()))
        .discovery(StaticDiscovery::new([("catalog", base.as_str())]))
        .user_provider(
            UserProvider::oidc(idp.issuer.clone())
                .audiences(["scaffolder"])
                .shared_namespace(),
        )
        .user_provider(backstage_users())
        .audit_sink(audit.clone())
        .build()?;
    // The outbound client, from the discovery scaffolder already has.
    let outbound = Arc::new(scaffolder.client());
    // Its published JWKS is mounted by the router wrapper, unauthenticated.
    let scaffolder_app: Router = scaffolder
        .router()
        .route("/catalog/{*path}", any(call_catalog), RoutePolicy::users())
        .into_router()?
        .with_state(outbound);
    tokio::spawn(async move { axum::serve(scaffolder_listener, scaffolder_app).await });
    let discovery = StaticDiscovery::new([("scaffolder", scaffolder_base.as_str())]);

    let search = Auth::builder("search")
        .discovery(discovery.clone())
        .audit_sink(audit.clone())
        .build()?;
    let search_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let search_base = format!("http://{}", search_listener.local_addr()?);
    let search_app = Router::new()
        .route("/query", get(whoami))
        .layer(search.layer());
    tokio::spawn(async move { axum::serve(search_listener, search_app).await });

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
        // An external system (a CI pipeline) holding JWTs from the identity provider: its
        // tokens must name this issuer and audience `catalog`.
        .jwks_access(
            JwksAccess::new(idp.jwks_url())
                .issuers([idp.issuer.clone()])
                .audiences(["catalog"])
                .subject_prefix("idp"),
        )
        // The deploy client of the same provider, for audience `catalog-deploy`. It has no
        // `subjectPrefix`, so its callers are `external:<sub>`, beside the static tokens'
        // `external:ci-bot`: a `sub` holding `:` or naming a static subject is refused, so no
        // two credentials share a name. Only the client `deploy-client` (`azp`) is meant.
        .jwks_access(
            JwksAccess::new(idp.jwks_url())
                .issuers([idp.issuer.clone()])
                .audiences(["catalog-deploy"])
                .require_claim("azp", ["deploy-client"]),
        )
        // People, through the same provider (found by OIDC discovery), with tokens for the
        // `catalog-ui` audience. Issuer and audience together pick the one verifier.
        .user_provider(
            UserProvider::oidc(idp.issuer.clone())
                .audiences(["catalog-ui"])
                .shared_namespace(),
        )
        // Just-in-time on-behalf-of tokens for its users (HS512 here; ES256 with plugin keys
        // by default): POST /.s2s/auth/v1/obo/token, mounted by the router wrapper.
        .jit_tokens(s2s_auth::jit::JitTokens::new("tour").hmac_key("tour-1", JIT_KEY))
        // Service accounts (OpenSearch's model, without passwords): jane manages them through
        // the admin API at /.s2s/auth/v1/service-accounts, mounted by the router wrapper.
        .service_accounts(s2s_auth::service_account::ServiceAccounts::new([
            "user:default/jane",
        ]))
        // An old Backstage backend still sending legacy HS256 tokens.
        .legacy_secret(LegacySecret::new(LEGACY_SECRET, "old-backend"))
        // Backstage users, whose tokens carry the proof (`uip`) that lets a service act for
        // them verifiably.
        .user_provider(backstage_users())
        // Other services calling with plugin-to-plugin tokens, found through discovery...
        .discovery(discovery)
        // ...and the one trusted to act for users without the identity provider's proof
        // (OIDC users: the RFC 8693 `act` form).
        .trusted_actors(["scaffolder"])
        // Acme's API keys, a custom external token type verified by our own code.
        .custom_access(CustomAccess::new("acme", Arc::new(AcmeKeys)))
        .audit_sink(audit.clone())
        .build()?;

    // Every route with the policy that guards it. A policy cannot miss its route (a
    // misspelt YAML path would stop start-up), nor a route its policy.
    let (app, auth) = auth
        .router()
        .route("/healthz", get(whoami), RoutePolicy::unauthenticated())
        .route_for(
            "/entities",
            [Method::GET],
            get(whoami),
            RoutePolicy::authenticated()
                .permission("catalog.entity.read")
                .action(Action::Read),
        )
        .route_for(
            "/entities",
            [Method::POST],
            post(whoami),
            RoutePolicy::authenticated()
                .permission("catalog.entity.create")
                .action(Action::Create),
        )
        // Sensitive: only a user's own credential; every token a machine can hold (static,
        // JWKS, legacy, plugin, on-behalf-of) is refused, so a leaked one cannot reach it.
        .route(
            "/admin/reindex",
            post(whoami),
            RoutePolicy::authenticated().sensitive(),
        )
        .route(
            "/admin/tokens",
            post(whoami),
            RoutePolicy::authenticated()
                .allow([CredentialKind::User])
                .sensitive(),
        )
        // GET for any caller, POST for people only; the handler takes every method, and a
        // method neither policy names (PATCH) gets the strictest of the two.
        .route_for(
            "/admin/settings",
            [Method::GET],
            any(whoami),
            RoutePolicy::authenticated(),
        )
        .route_for(
            "/admin/settings",
            [Method::POST],
            MethodRouter::new(),
            RoutePolicy::users().sensitive(),
        )
        .into_parts()?;

    tokio::spawn(async move { axum::serve(listener, app).await });
    println!("s2s-auth tour: service `catalog` listening on {base}\n");

    let client = reqwest::Client::new();
    let ci = Some(("ci-bot's token", CI_TOKEN));
    let deployer = Some(("deployer's token", DEPLOY_TOKEN));
    let restricted = Some(("templates-sync's token", SCAFFOLDER_ONLY_TOKEN));
    let garbage = Some(("a made-up token", "not-a-configured-token"));
    let ci_jwt = idp.token("ci-pipeline", "catalog");
    let search_jwt = idp.token("ci-pipeline", "search");
    let user_jwt = idp.token("jane", "catalog-ui");
    let legacy_jwt = kit::legacy_token(LEGACY_SECRET, &kit::legacy_claims_living(300));
    let unsigned = idp.unsigned_token("admin", "catalog");
    let external = Some(("CI pipeline's JWT for catalog", ci_jwt.as_str()));
    let wrong_audience = Some(("CI pipeline's JWT for search", search_jwt.as_str()));
    let user = Some(("jane's user token", user_jwt.as_str()));
    let legacy = Some(("legacy HS256 token", legacy_jwt.as_str()));
    let unsigned = Some(("unsigned alg:none token", unsigned.as_str()));
    let acme = Some(("release-bot's Acme API key", ACME_KEY));
    let acme_unknown = Some(("a made-up Acme key", "acme_not-a-real-key"));
    // scaffolder mints a token for calling catalog (a new key is published first).
    let plugin_jwt = scaffolder.plugin_token("catalog").await?;
    let plugin = Some((
        "scaffolder's plugin token for catalog",
        plugin_jwt.expose_secret(),
    ));
    let search_query = format!("{search_base}/query");
    // jane, signed in to Backstage, and to the OIDC provider for scaffolder.
    let jane_backstage_jwt = idp.user_token(
        &backstage_issuer,
        "user:default/jane",
        &[],
        kit::now() + 300,
    );
    let jane_backstage = Some(("jane's Backstage user token", jane_backstage_jwt.as_str()));
    let jane_oidc_jwt = idp.token("jane", "scaffolder");
    let jane_oidc = Some(("jane's OIDC token for scaffolder", jane_oidc_jwt.as_str()));
    // Tokens of the deploy client (audience catalog-deploy), with the `sub` and `azp` given.
    let deploy_jwt = |sub: &str, azp: &str| {
        let now = kit::now();
        idp.key.sign(&serde_json::json!({
            "iss": idp.issuer, "sub": sub, "aud": "catalog-deploy", "azp": azp,
            "iat": now, "exp": now + 300,
        }))
    };
    let (deploy_ok, deploy_colliding, deploy_colon, deploy_newline, deploy_wrong_azp) = (
        deploy_jwt("deploy-bot", "deploy-client"),
        deploy_jwt("ci-bot", "deploy-client"),
        deploy_jwt("corp:deploy-bot", "deploy-client"),
        deploy_jwt("deploy-bot\nGET /admin 200", "deploy-client"),
        deploy_jwt("deploy-bot", "other-client"),
    );
    let deploy = Some(("the deploy client's JWT", deploy_ok.as_str()));
    let colliding = Some(("a JWT whose sub is ci-bot", deploy_colliding.as_str()));
    let colon = Some(("a JWT whose sub is corp:deploy-bot", deploy_colon.as_str()));
    let newline = Some(("a JWT whose sub holds a newline", deploy_newline.as_str()));
    let wrong_azp = Some(("a JWT of another client (azp)", deploy_wrong_azp.as_str()));
    let via_scaffolder = format!("{scaffolder_base}/catalog/entities");
    let via_scaffolder_admin = format!("{scaffolder_base}/catalog/admin/tokens");
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
        ("An external system's JWT, verified against the provider's JWKS", Method::GET, "/entities", external, 200),
        ("The same system's JWT minted for another service (search)", Method::GET, "/entities", wrong_audience, 401),
        ("A user's token (OIDC discovery, then JWKS)", Method::GET, "/entities", user, 200),
        ("The user on the users-only, sensitive route", Method::POST, "/admin/tokens", user, 200),
        ("The external system on the users-only route", Method::POST, "/admin/tokens", external, 403),
        ("An unsigned token (alg: none) claiming to be admin", Method::GET, "/entities", unsigned, 401),
        ("A Backstage legacy HS256 token", Method::GET, "/entities", legacy, 200),
        ("scaffolder calls catalog with a plugin token (its JWKS found by discovery)", Method::GET, "/entities", plugin, 200),
        ("The same token replayed to the search service", Method::GET, search_query.as_str(), plugin, 401),
        ("scaffolder's plugin token on the users-only, sensitive route", Method::POST, "/admin/tokens", plugin, 403),
        ("jane asks scaffolder, which calls catalog on her behalf (obo: her limited token)", Method::GET, via_scaffolder.as_str(), jane_backstage, 200),
        ("The same, for an OIDC user (act form: scaffolder is a trusted actor)", Method::GET, via_scaffolder.as_str(), jane_oidc, 200),
        ("Acting for jane on the sensitive route: on-behalf-of is refused there", Method::POST, via_scaffolder_admin.as_str(), jane_backstage, 403),
        ("A Backstage user token sent to catalog itself", Method::GET, "/entities", jane_backstage, 200),
        ("An Acme API key (a custom type, chosen by its prefix acme_)", Method::GET, "/entities", acme, 200),
        ("A made-up Acme key: refused by the Acme verifier alone", Method::GET, "/entities", acme_unknown, 401),
        ("PATCH, a method no policy of /admin/settings names, with a writer token", Method::PATCH, "/admin/settings", deployer, 403),
        ("The same token on the route's GET policy", Method::GET, "/admin/settings", deployer, 200),
        ("A token restricted to scaffolder on the unauthenticated health route: let in, but as nobody", Method::GET, "/healthz", restricted, 200),
        ("The deploy client's JWT (no subjectPrefix: its subject is external:deploy-bot)", Method::GET, "/entities", deploy, 200),
        ("Its sub is ci-bot: it would pass for the ci-bot static token", Method::GET, "/entities", colliding, 401),
        ("Its sub is corp:deploy-bot: it would pass for another entry's prefixed subject", Method::GET, "/entities", colon, 401),
        ("Its sub holds a newline: it would inject a line into the logs", Method::GET, "/entities", newline, 401),
        ("A token of the same provider and audience, from another client (azp)", Method::GET, "/entities", wrong_azp, 401),
        ("A static token on the sensitive reindex route: a token a machine holds", Method::POST, "/admin/reindex", deployer, 403),
        ("jane's own user token on the sensitive reindex route", Method::POST, "/admin/reindex", user, 200),
        ("A legacy token on the sensitive reindex route", Method::POST, "/admin/reindex", legacy, 403),
        ("scaffolder's plugin token on the sensitive reindex route", Method::POST, "/admin/reindex", plugin, 403),
    ];
    let mut tour = Tour {
        client,
        base: base.clone(),
        audit: audit.clone(),
        surprises: Vec::new(),
        steps: 0,
    };
    for (title, method, path, token, expected) in steps {
        tour.step(title, method.clone(), path, *token, None, *expected)
            .await?;
    }

    // Just-in-time on-behalf-of tokens (OpenSearch's model): jane asks catalog for a
    // two-minute token a tool can act as her with; it can never mint another.
    let ask = r#"{"description":"nightly report","durationSeconds":120}"#;
    let granted = tour
        .step(
            "jane asks for a 120 s just-in-time token",
            Method::POST,
            s2s_auth::jit::DEFAULT_PATH,
            user,
            Some(ask),
            200,
        )
        .await?;
    let jit_token = serde_json::from_str::<serde_json::Value>(&granted)?["authenticationToken"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let jit = Some(("jane's just-in-time token", jit_token.as_str()));
    tour.step(
        "A tool calls with it: it is jane (credential obo, actor jit:<jti>)",
        Method::GET,
        "/entities",
        jit,
        None,
        200,
    )
    .await?;
    tour.step(
        "The tool tries to mint another token with it",
        Method::POST,
        s2s_auth::jit::DEFAULT_PATH,
        jit,
        Some(ask),
        403,
    )
    .await?;
    tour.step(
        "Or to reach the sensitive reindex route",
        Method::POST,
        "/admin/reindex",
        jit,
        None,
        403,
    )
    .await?;
    let jti = jit_token
        .split('.')
        .nth(1)
        .and_then(base64_url)
        .and_then(|c| serde_json::from_slice::<serde_json::Value>(&c).ok())
        .and_then(|c| c["jti"].as_str().map(str::to_owned))
        .unwrap_or_default();
    let revoke = format!("{}/{jti}", s2s_auth::jit::DEFAULT_PATH);
    tour.step(
        "jane revokes it (by its jti): 204",
        Method::DELETE,
        &revoke,
        user,
        None,
        204,
    )
    .await?;
    tour.step(
        "The tool calls again with the revoked token",
        Method::GET,
        "/entities",
        jit,
        None,
        401,
    )
    .await?;
    // Service accounts: jane creates `ci-deployer`, allowed to read the catalog and nothing
    // else, gives it a token, rotates to a second one (both valid in between), switches the
    // account off (both refused at once) and on again, then revokes the first token.
    let accounts = s2s_auth::service_account::DEFAULT_PATH;
    let account = format!("{accounts}/ci-deployer");
    let account_tokens = format!("{account}/tokens");
    let read_catalog = r#"{"name":"ci-deployer","description":"deploys from CI","permissions":[{"plugin":"catalog","permissionAttribute":{"action":["read"]}}]}"#;
    tour.step(
        "jane creates the service account ci-deployer: read the catalog, nothing more",
        Method::POST,
        accounts,
        user,
        Some(read_catalog),
        201,
    )
    .await?;
    tour.step(
        "An account with a password: service accounts never have one",
        Method::POST,
        accounts,
        user,
        Some(r#"{"name":"legacy-bot","password":"hunter2","permissions":[{"plugin":"catalog"}]}"#),
        400,
    )
    .await?;
    let issued = |body: &str| -> (String, String) {
        let json: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
        let field = |k: &str| json[k].as_str().unwrap_or_default().to_owned();
        (field("token"), field("id"))
    };
    let (first_token, first_id) = issued(
        &tour
            .step(
                "jane gives it a token (shown once; the store keeps its SHA-256)",
                Method::POST,
                &account_tokens,
                user,
                Some(r#"{"name":"first"}"#),
                201,
            )
            .await?,
    );
    let first = Some(("ci-deployer's first token", first_token.as_str()));
    tour.step(
        "ci-deployer reads the catalog (service-account:ci-deployer, acting for itself)",
        Method::GET,
        "/entities",
        first,
        None,
        200,
    )
    .await?;
    tour.step(
        "ci-deployer tries to write: outside its permissions",
        Method::POST,
        "/entities",
        first,
        None,
        403,
    )
    .await?;
    tour.step(
        "ci-deployer's token on the admin API (sensitive, users only)",
        Method::GET,
        accounts,
        first,
        None,
        403,
    )
    .await?;
    let (second_token, _) = issued(
        &tour
            .step(
                "Rotation: jane adds a second token",
                Method::POST,
                &account_tokens,
                user,
                Some(r#"{"name":"second","expiresInSeconds":2592000}"#),
                201,
            )
            .await?,
    );
    let second = Some(("ci-deployer's second token", second_token.as_str()));
    for (title, token) in [
        ("During the rotation the first token still works", first),
        ("and so does the second", second),
    ] {
        tour.step(title, Method::GET, "/entities", token, None, 200)
            .await?;
    }
    tour.step(
        "jane disables the account",
        Method::POST,
        &format!("{account}/disable"),
        user,
        None,
        200,
    )
    .await?;
    for (title, token) in [
        ("The first token is refused at once", first),
        ("and so is the second", second),
    ] {
        tour.step(title, Method::GET, "/entities", token, None, 401)
            .await?;
    }
    tour.step(
        "jane enables it again",
        Method::POST,
        &format!("{account}/enable"),
        user,
        None,
        200,
    )
    .await?;
    tour.step(
        "jane revokes the first token, ending the rotation",
        Method::DELETE,
        &format!("{account_tokens}/{first_id}"),
        user,
        None,
        204,
    )
    .await?;
    tour.step(
        "The revoked token is refused",
        Method::GET,
        "/entities",
        first,
        None,
        401,
    )
    .await?;
    tour.step(
        "The second token works",
        Method::GET,
        "/entities",
        second,
        None,
        200,
    )
    .await?;
    tour.step(
        "jane lists the tokens: names, ids, last use; never a secret",
        Method::GET,
        &account_tokens,
        user,
        None,
        200,
    )
    .await?;
    let mut surprises = std::mem::take(&mut tour.surprises);

    // Key sources must be https: a JWKS URL over plain http off loopback stops start-up
    // (the opt-out is per entry and loudly named: `dangerously_allow_http`).
    println!("A JWKS URL over plain http, off loopback, at start-up:");
    let http_jwks = Auth::builder("catalog")
        .jwks_access(
            JwksAccess::new("http://keys.example.com/.well-known/jwks.json")
                .issuers(["https://keys.example.com"])
                .audiences(["catalog"]),
        )
        .build();
    match http_jwks {
        Err(e) => println!("   refused: {e}\n"),
        Ok(_) => surprises.push("an http JWKS URL was accepted".to_owned()),
    }

    println!("{}", auth.access_table().to_markdown());
    println!("Every cell above is computed by the same function that decided the requests.\n");

    // Not only decisions: every token a service issued and every key it made is audited too
    // (never the token or the key; only its fingerprint and kid).
    println!("Tokens issued and keys published during the tour:");
    for e in audit
        .events()
        .iter()
        .filter(|e| e.event != EventKind::Request)
    {
        println!(
            "   {} {:?}: subject {}, target {}, kid {}, until {}",
            e.service_id,
            e.event,
            e.subject.as_deref().unwrap_or("-"),
            e.target.as_deref().unwrap_or("-"),
            e.kid.as_deref().unwrap_or("-"),
            e.expires_at
                .map_or_else(|| "-".to_owned(), |t| t.to_string()),
        );
    }
    // The end: the same table for a whole deployment's config, as the operator's command
    // line prints it (and docs/guide.md holds it, checked by tests/guide.rs).
    println!(
        "The endpoint table of the example config, as `s2s-auth table --config examples/auth.yaml` prints it"
    );
    println!("(with the example values of examples/auth.env for its ${{...}} variables):\n");
    match config_table().await {
        Ok(table) => println!("{table}"),
        Err(e) => surprises.push(format!("examples/auth.yaml: {e}")),
    }

    // The tour doubles as a smoke test in CI: a step with an unexpected status fails it.
    if !surprises.is_empty() {
        return Err(surprises.join("; ").into());
    }
    Ok(())
}

/// The access table of `examples/auth.yaml`, with the example values of `examples/auth.env`
/// for its `${...}` variables: what `s2s-auth table --config examples/auth.yaml` prints.
async fn config_table() -> Result<String, Box<dyn std::error::Error>> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/auth.yaml");
    let yaml = std::fs::read_to_string(path)?;
    let auth = s2s_auth::AuthBuilder::from_yaml_str_with_env(&yaml, kit::example_env)?
        .build_async()
        .await?;
    if let Some(accounts) = auth.service_accounts() {
        accounts.reload().await?;
    }
    Ok(auth.access_table().to_markdown())
}

/// Runs the tour's steps: each request, its status, challenge, body and audit event.
struct Tour {
    client: reqwest::Client,
    base: String,
    audit: Arc<MemoryAuditSink>,
    surprises: Vec<String>,
    steps: usize,
}

impl Tour {
    /// Sends one request (to catalog for a path, as is for a full URL) with the token as
    /// `(label, value)` and a JSON body if any; prints what happened; notes an unexpected
    /// status. Returns the response body (a token in it is not printed).
    async fn step(
        &mut self,
        title: &str,
        method: Method,
        path: &str,
        token: Option<(&str, &str)>,
        body: Option<&str>,
        expected: u16,
    ) -> Result<String, Box<dyn std::error::Error>> {
        self.steps += 1;
        println!("{}. {title}", self.steps);
        let url = if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        };
        let mut request = self.client.request(method.clone(), url);
        match token {
            Some((label, token)) => {
                println!("   {method} {path}  Authorization: Bearer <{label}>");
                request = request.bearer_auth(token);
            }
            None => println!("   {method} {path}  (no Authorization header)"),
        }
        if let Some(body) = body {
            println!("   body: {body}");
            request = request
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(body.to_owned());
        }
        let response = request.send().await?;
        let status = response.status();
        let challenge = response
            .headers()
            .get(http::header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let text = response.text().await?;
        println!("   -> {status}");
        if status.as_u16() != expected {
            self.surprises.push(format!(
                "step {}: expected {expected}, got {status}",
                self.steps
            ));
        }
        if let Some(challenge) = challenge {
            println!("   WWW-Authenticate: {challenge}");
        }
        println!("   body: {}", without_tokens(&text));
        if let Some(event) = self.audit.last() {
            println!(
                "   audit ({}): {:?} {} (route {}, subject {}{}, token {}){}",
                event.service_id,
                event.decision,
                event.reason,
                event.route,
                event.subject.as_deref().unwrap_or("-"),
                event
                    .actor
                    .as_deref()
                    .map_or_else(String::new, |a| format!(" acted for by {a}")),
                event
                    .token_fingerprint
                    .map_or_else(|| "-".to_owned(), |f| format!("fp:{f}")),
                event
                    .ignored
                    .as_deref()
                    .map_or_else(String::new, |why| format!("; credential ignored: {why}")),
            );
        }
        println!();
        Ok(text)
    }
}

/// A response body as shown: an issued token replaced by `<token>`.
fn without_tokens(body: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(body) {
        Ok(mut json) => {
            for field in ["authenticationToken", "token"] {
                if json.get(field).is_some() {
                    json[field] = "<token>".into();
                }
            }
            json.to_string()
        }
        _ => body.to_owned(),
    }
}

/// Decodes a base64url segment (a token's claims, to read its `jti`).
fn base64_url(segment: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(segment)
        .ok()
}
