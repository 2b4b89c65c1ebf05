//! `s2s-auth keys`: NOT BUILT YET (skeleton).

use crate::Fail;

/// Arguments of `s2s-auth keys`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {}

pub(crate) async fn run(_args: Args) -> Result<(), Fail> {
    Err(Fail::Runtime(String::from("`keys` is not built yet")))
}
