//! # s2s-auth
//!
//! Service-to-service authentication for axum and tower. One layer, and every request
//! carries a [`Principal`] that says **who** is calling and **through which kind of
//! credential**, and every route has a [`RoutePolicy`] that says **what that caller may do
//! there**. Refusals are exact (400, 401, 403 per RFC 6750) and every decision is an
//! [`AuditEvent`].
//!
//! The model is the one Backstage (`backend.auth.externalAccess`) and OpenSearch Security
//! converged on; configuration uses Backstage's shape.
//!
//! ```
//! use axum::{routing::{get, post}, Router};
//! use http::Method;
//! use s2s_auth::{Auth, Principal, RoutePolicy, StaticToken};
//!
//! let auth = Auth::builder("catalog")
//!     .static_token(StaticToken::new("ci-bot", "a-long-random-token-for-ci"))
//!     .route("/healthz", [Method::GET], RoutePolicy::unauthenticated())
//!     .build()?;
//!
//! let app: Router = Router::new()
//!     .route("/healthz", get(|| async { "ok" }))
//!     .route("/entities", get(|p: Principal| async move { format!("hello {}", p.subject()) }))
//!     .route("/entities", post(|| async { "created" })) // static tokens: 403 (read-only)
//!     .layer(auth.layer());
//!
//! // Which routes each kind of credential can reach: log it, serve it, or diff it in CI.
//! let table = auth.access_table().to_markdown();
//! assert!(table.contains("| `/healthz` | GET | allow |"));
//! # Ok::<(), s2s_auth::ConfigError>(())
//! ```
//!
//! ## Where things are
//!
//! | concept | module |
//! |---|---|
//! | finding the bearer token | `extract` |
//! | choosing the one verifier for a token | `classify` |
//! | sending a token to its one verifier, the verified-token cache | `verify` |
//! | static tokens | [`static_token`] |
//! | JWKS-verified JWTs: external callers and users | [`external_jwks`] |
//! | legacy HS256 tokens | [`legacy`] |
//! | plugin-to-plugin tokens: keys, issuing, the published JWKS, verifying | [`plugin`] |
//! | acting on behalf of a user: limited user tokens, the `act` form | [`obo`] |
//! | keys and accounts shared by replicas | [`store`] |
//! | the JWKS cache and its fetchers | [`jwks`] |
//! | reading a JWT's unverified header and claims | `jwt` |
//! | the verified caller and its extractor | [`principal`] |
//! | access restrictions and actions | [`restrictions`] |
//! | route policies | [`policy`] |
//! | the access table | [`access_table`] |
//! | the tower layer | [`layer`] |
//! | calling other services with a token attached | [`client`] |
//! | errors, and their one mapping to HTTP | [`error`], `response` |
//! | audit events and sinks | [`audit`] |
//! | YAML configuration | [`config`] |
//! | secrets that never print | [`secret`] |

#![forbid(unsafe_code)]
#![deny(unreachable_pub)]
#![warn(
    missing_docs,
    missing_debug_implementations,
    rust_2018_idioms,
    unused_qualifications,
    clippy::unwrap_used
)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod access_table;
pub mod audit;
mod auth;
mod builder;
mod classify;
pub mod client;
pub mod config;
pub mod custom;
pub mod error;
pub mod external_jwks;
mod extract;
mod issue;
pub mod jwks;
mod jwt;
pub mod layer;
pub mod legacy;
pub mod obo;
mod pipeline;
pub mod plugin;
pub mod policy;
pub mod principal;
mod publish;
mod request_id;
mod response;
pub mod restrictions;
pub mod router;
pub mod secret;
mod service_id;
pub mod static_token;
pub mod store;
mod verifier;
mod verify;

pub use access_table::AccessTable;
pub use audit::{AuditEvent, AuditSink, Decision, EventKind, JsonLinesSink, MemoryAuditSink};
pub use auth::Auth;
pub use builder::{AuthBuilder, DEFAULT_LEEWAY_SECS, DEFAULT_VERIFIED_CACHE_CAPACITY};
pub use client::{ClientError, S2sClient};
pub use error::{
    ConfigError, ConfigRule, DelegationError, Forbidden, IssueError, RequestError, VerifyError,
};
pub use external_jwks::{JwksAccess, UserProvider};
pub use extract::MAX_TOKEN_LEN;
pub use jsonwebtoken::Algorithm;
pub use jwks::{FetchError, FetchedDocument, HttpFetcher, JwksCache, JwksCacheConfig, KeyFetcher};
pub use layer::{AuthLayer, AuthService, ResponseFuture};
pub use legacy::LegacySecret;
pub use plugin::{PluginTokens, ServiceDiscovery, StaticDiscovery, StaticKey};
pub use policy::{DefaultPolicy, RoutePolicy};
pub use principal::{CredentialKind, MissingPrincipal, Principal, PrincipalType};
pub use restrictions::{AccessRestriction, AccessRestrictions, Action};
pub use secret::{Fingerprint, SecretString};
pub use service_id::is_valid_service_id;
pub use static_token::StaticToken;
pub use store::{
    MemoryStore, PostgresStore, PublicKeyRecord, SqliteStore, Store, StoreError, StoreFuture,
};

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
