//! The test kit: everything that plays the other side of s2s-auth, written once for the
//! integration tests, the benches and the tour. Signing keys generated at run time
//! (nothing checked in), tokens forged by hand, key servers on `127.0.0.1:0` that count
//! their requests, an in-process key fetcher, and a fake identity provider.
//!
//! It depends only on the crate's public API and the crates the crate already uses.
//! Included by path: `tests/common/mod.rs` with `#[path = "../kit/mod.rs"] pub mod kit;`,
//! benches and examples with `#[path = "../tests/kit/mod.rs"] mod kit;`.
//!
//! - [`keys`]: [`SigningKey`] (ES256, EdDSA, RS256) and its public JWK, [`jwks`] documents;
//! - [`forge`]: standard [`claims`], any header signed with any key ([`sign_raw`]),
//!   [`unsigned`] tokens, Backstage's [`legacy_token`]s, a token's [`header_and_claims`];
//! - [`key_server`]: [`KeyServer`], JWKS and OIDC discovery over HTTP, in a [`Mode`];
//! - [`big_body_server`]: [`BigBodyServer`], an oversized key set, counting what it sent;
//! - [`key_fetcher`]: [`InProcessJwks`], key sets by URL without a socket;
//! - [`idp`]: [`Idp`], an identity provider minting OIDC and Backstage user tokens;
//! - [`floor`]: the crypto floor, `jsonwebtoken::decode` as a middleware, for the benches;
//! - [`example_env`]: the values `examples/auth.env` gives `examples/auth.yaml`.

// Each includer uses a different subset (of the items, and of their re-exports below).
#![allow(dead_code, unused_imports)]

pub mod big_body_server;
pub mod example_env;
pub mod floor;
pub mod forge;
pub mod idp;
pub mod key_fetcher;
pub mod key_server;
pub mod keys;

pub use big_body_server::BigBodyServer;
pub use example_env::{example_env, example_env_pairs};
pub use floor::floor;
pub use forge::{
    b64url, claims, decode_part, header_and_claims, hex, legacy_claims, legacy_claims_living,
    legacy_token, now, random_hex, sign_raw, unsigned,
};
pub use idp::{Idp, UserClaims, UserToken, backstage_user_token, limited_parts, limited_token};
pub use key_fetcher::InProcessJwks;
pub use key_server::{KeyServer, Mode};
pub use keys::{SigningKey, jwks};
