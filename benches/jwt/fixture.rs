//! The bench's world, built once and checked before anything is timed: a key per
//! algorithm, the JWKS server and its documents, the layers, the `jwks_client_rs` client,
//! and the storm contenders, warmed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use http::{HeaderValue, Method, StatusCode};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use jwks_client_rs::JwksClient;
use jwks_client_rs::source::WebSource;
use s2s_auth::jwks::JwksClientRsFetcher;
use s2s_auth::{Auth, AuthBuilder, JwksAccess, RoutePolicy};
use serde_json::{Value, json};
use tokio::runtime::Runtime;

use crate::contenders::{Contender, Target};
use crate::kit::{KeyServer, SigningKey};
use crate::report::request::{self, ITEM_PATH, ITEM_URI, bearer, ok};
use crate::sides::Side;
use crate::storm::{Mode, StormCase};

pub const ISSUER: &str = "https://idp.bench.example";
pub const AUDIENCE: &str = "bench";
pub const SUBJECT: &str = "bench-caller";

/// The padding of the oversized JWKS: twice the default 1 MiB cap.
pub const BIG_PADDING: usize = 2 * 1024 * 1024;

// ---------------------------------------------------------------------------------------
// Keys and tokens
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alg {
    Rs256,
    Es256,
    EdDsa,
}

pub const ALGS: [Alg; 3] = [Alg::Rs256, Alg::Es256, Alg::EdDsa];

impl Alg {
    pub fn name(self) -> &'static str {
        match self {
            Alg::Rs256 => "RS256",
            Alg::Es256 => "ES256",
            Alg::EdDsa => "EdDSA",
        }
    }

    /// The bench id within a group.
    pub fn id(self) -> &'static str {
        match self {
            Alg::Rs256 => "rs256",
            Alg::Es256 => "es256",
            Alg::EdDsa => "eddsa",
        }
    }

    pub fn key_type(self) -> &'static str {
        match self {
            Alg::Rs256 => "RSA 2048, PKCS#1 v1.5 with SHA-256",
            Alg::Es256 => "ECDSA P-256 with SHA-256",
            Alg::EdDsa => "Ed25519",
        }
    }

    pub fn jwt(self) -> Algorithm {
        match self {
            Alg::Rs256 => Algorithm::RS256,
            Alg::Es256 => Algorithm::ES256,
            Alg::EdDsa => Algorithm::EdDSA,
        }
    }

    pub fn kid(self) -> String {
        format!("bench-{}", self.id())
    }

    /// A fresh key for this algorithm, named [`Alg::kid`].
    pub fn key(self) -> SigningKey {
        match self {
            Alg::Rs256 => SigningKey::rsa(&self.kid(), 0),
            Alg::Es256 => SigningKey::es256(&self.kid()),
            Alg::EdDsa => SigningKey::ed25519(&self.kid()),
        }
    }
}

/// A token signed by `key` with `kid` in its header and claims `iss`, `aud`, `sub`, `iat`,
/// `exp` (two hours: longer than any run).
pub fn sign(key: &SigningKey, kid: &str, iss: &str) -> String {
    let now = jsonwebtoken::get_current_timestamp();
    let mut header = key.header();
    header.kid = Some(kid.to_owned());
    let claims = json!({
        "iss": iss,
        "aud": AUDIENCE,
        "sub": SUBJECT,
        "iat": now,
        "exp": now + 7_200,
    });
    key.sign_with(header, &claims)
}

/// The checks the layer makes, for `jsonwebtoken::decode`: signature and algorithm, `iss`,
/// `aud`, `exp` and `nbf` with the layer's leeway, and `exp`, `sub`, `iss`, `aud` required.
pub fn validation(alg: Alg) -> Validation {
    let mut v = Validation::new(alg.jwt());
    v.leeway = AuthBuilder::DEFAULT_LEEWAY_SECS;
    v.validate_nbf = true;
    v.set_issuer(&[ISSUER]);
    v.set_audience(&[AUDIENCE]);
    v.set_required_spec_claims(&["exp", "sub", "iss", "aud"]);
    v
}

// ---------------------------------------------------------------------------------------
// The JWKS server
// ---------------------------------------------------------------------------------------

/// Publishes the documents the benches fetch, under `/{tenant}/{doc}` for every tenant:
/// `jwks.json`, the three public keys; `with-oct.json`, the three and one symmetric
/// (`kty: oct`) key; `with-kidless.json`, the three and one EC key without `kid`;
/// `big.json`, the three and a 2 MiB `padding` member; `redirect.json`, a 307 to
/// `jwks.json`.
pub fn publish_documents(server: &KeyServer, keys: &[&SigningKey]) {
    let jwks: Vec<Value> = keys.iter().map(|k| k.jwk()).collect();
    let json = |doc: Value| serde_json::to_vec(&doc).expect("invariant: JSON serializes");
    let with = |extra: Value| {
        let mut all = jwks.clone();
        all.push(extra);
        json(json!({ "keys": all }))
    };
    let es256 = keys
        .iter()
        .find(|k| k.alg == Algorithm::ES256)
        .expect("invariant: ES256 is one of the algorithms");
    let mut kidless = es256.jwk();
    if let Some(obj) = kidless.as_object_mut() {
        obj.remove("kid");
    }
    server.set_document("jwks.json", json(json!({ "keys": jwks })));
    server.set_document(
        "with-oct.json",
        with(json!({ "kty": "oct", "kid": "shared", "k": "c2VjcmV0LWJ5dGVz" })),
    );
    server.set_document("with-kidless.json", with(kidless));
    server.set_document(
        "big.json",
        json(json!({ "keys": jwks, "padding": "x".repeat(BIG_PADDING) })),
    );
    server.set_redirect("redirect.json", "jwks.json");
}

// ---------------------------------------------------------------------------------------
// What is benched
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Fetcher {
    BuiltIn,
    JwksClientRs,
}

/// The layer over the items route, trusting the JWKS at `url`.
pub fn layer_app(url: &str, fetcher: Fetcher, verified_cache: bool) -> Router {
    let mut builder = Auth::builder("bench")
        .jwks_access(JwksAccess::new(url).issuers([ISSUER]).audiences([AUDIENCE]))
        .route(ITEM_PATH, [Method::GET], RoutePolicy::authenticated());
    if !verified_cache {
        builder = builder.verified_cache_capacity(0);
    }
    if fetcher == Fetcher::JwksClientRs {
        let fetcher = JwksClientRsFetcher::new(Duration::from_secs(5))
            .expect("invariant: the fetcher builds");
        builder = builder.key_fetcher(Arc::new(fetcher));
    }
    let auth = builder
        .build()
        .expect("invariant: the bench configuration is valid");
    Router::new().route(ITEM_PATH, get(ok)).layer(auth.layer())
}

pub fn plain_app() -> Router {
    Router::new().route(ITEM_PATH, get(ok))
}

/// The crypto floor as a request ([`kit::floor`](crate::kit::floor)) with `raw`'s own keys
/// and `Validation`s, so that (floor request − no-auth request) ÷ raw decode shows what
/// subtracting the request does to a side that verifies no differently from raw decode.
pub fn floor_app(algs: &[PerAlg]) -> Router {
    let keys = algs
        .iter()
        .map(|a| (a.alg.kid(), (a.decoding.clone(), a.validation.clone())))
        .collect();
    crate::kit::floor::<crate::sides::Claims>(plain_app(), keys)
}

pub fn jwks_client(url: &str) -> JwksClient<WebSource> {
    let source = WebSource::builder()
        .build(url.parse().expect("invariant: the server URL parses"))
        .expect("invariant: the web source builds");
    JwksClient::builder().build(source)
}

/// Everything about one algorithm: its key, a valid token and what verifies it.
pub struct PerAlg {
    pub alg: Alg,
    pub key: SigningKey,
    /// Made from the public JWK, as the layer and `jwks_client_rs` make theirs.
    pub decoding: DecodingKey,
    pub token: String,
    pub authorization: HeaderValue,
    pub validation: Validation,
}

/// Everything the benches use, built once.
pub struct Fixtures {
    pub started: Instant,
    pub server: KeyServer,
    pub algs: Vec<PerAlg>,
    pub plain: Router,
    /// The crypto floor as a request ([`floor_app`]).
    pub floor: Router,
    /// The layer, verified-token cache off, built-in fetcher.
    pub fresh: Router,
    /// The same with `JwksClientRsFetcher`.
    pub fresh_crate: Router,
    /// The layer with its default verified-token cache.
    pub cached: Router,
    pub client: JwksClient<WebSource>,
    /// Fetches each timed instance made while warming up, by tenant.
    pub warm_fetches: Vec<(&'static str, usize)>,
    pub storms: Vec<StormCase>,
}

/// The tenants (URL prefixes) of the timed instances, so each one's fetches are counted
/// apart.
pub const TIMED_TENANTS: [&str; 4] = ["fresh", "fresh-crate", "cached", "client"];

impl Fixtures {
    pub fn new(rt: &Runtime) -> Self {
        let started = Instant::now();
        let keys = ALGS.map(Alg::key);
        // On its own thread and runtime, so that it never competes with the benched
        // requests for the bench's runtime.
        let server = KeyServer::start_on_own_thread(&keys.iter().collect::<Vec<_>>());
        publish_documents(&server, &keys.iter().collect::<Vec<_>>());
        let jwks = |tenant: &str| server.document_url(tenant, "jwks.json");
        let algs: Vec<PerAlg> = ALGS
            .into_iter()
            .zip(keys)
            .map(|(alg, key)| {
                let token = sign(&key, &alg.kid(), ISSUER);
                PerAlg {
                    alg,
                    authorization: bearer(&token),
                    token,
                    validation: validation(alg),
                    decoding: key.decoding_key(),
                    key,
                }
            })
            .collect();
        let f = Self {
            started,
            plain: plain_app(),
            floor: floor_app(&algs),
            fresh: layer_app(&jwks("fresh"), Fetcher::BuiltIn, false),
            fresh_crate: layer_app(&jwks("fresh-crate"), Fetcher::JwksClientRs, false),
            cached: layer_app(&jwks("cached"), Fetcher::BuiltIn, true),
            client: jwks_client(&jwks("client")),
            warm_fetches: Vec::new(),
            storms: Vec::new(),
            algs,
            server,
        };
        f.warm_and_check(rt)
    }

    /// Warms every JWKS cache (every key once), checks that each side measures what it
    /// claims, and builds and warms the storm contenders.
    pub fn warm_and_check(mut self, rt: &Runtime) -> Self {
        for a in &self.algs {
            for (side, what) in [
                (self.raw(a), "raw"),
                (self.no_auth(a), "no_auth"),
                (self.floor(a), "floor_request"),
                (self.raw_then_request(a), "raw_then_request"),
                (self.layer_fresh(a), "layer_fresh"),
                (self.layer_fresh_crate(a), "layer_fresh_crate_fetcher"),
                (self.layer_cached(a), "layer_cached"),
                (self.jwks_client_rs(a), "jwks_client_rs"),
            ] {
                side.assert_ok(rt, &format!("{what}/{}", a.alg.id()));
            }
        }
        // The layer must be in the path: a token for another audience is refused.
        let es = self.alg(Alg::Es256);
        let other = {
            let now = jsonwebtoken::get_current_timestamp();
            let claims =
                json!({ "iss": ISSUER, "aud": "someone-else", "sub": SUBJECT, "exp": now + 600 });
            es.key.sign(&claims)
        };
        for app in [&self.floor, &self.fresh, &self.fresh_crate, &self.cached] {
            let (status, _) = request::send(rt, app, request::get(ITEM_URI, bearer(&other)));
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "the layer must be in the path"
            );
        }
        self.warm_fetches = TIMED_TENANTS
            .iter()
            .map(|&t| (t, self.server.document_hits(t, "jwks.json")))
            .collect();

        let es_token = self.alg(Alg::Es256).token.clone();
        let mut storms = Vec::new();
        for mode in [Mode::Sequential, Mode::InFlight, Mode::Burst] {
            for contender in [
                Contender::LayerBuiltIn,
                Contender::LayerJwksClientRs,
                Contender::JwksClient,
            ] {
                let tenant = format!("storm-{}-{}", mode.slug(), contender.slug());
                let target =
                    Target::new(contender, &self.server.document_url(&tenant, "jwks.json"));
                let warm = rt.block_on(target.outcome(&es_token));
                assert!(
                    warm == "HTTP 200" || warm == "ok",
                    "storm contender {tenant} must verify a valid token: {warm}"
                );
                storms.push(StormCase {
                    contender,
                    mode,
                    tenant,
                    target,
                    warmed_at: Instant::now(),
                });
            }
        }
        self.storms = storms;
        self
    }

    pub fn alg(&self, alg: Alg) -> &PerAlg {
        self.algs
            .iter()
            .find(|a| a.alg == alg)
            .expect("invariant: every algorithm has fixtures")
    }

    pub fn raw<'a>(&self, a: &'a PerAlg) -> Side<'a> {
        Side::Raw {
            token: &a.token,
            key: &a.decoding,
            validation: &a.validation,
        }
    }

    pub fn no_auth<'a>(&'a self, a: &'a PerAlg) -> Side<'a> {
        Side::Request {
            app: &self.plain,
            authorization: &a.authorization,
        }
    }

    pub fn raw_then_request<'a>(&'a self, a: &'a PerAlg) -> Side<'a> {
        Side::RawThenRequest {
            token: &a.token,
            key: &a.decoding,
            validation: &a.validation,
            app: &self.plain,
            authorization: &a.authorization,
        }
    }

    pub fn floor<'a>(&'a self, a: &'a PerAlg) -> Side<'a> {
        Side::Request {
            app: &self.floor,
            authorization: &a.authorization,
        }
    }

    pub fn layer_fresh<'a>(&'a self, a: &'a PerAlg) -> Side<'a> {
        Side::Request {
            app: &self.fresh,
            authorization: &a.authorization,
        }
    }

    pub fn layer_fresh_crate<'a>(&'a self, a: &'a PerAlg) -> Side<'a> {
        Side::Request {
            app: &self.fresh_crate,
            authorization: &a.authorization,
        }
    }

    pub fn layer_cached<'a>(&'a self, a: &'a PerAlg) -> Side<'a> {
        Side::Request {
            app: &self.cached,
            authorization: &a.authorization,
        }
    }

    pub fn jwks_client_rs<'a>(&'a self, a: &'a PerAlg) -> Side<'a> {
        Side::Client {
            client: &self.client,
            token: &a.token,
        }
    }
}
