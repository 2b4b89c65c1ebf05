//! Access restrictions: the Backstage `accessRestrictions` of an external caller, and the
//! permission actions they name.
//!
//! A restricted credential may only be used against the listed plugins (service ids), and
//! for each plugin optionally only for named permissions and permission actions. This crate
//! enforces them at the route (see [`RoutePolicy`](crate::RoutePolicy)), not only inside a
//! permission framework, so a restriction holds even for routes that never ask for a
//! permission.
//!
//! ```
//! use s2s_auth::restrictions::{AccessRestriction, AccessRestrictions, Action};
//!
//! let restrictions = AccessRestrictions::new([
//!     AccessRestriction::plugin("catalog").actions([Action::Read]),
//!     AccessRestriction::plugin("search"),
//! ])?;
//! assert!(restrictions.for_plugin("catalog").is_some());
//! assert!(restrictions.for_plugin("scaffolder").is_none());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::BTreeSet;
use std::fmt;

use http::Method;
use serde::Serialize;

/// The action a route performs, in Backstage permission terms (`permissionAttribute.action`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Creates something (`POST` by default).
    Create,
    /// Reads something (`GET`, `HEAD`, `OPTIONS` by default).
    Read,
    /// Changes something (`PUT`, `PATCH` by default).
    Update,
    /// Deletes something (`DELETE` by default).
    Delete,
}

impl Action {
    /// All actions, in the order Backstage lists them.
    pub const ALL: [Action; 4] = [Action::Create, Action::Read, Action::Update, Action::Delete];

    /// The name used in configuration: `create`, `read`, `update`, `delete`.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Read => "read",
            Action::Update => "update",
            Action::Delete => "delete",
        }
    }

    /// Parses a configuration name; `None` for anything else (names are case-sensitive, as in
    /// Backstage).
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == name)
    }

    /// The action a method implies when a route declares none: reads for `GET`, `HEAD`,
    /// `OPTIONS`; `create` for `POST`; `update` for `PUT`/`PATCH`; `delete` for `DELETE`;
    /// anything else counts as `update` (a write), so an unusual method never passes for a read.
    pub fn from_method(method: &Method) -> Self {
        match *method {
            Method::GET | Method::HEAD | Method::OPTIONS => Action::Read,
            Method::POST => Action::Create,
            Method::DELETE => Action::Delete,
            _ => Action::Update,
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One entry of `accessRestrictions`: a plugin the credential may call, optionally narrowed
/// to some permissions and actions.
///
/// Serializes in Backstage's shape: `{"plugin", "permission": [..], "permissionAttribute":
/// {"action": [..]}}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessRestriction {
    plugin: String,
    permissions: Option<BTreeSet<String>>,
    actions: Option<BTreeSet<Action>>,
}

impl Serialize for AccessRestriction {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        #[derive(Serialize)]
        struct Attr<'a> {
            action: &'a BTreeSet<Action>,
        }
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("plugin", &self.plugin)?;
        if let Some(p) = &self.permissions {
            map.serialize_entry("permission", p)?;
        }
        if let Some(action) = &self.actions {
            map.serialize_entry("permissionAttribute", &Attr { action })?;
        }
        map.end()
    }
}

impl AccessRestriction {
    /// Allows calls to one plugin (service id), for every permission and action.
    pub fn plugin(plugin: impl Into<String>) -> Self {
        Self {
            plugin: plugin.into(),
            permissions: None,
            actions: None,
        }
    }

    /// Narrows to routes whose policy names one of these permissions.
    pub fn permissions<I, S>(mut self, permissions: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.permissions = Some(permissions.into_iter().map(Into::into).collect());
        self
    }

    /// Narrows to routes whose action (declared, or implied by the method) is one of these.
    pub fn actions(mut self, actions: impl IntoIterator<Item = Action>) -> Self {
        self.actions = Some(actions.into_iter().collect());
        self
    }

    /// The plugin (service id) this entry allows.
    pub fn plugin_id(&self) -> &str {
        &self.plugin
    }

    /// The permissions this entry allows, or `None` for all.
    pub fn allowed_permissions(&self) -> Option<&BTreeSet<String>> {
        self.permissions.as_ref()
    }

    /// The actions this entry allows, or `None` for all.
    pub fn allowed_actions(&self) -> Option<&BTreeSet<Action>> {
        self.actions.as_ref()
    }
}

/// A non-empty list of [`AccessRestriction`]s, at most one per plugin.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct AccessRestrictions(Vec<AccessRestriction>);

/// Why a list of restrictions was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RestrictionError {
    /// The list was empty: a restriction that allows nothing is almost always a mistake.
    #[error("accessRestrictions must list at least one plugin")]
    Empty,
    /// The same plugin appeared twice (Backstage refuses this too).
    #[error("plugin `{0}` is listed twice")]
    DuplicatePlugin(String),
    /// A plugin id that is not a valid service id (`^[a-z0-9_-]+$`).
    #[error("`{0}` is not a valid plugin id (expected lower-case letters, digits, `-` and `_`)")]
    InvalidPlugin(String),
    /// An empty permission list or action list.
    #[error("plugin `{0}` has an empty permission or action list")]
    EmptyList(String),
}

impl AccessRestrictions {
    /// Checks and wraps a list of restrictions.
    pub fn new(
        restrictions: impl IntoIterator<Item = AccessRestriction>,
    ) -> Result<Self, RestrictionError> {
        let list: Vec<_> = restrictions.into_iter().collect();
        if list.is_empty() {
            return Err(RestrictionError::Empty);
        }
        let mut seen = BTreeSet::new();
        for r in &list {
            if !crate::service_id::is_valid_service_id(&r.plugin) {
                return Err(RestrictionError::InvalidPlugin(r.plugin.clone()));
            }
            if !seen.insert(r.plugin.as_str()) {
                return Err(RestrictionError::DuplicatePlugin(r.plugin.clone()));
            }
            let empty_perm = r.permissions.as_ref().is_some_and(BTreeSet::is_empty);
            let empty_act = r.actions.as_ref().is_some_and(BTreeSet::is_empty);
            if empty_perm || empty_act {
                return Err(RestrictionError::EmptyList(r.plugin.clone()));
            }
        }
        Ok(Self(list))
    }

    /// Reads restrictions in Backstage's JSON shape (`[{"plugin", "permission"?,
    /// "permissionAttribute"?: {"action"}}]`, a permission or action a string or a list),
    /// strictly: unknown fields and unknown actions are refused. The error starts with the
    /// path of the bad value under `path` (`permissions[0].permissionAttribute.action`).
    /// Used where JSON arrives at run time (the service-account admin API, the stores, the
    /// `s2s-auth accounts` command line).
    ///
    /// ```
    /// use s2s_auth::restrictions::{AccessRestrictions, Action};
    ///
    /// let json = serde_json::json!([
    ///     { "plugin": "catalog", "permissionAttribute": { "action": "read" } }
    /// ]);
    /// let read = AccessRestrictions::from_json(&json, "permissions")?;
    /// let catalog = read.for_plugin("catalog").expect("listed");
    /// assert!(catalog.allowed_actions().is_some_and(|a| a.contains(&Action::Read)));
    ///
    /// let typo = serde_json::json!([{ "plugin": "catalog", "permision": "x" }]);
    /// let e = AccessRestrictions::from_json(&typo, "permissions").unwrap_err();
    /// assert!(e.starts_with("permissions[0]: unknown key `permision`"), "{e}");
    /// # Ok::<(), String>(())
    /// ```
    pub fn from_json(value: &serde_json::Value, path: &str) -> Result<Self, String> {
        use serde_json::Value;
        let strings = |v: &Value, at: &str| -> Result<Vec<String>, String> {
            match v {
                Value::String(s) => Ok(vec![s.clone()]),
                Value::Array(items) => items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| {
                        item.as_str()
                            .map(str::to_owned)
                            .ok_or_else(|| format!("{at}[{i}]: expected a string"))
                    })
                    .collect(),
                _ => Err(format!("{at}: expected a string or a list of strings")),
            }
        };
        let items = value
            .as_array()
            .ok_or_else(|| format!("{path}: expected a list"))?;
        let mut list = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let at = format!("{path}[{i}]");
            let map = item
                .as_object()
                .ok_or_else(|| format!("{at}: expected a mapping"))?;
            if let Some(key) = map
                .keys()
                .find(|k| !["plugin", "permission", "permissionAttribute"].contains(&k.as_str()))
            {
                return Err(format!(
                    "{at}: unknown key `{key}` (expected plugin, permission, permissionAttribute)"
                ));
            }
            let plugin = map
                .get("plugin")
                .and_then(Value::as_str)
                .ok_or_else(|| format!("{at}.plugin: required, a string"))?;
            let mut r = AccessRestriction::plugin(plugin);
            if let Some(p) = map.get("permission") {
                r = r.permissions(strings(p, &format!("{at}.permission"))?);
            }
            if let Some(attr) = map.get("permissionAttribute") {
                let attr_at = format!("{at}.permissionAttribute");
                let attr = attr
                    .as_object()
                    .ok_or_else(|| format!("{attr_at}: expected a mapping"))?;
                if let Some(key) = attr.keys().find(|k| k.as_str() != "action") {
                    return Err(format!("{attr_at}: unknown key `{key}` (expected action)"));
                }
                let action_at = format!("{attr_at}.action");
                let names = strings(
                    attr.get("action")
                        .ok_or_else(|| format!("{action_at}: required"))?,
                    &action_at,
                )?;
                let mut actions = Vec::with_capacity(names.len());
                for name in names {
                    actions.push(Action::parse(&name).ok_or_else(|| {
                        format!("{action_at}: unknown action `{name}` (expected create, read, update or delete)")
                    })?);
                }
                r = r.actions(actions);
            }
            list.push(r);
        }
        Self::new(list).map_err(|e| format!("{path}: {e}"))
    }

    /// Restrictions that allow nothing: a service-account token whose permissions no longer
    /// overlap its account's (the account was narrowed after the token was made). Never
    /// built from configuration, which refuses an empty list.
    pub(crate) fn nothing() -> Self {
        Self(Vec::new())
    }

    /// The entry for one plugin, if the credential may call it at all.
    pub fn for_plugin(&self, plugin: &str) -> Option<&AccessRestriction> {
        self.0.iter().find(|r| r.plugin == plugin)
    }

    /// Every entry.
    pub fn iter(&self) -> impl Iterator<Item = &AccessRestriction> {
        self.0.iter()
    }

    /// Checks that these restrictions allow nothing `outer` does not: every plugin listed
    /// in `outer`, and for each, permissions and actions within `outer`'s (a list where
    /// `outer` has one; `outer` without a list allows any). The error says the first
    /// entry that goes beyond, e.g. "plugin `search` is not among the account's plugins".
    ///
    /// ```
    /// use s2s_auth::restrictions::{AccessRestriction, AccessRestrictions, Action};
    ///
    /// let account = AccessRestrictions::new([AccessRestriction::plugin("catalog")])?;
    /// let read = AccessRestrictions::new([
    ///     AccessRestriction::plugin("catalog").actions([Action::Read]),
    /// ])?;
    /// assert!(read.within(&account).is_ok());
    /// assert!(account.within(&read).is_err()); // all actions exceed "read only"
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn within(&self, outer: &AccessRestrictions) -> Result<(), String> {
        for r in &self.0 {
            let Some(o) = outer.for_plugin(&r.plugin) else {
                return Err(format!(
                    "plugin `{}` is not among the allowed plugins ({})",
                    r.plugin,
                    outer.plugin_list()
                ));
            };
            if let Some(allowed) = &o.permissions {
                match &r.permissions {
                    None => {
                        return Err(format!(
                            "plugin `{}` allows only some permissions; name them",
                            r.plugin
                        ));
                    }
                    Some(mine) => {
                        if let Some(p) = mine.iter().find(|p| !allowed.contains(*p)) {
                            return Err(format!(
                                "permission `{p}` of plugin `{}` is not allowed",
                                r.plugin
                            ));
                        }
                    }
                }
            }
            if let Some(allowed) = &o.actions {
                match &r.actions {
                    None => {
                        return Err(format!(
                            "plugin `{}` allows only some actions; name them",
                            r.plugin
                        ));
                    }
                    Some(mine) => {
                        if let Some(a) = mine.iter().find(|a| !allowed.contains(*a)) {
                            return Err(format!(
                                "action `{a}` on plugin `{}` is not allowed",
                                r.plugin
                            ));
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// What both allow: the plugins in both, each with the permissions and actions both
    /// allow. `None` when that is nothing at all (no plugin in common, or for each common
    /// plugin no permission or no action in common).
    ///
    /// ```
    /// use s2s_auth::restrictions::{AccessRestriction, AccessRestrictions, Action};
    ///
    /// let a = AccessRestrictions::new([
    ///     AccessRestriction::plugin("catalog"),
    ///     AccessRestriction::plugin("search"),
    /// ])?;
    /// let b = AccessRestrictions::new([
    ///     AccessRestriction::plugin("catalog").actions([Action::Read]),
    /// ])?;
    /// assert_eq!(a.intersect(&b), Some(b.clone()));
    /// let c = AccessRestrictions::new([AccessRestriction::plugin("todo")])?;
    /// assert_eq!(a.intersect(&c), None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn intersect(&self, other: &AccessRestrictions) -> Option<AccessRestrictions> {
        fn both<T: Ord + Clone>(
            a: &Option<BTreeSet<T>>,
            b: &Option<BTreeSet<T>>,
        ) -> Option<Option<BTreeSet<T>>> {
            match (a, b) {
                (None, None) => Some(None),
                (Some(x), None) | (None, Some(x)) => Some(Some(x.clone())),
                (Some(x), Some(y)) => {
                    let common: BTreeSet<T> = x.intersection(y).cloned().collect();
                    (!common.is_empty()).then_some(Some(common))
                }
            }
        }
        let list: Vec<AccessRestriction> = self
            .0
            .iter()
            .filter_map(|r| {
                let o = other.for_plugin(&r.plugin)?;
                Some(AccessRestriction {
                    plugin: r.plugin.clone(),
                    permissions: both(&r.permissions, &o.permissions)?,
                    actions: both(&r.actions, &o.actions)?,
                })
            })
            .collect();
        (!list.is_empty()).then_some(AccessRestrictions(list))
    }

    /// The plugins the credential may call, comma-separated (for messages).
    pub(crate) fn plugin_list(&self) -> String {
        self.0
            .iter()
            .map(|r| r.plugin.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_duplicates_and_empties() {
        assert_eq!(
            AccessRestrictions::new([]).unwrap_err(),
            RestrictionError::Empty
        );
        assert!(matches!(
            AccessRestrictions::new([
                AccessRestriction::plugin("a"),
                AccessRestriction::plugin("a")
            ]),
            Err(RestrictionError::DuplicatePlugin(_))
        ));
        assert!(matches!(
            AccessRestrictions::new([AccessRestriction::plugin("A/..")]),
            Err(RestrictionError::InvalidPlugin(_))
        ));
        assert!(matches!(
            AccessRestrictions::new([AccessRestriction::plugin("a").actions([])]),
            Err(RestrictionError::EmptyList(_))
        ));
    }

    #[test]
    fn method_actions() {
        assert_eq!(Action::from_method(&Method::GET), Action::Read);
        assert_eq!(Action::from_method(&Method::POST), Action::Create);
        assert_eq!(Action::from_method(&Method::PATCH), Action::Update);
        assert_eq!(Action::from_method(&Method::DELETE), Action::Delete);
        assert_eq!(Action::from_method(&Method::TRACE), Action::Update);
        assert_eq!(Action::parse("read"), Some(Action::Read));
        assert_eq!(Action::parse("Read"), None);
    }
}
