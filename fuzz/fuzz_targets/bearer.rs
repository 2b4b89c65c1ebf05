//! The `Authorization` header and bearer extraction (`extract::bearer_token`).
//!
//! Input: the request target on the first line, then one `Authorization` value per line
//! (a header value cannot hold a newline, so nothing reachable is lost by splitting).
#![no_main]

use libfuzzer_sys::fuzz_target;

/// The longest token the extractor may hand on (`s2s_auth::extract::MAX_TOKEN_LEN`).
const MAX_TOKEN_LEN: usize = 8 * 1024;

fuzz_target!(|data: &[u8]| {
    let mut lines = data.split(|&b| b == b'\n');
    let target = lines.next().unwrap_or_default();
    let Ok(target) = std::str::from_utf8(target) else {
        return;
    };
    let target = if target.is_empty() { "/" } else { target };
    let values: Vec<&[u8]> = lines.collect();
    let Some(result) = s2s_auth::fuzzing::bearer(&values, target) else {
        return; // not a request `http` would hand to a service
    };
    match result {
        Ok(Some(token)) => {
            assert_eq!(
                values.len(),
                1,
                "a token taken from {} headers",
                values.len()
            );
            assert!(
                !token.is_empty() && token.len() <= MAX_TOKEN_LEN,
                "token length {}",
                token.len()
            );
            assert!(
                token.bytes().all(|b| (0x21..=0x7e).contains(&b)),
                "token with bytes outside visible ASCII: {token:?}"
            );
            let value = values[0];
            let start = value
                .iter()
                .position(|&b| b != b' ' && b != b'\t')
                .unwrap_or(0);
            assert!(
                value.len() >= start + 6 && value[start..start + 6].eq_ignore_ascii_case(b"bearer"),
                "token from a value that is not Bearer"
            );
            assert!(
                value.windows(token.len()).any(|w| w == token.as_bytes()),
                "token is not a substring of the header"
            );
        }
        Ok(None) => assert!(values.is_empty(), "no token from {} headers", values.len()),
        Err(message) => {
            // Refusals are fixed, short texts (they go into logs and `WWW-Authenticate`):
            // nothing the caller sent, so no control character, can reach them.
            assert!(
                message.len() <= 200 && message.bytes().all(|b| (0x20..=0x7e).contains(&b)),
                "refusal is not a short printable text: {message:?}"
            );
        }
    }
});
