//! OIDC discovery documents (`jwks::discovery::parse_document`): a `jwks_uri` is taken only
//! from a document that names the issuer it was fetched for (OIDC Discovery 4.3).
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const ISSUERS: [&str; 3] = [
    "https://login.example.com",
    "https://login.example.com/",
    "https://login.example.com/tenant/v2.0",
];

fuzz_target!(|data: &[u8]| {
    for issuer in ISSUERS {
        let Ok(jwks_uri) = s2s_auth::fuzzing::parse_discovery(data, issuer) else {
            continue;
        };
        // serde skips unknown fields without validating them (a lone surrogate `\ud800` in
        // an ignored field passes), where `Value` refuses them: such a document cannot be
        // rechecked.
        let Ok(doc) = serde_json::from_slice::<Value>(data) else {
            continue;
        };
        let named = doc["issuer"]
            .as_str()
            .expect("an accepted document names its issuer");
        assert_eq!(
            named.trim_end_matches('/'),
            issuer.trim_end_matches('/'),
            "jwks_uri taken from a document for another issuer"
        );
        assert_eq!(Some(jwks_uri.as_str()), doc["jwks_uri"].as_str());
    }
});
