#![cfg(feature = "cli")]
//! The `s2s-auth` command line, run as the real binary: each subcommand's result and its
//! refusals with their exit codes (0 ok, 1 runtime, 2 usage or config), and that what it
//! prints works where it is meant to (a token's entry verifies the token, a plugin token
//! verifies at its target, key files load) and never leaks what it must not (a signature, an
//! opaque token).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use base64::Engine as _;
use http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use s2s_auth::{Auth, AuthBuilder, Principal, StaticDiscovery};
use tower::ServiceExt;

const BIN: &str = env!("CARGO_BIN_EXE_s2s-auth");

/// Runs the binary with `args` and `stdin`.
fn run(args: &[&str], stdin: &[u8]) -> Output {
    run_in(args, stdin, &[])
}

fn run_in(args: &[&str], stdin: &[u8], env: &[(&str, &str)]) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let mut pipe = child.stdin.take().expect("stdin is piped");
    // The binary may exit before reading everything (a refusal): ignore a broken pipe.
    let _ = pipe.write_all(stdin);
    drop(pipe);
    child.wait_with_output().expect("the binary exits")
}

fn code(out: &Output) -> i32 {
    out.status.code().expect("exited, not killed")
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).expect("stdout is UTF-8")
}

fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).expect("stderr is UTF-8")
}

/// A fresh directory of its own for each test.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("s2s-auth-cli-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        Self(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    fn write(&self, name: &str, contents: &str) -> String {
        let path = self.path(name);
        std::fs::write(&path, contents).expect("write");
        path.display().to_string()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `token new`: (the token, the YAML entry it printed on stderr).
fn new_token(subject: &str) -> (String, String) {
    let out = run(&["token", "new", "--subject", subject], b"");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let token = stdout(&out).trim_end().to_owned();
    (token, stderr(&out))
}

/// The `externalAccess` entry printed by `token new`, indented to sit under
/// `backend.auth.externalAccess`.
fn entry_lines(entry: &str) -> String {
    entry
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| format!("      {l}\n"))
        .collect()
}

/// `keys new es256 --out <dir>`: the `pluginKeyStore` snippet it printed.
fn new_es256(dir: &Path) -> String {
    let out = run(
        &[
            "keys",
            "new",
            "es256",
            "--out",
            &dir.display().to_string(),
            "--key-id",
            "k-2026",
        ],
        b"",
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    stdout(&out)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// Sends `GET /entities` with `token` through `auth`'s layer: the status and the body (the
/// caller's subject on success).
async fn call(auth: &Auth, token: &str) -> (StatusCode, String) {
    let app: Router = Router::new()
        .route(
            "/entities",
            get(|p: Principal| async move { p.subject().to_owned() }),
        )
        .layer(auth.layer());
    let response = app
        .oneshot(
            Request::get("/entities")
                .header(header::AUTHORIZATION, format!("Bearer {token}"))
                .body(Body::empty())
                .expect("request"),
        )
        .await
        .expect("infallible");
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

// ---- every subcommand documents itself ----

#[test]
fn every_subcommand_help_has_examples() {
    for args in [
        &["token", "--help"][..],
        &["token", "new", "--help"],
        &["token", "hash", "--help"],
        &["token", "plugin", "--help"],
        &["keys", "--help"],
        &["keys", "new", "--help"],
        &["inspect", "--help"],
        &["check", "--help"],
        &["table", "--help"],
    ] {
        let out = run(args, b"");
        assert_eq!(code(&out), 0, "{args:?}");
        assert!(
            stdout(&out).contains("Examples:"),
            "{args:?}: {}",
            stdout(&out)
        );
    }
}

#[test]
fn unknown_arguments_exit_2() {
    assert_eq!(code(&run(&["token", "new", "--bogus"], b"")), 2);
    assert_eq!(code(&run(&["table"], b"")), 2, "--config is required");
}

// ---- token new / token hash ----

#[test]
fn token_new_prints_a_256_bit_url_safe_token_and_its_sha256() {
    let (token, entry) = new_token("ci-bot");
    assert!(token.len() >= 43, "{token}");
    assert!(
        token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "base64url without padding: {token}"
    );
    let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(&token)
        .expect("base64url");
    assert!(decoded.len() >= 32);
    // The entry names the hash, never the token.
    assert!(!entry.contains(&token));
    assert!(entry.contains("type: static") && entry.contains("subject: ci-bot"));
    let printed = entry
        .lines()
        .find_map(|l| l.trim().strip_prefix("tokenSha256: "))
        .expect("a tokenSha256 line");
    assert_eq!(printed.len(), 64);
    let hashed = run(&["token", "hash"], format!("{token}\n").as_bytes());
    assert_eq!(code(&hashed), 0, "{}", stderr(&hashed));
    assert_eq!(stdout(&hashed).trim_end(), printed);
    // Two tokens are never the same.
    assert_ne!(new_token("ci-bot").0, token);
}

#[tokio::test]
async fn token_new_entry_passes_check_and_verifies_the_token() {
    let dir = TempDir::new("token-entry");
    let (token, entry) = new_token("ci-bot");
    let yaml = format!(
        "s2s:\n  serviceId: catalog\nbackend:\n  auth:\n    externalAccess:\n{}",
        entry_lines(&entry)
    );
    let config = dir.write("auth.yaml", &yaml);
    let out = run(&["check", "--config", &config], b"");
    assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));

    let auth = AuthBuilder::from_yaml_str(&yaml)
        .expect("the entry parses")
        .build()
        .expect("the entry builds");
    assert_eq!(
        call(&auth, &token).await,
        (StatusCode::OK, String::from("external:ci-bot"))
    );
    let (other, _) = new_token("ci-bot");
    assert_eq!(call(&auth, &other).await.0, StatusCode::UNAUTHORIZED);
}

#[test]
fn token_new_refuses_a_subject_that_would_collide() {
    let out = run(&["token", "new", "--subject", "idp:ci"], b"");
    assert_eq!(code(&out), 2);
    assert!(
        out.stdout.is_empty(),
        "no token for an entry that cannot work"
    );
    assert!(stderr(&out).contains("--subject"));
}

#[test]
fn token_hash_matches_sha256sum_and_trims_one_newline() {
    // printf %s abcdefgh | sha256sum
    let abc = "9c56cc51b374c3ba189210d5b6d4bf57790d351c96c47c02190ecf1e430635ab";
    for input in [&b"abcdefgh"[..], b"abcdefgh\n", b"abcdefgh\r\n"] {
        let out = run(&["token", "hash"], input);
        assert_eq!(code(&out), 0);
        assert_eq!(stdout(&out), format!("{abc}\n"));
    }
}

#[test]
fn token_hash_refuses_empty_long_and_non_ascii_input() {
    let long = "a".repeat(8 * 1024 + 1);
    for input in [
        &b""[..],
        b"\n",
        b"abc def",
        b"abcdefgh\n\n",
        "tok\u{e9}n-token".as_bytes(),
        b"abc\tdef",
        long.as_bytes(),
    ] {
        let out = run(&["token", "hash"], input);
        assert_eq!(code(&out), 2, "{:?}", String::from_utf8_lossy(input));
        assert!(out.stdout.is_empty());
        assert!(!stderr(&out).contains("abc"), "the input is never quoted");
    }
}

// ---- token plugin ----

/// A config for `scaffolder` signing with a fresh static ES256 key in `dir`.
fn plugin_config(dir: &TempDir) -> (String, String) {
    let key_store = new_es256(&dir.path("keys"));
    let yaml = format!("s2s:\n  serviceId: scaffolder\n{key_store}");
    (dir.write("scaffolder.yaml", &yaml), yaml)
}

#[tokio::test]
async fn token_plugin_is_verified_by_its_target_service() {
    let dir = TempDir::new("plugin-token");
    let (config, yaml) = plugin_config(&dir);
    let out = run(
        &[
            "token", "plugin", "--config", &config, "--target", "catalog",
        ],
        b"",
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let token = stdout(&out).trim_end().to_owned();
    assert!(token.starts_with("eyJ"));

    // The scaffolder's published JWKS (static keys: the same in-process as in the binary).
    let scaffolder = AuthBuilder::from_yaml_str(&yaml)
        .expect("parses")
        .build_async()
        .await
        .expect("builds");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    let jwks: Router = scaffolder.jwks_router();
    tokio::spawn(async move { axum::serve(listener, jwks).await });

    let catalog = Auth::builder("catalog")
        .discovery(StaticDiscovery::new([("scaffolder", base.as_str())]))
        .build_async()
        .await
        .expect("receiver builds");
    assert_eq!(
        call(&catalog, &token).await,
        (StatusCode::OK, String::from("plugin:scaffolder"))
    );
    // For another audience it is refused.
    let out = run(
        &["token", "plugin", "--config", &config, "--target", "search"],
        b"",
    );
    let for_search = stdout(&out).trim_end().to_owned();
    assert_eq!(
        call(&catalog, &for_search).await.0,
        StatusCode::UNAUTHORIZED
    );
}

#[test]
fn token_plugin_without_plugin_tokens_exits_2_naming_the_setting() {
    let dir = TempDir::new("plugin-none");
    let config = dir.write("auth.yaml", "s2s:\n  serviceId: catalog\n");
    let out = run(
        &[
            "token", "plugin", "--config", &config, "--target", "catalog",
        ],
        b"",
    );
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("s2s.pluginTokens"),
        "{}",
        stderr(&out)
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn token_plugin_refuses_a_bad_target_and_a_missing_config() {
    let dir = TempDir::new("plugin-bad");
    let (config, _) = plugin_config(&dir);
    let out = run(
        &["token", "plugin", "--config", &config, "--target", "../etc"],
        b"",
    );
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    let missing = dir.path("nope.yaml").display().to_string();
    let out = run(
        &[
            "token", "plugin", "--config", &missing, "--target", "catalog",
        ],
        b"",
    );
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("nope.yaml"));
}

// ---- keys ----

#[test]
fn keys_new_es256_files_load_as_a_static_plugin_key_store() {
    let dir = TempDir::new("es256");
    let (config, _) = plugin_config(&dir);
    let private = std::fs::read_to_string(dir.path("keys/private.pem")).expect("private.pem");
    let public = std::fs::read_to_string(dir.path("keys/public.pem")).expect("public.pem");
    assert!(private.starts_with("-----BEGIN PRIVATE KEY-----\n"));
    assert!(public.starts_with("-----BEGIN PUBLIC KEY-----\n"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dir.path("keys/private.pem"))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let out = run(&["check", "--config", &config], b"");
    assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));
}

#[test]
fn keys_new_es256_refuses_to_overwrite() {
    let dir = TempDir::new("es256-twice");
    new_es256(&dir.path("keys"));
    let before = std::fs::read(dir.path("keys/private.pem")).expect("private.pem");
    let out = run(
        &[
            "keys",
            "new",
            "es256",
            "--out",
            &dir.path("keys").display().to_string(),
        ],
        b"",
    );
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("refusing to overwrite"));
    assert_eq!(
        std::fs::read(dir.path("keys/private.pem")).expect("still there"),
        before
    );
    // And without --out there is nowhere to write.
    assert_eq!(code(&run(&["keys", "new", "es256"], b"")), 2);
}

#[test]
fn keys_new_hs512_prints_512_bits_and_a_config_that_builds() {
    let dir = TempDir::new("hs512");
    let out = run(&["keys", "new", "hs512", "--kid", "jit-1"], b"");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let key = stdout(&out).trim_end().to_owned();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(&key)
        .expect("base64");
    assert_eq!(bytes.len(), 64);
    let snippet = stderr(&out);
    assert!(!snippet.contains(&key), "the key only on stdout");
    let snippet: String = snippet
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect::<String>()
        .replace("<your deployment id>", "acme-prod")
        .replace("s2s:\n", "s2s:\n  serviceId: catalog\n");
    let config = dir.write("auth.yaml", &snippet);
    let out = run_in(
        &["check", "--config", &config],
        b"",
        &[("S2S_JIT_HMAC_KEY", &key)],
    );
    assert_eq!(code(&out), 0, "{snippet}\n{}{}", stdout(&out), stderr(&out));
}

// ---- inspect ----

fn b64(json: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
}

#[test]
fn inspect_a_real_plugin_token_never_prints_its_signature() {
    let dir = TempDir::new("inspect-plugin");
    let (config, _) = plugin_config(&dir);
    let out = run(
        &[
            "token", "plugin", "--config", &config, "--target", "catalog",
        ],
        b"",
    );
    let token = stdout(&out).trim_end().to_owned();
    let signature = token.rsplit('.').next().expect("three segments");
    // The target's config: it verifies plugin tokens of the services its discovery knows.
    let catalog = dir.write(
        "catalog.yaml",
        "s2s:\n  serviceId: catalog\n  discovery:\n    scaffolder: http://127.0.0.1:9/api/scaffolder\n",
    );
    for (args, verifier) in [
        (&["inspect"][..], "plugin-token verifier"),
        (&["inspect", "--config", &catalog], "plugin-token verifier"),
        // The issuer's own config verifies no JWT at all: refused, and said so.
        (&["inspect", "--config", &config], "refused before any"),
    ] {
        let out = run(args, token.as_bytes());
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        let (o, e) = (stdout(&out), stderr(&out));
        assert!(!o.contains(signature) && !e.contains(signature), "{o}{e}");
        assert!(o.contains("Header (UNVERIFIED)") && o.contains("Claims (UNVERIFIED)"));
        assert!(o.contains("\"aud\": \"catalog\""), "{o}");
        assert!(o.contains(verifier), "{args:?}: {o}");
    }
    let out = run(&["inspect", "--config", &catalog], token.as_bytes());
    let o = stdout(&out);
    assert!(o.contains("kid k-2026"), "{o}");
    assert!(
        o.contains("http://127.0.0.1:9/api/scaffolder/.backstage/auth/v1/jwks.json"),
        "{o}"
    );
    assert!(o.contains("aud = catalog"), "{o}");
}

#[test]
fn inspect_names_the_configured_jwks_entry_or_the_refusal() {
    let dir = TempDir::new("inspect-jwks");
    let (_, entry) = new_token("ci-bot");
    let yaml = format!(
        "s2s:\n  serviceId: catalog\nbackend:\n  auth:\n    externalAccess:\n{}\
         \x20     - type: jwks\n        options:\n          url: https://idp.example.com/keys\n\
         \x20         issuer: https://idp.example.com\n          audience: catalog\n",
        entry_lines(&entry)
    );
    let config = dir.write("auth.yaml", &yaml);
    let signature = "c2lnbmF0dXJlLXNlZ21lbnQtbmV2ZXItc2hvd24";
    let token = format!(
        "{}.{}.{signature}",
        b64(r#"{"alg":"RS256","kid":"idp-1"}"#),
        b64(r#"{"iss":"https://idp.example.com","aud":"catalog","sub":"job","exp":4102444800}"#)
    );
    let out = run(&["inspect", "--config", &config], token.as_bytes());
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let o = stdout(&out);
    assert!(
        o.contains("jwks entry backend.auth.externalAccess[1] (issuer https://idp.example.com)"),
        "{o}"
    );
    assert!(
        o.contains("https://idp.example.com/keys") && o.contains("kid idp-1"),
        "{o}"
    );
    assert!(
        o.contains("exp") && o.contains("aud one of: catalog"),
        "{o}"
    );
    assert!(!o.contains(signature) && !stderr(&out).contains(signature));

    let stranger = format!(
        "{}.{}.{signature}",
        b64(r#"{"alg":"RS256"}"#),
        b64(r#"{"iss":"https://nobody.example.com"}"#)
    );
    let out = run(&["inspect", "--config", &config], stranger.as_bytes());
    assert_eq!(code(&out), 0);
    assert!(stdout(&out).contains("refused"), "{}", stdout(&out));

    // Without the config: the shape rule.
    let out = run(&["inspect"], token.as_bytes());
    assert_eq!(code(&out), 0);
    assert!(
        stdout(&out).contains("issuer https://idp.example.com"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn inspect_an_opaque_token_prints_only_its_length_and_class() {
    let dir = TempDir::new("inspect-opaque");
    let (token, entry) = new_token("ci-bot");
    let yaml = format!(
        "s2s:\n  serviceId: catalog\nbackend:\n  auth:\n    externalAccess:\n{}",
        entry_lines(&entry)
    );
    let config = dir.write("auth.yaml", &yaml);
    for args in [&["inspect"][..], &["inspect", "--config", &config]] {
        let out = run(args, token.as_bytes());
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        let (o, e) = (stdout(&out), stderr(&out));
        assert!(
            !o.contains(&token[..12]) && !e.contains(&token[..12]),
            "{o}{e}"
        );
        assert!(
            o.contains("43 bytes") && o.contains("static-token table"),
            "{o}"
        );
    }
    let out = run(&["inspect"], b"s2s_sa_0123456789abcdefghij");
    assert_eq!(code(&out), 0);
    assert!(stdout(&out).contains("service account"));
    assert!(!stdout(&out).contains("0123456789"));
}

#[test]
fn inspect_refuses_garbage_with_exit_2() {
    let garbage: Vec<Vec<u8>> = vec![
        Vec::new(),
        b"\n".to_vec(),
        vec![b'x'; 10 * 1024],
        // base64url, but not JSON
        format!("{}.{}.c2ln", b64(r#"{"not json"#), b64("{}")).into_bytes(),
        // JSON, but the claims are not base64url
        format!("{}.!!!.c2ln", b64(r#"{"alg":"RS256"}"#)).into_bytes(),
        format!("{}.{}.c2ln", b64(r#"{"alg":"none"}"#), b64("{}")).into_bytes(),
        vec![0xff, 0xfe, 0x00, 0x41],
        b"two words".to_vec(),
    ];
    for input in garbage {
        let out = run(&["inspect"], &input);
        assert_eq!(
            code(&out),
            2,
            "{:?}: {}",
            String::from_utf8_lossy(&input),
            stderr(&out)
        );
        assert!(stderr(&out).starts_with("error: "), "{}", stderr(&out));
        assert!(!stderr(&out).contains("panicked"));
    }
}

// ---- check ----

#[test]
fn check_reports_an_error_with_its_path_and_exits_2() {
    let dir = TempDir::new("check-one");
    let config = dir.write(
        "auth.yaml",
        "s2s:\n  serviceId: catalog\nbackend:\n  auth:\n    externalAccess:\n      - type: static\n        options: { token: a-long-secret-token, subject: ci, alowWrites: true }\n",
    );
    let out = run(&["check", "--config", &config], b"");
    assert_eq!(code(&out), 2);
    let o = stdout(&out);
    assert!(
        o.contains("error: backend.auth.externalAccess[0].options.alowWrites: unknown key"),
        "{o}"
    );
    assert!(
        o.lines().last().expect("a summary").contains("1 error"),
        "{o}"
    );
    assert!(!o.contains("a-long-secret-token") && !stderr(&out).contains("a-long-secret-token"));
    // A file that does not parse, or is not there: exit 2, naming the file.
    let broken = dir.write("broken.yaml", "s2s: [\n");
    assert_eq!(code(&run(&["check", "--config", &broken], b"")), 2);
    let out = run(
        &[
            "check",
            "--config",
            &dir.path("none.yaml").display().to_string(),
        ],
        b"",
    );
    assert_eq!(code(&out), 2);
    assert!(stdout(&out).contains("none.yaml"));
}

#[test]
fn check_prints_every_independent_error() {
    let dir = TempDir::new("check-two");
    let config = dir.write(
        "auth.yaml",
        "s2s:\n  serviceId: catalog\n  leewaySeconds: soon\nbackend:\n  auth:\n    externalAccess:\n      - type: static\n        options: { token: a-long-secret-token, subject: ci, alowWrites: true }\n      - type: static\n        options: { token: short, subject: deploy }\n",
    );
    let out = run(&["check", "--config", &config], b"");
    assert_eq!(code(&out), 2);
    let o = stdout(&out);
    assert!(o.contains("error: s2s.leewaySeconds: "), "{o}");
    assert!(
        o.contains("error: backend.auth.externalAccess[0].options.alowWrites: unknown key"),
        "{o}"
    );
    // A rule the build enforces (not the parser), in a later entry.
    assert!(
        o.contains("error: backend.auth.externalAccess[1].options.token: "),
        "{o}"
    );
    assert!(o.contains("3 errors"), "{o}");
    assert!(!o.contains("a-long-secret-token") && !o.contains("short,"));
}

// ---- table ----

#[test]
fn table_prints_markdown_by_default_and_json_that_parses() {
    let dir = TempDir::new("table");
    let (_, entry) = new_token("ci-bot");
    let yaml = format!(
        "s2s:\n  serviceId: catalog\n  routes:\n    - path: /healthz\n      unauthenticated: true\nbackend:\n  auth:\n    externalAccess:\n{}",
        entry_lines(&entry)
    );
    let config = dir.write("auth.yaml", &yaml);
    let out = run(&["table", "--config", &config], b"");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stdout(&out).contains("| `/healthz` |"), "{}", stdout(&out));
    let out = run(&["table", "--config", &config, "--format", "json"], b"");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    assert!(
        json["columns"].as_array().is_some_and(|c| !c.is_empty()),
        "{json}"
    );
}

#[test]
fn table_config_error_exits_2_with_the_path() {
    let dir = TempDir::new("table-bad");
    let config = dir.write("auth.yaml", "s2s:\n  serviceId: Not Valid\n");
    let out = run(&["table", "--config", &config], b"");
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("s2s.serviceId"), "{}", stderr(&out));
    assert!(out.stdout.is_empty());
}

#[test]
fn table_store_unreachable_exits_1() {
    let dir = TempDir::new("table-store");
    // A PostgreSQL store on a loopback port nothing listens on.
    let config = dir.write(
        "auth.yaml",
        "s2s:\n  serviceId: catalog\n  pluginTokens: {}\nbackend:\n  database:\n    client: pg\n    connection: postgres://s2s:pw@127.0.0.1:1/s2s\n",
    );
    let out = run(&["table", "--config", &config], b"");
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(!stderr(&out).contains(":pw@"), "no password in the message");
}

#[test]
fn check_refuses_a_misspelt_proxy_setting_as_the_sidecar_would() {
    let dir = TempDir::new("check-proxy");
    let config = dir.write(
        "auth.yaml",
        "proxy:\n  passAuthorisation: true\ns2s:\n  serviceId: catalog\n",
    );
    let out = run(&["check", "--config", &config], b"");
    assert_eq!(code(&out), 2, "{}", stdout(&out));
    assert!(
        stdout(&out).contains("error: proxy.passAuthorisation: unknown key"),
        "{}",
        stdout(&out)
    );
    assert!(stdout(&out).contains("1 error"), "{}", stdout(&out));
    // The shipped sidecar config passes.
    let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/proxy.yaml");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_s2s-auth"))
        .args(["check", "--config"])
        .arg(&shipped)
        .env("CI_TOKEN", "ci-token-123456")
        .env("DEPLOY_TOKEN", "deploy-token-123456")
        .output()
        .expect("run s2s-auth");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
