//! `s2s-auth token`: a new static token and the config lines for it (`new`), the
//! `tokenSha256` of an existing one (`hash`), and a plugin token signed with a config's keys
//! (`plugin`). Also home of [`read_stdin_token`], how every subcommand reads a token.

use std::io::Read as _;
use std::path::PathBuf;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use s2s_auth::error::IssueError;
use s2s_auth::{Auth, StaticToken};

use crate::Fail;

/// The longest token read from stdin: what the layer reads from an `Authorization` header.
const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Arguments of `s2s-auth token`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  token=$(s2s-auth token new --subject ci-bot)    # the token alone; the config lines on stderr
  printf %s \"$token\" | s2s-auth token hash        # its tokenSha256
  s2s-auth token plugin --config auth.yaml --target catalog")]
pub(crate) struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// A new static token (256 random bits, base64url) and the `externalAccess` entry for it.
    #[command(after_help = "\
Examples:
  s2s-auth token new --subject ci-bot
  token=$(s2s-auth token new --subject ci-bot 2>entry.yaml)

The token alone is printed on stdout (so `token=$(s2s-auth token new)` captures exactly it);
the YAML entry to paste under backend.auth.externalAccess is printed on stderr. The entry
holds only the token's SHA-256 (tokenSha256), never the token: store the token in the
caller's secret store, and the entry in the config.")]
    New {
        /// The caller's name: it becomes `external:<subject>` (no whitespace, no `:`).
        #[arg(long, value_name = "NAME", default_value = "ci-bot")]
        subject: String,
    },
    /// The SHA-256 (hex) of a token read from stdin: the `tokenSha256` a static entry wants.
    #[command(after_help = "\
Examples:
  printf %s \"$CI_TOKEN\" | s2s-auth token hash
  s2s-auth token hash < token.txt

One trailing newline is removed; a token that is empty, over 8 KiB, or holds whitespace,
control characters or non-ASCII bytes is refused (exit 2). The hash is printed on stdout.")]
    Hash,
    /// A plugin-to-plugin token for calling `--target`, signed with the config's key store.
    #[command(after_help = "\
Examples:
  s2s-auth token plugin --config auth.yaml --target catalog
  curl -H \"Authorization: Bearer $(s2s-auth token plugin --config auth.yaml --target catalog)\" \\
    http://catalog.internal:7007/api/catalog/entities

The token is printed on stdout. The config must issue plugin tokens (s2s.pluginTokens or
backend.auth.pluginKeyStore); otherwise the exit code is 2. A key store that cannot be
reached exits 1.")]
    Plugin {
        /// The YAML configuration of the calling service.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// The service id the token is for (its `aud`).
        #[arg(long, value_name = "ID")]
        target: String,
    },
}

pub(crate) async fn run(args: Args) -> Result<(), Fail> {
    match args.command {
        Command::New { subject } => new(&subject),
        Command::Hash => {
            let token = read_stdin_token()?;
            println!("{}", sha256_hex(&token));
            Ok(())
        }
        Command::Plugin { config, target } => plugin(config, &target).await,
    }
}

fn new(subject: &str) -> Result<(), Fail> {
    let token = random_token()?;
    let hash = sha256_hex(&token);
    // The library's own rules decide whether the entry is valid (the subject's shape, ...).
    Auth::builder("s2s-auth-cli")
        .static_token(StaticToken::from_sha256_hex(subject, hash.as_str()))
        .build()
        .map_err(|e| Fail::Usage(format!("--subject: {}", e.rule())))?;
    println!("{token}");
    eprintln!(
        "# Paste under backend.auth.externalAccess (the entry holds only the token's SHA-256):\n\
         - type: static\n  options:\n    tokenSha256: {hash}\n    subject: {subject}"
    );
    Ok(())
}

/// 32 random bytes (256 bits), base64url without padding: 43 characters. Never one that
/// starts with the crate's reserved `s2s_` prefix (it would be classified as another kind).
fn random_token() -> Result<String, Fail> {
    loop {
        let token = URL_SAFE_NO_PAD.encode(crate::fail::random_bytes::<32>()?);
        if !token.starts_with("s2s_") {
            return Ok(token);
        }
    }
}

/// Lower-case hex SHA-256 of the token's bytes: what `tokenSha256` holds (the static-token
/// table hashes the token as sent, byte for byte).
fn sha256_hex(token: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

async fn plugin(config: PathBuf, target: &str) -> Result<(), Fail> {
    let auth = crate::table::load(&config).await?;
    match auth.plugin_token(target).await {
        Ok(token) => {
            println!("{}", token.expose_secret());
            Ok(())
        }
        Err(IssueError::NotConfigured) => Err(Fail::Usage(format!(
            "{}: this config issues no plugin tokens: add s2s.pluginTokens (keys in the \
             database) or backend.auth.pluginKeyStore (e.g. `type: static`, see `s2s-auth keys new es256`)",
            config.display()
        ))),
        Err(e @ IssueError::InvalidTarget(_)) => Err(Fail::Usage(format!("--target: {e}"))),
        Err(e) => Err(Fail::Runtime(e.to_string())),
    }
}

/// Reads one token from stdin: one trailing newline (`\n` or `\r\n`) removed; refused when
/// empty, over 8 KiB, or holding anything but visible ASCII (exit 2). The error never
/// quotes the input.
pub(crate) fn read_stdin_token() -> Result<String, Fail> {
    let mut bytes = Vec::new();
    // One byte over the limit, plus room for the newline, tells "too long" apart.
    std::io::stdin()
        .lock()
        .take((MAX_TOKEN_BYTES + 3) as u64)
        .read_to_end(&mut bytes)
        .map_err(|e| Fail::Runtime(format!("cannot read stdin: {e}")))?;
    if bytes.ends_with(b"\r\n") {
        bytes.truncate(bytes.len() - 2);
    } else if bytes.ends_with(b"\n") {
        bytes.truncate(bytes.len() - 1);
    }
    if bytes.is_empty() {
        return Err(Fail::Usage(String::from(
            "no token on stdin (pipe it in: `printf %s \"$TOKEN\" | s2s-auth ...`)",
        )));
    }
    if bytes.len() > MAX_TOKEN_BYTES {
        return Err(Fail::Usage(format!(
            "the token on stdin is over {MAX_TOKEN_BYTES} bytes, the most the layer reads"
        )));
    }
    if !bytes.iter().all(|b| (0x21..=0x7e).contains(b)) {
        return Err(Fail::Usage(String::from(
            "the token on stdin holds whitespace, a control character or a non-ASCII byte \
             (only one trailing newline is removed)",
        )));
    }
    String::from_utf8(bytes)
        .map_err(|_| Fail::Usage(String::from("the token on stdin is not ASCII")))
}
