//! `s2s-auth proxy`: NOT BUILT YET (skeleton).

use crate::Fail;

/// Arguments of `s2s-auth proxy`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {}

pub(crate) async fn run(_args: Args) -> Result<(), Fail> {
    Err(Fail::Runtime(String::from("`proxy` is not built yet")))
}
