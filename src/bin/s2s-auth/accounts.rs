//! `s2s-auth accounts`: service accounts and their tokens, in a store, with the store's
//! authority.
//!
//! Whoever can write the database could change the accounts anyway, so the command line
//! consults no service's admin list: it acts as `cli:<$USER>` through
//! [`AccountAdmin::operator`], the same operations (and the same store writes) as the admin
//! API, so running replicas see each change exactly as they see the API's: at once with
//! PostgreSQL (`NOTIFY`), within their staleness bound otherwise. Each change is one JSON
//! audit line on stderr; results are on stdout.

use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use s2s_auth::audit::JsonLinesSink;
use s2s_auth::error::AccountError;
use s2s_auth::restrictions::AccessRestrictions;
use s2s_auth::service_account::{
    AccountAdmin, AccountUpdate, MAX_TOKEN_LIFETIME, NewAccount, NewToken, TokenInfo,
};
use s2s_auth::store::{ServiceAccount, is_valid_account_name};
use s2s_auth::{CredentialKind, Principal, PrincipalType};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::Fail;
use crate::store_url::{StoreArg, StoreUrl};

const EXAMPLES: &str = "\
Examples:
  export S2S_STORE=postgres://s2s:PASSWORD@db.internal/backstage
  s2s-auth accounts create ci-deployer --description 'deploys the catalog' \\
      --permissions '[{\"plugin\":\"catalog\",\"permissionAttribute\":{\"action\":\"read\"}}]'
  s2s-auth accounts token new ci-deployer --name 2026-q1 --expires-in 90d
  s2s-auth accounts token list ci-deployer
  s2s-auth accounts token revoke ci-deployer sat_0123456789abcdef01234567
  s2s-auth accounts disable ci-deployer
  s2s-auth accounts list --json --store sqlite://backstage.sqlite

Exit codes: 0 done; 1 the store cannot be reached, or the account or token does not exist
or already exists (the input was well formed: the store's state decided); 2 a bad name,
duration, time, JSON or store URL (fixing the command line fixes it).

The command acts with the store's authority as cli:$USER (whoever can write the database
can change the accounts anyway); each change is one JSON audit line on stderr.";

/// Arguments of `s2s-auth accounts`.
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
    /// Create an enabled service account with the permissions its tokens may use.
    #[command(after_help = EXAMPLES)]
    Create(Create),
    /// Change an account's description or permissions.
    #[command(after_help = EXAMPLES)]
    Update(Update),
    /// List every account (name, state, created, description).
    #[command(after_help = EXAMPLES)]
    List(List),
    /// Show one account, its permissions and its tokens (never the tokens themselves).
    #[command(after_help = EXAMPLES)]
    Show(Show),
    /// Disable an account: every token of it is refused (401), its tokens are kept.
    #[command(after_help = EXAMPLES)]
    Disable(Named),
    /// Enable a disabled account: its tokens work again.
    #[command(after_help = EXAMPLES)]
    Enable(Named),
    /// Delete an account and every token of it.
    #[command(after_help = EXAMPLES)]
    Delete(Named),
    /// An account's tokens: `new`, `list`, `revoke`.
    #[command(after_help = EXAMPLES)]
    Token(TokenArgs),
}

#[derive(Debug, clap::Args)]
struct Create {
    /// The account's name: ^[a-z0-9][a-z0-9_.-]{0,62}$ (its tokens verify as
    /// service-account:NAME).
    #[arg(value_parser = account_name)]
    name: String,
    /// What the account may do, as `accessRestrictions` JSON (or @FILE holding it):
    /// [{"plugin": "catalog", "permission"?: [...], "permissionAttribute"?: {"action": [...]}}].
    #[arg(long, value_name = "JSON", value_parser = permissions)]
    permissions: AccessRestrictions,
    /// What the account is for (at most 1,024 characters).
    #[arg(long, value_name = "TEXT")]
    description: Option<String>,
    /// Create it disabled (no token works, none can be added, until `enable`).
    #[arg(long)]
    disabled: bool,
}

#[derive(Debug, clap::Args)]
struct Update {
    /// The account.
    #[arg(value_parser = account_name)]
    name: String,
    /// New permissions (`accessRestrictions` JSON or @FILE). Tokens with narrower
    /// permissions of their own keep what both allow.
    #[arg(long, value_name = "JSON", value_parser = permissions)]
    permissions: Option<AccessRestrictions>,
    /// A new description.
    #[arg(long, value_name = "TEXT")]
    description: Option<String>,
}

#[derive(Debug, clap::Args)]
struct List {
    /// Print a JSON array instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
struct Show {
    /// The account.
    #[arg(value_parser = account_name)]
    name: String,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
struct Named {
    /// The account.
    #[arg(value_parser = account_name)]
    name: String,
}

#[derive(Debug, clap::Args)]
struct TokenArgs {
    #[command(subcommand)]
    command: TokenCommand,
}

#[derive(Debug, clap::Subcommand)]
enum TokenCommand {
    /// Issue a token: printed once on stdout (first line), with its id. Only its SHA-256
    /// digest is stored.
    #[command(after_help = EXAMPLES)]
    New(NewTokenArgs),
    /// List an account's tokens: id, name, created, expires, last used (never the token
    /// or its digest).
    #[command(after_help = EXAMPLES)]
    List(TokenList),
    /// Revoke one token by id: refused at once here, by every replica within its
    /// staleness bound. The account's other tokens keep working.
    #[command(after_help = EXAMPLES)]
    Revoke(TokenRevoke),
}

#[derive(Debug, clap::Args)]
struct NewTokenArgs {
    /// The account.
    #[arg(value_parser = account_name)]
    account: String,
    /// The token's name, unique within the account (same rule as account names)
    /// [default: cli-YYYYMMDD-HHMMSS].
    #[arg(long, value_name = "TOKEN_NAME", value_parser = token_name)]
    name: Option<String>,
    /// Refused from this long after now on: a number and a unit, s m h d or w (90d, 12h);
    /// 1 s to 10 years. Default: valid until revoked.
    #[arg(long, value_name = "DURATION", value_parser = lifetime, conflicts_with = "expires_at")]
    expires_in: Option<Duration>,
    /// Refused from this time on (RFC 3339, e.g. 2026-06-30T00:00:00Z).
    #[arg(long, value_name = "RFC3339", value_parser = future_time)]
    expires_at: Option<OffsetDateTime>,
    /// Narrower permissions than the account's (`accessRestrictions` JSON or @FILE).
    #[arg(long, value_name = "JSON", value_parser = permissions)]
    permissions: Option<AccessRestrictions>,
    /// Print the token and what is listed of it as one JSON object.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
struct TokenList {
    /// The account.
    #[arg(value_parser = account_name)]
    account: String,
    /// Print a JSON array instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
struct TokenRevoke {
    /// The account.
    #[arg(value_parser = account_name)]
    account: String,
    /// The token's id, as `token list` shows it (sat_ and 24 hex digits).
    #[arg(value_parser = token_id)]
    id: String,
}

pub(crate) async fn run(args: Args) -> Result<(), Fail> {
    let url = args.store.url()?;
    let store = url.open().await?;
    let operator = operator();
    let sink = Arc::new(JsonLinesSink::new(std::io::stderr()));
    let admin = AccountAdmin::operator(store, operator.clone(), vec![sink.clone()]);
    let by = Principal::new(PrincipalType::User, operator, CredentialKind::User);
    let result = execute(&admin, &by, args.command)
        .await
        .map_err(|e| failure(e, &url));
    // The audit line of a change is written before the command says it is done.
    if !sink.flush(Duration::from_secs(5)) {
        note("warning: the audit line could not be written to stderr in time");
    }
    result?.map_or(Ok(()), |text| out(&text))
}

/// Runs one subcommand; the text for stdout.
async fn execute(
    admin: &AccountAdmin,
    by: &Principal,
    command: Command,
) -> Result<Option<String>, AccountError> {
    Ok(Some(match command {
        Command::Create(c) => {
            let mut new = NewAccount::new(c.name, c.permissions).enabled(!c.disabled);
            if let Some(description) = c.description {
                new = new.description(description);
            }
            let account = admin.create_account(by, new).await?;
            format!(
                "created service account `{}` ({}); its tokens verify as service-account:{}\n",
                account.name,
                state(&account),
                account.name
            )
        }
        Command::Update(u) => {
            if u.permissions.is_none() && u.description.is_none() {
                return Err(AccountError::BadRequest(
                    "nothing to change: give --description or --permissions".into(),
                ));
            }
            let update = AccountUpdate {
                description: u.description,
                permissions: u.permissions,
            };
            let account = admin.update_account(by, &u.name, update).await?;
            format!(
                "updated service account `{}`: permissions {}\n",
                account.name,
                permissions_json(&account.permissions)
            )
        }
        Command::List(l) => {
            let accounts = admin.accounts(by, None).await?;
            if l.json {
                json_text(&Value::Array(accounts.iter().map(account_json).collect()))
            } else {
                accounts_table(&accounts)
            }
        }
        Command::Show(s) => {
            let account = admin.account(by, &s.name).await?;
            let tokens = admin.tokens(by, &s.name).await?;
            if s.json {
                let mut shown = account_json(&account);
                shown["tokens"] = Value::Array(tokens.iter().map(token_json).collect());
                json_text(&shown)
            } else {
                let mut text = format!(
                    "name:        {}\nstate:       {}\ndescription: {}\ncreated:     {}\nupdated:     {}\npermissions: {}\ntokens:      {}\n",
                    account.name,
                    state(&account),
                    one_line(&account.description),
                    unix_time(account.created_at),
                    unix_time(account.updated_at),
                    permissions_json(&account.permissions),
                    tokens.len(),
                );
                if !tokens.is_empty() {
                    text.push('\n');
                    text.push_str(&tokens_table(&tokens));
                }
                text
            }
        }
        Command::Disable(n) => {
            admin.set_enabled(by, &n.name, false).await?;
            format!(
                "disabled service account `{}`: every token of it is refused\n",
                n.name
            )
        }
        Command::Enable(n) => {
            admin.set_enabled(by, &n.name, true).await?;
            format!("enabled service account `{}`\n", n.name)
        }
        Command::Delete(n) => {
            admin.delete_account(by, &n.name).await?;
            format!(
                "deleted service account `{}` and every token of it\n",
                n.name
            )
        }
        Command::Token(t) => match t.command {
            TokenCommand::New(n) => return issue(admin, by, n).await,
            TokenCommand::List(l) => {
                let tokens = admin.tokens(by, &l.account).await?;
                if l.json {
                    json_text(&Value::Array(tokens.iter().map(token_json).collect()))
                } else if tokens.is_empty() {
                    format!("service account `{}` has no tokens\n", l.account)
                } else {
                    tokens_table(&tokens)
                }
            }
            TokenCommand::Revoke(r) => {
                admin.revoke_token(by, &r.account, &r.id).await?;
                format!(
                    "revoked token {} of service account `{}`\n",
                    r.id, r.account
                )
            }
        },
    }))
}

/// `token new`: the token goes to stdout here, once, and nowhere else.
async fn issue(
    admin: &AccountAdmin,
    by: &Principal,
    n: NewTokenArgs,
) -> Result<Option<String>, AccountError> {
    let name = n.name.unwrap_or_else(default_token_name);
    let mut new = NewToken::new(name);
    let lifetime = match (n.expires_in, n.expires_at) {
        (Some(lifetime), _) => Some(lifetime),
        (None, Some(at)) => Some(until(at).map_err(AccountError::BadRequest)?),
        (None, None) => None,
    };
    if let Some(lifetime) = lifetime {
        new = new.expires_in(lifetime);
    }
    if let Some(permissions) = n.permissions {
        new = new.permissions(permissions);
    }
    let issued = admin.create_token(by, &n.account, new).await?;
    let text = if n.json {
        let mut shown = token_json(&issued.info);
        shown["token"] = Value::String(issued.token.expose_secret().to_owned());
        json_text(&shown)
    } else {
        format!(
            "{}\nid:      {}\nname:    {}\nexpires: {}\n",
            issued.token.expose_secret(),
            issued.info.id,
            issued.info.name,
            issued
                .info
                .expires_at
                .map_or_else(|| "never".into(), rfc3339),
        )
    };
    note(
        "The token is shown once and will not be shown again: store it now (only its SHA-256 digest is kept).",
    );
    if out(&text).is_err() {
        return Err(AccountError::Unavailable(format!(
            "token {} was created but could not be written to stdout; revoke it with `s2s-auth accounts token revoke {} {}`",
            issued.info.id, n.account, issued.info.id
        )));
    }
    Ok(None)
}

/// A failure of an account operation: malformed input is a usage error (2); a missing or
/// taken name, a disabled account, a store that does not answer are runtime errors (1).
fn failure(e: AccountError, url: &StoreUrl) -> Fail {
    match e {
        AccountError::BadRequest(m) => Fail::Usage(m),
        AccountError::NotFound(m) | AccountError::Conflict(m) => Fail::Runtime(m),
        AccountError::Unavailable(m) => {
            Fail::Runtime(url.scrub(format!("the store {url} failed: {m}")))
        }
        other => Fail::Runtime(other.to_string()),
    }
}

/// Who the audit trail names: `cli:` and the login name (`$USER`, `$USERNAME` on
/// Windows), reduced to characters that cannot forge a log line; `cli:unknown` without one.
pub(crate) fn operator() -> String {
    let login = std::env::var("USER")
        .or_else(|_| std::env::var("USERNAME"))
        .unwrap_or_default();
    let clean: String = login
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'))
        .take(64)
        .collect();
    if clean.is_empty() {
        String::from("cli:unknown")
    } else {
        format!("cli:{clean}")
    }
}

/// Writes a result to stdout (a closed pipe is an error, not a panic).
pub(crate) fn out(text: &str) -> Result<(), Fail> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(|e| Fail::Runtime(format!("cannot write to stdout: {e}")))
}

/// One line for the operator on stderr (lost, not a panic, when stderr is closed).
pub(crate) fn note(text: &str) {
    let _ = writeln!(std::io::stderr(), "{text}");
}

/// A time as RFC 3339.
pub(crate) fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_else(|_| t.to_string())
}

/// Parses an RFC 3339 time (a clap value parser).
pub(crate) fn time_arg(text: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(text.trim(), &Rfc3339)
        .map_err(|e| format!("not an RFC 3339 time like 2026-06-30T00:00:00Z: {e}"))
}

fn unix_time(secs: i64) -> String {
    OffsetDateTime::from_unix_timestamp(secs).map_or_else(|_| secs.to_string(), rfc3339)
}

fn account_name(text: &str) -> Result<String, String> {
    if is_valid_account_name(text) {
        Ok(text.to_owned())
    } else {
        Err("an account name must match ^[a-z0-9][a-z0-9_.-]{0,62}$ (lower-case letters, digits, `_`, `.`, `-`)".into())
    }
}

fn token_name(text: &str) -> Result<String, String> {
    if is_valid_account_name(text) {
        Ok(text.to_owned())
    } else {
        Err("a token name must match ^[a-z0-9][a-z0-9_.-]{0,62}$ (lower-case letters, digits, `_`, `.`, `-`)".into())
    }
}

/// A token id as the library makes them: `sat_` and 24 lower-case hex digits.
fn token_id(text: &str) -> Result<String, String> {
    let ok = text.strip_prefix("sat_").is_some_and(|hex| {
        hex.len() == 24
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    });
    if ok {
        Ok(text.to_owned())
    } else {
        Err("a token id is sat_ and 24 lower-case hex digits, as `token list` shows it".into())
    }
}

/// `accessRestrictions` JSON, inline or from `@FILE`.
fn permissions(text: &str) -> Result<AccessRestrictions, String> {
    let json = match text.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read permissions from `{path}`: {e}"))?,
        None => text.to_owned(),
    };
    let value: Value =
        serde_json::from_str(&json).map_err(|e| format!("permissions are not JSON: {e}"))?;
    AccessRestrictions::from_json(&value, "permissions")
}

/// A lifetime: a whole number and a unit (`90d`), 1 s to [`MAX_TOKEN_LIFETIME`].
fn lifetime(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let bad = || {
        format!("`{text}` is not a duration: a whole number and a unit, s m h d or w (90d, 12h)")
    };
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| bad())?;
    let unit_secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(bad()),
    };
    let secs = number.checked_mul(unit_secs).ok_or_else(bad)?;
    let lifetime = Duration::from_secs(secs);
    if lifetime.is_zero() || lifetime > MAX_TOKEN_LIFETIME {
        return Err(format!(
            "a token lives 1 s to {} days",
            MAX_TOKEN_LIFETIME.as_secs() / 86_400
        ));
    }
    Ok(lifetime)
}

/// An RFC 3339 time at least a second from now.
fn future_time(text: &str) -> Result<OffsetDateTime, String> {
    let at = time_arg(text)?;
    until(at)?;
    Ok(at)
}

/// The lifetime from now to `at`, rounded up to a whole second.
fn until(at: OffsetDateTime) -> Result<Duration, String> {
    let left = at - OffsetDateTime::now_utc();
    let secs = left.whole_seconds() + i64::from(left.subsec_nanoseconds() > 0);
    let lifetime = u64::try_from(secs)
        .ok()
        .filter(|s| *s >= 1)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("{} is not in the future", rfc3339(at)))?;
    if lifetime > MAX_TOKEN_LIFETIME {
        return Err(format!(
            "a token lives at most {} days",
            MAX_TOKEN_LIFETIME.as_secs() / 86_400
        ));
    }
    Ok(lifetime)
}

fn default_token_name() -> String {
    let now = OffsetDateTime::now_utc();
    format!(
        "cli-{:04}{:02}{:02}-{:02}{:02}{:02}",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    )
}

fn state(account: &ServiceAccount) -> &'static str {
    if account.enabled {
        "enabled"
    } else {
        "disabled"
    }
}

fn permissions_json(p: &AccessRestrictions) -> String {
    serde_json::to_string(p).unwrap_or_default()
}

fn account_json(a: &ServiceAccount) -> Value {
    json!({
        "name": a.name,
        "description": a.description,
        "enabled": a.enabled,
        "permissions": a.permissions,
        "createdAt": unix_time(a.created_at),
        "updatedAt": unix_time(a.updated_at),
    })
}

/// What is listed of a token: never the token, never its digest.
fn token_json(t: &TokenInfo) -> Value {
    serde_json::to_value(t).unwrap_or(Value::Null)
}

fn json_text(value: &Value) -> String {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_default();
    text.push('\n');
    text
}

/// A description on one line of a table (it may hold newlines and tabs).
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

fn accounts_table(accounts: &[ServiceAccount]) -> String {
    if accounts.is_empty() {
        return String::from("no service accounts\n");
    }
    let rows: Vec<[String; 4]> = accounts
        .iter()
        .map(|a| {
            [
                a.name.clone(),
                state(a).to_owned(),
                unix_time(a.created_at),
                one_line(&a.description),
            ]
        })
        .collect();
    table(["NAME", "STATE", "CREATED", "DESCRIPTION"], &rows)
}

fn tokens_table(tokens: &[TokenInfo]) -> String {
    let rows: Vec<[String; 5]> = tokens
        .iter()
        .map(|t| {
            [
                t.id.clone(),
                t.name.clone(),
                rfc3339(t.created_at),
                t.expires_at.map_or_else(|| "never".into(), rfc3339),
                t.last_used_at.map_or_else(|| "never".into(), rfc3339),
            ]
        })
        .collect();
    table(["ID", "NAME", "CREATED", "EXPIRES", "LAST USED"], &rows)
}

/// Columns padded to their widest cell; the last one is not padded.
fn table<const N: usize>(head: [&str; N], rows: &[[String; N]]) -> String {
    let mut widths = head.map(str::len);
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut text = String::new();
    let mut line = |cells: [&str; N]| {
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == N {
                text.push_str(cell);
            } else {
                text.push_str(cell);
                let pad = widths[i] - cell.chars().count();
                text.push_str(&" ".repeat(pad + 2));
            }
        }
        text.push('\n');
    };
    line(head);
    for row in rows {
        line(row.each_ref().map(String::as_str));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetimes_have_a_unit_and_a_range() {
        assert_eq!(lifetime("90d"), Ok(Duration::from_secs(90 * 86_400)));
        assert_eq!(lifetime("12h"), Ok(Duration::from_secs(12 * 3600)));
        assert_eq!(lifetime("1s"), Ok(Duration::from_secs(1)));
        for bad in [
            "",
            "90",
            "d",
            "0d",
            "-1d",
            "1.5h",
            "90 days",
            "99999999999999999999d",
            "523w",
        ] {
            assert!(lifetime(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn token_ids_have_the_library_shape() {
        assert!(token_id("sat_0123456789abcdef01234567").is_ok());
        for bad in [
            "",
            "sat_",
            "sat_0123456789ABCDEF01234567",
            "tok_0123456789abcdef01234567",
        ] {
            assert!(token_id(bad).is_err(), "{bad}");
        }
    }
}
