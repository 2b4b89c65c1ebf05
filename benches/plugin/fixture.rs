//! The bench's world, built once and checked before anything is timed: the identity
//! provider, `scaffolder` (verifies jane's user token, issues), `catalog`'s layers (verify),
//! the outbound clients, and the raw `jsonwebtoken` baselines.

use std::hint::black_box;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use http::header::WWW_AUTHENTICATE;
use http::{HeaderValue, Method, StatusCode};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use s2s_auth::error::VerifyError;
use s2s_auth::jwks::KeyFetcher;
use s2s_auth::plugin::{JWKS_PATH, PLUGIN_TOKEN_LIFETIME, PLUGIN_TYP};
use s2s_auth::store::MemoryStore;
use s2s_auth::{
    Auth, AuthBuilder, PluginTokens, Principal, RoutePolicy, S2sClient, StaticDiscovery,
    UserProvider,
};
use serde_json::{Map, Value, json};
use tokio::runtime::Runtime;
use tower::ServiceExt;

use crate::kit::{InProcessJwks, SigningKey, UserClaims, UserToken, backstage_user_token, jwks};
use crate::report::request::{self, ITEM_PATH, ITEM_URI, bearer, ok};
use crate::{OPS, Op};

pub const CALLER: &str = "scaffolder";
pub const TARGET: &str = "catalog";
/// Where discovery says the caller is. Nothing listens there: [`InProcessJwks`] answers.
pub const CALLER_BASE: &str = "https://scaffolder.bench.invalid/api/scaffolder";
pub const IDP_ISSUER: &str = "http://backstage.bench.invalid/api/auth";
/// The identity provider's JWKS. Nothing listens there either.
pub const IDP_JWKS_URL: &str = "https://backstage.bench.invalid/api/auth/.well-known/jwks.json";
pub const USER: &str = "user:default/jane";
/// The user token's lifetime: Backstage's default, one hour.
pub const USER_TOKEN_LIFETIME: u64 = 3600;
pub const REUSE_CALLS: u32 = 1_000;

/// Who the layer let in: subject, credential and actor.
async fn whoami(p: Principal) -> String {
    format!(
        "{} {} {}",
        p.subject(),
        p.credential().as_str(),
        p.actor().unwrap_or("-")
    )
}

/// A Backstage auth backend: its ES256 key, whose JWKS [`InProcessJwks`] serves from memory.
pub struct Idp {
    key: SigningKey,
    /// The public key, for the raw decode of a limited user token.
    decoding: DecodingKey,
}

impl Idp {
    fn new() -> Self {
        let key = SigningKey::es256("idp-bench-key");
        Self {
            decoding: key.decoding_key(),
            key,
        }
    }

    fn provider() -> UserProvider {
        UserProvider::backstage(IDP_ISSUER).jwks_url(IDP_JWKS_URL)
    }

    /// A Backstage user token for [`USER`] issued at `iat`, living [`USER_TOKEN_LIFETIME`],
    /// whose `uip` is `prover`'s signature over its limited token: the identity provider's
    /// own key, or not.
    fn user_token(&self, prover: &SigningKey, iat: u64) -> UserToken {
        let user = UserClaims {
            iss: IDP_ISSUER,
            sub: USER,
            groups: &["group:default/team-a"],
            iat,
            exp: iat + USER_TOKEN_LIFETIME,
        };
        backstage_user_token(&self.key, prover, &user)
    }
}

/// `catalog`: trusting `scaffolder` by discovery and the identity provider for its users.
fn receiver(fetcher: &Arc<InProcessJwks>, verified_cache: bool) -> Auth {
    let mut builder = Auth::builder(TARGET)
        .discovery(StaticDiscovery::new([(CALLER, CALLER_BASE)]))
        .user_provider(Idp::provider())
        .key_fetcher(fetcher.clone())
        .route(ITEM_PATH, [Method::GET], RoutePolicy::authenticated());
    if !verified_cache {
        builder = builder.verified_cache_capacity(0);
    }
    builder
        .build()
        .expect("invariant: the bench configuration is valid")
}

fn items(auth: &Auth) -> Router {
    Router::new().route(ITEM_PATH, get(ok)).layer(auth.layer())
}

fn new_client(issuer: &Auth) -> S2sClient {
    S2sClient::new(
        issuer.clone(),
        StaticDiscovery::new([(TARGET, "http://catalog.bench.invalid/api/catalog")]),
    )
}

/// The principal `auth`'s layer hands a handler for `token`.
async fn principal_of(auth: &Auth, token: &str) -> Principal {
    let seen = Arc::new(Mutex::new(None));
    let sink = seen.clone();
    let app: Router = Router::new()
        .route(
            ITEM_PATH,
            get(move |p: Principal| async move {
                *sink.lock().expect("invariant: not poisoned") = Some(p);
            }),
        )
        .layer(auth.layer());
    let Ok(res) = app.oneshot(request::get(ITEM_URI, bearer(token))).await;
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "scaffolder takes the user token"
    );
    let principal = seen.lock().expect("invariant: not poisoned").take();
    principal.expect("the handler ran")
}

/// A new client's issuances over [`REUSE_CALLS`] calls for `user`, and their wall time.
async fn reuse_count(issuer: &Auth, user: Option<&Principal>) -> (u64, Duration) {
    let client = new_client(issuer);
    let start = Instant::now();
    for _ in 0..REUSE_CALLS {
        client.token_for(user, TARGET).await.expect("a token");
    }
    let count = (client.tokens_issued(), start.elapsed());
    assert_eq!(count.0, 1, "{REUSE_CALLS} calls must reuse one token");
    count
}

/// Everything the benches use, built once and checked before anything is timed.
pub struct Fixtures {
    pub issuer: Auth,
    fetcher: Arc<InProcessJwks>,
    pub warm_fetches: usize,
    /// The raw encode: a P-256 key generated as the issuer generates its own, and the header
    /// and claims `plugin_token` builds (and `on_behalf_of_token`: the same with `obo`).
    encoding: EncodingKey,
    header: Header,
    claims: Value,
    obo_claims: Value,
    /// The raw decode: one token from the issuer, its published key, the verifier's checks;
    /// for the obo token, then the identity provider's key and the limited token's checks.
    token: String,
    authorization: HeaderValue,
    obo_token: String,
    obo_authorization: HeaderValue,
    decoding: DecodingKey,
    validation: Validation,
    idp: Idp,
    limited_validation: Validation,
    /// Jane, as scaffolder's layer made her from her user token.
    user: Principal,
    /// `catalog`, its verified-token cache off, and its routers.
    catalog: Auth,
    plain: Router,
    fresh: Router,
    cached: Router,
    /// Tokens both layers must refuse, and the check each fails.
    refused: Vec<(String, VerifyError)>,
    pub client: S2sClient,
    pub obo_client: S2sClient,
    /// A new client's issuances over [`REUSE_CALLS`] calls, and their wall time: for itself
    /// and for jane.
    pub reuse_count: (u64, Duration),
    pub obo_reuse_count: (u64, Duration),
}

impl Fixtures {
    pub fn new(rt: &Runtime) -> Self {
        let idp = Idp::new();
        let fetcher = Arc::new(InProcessJwks::default());
        let idp_jwks = serde_json::to_vec(&jwks(&[&idp.key])).expect("a JWK set serializes");
        fetcher.serve_document(IDP_JWKS_URL, idp_jwks);
        let issuer = Auth::builder(CALLER)
            .plugin_tokens(PluginTokens::new(Arc::new(MemoryStore::default())))
            .user_provider(Idp::provider())
            .key_fetcher(fetcher.clone())
            .build()
            .expect("invariant: the bench configuration is valid");
        // The caller takes this fetcher for its users too: its own keys are served once it
        // is built.
        fetcher.mount(CALLER_BASE, issuer.jwks_router());
        rt.block_on(async {
            // The first token generates and publishes the issuer's key.
            let token = issuer.plugin_token(TARGET).await.expect("a plugin token");
            let token = token.expose_secret().to_owned();
            let jwks = fetcher
                .fetch(&format!("{CALLER_BASE}{JWKS_PATH}"), 1 << 16)
                .await
                .expect("the published JWKS");
            let jwks: JwkSet = serde_json::from_slice(&jwks.body).expect("a JWK set");
            // The key that signed the token (the key manager may already publish the next
            // one, ahead of its use, so that peers have it before it signs).
            let kid = jsonwebtoken::decode_header(&token)
                .expect("a JWT header")
                .kid
                .expect("plugin tokens carry a kid");
            let Some(jwk) = jwks
                .keys
                .iter()
                .find(|k| k.common.key_id.as_deref() == Some(kid.as_str()))
            else {
                panic!(
                    "the signing key is not among the {} published",
                    jwks.keys.len()
                )
            };
            // Jane calls scaffolder, which acts for her; and a user token whose proof
            // another key signed, which scaffolder cannot tell (it does not check `uip`).
            let signed_in = jsonwebtoken::get_current_timestamp();
            let jane = idp.user_token(&idp.key, signed_in);
            let jane_exp = signed_in + USER_TOKEN_LIFETIME;
            let user = principal_of(&issuer, &jane.token).await;
            let obo_token = issuer.on_behalf_of_token(&user, TARGET).await;
            let obo_token = obo_token.expect("an obo token").expose_secret().to_owned();
            let forger = SigningKey::es256("forger");
            let forged = principal_of(&issuer, &idp.user_token(&forger, signed_in).token).await;
            let forged = issuer.on_behalf_of_token(&forged, TARGET).await;
            let search = issuer.on_behalf_of_token(&user, "search").await;
            let bad_proof = VerifyError::OnBehalfOfUser(Box::new(VerifyError::BadSignature));
            let refused = [
                (
                    issuer.plugin_token("search").await,
                    VerifyError::WrongAudience,
                ),
                (search, VerifyError::WrongAudience),
                (forged, bad_proof),
            ]
            .into_iter()
            .map(|(t, e)| (t.expect("a token").expose_secret().to_owned(), e))
            .collect();
            // Only the layers' fetches count.
            fetcher.reset_fetches();

            let mut header = Header::new(Algorithm::ES256);
            header.typ = Some(PLUGIN_TYP.to_owned());
            header.kid.clone_from(&jwk.common.key_id);
            let iat = jsonwebtoken::get_current_timestamp();
            let claims = json!({
                "sub": CALLER,
                "aud": TARGET,
                "iat": iat,
                "exp": iat + PLUGIN_TOKEN_LIFETIME.as_secs(),
            });
            let mut obo_claims = claims.clone();
            obo_claims["exp"] = json!(jane_exp.min(iat + PLUGIN_TOKEN_LIFETIME.as_secs()));
            obo_claims["obo"] = json!(jane.limited);
            // The checks the plugin verifier makes (`PluginVerifier::new`).
            let mut validation = Validation::new(Algorithm::ES256);
            validation.leeway = AuthBuilder::DEFAULT_LEEWAY_SECS;
            validation.validate_nbf = true;
            validation.set_audience(&[TARGET]);
            validation.set_required_spec_claims(&["exp", "sub", "aud"]);
            // And those it makes of a limited user token (`JwksVerifier::new`): no issuer,
            // no audience.
            let mut limited_validation = Validation::new(Algorithm::ES256);
            limited_validation.leeway = AuthBuilder::DEFAULT_LEEWAY_SECS;
            limited_validation.validate_nbf = true;
            limited_validation.validate_aud = false;
            limited_validation.set_required_spec_claims(&["exp", "sub"]);

            let client = new_client(&issuer);
            client.token_for(None, TARGET).await.expect("a token");
            let obo_client = new_client(&issuer);
            obo_client
                .token_for(Some(&user), TARGET)
                .await
                .expect("an obo token");
            let catalog = receiver(&fetcher, false);
            let f = Self {
                encoding: SigningKey::es256("raw-encode").encoding,
                header,
                claims,
                obo_claims,
                authorization: bearer(&token),
                token,
                obo_authorization: bearer(&obo_token),
                obo_token,
                decoding: DecodingKey::from_jwk(jwk).expect("the published JWK decodes"),
                validation,
                idp,
                limited_validation,
                plain: Router::new().route(ITEM_PATH, get(ok)),
                fresh: items(&catalog),
                cached: items(&receiver(&fetcher, true)),
                catalog,
                refused,
                reuse_count: reuse_count(&issuer, None).await,
                obo_reuse_count: reuse_count(&issuer, Some(&user)).await,
                client,
                obo_client,
                user,
                warm_fetches: 0,
                fetcher,
                issuer,
            };
            f.check(&jane.limited).await
        })
    }

    /// Every operation succeeds (warming each JWKS cache); the obo token carries jane's
    /// limited token byte for byte and makes her the principal, scaffolder her actor; and the
    /// layer is in the path, checking both signatures of an obo token: a token for another
    /// audience, or whose user proof the identity provider did not sign, is refused.
    async fn check(mut self, limited: &str) -> Self {
        assert!(
            OPS.iter()
                .enumerate()
                .all(|(i, (op, ..))| *op as usize == i),
            "OPS lists every Op in declaration order: results are indexed by `op as usize`"
        );
        for (op, bench, _) in OPS {
            if let Err(e) = self.run(op).await {
                panic!("{bench}: the benched operation must succeed: {e}");
            }
        }
        let claims = self.raw_decode(&self.obo_token).expect("the obo token");
        assert_eq!(claims.get("obo").and_then(Value::as_str), Some(limited));
        let whoami: Router = Router::new()
            .route(ITEM_PATH, get(whoami))
            .layer(self.catalog.layer());
        for (authorization, expected) in [
            (&self.authorization, format!("plugin:{CALLER} plugin -")),
            (
                &self.obo_authorization,
                format!("{USER} obo plugin:{CALLER}"),
            ),
        ] {
            let Ok(res) = whoami
                .clone()
                .oneshot(request::get(ITEM_URI, authorization.clone()))
                .await;
            let body = axum::body::to_bytes(res.into_body(), 1 << 10).await;
            assert_eq!(body.expect("a body"), expected.as_bytes());
        }
        for (token, error) in &self.refused {
            for app in [&self.fresh, &self.cached] {
                let Ok(res) = app
                    .clone()
                    .oneshot(request::get(ITEM_URI, bearer(token)))
                    .await;
                let challenge = res.headers().get(WWW_AUTHENTICATE);
                let challenge = challenge.and_then(|c| c.to_str().ok()).unwrap_or_default();
                let expected = format!("error_description=\"{error}\"");
                assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{expected}");
                assert!(
                    challenge.ends_with(&expected),
                    "{challenge:?} names {expected}"
                );
            }
        }
        self.warm_fetches = self.fetches();
        self
    }

    /// The length of the `obo` claim: the limited user token.
    pub fn obo_claim_len(&self) -> usize {
        self.obo_claims["obo"].as_str().map_or(0, str::len)
    }

    pub fn fetches(&self) -> usize {
        self.fetcher.fetches()
    }

    /// The plugin verifier's `decode` of a plugin token.
    fn raw_decode(&self, token: &str) -> Result<Map<String, Value>, String> {
        jsonwebtoken::decode::<Map<String, Value>>(token, &self.decoding, &self.validation)
            .map(|t| t.claims)
            .map_err(|e| e.to_string())
    }

    /// Both `decode`s of an obo token: the plugin token, then the limited token in `obo`.
    fn raw_decode_obo(&self, token: &str) -> Result<Map<String, Value>, String> {
        let claims = self.raw_decode(token)?;
        let limited = claims
            .get("obo")
            .and_then(Value::as_str)
            .ok_or("no obo claim")?;
        jsonwebtoken::decode::<Map<String, Value>>(
            limited,
            &self.idp.decoding,
            &self.limited_validation,
        )
        .map(|t| t.claims)
        .map_err(|e| e.to_string())
    }

    /// One operation.
    pub async fn run(&self, op: Op) -> Result<(), String> {
        let encode = |claims: &Value| {
            jsonwebtoken::encode(&self.header, black_box(claims), &self.encoding)
                .map(|t| drop(black_box(t)))
                .map_err(|e| e.to_string())
        };
        match op {
            Op::RawEncode => encode(&self.claims),
            Op::RawEncodeObo => encode(&self.obo_claims),
            Op::Issue => self
                .issuer
                .plugin_token(black_box(TARGET))
                .await
                .map(|t| drop(black_box(t)))
                .map_err(|e| e.to_string()),
            Op::IssueObo => self
                .issuer
                .on_behalf_of_token(black_box(&self.user), black_box(TARGET))
                .await
                .map(|t| drop(black_box(t)))
                .map_err(|e| e.to_string()),
            Op::RawDecode => self
                .raw_decode(black_box(&self.token))
                .map(|c| drop(black_box(c))),
            Op::RawDecodeObo => self
                .raw_decode_obo(black_box(&self.obo_token))
                .map(|c| drop(black_box(c))),
            Op::NoAuth => self.send(&self.plain, &self.authorization).await,
            Op::Fresh => self.send(&self.fresh, &self.authorization).await,
            Op::Cached => self.send(&self.cached, &self.authorization).await,
            Op::OboFresh => self.send(&self.fresh, &self.obo_authorization).await,
            Op::OboCached => self.send(&self.cached, &self.obo_authorization).await,
            Op::Reuse => self
                .client
                .token_for(None, black_box(TARGET))
                .await
                .map(|t| drop(black_box(t)))
                .map_err(|e| e.to_string()),
            Op::OboReuse => self
                .obo_client
                .token_for(Some(black_box(&self.user)), black_box(TARGET))
                .await
                .map(|t| drop(black_box(t)))
                .map_err(|e| e.to_string()),
        }
    }

    /// One request: build it, clone the `Router` (one `Arc`), await `oneshot`.
    async fn send(&self, app: &Router, authorization: &HeaderValue) -> Result<(), String> {
        let Ok(res) = app
            .clone()
            .oneshot(request::get(ITEM_URI, authorization.clone()))
            .await;
        match res.status() {
            StatusCode::OK => Ok(()),
            status => Err(format!("HTTP {status}")),
        }
    }
}
