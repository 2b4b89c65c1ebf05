//! The JWT lines of the threat model (DESIGN.md section 8): each attack is refused with the
//! exact 401 (or 403) and `error_description`, and those decided from the token alone cost
//! no request to the key server.

mod common;

use common::kit::*;
use common::*;
use http::Method;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use s2s_auth::{Auth, CredentialKind, JwksAccess, RoutePolicy, UserProvider};
use serde_json::{Value, json};

const ISSUER: &str = "https://idp.example.com";
const USER_ISSUER: &str = "https://login.example.com";
const BACKSTAGE_ISSUER: &str = "https://backstage.example.com/api/auth";

/// A key server publishing two ES256 keys, an RS256 and an EdDSA key, and a service with a
/// `jwks` entry (issuer + audience `catalog`), an OIDC user provider and a Backstage user
/// provider on it. `/services-only` accepts only service credentials.
struct Fixture {
    server: KeyServer,
    ec: SigningKey,
    rsa: SigningKey,
    ed: SigningKey,
    h: Harness,
}

async fn fixture() -> Fixture {
    let ec = SigningKey::es256("ec-1");
    let ec2 = SigningKey::es256("ec-2");
    let rsa = SigningKey::rsa("rsa-1", 0);
    let ed = SigningKey::ed25519("ed-1");
    let server = KeyServer::start(&[&ec, &ec2, &rsa, &ed]).await;
    let h = Harness::new(
        Auth::builder(SERVICE)
            .jwks_access(
                JwksAccess::new(server.jwks_url())
                    .issuers([ISSUER])
                    .audiences([SERVICE]),
            )
            // One identity provider behind both: the same people (a shared namespace).
            .user_provider(
                UserProvider::oidc(USER_ISSUER)
                    .jwks_url(server.jwks_url())
                    .audiences([SERVICE])
                    .shared_namespace(),
            )
            .user_provider(
                UserProvider::backstage(BACKSTAGE_ISSUER)
                    .jwks_url(server.jwks_url())
                    .shared_namespace(),
            )
            .route(
                "/services-only",
                [],
                RoutePolicy::authenticated().allow([
                    CredentialKind::Static,
                    CredentialKind::Jwks,
                    CredentialKind::Legacy,
                ]),
            ),
    );
    Fixture {
        server,
        ec,
        rsa,
        ed,
        h,
    }
}

fn good_claims() -> Value {
    claims(ISSUER, SERVICE, "ci-bot")
}

impl Fixture {
    async fn get(&self, token: &str) -> (Reply, s2s_auth::audit::AuditEvent) {
        self.h.call(Method::GET, "/entities/42", Some(token)).await
    }

    /// Sends `token` and expects a 401 with `description` and `reason`.
    async fn refused(&self, token: &str, description: &str, reason: &str) {
        let (reply, event) = self.get(token).await;
        assert_invalid_token(&reply, &event, description, reason);
        assert_eq!(event.subject, None);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn valid_tokens_of_each_algorithm_are_accepted() {
    let f = fixture().await;
    for key in [&f.ec, &f.rsa, &f.ed] {
        let (reply, event) = f.get(&key.sign(&good_claims())).await;
        let principal = assert_allowed(&reply, &event);
        assert_eq!(principal["subject"], "external:ci-bot", "{}", key.kid);
        assert_eq!(principal["credential"], "jwks");
        assert_eq!(principal["principalType"], "service");
        assert_eq!(principal["readOnly"], false);
        assert!(principal["expiresAt"].is_string());
        assert_eq!(event.credential, Some(CredentialKind::Jwks));
    }
    // One fetch served all three keys.
    assert_eq!(f.server.jwks_hits(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn rejects_forged_signature() {
    let f = fixture().await;
    // Signed by a key that is not published, claiming a published kid.
    let forger = SigningKey::es256("ec-1");
    f.refused(
        &forger.sign(&good_claims()),
        "signature does not verify",
        "bad_signature",
    )
    .await;
    // A genuine token whose claims were edited.
    let genuine = f.ec.sign(&good_claims());
    let parts: Vec<&str> = genuine.split('.').collect();
    let edited = b64url(claims(ISSUER, SERVICE, "admin").to_string().as_bytes());
    f.refused(
        &format!("{}.{edited}.{}", parts[0], parts[2]),
        "signature does not verify",
        "bad_signature",
    )
    .await;
    // A genuine signature moved onto another token.
    let other = f.ec.sign(&claims(ISSUER, SERVICE, "other-bot"));
    let other_sig = other.rsplit('.').next().expect("three parts");
    f.refused(
        &format!("{}.{}.{other_sig}", parts[0], parts[1]),
        "signature does not verify",
        "bad_signature",
    )
    .await;
    // RSA and EdDSA too.
    for (forger, real) in [
        (SigningKey::rsa("rsa-1", 1), &f.rsa),
        (SigningKey::ed25519("ed-1"), &f.ed),
    ] {
        assert_eq!(forger.kid, real.kid);
        f.refused(
            &forger.sign(&good_claims()),
            "signature does not verify",
            "bad_signature",
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn rejects_alg_none_without_contacting_the_key_server() {
    let f = fixture().await;
    for alg in ["none", "None", "NONE", "nOnE"] {
        let header = json!({ "alg": alg, "typ": "JWT", "kid": "ec-1" });
        // Without a signature, and with one copied from a genuine token.
        let bare = unsigned(&header, &good_claims());
        let genuine = f.ec.sign(&good_claims());
        let with_sig = format!("{bare}{}", genuine.rsplit('.').next().expect("signature"));
        for token in [bare, with_sig] {
            f.refused(
                &token,
                "unsigned tokens (alg none) are never accepted",
                "alg_none",
            )
            .await;
        }
    }
    assert_eq!(f.server.total_hits(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn rejects_hs256_signed_with_the_rsa_public_key() {
    let f = fixture().await;
    // The classic algorithm confusion: the attacker downloads the RSA public key and uses
    // its bytes as an HMAC secret, hoping the verifier feeds the same bytes to HMAC.
    let spki = f.rsa.rsa_public_der();
    let jwk = f.rsa.jwk();
    let pem = format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        b64_std(&spki)
    );
    let n = jwk["n"].as_str().expect("n").as_bytes().to_vec();
    for secret in [
        spki.clone(),
        pem.into_bytes(),
        n,
        jwk.to_string().into_bytes(),
    ] {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("rsa-1".to_owned());
        let token =
            jsonwebtoken::encode(&header, &good_claims(), &EncodingKey::from_secret(&secret))
                .expect("signing");
        f.refused(
            &token,
            "token algorithm is not allowed for this issuer",
            "alg_not_allowed",
        )
        .await;
    }
    // Refused from the header alone.
    assert_eq!(f.server.total_hits(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn never_follows_key_headers() {
    let f = fixture().await;
    let attacker_key = SigningKey::es256("ec-1");
    let attacker = KeyServer::start(&[&attacker_key]).await;
    let attacker_jwk = attacker_key.jwk();
    let headers = [
        ("jku", json!(attacker.jwks_url())),
        ("x5u", json!(format!("{}/cert.pem", attacker.base()))),
        ("jwk", attacker_jwk),
        ("x5c", json!([b64_std(b"not really a certificate")])),
    ];
    for (name, value) in headers {
        let mut header = json!({ "alg": "ES256", "typ": "JWT", "kid": "ec-1" });
        header[name] = value;
        let token = attacker_key.sign_raw(&header, &good_claims());
        f.refused(
            &token,
            &format!(
                "token header carries `{name}`; keys are only taken from configured JWKS URLs"
            ),
            "key_in_header",
        )
        .await;
    }
    // The same with jsonwebtoken's own header type, signed by the genuine key: still refused.
    let mut header = f.ec.header();
    header.jku = Some(attacker.jwks_url());
    f.refused(
        &f.ec.sign_with(header, &good_claims()),
        "token header carries `jku`; keys are only taken from configured JWKS URLs",
        "key_in_header",
    )
    .await;
    assert_eq!(
        attacker.total_hits(),
        0,
        "the attacker's server was contacted"
    );
    assert_eq!(f.server.total_hits(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn rejects_expired_token() {
    let f = fixture().await;
    let mut c = good_claims();
    c["iat"] = json!(now() - 7200);
    c["exp"] = json!(now() - 3600);
    f.refused(&f.ec.sign(&c), "token has expired", "token_expired")
        .await;
    // Past the 30 s leeway by a little.
    c["exp"] = json!(now() - 45);
    f.refused(&f.ec.sign(&c), "token has expired", "token_expired")
        .await;
    // Within the leeway: accepted.
    c["exp"] = json!(now() - 10);
    let (reply, event) = f.get(&f.ec.sign(&c)).await;
    assert_allowed(&reply, &event);
}

#[tokio::test(flavor = "multi_thread")]
async fn rejects_token_not_valid_yet() {
    let f = fixture().await;
    let mut c = good_claims();
    c["nbf"] = json!(now() + 3600);
    f.refused(
        &f.ec.sign(&c),
        "token is not valid yet (nbf)",
        "not_yet_valid",
    )
    .await;
    c["nbf"] = json!(now() + 10); // within the leeway
    let (reply, event) = f.get(&f.ec.sign(&c)).await;
    assert_allowed(&reply, &event);
}

#[tokio::test(flavor = "multi_thread")]
async fn rejects_token_issued_in_the_future() {
    let f = fixture().await;
    let mut c = good_claims();
    c["iat"] = json!(now() + 3600);
    c["exp"] = json!(now() + 7200);
    f.refused(
        &f.ec.sign(&c),
        "token was issued in the future (iat)",
        "issued_in_future",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rejects_token_for_another_audience() {
    let f = fixture().await;
    // A token minted for `search`, replayed against `catalog`.
    for aud in [json!("search"), json!(["search", "scaffolder"]), json!([])] {
        let mut c = good_claims();
        c["aud"] = aud;
        f.refused(
            &f.ec.sign(&c),
            "token audience does not match",
            "wrong_audience",
        )
        .await;
    }
    let mut c = good_claims();
    c.as_object_mut().expect("object").remove("aud");
    f.refused(&f.ec.sign(&c), "token has no `aud` claim", "missing_claim")
        .await;
    // One matching audience among others is enough.
    let mut c = good_claims();
    c["aud"] = json!(["search", SERVICE]);
    let (reply, event) = f.get(&f.ec.sign(&c)).await;
    assert_allowed(&reply, &event);
}

#[tokio::test(flavor = "multi_thread")]
async fn rejects_unknown_issuer_without_contacting_the_key_server() {
    let f = fixture().await;
    for iss in [
        "https://evil.example.com",
        "https://idp.example.com/",
        "https://IDP.example.com",
        "",
    ] {
        let mut c = good_claims();
        c["iss"] = json!(iss);
        f.refused(
            &f.ec.sign(&c),
            "token issuer is not configured",
            "unknown_issuer",
        )
        .await;
    }
    assert_eq!(f.server.total_hits(), 0);
    // No `iss` at all.
    let mut c = good_claims();
    c.as_object_mut().expect("object").remove("iss");
    f.refused(&f.ec.sign(&c), "token has no `iss` claim", "missing_claim")
        .await;
    assert_eq!(f.server.total_hits(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn rejects_missing_exp_and_sub() {
    let f = fixture().await;
    for (claim, description) in [
        ("exp", "token has no `exp` claim"),
        ("sub", "token has no `sub` claim"),
    ] {
        let mut c = good_claims();
        c.as_object_mut().expect("object").remove(claim);
        f.refused(&f.ec.sign(&c), description, "missing_claim")
            .await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn user_token_is_refused_where_only_service_tokens_are_allowed() {
    let f = fixture().await;
    let user_token = f.ec.sign(&claims(USER_ISSUER, SERVICE, "jane"));
    // It is a valid user token...
    let (reply, event) = f.get(&user_token).await;
    let principal = assert_allowed(&reply, &event);
    assert_eq!(principal["subject"], "user:default/jane");
    // ...but not for a route that takes service credentials only.
    let (reply, event) =
        f.h.call(Method::GET, "/services-only", Some(&user_token))
            .await;
    assert_forbidden(
        &reply,
        &event,
        "user credentials are not allowed on this route (allowed: static, jwks, legacy)",
        "credential_kind_not_allowed",
    );
    assert_eq!(event.subject.as_deref(), Some("user:default/jane"));
    // A service token passes there.
    let (reply, event) =
        f.h.call(
            Method::GET,
            "/services-only",
            Some(&f.ec.sign(&good_claims())),
        )
        .await;
    assert_allowed(&reply, &event);
}

#[tokio::test(flavor = "multi_thread")]
async fn typ_confusion_is_refused() {
    let f = fixture().await;
    let typed = |typ: &str, c: &Value| {
        let mut header = f.ec.header();
        header.typ = Some(typ.to_owned());
        f.ec.sign_with(header, c)
    };
    // A Backstage user token presented to the `jwks` entry's issuer.
    let user_shaped = typed("vnd.backstage.user", &good_claims());
    f.refused(
        &user_shaped,
        "token type (typ) is not accepted here",
        "wrong_type",
    )
    .await;
    // A Backstage plugin-to-plugin token: not verified by this version.
    f.refused(
        &typed("vnd.backstage.plugin", &good_claims()),
        "plugin-to-plugin tokens are not supported by this version",
        "unsupported_token",
    )
    .await;
    // A limited user token is only ever valid inside a plugin token's `obo` claim.
    f.refused(
        &typed(
            "vnd.backstage.limited-user",
            &claims(BACKSTAGE_ISSUER, "backstage", "user:default/jane"),
        ),
        "token type (typ) is not accepted here",
        "wrong_type",
    )
    .await;
    // An ordinary JWT presented to the Backstage user provider's issuer.
    f.refused(
        &typed(
            "JWT",
            &claims(BACKSTAGE_ISSUER, "backstage", "user:default/jane"),
        ),
        "token type (typ) is not accepted here",
        "wrong_type",
    )
    .await;
    // The same claims with the right typ are a valid Backstage user token.
    let (reply, event) = f
        .get(&typed(
            "vnd.backstage.user",
            &claims(BACKSTAGE_ISSUER, "backstage", "user:default/jane"),
        ))
        .await;
    let principal = assert_allowed(&reply, &event);
    assert_eq!(principal["subject"], "user:default/jane");
    assert_eq!(principal["credential"], "user");
}

#[tokio::test(flavor = "multi_thread")]
async fn rejects_oversized_jwt_before_reading_it() {
    let f = fixture().await;
    let mut c = good_claims();
    c["padding"] = json!("x".repeat(8 * 1024));
    let token = f.ec.sign(&c);
    assert!(token.len() > 8 * 1024);
    f.refused(&token, "token is longer than 8192 bytes", "token_too_long")
        .await;
    assert_eq!(f.server.total_hits(), 0);
    // Just under the limit is read and verified.
    let mut c = good_claims();
    c["padding"] = json!("");
    let base = f.ec.sign(&c).len();
    c["padding"] = json!("x".repeat((8 * 1024 - base) * 3 / 4));
    let token = f.ec.sign(&c);
    assert!(token.len() <= 8 * 1024, "{}", token.len());
    let (reply, event) = f.get(&token).await;
    assert_allowed(&reply, &event);
}

#[tokio::test(flavor = "multi_thread")]
async fn rejects_key_algorithm_mismatch_and_missing_kid() {
    let f = fixture().await;
    // An RS256 token naming the EC key.
    let mut header = f.rsa.header();
    header.kid = Some("ec-1".to_owned());
    f.refused(
        &f.rsa.sign_with(header, &good_claims()),
        "signing key does not allow the token's algorithm",
        "key_alg_mismatch",
    )
    .await;
    // No kid, and two ES256 keys published.
    let mut header = f.ec.header();
    header.kid = None;
    f.refused(
        &f.ec.sign_with(header, &good_claims()),
        "token has no kid and the key set has several keys",
        "kid_required",
    )
    .await;
    // No kid, and one EdDSA key published: that one is used.
    let mut header = f.ed.header();
    header.kid = None;
    let (reply, event) = f.get(&f.ed.sign_with(header, &good_claims())).await;
    assert_allowed(&reply, &event);
    // A kid nobody published.
    let mut header = f.ec.header();
    header.kid = Some("nobody".to_owned());
    f.refused(
        &f.ec.sign_with(header, &good_claims()),
        "signing key is unknown (kid)",
        "unknown_key",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn algorithm_allow_list_is_enforced() {
    let ec = SigningKey::es256("ec-1");
    let rsa = SigningKey::rsa("rsa-1", 0);
    let server = KeyServer::start(&[&ec, &rsa]).await;
    let h = Harness::new(
        Auth::builder(SERVICE).jwks_access(
            JwksAccess::new(server.jwks_url())
                .issuers([ISSUER])
                .audiences([SERVICE])
                .algorithms([Algorithm::ES256]),
        ),
    );
    let (reply, event) = h
        .call(Method::GET, "/x", Some(&rsa.sign(&good_claims())))
        .await;
    assert_invalid_token(
        &reply,
        &event,
        "token algorithm is not allowed for this issuer",
        "alg_not_allowed",
    );
    assert_eq!(server.total_hits(), 0);
    let (reply, event) = h
        .call(Method::GET, "/x", Some(&ec.sign(&good_claims())))
        .await;
    assert_allowed(&reply, &event);
}

#[tokio::test(flavor = "multi_thread")]
async fn rejects_malformed_jwts() {
    let f = fixture().await;
    let header = b64url(br#"{"alg":"ES256","kid":"ec-1"}"#);
    let claims_part = b64url(good_claims().to_string().as_bytes());
    let cases = [
        (
            format!("eyJub3QganNvbg.{claims_part}.c2ln"),
            "token is malformed: header is not a JSON object",
        ),
        (
            format!("{header}.eyJub3QganNvbg.c2ln"),
            "token is malformed: claims are not a JSON object",
        ),
        (
            // Claims as an array: serde would read `iss` from its first element (found by
            // the jwt_inspect fuzz target's sibling, jwks; see FUZZING.md).
            format!(
                "{header}.{}.c2ln",
                b64url(br#"["https://idp.example.com",["catalog"],"x",null]"#)
            ),
            "token is malformed: claims are not a JSON object",
        ),
        (
            format!("{}.{claims_part}.c2ln", b64url(br#"{"kid":"ec-1"}"#)),
            "token is malformed: header has no alg",
        ),
        (
            format!("{}.{claims_part}.c2ln", b64url(br#"{"alg":"XS999"}"#)),
            "token is malformed: unknown alg",
        ),
        (
            format!(
                "{}.{claims_part}.c2ln",
                b64url(br#"{"alg":"ES256","crit":["exp"]}"#)
            ),
            "token is malformed: unsupported `crit` header",
        ),
        (
            format!("{header}.{}.c2ln", b64url(br#"{"iss":42}"#)),
            "token is malformed: iss is not a string",
        ),
    ];
    for (token, description) in cases {
        f.refused(&token, description, "token_malformed").await;
    }
    // A signature that is not base64url-decodable DER.
    let genuine = f.ec.sign(&good_claims());
    let (head, _) = genuine.rsplit_once('.').expect("three parts");
    f.refused(
        &format!("{head}.AAAA"),
        "signature does not verify",
        "bad_signature",
    )
    .await;
    assert_eq!(f.server.jwks_hits(), 1);
}
