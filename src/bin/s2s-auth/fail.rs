//! How a subcommand fails: the message for stderr and the exit code (and the one helper
//! whose failure is always a runtime one: random bytes).

use std::fmt;
use std::process::ExitCode;

/// A subcommand's failure. The message never holds a secret (tokens, keys, passwords):
/// it is printed as is.
#[derive(Debug)]
pub(crate) enum Fail {
    /// Exit code 2: the command line or the configuration is wrong; fixing the input fixes it.
    Usage(String),
    /// Exit code 1: the input was fine, running it failed (a store, a socket, a file).
    Runtime(String),
}

impl Fail {
    /// Prints the message on stderr and returns the exit code.
    pub(crate) fn report(self) -> ExitCode {
        eprintln!("error: {self}");
        match self {
            Fail::Usage(_) => ExitCode::from(2),
            Fail::Runtime(_) => ExitCode::from(1),
        }
    }
}

impl fmt::Display for Fail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fail::Usage(message) | Fail::Runtime(message) => f.write_str(message),
        }
    }
}

/// `N` bytes from the system's random source (aws-lc's, the library's own), for new tokens
/// and keys; a failing source is a runtime failure, never a weaker fallback.
pub(crate) fn random_bytes<const N: usize>() -> Result<[u8; N], Fail> {
    let mut bytes = [0u8; N];
    aws_lc_rs::rand::fill(&mut bytes)
        .map_err(|_| Fail::Runtime(String::from("the system's random source failed")))?;
    Ok(bytes)
}
