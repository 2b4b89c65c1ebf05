//! `s2s-auth token`: NOT BUILT YET (skeleton).

use crate::Fail;

/// Arguments of `s2s-auth token`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {}

pub(crate) async fn run(_args: Args) -> Result<(), Fail> {
    Err(Fail::Runtime(String::from("`token` is not built yet")))
}
