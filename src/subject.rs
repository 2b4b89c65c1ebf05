//! Subjects that cannot collide (DESIGN.md section 4): the rules for the names each
//! verifier puts into a subject, and the build-time check that keeps the subjects of every
//! configured credential apart. A subject is what permissions, audit trails and catalogs
//! key on: if two credentials can produce the same one, whoever holds the weaker credential
//! can act as the holder of the other.
//!
//! **`external:` subjects** come in two shapes, told apart by the `:` after `external:`:
//! - `external:<name>`, one segment that never holds a `:`: static and legacy subjects
//!   (refused at build if they hold one) and the `sub` of the one `jwks` entry without a
//!   `subjectPrefix` (a token whose `sub` holds one is refused, 401 `wrong_subject`);
//! - `external:<prefix>:<sub>`, whose first segment names exactly one entry: a `jwks`
//!   entry's `subjectPrefix` or a custom type's name. Prefixes may not hold `:` and must
//!   differ from each other, from custom type names and from static and legacy subjects.
//!
//! So at most one `jwks` entry may go without a prefix (two would both name their callers
//! `external:<sub>`), and a token of that entry whose `sub` equals a configured static or
//! legacy subject is refused (401 `wrong_subject`): a client at the identity provider called
//! `ci-bot` cannot pass for the holder of the `ci-bot` static token. Static subjects may
//! repeat (several tokens of one caller, for rotation), and so may legacy ones, but a static
//! and a legacy entry may not share one.
//!
//! **User subjects** are `user:<namespace>/<name>`. Each OIDC provider maps its users into a
//! namespace of its own (`namespace`, default `default`), and takes the claim's value as a
//! name inside it: a value holding `:` or `/` (`user:admins/root` in an editable `email`
//! claim) is refused, never taken as an entity ref. Only a Backstage provider's tokens carry
//! whole entity refs, and its users are the catalog's, in every namespace but those other
//! providers have as their own (a Backstage token naming one is refused, 401). Two providers
//! with the same namespace, or an OIDC provider in `default` beside a Backstage provider,
//! are a config error unless both say `sharedNamespace: true`: they resolve to the same
//! people.
//!
//! **No subject can inject a log line**: whitespace and control characters are refused in
//! every name, 401 `wrong_subject` for a token and a config error for a configured name.

use crate::error::{ConfigError, ConfigRule};

/// The namespace of an OIDC provider that names none (Backstage's default namespace).
pub(crate) const DEFAULT_NAMESPACE: &str = "default";

/// Non-empty, without whitespace or control characters.
pub(crate) fn is_clean(name: &str) -> bool {
    !name.is_empty() && !name.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// One segment of a subject: clean, and without the `:` that separates segments.
pub(crate) fn is_segment(name: &str) -> bool {
    is_clean(name) && !name.contains(':')
}

/// A Backstage namespace: `^[a-z0-9]+(-[a-z0-9]+)*$`, at most 63 characters.
pub(crate) fn is_namespace(name: &str) -> bool {
    (1..=63).contains(&name.len())
        && name.split('-').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
}

/// Every configured name that becomes part of an `external:` subject, with its path.
#[derive(Default)]
pub(crate) struct ExternalNames<'a> {
    /// Static subjects: `(path of the subject, subject)`.
    pub(crate) statics: Vec<(String, &'a str)>,
    /// Legacy subjects: `(path of the subject, subject)`.
    pub(crate) legacy: Vec<(String, &'a str)>,
    /// `jwks` entries: `(path of the entry's subjectPrefix, prefix)`.
    pub(crate) jwks: Vec<(String, Option<&'a str>)>,
    /// Custom entries: `(path of the entry's type, type name)`.
    pub(crate) custom: Vec<(String, &'a str)>,
}

impl ExternalNames<'_> {
    /// Checks the rules of the module docs; the error names the later of two entries.
    pub(crate) fn check(&self) -> Result<(), ConfigError> {
        for (path, subject) in self.statics.iter().chain(&self.legacy) {
            if !is_segment(subject) {
                return Err(ConfigError::new(path, ConfigRule::InvalidSubject));
            }
        }
        for (path, subject) in &self.statics {
            if let Some((by, _)) = self.legacy.iter().find(|(_, s)| s == subject) {
                return Err(taken(path, subject, by));
            }
        }
        let mut unprefixed: Option<&str> = None;
        for (i, (path, prefix)) in self.jwks.iter().enumerate() {
            let Some(prefix) = prefix else {
                if let Some(other) = unprefixed {
                    return Err(ConfigError::new(
                        path,
                        ConfigRule::SubjectPrefixRequired {
                            other: entry_of(other),
                        },
                    ));
                }
                unprefixed = Some(path);
                continue;
            };
            if !is_segment(prefix) {
                return Err(ConfigError::new(path, ConfigRule::InvalidSubjectPrefix));
            }
            let earlier = self.jwks[..i]
                .iter()
                .filter(|(_, p)| p == &Some(*prefix))
                .map(|(by, _)| by);
            let custom = self
                .custom
                .iter()
                .filter(|(_, t)| t == prefix)
                .map(|(by, _)| by);
            let subjects = self
                .statics
                .iter()
                .chain(&self.legacy)
                .filter(|(_, s)| s == prefix)
                .map(|(by, _)| by);
            if let Some(by) = earlier.chain(custom).chain(subjects).next() {
                return Err(taken(path, prefix, by));
            }
        }
        Ok(())
    }

    /// The subjects a token of the unprefixed `jwks` entry may not take: the static and
    /// legacy ones (`external:<subject>`).
    pub(crate) fn reserved(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .statics
            .iter()
            .chain(&self.legacy)
            .map(|(_, s)| (*s).to_owned())
            .collect();
        names.sort_unstable();
        names.dedup();
        names
    }
}

/// The path of the entry a value's `path` lies in (`...externalAccess[1]`).
fn entry_of(path: &str) -> String {
    path.strip_suffix(".options.subjectPrefix")
        .or_else(|| path.strip_suffix(".options.subject"))
        .or_else(|| path.strip_suffix(".namespace"))
        .or_else(|| path.strip_suffix(".type"))
        .unwrap_or(path)
        .to_owned()
}

fn taken(path: &str, name: &str, by: &str) -> ConfigError {
    ConfigError::new(
        path,
        ConfigRule::SubjectTaken {
            name: name.to_owned(),
            by: entry_of(by),
        },
    )
}

/// Where one user provider maps its users.
pub(crate) struct UserSpace<'a> {
    /// The path of the provider's `namespace`.
    pub(crate) path: String,
    /// Its namespace (`None` for a Backstage provider, whose users may be in any).
    pub(crate) namespace: Option<&'a str>,
    /// Whether it says it shares its namespace (`sharedNamespace`).
    pub(crate) shared: bool,
}

/// Checks that no two providers map into one namespace unless both share it, and returns,
/// for each provider, the namespaces its entity refs may not name: for a Backstage
/// provider, the namespaces other providers have as their own (empty for the others).
pub(crate) fn user_spaces(spaces: &[UserSpace<'_>]) -> Result<Vec<Vec<String>>, ConfigError> {
    for (j, later) in spaces.iter().enumerate() {
        if let Some(ns) = later.namespace
            && !is_namespace(ns)
        {
            return Err(ConfigError::new(&later.path, ConfigRule::InvalidNamespace));
        }
        for earlier in &spaces[..j] {
            // A Backstage provider (no namespace) overlaps every provider in `default`, the
            // catalog's own namespace, and every other Backstage provider; in other
            // namespaces it is kept apart at run time (the returned exclusions).
            let overlap = match (earlier.namespace, later.namespace) {
                (Some(a), Some(b)) => (a == b).then_some(a),
                (None, None) => Some("*"),
                (None, Some(ns)) | (Some(ns), None) => (ns == DEFAULT_NAMESPACE).then_some(ns),
            };
            if let Some(ns) = overlap
                && !(earlier.shared && later.shared)
            {
                return Err(ConfigError::new(
                    &later.path,
                    ConfigRule::NamespaceTaken {
                        namespace: ns.to_owned(),
                        by: entry_of(&earlier.path),
                    },
                ));
            }
        }
    }
    Ok(spaces
        .iter()
        .map(|s| match s.namespace {
            Some(_) => Vec::new(),
            None => spaces
                .iter()
                .filter(|o| !(o.shared && s.shared))
                .filter_map(|o| o.namespace)
                .map(str::to_owned)
                .collect(),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(is_segment("ci-bot"));
        assert!(!is_segment("corp:deploy-bot"));
        assert!(!is_segment("ci\nbot"));
        assert!(!is_clean(""));
        assert!(is_namespace("corp-2"));
        for bad in ["", "Corp", "a--b", "-a", "a/b", &"a".repeat(64)] {
            assert!(!is_namespace(bad), "{bad}");
        }
    }

    #[test]
    fn backstage_is_kept_out_of_private_namespaces() {
        let space = |path: &str, namespace, shared| UserSpace {
            path: path.to_owned(),
            namespace,
            shared,
        };
        let excluded = user_spaces(&[
            space("a.namespace", Some("corp"), false),
            space("b.namespace", None, false),
        ])
        .unwrap();
        assert_eq!(excluded, [Vec::<String>::new(), vec!["corp".to_owned()]]);
        let shared = user_spaces(&[
            space("a.namespace", Some("default"), true),
            space("b.namespace", None, true),
        ])
        .unwrap();
        assert_eq!(shared[1], Vec::<String>::new());
        let err = user_spaces(&[
            space("a.namespace", Some("default"), true),
            space("b.namespace", None, false),
        ])
        .unwrap_err();
        assert_eq!(err.path(), Some("b.namespace"));
    }
}
