//! `s2s-auth check`: NOT BUILT YET (skeleton).

use crate::Fail;

/// Arguments of `s2s-auth check`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {}

pub(crate) async fn run(_args: Args) -> Result<(), Fail> {
    Err(Fail::Runtime(String::from("`check` is not built yet")))
}
