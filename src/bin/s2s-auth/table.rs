//! `s2s-auth table`: NOT BUILT YET (skeleton).

use crate::Fail;

/// Arguments of `s2s-auth table`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {}

pub(crate) async fn run(_args: Args) -> Result<(), Fail> {
    Err(Fail::Runtime(String::from("`table` is not built yet")))
}
