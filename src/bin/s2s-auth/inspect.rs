//! `s2s-auth inspect`: NOT BUILT YET (skeleton).

use crate::Fail;

/// Arguments of `s2s-auth inspect`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {}

pub(crate) async fn run(_args: Args) -> Result<(), Fail> {
    Err(Fail::Runtime(String::from("`inspect` is not built yet")))
}
