//! The unverified JWT header and claims reader (`jwt::inspect`).
//!
//! Input: a token as is when the first byte is 0 (the rest is the token), otherwise header
//! JSON and claims JSON separated by the first newline, base64url-encoded here into
//! `header.claims.sig`, so the fuzzer spends its time in the JSON, not in base64.
#![no_main]

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

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
    let Ok(u) = s2s_auth::fuzzing::inspect(&token) else {
        return;
    };
    // Accepted: a compact JWS whose header names no key of its own and no critical extension.
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(
        parts.len(),
        3,
        "accepted a token of {} segments",
        parts.len()
    );
    let header = URL_SAFE_NO_PAD
        .decode(parts[0])
        .expect("accepted header is base64url");
    // serde skips unknown fields without validating them (a lone surrogate `\ud800` in an
    // ignored field passes), where `Value` refuses them: such a header cannot be rechecked.
    let Ok(header) = serde_json::from_slice::<Value>(&header) else {
        return;
    };
    for refused in ["jku", "x5u", "jwk", "x5c", "crit"] {
        assert!(
            header.get(refused).is_none(),
            "accepted a header with `{refused}`"
        );
    }
    let alg = header
        .get("alg")
        .and_then(Value::as_str)
        .expect("accepted header has an alg");
    assert!(!alg.eq_ignore_ascii_case("none"), "accepted alg none");
    assert_eq!(u.kid.as_deref(), header.get("kid").and_then(Value::as_str));
});
