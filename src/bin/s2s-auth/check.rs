//! `s2s-auth check`: every error of a config with its path, its warnings, and a summary.
//! The report goes to stdout (it is the result, even when it lists errors); the exit code
//! says whether the config builds.

use std::path::PathBuf;

use crate::Fail;

/// Arguments of `s2s-auth check`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  s2s-auth check --config auth.yaml
  s2s-auth check --config auth.yaml || exit 1        # in CI, before deploying

The report is printed on stdout: one `error: <path>: <rule>` line per error, one
`warning: <path>: <message>` line per warning, then a summary. Nothing is opened or fetched
(no store, no JWKS). The sidecar's `proxy:` section is checked too. Exit codes: 0 the config builds (warnings alone do not fail it), 2 it
has errors.")]
pub(crate) struct Args {
    /// The YAML configuration to check (`${VAR}` values are taken from the environment).
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
}

pub(crate) async fn run(args: Args) -> Result<(), Fail> {
    let file = args.config.display().to_string();
    let report = s2s_auth::config::check_yaml_file(&args.config);
    for error in &report.errors {
        // Errors about the whole file (syntax, unreadable) have no value path: name the file.
        println!("error: {}: {}", error.path().unwrap_or(&file), error.rule());
    }
    // The sidecar's own section, `proxy:`, which the library leaves alone: checked here so
    // `check` passes exactly the configs `s2s-auth proxy` starts with. (Unread or not YAML:
    // the library's errors above say so already.)
    let proxy_error = std::fs::read_to_string(&args.config)
        .ok()
        .filter(|_| report.errors.iter().all(|e| e.path().is_some()))
        .and_then(|yaml| crate::proxy::settings_from_yaml(&yaml).err());
    if let Some(message) = &proxy_error {
        println!("error: {message}");
    }
    for warning in &report.warnings {
        println!("warning: {}: {}", warning.path, warning.message);
    }
    let errors = report.errors.len() + usize::from(proxy_error.is_some());
    let warnings = report.warnings.len();
    let summary = format!(
        "{file}: {errors} error{}, {warnings} warning{}",
        plural(errors),
        plural(warnings)
    );
    println!("{summary}");
    if errors == 0 {
        Ok(())
    } else {
        Err(Fail::Usage(format!(
            "{file} does not build: {errors} error{}",
            plural(errors)
        )))
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
