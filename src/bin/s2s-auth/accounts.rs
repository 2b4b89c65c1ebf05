//! `s2s-auth accounts`: NOT BUILT YET (skeleton).

use crate::Fail;

/// Arguments of `s2s-auth accounts`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {}

pub(crate) async fn run(_args: Args) -> Result<(), Fail> {
    Err(Fail::Runtime(String::from("`accounts` is not built yet")))
}
