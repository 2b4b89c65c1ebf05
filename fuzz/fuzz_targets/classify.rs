//! The classifier (`classify::classify`, `Known::classify_jwt`) against a fixture with every
//! kind of JWT verifier: it must be total (a route or a refusal for every string) and send a
//! token only to a verifier that exists.
//!
//! Input: as for `jwt_inspect` (first byte 0: the token as is; else header and claims JSON,
//! encoded here).
#![no_main]

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use libfuzzer_sys::fuzz_target;
use s2s_auth::fuzzing::{Classified, classify, inspect, jwks_verifiers, looks_like_jwt_shape};

fuzz_target!(|data: &[u8]| {
    let token = if let [0, raw @ ..] = data {
        match std::str::from_utf8(raw) {
            Ok(t) => t.to_owned(),
            Err(_) => return,
        }
    } else {
        let (header, claims) = match data.iter().position(|&b| b == b'\n') {
            Some(i) => (&data[..i], &data[i + 1..]),
            None => (data, &b"{}"[..]),
        };
        format!(
            "{}.{}.c2ln",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(claims)
        )
    };
    let route = classify(&token);
    assert_eq!(
        route,
        classify(&token),
        "classification is not deterministic"
    );
    let jwt = looks_like_jwt_shape(&token);
    match &route {
        Classified::Static => assert!(!jwt, "a JWT-shaped token sent to the static table"),
        Classified::Custom(i) => panic!("custom route {i} with no custom type configured"),
        Classified::Jit => panic!("just-in-time route with no just-in-time tokens configured"),
        Classified::ServiceAccount => {
            assert!(!jwt && token.starts_with("s2s_sa_"), "{token:?} sent to service accounts")
        }
        Classified::Jwks(i) => {
            assert!(jwt);
            assert!(
                *i < jwks_verifiers(),
                "route to JWKS verifier {i} of {}",
                jwks_verifiers()
            );
        }
        Classified::Legacy | Classified::Plugin => assert!(jwt),
        Classified::Refused(why) => {
            assert!(jwt, "an opaque token refused by classification: {why}");
        }
    }
    if jwt {
        // A token the reader refuses is refused for the reader's reason, before any route.
        if let Err(why) = inspect(&token) {
            assert_eq!(route, Classified::Refused(why));
        }
    }
});
