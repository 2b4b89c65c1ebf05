//! The `s2s` section: this service's id, route policies, user identity providers, the JWKS
//! cache, leeway, discovery and trusted actors. (`s2s.pluginTokens` is read with the key
//! store, in `keys`.)

use std::time::Duration;

use http::Method;

use super::external_access::{parse_algorithms, parse_required_claims};
use super::node::Node;
use crate::auth::Auth;
use crate::builder::AuthBuilder;
use crate::error::{ConfigError, ConfigRule};
use crate::external_jwks::UserProvider;
use crate::jwks::JwksCacheConfig;
use crate::plugin::StaticDiscovery;
use crate::policy::{DefaultPolicy, RoutePolicy, RouteSpec};
use crate::principal::CredentialKind;
use crate::restrictions::Action;

/// A builder for the service `s2s.serviceId`, with everything else in `s2s` but
/// `pluginTokens`.
pub(super) fn parse_s2s(s2s: &Node<'_>) -> Result<AuthBuilder, ConfigError> {
    s2s.only_keys(&[
        "serviceId",
        "defaultPolicy",
        "routes",
        "users",
        "jwks",
        "leewaySeconds",
        "verifiedCacheCapacity",
        "discovery",
        "trustedActors",
        "pluginTokens",
        "onBehalfOf",
        "serviceAccounts",
    ])?;
    let service_id = s2s.required("serviceId")?;
    let id = service_id.str()?;
    if !crate::service_id::is_valid_service_id(id) {
        return Err(service_id.err(ConfigRule::InvalidServiceId));
    }
    let mut builder = Auth::builder(id);
    if let Some(node) = s2s.get("defaultPolicy")? {
        builder = builder.default_policy(match node.str()? {
            "authenticated" => DefaultPolicy::Authenticated,
            "deny" => DefaultPolicy::Deny,
            _ => {
                return Err(node.err(ConfigRule::UnknownName {
                    what: "default policy",
                    expected: "`authenticated` or `deny`".into(),
                }));
            }
        });
    }
    if let Some(routes) = s2s.get("routes")? {
        for route in routes.list()? {
            builder.routes.push(parse_route(&route)?);
        }
    }
    if let Some(users) = s2s.get("users")? {
        for provider in users.list()? {
            builder = builder.user_provider(parse_user_provider(&provider)?);
        }
    }
    if let Some(jwks) = s2s.get("jwks")? {
        builder.jwks_config = parse_jwks_cache(&jwks)?;
    }
    if let Some(leeway) = s2s.get("leewaySeconds")? {
        builder.leeway_secs = leeway.whole_number()?;
    }
    if let Some(capacity) = s2s.get("verifiedCacheCapacity")? {
        // The range (0 to 10 million) is checked by `build`, under this same path.
        builder.verified_cache_capacity = capacity.whole_number()?;
    }
    if let Some(discovery) = s2s.get("discovery")? {
        let mut urls = Vec::new();
        for (id, url) in discovery.map()? {
            let path = discovery.key_path(id);
            if !crate::service_id::is_valid_service_id(id) {
                return Err(ConfigError::new(path, ConfigRule::InvalidServiceId));
            }
            let url = url
                .as_str()
                .filter(|u| u.starts_with("http://") || u.starts_with("https://"))
                .ok_or_else(|| ConfigError::new(&path, ConfigRule::NotHttpUrl))?;
            // A peer's base URL is where its signing keys come from: https, or loopback.
            crate::source_url::check(url, false).map_err(|rule| ConfigError::new(&path, rule))?;
            urls.push((id.clone(), url.to_owned()));
        }
        builder = builder.discovery(StaticDiscovery::new(urls));
    }
    if let Some(actors) = s2s.get("trustedActors")? {
        let mut ids = Vec::new();
        for actor in actors.list()? {
            let id = actor.str()?;
            if !crate::service_id::is_valid_service_id(id) {
                return Err(actor.err(ConfigRule::InvalidServiceId));
            }
            ids.push(id.to_owned());
        }
        builder = builder.trusted_actors(ids);
    }
    if let Some(obo) = s2s.get("onBehalfOf")? {
        obo.only_keys(&["justInTime"])?;
        if let Some(jit) = obo.get("justInTime")? {
            builder = builder.jit_tokens(parse_jit(&jit)?);
        }
    }
    if let Some(accounts) = s2s.get("serviceAccounts")? {
        builder = builder.service_accounts(parse_service_accounts(&accounts)?);
    }
    Ok(builder)
}

/// `s2s.serviceAccounts`: service accounts and their admin API (see the `service_account`
/// module). Ranges are checked by `build`, under the same paths; the store is
/// `backend.database` (read with the key store).
fn parse_service_accounts(
    node: &Node<'_>,
) -> Result<crate::service_account::ServiceAccounts, ConfigError> {
    node.only_keys(&[
        "admins",
        "path",
        "stalenessSeconds",
        "lastUsedIntervalSeconds",
    ])?;
    let mut admins = Vec::new();
    for admin in node.required("admins")?.list()? {
        admins.push(admin.str()?.to_owned());
    }
    let mut accounts = crate::service_account::ServiceAccounts::new(admins);
    accounts.origin = node.display_path();
    if let Some(path) = node.get("path")? {
        accounts = accounts.path(path.str()?);
    }
    if let Some(secs) = node.get("stalenessSeconds")? {
        accounts = accounts.staleness(Duration::from_secs(secs.whole_number()?));
    }
    if let Some(secs) = node.get("lastUsedIntervalSeconds")? {
        accounts = accounts.last_used_interval(Duration::from_secs(secs.whole_number()?));
    }
    Ok(accounts)
}

/// `s2s.onBehalfOf.justInTime`: just-in-time on-behalf-of tokens (see the `jit` module).
/// Ranges and keys are checked by `build`, under the same paths.
fn parse_jit(node: &Node<'_>) -> Result<crate::jit::JitTokens, ConfigError> {
    node.only_keys(&[
        "deploymentId",
        "defaultDurationSeconds",
        "maxDurationSeconds",
        "hmacKeys",
        "rolesKeys",
        "path",
        "openSearchPath",
        "revocationStalenessSeconds",
        "revocationAdmins",
        "trustedIssuers",
    ])?;
    let mut jit = crate::jit::JitTokens::new(node.required("deploymentId")?.str()?);
    jit.origin = node.display_path();
    let seconds = |key: &str, default: Duration| -> Result<Duration, ConfigError> {
        Ok(match node.get(key)? {
            Some(n) => Duration::from_secs(n.whole_number()?),
            None => default,
        })
    };
    // Without a default of its own, a cap below 300 s is also the default.
    let max = seconds("maxDurationSeconds", crate::jit::DEFAULT_MAX_DURATION)?;
    let default = seconds(
        "defaultDurationSeconds",
        crate::jit::DEFAULT_DURATION.min(max),
    )?;
    jit = jit.durations(default, max);
    for (list, hmac) in [("hmacKeys", true), ("rolesKeys", false)] {
        if let Some(keys) = node.get(list)? {
            for key in keys.list()? {
                key.only_keys(&["kid", "key"])?;
                let kid = key.required("kid")?.str()?;
                let secret = key.required("key")?.str()?;
                jit = if hmac {
                    jit.hmac_key(kid, secret)
                } else {
                    jit.encrypt_roles(kid, secret)
                };
            }
        }
    }
    if let Some(path) = node.get("path")? {
        jit = jit.path(path.str()?);
    }
    if let Some(flag) = node.get("openSearchPath")? {
        jit = jit.opensearch_path(flag.bool()?);
    }
    if let Some(secs) = node.get("revocationStalenessSeconds")? {
        jit = jit.revocation_staleness(Duration::from_secs(secs.whole_number()?));
    }
    if let Some(issuers) = node.get("trustedIssuers")? {
        let mut ids = Vec::new();
        for id in issuers.list()? {
            ids.push(id.str()?.to_owned());
        }
        jit = jit.trusted_issuers(ids);
    }
    if let Some(admins) = node.get("revocationAdmins")? {
        let mut users = Vec::new();
        for admin in admins.list()? {
            users.push(admin.str()?.to_owned());
        }
        jit = jit.revocation_admins(users);
    }
    Ok(jit)
}

fn parse_route(node: &Node<'_>) -> Result<RouteSpec, ConfigError> {
    node.only_keys(&[
        "path",
        "methods",
        "unauthenticated",
        "allow",
        "permission",
        "action",
        "sensitive",
        "allowStaticWrites",
    ])?;
    let pattern = node.required("path")?.str()?.to_owned();
    let mut methods = Vec::new();
    if let Some(list) = node.get("methods")? {
        for (name, path) in list.str_or_list()? {
            methods.push(parse_method(name).ok_or_else(|| {
                ConfigError::new(
                    path,
                    ConfigRule::UnknownName {
                        what: "method",
                        expected: "GET, HEAD, POST, PUT, PATCH, DELETE or OPTIONS".into(),
                    },
                )
            })?);
        }
    }
    let flag =
        |key: &str| -> Result<bool, ConfigError> { node.get(key)?.map_or(Ok(false), |n| n.bool()) };
    let mut policy = if flag("unauthenticated")? {
        RoutePolicy::unauthenticated()
    } else {
        RoutePolicy::authenticated()
    };
    if let Some(allow) = node.get("allow")? {
        let mut kinds = Vec::new();
        for item in allow.list()? {
            let name = item.str()?;
            kinds.push(
                CredentialKind::parse(name)
                    .filter(|k| *k != CredentialKind::None)
                    .ok_or_else(|| {
                        item.err(ConfigRule::UnknownName {
                            what: "credential kind",
                            expected:
                                "user, static, jwks, legacy, plugin, obo, service-account or custom"
                                    .into(),
                        })
                    })?,
            );
        }
        policy = policy.allow(kinds);
    }
    if let Some(p) = node.get("permission")? {
        policy = policy.permission(p.str()?);
    }
    if let Some(a) = node.get("action")? {
        policy = policy.action(parse_action(&a, a.str()?)?);
    }
    if flag("sensitive")? {
        policy = policy.sensitive();
    }
    policy = policy.allow_static_writes(flag("allowStaticWrites")?);
    Ok(RouteSpec {
        pattern,
        methods,
        policy,
        origin: node.path.clone(),
        builtin: false,
    })
}

fn parse_method(name: &str) -> Option<Method> {
    [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
        Method::OPTIONS,
    ]
    .into_iter()
    .find(|m| m.as_str() == name)
}

fn parse_action(node: &Node<'_>, name: &str) -> Result<Action, ConfigError> {
    Action::parse(name).ok_or_else(|| {
        ConfigError::new(
            node.path.clone(),
            ConfigRule::UnknownName {
                what: "action",
                expected: "create, read, update or delete".into(),
            },
        )
    })
}

fn parse_user_provider(node: &Node<'_>) -> Result<UserProvider, ConfigError> {
    node.only_keys(&[
        "type",
        "issuer",
        "jwksUrl",
        "audience",
        "algorithm",
        "subjectClaim",
        "namespace",
        "sharedNamespace",
        "requiredClaims",
        "dangerouslyAllowHttp",
    ])?;
    let issuer = node.required("issuer")?.str()?;
    let mut provider = match node.get("type")? {
        None => UserProvider::oidc(issuer),
        Some(t) => match t.str()? {
            "oidc" => UserProvider::oidc(issuer),
            "backstage" => UserProvider::backstage(issuer),
            _ => {
                return Err(t.err(ConfigRule::UnknownName {
                    what: "type",
                    expected: "oidc or backstage".into(),
                }));
            }
        },
    };
    provider.origin = node.path.clone();
    if let Some(u) = node.get("jwksUrl")? {
        provider = provider.jwks_url(u.str()?);
    }
    if let Some(a) = node.get("audience")? {
        provider = provider.audiences(a.str_or_list()?.into_iter().map(|(s, _)| s));
    }
    if let Some(a) = node.get("algorithm")? {
        provider = provider.algorithms(parse_algorithms(&a)?);
    }
    if let Some(c) = node.get("subjectClaim")? {
        provider = provider.subject_claim(c.str()?);
    }
    if let Some(n) = node.get("namespace")? {
        provider = provider.namespace(n.str()?);
    }
    if let Some(s) = node.get("sharedNamespace")?
        && s.bool()?
    {
        provider = provider.shared_namespace();
    }
    if let Some(r) = node.get("requiredClaims")? {
        for (claim, values) in parse_required_claims(&r)? {
            provider = provider.require_claim(claim, values);
        }
    }
    if let Some(d) = node.get("dangerouslyAllowHttp")?
        && d.bool()?
    {
        provider = provider.dangerously_allow_http();
    }
    Ok(provider)
}

fn parse_jwks_cache(node: &Node<'_>) -> Result<JwksCacheConfig, ConfigError> {
    node.only_keys(&[
        "refreshSeconds",
        "unknownKidCooldownSeconds",
        "maxStaleSeconds",
        "fetchTimeoutSeconds",
        "maxBodyBytes",
    ])?;
    let mut c = JwksCacheConfig::default();
    if let Some(n) = node.get("refreshSeconds")? {
        c.refresh_interval = Duration::from_secs(n.whole_number()?);
    }
    if let Some(n) = node.get("unknownKidCooldownSeconds")? {
        c.unknown_kid_cooldown = Duration::from_secs(n.whole_number()?);
    }
    if let Some(n) = node.get("maxStaleSeconds")? {
        c.max_stale = Duration::from_secs(n.whole_number()?);
    }
    if let Some(n) = node.get("fetchTimeoutSeconds")? {
        c.fetch_timeout = Duration::from_secs(n.whole_number()?);
    }
    if let Some(n) = node.get("maxBodyBytes")? {
        // Saturates: a value too big for this machine fails the builder's range check.
        c.max_body_bytes = usize::try_from(n.whole_number()?).unwrap_or(usize::MAX);
    }
    Ok(c)
}
