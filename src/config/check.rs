//! `check`: every error of a configuration (not only the first) and the warnings an
//! operator needs for rotation.

use std::path::Path;
use std::sync::Arc;

use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::node::{Node, substitute_env};
use super::parse_root;
use crate::error::{ConfigError, ConfigRule};
use crate::store::MemoryStore;

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
                ConfigRule::Io {
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
///
/// The configuration is read as [`AuthBuilder::from_yaml_str_with_env`] reads it, then built
/// with its database stores replaced by memory ones (so every rule the build enforces is
/// checked too, and nothing is written anywhere). After an error, the value it names is set
/// aside and the rest is read again, so one run reports the errors of every entry; an entry
/// (a route, an `externalAccess` entry, a user provider) whose value cannot be set aside on
/// its own is set aside whole, and its later errors show once it is fixed.
///
/// Warnings (the configuration builds, but rotation will hurt):
/// - a static token with no `expiresAt`, or one that expires within 14 days (or has expired);
/// - a plaintext `token` where `tokenSha256` would keep the secret out of the file;
/// - a subject that holds a single static token (no overlap to rotate it without downtime).
///
/// ```
/// use s2s_auth::config::check_yaml_str_with_env;
/// use time::macros::datetime;
///
/// let yaml = "
/// s2s:
///   serviceId: catalog
///   routes:
///     - { path: /a, methods: [GTE] }
/// backend:
///   auth:
///     externalAccess:
///       - type: static
///         options: { token: short, subject: ci }
///       - type: static
///         options: { token: a-long-enough-token-for-ci, subject: deploy }
/// ";
/// let report = check_yaml_str_with_env(yaml, |_| None, datetime!(2026-12-01 0:00 UTC));
/// let paths: Vec<_> = report.errors.iter().filter_map(|e| e.path()).collect();
/// assert_eq!(paths, ["s2s.routes[0].methods[0]", "backend.auth.externalAccess[0].options.token"]);
/// assert!(report.warnings.iter().any(|w| w.path == "backend.auth.externalAccess[1].options"
///     && w.message.contains("expiresAt")));
/// // No secret in any line.
/// assert!(!format!("{report:?}").contains("a-long-enough-token-for-ci"));
/// ```
///
/// [`AuthBuilder::from_yaml_str_with_env`]: crate::AuthBuilder::from_yaml_str_with_env
pub fn check_yaml_str_with_env(
    yaml: &str,
    env: impl Fn(&str) -> Option<String>,
    now: OffsetDateTime,
) -> CheckReport {
    let original: Value = match serde_saphyr::from_str(yaml) {
        Ok(value) => value,
        Err(e) => {
            let (line, column) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
            return CheckReport {
                errors: vec![ConfigError::new("", ConfigRule::Syntax { line, column })],
                warnings: Vec::new(),
            };
        }
    };
    let mut state = SetAside::new(original.clone());
    let mut errors = Vec::new();
    for _ in 0..MAX_ROUNDS {
        let Some(error) = first_error(&state.tree, &env) else {
            break;
        };
        let original_path = state.original_path(error.path().unwrap_or(""));
        // An error at (or above) a value set aside is one this check caused: a required
        // value it removed, a list it emptied.
        // A missing value next to one set aside is ours too (`token` or `tokenSha256` is
        // required: setting a bad `tokenSha256` aside makes `token` missing).
        let scope = match error.rule() {
            ConfigRule::Required => parent(&original_path),
            _ => original_path.as_str(),
        };
        let caused_by_us = state.set_aside.iter().any(|removed| within(removed, scope));
        if !caused_by_us {
            errors.push(ConfigError::new(
                original_path.clone(),
                error.rule().clone(),
            ));
        }
        let current = error.path().unwrap_or("").to_owned();
        let fixed = if caused_by_us || matches!(error.rule(), ConfigRule::Required) {
            state.set_aside_entry(&current) || state.placeholder(&current)
        } else {
            state.set_aside_value(&current, original_path) || state.set_aside_entry(&current)
        };
        if !fixed {
            break;
        }
    }
    CheckReport {
        errors,
        warnings: warnings(&original, &env, now),
    }
}

/// Whether `path` is `scope` or below it.
fn within(path: &str, scope: &str) -> bool {
    path.strip_prefix(scope)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
}

/// The path of the mapping or list holding `path`'s value.
fn parent(path: &str) -> &str {
    match path.rfind(['.', '[']) {
        Some(end) => &path[..end],
        None => path,
    }
}

/// At most this many rounds are run (each sets one value or entry aside). (each round sets one value aside).
const MAX_ROUNDS: usize = 100;

/// The lists whose entries are set aside whole, with the original index of each entry still
/// in the tree.
const ENTRY_LISTS: [&str; 5] = [
    "s2s.routes",
    "s2s.users",
    "backend.auth.externalAccess",
    "backend.auth.keys",
    "s2s.onBehalfOf.justInTime.roles",
];

/// The first error of a configuration: env substitution, reading, then building (stores in
/// memory).
fn first_error(tree: &Value, env: &dyn Fn(&str) -> Option<String>) -> Option<ConfigError> {
    let mut tree = tree.clone();
    if let Err(e) = substitute_env(&mut tree, String::new(), env) {
        return Some(e);
    }
    let mut builder = match parse_root(&Node::root(&tree)) {
        Ok(builder) => builder,
        Err(e) => return Some(e),
    };
    // Check the build's rules without opening (or creating) a database.
    if let Some((_, key_duration)) = builder.pending_store.take() {
        builder.plugin_tokens = Some(
            crate::plugin::PluginTokens::with_store(Arc::new(MemoryStore::new()))
                .key_duration(key_duration),
        );
    }
    builder.pending_account_store = None;
    builder.build().err()
}

/// The tree being checked, with what was set aside so far.
struct SetAside {
    tree: Value,
    /// For each entry list: the original index of each entry still there.
    indices: Vec<(&'static str, Vec<usize>)>,
    /// Original paths of the values removed (an error there afterwards is ours).
    set_aside: Vec<String>,
}

impl SetAside {
    fn new(tree: Value) -> Self {
        let indices = ENTRY_LISTS
            .iter()
            .map(|list| {
                let len = lookup(&tree, list)
                    .and_then(Value::as_array)
                    .map_or(0, Vec::len);
                (*list, (0..len).collect())
            })
            .collect();
        SetAside {
            tree,
            indices,
            set_aside: Vec::new(),
        }
    }

    /// The entry list a path is inside, and the current index of its entry.
    fn entry_of<'p>(&self, path: &'p str) -> Option<(usize, usize, &'p str)> {
        self.indices.iter().enumerate().find_map(|(n, (list, _))| {
            let rest = path.strip_prefix(list)?.strip_prefix('[')?;
            let (index, rest) = rest.split_once(']')?;
            Some((n, index.parse().ok()?, rest))
        })
    }

    /// `path` (in the current tree's numbering) in the original file's numbering.
    fn original_path(&self, path: &str) -> String {
        match self.entry_of(path) {
            Some((n, current, rest)) => {
                let (list, originals) = &self.indices[n];
                match originals.get(current) {
                    Some(original) => format!("{list}[{original}]{rest}"),
                    None => path.to_owned(),
                }
            }
            None => path.to_owned(),
        }
    }

    /// Removes the value at `path`; false if there is none (or it is the whole file).
    fn set_aside_value(&mut self, path: &str, original_path: String) -> bool {
        if path.is_empty() || path == "<root>" {
            return false;
        }
        let removed = remove(&mut self.tree, path);
        if removed {
            self.set_aside.push(original_path);
        }
        removed
    }

    /// Removes the whole entry of an entry list that `path` is in.
    fn set_aside_entry(&mut self, path: &str) -> bool {
        let Some((n, current, _)) = self.entry_of(path) else {
            return false;
        };
        let list = self.indices[n].0;
        let Some(items) = lookup_mut(&mut self.tree, list).and_then(Value::as_array_mut) else {
            return false;
        };
        if current >= items.len() {
            return false;
        }
        items.remove(current);
        let original = self.indices[n].1.remove(current);
        self.set_aside.push(format!("{list}[{original}]"));
        true
    }

    /// A required value that cannot be set aside (`s2s.serviceId`) gets a harmless stand-in,
    /// so the rest of the file is still checked.
    fn placeholder(&mut self, path: &str) -> bool {
        if path != "s2s.serviceId" {
            return false;
        }
        match lookup_mut(&mut self.tree, "s2s").and_then(Value::as_object_mut) {
            Some(s2s) if s2s.get("serviceId").and_then(Value::as_str) != Some(PLACEHOLDER_ID) => {
                s2s.insert("serviceId".into(), Value::String(PLACEHOLDER_ID.into()));
                self.set_aside.push(path.to_owned());
                true
            }
            _ => false,
        }
    }
}

const PLACEHOLDER_ID: &str = "s2s-check-placeholder";

/// One step of a path: a key (which may itself hold dots) or an index.
fn step<'v, 'p>(value: &'v Value, path: &'p str) -> Option<(&'v Value, &'p str)> {
    if let Some(rest) = path.strip_prefix('[') {
        let (index, rest) = rest.split_once(']')?;
        return Some((value.as_array()?.get(index.parse::<usize>().ok()?)?, rest));
    }
    let path = path.strip_prefix('.').unwrap_or(path);
    let map = value.as_object()?;
    // The longest key that the path starts with and that ends at a separator.
    map.iter()
        .filter(|(key, _)| {
            path.strip_prefix(key.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
        })
        .max_by_key(|(key, _)| key.len())
        .map(|(key, child)| (child, &path[key.len()..]))
}

fn lookup<'v>(mut value: &'v Value, mut path: &str) -> Option<&'v Value> {
    while !path.is_empty() {
        (value, path) = step(value, path)?;
    }
    Some(value)
}

/// [`step`] on a mutable value: the segment is found with a shared look, then taken.
fn step_mut<'v, 'p>(value: &'v mut Value, path: &'p str) -> Option<(&'v mut Value, &'p str)> {
    let (segment, rest) = path.split_at(path.len() - step(value, path)?.1.len());
    let child = match segment.strip_prefix('[') {
        Some(index) => value
            .as_array_mut()?
            .get_mut(index.trim_end_matches(']').parse::<usize>().ok()?)?,
        None => value
            .as_object_mut()?
            .get_mut(segment.strip_prefix('.').unwrap_or(segment))?,
    };
    Some((child, rest))
}

fn lookup_mut<'v>(mut value: &'v mut Value, mut path: &str) -> Option<&'v mut Value> {
    while !path.is_empty() {
        (value, path) = step_mut(value, path)?;
    }
    Some(value)
}

/// Removes the value at `path` (a key from its mapping, an item from its list).
fn remove(tree: &mut Value, path: &str) -> bool {
    // Split off the last step: `a.b[2]` -> (`a.b`, index 2); `a.b.c` -> (`a.b`, key `c`),
    // trying every `.` from the right so keys holding dots still resolve.
    if let Some(open) = path.rfind('[')
        && path.ends_with(']')
        && let Ok(index) = path[open + 1..path.len() - 1].parse::<usize>()
    {
        return match lookup_mut(tree, &path[..open]).and_then(Value::as_array_mut) {
            Some(items) if index < items.len() => {
                items.remove(index);
                true
            }
            _ => false,
        };
    }
    for (dot, _) in path.rmatch_indices('.') {
        let (parent, key) = (&path[..dot], &path[dot + 1..]);
        if let Some(map) = lookup_mut(tree, parent).and_then(Value::as_object_mut)
            && map.remove(key).is_some()
        {
            return true;
        }
    }
    tree.as_object_mut()
        .is_some_and(|map| map.remove(path).is_some())
}

/// Rotation warnings, from the static entries of `backend.auth.externalAccess` (entries
/// whose variables are not set are skipped: their error is reported already).
fn warnings(
    original: &Value,
    env: &dyn Fn(&str) -> Option<String>,
    now: OffsetDateTime,
) -> Vec<ConfigWarning> {
    const LIST: &str = "backend.auth.externalAccess";
    let mut warnings = Vec::new();
    let mut subjects: Vec<(String, Vec<String>)> = Vec::new();
    let entries = lookup(original, LIST)
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    for (i, entry) in entries.iter().enumerate() {
        let mut entry = entry.clone();
        let path = format!("{LIST}[{i}]");
        if substitute_env(&mut entry, path.clone(), env).is_err()
            || entry.get("type").and_then(Value::as_str) != Some("static")
        {
            continue;
        }
        let Some(options) = entry.get("options").and_then(Value::as_object) else {
            continue;
        };
        let options_path = format!("{path}.options");
        match options.get("expiresAt").and_then(Value::as_str) {
            None => warnings.push(ConfigWarning {
                path: options_path.clone(),
                message: String::from(
                    "no expiresAt: this token never expires; give it a date and rotate before it",
                ),
            }),
            Some(at) => {
                if let Ok(at) = OffsetDateTime::parse(at, &Rfc3339) {
                    let left = at - now;
                    let message = if left <= time::Duration::ZERO {
                        Some(String::from(
                            "expired: the token is refused; issue a new one and remove this entry",
                        ))
                    } else if left < EXPIRY_WARNING {
                        Some(format!(
                            "expires in {} days: add its successor now, so callers can switch before it lapses",
                            left.whole_days()
                        ))
                    } else {
                        None
                    };
                    if let Some(message) = message {
                        warnings.push(ConfigWarning {
                            path: format!("{options_path}.expiresAt"),
                            message,
                        });
                    }
                }
            }
        }
        if options.get("token").is_some() {
            warnings.push(ConfigWarning {
                path: format!("{options_path}.token"),
                message: String::from(
                    "plaintext token in the config: give `tokenSha256` instead (`s2s-auth token hash` prints it), so the file holds no secret",
                ),
            });
        }
        if let Some(subject) = options.get("subject").and_then(Value::as_str) {
            match subjects.iter_mut().find(|(s, _)| s == subject) {
                Some((_, paths)) => paths.push(options_path),
                None => subjects.push((subject.to_owned(), vec![options_path])),
            }
        }
    }
    for (subject, paths) in subjects {
        if let [path] = paths.as_slice() {
            warnings.push(ConfigWarning {
                path: format!("{path}.subject"),
                message: format!(
                    "`{subject}` holds a single token: rotating it means downtime; add the new token as a second entry, switch the caller, then remove the old one"
                ),
            });
        }
    }
    warnings
}

/// Tokens expiring sooner than this are warned about.
const EXPIRY_WARNING: time::Duration = time::Duration::days(14);

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    const NOW: OffsetDateTime = datetime!(2026-12-01 0:00 UTC);

    fn check(yaml: &str) -> CheckReport {
        check_yaml_str_with_env(
            yaml,
            |name| (name == "SET").then(|| "set-value-1234".into()),
            NOW,
        )
    }

    fn error_paths(report: &CheckReport) -> Vec<String> {
        report
            .errors
            .iter()
            .map(|e| e.path().unwrap_or("").to_owned())
            .collect()
    }

    const HASH: &str = "ab00000000000000000000000000000000000000000000000000000000000000";

    #[test]
    fn errors_of_every_entry_are_reported_with_their_original_index() {
        let report = check(&format!(
            "
s2s:
  serviceId: catalog
backend:
  auth:
    externalAccess:
      - type: static
        options: {{ token: short, subject: a }}
      - type: static
        options: {{ tokenSha256: {HASH}, subject: b }}
      - type: statik
        options: {{ tokenSha256: {HASH}, subject: c }}
      - type: static
        options: {{ token: '${{UNSET}}', subject: d }}
"
        ));
        assert_eq!(
            error_paths(&report),
            [
                "backend.auth.externalAccess[3].options.token",
                "backend.auth.externalAccess[0].options.token",
                "backend.auth.externalAccess[2].type",
            ],
            "{report:?}"
        );
        assert!(matches!(
            report.errors[0].rule(),
            ConfigRule::MissingEnv { .. }
        ));
    }

    #[test]
    fn several_errors_in_one_entry_are_all_reported_and_no_invented_required() {
        let report = check(
            "
s2s:
  serviceId: catalog
backend:
  auth:
    externalAccess:
      - type: static
        options: { tokenSha256: nothex, subject: 'a b', expiresAt: tomorrow }
",
        );
        let paths = error_paths(&report);
        assert!(paths.len() >= 2, "{report:?}");
        assert!(
            report
                .errors
                .iter()
                .all(|e| !matches!(e.rule(), ConfigRule::Required)),
            "{report:?}"
        );
    }

    #[test]
    fn a_bad_service_id_does_not_hide_the_rest() {
        let report = check(
            "
s2s:
  serviceId: Not Valid
  routes:
    - { path: /a, methods: [GTE] }
",
        );
        assert_eq!(
            error_paths(&report),
            ["s2s.serviceId", "s2s.routes[0].methods[0]"],
            "{report:?}"
        );
    }

    #[test]
    fn a_good_config_has_no_errors_and_only_the_rotation_warnings() {
        let report = check(
            &format!(
                "
s2s:
  serviceId: catalog
backend:
  auth:
    externalAccess:
      - type: static
        options: {{ token: '${{SET}}', subject: ci }}
      - type: static
        options: {{ tokenSha256: {HASH}, subject: deploy, expiresAt: 2026-12-05T00:00:00Z }}
      - type: static
        options: {{ tokenSha256: {HASH}1, subject: deploy, expiresAt: 2027-06-01T00:00:00Z }}
      - type: static
        options: {{ tokenSha256: {HASH}2, subject: old, expiresAt: 2026-11-01T00:00:00Z }}
"
            )
            .replace(&format!("{HASH}1"), &"c".repeat(64))
            .replace(&format!("{HASH}2"), &"d".repeat(64)),
        );
        assert!(report.is_ok(), "{report:?}");
        let lines: Vec<String> = report.warnings.iter().map(ToString::to_string).collect();
        let has = |path: &str, words: &str| {
            lines
                .iter()
                .any(|l| l.starts_with(&format!("{path}:")) && l.contains(words))
        };
        let e = "backend.auth.externalAccess";
        assert!(
            has(&format!("{e}[0].options"), "no expiresAt"),
            "{lines:#?}"
        );
        assert!(
            has(&format!("{e}[0].options.token"), "tokenSha256"),
            "{lines:#?}"
        );
        assert!(
            has(&format!("{e}[0].options.subject"), "single token"),
            "{lines:#?}"
        );
        assert!(
            has(&format!("{e}[1].options.expiresAt"), "expires in 4 days"),
            "{lines:#?}"
        );
        assert!(
            has(&format!("{e}[3].options.expiresAt"), "expired"),
            "{lines:#?}"
        );
        assert!(
            has(&format!("{e}[3].options.subject"), "single token"),
            "{lines:#?}"
        );
        // `deploy` has two tokens: it can rotate.
        assert!(!lines.iter().any(|l| l.contains("`deploy`")), "{lines:#?}");
        assert_eq!(lines.len(), 6, "{lines:#?}");
        // The env value is a secret: never in the report.
        assert!(!format!("{report:?}").contains("set-value-1234"));
    }

    #[test]
    fn a_syntax_error_is_one_error_without_the_input() {
        let report = check("s2s: [secret-in-here\n : :");
        assert_eq!(report.errors.len(), 1);
        assert!(!format!("{report:?}").contains("secret-in-here"));
    }

    #[test]
    fn a_database_store_is_not_opened() {
        let file = std::env::temp_dir().join(format!("s2s-check-{}.db", std::process::id()));
        let report = check(&format!(
            "
s2s:
  serviceId: catalog
  pluginTokens: {{}}
  serviceAccounts:
    admins: [user:default/alice]
backend:
  database:
    client: better-sqlite3
    connection: {}
",
            file.display()
        ));
        assert!(report.is_ok(), "{report:?}");
        assert!(!file.exists(), "check must not create the database");
    }

    #[test]
    fn endless_rounds_are_bounded() {
        let mut yaml = String::from("s2s:\n  serviceId: catalog\n  routes:\n");
        for _ in 0..300 {
            yaml.push_str("    - { path: /a, methods: [GTE] }\n");
        }
        let report = check(&yaml);
        // Each bad route takes two rounds (the method, then the entry): 50 errors, and
        // the check stops.
        assert_eq!(
            report.errors.len(),
            MAX_ROUNDS / 2,
            "{}",
            report.errors.len()
        );
    }
}
