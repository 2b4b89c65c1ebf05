//! Extraction: only one `Authorization: Bearer <token>` header, a bounded visible-ASCII
//! token, never a token from the query string.

mod common;

use common::*;
use http::Method;
use s2s_auth::layer::MAX_TOKEN_LEN;

#[tokio::test]
async fn rejects_missing_authorization_header() {
    let h = Harness::standard();
    let (reply, event) = h.call(Method::GET, "/entities/42", None).await;
    assert_refused(
        &reply,
        &event,
        401,
        &bare_challenge(),
        "missing_credentials",
    );
    assert_eq!(event.token_fingerprint, None);
    assert_eq!(event.subject, None);
}

#[tokio::test]
async fn rejects_basic_scheme() {
    let h = Harness::standard();
    let req = with_authorization(
        Method::GET,
        "/entities/42",
        &[b"Basic Y2ktYm90OnNlY3JldA=="],
    );
    let (reply, event) = h.send(req).await;
    assert_refused(&reply, &event, 401, &bare_challenge(), "unsupported_scheme");
}

#[tokio::test]
async fn rejects_two_authorization_headers() {
    let h = Harness::standard();
    // A proxy may read the first and the service the second (header smuggling): both valid
    // tokens, still refused.
    let first = format!("Bearer {CI_TOKEN}");
    let second = format!("Bearer {WRITER_TOKEN}");
    let req = with_authorization(
        Method::GET,
        "/entities/42",
        &[first.as_bytes(), second.as_bytes()],
    );
    let (reply, event) = h.send(req).await;
    assert_refused(
        &reply,
        &event,
        400,
        &challenge("invalid_request", "more than one Authorization header"),
        "duplicate_authorization_header",
    );
}

#[tokio::test]
async fn rejects_bearer_scheme_without_token() {
    let h = Harness::standard();
    let req = with_authorization(Method::GET, "/entities/42", &[b"Bearer"]);
    let (reply, event) = h.send(req).await;
    assert_refused(
        &reply,
        &event,
        400,
        &challenge(
            "invalid_request",
            "malformed Authorization header: Bearer scheme without a token",
        ),
        "malformed_authorization_header",
    );
}

#[tokio::test]
async fn rejects_token_containing_a_space() {
    let h = Harness::standard();
    let value = format!("Bearer {CI_TOKEN} extra");
    let req = with_authorization(Method::GET, "/entities/42", &[value.as_bytes()]);
    let (reply, event) = h.send(req).await;
    assert_refused(
        &reply,
        &event,
        400,
        &challenge(
            "invalid_request",
            "malformed Authorization header: token contains a space",
        ),
        "malformed_authorization_header",
    );
}

#[tokio::test]
async fn rejects_9_kib_token() {
    let h = Harness::standard();
    let token = "a".repeat(9 * 1024);
    let (reply, event) = h.call(Method::GET, "/entities/42", Some(&token)).await;
    assert_invalid_token(
        &reply,
        &event,
        "token is longer than 8192 bytes",
        "token_too_long",
    );
}

#[tokio::test]
async fn token_of_exactly_8_kib_reaches_the_verifier() {
    let h = Harness::standard();
    let token = "a".repeat(MAX_TOKEN_LEN);
    let (reply, event) = h.call(Method::GET, "/entities/42", Some(&token)).await;
    assert_invalid_token(
        &reply,
        &event,
        "token is not recognised",
        "token_unrecognised",
    );
}

#[tokio::test]
async fn rejects_non_ascii_token() {
    let h = Harness::standard();
    // UTF-8 bytes in the header: `HeaderValue::from_bytes` accepts them (obs-text).
    let value = "Bearer caf\u{e9}-token-\u{1f511}-0123456789";
    let req = with_authorization(Method::GET, "/entities/42", &[value.as_bytes()]);
    let (reply, event) = h.send(req).await;
    assert_invalid_token(
        &reply,
        &event,
        "token contains characters outside visible ASCII",
        "token_not_visible_ascii",
    );
}

const QUERY_CHALLENGE: &str =
    "access tokens in the URL query are not accepted; send Authorization: Bearer";

#[tokio::test]
async fn rejects_valid_token_in_query_string() {
    let h = Harness::standard();
    let uri = format!("/entities/42?access_token={CI_TOKEN}");
    let (reply, event) = h.call(Method::GET, &uri, None).await;
    assert_refused(
        &reply,
        &event,
        400,
        &challenge("invalid_request", QUERY_CHALLENGE),
        "token_in_query",
    );
    assert!(!reply.everything().contains("access_token"), "{reply:?}");
    assert!(!reply.everything().contains(CI_TOKEN), "{reply:?}");
    assert_eq!(reply.json()["request"]["url"], "/entities/42");
}

#[tokio::test]
async fn rejects_token_in_query_string_even_with_a_valid_header() {
    let h = Harness::standard();
    let uri = format!("/entities/42?x=1&access_token={CI_TOKEN}");
    let (reply, event) = h.call(Method::GET, &uri, Some(CI_TOKEN)).await;
    assert_refused(
        &reply,
        &event,
        400,
        &challenge("invalid_request", QUERY_CHALLENGE),
        "token_in_query",
    );
    assert!(!reply.everything().contains("access_token"), "{reply:?}");
    assert!(!reply.everything().contains(CI_TOKEN), "{reply:?}");
    assert_eq!(event.subject, None, "the header token is not even verified");
}

#[tokio::test]
async fn rejects_disguised_access_token_query_parameter() {
    let h = Harness::standard();
    for uri in [
        "/entities/42?ACCESS_TOKEN=abcdefgh",
        "/entities/42?access%5Ftoken=abcdefgh",
        "/entities/42?access_token",
    ] {
        let (reply, event) = h.call(Method::GET, uri, Some(CI_TOKEN)).await;
        assert_refused(
            &reply,
            &event,
            400,
            &challenge("invalid_request", QUERY_CHALLENGE),
            "token_in_query",
        );
    }
}

#[tokio::test]
async fn other_query_parameters_are_fine() {
    let h = Harness::standard();
    let (reply, event) = h
        .call(Method::GET, "/entities/42?token=1&access=2", Some(CI_TOKEN))
        .await;
    assert_allowed(&reply, &event);
}

#[tokio::test]
async fn accepts_lower_case_bearer_scheme() {
    let h = Harness::standard();
    let value = format!("bearer {CI_TOKEN}");
    let req = with_authorization(Method::GET, "/entities/42", &[value.as_bytes()]);
    let (reply, event) = h.send(req).await;
    let principal = assert_allowed(&reply, &event);
    assert_eq!(principal["subject"], "external:ci-bot");
}
