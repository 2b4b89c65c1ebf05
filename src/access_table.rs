//! The access table: which routes each kind of credential, and each configured caller, can
//! reach, and why not.
//!
//! Every cell is computed by the same function the layer uses on live requests, so the table
//! cannot disagree with what the service does.
//!
//! ```
//! use http::Method;
//! use s2s_auth::{Auth, RoutePolicy, StaticToken};
//!
//! let auth = Auth::builder("catalog")
//!     .static_token(StaticToken::new("ci-bot", "a-long-random-token-for-ci"))
//!     .route("/healthz", [Method::GET], RoutePolicy::unauthenticated())
//!     .route("/entities", [Method::POST], RoutePolicy::authenticated())
//!     .build()?;
//! let table = auth.access_table();
//! let markdown = table.to_markdown();
//! assert!(markdown.contains("| `/entities` | POST |"));
//! let json = table.to_json();
//! let post = json["rows"].as_array().into_iter().flatten()
//!     .find(|r| r["route"] == "/entities" && r["method"] == "POST")
//!     .ok_or("no POST /entities row")?;
//! assert_eq!(post["cells"]["static"]["status"], 403); // static tokens are read-only
//! // Methods a declared path does not list get its strictest policy, shown as their own row.
//! assert!(markdown.contains("| `/healthz` | other (write) |"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use http::Method;
use serde::Serialize;
use time::OffsetDateTime;

use crate::auth::Auth;
use crate::error::{RequestError, VerifyError};
use crate::pipeline::Pipeline;
use crate::policy::{Resolved, authorize};
use crate::principal::{CredentialKind, Principal, PrincipalType};

/// One cell: whether the column's caller gets through, and if not, with which status and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Cell {
    /// Whether the request would be let through.
    pub allowed: bool,
    /// 200 when allowed, else the refusal's status.
    pub status: u16,
    /// The stable reason code (`allowed`, `missing_credentials`, `read_only_credential`, …).
    pub reason: String,
    /// The refusal's message, empty when allowed.
    pub message: String,
}

/// One row: a route pattern and a method.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Row {
    /// The route pattern, or `<unlisted>` for the default policy.
    pub route: String,
    /// The method, or `* (read)` / `* (write)` for routes whose policy covers every method.
    pub method: String,
    /// One cell per column, in column order.
    pub cells: Vec<(String, Cell)>,
}

/// The table. Render it with [`AccessTable::to_markdown`] or [`AccessTable::to_json`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessTable {
    service_id: String,
    columns: Vec<String>,
    rows: Vec<Row>,
}

impl Auth {
    /// Which routes each credential kind and each configured caller can reach (see the
    /// [`access_table`](crate::access_table) module).
    pub fn access_table(&self) -> AccessTable {
        AccessTable::new(&self.pipeline)
    }
}

impl AccessTable {
    pub(crate) fn new(inner: &Pipeline) -> Self {
        // Columns: no credential, each credential kind this service has a verifier for, then
        // each configured caller with its own restrictions.
        let mut columns: Vec<(String, Option<Principal>)> =
            vec![(CredentialKind::None.as_str().to_owned(), None)];
        if !inner.verifiers.static_tokens.is_empty() {
            columns.push((
                CredentialKind::Static.as_str().to_owned(),
                Some(
                    Principal::new(PrincipalType::Service, "external:*", CredentialKind::Static)
                        .with_read_only(true),
                ),
            ));
        }
        let verifiers = &inner.verifiers;
        let has = |kind: CredentialKind| verifiers.jwks.iter().any(|v| v.credential() == kind);
        if has(CredentialKind::User) {
            columns.push((
                CredentialKind::User.as_str().to_owned(),
                Some(Principal::new(
                    PrincipalType::User,
                    "user:*",
                    CredentialKind::User,
                )),
            ));
        }
        if has(CredentialKind::Jwks) {
            columns.push((
                CredentialKind::Jwks.as_str().to_owned(),
                Some(Principal::new(
                    PrincipalType::Service,
                    "external:*",
                    CredentialKind::Jwks,
                )),
            ));
        }
        if !verifiers.legacy.is_empty() {
            columns.push((
                CredentialKind::Legacy.as_str().to_owned(),
                Some(Principal::new(
                    PrincipalType::Service,
                    "external:*",
                    CredentialKind::Legacy,
                )),
            ));
        }
        if let Some(plugin) = &verifiers.plugin {
            columns.push((
                CredentialKind::Plugin.as_str().to_owned(),
                Some(Principal::new(
                    PrincipalType::Service,
                    "plugin:*",
                    CredentialKind::Plugin,
                )),
            ));
            // On-behalf-of tokens verify where a Backstage identity provider can check the
            // user (`obo`) or some service is trusted to name one (`act`).
            if verifiers.jwks.iter().any(|v| v.is_backstage_user())
                || !plugin.trusted_actors.is_empty()
            {
                columns.push((
                    CredentialKind::Obo.as_str().to_owned(),
                    Some(
                        Principal::new(PrincipalType::User, "user:*", CredentialKind::Obo)
                            .with_actor("plugin:*"),
                    ),
                ));
            }
        }
        // Restricted JWT callers get a column of their own, named after their config entry.
        for v in &verifiers.jwks {
            if let Some(r) = &v.restrictions {
                let p = Principal::new(PrincipalType::Service, "external:*", v.credential())
                    .with_restrictions(r.clone());
                columns.push((format!("{} ({})", v.origin, v.credential()), Some(p)));
            }
        }
        if verifiers.custom.iter().any(|c| c.0.restrictions.is_none()) {
            columns.push((
                CredentialKind::Custom.as_str().to_owned(),
                Some(Principal::new(
                    PrincipalType::Service,
                    "external:*",
                    CredentialKind::Custom,
                )),
            ));
        }
        for c in verifiers
            .custom
            .iter()
            .filter(|c| c.0.restrictions.is_some())
        {
            let mut p =
                Principal::new(PrincipalType::Service, "external:*", CredentialKind::Custom);
            if let Some(r) = &c.0.restrictions {
                p = p.with_restrictions(r.clone());
            }
            columns.push((format!("{} (custom)", c.0.origin), Some(p)));
        }
        for (origin, r) in verifiers.legacy.restricted() {
            let p = Principal::new(PrincipalType::Service, "external:*", CredentialKind::Legacy)
                .with_restrictions(r.clone());
            columns.push((format!("{origin} (legacy)"), Some(p)));
        }
        // Service accounts: the kind, unrestricted (what the routes' policies say of it), then
        // each enabled account of this replica's copy with its permissions.
        if let Some(accounts) = &inner.accounts {
            columns.push((
                CredentialKind::ServiceAccount.as_str().to_owned(),
                Some(Principal::new(
                    PrincipalType::Service,
                    "service-account:*",
                    CredentialKind::ServiceAccount,
                )),
            ));
            for (name, permissions) in accounts.registry.enabled_accounts() {
                let subject = format!("service-account:{name}");
                let p = Principal::new(
                    PrincipalType::Service,
                    subject.clone(),
                    CredentialKind::ServiceAccount,
                )
                .with_restrictions(permissions);
                columns.push((subject, Some(p)));
            }
        }
        for token in inner.static_callers.iter() {
            let principal = token.principal();
            let mut name = principal.subject().to_owned();
            let mut n = 2;
            while columns.iter().any(|(c, _)| *c == name) {
                name = format!("{} (#{n})", principal.subject());
                n += 1;
            }
            columns.push((name, Some(principal)));
        }

        // Expiry is judged once, at the time the table is made: an expired caller's column must
        // say 401, as the layer does, not what it could reach if it were still valid.
        let now = OffsetDateTime::now_utc();
        let mut rows = Vec::new();
        let mut push =
            |route: &str, method_label: String, method: Method, resolved: Resolved<'_>| {
                let cells = columns
                    .iter()
                    .map(|(name, principal)| {
                        let cell = evaluate(
                            principal.as_ref(),
                            &method,
                            &resolved,
                            &inner.service_id,
                            now,
                        );
                        (name.clone(), cell)
                    })
                    .collect();
                rows.push(Row {
                    route: route.to_owned(),
                    method: method_label,
                    cells,
                });
            };
        for entry in &inner.registry.routes {
            for (method, policy) in &entry.by_method {
                let resolved = Resolved::Route {
                    pattern: &entry.pattern,
                    policy,
                };
                push(&entry.pattern, method.to_string(), method.clone(), resolved);
            }
            if let Some(policy) = &entry.any_method {
                for (label, method) in any_method_rows() {
                    let resolved = Resolved::Route {
                        pattern: &entry.pattern,
                        policy,
                    };
                    push(&entry.pattern, label.to_owned(), method, resolved);
                }
            } else {
                // The methods the route's policies do not name get the strictest of them
                // (or are refused): shown, so no method of a declared path goes unseen.
                for (label, method) in unlisted_method_rows() {
                    let resolved = inner.registry.unlisted_method(entry);
                    push(&entry.pattern, label.to_owned(), method, resolved);
                }
            }
        }
        for (label, method) in any_method_rows() {
            push(
                crate::policy::UNLISTED,
                label.to_owned(),
                method,
                Resolved::Default(inner.registry.default),
            );
        }
        Self {
            service_id: inner.service_id.clone(),
            columns: columns.into_iter().map(|(c, _)| c).collect(),
            rows,
        }
    }

    /// The column names: `none`, the credential kinds, then one per configured caller.
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// The rows: each listed route and method, then the default policy.
    pub fn rows(&self) -> &[Row] {
        &self.rows
    }

    /// A Markdown table; each cell is `allow` or `<status> <short reason>`.
    pub fn to_markdown(&self) -> String {
        let mut out = format!("Access table for service `{}`\n\n", self.service_id);
        out.push_str("| route | method |");
        for c in &self.columns {
            out.push_str(&format!(" {c} |"));
        }
        out.push_str("\n|---|---|");
        for _ in &self.columns {
            out.push_str("---|");
        }
        out.push('\n');
        for row in &self.rows {
            out.push_str(&format!("| `{}` | {} |", row.route, row.method));
            for (_, cell) in &row.cells {
                if cell.allowed {
                    out.push_str(" allow |");
                } else {
                    out.push_str(&format!(" {} {} |", cell.status, short(&cell.reason)));
                }
            }
            out.push('\n');
        }
        out
    }

    /// The table as JSON: `{"serviceId", "columns": [..], "rows": [{"route", "method",
    /// "cells": {"<column>": {"allowed", "status", "reason", "message"}}}]}`.
    pub fn to_json(&self) -> serde_json::Value {
        let rows: Vec<_> = self
            .rows
            .iter()
            .map(|row| {
                let cells: serde_json::Map<_, _> = row
                    .cells
                    .iter()
                    .map(|(c, cell)| (c.clone(), serde_json::json!(cell)))
                    .collect();
                serde_json::json!({ "route": row.route, "method": row.method, "cells": cells })
            })
            .collect();
        serde_json::json!({
            "serviceId": self.service_id,
            "columns": self.columns,
            "rows": rows,
        })
    }
}

fn any_method_rows() -> [(&'static str, Method); 2] {
    [("* (read)", Method::GET), ("* (write)", Method::POST)]
}

/// The methods no policy of a route names, as one reading (`OPTIONS`) and one writing
/// (`PATCH`) stand-in: they are evaluated with the route's strictest policy whatever they are.
fn unlisted_method_rows() -> [(&'static str, Method); 2] {
    [
        ("other (read)", Method::OPTIONS),
        ("other (write)", Method::PATCH),
    ]
}

fn evaluate(
    principal: Option<&Principal>,
    method: &Method,
    resolved: &Resolved<'_>,
    service_id: &str,
    now: OffsetDateTime,
) -> Cell {
    let outcome = match principal {
        _ if resolved.is_unauthenticated() => Ok(()),
        None => Err(RequestError::MissingCredentials),
        Some(p) if p.expires_at().is_some_and(|at| now >= at) => {
            Err(RequestError::InvalidToken(VerifyError::Expired))
        }
        Some(p) => authorize(p, method, resolved, service_id).map_err(RequestError::from),
    };
    match outcome {
        Ok(()) => Cell {
            allowed: true,
            status: 200,
            reason: "allowed".into(),
            message: String::new(),
        },
        Err(e) => Cell {
            allowed: false,
            status: e.status().as_u16(),
            reason: e.code().into(),
            message: e.to_string(),
        },
    }
}

fn short(reason: &str) -> &str {
    match reason {
        "missing_credentials" => "needs credentials",
        "default_deny" => "deny (default)",
        "credential_kind_not_allowed" => "kind not allowed",
        "sensitive_route" => "sensitive",
        "read_only_credential" => "read-only",
        "restricted_plugin" => "other plugin",
        "restricted_permission" => "permission restricted",
        "restricted_action" => "action restricted",
        "method_not_declared" => "method not declared",
        other => other,
    }
}
