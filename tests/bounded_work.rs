//! Bounded work for the attacker (issue 10, items 5 to 7): times beyond any real date in
//! every kind of JWT, an audit writer that stalls, an outbound path that tries to change
//! host, and a shared-secret token on a sensitive route. Each test is one attack, driven
//! through a real router.

mod common;

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use common::kit::*;
use common::*;
use http::Method;
use s2s_auth::audit::JsonLinesSink;
use s2s_auth::client::ClientError;
use s2s_auth::plugin::PLUGIN_TYP;
use s2s_auth::store::MemoryStore;
use s2s_auth::{
    Auth, AuthBuilder, JwksAccess, LegacySecret, PluginTokens, RoutePolicy, S2sClient,
    StaticDiscovery, UserProvider,
};
use serde_json::{Value, json};

const ISSUER: &str = "https://idp.example.com";

/// 9999-12-31T23:59:59Z: the last `exp` that names a real (printable) date.
const LAST_SECOND_OF_9999: u64 = 253_402_300_799;

// ---------------------------------------------------------------------------------------
// Every kind of JWT, with any claims
// ---------------------------------------------------------------------------------------

/// The kinds of JWT a router verifies.
#[derive(Clone, Copy, Debug)]
enum Kind {
    /// An external caller's token, keys from a `jwks` entry's URL.
    Jwks,
    /// A user's OIDC token, keys found by discovery.
    User,
    /// A Backstage legacy HS256 token.
    Legacy,
    /// A plugin-to-plugin token from `scaffolder`, keys from its published JWKS.
    Plugin,
}

const KINDS: [Kind; 4] = [Kind::Jwks, Kind::User, Kind::Legacy, Kind::Plugin];

fn legacy_secret() -> String {
    b64_std(b"legacy-secret-a-0123456789abcdef")
}

/// A router verifying one kind of token, and a way to sign tokens it would accept.
struct Service {
    kind: Kind,
    harness: Harness,
    key: SigningKey,
    /// `iss` for the JWKS and user kinds.
    issuer: String,
    _server: KeyServer,
}

impl Service {
    async fn start(kind: Kind, builder: impl FnOnce(AuthBuilder) -> AuthBuilder) -> Self {
        let key = SigningKey::es256("k1");
        let server = KeyServer::start(&[&key]).await;
        let issuer = match kind {
            Kind::User => server.base().to_owned(),
            _ => ISSUER.to_owned(),
        };
        let base = Auth::builder(SERVICE);
        let base = match kind {
            Kind::Jwks => base.jwks_access(
                JwksAccess::new(server.jwks_url())
                    .issuers([ISSUER])
                    .audiences([SERVICE]),
            ),
            Kind::User => {
                base.user_provider(UserProvider::oidc(server.base()).audiences([SERVICE]))
            }
            Kind::Legacy => base.legacy_secret(LegacySecret::new(legacy_secret(), "old-backend")),
            Kind::Plugin => base.discovery(StaticDiscovery::new([("scaffolder", server.base())])),
        };
        Self {
            kind,
            harness: Harness::new(builder(base)),
            key,
            issuer,
            _server: server,
        }
    }

    /// Valid claims for this kind, with `patch`'s members put over them.
    fn claims(&self, patch: &Value) -> Value {
        let mut claims = match self.kind {
            Kind::Jwks | Kind::User => claims(&self.issuer, SERVICE, "ci-bot"),
            Kind::Legacy => legacy_claims(),
            Kind::Plugin => json!({ "sub": "scaffolder", "aud": SERVICE,
                                    "iat": now(), "exp": now() + 600 }),
        };
        for (name, value) in patch.as_object().expect("a patch is an object") {
            claims[name] = value.clone();
        }
        claims
    }

    /// A token of this kind, correctly signed, with `patch` applied to valid claims.
    fn token(&self, patch: &Value) -> String {
        let claims = self.claims(patch);
        match self.kind {
            Kind::Jwks | Kind::User => self.key.sign(&claims),
            Kind::Legacy => legacy_token(&legacy_secret(), &claims),
            Kind::Plugin => self.key.sign_raw(
                &json!({ "typ": PLUGIN_TYP, "alg": "ES256", "kid": self.key.kid }),
                &claims,
            ),
        }
    }

    async fn get(&self, token: &str) -> (Reply, s2s_auth::audit::AuditEvent) {
        self.harness
            .call(Method::GET, "/entities/42", Some(token))
            .await
    }
}

/// Asserts that every kind of token carrying `patch` is refused with 401 `description`.
async fn every_kind_refuses(patch: Value, description: &str, reason: &str) {
    for kind in KINDS {
        let service = Service::start(kind, |b| b).await;
        // The service verifies this kind at all.
        let (reply, event) = service.get(&service.token(&json!({}))).await;
        assert_allowed(&reply, &event);
        let (reply, event) = service.get(&service.token(&patch)).await;
        assert_eq!(reply.status, 401, "{kind:?} with {patch}: {}", reply.body);
        assert_invalid_token(&reply, &event, description, reason);
    }
}

const EXP_OUT_OF_RANGE: &str = "exp is out of range";

#[tokio::test(flavor = "multi_thread")]
async fn rejects_exp_of_2_pow_64_minus_1() {
    // `exp as i64` made this -1 (1969); jsonwebtoken alone calls it "not expired".
    every_kind_refuses(
        json!({ "exp": u64::MAX }),
        EXP_OUT_OF_RANGE,
        "exp_out_of_range",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rejects_exp_above_i64_max() {
    every_kind_refuses(
        json!({ "exp": i64::MAX as u64 + 1 }),
        EXP_OUT_OF_RANGE,
        "exp_out_of_range",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rejects_exp_one_second_past_year_9999() {
    every_kind_refuses(
        json!({ "exp": LAST_SECOND_OF_9999 + 1 }),
        EXP_OUT_OF_RANGE,
        "exp_out_of_range",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rejects_exp_beyond_2_pow_64_written_as_a_float() {
    // jsonwebtoken cannot read it as seconds and calls it missing; the signed payload has
    // it, so it is named for what it is.
    every_kind_refuses(
        json!({ "exp": 1e300 }),
        EXP_OUT_OF_RANGE,
        "exp_out_of_range",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rejects_negative_exp() {
    every_kind_refuses(json!({ "exp": -1 }), EXP_OUT_OF_RANGE, "exp_out_of_range").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn token_without_exp_is_still_missing_a_claim() {
    every_kind_refuses(
        json!({ "exp": null }),
        "token has no `exp` claim",
        "missing_claim",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn exp_at_the_last_second_of_year_9999_is_a_real_date() {
    // The bound is exactly the last representable second: the three kinds without a
    // lifetime cap accept it and print it; a plugin token that long is refused for its
    // lifetime, not its range.
    for kind in [Kind::Jwks, Kind::User, Kind::Legacy] {
        let service = Service::start(kind, |b| b).await;
        let token = service.token(&json!({ "exp": LAST_SECOND_OF_9999 }));
        let (reply, event) = service.get(&token).await;
        let principal = assert_allowed(&reply, &event);
        assert_eq!(principal["expiresAt"], "9999-12-31T23:59:59Z", "{kind:?}");
    }
    let service = Service::start(Kind::Plugin, |b| b).await;
    let token = service.token(&json!({ "exp": LAST_SECOND_OF_9999 }));
    let (reply, event) = service.get(&token).await;
    assert_invalid_token(
        &reply,
        &event,
        "token lifetime is longer than allowed",
        "lifetime_too_long",
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn rejects_nbf_of_2_pow_64_minus_1() {
    every_kind_refuses(
        json!({ "nbf": u64::MAX }),
        "token is not valid yet (nbf)",
        "not_yet_valid",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rejects_nbf_beyond_2_pow_64_written_as_a_float() {
    every_kind_refuses(
        json!({ "nbf": 1e300 }),
        "token is malformed: nbf is out of range",
        "token_malformed",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rejects_iat_of_2_pow_64_minus_1() {
    every_kind_refuses(
        json!({ "iat": u64::MAX }),
        "token was issued in the future (iat)",
        "issued_in_future",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rejects_iat_beyond_2_pow_64_written_as_a_float() {
    every_kind_refuses(
        json!({ "iat": 1e300 }),
        "token was issued in the future (iat)",
        "issued_in_future",
    )
    .await;
}

// ---------------------------------------------------------------------------------------
// Shared-secret tokens are not machine-proof
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn legacy_token_on_a_sensitive_route_is_refused() {
    // Whoever holds the shared secret (every backend of the deployment) signs these at will:
    // a machine-minted credential, like a plugin token.
    let service = Service::start(Kind::Legacy, |b| {
        b.route(
            "/admin/tokens",
            [Method::POST],
            RoutePolicy::authenticated().sensitive(),
        )
    })
    .await;
    let token = service.token(&json!({}));
    let (reply, event) = service
        .harness
        .call(Method::POST, "/admin/tokens", Some(&token))
        .await;
    assert_forbidden(
        &reply,
        &event,
        "Token-authenticated callers cannot create tokens or change credentials (route is sensitive: legacy credentials, and any acting for a user, are refused)",
        "sensitive_route",
    );
    assert_eq!(event.subject.as_deref(), Some("external:old-backend"));
    assert_eq!(event.credential, Some(s2s_auth::CredentialKind::Legacy));
    // The same token still opens a route that is not sensitive.
    let (reply, event) = service.get(&token).await;
    assert_allowed(&reply, &event);
}

// ---------------------------------------------------------------------------------------
// The outbound client cannot be steered to another host
// ---------------------------------------------------------------------------------------

/// A client of `scaffolder` that finds `catalog` at `base`.
fn client_with_base(base: &str) -> S2sClient {
    let auth = Auth::builder("scaffolder")
        .plugin_tokens(PluginTokens::new(Arc::new(MemoryStore::default())))
        .build()
        .expect("valid config");
    S2sClient::new(auth, StaticDiscovery::new([("catalog", base)]))
}

/// Asserts `path` is refused for both a base URL with a path and one without (where a
/// missing `/` would join the host), and that no token was minted for it.
async fn assert_path_refused(path: &str, reason: &str) {
    for base in [
        "http://catalog.internal:7007",
        "http://catalog.internal:7007/api/catalog",
    ] {
        let client = client_with_base(base);
        let err = client
            .request(None, "catalog", Method::GET, path)
            .await
            .expect_err(path);
        match &err {
            ClientError::InvalidPath { path: p, reason: r } => {
                assert_eq!(p, path);
                assert_eq!(*r, reason, "{path:?} on {base}");
            }
            other => panic!("{path:?} on {base}: {other:?}"),
        }
        assert_eq!(err.to_string(), format!("path {path:?} refused: {reason}"));
        assert_eq!(client.tokens_issued(), 0, "no token minted for {path:?}");
    }
}

const NO_LEADING_SLASH: &str = "a path must start with `/`";

#[tokio::test]
async fn client_refuses_userinfo_path() {
    // http://catalog.internal:7007@evil.example/x: the host becomes a user name.
    assert_path_refused("@evil.example/x", NO_LEADING_SLASH).await;
}

#[tokio::test]
async fn client_refuses_network_path_reference() {
    assert_path_refused(
        "//evil.example/x",
        "a path must not start with `//` (a network-path reference names a host)",
    )
    .await;
}

#[tokio::test]
async fn client_refuses_absolute_url_as_path() {
    assert_path_refused("http://evil/x", NO_LEADING_SLASH).await;
    assert_path_refused("https://evil.example/x", NO_LEADING_SLASH).await;
}

#[tokio::test]
async fn client_refuses_host_suffix_and_port_paths() {
    // http://catalog.internal:7007.evil.example/x and another port.
    assert_path_refused(".evil.example/x", NO_LEADING_SLASH).await;
    assert_path_refused(":8443/x", NO_LEADING_SLASH).await;
    assert_path_refused("entities", NO_LEADING_SLASH).await;
    assert_path_refused("", NO_LEADING_SLASH).await;
    assert_path_refused("?q=1", NO_LEADING_SLASH).await;
}

#[tokio::test]
async fn client_refuses_backslashes() {
    let reason = "a path must not contain `\\` (read as `/` by WHATWG URL parsers)";
    assert_path_refused("\\\\evil.example/x", NO_LEADING_SLASH).await;
    assert_path_refused("/\\evil.example/x", reason).await;
    assert_path_refused("/x\\y", reason).await;
}

#[tokio::test]
async fn client_refuses_control_characters() {
    let reason = "a path must not contain control characters";
    for path in [
        "/x\r\nHost: evil.example",
        "/x\nGET /admin",
        "/\t/evil.example/x",
        "/x\0",
        "/x\u{7f}",
        "/x\u{85}",
    ] {
        assert_path_refused(path, reason).await;
    }
}

#[tokio::test]
async fn client_refuses_dot_segments_out_of_the_base_path() {
    // Behind one gateway, /api/catalog/../auth is another service.
    let client = client_with_base("http://gateway.internal/api/catalog");
    for path in ["/../auth/x", "/%2e%2e/auth/x", "/x/../../auth", "/.."] {
        let err = client
            .request(None, "catalog", Method::GET, path)
            .await
            .expect_err(path);
        assert!(
            matches!(
                err,
                ClientError::InvalidPath {
                    reason: "the path leaves the target's base path (dot segments)",
                    ..
                }
            ),
            "{path}: {err:?}"
        );
    }
    assert_eq!(client.tokens_issued(), 0);
}

#[tokio::test]
async fn client_keeps_paths_on_the_target() {
    // `@`, `?`, `#`, `..` and `:` after the leading `/` are the target's path, query and
    // fragment: the request still goes to the target's host and port.
    for path in [
        "/entities",
        "/@evil.example/x",
        "/entities?owner=user:default/jane@example.com",
        "/x:8443/y",
        "/x#@evil.example",
        "/a/../b",
    ] {
        let client = client_with_base("http://catalog.internal:7007/api/catalog");
        let request = client
            .request(None, "catalog", Method::GET, path)
            .await
            .expect(path)
            .build()
            .expect("a request");
        let url = request.url();
        assert_eq!(url.host_str(), Some("catalog.internal"), "{path}");
        assert_eq!(url.port(), Some(7007), "{path}");
        assert_eq!(url.username(), "", "{path}");
        assert!(request.headers().contains_key(http::header::AUTHORIZATION));
    }
}

// ---------------------------------------------------------------------------------------
// A stalled audit writer does not stall requests
// ---------------------------------------------------------------------------------------

/// A writer that blocks every write until [`Gate::open`], then writes to a buffer.
#[derive(Clone, Default)]
struct Gate {
    open: Arc<(Mutex<bool>, Condvar)>,
    out: SharedBuf,
    /// Writes that started (and, while the gate is shut, are stuck).
    entered: Arc<AtomicUsize>,
}

impl Gate {
    fn open(&self) {
        let (open, changed) = &*self.open;
        *open.lock().unwrap_or_else(PoisonError::into_inner) = true;
        changed.notify_all();
    }
}

impl io::Write for Gate {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.entered.fetch_add(1, Ordering::SeqCst);
        let (open, changed) = &*self.open;
        let mut is_open = open.lock().unwrap_or_else(PoisonError::into_inner);
        while !*is_open {
            is_open = changed
                .wait(is_open)
                .unwrap_or_else(PoisonError::into_inner);
        }
        self.out.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A writer that panics on its first write.
struct Exploding;

impl io::Write for Exploding {
    fn write(&mut self, _: &[u8]) -> io::Result<usize> {
        panic!("the audit destination exploded (on purpose, in a test)");
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn stalled_audit_writer_does_not_stall_requests() {
    const QUEUE: usize = 8;
    const REQUESTS: usize = 200;
    let gate = Gate::default();
    let sink = Arc::new(JsonLinesSink::with_capacity(gate.clone(), QUEUE));
    let service = Service::start(Kind::Legacy, |b| b.audit_sink(sink.clone())).await;
    let token = service.token(&json!({}));

    let started = Instant::now();
    let all = tokio::time::timeout(Duration::from_secs(10), async {
        for _ in 0..REQUESTS {
            let (reply, event) = service.get(&token).await;
            assert_allowed(&reply, &event);
        }
    });
    all.await
        .expect("requests complete while the audit writer is stalled");
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_secs(5),
        "{REQUESTS} requests took {elapsed:?}"
    );

    // The writer is stuck in one `write` with the lines it found queued when it woke (they
    // leave together: at least one, more when requests came faster than it woke, as they do
    // now that an allow's event is cheap to build), the queue holds the next QUEUE, and the
    // rest were dropped and counted. (Whether the writer took its first line before the
    // queue filled decides the last one.)
    let deadline = Instant::now() + Duration::from_secs(5);
    while gate.entered.load(Ordering::SeqCst) == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(gate.entered.load(Ordering::SeqCst), 1, "one write, stuck");
    let dropped = sink.dropped() as usize;
    assert!(
        (1..=REQUESTS - QUEUE).contains(&dropped),
        "{dropped} dropped of {REQUESTS}"
    );
    assert!(
        !sink.flush(Duration::from_millis(50)),
        "a stalled writer does not catch up"
    );
    assert!(format!("{sink:?}").contains(&format!("dropped: {dropped}")));

    // Once the destination moves again, everything that was queued is written.
    gate.open();
    assert!(sink.flush(Duration::from_secs(5)));
    let written = gate.out.contents().lines().count();
    assert_eq!(
        written + dropped,
        REQUESTS,
        "every event written or counted"
    );
    // And nothing is dropped any more.
    let (reply, event) = service.get(&token).await;
    assert_allowed(&reply, &event);
    assert!(sink.flush(Duration::from_secs(5)));
    assert_eq!(sink.dropped() as usize, dropped);
    assert_eq!(gate.out.contents().lines().count(), written + 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn panicking_audit_writer_does_not_fail_requests() {
    let sink = Arc::new(JsonLinesSink::new(Exploding));
    let service = Service::start(Kind::Legacy, |b| b.audit_sink(sink.clone())).await;
    let token = service.token(&json!({}));
    for _ in 0..10 {
        let (reply, event) = service.get(&token).await;
        assert_allowed(&reply, &event);
    }
    // The writer thread died on the first line; every event is accounted for as dropped.
    assert!(sink.flush(Duration::from_secs(5)));
    assert_eq!(sink.dropped(), 10);
    let (reply, event) = service.get(&token).await;
    assert_allowed(&reply, &event);
    assert!(sink.flush(Duration::from_secs(5)));
    assert_eq!(sink.dropped(), 11);
}
