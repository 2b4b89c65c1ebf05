//! `s2s-auth inspect`: a token from stdin, read without verifying it (the library's
//! `s2s_auth::inspect`): its header and claims, the verifier the layer would pick and why,
//! and what that verifier would check.

use std::path::PathBuf;

use crate::Fail;

/// Arguments of `s2s-auth inspect`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  printf %s \"$TOKEN\" | s2s-auth inspect
  printf %s \"$TOKEN\" | s2s-auth inspect --config auth.yaml   # the config's own verifiers

Nothing is verified, fetched or looked up: every part of the token shown is UNVERIFIED. The
signature is never printed, nor an opaque token (only its length and prefix class). The
report is printed on stdout. A token the layer cannot even read (empty, over 8 KiB, not
visible ASCII, a JWT whose header or claims are not base64url JSON) exits 2.")]
pub(crate) struct Args {
    /// Name the verifiers of this configuration (else the shape rules alone are applied).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

pub(crate) async fn run(args: Args) -> Result<(), Fail> {
    let token = crate::token::read_stdin_token()?;
    let inspection = match &args.config {
        Some(config) => crate::table::load(config).await?.inspect_token(&token),
        None => s2s_auth::inspect::inspect(&token),
    }
    .map_err(|e| Fail::Usage(format!("cannot inspect the token: {e}")))?;
    print!("{inspection}");
    Ok(())
}
