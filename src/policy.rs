//! Policies: what a verified caller may do on each route.
//!
//! A [`RoutePolicy`] is attached to a path pattern (axum's syntax: `/entities/{id}`,
//! `/files/{*rest}`) and optionally to methods. Routes nobody listed get the
//! [`DefaultPolicy`]: any authenticated caller (Backstage's default), or `deny`.
//!
//! ```
//! use http::Method;
//! use s2s_auth::{Auth, CredentialKind, DefaultPolicy, RoutePolicy};
//! use s2s_auth::restrictions::Action;
//!
//! let auth = Auth::builder("catalog")
//!     .route("/healthz", [], RoutePolicy::unauthenticated())
//!     .route(
//!         "/entities/{id}",
//!         [Method::GET],
//!         RoutePolicy::authenticated()
//!             .permission("catalog.entity.read")
//!             .action(Action::Read),
//!     )
//!     .route(
//!         "/entities",
//!         [Method::POST],
//!         RoutePolicy::authenticated()
//!             .allow([CredentialKind::Static, CredentialKind::User])
//!             .allow_static_writes(true),
//!     )
//!     .route("/admin/tokens", [], RoutePolicy::authenticated().sensitive())
//!     .default_policy(DefaultPolicy::Deny)
//!     .build()?;
//! let table = auth.access_table().to_markdown();
//! assert!(table.contains("| `/healthz` | * (read) | allow |"));
//! assert!(table.contains("| `<unlisted>` | * (read) | 401 needs credentials |"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # The rules, in the order they are checked
//!
//! 1. `unauthenticated` routes let everyone in (a credential, if sent and valid, still
//!    yields a [`Principal`]; an invalid one is ignored there and audited).
//! 2. No credential: 401.
//! 3. Default policy `deny` on an unlisted route: 403.
//! 4. `allow`: the credential kind must be listed (all kinds when unset).
//! 5. `sensitive`: only a user's own credential (`user`, no actor) is let in. Every token a
//!    machine can hold is refused: on-behalf-of tokens of both forms, plugin, static,
//!    legacy, external JWKS, custom and service-account tokens, and any principal with an
//!    actor. Issuing tokens, changing credentials and account admin are done by a person,
//!    directly; a token that leaks cannot be used to mint more or to change credentials.
//! 6. Read-only credentials (static tokens without `allowWrites`) may not use methods other
//!    than `GET`, `HEAD`, `OPTIONS`, unless the route says `allow_static_writes`.
//! 7. Access restrictions: the credential must be allowed for this service's id, and for
//!    the route's permission and action (the action is the declared one, or the one the
//!    method implies; see [`Action::from_method`]). A permission-restricted credential is
//!    refused on a route that declares no permission: restrictions fail closed.

use std::collections::BTreeSet;
use std::sync::Arc;

use http::Method;
use serde::Serialize;

use crate::audit::AuditText;
use crate::error::{ConfigError, ConfigRule, Forbidden};
use crate::principal::{CredentialKind, Principal};
use crate::restrictions::Action;

/// What a route requires.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RoutePolicy {
    unauthenticated: bool,
    allow: Option<BTreeSet<CredentialKind>>,
    permission: Option<String>,
    action: Option<Action>,
    sensitive: bool,
    allow_static_writes: bool,
}

impl RoutePolicy {
    /// Any authenticated caller, with any kind of credential (read-only credentials may
    /// still only read).
    pub fn authenticated() -> Self {
        Self::default()
    }

    /// Only users (people), with any user credential: their own token or a service acting
    /// for them (refuse the latter with [`sensitive`](Self::sensitive)).
    pub fn users() -> Self {
        Self::authenticated().allow([CredentialKind::User, CredentialKind::Obo])
    }

    /// Everyone, with or without a credential (health checks, the published JWKS).
    pub fn unauthenticated() -> Self {
        Self {
            unauthenticated: true,
            ..Self::default()
        }
    }

    /// Only these credential kinds.
    pub fn allow(mut self, kinds: impl IntoIterator<Item = CredentialKind>) -> Self {
        self.allow = Some(kinds.into_iter().collect());
        self
    }

    /// The permission the route represents (checked against access restrictions).
    pub fn permission(mut self, permission: impl Into<String>) -> Self {
        self.permission = Some(permission.into());
        self
    }

    /// The action the route performs; without it, the method decides.
    pub fn action(mut self, action: Action) -> Self {
        self.action = Some(action);
        self
    }

    /// Marks the route sensitive: only a user's own credential ([`CredentialKind::User`],
    /// acting for nobody else) is let in; every token a machine can hold (on-behalf-of,
    /// plugin, static, legacy, JWKS, custom, service-account) is refused with 403
    /// `sensitive_route`, "Token-authenticated callers cannot create tokens or change
    /// credentials". For issuing tokens, changing credentials, account admin. Routes are
    /// not sensitive unless marked.
    pub fn sensitive(mut self) -> Self {
        self.sensitive = true;
        self
    }

    /// Lets read-only credentials (static tokens without `allowWrites`) write here.
    /// Default `false`.
    pub fn allow_static_writes(mut self, allow: bool) -> Self {
        self.allow_static_writes = allow;
        self
    }

    /// Whether the route lets everyone in.
    pub fn is_unauthenticated(&self) -> bool {
        self.unauthenticated
    }

    /// The allowed credential kinds, `None` for all.
    pub fn allowed_kinds(&self) -> Option<&BTreeSet<CredentialKind>> {
        self.allow.as_ref()
    }

    /// The declared permission.
    pub fn permission_name(&self) -> Option<&str> {
        self.permission.as_deref()
    }

    /// The declared action.
    pub fn declared_action(&self) -> Option<Action> {
        self.action
    }

    /// Whether the route is sensitive.
    pub fn is_sensitive(&self) -> bool {
        self.sensitive
    }

    /// Whether read-only credentials may write here.
    pub fn static_writes_allowed(&self) -> bool {
        self.allow_static_writes
    }

    fn check(&self, origin: &str) -> Result<(), ConfigError> {
        if self.unauthenticated
            && (self.allow.is_some()
                || self.sensitive
                || self.allow_static_writes
                || self.permission.is_some())
        {
            return Err(ConfigError::new(
                origin,
                ConfigRule::UnauthenticatedWithRules,
            ));
        }
        if self.allow.as_ref().is_some_and(BTreeSet::is_empty) {
            return Err(ConfigError::new(
                format!("{origin}.allow"),
                ConfigRule::EmptyAllow,
            ));
        }
        Ok(())
    }
}

/// The policy of routes nobody listed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DefaultPolicy {
    /// Any authenticated caller (Backstage's default).
    #[default]
    Authenticated,
    /// Nobody: every route must be listed to be reachable.
    Deny,
}

/// The policy that applies to one request.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Resolved<'a> {
    /// A declared route: the policy for this method, or the route's policy for every other
    /// method.
    Route {
        pattern: &'a Arc<str>,
        policy: &'a RoutePolicy,
    },
    /// A declared route whose policies do not name this method: the strictest of them all
    /// (never the permissive default), or `None` when they cannot be combined (no
    /// credential kind is allowed by all of them): refused.
    UnlistedMethod {
        pattern: &'a Arc<str>,
        policy: Option<&'a RoutePolicy>,
    },
    /// A route nobody declared.
    Default(DefaultPolicy),
}

impl Resolved<'_> {
    /// The route pattern for audit events (shared with the registry, not copied).
    pub(crate) fn pattern(&self) -> AuditText {
        match self {
            Resolved::Route { pattern, .. } | Resolved::UnlistedMethod { pattern, .. } => {
                AuditText::from(Arc::clone(pattern))
            }
            Resolved::Default(_) => AuditText::from_static(UNLISTED),
        }
    }

    pub(crate) fn is_unauthenticated(&self) -> bool {
        match self {
            Resolved::Route { policy, .. }
            | Resolved::UnlistedMethod {
                policy: Some(policy),
                ..
            } => policy.unauthenticated,
            _ => false,
        }
    }
}

/// The pattern audit events and the access table show for routes nobody declared.
pub(crate) const UNLISTED: &str = "<unlisted>";

/// One route of the registry: a pattern, a policy per method and one for the other methods.
#[derive(Clone, Debug)]
pub(crate) struct RouteEntry {
    pub(crate) pattern: Arc<str>,
    pub(crate) by_method: Vec<(Method, RoutePolicy)>,
    pub(crate) any_method: Option<RoutePolicy>,
    /// For methods neither listed nor covered by `any_method`: the strictest combination of
    /// the listed policies (`None`: they cannot be combined, refuse).
    pub(crate) unlisted: Option<RoutePolicy>,
}

/// A route as given to the builder, the router wrapper, or read from config.
#[derive(Clone, Debug)]
pub(crate) struct RouteSpec {
    pub(crate) pattern: String,
    pub(crate) methods: Vec<Method>,
    pub(crate) policy: RoutePolicy,
    /// Where it was declared (`s2s.routes[3]`, `route("/x")`): error messages name it.
    pub(crate) origin: String,
    /// Whether the route is served by this crate (the published JWKS), so it needs no
    /// application route to match.
    pub(crate) builtin: bool,
}

/// Holds every route's policy and finds the one for a request.
#[derive(Debug)]
pub(crate) struct PolicyRegistry {
    router: matchit::Router<usize>,
    pub(crate) routes: Vec<RouteEntry>,
    pub(crate) default: DefaultPolicy,
}

impl PolicyRegistry {
    pub(crate) fn new(specs: &[RouteSpec], default: DefaultPolicy) -> Result<Self, ConfigError> {
        let mut router = matchit::Router::new();
        let mut routes: Vec<RouteEntry> = Vec::new();
        for spec in specs {
            spec.policy.check(&spec.origin)?;
            let path_at = format!("{}.path", spec.origin);
            if !spec.pattern.starts_with('/') {
                return Err(ConfigError::new(path_at, ConfigRule::PathNotAbsolute));
            }
            let index = match routes.iter().position(|r| *r.pattern == *spec.pattern) {
                Some(i) => i,
                None => {
                    router
                        .insert(spec.pattern.clone(), routes.len())
                        .map_err(|e| {
                            ConfigError::new(&path_at, ConfigRule::PatternRefused(e.to_string()))
                        })?;
                    routes.push(RouteEntry {
                        pattern: spec.pattern.as_str().into(),
                        by_method: Vec::new(),
                        any_method: None,
                        unlisted: None,
                    });
                    routes.len() - 1
                }
            };
            let entry = &mut routes[index];
            let duplicate = || {
                ConfigError::new(
                    format!("{}.methods", spec.origin),
                    ConfigRule::DuplicateRoutePolicy {
                        pattern: spec.pattern.clone(),
                    },
                )
            };
            if spec.methods.is_empty() {
                if entry.any_method.is_some() {
                    return Err(duplicate());
                }
                entry.any_method = Some(spec.policy.clone());
            }
            for method in &spec.methods {
                if entry.by_method.iter().any(|(m, _)| m == method) {
                    return Err(duplicate());
                }
                entry.by_method.push((method.clone(), spec.policy.clone()));
            }
        }
        for entry in &mut routes {
            entry.unlisted = strictest(entry.by_method.iter().map(|(_, p)| p));
        }
        Ok(Self {
            router,
            routes,
            default,
        })
    }

    /// The policy for a request. `HEAD` falls back to the `GET` policy, as axum routes it.
    pub(crate) fn resolve(&self, method: &Method, path: &str) -> Resolved<'_> {
        let Ok(matched) = self.router.at(path) else {
            return Resolved::Default(self.default);
        };
        let entry = &self.routes[*matched.value];
        let find = |m: &Method| {
            entry
                .by_method
                .iter()
                .find(|(em, _)| em == m)
                .map(|(_, p)| p)
        };
        let policy = find(method)
            .or_else(|| {
                (*method == Method::HEAD)
                    .then(|| find(&Method::GET))
                    .flatten()
            })
            .or(entry.any_method.as_ref());
        match policy {
            Some(policy) => Resolved::Route {
                pattern: &entry.pattern,
                policy,
            },
            None => self.unlisted_method(entry),
        }
    }

    /// A method no policy of `entry` names: the stricter of the default policy and the
    /// strictest of the route's own, so it is never let in more easily than either.
    pub(crate) fn unlisted_method<'a>(&'a self, entry: &'a RouteEntry) -> Resolved<'a> {
        match self.default {
            DefaultPolicy::Deny => Resolved::Default(DefaultPolicy::Deny),
            DefaultPolicy::Authenticated => Resolved::UnlistedMethod {
                pattern: &entry.pattern,
                policy: entry.unlisted.as_ref(),
            },
        }
    }
}

/// The strictest policy that every one of `policies` would also impose, for a method none of
/// them lists: a caller it lets through is one each of them lets through.
///
/// - unauthenticated only if all are;
/// - the credential kinds all of them allow (`None` if that leaves none: refuse);
/// - sensitive if any is;
/// - static writes only if all allow them;
/// - the permission only if all declare the same one (no permission refuses every
///   permission-restricted credential, the strictest choice);
/// - the action only if all declare the same one, else the method's own.
fn strictest<'a>(policies: impl Iterator<Item = &'a RoutePolicy>) -> Option<RoutePolicy> {
    let mut out: Option<RoutePolicy> = None;
    for p in policies {
        let Some(acc) = out.as_mut() else {
            out = Some(p.clone());
            continue;
        };
        acc.unauthenticated &= p.unauthenticated;
        acc.allow = match (acc.allow.take(), &p.allow) {
            (None, None) => None,
            (Some(a), None) => Some(a),
            (None, Some(b)) => Some(b.clone()),
            (Some(a), Some(b)) => Some(a.intersection(b).copied().collect()),
        };
        acc.sensitive |= p.sensitive;
        acc.allow_static_writes &= p.allow_static_writes;
        if acc.permission != p.permission {
            acc.permission = None;
        }
        if acc.action != p.action {
            acc.action = None;
        }
    }
    match out {
        Some(p) if p.allow.as_ref().is_some_and(BTreeSet::is_empty) => None,
        other => other,
    }
}

/// Whether a method only reads.
pub(crate) fn is_read_method(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Decides whether a verified principal may make this request (rules 3 to 7 of the module
/// docs). The live path and the access table both call this, so the table cannot drift from
/// what the layer does.
pub(crate) fn authorize(
    principal: &Principal,
    method: &Method,
    resolved: &Resolved<'_>,
    service_id: &str,
) -> Result<(), Forbidden> {
    let default = RoutePolicy::default();
    let policy = match resolved {
        Resolved::Route { policy, .. }
        | Resolved::UnlistedMethod {
            policy: Some(policy),
            ..
        } => *policy,
        Resolved::UnlistedMethod { policy: None, .. } => {
            return Err(Forbidden::MethodNotDeclared {
                method: method.clone(),
            });
        }
        Resolved::Default(DefaultPolicy::Deny) => return Err(Forbidden::DefaultDeny),
        Resolved::Default(DefaultPolicy::Authenticated) => &default,
    };
    if policy.unauthenticated {
        return Ok(());
    }
    let kind = principal.credential();
    if let Some(allowed) = &policy.allow
        && !allowed.contains(&kind)
    {
        return Err(Forbidden::KindNotAllowed {
            kind,
            allowed: allowed
                .iter()
                .map(|k| k.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    if policy.sensitive && (kind != CredentialKind::User || principal.actor().is_some()) {
        return Err(Forbidden::Sensitive { kind });
    }
    if principal.is_read_only() && !is_read_method(method) && !policy.allow_static_writes {
        return Err(Forbidden::ReadOnly {
            kind,
            method: method.clone(),
        });
    }
    if let Some(restrictions) = principal.restrictions() {
        let Some(entry) = restrictions.for_plugin(service_id) else {
            return Err(Forbidden::PluginRestricted {
                service: service_id.to_owned(),
                allowed: restrictions.plugin_list(),
            });
        };
        if let Some(permissions) = entry.allowed_permissions() {
            let ok = policy
                .permission
                .as_ref()
                .is_some_and(|p| permissions.contains(p));
            if !ok {
                return Err(Forbidden::PermissionRestricted {
                    permission: policy
                        .permission
                        .as_ref()
                        .map_or_else(|| "(none declared)".to_owned(), |p| format!("`{p}`")),
                });
            }
        }
        if let Some(actions) = entry.allowed_actions() {
            let action = policy.action.unwrap_or_else(|| Action::from_method(method));
            if !actions.contains(&action) {
                return Err(Forbidden::ActionRestricted { action });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(pattern: &str, methods: &[Method], policy: RoutePolicy) -> RouteSpec {
        RouteSpec {
            pattern: pattern.into(),
            methods: methods.to_vec(),
            policy,
            origin: "s2s.routes[0]".into(),
            builtin: false,
        }
    }

    #[test]
    fn resolves_by_pattern_and_method() {
        let reg = PolicyRegistry::new(
            &[
                spec("/a/{id}", &[Method::GET], RoutePolicy::unauthenticated()),
                spec("/a/{id}", &[], RoutePolicy::authenticated().sensitive()),
                spec("/files/{*rest}", &[], RoutePolicy::authenticated()),
            ],
            DefaultPolicy::Deny,
        )
        .unwrap();
        assert!(reg.resolve(&Method::GET, "/a/1").is_unauthenticated());
        assert!(reg.resolve(&Method::HEAD, "/a/1").is_unauthenticated());
        assert!(matches!(
            reg.resolve(&Method::POST, "/a/1"),
            Resolved::Route { policy, .. } if policy.is_sensitive()
        ));
        assert_eq!(
            reg.resolve(&Method::GET, "/files/x/y").pattern(),
            "/files/{*rest}"
        );
        assert!(matches!(
            reg.resolve(&Method::GET, "/nope"),
            Resolved::Default(DefaultPolicy::Deny)
        ));
    }

    #[test]
    fn refuses_bad_routes() {
        let e = PolicyRegistry::new(
            &[
                spec("/a", &[Method::GET], RoutePolicy::default()),
                spec("/a", &[Method::GET], RoutePolicy::default()),
            ],
            DefaultPolicy::Authenticated,
        )
        .unwrap_err();
        assert_eq!(e.path(), Some("s2s.routes[0].methods"));
        let e = PolicyRegistry::new(
            &[
                spec("/a/{id}", &[], RoutePolicy::default()),
                spec("/a/{name}", &[], RoutePolicy::default()),
            ],
            DefaultPolicy::Authenticated,
        )
        .unwrap_err();
        assert_eq!(e.path(), Some("s2s.routes[0].path"));
        assert!(
            PolicyRegistry::new(
                &[spec("a", &[], RoutePolicy::default())],
                DefaultPolicy::Authenticated
            )
            .is_err()
        );
        assert!(
            PolicyRegistry::new(
                &[spec("/a", &[], RoutePolicy::unauthenticated().sensitive())],
                DefaultPolicy::Authenticated
            )
            .is_err()
        );
    }
}
