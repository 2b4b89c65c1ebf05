//! `s2s-auth obo revoke`: revokes a just-in-time on-behalf-of token by its `jti`, in the
//! store the services share, so every replica refuses it: at once with PostgreSQL
//! (`NOTIFY`), within its revocation staleness bound otherwise.
//!
//! A revocation is a `jti` and the time after which its row may be dropped (the token is
//! refused by then anyway). Unless `--until` says otherwise that time is as late as any such
//! token can be accepted: a token issued at most now lives at most
//! [`MAX_DURATION_CAP`] (the highest lifetime cap a service can be configured with), plus
//! the clock leeway its `iat` and `exp` are checked with, at most
//! [`AuthBuilder::MAX_LEEWAY_SECS`] each, plus that leeway once more for a replica whose
//! clock is behind. Revoking a revoked `jti` again is fine (the later time is kept).

use std::io::Write as _;
use std::time::Duration;

use s2s_auth::AuthBuilder;
use s2s_auth::jit::{MAX_DURATION_CAP, is_valid_jti};
use s2s_auth::store::{Revocation, StoreError};
use serde_json::json;
use time::OffsetDateTime;

use crate::Fail;
use crate::accounts::{note, operator, out, rfc3339, time_arg};
use crate::store_url::StoreArg;

const EXAMPLES: &str = "\
Examples:
  s2s-auth obo revoke 0b6f7c1e-3d2a-4e59-9c1f-5a8e2d7b4c30 --store postgres://s2s:PASSWORD@db/backstage
  S2S_STORE=sqlite://backstage.sqlite s2s-auth obo revoke 0b6f7c1e-3d2a-4e59-9c1f-5a8e2d7b4c30
  s2s-auth obo revoke 0b6f7c1e-3d2a-4e59-9c1f-5a8e2d7b4c30 --until 2026-12-02T16:00:00Z

The JTI is the token's `jti` claim (the audit log names it as the actor `jit:<jti>`).
Exit codes: 0 revoked (also when it already was); 1 the store cannot be reached;
2 a JTI a token cannot carry, a bad --until, or a bad store URL.
The revocation is audited as one JSON line on stderr, naming cli:$USER.";

/// Arguments of `s2s-auth obo`.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub(crate) struct Args {
    #[command(flatten)]
    store: StoreArg,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Revoke an on-behalf-of token by its jti: every service on the store refuses it (401).
    #[command(after_help = EXAMPLES)]
    Revoke(Revoke),
}

#[derive(Debug, clap::Args)]
struct Revoke {
    /// The token's `jti`: 1 to 255 bytes, no whitespace, control character or `:`.
    #[arg(value_parser = jti)]
    jti: String,
    /// Keep the revocation until this time (RFC 3339), when the token is known to expire
    /// earlier. Default: now + the longest lifetime such a token can have (1 h, plus
    /// 15 min of clock leeway).
    #[arg(long, value_name = "RFC3339", value_parser = future_time)]
    until: Option<OffsetDateTime>,
}

pub(crate) async fn run(args: Args) -> Result<(), Fail> {
    let Command::Revoke(revoke) = args.command;
    let url = args.store.url()?;
    let store = url.open().await?;
    let now = OffsetDateTime::now_utc();
    let until = revoke.until.unwrap_or_else(|| {
        // Whole seconds: the store keeps unix seconds, and the message shows what it keeps.
        let at = now + longest_lifetime();
        OffsetDateTime::from_unix_timestamp(at.unix_timestamp()).unwrap_or(at)
    });
    let revocation = Revocation {
        jti: revoke.jti,
        expires_at: until.unix_timestamp(),
    };
    // Who it was issued for, when a service on this store recorded it: for the operator's
    // eyes only (a token issued elsewhere is revoked all the same).
    let issued = store
        .issued_token(&revocation.jti, now.unix_timestamp())
        .await
        .ok()
        .flatten();
    store.revoke(&revocation).await.map_err(|e| match e {
        StoreError::Invalid(m) => Fail::Usage(m),
        other => Fail::Runtime(url.scrub(format!("cannot revoke in the store {url}: {other}"))),
    })?;
    let by = operator();
    let whose = issued.as_ref().map_or_else(
        || String::from("no service on this store recorded issuing it"),
        |t| format!("issued for {}", t.subject),
    );
    audit(&by, &revocation.jti, until, &whose);
    out(&format!(
        "revoked on-behalf-of token {} until {} ({whose}); every service on {url} refuses it\n",
        revocation.jti,
        rfc3339(until)
    ))
}

/// How long after now a token issued by now may still be accepted somewhere.
fn longest_lifetime() -> time::Duration {
    let leeway = Duration::from_secs(AuthBuilder::MAX_LEEWAY_SECS);
    let longest = MAX_DURATION_CAP + leeway * 3;
    time::Duration::try_from(longest).unwrap_or(time::Duration::HOUR)
}

/// The audit line, in the shape of the library's `token_revoked` events.
fn audit(by: &str, jti: &str, until: OffsetDateTime, whose: &str) {
    let event = json!({
        "event": "token_revoked",
        "time": rfc3339(OffsetDateTime::now_utc()),
        "requestId": format!("cli-{}", std::process::id()),
        "decision": "allow",
        "reason": "token_revoked",
        "message": format!("revoked the token ({whose})"),
        "status": 200,
        "serviceId": "s2s-auth-cli",
        "subject": by,
        "principalType": "user",
        "credential": "user",
        "actor": null,
        "method": "",
        "route": "",
        "tokenFingerprint": null,
        "target": jti,
        "expiresAt": rfc3339(until),
    });
    let mut stderr = std::io::stderr().lock();
    if writeln!(stderr, "{event}").is_err() {
        note("warning: the audit line could not be written to stderr");
    }
}

fn jti(text: &str) -> Result<String, String> {
    if is_valid_jti(text) {
        Ok(text.to_owned())
    } else {
        Err("not a jti a token can carry: 1 to 255 bytes, no whitespace, control character or `:` (the `jit:` of the audit log's actor is not part of it)".into())
    }
}

fn future_time(text: &str) -> Result<OffsetDateTime, String> {
    let at = time_arg(text)?;
    if at <= OffsetDateTime::now_utc() {
        return Err(format!(
            "{} is not in the future: a revocation that has ended does nothing",
            rfc3339(at)
        ));
    }
    Ok(at)
}
