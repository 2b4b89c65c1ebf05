//! On-behalf-of, end to end: a user calls `scaffolder`, whose handler calls `catalog` for
//! that user through `S2sClient`; `catalog` must see the user, with `scaffolder` as actor.
//!
//! Both forms: the delegated Backstage form (`obo` holds a limited user token that `catalog`
//! verifies against the identity provider) and the actor form (`act`, from OIDC users,
//! accepted only from trusted actors). Then every way to abuse them, each refused with the
//! check it fails. The identity provider, `scaffolder` and `catalog` run on `127.0.0.1:0`.
//!
//! The identity provider is the test kit's (`tests/kit/idp.rs`): it mints Backstage user
//! tokens whose `uip` is its signature over the limited token, built by string formatting,
//! independently of the crate's code, byte for byte as Backstage's auth backend does.

mod common;

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use http::{Method, StatusCode};
use s2s_auth::audit::{AuditEvent, MemoryAuditSink};
use s2s_auth::error::{DelegationError, IssueError, VerifyError};
use s2s_auth::plugin::PLUGIN_TYP;
use s2s_auth::restrictions::{AccessRestriction, AccessRestrictions};
use s2s_auth::store::MemoryStore;
use s2s_auth::{
    Auth, AuthBuilder, CredentialKind, PluginTokens, Principal, PrincipalType, RoutePolicy,
    S2sClient, StaticDiscovery, UserProvider,
};
use serde_json::{Value, json};

use common::kit::{Idp, KeyServer, SigningKey, header_and_claims, limited_parts, now};
use common::{
    Reply, SERVICE, Served, assert_allowed, assert_invalid_token, b64url, serve, serve_on,
};

/// The Backstage auth backend the identity provider stands for.
const IDP_ISSUER: &str = "http://backstage.test/api/auth";
/// The groups of every user it signs in.
const GROUPS: &[&str] = &["group:default/team-a"];
/// Its key's `kid`.
const IDP_KID: &str = "idp-key";

// ---------------------------------------------------------------------------------------
// The services
// ---------------------------------------------------------------------------------------

/// `catalog`: the echo router behind its layer, with an audit sink, on its own port.
struct Catalog {
    audit: Arc<MemoryAuditSink>,
    server: Served,
}

impl Catalog {
    async fn start(builder: AuthBuilder) -> Self {
        let audit = Arc::new(MemoryAuditSink::default());
        let auth = builder
            .route(
                "/admin/tokens",
                [Method::POST],
                RoutePolicy::authenticated().sensitive(),
            )
            .audit_sink(audit.clone())
            .build()
            .expect("catalog configuration builds");
        let server = serve(common::echo_router().layer(auth.layer())).await;
        Self { audit, server }
    }

    /// `method path` with a bearer token: the reply and the one audit event.
    async fn call(&self, method: Method, path: &str, token: &str) -> (Reply, AuditEvent) {
        let request = reqwest::Client::new()
            .request(method, format!("{}{path}", self.server.base))
            .bearer_auth(token);
        common::send_served(&self.audit, request).await
    }

    async fn refuses(&self, token: &str, error: &VerifyError) {
        let (reply, event) = self.call(Method::GET, "/entities", token).await;
        assert_invalid_token(&reply, &event, &error.to_string(), error.code());
    }
}

/// `scaffolder`: verifies its users, issues plugin tokens, publishes its keys, and on
/// `GET /proxy/entities` calls catalog's `/entities` for whoever called it.
struct Scaffolder {
    auth: Auth,
    client: Arc<S2sClient>,
    server: Served,
}

impl Scaffolder {
    async fn start(listener: tokio::net::TcpListener, users: UserProvider, catalog: &str) -> Self {
        let auth = Auth::builder("scaffolder")
            .user_provider(users)
            .plugin_tokens(PluginTokens::new(Arc::new(MemoryStore::default())))
            .build()
            .expect("scaffolder configuration builds");
        let client = Arc::new(S2sClient::new(
            auth.clone(),
            StaticDiscovery::new([("catalog", catalog)]),
        ));
        let app: Router = Router::new()
            .route("/proxy/entities", get(proxy))
            .with_state(client.clone())
            .merge(auth.jwks_router())
            .layer(auth.layer());
        let server = serve_on(listener, app);
        Self {
            auth,
            client,
            server,
        }
    }

    /// The user's request to scaffolder, which calls catalog for them: catalog's reply.
    async fn proxy(&self, user_token: &str) -> (StatusCode, Value) {
        let response = reqwest::Client::new()
            .get(format!("{}/proxy/entities", self.server.base))
            .bearer_auth(user_token)
            .send()
            .await
            .expect("scaffolder answers");
        let status = response.status();
        (status, response.json().await.expect("JSON"))
    }
}

/// Calls catalog on behalf of the caller; answers with catalog's status and body.
async fn proxy(
    State(client): State<Arc<S2sClient>>,
    principal: Principal,
) -> (StatusCode, axum::Json<Value>) {
    let request = match client
        .request(Some(&principal), "catalog", Method::GET, "/entities")
        .await
    {
        Ok(request) => request,
        Err(e) => {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                axum::Json(json!({ "clientError": e.to_string() })),
            );
        }
    };
    let response = request.send().await.expect("catalog answers");
    let status = StatusCode::from_u16(response.status().as_u16()).expect("a status");
    (status, axum::Json(response.json().await.expect("JSON")))
}

/// The identity provider, scaffolder, and a catalog built by `catalog` (given the
/// identity provider and scaffolder's base URL).
async fn world(catalog: impl FnOnce(&Idp, &str) -> AuthBuilder) -> (Idp, Scaffolder, Catalog) {
    let idp = Idp::start(IDP_KID).await;
    // Each must know the other's URL: take scaffolder's port first, start catalog knowing
    // it, then serve scaffolder on it.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let scaffolder_base = format!("http://{}", listener.local_addr().expect("address"));
    let catalog = Catalog::start(catalog(&idp, &scaffolder_base)).await;
    let scaffolder = Scaffolder::start(
        listener,
        idp.backstage_provider(IDP_ISSUER),
        &catalog.server.base,
    )
    .await;
    (idp, scaffolder, catalog)
}

/// Catalog verifying Backstage users and plugin tokens from scaffolder at `base`.
fn backstage_catalog(idp: &Idp, base: &str) -> AuthBuilder {
    Auth::builder(SERVICE)
        .user_provider(idp.backstage_provider(IDP_ISSUER))
        .discovery(StaticDiscovery::new([("scaffolder", base)]))
}

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// The user principal catalog must see: jane, on behalf of whom scaffolder acts.
#[track_caller]
fn assert_jane_via_scaffolder(principal: &Value) {
    assert_eq!(principal["subject"], "user:default/jane");
    assert_eq!(principal["principalType"], "user");
    assert_eq!(principal["credential"], "obo");
    assert_eq!(principal["actor"], "plugin:scaffolder");
}

// ---------------------------------------------------------------------------------------
// The delegated (Backstage) form
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn scaffolder_calls_catalog_on_behalf_of_a_backstage_user() {
    let (idp, scaffolder, catalog) = world(backstage_catalog).await;
    let user_exp = now() + 900;
    let user_token = idp.user_token(IDP_ISSUER, "user:default/jane", GROUPS, user_exp);

    let (status, principal) = scaffolder.proxy(&user_token).await;
    assert_eq!(status, StatusCode::OK, "{principal}");
    assert_jane_via_scaffolder(&principal);

    // The token scaffolder sends: a plugin token from scaffolder to catalog whose `obo` is
    // the limited user token, exactly as the identity provider signed it.
    let sent = obo_token(&scaffolder, &user_token).await;
    let (header, claims) = header_and_claims(&sent);
    assert_eq!(header["typ"], PLUGIN_TYP);
    assert_eq!(claims["sub"], "scaffolder");
    assert_eq!(claims["aud"], "catalog");
    let user_claims = header_and_claims(&user_token).1;
    let iat = user_claims["iat"].as_u64().expect("iat");
    let proof = user_claims["uip"].as_str().expect("uip");
    assert_eq!(
        claims["obo"].as_str().expect("obo is a string"),
        format!(
            "{}.{proof}",
            limited_parts(&idp.key.kid, "user:default/jane", iat, user_exp)
        )
    );
    let (reply, event) = catalog.call(Method::GET, "/entities", &sent).await;
    // The audit event tells a service acting for a user from one acting for itself.
    assert_jane_via_scaffolder(&assert_allowed(&reply, &event));
    assert_eq!(event.credential, Some(CredentialKind::Obo));
    assert_eq!(event.principal_type, Some(PrincipalType::User));
    assert_eq!(event.actor.as_deref(), Some("plugin:scaffolder"));
}

/// The on-behalf-of token scaffolder's client mints for the user of `user_token`, with
/// the principal scaffolder's layer makes of it.
async fn obo_token(scaffolder: &Scaffolder, user_token: &str) -> String {
    let principal = verified(&scaffolder.auth, user_token).await;
    scaffolder
        .client
        .token_for(Some(&principal), "catalog")
        .await
        .expect("an on-behalf-of token")
        .expose_secret()
        .to_owned()
}

/// The principal `auth`'s layer hands a handler for `token`.
async fn verified(auth: &Auth, token: &str) -> Principal {
    use tower::ServiceExt as _;
    let captured = Arc::new(std::sync::Mutex::new(None::<Principal>));
    let sink = captured.clone();
    let app: Router = Router::new()
        .route(
            "/me",
            get(move |p: Principal| async move {
                *sink.lock().expect("lock") = Some(p);
            }),
        )
        .layer(auth.layer());
    let response = app
        .oneshot(common::bearer(Method::GET, "/me", token))
        .await
        .expect("infallible");
    assert_eq!(response.status(), StatusCode::OK);
    let principal = captured.lock().expect("lock").take();
    principal.expect("the handler ran")
}

// ---------------------------------------------------------------------------------------
// Forged on-behalf-of tokens: a key of the test's own is "scaffolder"
// ---------------------------------------------------------------------------------------

/// A forging key published as scaffolder's, the identity provider, and a catalog that
/// verifies Backstage users and finds scaffolder at the forger's key server.
struct Forgery {
    key: SigningKey,
    server: KeyServer,
    idp: Idp,
    catalog: Catalog,
}

impl Forgery {
    async fn start() -> Self {
        Self::with(backstage_catalog).await
    }

    async fn with(catalog: impl FnOnce(&Idp, &str) -> AuthBuilder) -> Self {
        let key = SigningKey::es256("forged-scaffolder-key");
        let server = KeyServer::start(&[&key]).await;
        let idp = Idp::start(IDP_KID).await;
        let catalog = Catalog::start(catalog(&idp, server.base())).await;
        Self {
            key,
            server,
            idp,
            catalog,
        }
    }

    /// A plugin token from scaffolder to catalog with `extra` claims, living `life` seconds.
    fn token(&self, extra: Value, life: u64) -> String {
        let mut claims = json!({
            "sub": "scaffolder", "aud": "catalog", "iat": now(), "exp": now() + life,
        });
        for (name, value) in extra.as_object().expect("an object") {
            claims[name] = value.clone();
        }
        let header = json!({ "typ": PLUGIN_TYP, "alg": "ES256", "kid": self.key.kid });
        self.key.sign_raw(&header, &claims)
    }

    /// An `obo` token carrying jane's genuine limited token, which lives ten minutes.
    fn obo(&self, life: u64) -> String {
        let limited = self.idp.limited("user:default/jane", now(), now() + 600);
        self.token(json!({ "obo": limited }), life)
    }

    async fn refuses_obo(&self, limited: &str, error: VerifyError) {
        let token = self.token(json!({ "obo": limited }), 300);
        self.catalog
            .refuses(&token, &VerifyError::OnBehalfOfUser(Box::new(error)))
            .await;
    }
}

#[tokio::test]
async fn a_genuine_limited_token_from_a_known_service_is_accepted() {
    let f = Forgery::start().await;
    let (reply, event) = f.catalog.call(Method::GET, "/entities", &f.obo(300)).await;
    assert_jane_via_scaffolder(&assert_allowed(&reply, &event));
}

#[tokio::test]
async fn obo_exp_past_the_user_token_is_refused() {
    let f = Forgery::start().await;
    // The limited token ends in 600 s; the plugin token claims 900.
    f.catalog
        .refuses(&f.obo(900), &VerifyError::OutlivesUserToken)
        .await;
}

#[tokio::test]
async fn forged_limited_tokens_fail_the_check_they_break() {
    let f = Forgery::start().await;
    let (iat, exp) = (now(), now() + 600);
    let parts = limited_parts(&f.idp.key.kid, "user:default/jane", iat, exp);

    // Signed by someone else under the identity provider's kid.
    let impostor = SigningKey::es256(&f.idp.key.kid);
    f.refuses_obo(
        &format!("{parts}.{}", impostor.signature(&parts)),
        VerifyError::BadSignature,
    )
    .await;
    // A user who has left: the limited token expired (so did the user token).
    f.refuses_obo(
        &f.idp
            .limited("user:default/jane", now() - 7200, now() - 3600),
        VerifyError::Expired,
    )
    .await;
    // Not a user at all.
    f.refuses_obo(
        &f.idp.limited("group:default/admins", iat, exp),
        VerifyError::WrongSubject,
    )
    .await;
    // A full user token is not a limited one: forwarding it would hand out the user's keys.
    f.refuses_obo(
        &f.idp
            .user_token(IDP_ISSUER, "user:default/jane", GROUPS, exp),
        VerifyError::WrongType,
    )
    .await;
    // Unsigned, key-carrying, or not a JWS.
    let none = format!(
        "{}.{}.",
        b64url(br#"{"typ":"vnd.backstage.limited-user","alg":"none"}"#),
        b64url(br#"{"sub":"user:default/jane"}"#)
    );
    f.refuses_obo(&none, VerifyError::AlgorithmNone).await;
    let jku = f.idp.key.sign_raw(
        &json!({ "typ": "vnd.backstage.limited-user", "alg": "ES256", "jku": "http://evil/jwks" }),
        &json!({ "sub": "user:default/jane", "iat": iat, "exp": exp }),
    );
    f.refuses_obo(&jku, VerifyError::KeyInHeader("jku")).await;
    f.refuses_obo("not-a-token", VerifyError::Malformed("not a compact JWS"))
        .await;
}

#[tokio::test]
async fn malformed_on_behalf_of_claims_are_refused() {
    // Trusting scaffolder in both forms, so each claim is judged on its shape.
    let f = Forgery::with(|idp, base| backstage_catalog(idp, base).trusted_actors(["scaffolder"]))
        .await;
    let limited = f.idp.limited("user:default/jane", now(), now() + 600);
    f.catalog
        .refuses(
            &f.token(json!({ "obo": 42 }), 300),
            &VerifyError::Malformed("obo is not a string"),
        )
        .await;
    f.catalog
        .refuses(
            &f.token(
                json!({ "obo": limited, "act": { "sub": "scaffolder" } }),
                300,
            ),
            &VerifyError::Malformed("token carries both obo and act"),
        )
        .await;
    // The plugin token's own checks come first: a token for search is not for catalog.
    let mut for_search = f.token(json!({ "obo": limited, "aud": "search" }), 300);
    f.catalog
        .refuses(&for_search, &VerifyError::WrongAudience)
        .await;
    // A subject that could steer discovery is refused before any key is fetched.
    let fetched = f.server.total_hits();
    for_search = f.token(json!({ "obo": limited, "sub": "../scaffolder" }), 300);
    f.catalog
        .refuses(&for_search, &VerifyError::WrongSubject)
        .await;
    assert_eq!(f.server.total_hits(), fetched);
}

#[tokio::test]
async fn a_limited_token_alone_opens_nothing() {
    let f = Forgery::start().await;
    let limited = f.idp.limited("user:default/jane", now(), now() + 600);
    f.catalog.refuses(&limited, &VerifyError::WrongType).await;
}

#[tokio::test]
async fn on_behalf_of_is_refused_on_sensitive_routes() {
    let f = Forgery::start().await;
    let (reply, event) = f
        .catalog
        .call(Method::POST, "/admin/tokens", &f.obo(300))
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.body);
    assert_eq!(event.reason, "sensitive_route");
    assert_eq!(event.actor.as_deref(), Some("plugin:scaffolder"));
}

#[tokio::test]
async fn obo_needs_a_backstage_identity_provider() {
    let f = Forgery::with(|_, base| {
        Auth::builder(SERVICE).discovery(StaticDiscovery::new([("scaffolder", base)]))
    })
    .await;
    f.catalog
        .refuses(
            &f.obo(300),
            &VerifyError::NoUserProvider(
                "no Backstage identity provider is configured to verify its user",
            ),
        )
        .await;
}

// ---------------------------------------------------------------------------------------
// The actor form (RFC 8693 `act`), for users of other identity providers
// ---------------------------------------------------------------------------------------

/// Catalog trusting `actors` to act for users, finding scaffolder at `base`.
fn trusting(actors: &'static [&'static str]) -> impl FnOnce(&Idp, &str) -> AuthBuilder {
    move |_, base| {
        Auth::builder(SERVICE)
            .discovery(StaticDiscovery::new([
                ("scaffolder", base),
                ("search", base),
            ]))
            .trusted_actors(actors.iter().copied())
    }
}

#[tokio::test]
async fn scaffolder_acts_for_an_oidc_user_where_trusted() {
    let idp = Idp::start(IDP_KID).await;
    let oidc = UserProvider::oidc(IDP_ISSUER)
        .audiences(["scaffolder"])
        .jwks_url(idp.server.jwks_url());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    let catalog = Catalog::start(trusting(&["scaffolder"])(&idp, &base)).await;
    let scaffolder = Scaffolder::start(listener, oidc, &catalog.server.base).await;

    let user_exp = now() + 300;
    let user_token = idp.key.sign(&json!({
        "iss": IDP_ISSUER, "aud": "scaffolder", "sub": "jane", "iat": now(), "exp": user_exp,
    }));
    let (status, principal) = scaffolder.proxy(&user_token).await;
    assert_eq!(status, StatusCode::OK, "{principal}");
    assert_jane_via_scaffolder(&principal);

    // The wire format: the user is the subject, scaffolder the actor; exp clamped.
    let sent = obo_token(&scaffolder, &user_token).await;
    let (_, claims) = header_and_claims(&sent);
    assert_eq!(claims["sub"], "user:default/jane");
    assert_eq!(claims["act"], json!({ "sub": "scaffolder" }));
    assert!(claims.get("obo").is_none());
    assert_eq!(claims["exp"].as_u64(), Some(user_exp));
}

#[tokio::test]
async fn the_actor_form_is_taken_only_from_trusted_actors() {
    let user = json!({ "sub": "user:default/jane", "act": { "sub": "scaffolder" } });
    // Nobody trusted: refused before discovery or any fetch.
    let f = Forgery::with(trusting(&[])).await;
    f.catalog
        .refuses(&f.token(user.clone(), 300), &VerifyError::UntrustedActor)
        .await;
    assert_eq!(f.server.total_hits(), 0, "no key was fetched");

    let f = Forgery::with(trusting(&["scaffolder"])).await;
    let (reply, event) = f
        .catalog
        .call(Method::GET, "/entities", &f.token(user.clone(), 300))
        .await;
    assert_jane_via_scaffolder(&assert_allowed(&reply, &event));
    // search is a known service, but not trusted to act for users.
    let from_search = json!({ "sub": "user:default/jane", "act": { "sub": "search" } });
    f.catalog
        .refuses(&f.token(from_search, 300), &VerifyError::UntrustedActor)
        .await;
    // The subject must be a user's entity ref, exactly.
    for sub in ["jane", "plugin:scaffolder", "group:default/admins"] {
        let claims = json!({ "sub": sub, "act": { "sub": "scaffolder" } });
        f.catalog
            .refuses(&f.token(claims, 300), &VerifyError::WrongSubject)
            .await;
    }
    // The actor must be a service id, in the RFC 8693 shape.
    let fetched = f.server.total_hits();
    let steering = json!({ "sub": "user:default/jane", "act": { "sub": "../scaffolder" } });
    f.catalog
        .refuses(&f.token(steering, 300), &VerifyError::WrongSubject)
        .await;
    assert_eq!(f.server.total_hits(), fetched, "no fetch for a bad actor");
    let flat = json!({ "sub": "user:default/jane", "act": "scaffolder" });
    f.catalog
        .refuses(
            &f.token(flat, 300),
            &VerifyError::Malformed("act is not an object naming a service in sub"),
        )
        .await;
}

#[tokio::test]
async fn trusted_actors_are_checked_at_build_time() {
    let err = Auth::builder(SERVICE)
        .discovery(StaticDiscovery::new([("scaffolder", "http://127.0.0.1:9")]))
        .trusted_actors(["Scaffolder"])
        .build()
        .expect_err("not a service id");
    assert_eq!(err.path(), Some("s2s.trustedActors[0]"));
    let err = Auth::builder(SERVICE)
        .trusted_actors(["scaffolder"])
        .build()
        .expect_err("no discovery");
    assert_eq!(err.path(), Some("s2s.trustedActors"));
    let yaml = "s2s:\n  serviceId: catalog\n  discovery:\n    scaffolder: http://127.0.0.1:9\n  trustedActors: [scaffolder, '../x']\n";
    let err = Auth::from_yaml_str(yaml).expect_err("bad actor");
    assert_eq!(err.path(), Some("s2s.trustedActors[1]"));
}

#[tokio::test]
async fn restricted_principals_are_never_delegated() {
    let scaffolder = Auth::builder("scaffolder")
        .plugin_tokens(PluginTokens::new(Arc::new(MemoryStore::default())))
        .build()
        .expect("builds");
    let ci = Principal::new(
        PrincipalType::Service,
        "external:ci",
        CredentialKind::Static,
    )
    .with_restrictions(
        AccessRestrictions::new([AccessRestriction::plugin("scaffolder")]).expect("valid"),
    );
    let err = scaffolder
        .on_behalf_of_token(&ci, "catalog")
        .await
        .expect_err("restricted");
    assert!(
        matches!(err, IssueError::CannotDelegate(DelegationError::Restricted)),
        "{err}"
    );
}

#[tokio::test]
async fn the_users_proof_never_shows() {
    let (idp, scaffolder, _catalog) = world(backstage_catalog).await;
    let user_token = idp.user_token(IDP_ISSUER, "user:default/jane", GROUPS, now() + 600);
    let principal = verified(&scaffolder.auth, &user_token).await;
    let proof = header_and_claims(&user_token).1["uip"]
        .as_str()
        .expect("uip")
        .to_owned();
    let obo = obo_token(&scaffolder, &user_token).await;
    let shown = format!(
        "{principal:?} {} {:?}",
        serde_json::to_string(&principal).expect("serializes"),
        scaffolder.client
    );
    for secret in [proof.as_str(), user_token.as_str(), obo.as_str()] {
        for form in common::leak_forms(secret) {
            assert!(!shown.contains(&form), "leaked: {shown}");
        }
    }
}

#[tokio::test]
async fn a_second_hop_never_outlives_the_first() {
    let f = Forgery::start().await;
    // catalog, which also issues, receives jane's obo token living two minutes (her limited
    // token lives ten) and acts for her towards search.
    let catalog = backstage_catalog(&f.idp, f.server.base())
        .plugin_tokens(PluginTokens::new(Arc::new(MemoryStore::default())))
        .build()
        .expect("builds");
    let received = f.obo(120);
    let jane = verified(&catalog, &received).await;
    assert_eq!(jane.credential(), CredentialKind::Obo);
    let onward = catalog
        .on_behalf_of_token(&jane, "search")
        .await
        .expect("an on-behalf-of token");
    let (_, claims) = header_and_claims(onward.expose_secret());
    let (_, first) = header_and_claims(&received);
    assert_eq!(claims["sub"], "catalog");
    assert_eq!(
        claims["obo"], first["obo"],
        "the same proof of jane travels on"
    );
    assert!(claims["exp"].as_u64() <= first["exp"].as_u64());
}
