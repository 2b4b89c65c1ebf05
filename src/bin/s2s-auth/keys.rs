//! `s2s-auth keys new`: an ES256 key pair for the static plugin key store
//! (`backend.auth.pluginKeyStore: { type: static }`), or an HS512 key for just-in-time
//! on-behalf-of tokens (`s2s.onBehalfOf.justInTime.hmacKeys`).

use std::io::Write as _;
use std::path::{Path, PathBuf};

use aws_lc_rs::encoding::{AsDer, PublicKeyX509Der};
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use s2s_auth::jit::JitTokens;
use s2s_auth::plugin::StaticKey;
use s2s_auth::{Auth, PluginTokens};

use crate::Fail;

/// Arguments of `s2s-auth keys`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  s2s-auth keys new es256 --out /etc/s2s-auth/keys
  s2s-auth keys new hs512 > jit-hmac.key")]
pub(crate) struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// A new key: `es256` (a PEM pair for plugin tokens) or `hs512` (a shared HMAC key).
    #[command(after_help = "\
Examples:
  s2s-auth keys new es256 --out keys/ --key-id plugin-2026
  s2s-auth keys new hs512 --kid jit-2026 > jit-hmac.key

es256 writes DIR/private.pem (PKCS#8, mode 0600) and DIR/public.pem (SubjectPublicKeyInfo),
refusing to overwrite either, and prints on stdout the backend.auth.pluginKeyStore entry that
reads them. hs512 prints 512 random bits in base64 on stdout (the secret: redirect it into
your secret store) and the s2s.onBehalfOf.justInTime entry on stderr.")]
    New {
        /// Which key.
        #[arg(value_enum)]
        kind: Kind,
        /// es256: the directory to write `private.pem` and `public.pem` into (created if
        /// missing).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// The key id (`kid`) the config names it by. Default: `<kind>-<today's date>`.
        #[arg(long, visible_alias = "kid", value_name = "ID")]
        key_id: Option<String>,
    },
}

/// A kind of key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Kind {
    /// An ECDSA P-256 pair, for the static plugin key store.
    Es256,
    /// A 512-bit HMAC key, for just-in-time on-behalf-of tokens.
    Hs512,
}

pub(crate) async fn run(args: Args) -> Result<(), Fail> {
    let Command::New { kind, out, key_id } = args.command;
    let today = time::OffsetDateTime::now_utc().date();
    match kind {
        Kind::Es256 => {
            let out = out.ok_or_else(|| {
                Fail::Usage(String::from(
                    "es256 needs --out DIR (where the PEM files go)",
                ))
            })?;
            es256(&out, &key_id.unwrap_or_else(|| format!("es256-{today}")))
        }
        Kind::Hs512 => {
            if out.is_some() {
                return Err(Fail::Usage(String::from(
                    "hs512 prints its key on stdout; --out is for es256",
                )));
            }
            hs512(&key_id.unwrap_or_else(|| format!("hs512-{today}")))
        }
    }
}

fn es256(dir: &Path, key_id: &str) -> Result<(), Fail> {
    let private_path = dir.join("private.pem");
    let public_path = dir.join("public.pem");
    // Both checked before either is written: no half-replaced pair.
    for path in [&private_path, &public_path] {
        if path.exists() {
            return Err(Fail::Usage(format!(
                "{} exists: refusing to overwrite a key (choose another --out)",
                path.display()
            )));
        }
    }
    let failed = |_| Fail::Runtime(String::from("key generation failed"));
    let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).map_err(failed)?;
    let pkcs8 = pair.to_pkcs8v1().map_err(failed)?;
    let spki: PublicKeyX509Der<'static> = pair.public_key().as_der().map_err(failed)?;
    let private_pem = pem("PRIVATE KEY", pkcs8.as_ref());
    let public_pem = pem("PUBLIC KEY", spki.as_ref());
    // The library's own loader checks the pair and the key id before anything is written.
    Auth::builder("s2s-auth-cli")
        .plugin_tokens(PluginTokens::static_keys([StaticKey::new(
            key_id,
            private_pem.as_str(),
            public_pem.as_str(),
        )]))
        .build()
        .map_err(|e| Fail::Usage(format!("--key-id: {}", e.rule())))?;
    std::fs::create_dir_all(dir)
        .map_err(|e| Fail::Runtime(format!("cannot create {}: {e}", dir.display())))?;
    write_new(&private_path, &private_pem, 0o600)?;
    write_new(&public_path, &public_pem, 0o644)?;
    // Absolute paths, so the config works from any working directory.
    let absolute = |p: &Path| {
        std::fs::canonicalize(p)
            .unwrap_or_else(|_| p.to_path_buf())
            .display()
            .to_string()
    };
    println!(
        "# The static plugin key store reading these files (the first key signs, every key is published):\n\
         backend:\n  auth:\n    pluginKeyStore:\n      type: static\n      static:\n        keys:\n\
         \x20         - keyId: {key_id}\n            algorithm: ES256\n\
         \x20           privateKeyFile: {}\n            publicKeyFile: {}",
        absolute(&private_path),
        absolute(&public_path),
    );
    Ok(())
}

fn hs512(kid: &str) -> Result<(), Fail> {
    let key = STANDARD.encode(crate::fail::random_bytes::<64>()?);
    // The library's own rules check the key id (and the key's length).
    Auth::builder("s2s-auth-cli")
        .jit_tokens(JitTokens::new("s2s-auth-cli").hmac_key(kid, key.as_str()))
        .build()
        .map_err(|e| Fail::Usage(format!("--kid: {}", e.rule())))?;
    println!("{key}");
    eprintln!(
        "# Just-in-time on-behalf-of tokens signed with this key (the key itself is on stdout:\n\
         # keep it in a secret store and pass it in the environment, never in the file):\n\
         s2s:\n  onBehalfOf:\n    justInTime:\n      deploymentId: <your deployment id>\n\
         \x20     hmacKeys:\n        - kid: {kid}\n          key: ${{S2S_JIT_HMAC_KEY}}"
    );
    Ok(())
}

/// A PEM block, 64 base64 characters a line.
fn pem(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Writes a new file (never replacing one) with this mode on Unix.
fn write_new(path: &Path, contents: &str, mode: u32) -> Result<(), Fail> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            Fail::Usage(format!(
                "{} exists: refusing to overwrite a key",
                path.display()
            ))
        } else {
            Fail::Runtime(format!("cannot write {}: {e}", path.display()))
        }
    })?;
    file.write_all(contents.as_bytes())
        .map_err(|e| Fail::Runtime(format!("cannot write {}: {e}", path.display())))
}
