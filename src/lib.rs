//! # s2s-auth
//!
//! Service-to-service authentication for axum and tower. Every request carries a
//! [`Principal`] that says **who** is calling and **through which kind of credential**, and
//! every route has a [`RoutePolicy`] that says **what that caller may do there**. Refusals
//! are exact (400, 401, 403, 503 per RFC 6750) and every decision, token issued and key
//! rotated is an [`AuditEvent`](audit::AuditEvent).
//!
//! The model is the one Backstage (`backend.auth.externalAccess`) and OpenSearch Security
//! converged on; configuration uses Backstage's shape.
//!
//! ```
//! use axum::routing::{get, post};
//! use s2s_auth::{Auth, Principal, RoutePolicy, StaticToken};
//!
//! let auth = Auth::builder("catalog")
//!     .static_token(StaticToken::new("ci-bot", "a-long-random-token-for-ci"))
//!     .build()?;
//!
//! // Policies beside their routes; `into_router` checks them all and applies the layer.
//! let app: axum::Router = auth
//!     .router()
//!     .route("/healthz", get(|| async { "ok" }), RoutePolicy::unauthenticated())
//!     .route("/entities", get(|p: Principal| async move { format!("hello {}", p.subject()) })
//!         .post(|| async { "created" }), RoutePolicy::authenticated()) // static tokens: read-only
//!     .route("/admin/tokens", post(|| async { "issued" }), RoutePolicy::users().sensitive())
//!     .into_router()?;
//! # let _ = app;
//!
//! // Which routes each kind of credential can reach: log it, serve it, or diff it in CI.
//! let table = auth.access_table().to_markdown();
//! assert!(table.contains("| `<unlisted>` | * (read) |"));
//! # Ok::<(), s2s_auth::ConfigError>(())
//! ```
//!
//! An existing `Router` can be wrapped instead: `.layer(auth.layer())` (see [`layer`]).
//!
//! ## The names at the root
//!
//! [`Auth`] (built by [`AuthBuilder`], from Rust or YAML), [`AuthRouter`] (routes with their
//! policies), [`Principal`] with [`PrincipalType`] and [`CredentialKind`], [`RoutePolicy`]
//! and [`DefaultPolicy`], the credentials [`StaticToken`], [`JwksAccess`], [`UserProvider`],
//! [`LegacySecret`], [`PluginTokens`] with [`StaticDiscovery`], the outbound [`S2sClient`],
//! and [`ConfigError`]. Everything else lives in its module; the extension points are all
//! taken as `impl Trait` (an `Arc` of one works too): [`store::Store`],
//! [`jwks::KeyFetcher`], [`plugin::ServiceDiscovery`], [`custom::ExternalTokenType`],
//! [`audit::AuditSink`].
//!
//! ## Where things are: the request flow
//!
//! | stage | module |
//! |---|---|
//! | the decision, stage after stage | `pipeline` |
//! | finding the bearer token | `extract` |
//! | choosing the one verifier for a token (shape, `typ`, `iss`, prefix) | `classify` |
//! | the verifier contract, the verified-token cache | `verifier` |
//! | sending a token to its one verifier | `verify` |
//! | static tokens | [`static_token`] |
//! | JWKS-verified JWTs: external callers and users | [`external_jwks`] |
//! | legacy HS256 tokens | [`legacy`] |
//! | plugin-to-plugin and on-behalf-of tokens: keys, verifying | [`plugin`] |
//! | custom external token types | [`custom`] |
//! | on-behalf-of wire format: limited user tokens, the `act` form | [`obo`] |
//! | just-in-time on-behalf-of tokens: issuing, verifying, revoking | [`jit`] |
//! | service accounts: their tokens, each replica's copy, the admin API | [`service_account`] |
//! | route policies, and the strictest policy for unlisted methods | [`policy`] |
//! | every error, and its one mapping to HTTP | [`error`], `response` |
//! | the verified caller and its extractor | [`principal`] |
//!
//! And around it:
//!
//! | concept | module |
//! |---|---|
//! | the handle | `auth` |
//! | the builder and its one validator | `builder` |
//! | YAML configuration (maps onto the builder) | [`config`] |
//! | policies beside routes | [`router`] |
//! | the tower layer | [`layer`] |
//! | issuing tokens | `issue` |
//! | publishing our keys (JWKS) | `publish` |
//! | the access table | [`access_table`] |
//! | calling other services with a token attached | [`client`] |
//! | keys and accounts shared by replicas | [`store`] |
//! | the JWKS cache and its fetchers | [`jwks`] |
//! | reading a JWT's unverified header and claims | `jwt` |
//! | what the layer would do with a token, unverified (`s2s-auth inspect`) | [`inspect`] |
//! | access restrictions and actions | [`restrictions`] |
//! | audit events and sinks, request ids | [`audit`] |
//! | secrets that never print | [`secret`] |
//! | keeping a replica's copy of the store fresh (revocations, accounts) | `sync` |

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
mod clock;
pub mod config;
pub mod custom;
pub mod error;
pub mod external_jwks;
mod extract;
pub mod inspect;
// Entry points for the fuzz targets in `fuzz/`: not API (hidden, behind a feature that is off
// by default, free to change in any release). See FUZZING.md.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod issue;
pub mod jit;
pub mod jwks;
mod jws;
mod jwt;
pub mod layer;
pub mod legacy;
pub mod obo;
mod pipeline;
pub mod plugin;
pub mod policy;
pub mod principal;
mod publish;
mod required_claims;
mod response;
pub mod restrictions;
mod revocation;
pub mod router;
pub mod secret;
pub mod service_account;
mod service_id;
mod source_url;
pub mod static_token;
pub mod store;
mod subject;
mod sync;
mod token_cache;
mod verifier;
mod verify;

// The names a user needs for the first five minutes. Everything else lives in its module:
// extension points (`store::Store`, `jwks::KeyFetcher`, `plugin::ServiceDiscovery`,
// `custom::ExternalTokenType`, `audit::AuditSink`), errors (`error`), audit events (`audit`),
// the tower plumbing (`layer`), restrictions (`restrictions`), secrets (`secret`).
pub use auth::Auth;
pub use builder::AuthBuilder;
pub use client::S2sClient;
pub use error::ConfigError;
pub use external_jwks::{JwksAccess, UserProvider};
pub use legacy::LegacySecret;
pub use plugin::{PluginTokens, StaticDiscovery};
pub use policy::{DefaultPolicy, RoutePolicy};
pub use principal::{CredentialKind, Principal, PrincipalType};
pub use router::AuthRouter;
pub use static_token::StaticToken;

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
