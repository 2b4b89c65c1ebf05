//! YAML configuration (`AuthBuilder::from_yaml_str_with_env`, then `build`): no input panics,
//! hangs or grows memory without bound, and no error ever quotes a value that came from a
//! `${VAR}` (every variable is set to a canary secret).
#![no_main]

use libfuzzer_sys::fuzz_target;
use s2s_auth::AuthBuilder;
use s2s_auth::jwks::{FetchError, FetchFuture, KeyFetcher};

/// Never called (building fetches nothing); set so `build` skips making an HTTP client with
/// its root certificates, which costs a millisecond an input and tests nothing here.
struct NoNetwork;

impl KeyFetcher for NoNetwork {
    fn fetch<'a>(&'a self, _url: &'a str, _max_bytes: usize) -> FetchFuture<'a> {
        Box::pin(async { Err(FetchError::Status(503)) })
    }
}

/// What every `${VAR}` expands to: valid base64 of 24 bytes and a valid static token, so a
/// substituted value gets past the first checks and into the deeper ones.
const CANARY: &str = "ZnV6ei1jYW5hcnktc2VjcmV0LXZhbHVl";

fuzz_target!(|data: &[u8]| {
    let Ok(yaml) = std::str::from_utf8(data) else {
        return;
    };
    let error = match AuthBuilder::from_yaml_str_with_env(yaml, |_| Some(CANARY.to_owned())) {
        Ok(builder) => match builder.key_fetcher(NoNetwork).build() {
            Ok(_) => return,
            Err(e) => e,
        },
        Err(e) => e,
    };
    if yaml.contains(&CANARY[..8]) {
        return; // the input spells the canary itself: an error may quote its own keys
    }
    let shown = format!("{error} {error:?}");
    assert!(
        !shown.contains(CANARY),
        "an error quotes a ${{VAR}} value: {shown}"
    );
});
