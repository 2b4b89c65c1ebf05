//! JWKS documents (`KeySet::parse`), as fetched from a key server: every JWK is used or
//! skipped alone, never taken as a symmetric key, and every key found by a lookup may verify
//! that algorithm (the wrapper asserts that for each `kid` and algorithm).
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(parsed) = s2s_auth::fuzzing::parse_jwks(data) else {
        return;
    };
    // serde skips unknown fields without validating them (a lone surrogate `\ud800` in an
    // ignored field passes), where `Value` refuses them: such a document cannot be rechecked.
    let Ok(doc) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let keys = doc["keys"]
        .as_array()
        .expect("an accepted JWKS has a keys array");
    assert_eq!(
        parsed.usable + parsed.skipped,
        keys.len(),
        "every JWK is either used or skipped"
    );
    assert!(parsed.found <= (parsed.usable + 1) * 10);
});
