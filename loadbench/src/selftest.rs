//! The start-up self-test: a server that accepts everything would be the fastest of all,
//! so no mode is declared ready before it has shown that it verifies. Every mode must answer
//! 200 to both good tokens; every mode but `noauth` must answer 401 to each bad token and to
//! a request with no credential.

use std::time::{Duration, Instant};

use http::StatusCode;
use http::header::AUTHORIZATION;

use crate::Result;
use crate::fixture::SelfTest;
use crate::modes::{ITEMS, Mode};

/// The peer loads its keys in the background after start; good tokens are retried until
/// then.
const KEYS_DEADLINE: Duration = Duration::from_secs(10);

pub(crate) async fn run(port: u16, tokens: &SelfTest, mode: Mode) -> Result<()> {
    let client = reqwest::Client::builder().no_proxy().build()?;
    let url = format!("http://127.0.0.1:{port}{ITEMS}");
    let status = |token: Option<&str>| {
        let mut request = client.get(&url);
        if let Some(token) = token {
            request = request.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        async move { Ok::<_, crate::Error>(request.send().await?.status()) }
    };

    for good in &tokens.good {
        let started = Instant::now();
        loop {
            let got = status(Some(&good.token)).await?;
            if got == StatusCode::OK {
                break;
            }
            if started.elapsed() > KEYS_DEADLINE {
                return Err(format!(
                    "self-test failed: mode {} answered {got} to the good {} token",
                    mode.name(),
                    good.label
                )
                .into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    if mode == Mode::NoAuth {
        return Ok(());
    }
    let bad = tokens
        .bad
        .iter()
        .map(|b| (b.label.as_str(), Some(b.token.as_str())))
        .chain([("no_credential", None)]);
    for (label, token) in bad {
        let got = status(token).await?;
        if got != StatusCode::UNAUTHORIZED {
            return Err(format!(
                "self-test failed: mode {} answered {got} to the {label} token (401 expected): \
                 it does not verify, and must not be benchmarked",
                mode.name()
            )
            .into());
        }
    }
    Ok(())
}
