//! Typed access to a parsed YAML value that knows its own config path, and `${VAR}`
//! substitution (done on the parsed value, so a variable can never inject YAML structure).

use serde_json::{Map, Value};

use crate::error::{ConfigError, ConfigRule};

/// A value and where it is.
pub(super) struct Node<'a> {
    pub(super) value: &'a Value,
    pub(super) path: String,
}

impl<'a> Node<'a> {
    pub(super) fn root(value: &'a Value) -> Self {
        Node {
            value,
            path: String::new(),
        }
    }

    pub(super) fn err(&self, rule: ConfigRule) -> ConfigError {
        ConfigError::new(self.display_path(), rule)
    }

    pub(super) fn display_path(&self) -> String {
        if self.path.is_empty() {
            "<root>".to_owned()
        } else {
            self.path.clone()
        }
    }

    pub(super) fn map(&self) -> Result<&'a Map<String, Value>, ConfigError> {
        self.value
            .as_object()
            .ok_or_else(|| self.err(ConfigRule::Expected("a mapping")))
    }

    pub(super) fn key_path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// The child at `key`, if present and not null.
    pub(super) fn get(&self, key: &str) -> Result<Option<Node<'a>>, ConfigError> {
        Ok(self
            .map()?
            .get(key)
            .filter(|v| !v.is_null())
            .map(|value| Node {
                value,
                path: self.key_path(key),
            }))
    }

    /// The descendant at `keys`, one step at a time, if every step is present and not null.
    pub(super) fn get_in(&self, keys: &[&str]) -> Result<Option<Node<'a>>, ConfigError> {
        let mut node = Node {
            value: self.value,
            path: self.path.clone(),
        };
        for key in keys {
            match node.get(key)? {
                Some(child) => node = child,
                None => return Ok(None),
            }
        }
        Ok(Some(node))
    }

    pub(super) fn required(&self, key: &str) -> Result<Node<'a>, ConfigError> {
        self.get(key)?
            .ok_or_else(|| ConfigError::new(self.key_path(key), ConfigRule::Required))
    }

    /// Refuses keys other than `allowed`.
    pub(super) fn only_keys(&self, allowed: &[&str]) -> Result<(), ConfigError> {
        for key in self.map()?.keys() {
            if !allowed.contains(&key.as_str()) {
                return Err(ConfigError::new(
                    self.key_path(key),
                    ConfigRule::UnknownKey {
                        expected: allowed.join(", "),
                    },
                ));
            }
        }
        Ok(())
    }

    pub(super) fn str(&self) -> Result<&'a str, ConfigError> {
        self.value.as_str().ok_or_else(|| {
            self.err(ConfigRule::Expected(
                "a string (quote it if it looks like a number)",
            ))
        })
    }

    /// A whole number (seconds, bytes). Its range is the builder's to check, with the same
    /// rule for YAML and Rust.
    pub(super) fn whole_number(&self) -> Result<u64, ConfigError> {
        self.value
            .as_u64()
            .ok_or_else(|| self.err(ConfigRule::Expected("a whole number")))
    }

    pub(super) fn bool(&self) -> Result<bool, ConfigError> {
        self.value
            .as_bool()
            .ok_or_else(|| self.err(ConfigRule::Expected("true or false")))
    }

    pub(super) fn list(&self) -> Result<Vec<Node<'a>>, ConfigError> {
        let items = self
            .value
            .as_array()
            .ok_or_else(|| self.err(ConfigRule::Expected("a list")))?;
        Ok(items
            .iter()
            .enumerate()
            .map(|(i, value)| Node {
                value,
                path: format!("{}[{i}]", self.path),
            })
            .collect())
    }

    /// A string or a list of strings (Backstage allows both for several options).
    pub(super) fn str_or_list(&self) -> Result<Vec<(&'a str, String)>, ConfigError> {
        if let Some(s) = self.value.as_str() {
            return Ok(vec![(s, self.path.clone())]);
        }
        let items = self.list()?;
        if items.is_empty() {
            return Err(self.err(ConfigRule::Expected(
                "a string or a non-empty list of strings",
            )));
        }
        items
            .iter()
            .map(|n| Ok((n.str()?, n.path.clone())))
            .collect()
    }
}

/// Replaces `${NAME}` in every string, depth first, keeping track of the path.
pub(super) fn substitute_env(
    value: &mut Value,
    path: String,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(), ConfigError> {
    match value {
        Value::String(s) if s.contains('$') => {
            *s = expand(s, &path, env)?;
        }
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                substitute_env(item, format!("{path}[{i}]"), env)?;
            }
        }
        Value::Object(map) => {
            for (key, item) in map.iter_mut() {
                let child = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                substitute_env(item, child, env)?;
            }
        }
        _ => {}
    }
    Ok(())
}

fn expand(
    s: &str,
    path: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, ConfigError> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i..];
        if let Some(tail) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = tail;
        } else if let Some(tail) = after.strip_prefix("${") {
            let end = tail
                .find('}')
                .ok_or_else(|| ConfigError::new(path, ConfigRule::UnclosedEnv))?;
            let name = &tail[..end];
            let valid = !name.is_empty()
                && !name.starts_with(|c: char| c.is_ascii_digit())
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !valid {
                return Err(ConfigError::new(path, ConfigRule::BadEnvName));
            }
            let value = env(name).ok_or_else(|| {
                ConfigError::new(
                    path,
                    ConfigRule::MissingEnv {
                        var: name.to_owned(),
                    },
                )
            })?;
            out.push_str(&value);
            rest = &tail[end + 1..];
        } else {
            out.push('$');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        (name == "CI_TOKEN").then(|| "from-the-environment".to_owned())
    }

    #[test]
    fn expands_env() {
        assert_eq!(
            expand("a${CI_TOKEN}b", "p", &env).unwrap(),
            "afrom-the-environmentb"
        );
        assert_eq!(
            expand("$${CI_TOKEN} $5", "p", &env).unwrap(),
            "${CI_TOKEN} $5"
        );
        let err = expand("${NOPE}", "x.y", &env).unwrap_err();
        assert_eq!(err.path(), Some("x.y"));
        assert!(matches!(err.rule(), ConfigRule::MissingEnv { var } if var == "NOPE"));
        let rule = |s: &str| expand(s, "p", &env).unwrap_err().rule().clone();
        assert_eq!(rule("${"), ConfigRule::UnclosedEnv);
        assert_eq!(rule("${A-B}"), ConfigRule::BadEnvName);
    }
}
