//! `s2s-auth table`: the access table of a config, as `examples/serve.rs --table-only`
//! computes it. Also home of [`load`], the one way the other subcommands build a config's
//! `Auth`.

use std::path::{Path, PathBuf};

use s2s_auth::error::ConfigRule;
use s2s_auth::{Auth, AuthBuilder};

use crate::Fail;

/// Arguments of `s2s-auth table`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  s2s-auth table --config auth.yaml                  # Markdown, for a review or a wiki
  s2s-auth table --config auth.yaml --format json    # JSON, to diff in CI
  s2s-auth table --config auth.yaml --format json > table.json && git diff --exit-code table.json

The table is printed on stdout. Exit codes: 0 ok, 2 the config is wrong (the message names
the bad value's path), 1 its store cannot be reached.")]
pub(crate) struct Args {
    /// The YAML configuration (Backstage's shape, plus `s2s`).
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Markdown)]
    format: Format,
}

/// How the table is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    /// A Markdown table, one row per route and method.
    Markdown,
    /// Pretty-printed JSON.
    Json,
}

pub(crate) async fn run(args: Args) -> Result<(), Fail> {
    let auth = load(&args.config).await?;
    // The table has a column per enabled service account: read them first.
    if let Some(accounts) = auth.service_accounts() {
        accounts
            .reload()
            .await
            .map_err(|e| Fail::Runtime(format!("cannot read the service accounts: {e}")))?;
    }
    let table = auth.access_table();
    match args.format {
        Format::Markdown => println!("{}", table.to_markdown()),
        Format::Json => println!("{:#}", table.to_json()),
    }
    Ok(())
}

/// Builds the `Auth` a config file describes, opening its store (`build_async`). A config
/// error is a usage error (exit 2) naming the file and the bad value's path; a store that
/// cannot be opened is a runtime error (exit 1). Errors never hold a secret (the library's
/// `ConfigError` promises it).
pub(crate) async fn load(path: &Path) -> Result<Auth, Fail> {
    let file = path.display();
    let builder =
        AuthBuilder::from_yaml_file(path).map_err(|e| Fail::Usage(format!("{file}: {e}")))?;
    builder.build_async().await.map_err(|e| {
        let message = format!("{file}: {e}");
        if matches!(e.rule(), ConfigRule::StoreUnavailable(_)) {
            Fail::Runtime(message)
        } else {
            Fail::Usage(message)
        }
    })
}
