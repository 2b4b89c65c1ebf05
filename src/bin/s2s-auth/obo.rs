//! `s2s-auth obo`: NOT BUILT YET (skeleton).

use crate::Fail;

/// Arguments of `s2s-auth obo`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {}

pub(crate) async fn run(_args: Args) -> Result<(), Fail> {
    Err(Fail::Runtime(String::from("`obo` is not built yet")))
}
