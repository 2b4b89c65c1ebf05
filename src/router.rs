//! Policies beside their routes: [`AuthRouter`], an axum `Router` whose every route is
//! declared together with the [`RoutePolicy`] that guards it.
//!
//! ```
//! use axum::routing::{get, post};
//! use s2s_auth::{Auth, CredentialKind, Principal, RoutePolicy, StaticToken};
//!
//! async fn list(p: Principal) -> String { format!("entities for {}", p.subject()) }
//! async fn issue() -> &'static str { "a new token" }
//!
//! let auth = Auth::builder("catalog")
//!     .static_token(StaticToken::new("ci-bot", "a-long-random-token-for-ci"))
//!     .build()?;
//! let admin = auth
//!     .router()
//!     .route("/tokens", post(issue), RoutePolicy::users().sensitive());
//! let app: axum::Router = auth
//!     .router()
//!     .route("/healthz", get(|| async { "ok" }), RoutePolicy::unauthenticated())
//!     .route("/entities", get(list), RoutePolicy::authenticated())
//!     .nest("/admin", admin)
//!     .into_router()?; // the layer applied, policies bound, every path checked
//! # let _ = app;
//! # Ok::<(), s2s_auth::ConfigError>(())
//! ```
//!
//! What it adds over `Router::new()...layer(auth.layer())`:
//!
//! - **A policy cannot miss its route.** Every policy declared on the builder or in the
//!   YAML (`s2s.routes`) must name a path this router serves: `into_router` fails with
//!   `s2s.routes[3].path: no route /admin/token; did you mean /admin/tokens?` instead of
//!   leaving the real route on the default policy.
//! - **A route cannot miss its policy**: it is declared in the same call.
//! - **The published JWKS is mounted** when this service issues or verifies plugin tokens.
//!
//! A policy given with [`route`](AuthRouter::route) covers every method of that route;
//! [`route_for`](AuthRouter::route_for) gives a policy to some methods only. Methods of a
//! path that no policy names get the strictest of the path's policies, never the default
//! (see [`policy`](crate::policy)). Requests to paths nobody declared reach the
//! [`fallback`](AuthRouter::fallback), or axum's 404, under the default policy.

use axum::Router;
use axum::handler::Handler;
use axum::routing::MethodRouter;
use http::Method;

use crate::auth::Auth;
use crate::error::{ConfigError, ConfigRule};
use crate::layer::AuthLayer;
use crate::plugin::JWKS_PATH;
use crate::policy::{RoutePolicy, RouteSpec};
use std::sync::Arc;

impl Auth {
    /// A router whose routes carry their policies (see the [`router`](crate::router)
    /// module). Finish it with [`AuthRouter::into_router`].
    pub fn router<S: Clone + Send + Sync + 'static>(&self) -> AuthRouter<S> {
        AuthRouter {
            auth: self.clone(),
            router: Router::new(),
            specs: Vec::new(),
            served: Vec::new(),
        }
    }
}

/// An axum `Router` with a [`RoutePolicy`] beside every route. Made by [`Auth::router`].
#[must_use = "call .into_router() to get the guarded axum Router"]
pub struct AuthRouter<S = ()> {
    auth: Auth,
    router: Router<S>,
    /// The policies declared here, with full paths.
    specs: Vec<RouteSpec>,
    /// Every path pattern this router serves, with full paths.
    served: Vec<String>,
}

impl<S> std::fmt::Debug for AuthRouter<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthRouter")
            .field("service_id", &self.auth.service_id())
            .field("routes", &self.served)
            .finish_non_exhaustive()
    }
}

impl<S: Clone + Send + Sync + 'static> AuthRouter<S> {
    /// Serves `path` (axum syntax: `/entities/{id}`, `/files/{*rest}`) with
    /// `method_router`, guarded by `policy` for every method.
    ///
    /// Panics, as axum's `Router::route` does, if `path` conflicts with a route already
    /// served (a programming error, found by the first test that builds the router).
    pub fn route(self, path: &str, method_router: MethodRouter<S>, policy: RoutePolicy) -> Self {
        self.declare(path, Vec::new(), method_router, policy)
    }

    /// Serves `path` with `method_router`, guarded by `policy` for `methods` only; call it
    /// again for the same path to give other methods other policies.
    ///
    /// ```
    /// use axum::routing::{get, post};
    /// use http::Method;
    /// use s2s_auth::{Auth, CredentialKind, RoutePolicy};
    ///
    /// let auth = Auth::builder("catalog").build()?;
    /// let app: axum::Router = auth
    ///     .router()
    ///     .route_for("/entities", [Method::GET], get(|| async { "[]" }), RoutePolicy::authenticated())
    ///     .route_for("/entities", [Method::POST], post(|| async { "made" }), RoutePolicy::users())
    ///     .into_router()?;
    /// # let _ = app;
    /// # Ok::<(), s2s_auth::ConfigError>(())
    /// ```
    pub fn route_for(
        self,
        path: &str,
        methods: impl IntoIterator<Item = Method>,
        method_router: MethodRouter<S>,
        policy: RoutePolicy,
    ) -> Self {
        self.declare(path, methods.into_iter().collect(), method_router, policy)
    }

    /// Serves `path` under the policy declared for it elsewhere: in the YAML (`s2s.routes`)
    /// or on the builder ([`AuthBuilder::route`](crate::AuthBuilder::route)); without one,
    /// the default policy applies (its method rows show in the access table). Use it when
    /// policies live in configuration and handlers in code.
    ///
    /// ```
    /// use axum::routing::get;
    /// use s2s_auth::Auth;
    ///
    /// let auth = Auth::from_yaml_str("
    /// s2s:
    ///   serviceId: catalog
    ///   routes:
    ///     - path: /healthz
    ///       unauthenticated: true
    /// ")?;
    /// let app: axum::Router = auth.router().serve("/healthz", get(|| async { "ok" })).into_router()?;
    /// # let _ = app;
    /// # Ok::<(), s2s_auth::ConfigError>(())
    /// ```
    pub fn serve(mut self, path: &str, method_router: MethodRouter<S>) -> Self {
        self.router = self.router.route(path, method_router);
        if !self.served.iter().any(|p| p == path) {
            self.served.push(path.to_owned());
        }
        self
    }

    fn declare(
        mut self,
        path: &str,
        methods: Vec<Method>,
        method_router: MethodRouter<S>,
        policy: RoutePolicy,
    ) -> Self {
        self = self.serve(path, method_router);
        self.specs.push(RouteSpec {
            pattern: path.to_owned(),
            methods,
            policy,
            origin: format!("router.route({path:?})"),
            builtin: false,
        });
        self
    }

    /// Serves `other`'s routes under `prefix` (axum's `Router::nest`), each with its policy.
    pub fn nest(mut self, prefix: &str, other: AuthRouter<S>) -> Self {
        let prefix = prefix.trim_end_matches('/');
        let full = |path: &str| {
            if path == "/" {
                prefix.to_owned()
            } else {
                format!("{prefix}{path}")
            }
        };
        self.router = self.router.nest(prefix, other.router);
        for mut spec in other.specs {
            spec.pattern = full(&spec.pattern);
            spec.origin = format!("router.route({:?})", spec.pattern);
            self.specs.push(spec);
        }
        self.served.extend(other.served.iter().map(|p| full(p)));
        self
    }

    /// Serves `other`'s routes beside these (axum's `Router::merge`), each with its policy.
    pub fn merge(mut self, other: AuthRouter<S>) -> Self {
        self.router = self.router.merge(other.router);
        self.specs.extend(other.specs);
        self.served.extend(other.served);
        self
    }

    /// Answers requests to paths no route serves (axum's `Router::fallback`). They are
    /// decided by the default policy, like any undeclared path.
    pub fn fallback<H, T>(mut self, handler: H) -> Self
    where
        H: Handler<T, S>,
        T: 'static,
    {
        self.router = self.router.fallback(handler);
        self
    }

    /// Checks every policy against the routes, binds them, mounts the published JWKS when
    /// this service issues or verifies plugin tokens, and applies the layer.
    ///
    /// Errors: a policy (builder or `s2s.routes`) whose path this router does not serve
    /// ([`ConfigRule::NoSuchRoute`], with the closest path served), or two policies for the
    /// same path and method ([`ConfigRule::DuplicateRoutePolicy`]).
    pub fn into_router(self) -> Result<Router<S>, ConfigError> {
        self.into_parts().map(|(router, _)| router)
    }

    /// Like [`into_router`](Self::into_router), and also returns the [`Auth`] with the
    /// router's policies bound (its [`access_table`](Auth::access_table) shows them).
    pub fn into_parts(self) -> Result<(Router<S>, Auth), ConfigError> {
        let pipeline = &self.auth.pipeline;
        let mut router = self.router;
        let mut served = self.served;
        let serves_jwks = pipeline
            .specs
            .iter()
            .any(|s| s.builtin && s.pattern == JWKS_PATH);
        if serves_jwks && !served.iter().any(|p| p == JWKS_PATH) {
            router = router.merge(self.auth.jwks_router());
            served.push(JWKS_PATH.to_owned());
        }
        if let Some(jit) = &pipeline.jit {
            let mut paths = jit.config.paths();
            paths.push(jit.config.revoke_pattern());
            if paths.iter().all(|p| !served.contains(p)) {
                router = router.merge(self.auth.jit_router());
                served.extend(paths);
            }
        }
        if let Some(accounts) = &pipeline.accounts {
            let paths: Vec<String> = accounts
                .config
                .routes()
                .into_iter()
                .map(|(p, _)| p)
                .collect();
            if paths.iter().all(|p| !served.contains(p)) {
                router = router.merge(self.auth.service_accounts_router());
                served.extend(paths);
            }
        }
        let mut specs = Vec::with_capacity(pipeline.specs.len() + self.specs.len());
        for spec in &pipeline.specs {
            if spec.builtin {
                specs.push(spec.clone());
                continue;
            }
            // `/entities/{id}` in the config is the served `/entities/{name}`: bind it under
            // the served spelling, so both land on one route of the registry.
            let Some(served_as) = served.iter().find(|p| shape(p) == shape(&spec.pattern)) else {
                return Err(ConfigError::new(
                    format!("{}.path", spec.origin),
                    ConfigRule::NoSuchRoute {
                        path: spec.pattern.clone(),
                        suggestion: closest(&spec.pattern, &served),
                    },
                ));
            };
            let mut spec = spec.clone();
            spec.pattern = served_as.clone();
            specs.push(spec);
        }
        specs.extend(self.specs);
        let bound = Auth {
            pipeline: Arc::new(pipeline.with_routes(specs, pipeline.registry.default)?),
        };
        Ok((router.layer(AuthLayer::new(bound.clone())), bound))
    }
}

/// A pattern with its parameter names erased: `/a/{id}` and `/a/{name}` are one route.
fn shape(pattern: &str) -> String {
    pattern
        .split('/')
        .map(|seg| match seg {
            s if s.starts_with("{*") => "{*}",
            s if s.starts_with('{') => "{}",
            s => s,
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The served path closest to `path`, if it is close enough to be a misspelling.
fn closest(path: &str, served: &[String]) -> Option<String> {
    let limit = (path.len() / 4).max(2);
    served
        .iter()
        .map(|p| (edit_distance(path, p), p))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, p)| p.clone())
}

/// Levenshtein distance, by bytes (paths are ASCII in practice; others just compare worse).
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = diagonal + usize::from(ca != cb);
            diagonal = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_ignore_parameter_names() {
        assert_eq!(shape("/a/{id}/b"), shape("/a/{name}/b"));
        assert_eq!(shape("/f/{*rest}"), "/f/{*}");
        assert_ne!(shape("/a/{id}"), shape("/a/{*id}"));
    }

    #[test]
    fn suggests_near_misses_only() {
        let served = vec!["/admin/tokens".to_owned(), "/entities".to_owned()];
        assert_eq!(
            closest("/admin/token", &served).as_deref(),
            Some("/admin/tokens")
        );
        assert_eq!(closest("/metrics", &served), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
