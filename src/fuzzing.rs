//! Entry points for the fuzz targets in `fuzz/` (see FUZZING.md). **Not API**: compiled only
//! with the `fuzzing` feature, hidden from the docs, and free to change in any release.
//!
//! Each function is a thin wrapper around one crate-private parser, so the targets reach the
//! code that reads attacker-controlled bytes (headers, tokens, fetched documents) without
//! widening the public API. They return plain owned values the targets can check invariants
//! on; errors are rendered with `Display`, the form a log line or a response would carry.

use std::sync::OnceLock;

use http::{HeaderMap, HeaderValue, Uri, header};
use jsonwebtoken::Algorithm;

use crate::auth::Auth;
use crate::classify::{TokenClass, looks_like_jwt};
use crate::jwks::{KeySet, Lookup, parse_discovery_document};

/// The bearer token of a request with these `Authorization` values and this request target,
/// as the pipeline's first stage finds it. `None` when the input is no valid HTTP request
/// (a header value or URI that `http` refuses never reaches the service).
pub fn bearer(authorization: &[&[u8]], uri: &str) -> Option<Result<Option<String>, String>> {
    let uri: Uri = uri.parse().ok()?;
    let mut headers = HeaderMap::new();
    for value in authorization {
        headers.append(header::AUTHORIZATION, HeaderValue::from_bytes(value).ok()?);
    }
    Some(
        crate::extract::bearer_token(&crate::extract::read_headers(&headers), &uri)
            .map_err(|e| e.to_string())
            .and_then(|t| {
                // The token as a verifier would get it (after a cache miss): checked.
                let text = t.map(|t| t.checked().map(str::to_owned)).transpose();
                text.map_err(|e| e.to_string())
            }),
    )
}

/// What [`inspect`] read from a token's unverified header and claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspected {
    /// The `alg` header, parsed.
    pub alg: Algorithm,
    /// The `typ` header.
    pub typ: Option<String>,
    /// The `kid` header.
    pub kid: Option<String>,
    /// The `iss` claim.
    pub iss: Option<String>,
    /// The `aud` claim, as a list.
    pub aud: Vec<String>,
    /// The `sub` claim, if a string.
    pub sub: Option<String>,
    /// Whether an `act` claim is there.
    pub has_act: bool,
}

/// The unverified header and claims reader (`jwt::inspect`).
pub fn inspect(token: &str) -> Result<Inspected, String> {
    crate::jwt::inspect(token)
        .map(|u| Inspected {
            alg: u.alg,
            iss: u.iss().map(str::to_owned),
            aud: u.aud().map(str::to_owned).collect(),
            sub: u.sub().map(str::to_owned),
            has_act: u.act().is_some(),
            typ: u.typ,
            kid: u.kid,
        })
        .map_err(|e| e.to_string())
}

/// Where the classifier sent a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Classified {
    /// Opaque: the static-token table (no custom types are configured in the fixture).
    Static,
    /// A JWT sent to the JWKS verifier at this index of [`jwks_verifiers`].
    Jwks(usize),
    /// A JWT sent to the legacy secrets.
    Legacy,
    /// A JWT sent to the plugin-token verifier.
    Plugin,
    /// A custom type (never, in the fixture).
    Custom(usize),
    /// A JWT sent to the just-in-time on-behalf-of verifier (never, in the fixture).
    Jit,
    /// An opaque token with the `s2s_sa_` prefix: the service-account verifier (the prefix
    /// is reserved, whether or not service accounts are configured).
    ServiceAccount,
    /// A JWT refused before any verifier, with the reason.
    Refused(String),
}

/// The fixture the classifier runs against: every kind of JWT verifier, including two JWKS
/// entries sharing an issuer (told apart by audience) and one that gave up the issuer check.
/// Built once; no network, no runtime.
fn fixture() -> &'static Auth {
    static AUTH: OnceLock<Auth> = OnceLock::new();
    AUTH.get_or_init(|| {
        const YAML: &str = "
s2s:
  serviceId: catalog
  users:
    - type: oidc
      issuer: https://login.example.com
      audience: catalog
      jwksUrl: https://login.example.com/keys
      namespace: login
    - type: backstage
      issuer: https://backstage.example.com/api/auth
      jwksUrl: https://backstage.example.com/api/auth/.well-known/jwks.json
  discovery:
    scaffolder: https://scaffolder.example.com/api/scaffolder
backend:
  auth:
    externalAccess:
      - type: jwks
        options:
          url: https://idp.example.com/a.json
          issuer: https://idp.example.com
          audience: app-a
          subjectPrefix: a
      - type: jwks
        options:
          url: https://idp.example.com/b.json
          issuer: https://idp.example.com
          audience: [app-b, app-c]
          subjectPrefix: b
      - type: jwks
        options:
          url: https://open.example.com/keys.json
          audience: catalog
          dangerouslyAllowMissingIssuerOrAudience: true
      - type: legacy
        options:
          secret: Zml4dHVyZS1sZWdhY3ktc2VjcmV0LTMyLWJ5dGVz
          subject: old-backend
";
        // The fixture is a constant: failing to build it is a bug in this file, found by the
        // first run of the target, never an input-dependent failure.
        #[allow(clippy::expect_used)]
        Auth::from_yaml_str(YAML).expect("the fuzzing fixture configuration is valid")
    })
}

/// How many JWKS verifiers the classifier fixture has (a [`Classified::Jwks`] index is below).
pub fn jwks_verifiers() -> usize {
    fixture().pipeline.verifiers.jwks.len()
}

/// Classifies a token as the verification stage does: by shape, then (for a JWT) by its
/// unverified header and claims against the fixture's verifiers.
pub fn classify(token: &str) -> Classified {
    let known = fixture().pipeline.verifiers.known();
    let route = match crate::classify::classify(token) {
        TokenClass::Opaque => known.classify_opaque(token),
        TokenClass::Jwt => match known.classify_jwt(token) {
            Ok((route, _)) => route,
            Err(e) => return Classified::Refused(e.to_string()),
        },
    };
    use crate::classify::Route;
    match route {
        Route::Static => Classified::Static,
        Route::Jwks(i) => Classified::Jwks(i),
        Route::Legacy => Classified::Legacy,
        Route::Plugin => Classified::Plugin,
        Route::Custom(i) => Classified::Custom(i),
        Route::Jit => Classified::Jit,
        Route::ServiceAccount => Classified::ServiceAccount,
    }
}

/// Whether a token has the JWT shape (three base64url segments, the first starting `eyJ`).
pub fn looks_like_jwt_shape(token: &str) -> bool {
    looks_like_jwt(token)
}

/// What [`parse_jwks`] made of a JWKS document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedJwks {
    /// Usable keys.
    pub usable: usize,
    /// Skipped JWKs.
    pub skipped: usize,
    /// Lookups by each usable key's `kid` (and none) and each asymmetric algorithm that found
    /// a key.
    pub found: usize,
}

/// The asymmetric algorithms a JWKS key may verify.
const ASYMMETRIC: [Algorithm; 9] = [
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::EdDSA,
];

/// Parses a JWKS document into usable keys (`KeySet::parse`), then looks every key up as a
/// token would (by `kid` and by none, for every asymmetric algorithm and HS256).
pub fn parse_jwks(body: &[u8]) -> Result<ParsedJwks, String> {
    let set = KeySet::parse(body, "fuzz").map_err(|e| e.to_string())?;
    let mut found = 0;
    let kids: Vec<Option<String>> = std::iter::once(None)
        .chain(set.kids().map(|k| Some(k.to_owned())))
        .collect();
    for kid in &kids {
        for alg in ASYMMETRIC.into_iter().chain([Algorithm::HS256]) {
            if let Lookup::Found(key) = set.find(kid.as_deref(), alg) {
                // A key found is one that may verify this algorithm, under this kid.
                assert!(
                    key.algorithms.contains(&alg),
                    "key found for an algorithm it does not allow"
                );
                assert!(
                    kid.is_none() || key.kid == *kid,
                    "key found under another kid"
                );
                assert!(alg != Algorithm::HS256, "a symmetric key taken from a JWKS");
                found += 1;
            }
        }
    }
    Ok(ParsedJwks {
        usable: set.len(),
        skipped: set.skipped,
        found,
    })
}

/// The `jwks_uri` of an OIDC discovery document fetched for `issuer`.
pub fn parse_discovery(body: &[u8], issuer: &str) -> Result<String, String> {
    parse_discovery_document(body, issuer)
}

#[cfg(test)]
mod tests {
    /// The classifier fuzz target's fixture must build under the crate's current rules (a CI
    /// fuzz run found it refused once the subject and namespace rules came in).
    #[test]
    fn fixture_builds() {
        let _ = super::fixture();
    }
}
