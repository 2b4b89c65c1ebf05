//! `check`: every error of a configuration (not only the first) and the warnings an
//! operator needs for rotation.

use std::path::Path;

use time::OffsetDateTime;

use crate::error::ConfigError;

/// What [`check_yaml_str_with_env`] found: every error with its path, and warnings.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct CheckReport {
    /// The errors, in the order the configuration is read. Empty: the configuration builds.
    pub errors: Vec<ConfigError>,
    /// Things that work today but hurt rotation or security tomorrow.
    pub warnings: Vec<ConfigWarning>,
}

impl CheckReport {
    /// Whether the configuration builds (warnings do not count).
    pub fn is_ok(&self) -> bool {
        self.errors.is_empty()
    }
}

/// A warning about a configuration that builds.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConfigWarning {
    /// The path of the value it is about (`backend.auth.externalAccess[0].options.expiresAt`).
    pub path: String,
    /// What is wrong and what to do, in words. Never holds a secret.
    pub message: String,
}

impl std::fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Checks a configuration file (see [`check_yaml_str_with_env`]), taking `${VAR}` from the
/// process environment.
pub fn check_yaml_file(path: impl AsRef<Path>) -> CheckReport {
    let path = path.as_ref();
    match super::read_capped(path, super::MAX_CONFIG_FILE_BYTES) {
        Ok(yaml) => check_yaml_str_with_env(
            &yaml,
            |name| std::env::var(name).ok(),
            OffsetDateTime::now_utc(),
        ),
        Err(e) => CheckReport {
            errors: vec![ConfigError::new(
                "",
                crate::error::ConfigRule::Io {
                    file: path.display().to_string(),
                    message: e.to_string(),
                },
            )],
            warnings: Vec::new(),
        },
    }
}

/// Checks a configuration without opening its store or fetching anything: every error with
/// its path, and warnings for rotation (as of `now`).
pub fn check_yaml_str_with_env(
    yaml: &str,
    env: impl Fn(&str) -> Option<String>,
    _now: OffsetDateTime,
) -> CheckReport {
    // SKELETON: only the first error for now.
    let errors = match crate::builder::AuthBuilder::from_yaml_str_with_env(yaml, env) {
        Ok(_) => Vec::new(),
        Err(e) => vec![e],
    };
    CheckReport {
        errors,
        warnings: Vec::new(),
    }
}
