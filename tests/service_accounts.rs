//! Service accounts end to end: the admin API (as an admin, as a user who is not one, as a
//! token a machine holds), their tokens through the layer (allowed, restricted, revoked,
//! expired, disabled, re-enabled), the audit trail, last-used times written in batches, no
//! store access per request, failing closed when the store stops answering, and replicas
//! sharing a store (in memory, and a real PostgreSQL from `.ci/run`).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use http::{Method, StatusCode, header};
use s2s_auth::audit::{EventKind, MemoryAuditSink};
use s2s_auth::restrictions::{AccessRestriction, AccessRestrictions, Action};
use s2s_auth::service_account::{
    DEFAULT_PATH, NewAccount, NewToken, ServiceAccounts, TOKEN_PATTERN,
};
use s2s_auth::store::{
    AccountToken, AccountsSnapshot, IssuedToken, MemoryStore, PostgresStore, PublicKeyRecord,
    Revocation, ServiceAccount, Store, StoreError, StoreFuture, TokenDigest,
};
use s2s_auth::{Auth, CredentialKind, Principal, PrincipalType, StaticToken, UserProvider};
use serde_json::{Value, json};

use common::*;

const CI_TOKEN: &str = "ci-static-token-123456";

/// A store that counts what is asked of it and can be made to fail, around another store.
struct Counting {
    inner: Arc<dyn Store>,
    reads: AtomicUsize,
    touches: AtomicUsize,
    failing: std::sync::atomic::AtomicBool,
}

impl Counting {
    fn new(inner: Arc<dyn Store>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            reads: AtomicUsize::new(0),
            touches: AtomicUsize::new(0),
            failing: std::sync::atomic::AtomicBool::new(false),
        })
    }

    fn fail<'a, T: Send + 'a>(&'a self, work: StoreFuture<'a, T>) -> StoreFuture<'a, T> {
        if self.failing.load(Ordering::SeqCst) {
            Box::pin(async { Err(StoreError::Unavailable("the test broke the store".into())) })
        } else {
            work
        }
    }
}

impl Store for Counting {
    fn put_public_key<'a>(&'a self, key: &'a PublicKeyRecord) -> StoreFuture<'a, ()> {
        self.inner.put_public_key(key)
    }
    fn public_keys<'a>(&'a self, s: &'a str, now: i64) -> StoreFuture<'a, Vec<PublicKeyRecord>> {
        self.inner.public_keys(s, now)
    }
    fn prune_public_keys(&self, now: i64) -> StoreFuture<'_, u64> {
        self.inner.prune_public_keys(now)
    }
    fn revoke<'a>(&'a self, r: &'a Revocation) -> StoreFuture<'a, ()> {
        self.inner.revoke(r)
    }
    fn revocations(&self, now: i64) -> StoreFuture<'_, Vec<Revocation>> {
        self.inner.revocations(now)
    }
    fn prune_revocations(&self, now: i64) -> StoreFuture<'_, u64> {
        self.inner.prune_revocations(now)
    }
    fn record_issued<'a>(&'a self, t: &'a IssuedToken) -> StoreFuture<'a, ()> {
        self.inner.record_issued(t)
    }
    fn issued_token<'a>(&'a self, j: &'a str, now: i64) -> StoreFuture<'a, Option<IssuedToken>> {
        self.inner.issued_token(j, now)
    }
    fn create_account<'a>(&'a self, a: &'a ServiceAccount) -> StoreFuture<'a, ()> {
        self.fail(self.inner.create_account(a))
    }
    fn update_account<'a>(&'a self, a: &'a ServiceAccount) -> StoreFuture<'a, ()> {
        self.fail(self.inner.update_account(a))
    }
    fn delete_account<'a>(&'a self, n: &'a str) -> StoreFuture<'a, bool> {
        self.fail(self.inner.delete_account(n))
    }
    fn account<'a>(&'a self, n: &'a str) -> StoreFuture<'a, Option<ServiceAccount>> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.fail(self.inner.account(n))
    }
    fn create_account_token<'a>(&'a self, t: &'a AccountToken) -> StoreFuture<'a, ()> {
        self.fail(self.inner.create_account_token(t))
    }
    fn account_tokens<'a>(&'a self, a: &'a str) -> StoreFuture<'a, Vec<AccountToken>> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.fail(self.inner.account_tokens(a))
    }
    fn delete_account_token<'a>(&'a self, a: &'a str, id: &'a str) -> StoreFuture<'a, bool> {
        self.fail(self.inner.delete_account_token(a, id))
    }
    fn touch_account_tokens<'a>(&'a self, used: &'a [(String, i64)]) -> StoreFuture<'a, ()> {
        self.touches.fetch_add(1, Ordering::SeqCst);
        self.fail(self.inner.touch_account_tokens(used))
    }
    fn accounts_snapshot(&self) -> StoreFuture<'_, AccountsSnapshot> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.fail(self.inner.accounts_snapshot())
    }
    fn revocation_signal(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        self.inner.revocation_signal()
    }
}

/// `catalog` with users from an identity provider, a static CI token, and service
/// accounts managed by jane.
struct Setup {
    idp: Arc<kit::Idp>,
    auth: Auth,
    router: Router,
    audit: Arc<MemoryAuditSink>,
    store: Arc<Counting>,
}

async fn setup_on(
    inner: Arc<dyn Store>,
    accounts: impl FnOnce(ServiceAccounts) -> ServiceAccounts,
) -> Setup {
    let idp = Arc::new(kit::Idp::start("idp-key").await);
    setup_with_idp(idp, inner, accounts)
}

fn setup_with_idp(
    idp: Arc<kit::Idp>,
    inner: Arc<dyn Store>,
    accounts: impl FnOnce(ServiceAccounts) -> ServiceAccounts,
) -> Setup {
    let store = Counting::new(inner);
    let audit = Arc::new(MemoryAuditSink::default());
    let auth = Auth::builder(SERVICE)
        .user_provider(UserProvider::oidc(idp.issuer.clone()).audiences([SERVICE]))
        .static_token(StaticToken::new("ci-bot", CI_TOKEN))
        .service_accounts(accounts(
            ServiceAccounts::new(["user:default/jane"]).store(store.clone()),
        ))
        .route(
            "/admin/tokens",
            [],
            s2s_auth::RoutePolicy::authenticated().sensitive(),
        )
        .audit_sink(audit.clone())
        .build()
        .expect("builds");
    let router = echo_router()
        .merge(auth.service_accounts_router())
        .layer(auth.layer());
    Setup {
        idp,
        auth,
        router,
        audit,
        store,
    }
}

async fn setup() -> Setup {
    setup_on(Arc::new(MemoryStore::new()), |a| a).await
}

fn read_catalog() -> Value {
    json!([{ "plugin": "catalog", "permissionAttribute": { "action": ["read"] } }])
}

impl Setup {
    fn user(&self, name: &str) -> String {
        let now = kit::now();
        self.idp.key.sign(&json!({
            "iss": self.idp.issuer, "sub": name, "aud": SERVICE, "iat": now, "exp": now + 3600,
        }))
    }

    fn jane(&self) -> String {
        self.user("jane")
    }

    /// A call to the admin API (or any route) with a JSON body.
    async fn api(&self, method: Method, path: &str, token: &str, body: Option<Value>) -> Reply {
        let req = request(method, path)
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header(header::CONTENT_TYPE, "application/json");
        let body = body.map_or_else(Body::empty, |b| Body::from(b.to_string()));
        send(&self.router, req.body(body).unwrap()).await
    }

    async fn create_account(&self, name: &str, permissions: Value) -> Reply {
        self.api(
            Method::POST,
            DEFAULT_PATH,
            &self.jane(),
            Some(json!({ "name": name, "description": "deploys the catalog", "permissions": permissions })),
        )
        .await
    }

    async fn create_token(&self, account: &str, body: Value) -> (String, Value) {
        let reply = self
            .api(
                Method::POST,
                &format!("{DEFAULT_PATH}/{account}/tokens"),
                &self.jane(),
                Some(body),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        assert_eq!(
            reply.headers.get(header::CACHE_CONTROL).unwrap(),
            "no-store"
        );
        let json = reply.json();
        (json["token"].as_str().unwrap().to_owned(), json)
    }

    /// A request with a token, and its request audit event.
    async fn call(
        &self,
        method: Method,
        path: &str,
        token: &str,
    ) -> (Reply, s2s_auth::audit::AuditEvent) {
        // Only this request's events; earlier ones (the admin changes) stay in the sink.
        let before = self.audit.events().len();
        let reply = send(&self.router, bearer(method, path, token)).await;
        let mut events: Vec<_> = self
            .audit
            .events()
            .into_iter()
            .skip(before)
            .filter(|e| e.event == EventKind::Request)
            .collect();
        assert_eq!(events.len(), 1, "{events:#?}");
        (reply, events.remove(0))
    }
}

#[tokio::test]
async fn an_account_token_reads_the_catalog_and_nothing_more() {
    let s = setup().await;
    let reply = s.create_account("ci-deployer", read_catalog()).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let account = reply.json();
    assert_eq!(account["name"], "ci-deployer");
    assert_eq!(account["enabled"], true);
    assert_eq!(account["permissions"], read_catalog());

    let (token, info) = s
        .create_token("ci-deployer", json!({ "name": "first" }))
        .await;
    assert!(token.starts_with("s2s_sa_"));
    assert_eq!(
        token.len(),
        50,
        "the prefix and 43 characters: {TOKEN_PATTERN}"
    );
    assert!(info["id"].as_str().unwrap().starts_with("sat_"));
    assert_eq!(info["expiresAt"], Value::Null);

    let (reply, event) = s.call(Method::GET, "/entities", &token).await;
    let principal = assert_allowed(&reply, &event);
    assert_eq!(principal["subject"], "service-account:ci-deployer");
    assert_eq!(principal["principalType"], "service");
    assert_eq!(principal["credential"], "service-account");
    assert_eq!(principal["actor"], Value::Null);
    // Audited as the account acting for itself: no actor, its own credential kind.
    assert_eq!(
        event.subject.as_deref(),
        Some("service-account:ci-deployer")
    );
    assert_eq!(event.credential, Some(CredentialKind::ServiceAccount));
    assert_eq!(event.actor, None);

    // Read-only: a write is outside the account's permissions.
    let (reply, event) = s.call(Method::POST, "/entities", &token).await;
    assert_forbidden(
        &reply,
        &event,
        "credential is restricted to other actions than `create`",
        "restricted_action",
    );
    // Sensitive routes take a user's own credential only.
    let (reply, event) = s.call(Method::GET, "/admin/tokens", &token).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.body);
    assert_eq!(event.reason, "sensitive_route");
}

#[tokio::test]
async fn rotation_with_two_tokens_then_revoke_one_then_disable_and_enable() {
    rotation_flow(setup().await).await;
}

#[tokio::test]
async fn the_rotation_flow_on_sqlite() {
    let store = s2s_auth::store::SqliteStore::open(":memory:")
        .await
        .expect("opens");
    rotation_flow(setup_on(Arc::new(store), |a| a).await).await;
}

#[tokio::test]
async fn the_rotation_flow_on_postgres() {
    let Some(url) = postgres_url("the_rotation_flow_on_postgres") else {
        return;
    };
    let store = PostgresStore::connect(&url).await.expect("connects");
    // A database that outlived an earlier, failed run may still hold the account.
    let _ = store.delete_account("ci-deployer").await;
    rotation_flow(setup_on(Arc::new(store), |a| a).await).await;
}

/// Create, two tokens (both valid), revoke one, disable (all refused), enable, delete; the
/// audit trail of it all.
async fn rotation_flow(s: Setup) {
    let reply = s.create_account("ci-deployer", read_catalog()).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let (first, first_info) = s
        .create_token("ci-deployer", json!({ "name": "first" }))
        .await;
    let (second, _) = s
        .create_token("ci-deployer", json!({ "name": "second" }))
        .await;
    for token in [&first, &second] {
        let (reply, _) = s.call(Method::GET, "/entities", token).await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "both valid during the rotation"
        );
    }
    // Listing never shows a secret.
    let listed = s
        .api(
            Method::GET,
            &format!("{DEFAULT_PATH}/ci-deployer/tokens"),
            &s.jane(),
            None,
        )
        .await;
    assert_eq!(listed.status, StatusCode::OK);
    assert!(!listed.body.contains(&first) && !listed.body.contains(&second));
    let names: Vec<_> = listed
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].clone())
        .collect();
    assert_eq!(names, [json!("first"), json!("second")]);

    // Revoke the first: refused at once, the second still works.
    let id = first_info["id"].as_str().unwrap();
    let reply = s
        .api(
            Method::DELETE,
            &format!("{DEFAULT_PATH}/ci-deployer/tokens/{id}"),
            &s.jane(),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.body);
    let (reply, event) = s.call(Method::GET, "/entities", &first).await;
    assert_invalid_token(
        &reply,
        &event,
        "token is not recognised",
        "token_unrecognised",
    );
    let (reply, _) = s.call(Method::GET, "/entities", &second).await;
    assert_eq!(reply.status, StatusCode::OK);
    // Revoking it again: 404.
    let reply = s
        .api(
            Method::DELETE,
            &format!("{DEFAULT_PATH}/ci-deployer/tokens/{id}"),
            &s.jane(),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.body);

    // Disable: every token refused. Enable: they work again.
    let reply = s
        .api(
            Method::POST,
            &format!("{DEFAULT_PATH}/ci-deployer/disable"),
            &s.jane(),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.json()["enabled"], false);
    let (reply, event) = s.call(Method::GET, "/entities", &second).await;
    assert_invalid_token(
        &reply,
        &event,
        "service account is disabled",
        "account_disabled",
    );
    // A disabled account gets no new tokens.
    let reply = s
        .api(
            Method::POST,
            &format!("{DEFAULT_PATH}/ci-deployer/tokens"),
            &s.jane(),
            Some(json!({ "name": "third" })),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CONFLICT, "{}", reply.body);
    let listed = s
        .api(
            Method::GET,
            &format!("{DEFAULT_PATH}?enabled=false"),
            &s.jane(),
            None,
        )
        .await;
    // Only disabled accounts, ci-deployer among them (a shared PostgreSQL database may
    // hold other tests' accounts too).
    let listed = listed.json();
    let listed = listed.as_array().unwrap();
    assert!(listed.iter().all(|a| a["enabled"] == false), "{listed:?}");
    assert!(
        listed.iter().any(|a| a["name"] == "ci-deployer"),
        "{listed:?}"
    );
    let reply = s
        .api(
            Method::POST,
            &format!("{DEFAULT_PATH}/ci-deployer/enable"),
            &s.jane(),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let (reply, _) = s.call(Method::GET, "/entities", &second).await;
    assert_eq!(reply.status, StatusCode::OK, "re-enabled: works again");

    // Delete: every token refused; the name is free again.
    let reply = s
        .api(
            Method::DELETE,
            &format!("{DEFAULT_PATH}/ci-deployer"),
            &s.jane(),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    let (reply, _) = s.call(Method::GET, "/entities", &second).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    let reply = s
        .api(
            Method::GET,
            &format!("{DEFAULT_PATH}/ci-deployer"),
            &s.jane(),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);

    // Every change is audited, naming jane.
    let kinds: Vec<EventKind> = s
        .audit
        .events()
        .into_iter()
        .filter(|e| e.event != EventKind::Request)
        .map(|e| {
            assert_eq!(e.subject.as_deref(), Some("user:default/jane"));
            assert_eq!(e.target.as_deref(), Some("service-account:ci-deployer"));
            e.event
        })
        .collect();
    assert_eq!(
        kinds,
        [
            EventKind::AccountCreated,
            EventKind::AccountTokenIssued,
            EventKind::AccountTokenIssued,
            EventKind::AccountTokenRevoked,
            EventKind::AccountDisabled,
            EventKind::AccountEnabled,
            EventKind::AccountDeleted
        ],
        "refusals (the second revoke, the token for a disabled account) change nothing and are not lifecycle events"
    );
}

#[tokio::test]
async fn the_admin_api_refuses_bad_input_with_exact_statuses() {
    let s = setup().await;
    let jane = s.jane();
    let post = |body: Value| s.api(Method::POST, DEFAULT_PATH, &jane, Some(body));
    // A password or hash: never.
    for field in ["password", "passwordHash", "hash"] {
        let mut body = json!({ "name": "ci", "permissions": read_catalog() });
        body[field] = json!("hunter2");
        let reply = post(body).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{field}");
        assert!(reply.body.contains("no password"), "{}", reply.body);
        assert!(!reply.body.contains("hunter2"));
    }
    // Bad names.
    for name in [
        "CI",
        "ci:deployer",
        "ci/deployer",
        "",
        "-ci",
        &"a".repeat(64),
    ] {
        let reply = post(json!({ "name": name, "permissions": read_catalog() })).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{name:?}: {}",
            reply.body
        );
    }
    // Permissions missing, empty, or malformed.
    for permissions in [
        Value::Null,
        json!([]),
        json!([{ "plugin": "catalog", "permissionAttribute": { "action": ["write"] } }]),
    ] {
        let mut body = json!({ "name": "ci" });
        if !permissions.is_null() {
            body["permissions"] = permissions;
        }
        let reply = post(body).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.body);
    }
    // Unknown field; not an object; too large.
    let reply = post(json!({ "name": "ci", "permissions": read_catalog(), "role": "admin" })).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(
        reply.body.contains("unknown field `role`"),
        "{}",
        reply.body
    );
    let reply = post(json!(["ci"])).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    let reply = post(
        json!({ "name": "ci", "permissions": read_catalog(), "description": "x".repeat(20_000) }),
    )
    .await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    // A duplicate: 409.
    assert_eq!(
        s.create_account("ci", read_catalog()).await.status,
        StatusCode::CREATED
    );
    assert_eq!(
        s.create_account("ci", read_catalog()).await.status,
        StatusCode::CONFLICT
    );
    // PATCH: no renaming, no enabling, no password.
    let path = format!("{DEFAULT_PATH}/ci");
    for body in [
        json!({ "name": "other" }),
        json!({ "enabled": false }),
        json!({ "password": "x" }),
        json!({}),
    ] {
        let reply = s.api(Method::PATCH, &path, &jane, Some(body.clone())).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{body}: {}",
            reply.body
        );
    }
    let reply = s
        .api(
            Method::PATCH,
            &path,
            &jane,
            Some(json!({ "description": "new" })),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json()["description"], "new");
    // Unknown account: 404; a bad filter: 400.
    let reply = s
        .api(Method::GET, &format!("{DEFAULT_PATH}/nobody"), &jane, None)
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    let reply = s
        .api(
            Method::GET,
            &format!("{DEFAULT_PATH}?enabled=maybe"),
            &jane,
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    // Tokens: permissions beyond the account's, a bad expiry, a duplicate name.
    let tokens = format!("{DEFAULT_PATH}/ci/tokens");
    for body in [
        json!({ "name": "t", "permissions": [{ "plugin": "search" }] }),
        json!({ "name": "t", "permissions": [{ "plugin": "catalog" }] }),
        json!({ "name": "t", "expiresInSeconds": 0 }),
        json!({ "name": "t", "expiresInSeconds": "soon" }),
        json!({ "name": "T" }),
    ] {
        let reply = s
            .api(Method::POST, &tokens, &jane, Some(body.clone()))
            .await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{body}: {}",
            reply.body
        );
    }
    s.create_token("ci", json!({ "name": "t" })).await;
    let reply = s
        .api(Method::POST, &tokens, &jane, Some(json!({ "name": "t" })))
        .await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
    let reply = s
        .api(
            Method::POST,
            &format!("{DEFAULT_PATH}/nobody/tokens"),
            &jane,
            Some(json!({ "name": "t" })),
        )
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn only_admins_with_their_own_credential_reach_the_admin_api() {
    let s = setup().await;
    s.create_account("ci", read_catalog()).await;
    let (sa_token, _) = s.create_token("ci", json!({ "name": "t" })).await;
    // A service-account token, a static token: refused by the layer (sensitive route).
    for token in [sa_token.as_str(), CI_TOKEN] {
        let (reply, event) = s.call(Method::GET, DEFAULT_PATH, token).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.body);
        assert_eq!(
            event.reason, "credential_kind_not_allowed",
            "the admin API takes users only"
        );
        let reply = s
            .api(
                Method::POST,
                &format!("{DEFAULT_PATH}/ci/tokens"),
                token,
                Some(json!({ "name": "x" })),
            )
            .await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN);
    }
    // A user who is not an admin: refused by the handler.
    let reply = s.api(Method::GET, DEFAULT_PATH, &s.user("bob"), None).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.body);
    assert!(
        reply.body.contains("only a service-account admin"),
        "{}",
        reply.body
    );
    // No credential: 401.
    let reply = send(
        &s.router,
        request(Method::GET, DEFAULT_PATH)
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    // The Rust API applies the same rule.
    let admin = s.auth.service_accounts().unwrap();
    let service = Principal::new(
        PrincipalType::Service,
        "external:ci-bot",
        CredentialKind::Static,
    );
    assert_eq!(
        admin.accounts(&service, None).await.unwrap_err().status(),
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn token_permissions_narrow_the_account_and_both_are_enforced() {
    let s = setup().await;
    // The account may read and write the catalog, and use the search plugin.
    let reply = s
        .create_account(
            "etl",
            json!([{ "plugin": "catalog" }, { "plugin": "search" }]),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    let (narrow, info) = s
        .create_token("etl", json!({ "name": "reader", "permissions": [{ "plugin": "catalog", "permissionAttribute": { "action": ["read"] } }] }))
        .await;
    assert_eq!(info["permissions"], read_catalog());
    let (wide, _) = s.create_token("etl", json!({ "name": "writer" })).await;
    let (reply, event) = s.call(Method::POST, "/entities", &narrow).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.body);
    assert_eq!(event.reason, "restricted_action");
    let (reply, _) = s.call(Method::POST, "/entities", &wide).await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "the account's own permissions"
    );
    // Narrow the account to search only: neither token may call the catalog now.
    let reply = s
        .api(
            Method::PATCH,
            &format!("{DEFAULT_PATH}/etl"),
            &s.jane(),
            Some(json!({ "permissions": [{ "plugin": "search" }] })),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    for token in [&narrow, &wide] {
        let (reply, event) = s.call(Method::GET, "/entities", token).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.body);
        assert_eq!(event.reason, "restricted_plugin");
    }
}

#[tokio::test]
async fn malformed_unknown_and_expired_tokens_are_refused() {
    let s = setup().await;
    s.create_account("ci", read_catalog()).await;
    let (token, _) = s.create_token("ci", json!({ "name": "t" })).await;
    let mut altered = token.clone().into_bytes();
    let last = altered.len() - 1;
    altered[last] = if altered[last] == b'A' { b'B' } else { b'A' };
    let altered = String::from_utf8(altered).unwrap();
    let unknown = format!("s2s_sa_{}", "A".repeat(43));
    for bad in [
        altered.as_str(),
        unknown.as_str(),
        "s2s_sa_short",
        &format!("{token}A"),
        &format!("s2s_sa_{}", "A".repeat(4000)),
    ] {
        let (reply, event) = s.call(Method::GET, "/entities", bad).await;
        assert_invalid_token(
            &reply,
            &event,
            "token is not recognised",
            "token_unrecognised",
        );
    }
    // An expired token (written to the store as another replica would).
    let expired = format!("s2s_sa_{}", "E".repeat(43));
    let digest = TokenDigest(
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, expired.as_bytes())
            .as_ref()
            .try_into()
            .unwrap(),
    );
    s.store
        .create_account_token(&AccountToken {
            id: "sat_00000000000000000000000e".into(),
            account: "ci".into(),
            name: "expired".into(),
            digest,
            permissions: None,
            expires_at: Some(kit::now() as i64 - 10),
            created_at: kit::now() as i64 - 100,
            last_used_at: None,
        })
        .await
        .unwrap();
    // The memory store wakes the registry; wait for its read.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (reply, event) = s.call(Method::GET, "/entities", &expired).await;
        if event.reason == "token_expired" {
            assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
            break;
        }
        assert!(Instant::now() < deadline, "never seen: {}", reply.body);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A token with an expiry from the API says when.
    let (_, info) = s
        .create_token("ci", json!({ "name": "short", "expiresInSeconds": 60 }))
        .await;
    assert!(info["expiresAt"].is_string());
}

#[tokio::test]
async fn verification_reads_no_store_and_last_use_is_written_in_one_batch() {
    let s = setup().await;
    s.create_account("ci", read_catalog()).await;
    let (token, _) = s.create_token("ci", json!({ "name": "t" })).await;
    let (reply, _) = s.call(Method::GET, "/entities", &token).await;
    assert_eq!(reply.status, StatusCode::OK);
    let reads = s.store.reads.load(Ordering::SeqCst);
    for _ in 0..1000 {
        let reply = send(&s.router, bearer(Method::GET, "/entities", &token)).await;
        assert_eq!(reply.status, StatusCode::OK);
    }
    // No store access per request (the background read may have run once or twice).
    let more = s.store.reads.load(Ordering::SeqCst) - reads;
    assert!(more <= 3, "{more} store reads during 1,000 requests");
    assert_eq!(
        s.store.touches.load(Ordering::SeqCst),
        0,
        "not one write per request"
    );
    let admin = s.auth.service_accounts().unwrap();
    admin.write_last_used().await.unwrap();
    assert_eq!(
        s.store.touches.load(Ordering::SeqCst),
        1,
        "one write for the whole batch"
    );
    admin.write_last_used().await.unwrap();
    assert_eq!(
        s.store.touches.load(Ordering::SeqCst),
        1,
        "nothing new: no write"
    );
    let stored = s.store.account_tokens("ci").await.unwrap();
    let used = stored[0].last_used_at.expect("last use written");
    assert!((used - kit::now() as i64).abs() <= 2);
}

#[tokio::test]
async fn last_use_is_written_by_the_background_task() {
    let s = setup_on(Arc::new(MemoryStore::new()), |a| {
        a.last_used_interval(Duration::from_millis(200))
    })
    .await;
    s.create_account("ci", read_catalog()).await;
    let (token, _) = s.create_token("ci", json!({ "name": "t" })).await;
    for _ in 0..100 {
        let reply = send(&s.router, bearer(Method::GET, "/entities", &token)).await;
        assert_eq!(reply.status, StatusCode::OK);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while s.store.account_tokens("ci").await.unwrap()[0]
        .last_used_at
        .is_none()
    {
        assert!(
            Instant::now() < deadline,
            "the task never wrote the last use"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        s.store.touches.load(Ordering::SeqCst) <= 60,
        "batches, not a write per request"
    );
}

#[tokio::test]
async fn a_store_that_stops_answering_fails_closed_after_the_staleness_bound() {
    let s = setup_on(Arc::new(MemoryStore::new()), |a| {
        a.staleness(Duration::from_millis(300))
    })
    .await;
    s.create_account("ci", read_catalog()).await;
    let (token, _) = s.create_token("ci", json!({ "name": "t" })).await;
    let (reply, _) = s.call(Method::GET, "/entities", &token).await;
    assert_eq!(reply.status, StatusCode::OK);
    s.store.failing.store(true, Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (reply, event) = s.call(Method::GET, "/entities", &token).await;
        if reply.status == StatusCode::SERVICE_UNAVAILABLE {
            assert!(reply.headers.get(header::RETRY_AFTER).is_some());
            assert_eq!(event.reason, "revocations_unavailable");
            break;
        }
        assert_eq!(reply.status, StatusCode::OK);
        assert!(Instant::now() < deadline, "never refused as stale");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The admin API answers 503 too, without the store's words.
    let reply = s.api(Method::GET, DEFAULT_PATH, &s.jane(), None).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(!reply.body.contains("the test broke the store"));
    // Back: served again.
    s.store.failing.store(false, Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (reply, _) = s.call(Method::GET, "/entities", &token).await;
        if reply.status == StatusCode::OK {
            break;
        }
        assert!(Instant::now() < deadline, "never served again");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Two replicas on one store: a disable on one is refused on the other within `bound`.
async fn disable_on_one_replica_is_refused_on_the_other(one: Setup, two: Setup, bound: Duration) {
    let reply = one.create_account("replicated", read_catalog()).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let (token, _) = one.create_token("replicated", json!({ "name": "t" })).await;
    // The other replica learns of the new token (at once with a signal, else by polling).
    let deadline = Instant::now() + bound;
    loop {
        let (reply, _) = two.call(Method::GET, "/entities", &token).await;
        if reply.status == StatusCode::OK {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the token never reached the other replica"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let reply = one
        .api(
            Method::POST,
            &format!("{DEFAULT_PATH}/replicated/disable"),
            &one.jane(),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let (reply, _) = one.call(Method::GET, "/entities", &token).await;
    assert_eq!(
        reply.status,
        StatusCode::UNAUTHORIZED,
        "refused at once where it was disabled"
    );
    let disabled_at = Instant::now();
    loop {
        let (reply, event) = two.call(Method::GET, "/entities", &token).await;
        if reply.status == StatusCode::UNAUTHORIZED {
            assert_eq!(event.reason, "account_disabled");
            break;
        }
        assert!(
            disabled_at.elapsed() < bound,
            "still allowed on the other replica after {bound:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let reply = one
        .api(
            Method::DELETE,
            &format!("{DEFAULT_PATH}/replicated"),
            &one.jane(),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn replicas_sharing_a_memory_store() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let idp = Arc::new(kit::Idp::start("idp-key").await);
    let one = setup_with_idp(idp, store.clone(), |a| a);
    let two = setup_with_idp(one.idp.clone(), store, |a| a);
    disable_on_one_replica_is_refused_on_the_other(one, two, Duration::from_secs(5)).await;
}

#[tokio::test]
async fn replicas_sharing_postgres_refuse_a_disabled_account_within_the_bound() {
    let Some(url) =
        postgres_url("replicas_sharing_postgres_refuse_a_disabled_account_within_the_bound")
    else {
        return;
    };
    let a: Arc<dyn Store> = Arc::new(PostgresStore::connect(&url).await.expect("connects"));
    let b: Arc<dyn Store> = Arc::new(PostgresStore::connect(&url).await.expect("connects"));
    let idp = Arc::new(kit::Idp::start("idp-key").await);
    // A staleness of 2 s: polling alone would see the disable within 1 s; NOTIFY at once.
    let one = setup_with_idp(idp, a, |x| x.staleness(Duration::from_secs(2)));
    let two = setup_with_idp(one.idp.clone(), b, |x| x.staleness(Duration::from_secs(2)));
    disable_on_one_replica_is_refused_on_the_other(one, two, Duration::from_secs(2)).await;
}

#[tokio::test]
async fn the_rust_api_rotates_and_audits() {
    let s = setup().await;
    let admin_principal = Principal::new(
        PrincipalType::User,
        "user:default/jane",
        CredentialKind::User,
    );
    let admin = s.auth.service_accounts().unwrap();
    let permissions =
        AccessRestrictions::new([AccessRestriction::plugin("catalog").actions([Action::Read])])
            .unwrap();
    admin
        .create_account(
            &admin_principal,
            NewAccount::new("ci-deployer", permissions.clone()).description("CI"),
        )
        .await
        .unwrap();
    let issued = admin
        .create_token(
            &admin_principal,
            "ci-deployer",
            NewToken::new("first").expires_in(Duration::from_secs(3600)),
        )
        .await
        .unwrap();
    // The secret never shows in Debug.
    assert!(!format!("{issued:?}").contains(issued.token.expose_secret()));
    let event = s
        .audit
        .events()
        .into_iter()
        .find(|e| e.event == EventKind::AccountTokenIssued)
        .expect("audited");
    assert_eq!(event.token_fingerprint, Some(issued.token.fingerprint()));
    assert!(event.message.contains(&issued.info.id));
    let serialized = serde_json::to_string(&s.audit.events()).unwrap();
    assert!(
        !serialized.contains(issued.token.expose_secret()),
        "no secret in any audit event"
    );
    // Too wide a token: refused.
    let wider = AccessRestrictions::new([AccessRestriction::plugin("catalog")]).unwrap();
    let e = admin
        .create_token(
            &admin_principal,
            "ci-deployer",
            NewToken::new("wide").permissions(wider),
        )
        .await
        .unwrap_err();
    assert_eq!(e.status(), StatusCode::BAD_REQUEST);
    assert!(e.to_string().contains("exceed the account's"), "{e}");
    // A group admin.
    let s2 = setup_on(Arc::new(MemoryStore::new()), |_| {
        ServiceAccounts::new(["group:default/platform"])
    })
    .await;
    let member = Principal::new(
        PrincipalType::User,
        "user:default/kim",
        CredentialKind::User,
    )
    .with_ownership_entity_refs(vec!["group:default/platform".into()]);
    let admin2 = s2.auth.service_accounts().unwrap();
    assert!(admin2.accounts(&member, None).await.unwrap().is_empty());
}

/// The YAML shape (as `examples/serve.rs` serves a config): `s2s.serviceAccounts` with
/// `backend.database`, opened by `build_async`, the admin API mounted by the router wrapper.
#[tokio::test]
async fn yaml_config_keeps_accounts_in_backend_database_and_mounts_the_admin_api() {
    let idp = kit::Idp::start("idp-key").await;
    let yaml = |accounts: &str, database: bool| {
        format!(
            "s2s:\n  serviceId: catalog\n  users:\n    - type: oidc\n      issuer: {}\n      audience: catalog\n{accounts}{}",
            idp.issuer,
            if database {
                "backend:\n  database:\n    client: better-sqlite3\n    connection: ':memory:'\n"
            } else {
                ""
            }
        )
    };
    let good = "  serviceAccounts:\n    admins: [user:default/jane]\n    stalenessSeconds: 2\n";
    // A database needs build_async.
    let e = s2s_auth::AuthBuilder::from_yaml_str(&yaml(good, true))
        .unwrap()
        .build()
        .unwrap_err();
    assert_eq!(e.path(), Some("backend.database"));
    let auth = s2s_auth::AuthBuilder::from_yaml_str(&yaml(good, true))
        .unwrap()
        .build_async()
        .await
        .unwrap();
    assert!(auth.builtin_paths().contains(&DEFAULT_PATH));
    let app: Router = auth
        .router()
        .fallback(|| async { "ok" })
        .into_router()
        .unwrap();
    let now = kit::now();
    let jane = idp.key.sign(&json!({
        "iss": idp.issuer, "sub": "jane", "aud": SERVICE, "iat": now, "exp": now + 3600,
    }));
    let post = |path: String, body: Value| {
        request(Method::POST, &path)
            .header(header::AUTHORIZATION, format!("Bearer {jane}"))
            .body(Body::from(body.to_string()))
            .unwrap()
    };
    let reply = send(
        &app,
        post(
            DEFAULT_PATH.into(),
            json!({ "name": "ci", "permissions": read_catalog() }),
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let reply = send(
        &app,
        post(format!("{DEFAULT_PATH}/ci/tokens"), json!({ "name": "t" })),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let token = reply.json()["token"].as_str().unwrap().to_owned();
    let reply = send(&app, bearer(Method::GET, "/anything", &token)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    // The access table has the account's column.
    let table = auth.access_table().to_markdown();
    assert!(
        table.contains("| service-account | service-account:ci |"),
        "{table}"
    );

    // Config errors name their path.
    for (accounts, path) in [
        ("  serviceAccounts: {}\n", "s2s.serviceAccounts.admins"),
        (
            "  serviceAccounts:\n    admins: []\n",
            "s2s.serviceAccounts.admins",
        ),
        (
            "  serviceAccounts:\n    admins: [jane]\n",
            "s2s.serviceAccounts.admins[0]",
        ),
        (
            "  serviceAccounts:\n    admins: [user:default/jane]\n    stalenessSeconds: 0\n",
            "s2s.serviceAccounts.stalenessSeconds",
        ),
        (
            "  serviceAccounts:\n    admins: [user:default/jane]\n    path: admin\n",
            "s2s.serviceAccounts.path",
        ),
        (
            "  serviceAccounts:\n    admins: [user:default/jane]\n    passwords: true\n",
            "s2s.serviceAccounts.passwords",
        ),
    ] {
        let e = match s2s_auth::AuthBuilder::from_yaml_str(&yaml(accounts, false)) {
            Ok(b) => b.build().unwrap_err(),
            Err(e) => e,
        };
        assert_eq!(e.path(), Some(path), "{accounts}: {e}");
    }
    // A static token shaped like a service-account token could never reach its verifier.
    let e = Auth::builder(SERVICE)
        .static_token(StaticToken::new("x", format!("s2s_sa_{}", "A".repeat(43))))
        .build()
        .unwrap_err();
    assert!(e.to_string().contains("service-account token"), "{e}");
    // Without service accounts, such a token is refused as unsupported, not looked up.
    let plain =
        Harness::new(Auth::builder(SERVICE).static_token(StaticToken::new("ci-bot", CI_TOKEN)));
    let (reply, event) = plain.call(Method::GET, "/entities", Some(&token)).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(event.reason, "unsupported_token");
}

#[tokio::test]
async fn the_access_table_has_a_column_per_enabled_account() {
    let s = setup().await;
    s.create_account("reader", read_catalog()).await;
    s.create_account("other", json!([{ "plugin": "search" }]))
        .await;
    let table = s.auth.access_table().to_json();
    let get_row = table["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["route"] == "<unlisted>" && r["method"] == "* (read)")
        .unwrap()
        .clone();
    assert_eq!(get_row["cells"]["service-account:reader"]["status"], 200);
    assert_eq!(get_row["cells"]["service-account:other"]["status"], 403);
    assert_eq!(get_row["cells"]["service-account"]["status"], 200);
    s.api(
        Method::POST,
        &format!("{DEFAULT_PATH}/other/disable"),
        &s.jane(),
        None,
    )
    .await;
    let table = s.auth.access_table().to_markdown();
    assert!(!table.contains("service-account:other"), "{table}");
}

/// A replica that just started has not read the accounts yet: its first requests wait for
/// that one read (shared) instead of being answered 503.
#[tokio::test]
async fn a_replica_that_just_started_answers_its_first_request_after_one_read() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let first = setup_on(store.clone(), |a| a).await;
    first.create_account("ci", read_catalog()).await;
    let (token, _) = first.create_token("ci", json!({ "name": "t" })).await;
    let restarted = setup_with_idp(first.idp.clone(), store, |a| a);
    let (reply, event) = restarted.call(Method::GET, "/entities", &token).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(event.subject.as_deref(), Some("service-account:ci"));
    // Concurrent first requests of another fresh replica share its first read.
    let fresh = setup_with_idp(first.idp.clone(), first.store.inner.clone(), |a| a);
    let reads = fresh.store.reads.load(Ordering::SeqCst);
    let replies = futures_join(&fresh, &token, 20).await;
    assert!(replies.iter().all(|s| *s == StatusCode::OK), "{replies:?}");
    let more = fresh.store.reads.load(Ordering::SeqCst) - reads;
    assert!(more <= 2, "{more} reads for 20 concurrent first requests");
}

async fn futures_join(s: &Setup, token: &str, n: usize) -> Vec<StatusCode> {
    let mut tasks = Vec::new();
    for _ in 0..n {
        let router = s.router.clone();
        let req = bearer(Method::GET, "/entities", token);
        tasks.push(tokio::spawn(async move { send(&router, req).await.status }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}
