//! A few `--flag value` pairs after a subcommand: too little to need an argument crate.

use crate::Result;

pub(crate) struct Args {
    rest: Vec<String>,
}

impl Args {
    pub(crate) fn from_env() -> Self {
        Self {
            rest: std::env::args().skip(1).collect(),
        }
    }

    pub(crate) fn subcommand(&mut self) -> Option<String> {
        (!self.rest.is_empty()).then(|| self.rest.remove(0))
    }

    /// The value after the first `flag`, removed from what is left.
    pub(crate) fn optional(&mut self, flag: &str) -> Result<Option<String>> {
        let Some(at) = self.rest.iter().position(|a| a == flag) else {
            return Ok(None);
        };
        if at + 1 >= self.rest.len() {
            return Err(format!("{flag} needs a value").into());
        }
        let value = self.rest.remove(at + 1);
        self.rest.remove(at);
        Ok(Some(value))
    }

    pub(crate) fn required(&mut self, flag: &str) -> Result<String> {
        self.optional(flag)?
            .ok_or_else(|| format!("{flag} is required").into())
    }

    /// Every value of a flag that may repeat, in order.
    pub(crate) fn all(&mut self, flag: &str) -> Result<Vec<String>> {
        let mut values = Vec::new();
        while let Some(value) = self.optional(flag)? {
            values.push(value);
        }
        Ok(values)
    }

    /// Refuses anything not consumed: a misspelt flag must not be silently ignored.
    pub(crate) fn finish(&self) -> Result<()> {
        match self.rest.first() {
            None => Ok(()),
            Some(unknown) => Err(format!("unexpected argument {unknown:?}").into()),
        }
    }
}
