//! [`Auth`]: the configured authentication of one service, as a cheap handle.
//!
//! What it does is spread by concept, each in its own module: the layer
//! ([`Auth::layer`], module `layer`), the router wrapper with policies beside the routes
//! ([`Auth::router`], module `router`), issuing tokens ([`Auth::plugin_token`],
//! [`Auth::on_behalf_of_token`], module `issue`), the published JWKS ([`Auth::jwks_router`],
//! module `publish`), the access table ([`Auth::access_table`]) and the outbound client
//! ([`Auth::client`]). The decision itself is made in the `pipeline` module.
//!
//! ```
//! use axum::routing::get;
//! use s2s_auth::{Auth, Principal, RoutePolicy, StaticToken};
//!
//! let auth = Auth::builder("catalog")
//!     .static_token(StaticToken::new("ci-bot", "a-long-random-token-for-ci"))
//!     .build()?;
//!
//! let app: axum::Router = auth
//!     .router()
//!     .route("/entities", get(|p: Principal| async move { p.subject().to_owned() }), RoutePolicy::authenticated())
//!     .route("/healthz", get(|| async { "ok" }), RoutePolicy::unauthenticated())
//!     .into_router()?;
//! # let _ = app;
//! # Ok::<(), s2s_auth::ConfigError>(())
//! ```

use std::fmt;
use std::sync::Arc;

use http::Method;

use crate::pipeline::Pipeline;
use crate::policy::RoutePolicy;

/// The configured authentication of one service. Cheap to clone (one `Arc`).
///
/// Build it with [`Auth::builder`] or from YAML with
/// [`AuthBuilder::from_yaml_str`](crate::AuthBuilder::from_yaml_str), then either declare
/// routes with their policies on [`Auth::router`], or wrap an existing router in
/// [`Auth::layer`].
#[derive(Clone)]
pub struct Auth {
    pub(crate) pipeline: Arc<Pipeline>,
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = &*self.pipeline;
        f.debug_struct("Auth")
            .field("service_id", &p.service_id)
            .field("static_tokens", &p.static_callers.len())
            .field("routes", &p.registry.routes.len())
            .field("default_policy", &p.registry.default)
            .field("audit_sinks", &p.auditor.sink_count())
            .finish()
    }
}

impl Auth {
    /// This service's id.
    pub fn service_id(&self) -> &str {
        &self.pipeline.service_id
    }

    /// Every declared route: its pattern, its method (`None` for the policy that covers the
    /// methods not listed separately) and its policy, in declaration order.
    ///
    /// ```
    /// use http::Method;
    /// use s2s_auth::{Auth, RoutePolicy};
    ///
    /// let auth = Auth::builder("catalog")
    ///     .route("/healthz", [Method::GET], RoutePolicy::unauthenticated())
    ///     .build()?;
    /// let routes = auth.routes();
    /// assert_eq!(routes[0].0, "/healthz");
    /// assert_eq!(routes[0].1, Some(&Method::GET));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn routes(&self) -> Vec<(&str, Option<&Method>, &RoutePolicy)> {
        self.routes_declared()
    }

    /// The paths this crate serves itself when configured (the published JWKS, the
    /// just-in-time issue and revocation endpoints): [`Auth::router`](crate::Auth::router) mounts them, so an
    /// application serving every path of [`routes`](Self::routes) leaves these out.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use s2s_auth::{Auth, PluginTokens};
    /// use s2s_auth::jit::JitTokens;
    /// use s2s_auth::store::MemoryStore;
    ///
    /// let auth = Auth::builder("catalog")
    ///     .plugin_tokens(PluginTokens::new(Arc::new(MemoryStore::default())))
    ///     .jit_tokens(JitTokens::new("acme-prod"))
    ///     .build()?;
    /// assert_eq!(
    ///     auth.builtin_paths(),
    ///     [
    ///         "/.backstage/auth/v1/jwks.json",
    ///         "/.s2s/auth/v1/obo/token/{jti}",
    ///         "/.s2s/auth/v1/obo/token",
    ///     ]
    /// );
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn builtin_paths(&self) -> Vec<&str> {
        let mut paths: Vec<&str> = Vec::new();
        for spec in self.pipeline.specs.iter().filter(|s| s.builtin) {
            if !paths.contains(&spec.pattern.as_str()) {
                paths.push(&spec.pattern);
            }
        }
        paths
    }

    /// The service-account operations, when service accounts are configured
    /// ([`AuthBuilder::service_accounts`](crate::AuthBuilder::service_accounts)); see the
    /// [`service_account`](crate::service_account) module.
    ///
    /// ```
    /// use s2s_auth::Auth;
    /// use s2s_auth::service_account::ServiceAccounts;
    ///
    /// let auth = Auth::builder("catalog")
    ///     .service_accounts(ServiceAccounts::new(["user:default/ops-lead"]))
    ///     .build()?;
    /// assert!(auth.service_accounts().is_some());
    /// assert!(Auth::builder("catalog").build()?.service_accounts().is_none());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn service_accounts(&self) -> Option<crate::service_account::AccountAdmin> {
        self.pipeline.accounts.clone()
    }

    /// The service-account admin API (see the `service_account` module for its routes),
    /// empty when service accounts are not configured. Mount it behind
    /// [`layer`](Self::layer): its routes are registered as sensitive and users-only, and
    /// each also requires an admin. [`Auth::router`] mounts it by itself.
    ///
    /// ```
    /// use s2s_auth::Auth;
    /// use s2s_auth::service_account::ServiceAccounts;
    ///
    /// let auth = Auth::builder("catalog")
    ///     .service_accounts(ServiceAccounts::new(["group:default/platform"]))
    ///     .build()?;
    /// let app: axum::Router = axum::Router::new()
    ///     .merge(auth.service_accounts_router())
    ///     .layer(auth.layer());
    /// # let _ = app;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn service_accounts_router<S: Clone + Send + Sync + 'static>(&self) -> axum::Router<S> {
        match &self.pipeline.accounts {
            Some(admin) => crate::service_account::router(admin),
            None => axum::Router::new(),
        }
    }

    fn routes_declared(&self) -> Vec<(&str, Option<&Method>, &RoutePolicy)> {
        let mut out = Vec::new();
        for entry in &self.pipeline.registry.routes {
            for (method, policy) in &entry.by_method {
                out.push((&*entry.pattern, Some(method), policy));
            }
            if let Some(policy) = &entry.any_method {
                out.push((&*entry.pattern, None, policy));
            }
        }
        out
    }
}
