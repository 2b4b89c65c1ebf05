//! Inspecting a token without verifying it: what it says about itself, which verifier the
//! layer would send it to (and why), and what that verifier would check.
//!
//! This is the `s2s-auth inspect` command as a library: an operator pastes a token that was
//! refused and sees, before anything is trusted, whether it even reaches the verifier they
//! expect. Nothing here checks a signature or fetches a key; everything read from the token
//! is **unverified** and shown as such.
//!
//! Two entry points: [`inspect`] applies the shape rules alone (no configuration: "a JWT with
//! `iss` goes to the verifier configured for that issuer"), [`Auth::inspect_token`] runs the
//! classifier of a real configuration ("the `jwks` entry `backend.auth.externalAccess[1]`",
//! or "refused: no verifier is configured for this `iss`").
//!
//! **No secret is kept.** An [`Inspection`] holds a JWT's header and claims (never its
//! signature, and with an on-behalf-of token's `obo` claim, itself a credential, replaced by
//! its length), or for an opaque token only its length and prefix class. Its `Debug` and
//! `Display` therefore print nothing that would let anyone replay the token.
//!
//! ```
//! use s2s_auth::inspect::{inspect, TokenShape, Verdict};
//!
//! // An unsigned-looking JWT with an issuer (header {"alg":"RS256","kid":"k1"}).
//! let token = "eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIn0.eyJpc3MiOiJodHRwczovL2lkcCJ9.c2ln";
//! let seen = inspect(token)?;
//! assert!(matches!(&seen.shape, TokenShape::Jwt { header, .. } if header["kid"] == "k1"));
//! assert!(matches!(&seen.verdict, Verdict::Verifier { verifier, .. } if verifier.contains("https://idp")));
//! // The signature segment is never shown.
//! assert!(!seen.to_string().contains("c2ln"));
//!
//! // An opaque token: only its length and prefix class.
//! let seen = inspect("s2s_sa_0123456789abcdef")?;
//! assert_eq!(seen.shape, TokenShape::Opaque { len: 23, class: "service account (`s2s_sa_` prefix)".into() });
//! assert!(!format!("{seen:?}{seen}").contains("0123456789abcdef"));
//! # Ok::<(), s2s_auth::inspect::InspectError>(())
//! ```

use std::fmt;

use serde_json::{Map, Value};

use crate::auth::Auth;
use crate::classify::{Route, TokenClass, classify};
use crate::error::VerifyError;
use crate::extract::MAX_TOKEN_LEN;
use crate::jwt::{Part, Unverified, decode_part};

/// What a token says about itself and where the layer would send it. Nothing in it is
/// verified. See the [module docs](self).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Inspection {
    /// What the token is: a JWT's header and claims, or an opaque token's length and class.
    pub shape: TokenShape,
    /// The verifier it would go to, or why it would be refused before any.
    pub verdict: Verdict,
    /// What that verifier would check, in words, in the order it checks them. Empty when
    /// the token is refused before any verifier.
    pub checks: Vec<String>,
}

/// What a token is, read without verifying it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum TokenShape {
    /// A compact JWS: its header and claims (UNVERIFIED). The signature is not kept; an
    /// `obo` claim (a limited user token, a credential) is replaced by a note of its length.
    Jwt {
        /// The header, as sent.
        header: Map<String, Value>,
        /// The claims, as sent (the `obo` claim redacted).
        claims: Map<String, Value>,
    },
    /// Anything else. The token itself is not kept.
    Opaque {
        /// Its length in bytes.
        len: usize,
        /// Its prefix class, in words: a service account, a custom type, or none.
        class: String,
    },
}

/// Where the classifier sends a token.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Verdict {
    /// The one verifier the token would go to (nothing else is tried if it fails there).
    Verifier {
        /// Which verifier, in words (`jwks entry backend.auth.externalAccess[1] (issuer ...)`).
        verifier: String,
        /// The rule that chose it.
        why: String,
    },
    /// Refused before any verifier: no key is fetched, nothing else is tried.
    Refused {
        /// The check that refuses it, as the layer names it (401 `invalid_token`).
        reason: String,
    },
}

/// Why a token cannot be inspected: the layer itself would refuse it before classifying it
/// (or, for a token shaped like a JWT, before choosing a verifier), so there is nothing to
/// show. Never holds the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InspectError {
    /// The token is empty.
    #[error("the token is empty")]
    Empty,
    /// The token is longer than the layer reads.
    #[error("the token is {len} bytes, over the {max}-byte limit the layer reads")]
    TooLong {
        /// Its length.
        len: usize,
        /// The limit (8 KiB, what the layer reads from an `Authorization` header).
        max: usize,
    },
    /// The token holds whitespace, a control character or a non-ASCII byte.
    #[error("the token holds whitespace, a control character or a non-ASCII byte")]
    NotVisibleAscii,
    /// The token is shaped like a JWT, but its header or claims cannot be read (not
    /// base64url, not a JSON object, `alg: none`, a key in the header, ...).
    #[error("a JWT the layer refuses before any verifier: {0}")]
    Unreadable(VerifyError),
    /// The token starts like a JWT (`eyJ`, with dots) but is not three base64url segments:
    /// most likely a JWT damaged in transit (cut, wrapped, quoted). The layer would look it up
    /// as an opaque static token, and almost certainly not find it.
    #[error(
        "starts like a JWT but is not three base64url segments (cut, wrapped or quoted?); \
         the layer would look it up as a static token"
    )]
    BrokenJwt,
}

/// Inspects a token by shape alone, as the classifier's rules (see the `classify` module)
/// would send it, without any configuration. See the [module docs](self).
///
/// ```
/// use s2s_auth::inspect::{inspect, InspectError};
///
/// assert_eq!(inspect("").unwrap_err(), InspectError::Empty);
/// assert!(matches!(inspect("eyJub3QganNvbg.e30.c2ln"), Err(InspectError::Unreadable(_))));
/// let static_like = inspect("a-long-random-token-for-ci")?;
/// assert!(static_like.to_string().contains("static-token table"));
/// # Ok::<(), InspectError>(())
/// ```
pub fn inspect(token: &str) -> Result<Inspection, InspectError> {
    check_input(token)?;
    match classify(token) {
        TokenClass::Opaque => {
            let (class, verdict, checks) = if is_service_account(token) {
                let (v, c) = service_account_route();
                (service_account_class(), v, c)
            } else {
                (
                    String::from("no reserved prefix"),
                    Verdict::Verifier {
                        verifier: String::from(
                            "a custom type whose prefix it carries, else the static-token table",
                        ),
                        why: String::from(
                            "not JWT-shaped and without the `s2s_sa_` prefix (configured custom prefixes are known only with a configuration)",
                        ),
                    },
                    static_checks(),
                )
            };
            Ok(Inspection {
                shape: TokenShape::Opaque {
                    len: token.len(),
                    class,
                },
                verdict,
                checks,
            })
        }
        TokenClass::Jwt => {
            let u = crate::jwt::inspect(token).map_err(InspectError::Unreadable)?;
            let shape = jwt_shape(token)?;
            let (verdict, checks) = shape_rule(&u);
            Ok(Inspection {
                shape,
                verdict,
                checks,
            })
        }
    }
}

impl Auth {
    /// Inspects a token as this configuration's classifier would send it: the same rules
    /// the layer applies, naming the configured verifier (by its config path) or the reason
    /// the token would be refused before any. Nothing is verified, fetched or looked up.
    /// See the [`inspect`](crate::inspect) module.
    ///
    /// ```
    /// use s2s_auth::Auth;
    /// use s2s_auth::inspect::Verdict;
    ///
    /// let auth = Auth::from_yaml_str("
    /// s2s: { serviceId: catalog }
    /// backend:
    ///   auth:
    ///     externalAccess:
    ///       - type: jwks
    ///         options: { url: https://idp.example.com/keys, issuer: https://idp.example.com, audience: catalog }
    /// ")?;
    /// // {"alg":"RS256"} . {"iss":"https://other.example.com"}
    /// let token = "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJodHRwczovL290aGVyLmV4YW1wbGUuY29tIn0.c2ln";
    /// let seen = auth.inspect_token(token)?;
    /// assert!(matches!(seen.verdict, Verdict::Refused { .. }));
    ///
    /// // {"alg":"RS256"} . {"iss":"https://idp.example.com"}
    /// let token = "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJodHRwczovL2lkcC5leGFtcGxlLmNvbSJ9.c2ln";
    /// let seen = auth.inspect_token(token)?;
    /// assert!(matches!(&seen.verdict, Verdict::Verifier { verifier, .. }
    ///     if verifier.contains("backend.auth.externalAccess[0]")));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn inspect_token(&self, token: &str) -> Result<Inspection, InspectError> {
        check_input(token)?;
        let p = &*self.pipeline;
        let verifiers = &*p.verifiers;
        let known = verifiers.known();
        match classify(token) {
            TokenClass::Opaque => {
                let route = known.classify_opaque(token);
                let class = match route {
                    Route::ServiceAccount => service_account_class(),
                    Route::Custom(i) => {
                        let c = &verifiers.custom[i].0;
                        format!("custom type `{}` (its prefix)", c.type_name)
                    }
                    _ => String::from("no configured prefix"),
                };
                let (verdict, checks) = self.describe(route, None);
                Ok(Inspection {
                    shape: TokenShape::Opaque {
                        len: token.len(),
                        class,
                    },
                    verdict,
                    checks,
                })
            }
            TokenClass::Jwt => {
                let u = crate::jwt::inspect(token).map_err(InspectError::Unreadable)?;
                let shape = jwt_shape(token)?;
                let (verdict, checks) = if !known.any_jwt() {
                    refused(VerifyError::NoJwtVerifier)
                } else {
                    match known.route(&u) {
                        Ok(route) => self.describe(route, Some(&u)),
                        Err(e) => refused(e),
                    }
                };
                Ok(Inspection {
                    shape,
                    verdict,
                    checks,
                })
            }
        }
    }

    /// The configured verifier behind `route`, and its checks.
    fn describe(&self, route: Route, u: Option<&Unverified>) -> (Verdict, Vec<String>) {
        let p = &*self.pipeline;
        let verifiers = &*p.verifiers;
        let leeway = verifiers.shared.leeway;
        let verifier = |verifier: String, why: &str| Verdict::Verifier {
            verifier,
            why: why.to_owned(),
        };
        match route {
            Route::Static => (
                verifier(
                    format!(
                        "the static-token table ({} token(s) configured)",
                        p.static_callers.len()
                    ),
                    "not JWT-shaped, without the `s2s_sa_` prefix or a custom type's prefix",
                ),
                static_checks(),
            ),
            Route::ServiceAccount => {
                let (mut verdict, checks) = service_account_route();
                if verifiers.accounts.is_none() {
                    verdict = Verdict::Refused {
                        reason: VerifyError::Unsupported("service-account").to_string(),
                    };
                    return (verdict, Vec::new());
                }
                (verdict, checks)
            }
            Route::Custom(i) => {
                let c = &verifiers.custom[i].0;
                (
                    verifier(
                        format!("custom type `{}` ({})", c.type_name, c.origin),
                        "the token starts with this type's prefix",
                    ),
                    vec![String::from(
                        "the custom type's own verifier decides (it may call its issuing system)",
                    )],
                )
            }
            Route::Legacy => (
                verifier(
                    String::from("the legacy secrets (backend.auth.keys, type: legacy)"),
                    "a JWT without `iss` (HS256: Backstage's legacy service tokens)",
                ),
                with_alg_kid(
                    u,
                    vec![
                        String::from("signature: HS256 with each configured legacy secret"),
                        format!("exp (required) and nbf, with {leeway} s leeway"),
                        String::from("sub (required); no aud"),
                    ],
                ),
            ),
            Route::Jwks(i) => {
                let v = &verifiers.jwks[i];
                let kind = if matches!(v.mapping, crate::external_jwks::Mapping::User { .. }) {
                    "user provider"
                } else {
                    "jwks entry"
                };
                let issuer = match &v.issuers {
                    Some(list) => format!("issuer {}", list.join(", ")),
                    None => String::from("no issuer check"),
                };
                let why = match u.and_then(Unverified::iss) {
                    Some(_) if v.issuers.is_some() => "its `iss` is this entry's issuer",
                    _ => "the one entry that takes tokens without a matching issuer",
                };
                let keys = match v.url_now() {
                    Some(url) => format!("keys from {url}"),
                    None => String::from("keys from the issuer's OIDC discovery"),
                };
                let mut checks = Vec::new();
                if let Some(u) = u
                    && let Err(e) = v.precheck(u)
                {
                    checks.push(format!("refused before any key is fetched: {e}"));
                }
                checks.push(format!("signature: {keys}"));
                checks.push(format!(
                    "exp (required), nbf and iat, with {leeway} s leeway"
                ));
                checks.push(match &v.issuers {
                    Some(list) => format!("iss one of: {}", list.join(", ")),
                    None => {
                        String::from("iss not checked (dangerouslyAllowMissingIssuerOrAudience)")
                    }
                });
                checks.push(match &v.audiences {
                    Some(list) => format!("aud one of: {}", list.join(", ")),
                    None => String::from("aud not checked"),
                });
                checks.push(String::from(
                    "typ: no Backstage type (a Backstage user provider: vnd.backstage.user)",
                ));
                checks.push(String::from(
                    "the entry's requiredClaims, if any; sub (required)",
                ));
                (
                    verifier(format!("{kind} {} ({issuer})", v.origin), why),
                    with_alg_kid(u, checks),
                )
            }
            Route::Plugin => {
                let mut checks = Vec::new();
                if let (Some(plugin), Some(u)) = (&verifiers.plugin, u) {
                    match u.sub() {
                        Some(sub) if crate::service_id::is_valid_service_id(sub) => {
                            checks.push(match plugin.discovery.base_url(sub) {
                                Some(base) => format!(
                                    "signature: ES256 with keys from {base}{} (discovery of `{sub}`)",
                                    crate::plugin::JWKS_PATH
                                ),
                                None => format!(
                                    "signature: keys of `{sub}`, which discovery does not know: refused (s2s.discovery)"
                                ),
                            });
                        }
                        _ => checks.push(String::from(
                            "sub must be a service id (^[a-z0-9_-]+$): refused before discovery",
                        )),
                    }
                    checks.push(format!("aud = {}", plugin.service_id));
                    checks.push(format!(
                        "iat, exp (required), with {leeway} s leeway; a lifetime of at most {} s plus leeway",
                        plugin.key_duration.as_secs()
                    ));
                    if u.act().is_some() {
                        checks.push(String::from(
                            "act form (on behalf of a user): the acting service must be in s2s.trustedActors",
                        ));
                    }
                    if u.claim("obo").is_some() {
                        checks.push(String::from(
                            "obo claim: the limited user token is verified against the Backstage identity provider",
                        ));
                    }
                }
                (
                    verifier(
                        String::from("the plugin-token verifier"),
                        "typ is vnd.backstage.plugin",
                    ),
                    with_alg_kid(u, checks),
                )
            }
            Route::Jit => (
                verifier(
                    String::from(
                        "the just-in-time on-behalf-of verifier (s2s.onBehalfOf.justInTime)",
                    ),
                    "typ is vnd.s2s-auth.obo",
                ),
                with_alg_kid(
                    u,
                    vec![
                        String::from(
                            "signature: HS512 (hmacKeys, by kid) or this service's ES256 keys, or a trusted issuer's",
                        ),
                        String::from("iss = the deployment id"),
                        format!("aud = {} or self-issued (azp = this service)", p.service_id),
                        format!(
                            "exp (required), nbf and iat, with {leeway} s leeway; a lifetime within the cap"
                        ),
                        String::from("revocation: the jti is not revoked"),
                    ],
                ),
            ),
        }
    }
}

/// The layer's own first checks (`extract`): not empty, at most 8 KiB, visible ASCII.
fn check_input(token: &str) -> Result<(), InspectError> {
    if token.is_empty() {
        return Err(InspectError::Empty);
    }
    if token.len() > MAX_TOKEN_LEN {
        return Err(InspectError::TooLong {
            len: token.len(),
            max: MAX_TOKEN_LEN,
        });
    }
    if !token.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        return Err(InspectError::NotVisibleAscii);
    }
    if token.starts_with("eyJ") && token.contains('.') && !crate::classify::looks_like_jwt(token) {
        return Err(InspectError::BrokenJwt);
    }
    Ok(())
}

fn is_service_account(token: &str) -> bool {
    token.starts_with(crate::service_account::TOKEN_PREFIX)
}

fn service_account_class() -> String {
    format!(
        "service account (`{}` prefix)",
        crate::service_account::TOKEN_PREFIX
    )
}

fn service_account_route() -> (Verdict, Vec<String>) {
    (
        Verdict::Verifier {
            verifier: String::from("the service-account verifier (s2s.serviceAccounts)"),
            why: String::from("the reserved `s2s_sa_` prefix"),
        },
        vec![
            String::from("lookup by SHA-256 in this replica's copy of the account store"),
            String::from("the account enabled, the token neither revoked nor expired"),
        ],
    )
}

fn static_checks() -> Vec<String> {
    vec![
        String::from("lookup by SHA-256, compared in constant time"),
        String::from("expiresAt, if the entry has one"),
        String::from("read-only unless the entry says allowWrites or the route allowStaticWrites"),
    ]
}

/// A refusal before any verifier.
fn refused(e: VerifyError) -> (Verdict, Vec<String>) {
    (
        Verdict::Refused {
            reason: e.to_string(),
        },
        Vec::new(),
    )
}

/// `checks` with the signature's algorithm and key id named first.
fn with_alg_kid(u: Option<&Unverified>, mut checks: Vec<String>) -> Vec<String> {
    if let Some(u) = u {
        let kid = u.kid.as_deref().map_or_else(
            || String::from("no kid: every key of the set for this alg"),
            |k| format!("kid {k}"),
        );
        checks.insert(0, format!("alg {:?} (an allowed algorithm), {kid}", u.alg));
    }
    checks
}

/// The JWT's header and claims as JSON objects (already read by `jwt::inspect`, so both
/// decode), the `obo` claim redacted.
fn jwt_shape(token: &str) -> Result<TokenShape, InspectError> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload)) = (parts.next(), parts.next()) else {
        return Err(InspectError::Unreadable(VerifyError::Malformed(
            "not a compact JWS",
        )));
    };
    let header: Map<String, Value> =
        decode_part(header, Part::Header).map_err(InspectError::Unreadable)?;
    let mut claims: Map<String, Value> =
        decode_part(payload, Part::Claims).map_err(InspectError::Unreadable)?;
    if let Some(obo) = claims.get_mut("obo") {
        // A limited user token: a credential of its own, never printed.
        let len = obo.as_str().map_or(0, str::len);
        *obo = Value::String(format!("<limited user token, {len} bytes, not shown>"));
    }
    Ok(TokenShape::Jwt { header, claims })
}

/// The classifier's rules by shape alone (no configuration).
fn shape_rule(u: &Unverified) -> (Verdict, Vec<String>) {
    let verifier = |verifier: &str, why: &str| Verdict::Verifier {
        verifier: verifier.to_owned(),
        why: why.to_owned(),
    };
    let typ = u.typ.as_deref();
    let (verdict, checks): (Verdict, Vec<String>) = match typ {
        Some(crate::plugin::PLUGIN_TYP) => (
            verifier("the plugin-token verifier", "typ is vnd.backstage.plugin"),
            vec![
                String::from(
                    "sub must be a service id; its keys from discovery (s2s.discovery) at <base>/.backstage/auth/v1/jwks.json",
                ),
                String::from(
                    "signature ES256; aud = this service; iat, exp (required) with leeway; lifetime at most the key duration",
                ),
            ],
        ),
        Some(crate::jit::JIT_TYP) => (
            verifier(
                "the just-in-time on-behalf-of verifier",
                "typ is vnd.s2s-auth.obo",
            ),
            vec![
                String::from(
                    "signature HS512 (by kid) or ES256; iss = the deployment id; aud = this service or self-issued",
                ),
                String::from(
                    "exp (required), nbf, iat with leeway; revocation: the jti is not revoked",
                ),
            ],
        ),
        Some(crate::obo::LIMITED_USER_TYP) => {
            return refused(VerifyError::WrongType);
        }
        _ => match u.iss() {
            Some(iss) => {
                let kind = if typ == Some(crate::external_jwks::BACKSTAGE_USER_TYP) {
                    "the Backstage user provider"
                } else {
                    "the jwks entry or user provider"
                };
                (
                    Verdict::Verifier {
                        verifier: format!("{kind} configured for issuer {iss}"),
                        why: String::from(
                            "a JWT with `iss`: refused at once if nobody configured that issuer",
                        ),
                    },
                    vec![
                        String::from(
                            "signature: keys from the entry's url or the issuer's discovery",
                        ),
                        String::from(
                            "exp (required), nbf, iat with leeway; iss; aud; the entry's requiredClaims",
                        ),
                    ],
                )
            }
            None if u.alg == jsonwebtoken::Algorithm::HS256 => (
                verifier("the legacy secrets", "an HS256 JWT without `iss`"),
                vec![String::from(
                    "signature HS256 with each legacy secret; exp and sub required",
                )],
            ),
            None => (
                verifier(
                    "the one jwks entry that gave up the issuer check, else refused",
                    "a JWT without `iss` that is not HS256",
                ),
                vec![String::from(
                    "signature: the entry's keys; exp (required) with leeway; aud if configured",
                )],
            ),
        },
    };
    (verdict, with_alg_kid(Some(u), checks))
}

impl fmt::Display for Inspection {
    /// The report `s2s-auth inspect` prints: the header and claims as pretty JSON, each
    /// under a heading marked UNVERIFIED, then the verifier and its checks.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.shape {
            TokenShape::Jwt { header, claims } => {
                let pretty = |m: &Map<String, Value>| {
                    serde_json::to_string_pretty(m).unwrap_or_else(|_| String::from("{}"))
                };
                writeln!(f, "Header (UNVERIFIED):\n{}\n", pretty(header))?;
                writeln!(f, "Claims (UNVERIFIED):\n{}\n", pretty(claims))?;
                writeln!(f, "Signature: present, not shown")?;
            }
            TokenShape::Opaque { len, class } => {
                writeln!(f, "Opaque token (UNVERIFIED): {len} bytes, {class}")?;
            }
        }
        match &self.verdict {
            Verdict::Verifier { verifier, why } => {
                writeln!(f, "Verifier: {verifier}\nBecause: {why}")?;
            }
            Verdict::Refused { reason } => {
                writeln!(f, "Verifier: none, refused before any: {reason}")?;
            }
        }
        if !self.checks.is_empty() {
            writeln!(f, "Would check:")?;
            for check in &self.checks {
                writeln!(f, "  - {check}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_what_the_layer_refuses_before_reading() {
        assert_eq!(inspect("").unwrap_err(), InspectError::Empty);
        assert!(matches!(
            inspect(&"a".repeat(10 * 1024)).unwrap_err(),
            InspectError::TooLong { .. }
        ));
        assert_eq!(inspect("a b").unwrap_err(), InspectError::NotVisibleAscii);
        assert_eq!(inspect("tokén").unwrap_err(), InspectError::NotVisibleAscii);
        assert_eq!(
            inspect("eyJhbGciOiJSUzI1NiJ9.!!!.c2ln").unwrap_err(),
            InspectError::BrokenJwt
        );
        // base64url, but not JSON.
        assert!(matches!(
            inspect("eyJub3QganNvbg.e30.c2ln").unwrap_err(),
            InspectError::Unreadable(_)
        ));
    }

    #[test]
    fn never_keeps_the_signature_or_an_opaque_token() {
        let jwt = "eyJhbGciOiJFUzI1NiIsInR5cCI6InZuZC5iYWNrc3RhZ2UucGx1Z2luIn0.eyJzdWIiOiJzY2FmZm9sZGVyIiwib2JvIjoic2VjcmV0LWxpbWl0ZWQtdG9rZW4ifQ.U0lHTkFUVVJF";
        let seen = inspect(jwt).unwrap();
        let shown = format!("{seen:?}{seen}");
        assert!(!shown.contains("U0lHTkFUVVJF"));
        assert!(!shown.contains("secret-limited-token"));
        assert!(shown.contains("plugin-token verifier"));
        let seen = inspect("a-long-random-static-token").unwrap();
        assert!(!format!("{seen:?}{seen}").contains("random-static"));
    }
}
