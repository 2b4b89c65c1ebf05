#![cfg(feature = "cli")]
//! `s2s-auth accounts` and `s2s-auth obo revoke`, the real binary on a real store: the
//! rotation flow an operator runs (create, two tokens, revoke one, disable, enable, delete),
//! a service built from YAML on the same database accepting the CLI's token and refusing it
//! once revoked, an on-behalf-of token refused after `obo revoke`, and every error path with
//! its exit code (and never a password or a token where it does not belong).

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use http::{Method, StatusCode};
use s2s_auth::jit::{JitRequest, JitTokens};
use s2s_auth::store::SqliteStore;
use s2s_auth::{Auth, AuthBuilder, CredentialKind, PluginTokens, Principal, PrincipalType};
use serde_json::Value;

use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_s2s-auth");
const READ_CATALOG: &str = r#"[{"plugin":"catalog","permissionAttribute":{"action":"read"}}]"#;
/// Who the audit lines must name.
const OPERATOR: &str = "cli:ops-tester";

/// A SQLite file under the temp dir, unique to this test and run, removed on drop (with
/// its WAL files).
struct TempDb(PathBuf);

impl TempDb {
    fn new(test: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let db = Self(std::env::temp_dir().join(format!(
            "s2s-cli-{test}-{}-{nanos}.sqlite",
            std::process::id()
        )));
        // The CLI opens existing files only (a typo must not create a new, empty store).
        std::fs::write(&db.0, b"").expect("create the empty database file");
        db
    }

    fn path(&self) -> String {
        self.0.display().to_string()
    }

    fn url(&self) -> String {
        format!("sqlite://{}", self.path())
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", self.path()));
        }
    }
}

/// What one run of the binary did.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs `s2s-auth ARGS` with `S2S_STORE` set to `store` (unset when `None`).
fn cli(store: Option<&str>, args: &[&str]) -> Run {
    let mut command = Command::new(BIN);
    command.args(args).env("USER", "ops-tester");
    match store {
        Some(url) => command.env("S2S_STORE", url),
        None => command.env_remove("S2S_STORE"),
    };
    let output = command.output().expect("the binary runs");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

#[track_caller]
fn ok(store: &str, args: &[&str]) -> Run {
    let run = cli(Some(store), args);
    assert_eq!(run.code, 0, "{args:?}: {run:#?}");
    run
}

#[track_caller]
fn fails(store: Option<&str>, args: &[&str], code: i32) -> Run {
    let run = cli(store, args);
    assert_eq!(run.code, code, "{args:?}: {run:#?}");
    assert!(run.stdout.is_empty(), "errors go to stderr: {run:#?}");
    assert!(run.stderr.starts_with("error: "), "{run:#?}");
    assert!(!run.stderr.contains("panicked"), "{run:#?}");
    run
}

/// The audit lines of a run (JSON on stderr), which must all name the operator.
#[track_caller]
fn audit_events(run: &Run) -> Vec<Value> {
    let events: Vec<Value> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).expect("an audit line is JSON"))
        .collect();
    for e in &events {
        assert_eq!(e["subject"], OPERATOR, "{e}");
        assert_eq!(e["serviceId"], "s2s-auth-cli", "{e}");
    }
    events
}

/// A token and its id from `token new`'s stdout (token first, then `id: ...`).
#[track_caller]
fn issued(run: &Run) -> (String, String) {
    let mut lines = run.stdout.lines();
    let token = lines.next().expect("the token line").to_owned();
    assert!(token.starts_with("s2s_sa_") && token.len() == 50, "{token}");
    let id = lines
        .find_map(|l| l.strip_prefix("id:"))
        .expect("the id line")
        .trim()
        .to_owned();
    assert!(id.starts_with("sat_"), "{id}");
    assert!(
        run.stderr.contains("will not be shown again"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains(&token), "the token is on stdout only");
    (token, id)
}

/// `catalog` from YAML, its service accounts kept in `database` (a `backend.database`
/// block), polling the store every second.
async fn service(database: &str) -> (Auth, Router) {
    let yaml = format!(
        "s2s:\n  serviceId: catalog\n  serviceAccounts:\n    admins: [user:default/jane]\n    stalenessSeconds: 2\nbackend:\n  database:\n{database}"
    );
    let auth = AuthBuilder::from_yaml_str(&yaml)
        .expect("the config parses")
        .build_async()
        .await
        .expect("the service builds");
    let app = auth
        .router()
        .fallback(|| async { "ok" })
        .into_router()
        .expect("routes");
    (auth, app)
}

fn sqlite_database(db: &TempDb) -> String {
    format!(
        "    client: better-sqlite3\n    connection: '{}'\n",
        db.path()
    )
}

/// The rotation flow through the CLI on `store`, checked by the service `app` (on the same
/// database) after each step. `account` is unique to the run (a PostgreSQL database is
/// shared).
async fn rotation_flow(store: &str, account: &str, auth: &Auth, app: &Router) {
    let admin = auth.service_accounts().expect("configured");
    let run = ok(
        store,
        &[
            "accounts",
            "create",
            account,
            "--description",
            "deploys the catalog",
            "--permissions",
            READ_CATALOG,
        ],
    );
    assert!(run.stdout.contains("created service account"), "{run:#?}");
    let events = audit_events(&run);
    assert_eq!(events.len(), 1, "one audit line per change: {run:#?}");
    assert_eq!(events[0]["event"], "account_created");
    assert_eq!(events[0]["target"], format!("service-account:{account}"));

    let first = ok(
        store,
        &[
            "accounts",
            "token",
            "new",
            account,
            "--name",
            "first",
            "--expires-in",
            "90d",
        ],
    );
    let (first_token, first_id) = issued(&first);
    assert_eq!(audit_events(&first)[0]["event"], "account_token_issued");
    let second = ok(
        store,
        &["accounts", "token", "new", account, "--name", "second"],
    );
    let (second_token, second_id) = issued(&second);

    // Both valid during the rotation, on the service sharing the database.
    admin.reload().await.expect("the service reads the store");
    for token in [&first_token, &second_token] {
        let reply = send(app, bearer(Method::GET, "/entities", token)).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    }

    // The listing names both, and holds neither token nor digest.
    let listed = ok(store, &["accounts", "token", "list", account]);
    let shown = ok(store, &["accounts", "show", account, "--json"]);
    let json = ok(store, &["accounts", "token", "list", account, "--json"]);
    for run in [&listed, &shown, &json] {
        for (token, id) in [(&first_token, &first_id), (&second_token, &second_id)] {
            assert!(run.stdout.contains(id.as_str()), "{run:#?}");
            assert!(!run.stdout.contains(token.as_str()), "{run:#?}");
            assert!(!run.stdout.contains(&sha256_hex(token)), "{run:#?}");
            assert!(!run.stderr.contains(token.as_str()), "{run:#?}");
        }
        assert!(audit_events(run).is_empty(), "reading is not a change");
    }
    let tokens: Value = serde_json::from_str(&json.stdout).expect("--json is JSON");
    let names: Vec<&str> = tokens
        .as_array()
        .expect("a list")
        .iter()
        .map(|t| t["name"].as_str().expect("a name"))
        .collect();
    assert_eq!(names, ["first", "second"]);
    for t in tokens.as_array().expect("a list") {
        let keys: Vec<&str> = t
            .as_object()
            .expect("an object")
            .keys()
            .map(String::as_str)
            .collect();
        assert!(
            !keys.iter().any(|k| k.contains("digest") || *k == "token"),
            "{keys:?}"
        );
    }
    let account_json: Value = serde_json::from_str(&shown.stdout).expect("--json is JSON");
    assert_eq!(account_json["enabled"], true);
    assert_eq!(account_json["description"], "deploys the catalog");
    let list = ok(store, &["accounts", "list", "--json"]);
    let accounts: Value = serde_json::from_str(&list.stdout).expect("--json is JSON");
    assert!(
        accounts
            .as_array()
            .expect("a list")
            .iter()
            .any(|a| a["name"] == account),
        "{accounts}"
    );

    // Revoke the first: refused (401, its code in the challenge); the second goes on.
    let revoked = ok(store, &["accounts", "token", "revoke", account, &first_id]);
    assert_eq!(audit_events(&revoked)[0]["event"], "account_token_revoked");
    admin.reload().await.expect("the service reads the store");
    let reply = send(app, bearer(Method::GET, "/entities", &first_token)).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.body);
    assert_eq!(
        reply.www_authenticate(),
        Some(challenge("invalid_token", "token is not recognised").as_str())
    );
    let reply = send(app, bearer(Method::GET, "/entities", &second_token)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    // Revoking it again: no such token (exit 1), no audit line.
    let again = fails(
        Some(store),
        &["accounts", "token", "revoke", account, &first_id],
        1,
    );
    assert!(audit_events(&again).is_empty());

    // Disable: every token refused; enable: the second works again.
    let disabled = ok(store, &["accounts", "disable", account]);
    assert_eq!(audit_events(&disabled)[0]["event"], "account_disabled");
    admin.reload().await.expect("the service reads the store");
    let reply = send(app, bearer(Method::GET, "/entities", &second_token)).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.body);
    assert!(
        reply
            .www_authenticate()
            .is_some_and(|c| c.contains("error=\"invalid_token\"")),
        "{:?}",
        reply.www_authenticate()
    );
    let shown = ok(store, &["accounts", "show", account]);
    assert!(shown.stdout.contains("disabled"), "{shown:#?}");
    // A disabled account gets no new token (exit 1: the store's state decided).
    fails(
        Some(store),
        &["accounts", "token", "new", account, "--name", "third"],
        1,
    );
    let enabled = ok(store, &["accounts", "enable", account]);
    assert_eq!(audit_events(&enabled)[0]["event"], "account_enabled");
    admin.reload().await.expect("the service reads the store");
    let reply = send(app, bearer(Method::GET, "/entities", &second_token)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);

    // Delete: gone, and its last token with it.
    let deleted = ok(store, &["accounts", "delete", account]);
    assert_eq!(audit_events(&deleted)[0]["event"], "account_deleted");
    admin.reload().await.expect("the service reads the store");
    let reply = send(app, bearer(Method::GET, "/entities", &second_token)).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.body);
    fails(Some(store), &["accounts", "show", account], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rotation_flow_through_the_cli_is_seen_by_a_service_on_the_same_sqlite_file() {
    let db = TempDb::new("rotation");
    // The CLI creates (and migrates) the file first; the service opens it as it is.
    ok(&db.url(), &["accounts", "list"]);
    let (auth, app) = service(&sqlite_database(&db)).await;
    rotation_flow(&db.url(), "ci-deployer", &auth, &app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rotation_flow_through_the_cli_on_postgres() {
    let Some(url) = postgres_url("the_rotation_flow_through_the_cli_on_postgres") else {
        return;
    };
    // Unique to this run: the test database is shared with other suites and runs.
    let account = format!("cli-rotation-{}", std::process::id());
    let (auth, app) = service(&format!("    client: pg\n    connection: '{url}'\n")).await;
    rotation_flow(&url, &account, &auth, &app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_issued_by_the_cli_is_refused_by_a_service_polling_after_revoke() {
    // No reload: the service sees the revocation by reading the file within its bound.
    let db = TempDb::new("polling");
    ok(&db.url(), &["accounts", "list"]);
    let (_auth, app) = service(&sqlite_database(&db)).await;
    ok(
        &db.url(),
        &[
            "accounts",
            "create",
            "poller",
            "--permissions",
            READ_CATALOG,
        ],
    );
    let (token, id) = issued(&ok(
        &db.url(),
        &["accounts", "token", "new", "poller", "--name", "t"],
    ));
    let status = |app: Router, token: String| async move {
        send(&app, bearer(Method::GET, "/entities", &token))
            .await
            .status
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while status(app.clone(), token.clone()).await != StatusCode::OK {
        assert!(Instant::now() < deadline, "the new token never worked");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ok(&db.url(), &["accounts", "token", "revoke", "poller", &id]);
    let revoked_at = Instant::now();
    while status(app.clone(), token.clone()).await != StatusCode::UNAUTHORIZED {
        assert!(
            revoked_at.elapsed() < Duration::from_secs(2) + Duration::from_millis(1500),
            "still accepted past the staleness bound"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn obo_revoke_makes_a_jit_token_refused_by_a_service_on_the_same_store() {
    let db = TempDb::new("obo");
    let store = Arc::new(SqliteStore::open(&db.path()).await.expect("opens"));
    let auth = Auth::builder(SERVICE)
        .plugin_tokens(PluginTokens::new(store))
        .jit_tokens(JitTokens::new("acme-prod").revocation_staleness(Duration::from_millis(500)))
        .build()
        .expect("builds");
    let app = echo_router().layer(auth.layer());
    let jane = Principal::new(
        PrincipalType::User,
        "user:default/jane",
        CredentialKind::User,
    )
    .with_expiry(time::OffsetDateTime::now_utc() + time::Duration::hours(1));
    let issued = auth
        .jit_token(&jane, &JitRequest::new("a report run"))
        .await
        .expect("issues");
    let token = issued.token.expose_secret().to_owned();
    let reply = send(&app, bearer(Method::GET, "/entities", &token)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);

    let run = ok(&db.url(), &["obo", "revoke", &issued.jti]);
    assert!(run.stdout.contains(&issued.jti), "{run:#?}");
    assert!(
        run.stdout.contains("issued for user:default/jane"),
        "{run:#?}"
    );
    let events = audit_events(&run);
    assert_eq!(events.len(), 1, "{run:#?}");
    assert_eq!(events[0]["event"], "token_revoked");
    assert_eq!(events[0]["target"], issued.jti.as_str());
    // Kept at least as long as the token lives.
    let until = time::OffsetDateTime::parse(
        events[0]["expiresAt"].as_str().expect("a time"),
        &time::format_description::well_known::Rfc3339,
    )
    .expect("RFC 3339");
    assert!(until.unix_timestamp() >= i64::try_from(issued.expires_at).unwrap_or(i64::MAX));

    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let reply = send(&app, bearer(Method::GET, "/entities", &token)).await;
        if reply.status == StatusCode::UNAUTHORIZED {
            assert_eq!(
                reply.www_authenticate(),
                Some(challenge("invalid_token", "token has been revoked").as_str())
            );
            break;
        }
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        assert!(Instant::now() < deadline, "the revocation was never seen");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Idempotent: revoking it again is fine.
    ok(&db.url(), &["obo", "revoke", &issued.jti]);
    // A jti no token can carry is a usage error; a past --until too.
    fails(
        Some(&db.url()),
        &["obo", "revoke", &format!("jit:{}", issued.jti)],
        2,
    );
    fails(
        Some(&db.url()),
        &["obo", "revoke", "abc", "--until", "2020-01-01T00:00:00Z"],
        2,
    );
}

#[test]
fn each_error_path_has_its_exit_code() {
    let db = TempDb::new("errors");
    let store = db.url();
    let store = Some(store.as_str());
    ok(
        &db.url(),
        &["accounts", "create", "taken", "--permissions", READ_CATALOG],
    );

    // A bad scheme: usage (2), naming the accepted forms, never the password.
    let run = fails(
        None,
        &["accounts", "--store", "mysql://op:hunter2-pw@db/x", "list"],
        2,
    );
    assert!(
        run.stderr.contains("sqlite://") && run.stderr.contains("postgres://"),
        "{run:#?}"
    );
    assert!(!run.stderr.contains("hunter2-pw"), "{run:#?}");
    // No store at all: usage, naming the variable.
    let run = fails(None, &["accounts", "list"], 2);
    assert!(run.stderr.contains("S2S_STORE"), "{run:#?}");

    // Well formed, but the store says no: runtime (1).
    fails(store, &["accounts", "show", "nobody"], 1);
    fails(
        store,
        &["accounts", "create", "taken", "--permissions", READ_CATALOG],
        1,
    );
    fails(
        store,
        &[
            "accounts",
            "token",
            "revoke",
            "taken",
            "sat_0123456789abcdef01234567",
        ],
        1,
    );
    fails(store, &["accounts", "token", "list", "nobody"], 1);

    // Malformed input: usage (2), before the store is asked.
    for args in [
        &["accounts", "show", "Bad/Name"][..],
        &[
            "accounts",
            "create",
            "service-account:x",
            "--permissions",
            READ_CATALOG,
        ],
        &["accounts", "create", "fine", "--permissions", "not json"],
        &[
            "accounts",
            "create",
            "fine",
            "--permissions",
            r#"[{"plugin":"catalog","bogus":1}]"#,
        ],
        &["accounts", "create", "fine"],
        &["accounts", "token", "new", "taken", "--expires-in", "90x"],
        &["accounts", "token", "new", "taken", "--expires-in", "0d"],
        &[
            "accounts",
            "token",
            "new",
            "taken",
            "--expires-in",
            "100000d",
        ],
        &[
            "accounts",
            "token",
            "new",
            "taken",
            "--expires-at",
            "tomorrow",
        ],
        &[
            "accounts",
            "token",
            "new",
            "taken",
            "--expires-at",
            "2020-01-01T00:00:00Z",
        ],
        &["accounts", "token", "new", "taken", "--name", "Bad Name"],
        &["accounts", "token", "revoke", "taken", "not-an-id"],
        &["accounts", "update", "taken"],
        &["obo", "revoke", "two words"],
    ] {
        fails(store, args, 2);
    }
    // Token permissions wider than the account's: usage.
    fails(
        store,
        &[
            "accounts",
            "token",
            "new",
            "taken",
            "--permissions",
            r#"[{"plugin":"search"}]"#,
        ],
        2,
    );
    // Nothing was created by any of it.
    let list = ok(&db.url(), &["accounts", "list", "--json"]);
    let accounts: Value = serde_json::from_str(&list.stdout).expect("JSON");
    assert_eq!(accounts.as_array().map(Vec::len), Some(1), "{accounts}");
}

#[test]
fn an_unreachable_postgres_fails_quickly_without_showing_its_password() {
    let started = Instant::now();
    for (url, password) in [
        ("postgres://op:s3cr3t-pw@127.0.0.1:1/s2s", "s3cr3t-pw"),
        (
            "postgresql://op@127.0.0.1:1/s2s?password=p%40ram-pw",
            "ram-pw",
        ),
    ] {
        for args in [&["accounts", "list"][..], &["obo", "revoke", "abc"]] {
            let run = fails(Some(url), args, 1);
            assert!(!run.stderr.contains(password), "{run:#?}");
            assert!(run.stderr.contains("127.0.0.1:1"), "{run:#?}");
        }
    }
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn every_subcommand_has_examples_in_its_help() {
    for args in [
        &["accounts", "--help"][..],
        &["accounts", "create", "--help"],
        &["accounts", "update", "--help"],
        &["accounts", "list", "--help"],
        &["accounts", "show", "--help"],
        &["accounts", "disable", "--help"],
        &["accounts", "enable", "--help"],
        &["accounts", "delete", "--help"],
        &["accounts", "token", "--help"],
        &["accounts", "token", "new", "--help"],
        &["accounts", "token", "list", "--help"],
        &["accounts", "token", "revoke", "--help"],
        &["obo", "--help"],
        &["obo", "revoke", "--help"],
    ] {
        let run = cli(None, args);
        assert_eq!(run.code, 0, "{args:?}: {run:#?}");
        assert!(run.stdout.contains("Examples:"), "{args:?}: {}", run.stdout);
        assert!(
            run.stdout.contains("Exit codes:"),
            "{args:?}: {}",
            run.stdout
        );
    }
}

/// A path that names no file is refused (exit 1) and not created: a typo must not look like
/// an empty store, with the change written where no service reads.
#[test]
fn a_missing_sqlite_file_is_refused_and_not_created() {
    let db = TempDb::new("missing");
    std::fs::remove_file(&db.0).unwrap();
    let run = cli(Some(&db.url()), &["accounts", "list"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("no SQLite database at"), "{run:?}");
    assert!(!db.0.exists(), "the CLI created {}", db.path());
}
