//! `backend.auth`: the `externalAccess` entries (`static`, `jwks`, `legacy`) with their
//! `accessRestrictions`, and the deprecated `keys`.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::node::Node;
use crate::builder::AuthBuilder;
use crate::custom::PendingCustom;
use crate::error::{ConfigError, ConfigRule};
use crate::external_jwks::JwksAccess;
use crate::legacy::LegacySecret;
use crate::restrictions::{AccessRestriction, AccessRestrictions, Action, RestrictionError};
use crate::secret::SecretString;
use crate::static_token::StaticToken;
use jsonwebtoken::Algorithm;

/// The subject of callers holding a `backend.auth.keys` secret (Backstage's name for them).
pub const LEGACY_KEYS_SUBJECT: &str = "backstage-plugins";

/// `backend.auth`: its other keys are Backstage's, ignored with a warning.
pub(super) fn parse_backend_auth(
    auth: &Node<'_>,
    mut builder: AuthBuilder,
) -> Result<AuthBuilder, ConfigError> {
    for key in auth.map()?.keys() {
        if !["externalAccess", "keys", "pluginKeyStore"].contains(&key.as_str()) {
            tracing::warn!(
                target: "s2s_auth::config",
                key = %auth.key_path(key),
                "configuration key is not used by s2s-auth and is ignored"
            );
        }
    }
    if let Some(list) = auth.get("externalAccess")? {
        for entry in list.list()? {
            builder = parse_access_entry(&entry, builder)?;
        }
    }
    if let Some(keys) = auth.get("keys")? {
        tracing::warn!(
            target: "s2s_auth::config",
            "backend.auth.keys is deprecated (as in Backstage): use externalAccess entries of type: legacy"
        );
        for key in keys.list()? {
            key.only_keys(&["secret"])?;
            let secret = key.required("secret")?;
            let mut legacy =
                LegacySecret::new(SecretString::new(secret.str()?), LEGACY_KEYS_SUBJECT);
            legacy.origin = key.path.clone();
            // Paths for `keys[i]` entries point at `secret`, not at `options.secret`.
            legacy.options_prefix = false;
            builder = builder.legacy_secret(legacy);
        }
    }
    Ok(builder)
}

/// One `externalAccess` entry, added to `builder`: the one place that knows the entry types.
fn parse_access_entry(
    entry: &Node<'_>,
    mut builder: AuthBuilder,
) -> Result<AuthBuilder, ConfigError> {
    entry.only_keys(&["type", "options", "accessRestrictions"])?;
    let kind = entry.required("type")?;
    let restrictions = match entry.get("accessRestrictions")? {
        Some(list) => Some(parse_restrictions(&list)?),
        None => None,
    };
    match kind.str()? {
        "static" => Ok(builder.static_token(parse_static(entry, restrictions)?)),
        "jwks" => Ok(builder.jwks_access(parse_jwks(entry, restrictions)?)),
        "legacy" => Ok(builder.legacy_secret(parse_legacy(entry, restrictions)?)),
        // Any other type is a custom one (crate::custom), resolved when the builder builds:
        // types may be registered after the file is read. Unregistered, it is refused there,
        // at this entry's `type`.
        custom => {
            let options = entry
                .get("options")?
                .map_or_else(|| serde_json::json!({}), |o| o.value.clone());
            builder.pending_custom.push(PendingCustom {
                origin: entry.path.clone(),
                type_name: custom.to_owned(),
                options,
                restrictions,
            });
            Ok(builder)
        }
    }
}

fn parse_static(
    entry: &Node<'_>,
    restrictions: Option<AccessRestrictions>,
) -> Result<StaticToken, ConfigError> {
    let options = entry.required("options")?;
    options.only_keys(&[
        "token",
        "tokenSha256",
        "subject",
        "expiresAt",
        "allowWrites",
    ])?;
    let subject = options.required("subject")?.str()?;
    let mut token = match (options.get("token")?, options.get("tokenSha256")?) {
        (Some(t), None) => StaticToken::new(subject, SecretString::new(t.str()?)),
        (None, Some(h)) => StaticToken::from_sha256_hex(subject, h.str()?),
        (Some(_), Some(_)) => {
            return Err(options.err(ConfigRule::Exclusive("token or tokenSha256")));
        }
        (None, None) => {
            return Err(ConfigError::new(
                options.key_path("token"),
                ConfigRule::Required,
            ));
        }
    };
    token.origin = entry.path.clone();
    if let Some(at) = options.get("expiresAt")? {
        let when = OffsetDateTime::parse(at.str()?, &Rfc3339).map_err(|_| {
            at.err(ConfigRule::Expected(
                "an RFC 3339 time, like 2027-01-31T00:00:00Z",
            ))
        })?;
        token = token.expires_at(when);
    }
    if let Some(w) = options.get("allowWrites")? {
        token = token.allow_writes(w.bool()?);
    }
    if let Some(r) = restrictions {
        token = token.restrict(r);
    }
    Ok(token)
}

fn parse_jwks(
    entry: &Node<'_>,
    restrictions: Option<AccessRestrictions>,
) -> Result<JwksAccess, ConfigError> {
    let options = entry.required("options")?;
    options.only_keys(&[
        "url",
        "issuer",
        "algorithm",
        "audience",
        "subjectPrefix",
        "requiredClaims",
        "dangerouslyAllowMissingIssuerOrAudience",
        "dangerouslyAllowHttp",
    ])?;
    let mut access = JwksAccess::new(options.required("url")?.str()?);
    access.origin = entry.path.clone();
    if let Some(i) = options.get("issuer")? {
        access = access.issuers(i.str_or_list()?.into_iter().map(|(s, _)| s));
    }
    if let Some(a) = options.get("audience")? {
        access = access.audiences(a.str_or_list()?.into_iter().map(|(s, _)| s));
    }
    if let Some(a) = options.get("algorithm")? {
        access = access.algorithms(parse_algorithms(&a)?);
    }
    if let Some(p) = options.get("subjectPrefix")? {
        // Its rules are the builder's validator's, the same as for `subject_prefix` in Rust.
        access = access.subject_prefix(p.str()?);
    }
    if let Some(r) = options.get("requiredClaims")? {
        for (claim, values) in parse_required_claims(&r)? {
            access = access.require_claim(claim, values);
        }
    }
    if let Some(d) = options.get("dangerouslyAllowMissingIssuerOrAudience")?
        && d.bool()?
    {
        access = access.dangerously_allow_missing_issuer_or_audience();
    }
    if let Some(d) = options.get("dangerouslyAllowHttp")?
        && d.bool()?
    {
        access = access.dangerously_allow_http();
    }
    if let Some(r) = restrictions {
        access = access.restrict(r);
    }
    Ok(access)
}

fn parse_legacy(
    entry: &Node<'_>,
    restrictions: Option<AccessRestrictions>,
) -> Result<LegacySecret, ConfigError> {
    let options = entry.required("options")?;
    options.only_keys(&["secret", "subject"])?;
    let secret = options.required("secret")?.str()?;
    let subject = options.required("subject")?.str()?;
    let mut legacy = LegacySecret::new(SecretString::new(secret), subject);
    legacy.origin = entry.path.clone();
    if let Some(r) = restrictions {
        legacy = legacy.restrict(r);
    }
    Ok(legacy)
}

/// `requiredClaims: { <claim>: <value or list of values> }`. The values are checked by the
/// builder's validator (strings, numbers or booleans; a list not empty).
pub(super) fn parse_required_claims(
    node: &Node<'_>,
) -> Result<Vec<(String, Vec<serde_json::Value>)>, ConfigError> {
    Ok(node
        .map()?
        .iter()
        .map(|(claim, value)| {
            let values = match value {
                serde_json::Value::Array(items) => items.clone(),
                other => vec![other.clone()],
            };
            (claim.clone(), values)
        })
        .collect())
}

pub(super) fn parse_algorithms(node: &Node<'_>) -> Result<Vec<Algorithm>, ConfigError> {
    node.str_or_list()?
        .into_iter()
        .map(|(name, path)| {
            name.parse::<Algorithm>().map_err(|_| {
                ConfigError::new(
                    path,
                    ConfigRule::UnknownName {
                        what: "algorithm",
                        expected: "RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384 or EdDSA"
                            .into(),
                    },
                )
            })
        })
        .collect()
}

fn parse_restrictions(list: &Node<'_>) -> Result<AccessRestrictions, ConfigError> {
    let items = list.list()?;
    let mut restrictions = Vec::new();
    for item in &items {
        item.only_keys(&["plugin", "permission", "permissionAttribute"])?;
        let mut r = AccessRestriction::plugin(item.required("plugin")?.str()?);
        if let Some(p) = item.get("permission")? {
            r = r.permissions(p.str_or_list()?.into_iter().map(|(s, _)| s));
        }
        if let Some(attr) = item.get("permissionAttribute")? {
            attr.only_keys(&["action"])?;
            let action = attr.required("action")?;
            let mut actions = Vec::new();
            for (name, path) in action.str_or_list()? {
                actions.push(Action::parse(name).ok_or_else(|| {
                    ConfigError::new(
                        path,
                        ConfigRule::UnknownName {
                            what: "action",
                            expected: "create, read, update or delete".into(),
                        },
                    )
                })?);
            }
            r = r.actions(actions);
        }
        restrictions.push(r);
    }
    AccessRestrictions::new(restrictions).map_err(|e| {
        let at = |i: usize| format!("{}[{i}].plugin", list.path);
        let find = |p: &str| {
            items
                .iter()
                .enumerate()
                .filter(|(_, n)| {
                    n.get("plugin")
                        .ok()
                        .flatten()
                        .and_then(|n| n.value.as_str())
                        == Some(p)
                })
                .map(|(i, _)| i)
                .next_back()
                .unwrap_or(0)
        };
        match &e {
            RestrictionError::DuplicatePlugin(p) | RestrictionError::InvalidPlugin(p) => {
                ConfigError::new(at(find(p)), ConfigRule::Restriction(e))
            }
            RestrictionError::EmptyList(p) => ConfigError::new(
                format!("{}[{}]", list.path, find(p)),
                ConfigRule::Restriction(e),
            ),
            _ => ConfigError::new(list.path.clone(), ConfigRule::Restriction(e)),
        }
    })
}
