//! The admin API: JSON over [`AccountAdmin`], mounted by
//! [`Auth::service_accounts_router`](crate::Auth::service_accounts_router) (and by
//! [`Auth::router`](crate::Auth::router) on its own). Every route is registered as
//! sensitive and users-only, so the layer refuses every token a machine holds (403) before
//! a handler runs; the handler then requires an admin.
//!
//! | method and path (under `/.s2s/auth/v1/service-accounts`) | does | answers |
//! |---|---|---|
//! | `GET /` (`?enabled=true\|false`) | lists accounts | 200 `[account]` |
//! | `POST /` `{name, description?, permissions, enabled?}` | creates one | 201 account |
//! | `GET /{name}` | one account | 200 account |
//! | `PATCH /{name}` `{description?, permissions?}` | changes it | 200 account |
//! | `DELETE /{name}` | deletes it and its tokens | 204 |
//! | `POST /{name}/enable`, `POST /{name}/disable` | switches it on or off | 200 account |
//! | `GET /{name}/tokens` | lists its tokens, never the secret | 200 `[token]` |
//! | `POST /{name}/tokens` `{name, expiresInSeconds?, permissions?}` | creates a token | 201 `{token, ...}` (`Cache-Control: no-store`) |
//! | `DELETE /{name}/tokens/{id}` | revokes one | 204 |
//!
//! Refusals use Backstage's error body: 400 for a malformed body, an unknown field, a
//! `password` or `hash` field (accounts have none), a bad name or permissions that exceed the
//! account's; 403 for a caller who is not an admin; 404 for no such account or token; 409
//! for a name taken or a disabled account; 413 for a body over 16 KiB; 503 when the store
//! does not answer.

use axum::Router;
use axum::body::Body;
use axum::extract::Path;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, Request, StatusCode, header};
use serde::Serialize;
use serde_json::{Map, Value};
use time::OffsetDateTime;

use super::admin::{AccountAdmin, AccountUpdate, NewAccount, NewToken};
use super::{MAX_BODY_BYTES, MAX_TOKEN_LIFETIME};
use crate::error::AccountError;
use crate::principal::Principal;
use crate::response::Refusals;
use crate::restrictions::AccessRestrictions;
use crate::store::ServiceAccount;

/// An account as the API shows it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AccountView<'a> {
    name: &'a str,
    description: &'a str,
    permissions: &'a AccessRestrictions,
    enabled: bool,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    updated_at: OffsetDateTime,
}

fn view(a: &ServiceAccount) -> AccountView<'_> {
    let at = |s: i64| OffsetDateTime::from_unix_timestamp(s).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    AccountView {
        name: &a.name,
        description: &a.description,
        permissions: &a.permissions,
        enabled: a.enabled,
        created_at: at(a.created_at),
        updated_at: at(a.updated_at),
    }
}

/// The admin API's router for `admin`, under its configured path.
pub(crate) fn router<S: Clone + Send + Sync + 'static>(admin: &AccountAdmin) -> Router<S> {
    use axum::routing::{delete, get, post};
    let base = admin.config.path.clone();
    let a = admin.clone();
    let list_or_create = get({
        let a = a.clone();
        move |request: Request<Body>| {
            let a = a.clone();
            async move { list(&a, request).await }
        }
    })
    .post({
        let a = a.clone();
        move |request: Request<Body>| {
            let a = a.clone();
            async move { create(&a, request).await }
        }
    });
    let one = get({
        let a = a.clone();
        move |Path(name): Path<String>, request: Request<Body>| {
            let a = a.clone();
            async move {
                let answer = Refusals::of(&request);
                let by = principal(&request);
                respond(&answer, StatusCode::OK, async {
                    let account = a.account(&by?, &name).await?;
                    Ok(json(&view(&account)))
                })
                .await
            }
        }
    })
    .patch({
        let a = a.clone();
        move |Path(name): Path<String>, request: Request<Body>| {
            let a = a.clone();
            async move { update(&a, &name, request).await }
        }
    })
    .delete({
        let a = a.clone();
        move |Path(name): Path<String>, request: Request<Body>| {
            let a = a.clone();
            async move {
                let answer = Refusals::of(&request);
                let by = principal(&request);
                respond(&answer, StatusCode::NO_CONTENT, async {
                    a.delete_account(&by?, &name).await?;
                    Ok(Value::Null)
                })
                .await
            }
        }
    });
    let switch = |enabled: bool| {
        let a = a.clone();
        post(move |Path(name): Path<String>, request: Request<Body>| {
            let a = a.clone();
            async move {
                let answer = Refusals::of(&request);
                let by = principal(&request);
                respond(&answer, StatusCode::OK, async {
                    let account = a.set_enabled(&by?, &name, enabled).await?;
                    Ok(json(&view(&account)))
                })
                .await
            }
        })
    };
    let tokens = get({
        let a = a.clone();
        move |Path(name): Path<String>, request: Request<Body>| {
            let a = a.clone();
            async move {
                let answer = Refusals::of(&request);
                let by = principal(&request);
                respond(&answer, StatusCode::OK, async {
                    Ok(json(&a.tokens(&by?, &name).await?))
                })
                .await
            }
        }
    })
    .post({
        let a = a.clone();
        move |Path(name): Path<String>, request: Request<Body>| {
            let a = a.clone();
            async move { create_token(&a, &name, request).await }
        }
    });
    let revoke = delete({
        let a = a.clone();
        move |Path((name, id)): Path<(String, String)>, request: Request<Body>| {
            let a = a.clone();
            async move {
                let answer = Refusals::of(&request);
                let by = principal(&request);
                respond(&answer, StatusCode::NO_CONTENT, async {
                    a.revoke_token(&by?, &name, &id).await?;
                    Ok(Value::Null)
                })
                .await
            }
        }
    });
    Router::new()
        .route(&base, list_or_create)
        .route(&format!("{base}/{{name}}"), one)
        .route(&format!("{base}/{{name}}/enable"), switch(true))
        .route(&format!("{base}/{{name}}/disable"), switch(false))
        .route(&format!("{base}/{{name}}/tokens"), tokens)
        .route(&format!("{base}/{{name}}/tokens/{{id}}"), revoke)
}

/// The principal the layer verified; none means the layer is missing (401).
fn principal(request: &Request<Body>) -> Result<Principal, AccountError> {
    request
        .extensions()
        .get::<Principal>()
        .cloned()
        .ok_or(AccountError::NotAUser)
}

fn json<T: Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

/// Runs an operation and answers with its JSON (or nothing, for 204) or its refusal.
async fn respond(
    answer: &Refusals,
    status: StatusCode,
    work: impl Future<Output = Result<Value, AccountError>>,
) -> Response {
    match work.await {
        Ok(_) if status == StatusCode::NO_CONTENT => StatusCode::NO_CONTENT.into_response(),
        Ok(body) => (status, axum::Json(body)).into_response(),
        Err(e) => refusal(answer, &e),
    }
}

fn refusal(answer: &Refusals, e: &AccountError) -> Response {
    let status = e.status();
    let name = match status {
        StatusCode::BAD_REQUEST => "InputError",
        StatusCode::FORBIDDEN => "NotAllowedError",
        StatusCode::NOT_FOUND => "NotFoundError",
        StatusCode::CONFLICT => "ConflictError",
        _ => {
            // The store's message may name the database: logged, not answered.
            tracing::warn!(target: "s2s_auth::service_account", error = %e, "service-account operation failed");
            return answer.unavailable("the service-account store is unavailable; retry later");
        }
    };
    answer.refuse(status, name, &e.to_string())
}

async fn list(admin: &AccountAdmin, request: Request<Body>) -> Response {
    let answer = Refusals::of(&request);
    let by = principal(&request);
    let enabled = parse_enabled(request.uri().query());
    respond(&answer, StatusCode::OK, async {
        let accounts = admin.accounts(&by?, enabled?).await?;
        Ok(Value::Array(
            accounts.iter().map(|a| json(&view(a))).collect(),
        ))
    })
    .await
}

/// `?enabled=true|false`, or nothing; anything else is refused.
fn parse_enabled(query: Option<&str>) -> Result<Option<bool>, AccountError> {
    match query {
        None | Some("") => Ok(None),
        Some("enabled=true") => Ok(Some(true)),
        Some("enabled=false") => Ok(Some(false)),
        Some(_) => Err(AccountError::BadRequest(
            "the only query parameter is enabled=true or enabled=false".into(),
        )),
    }
}

async fn create(admin: &AccountAdmin, request: Request<Body>) -> Response {
    let answer = Refusals::of(&request);
    let by = principal(&request);
    let body = match answer.read_body(request, MAX_BODY_BYTES).await {
        Ok(body) => body,
        Err(refused) => return refused,
    };
    respond(&answer, StatusCode::CREATED, async {
        let by = by?;
        let fields = object(&body, &["name", "description", "permissions", "enabled"])?;
        let name = string(&fields, "name")?.ok_or_else(|| missing("name"))?;
        let permissions = fields
            .get("permissions")
            .ok_or_else(|| missing("permissions"))
            .and_then(|p| permissions(p, "permissions"))?;
        let mut new = NewAccount::new(name, permissions);
        if let Some(description) = string(&fields, "description")? {
            new = new.description(description);
        }
        if let Some(enabled) = fields.get("enabled") {
            new = new.enabled(enabled.as_bool().ok_or_else(|| {
                AccountError::BadRequest("`enabled` must be true or false".into())
            })?);
        }
        let account = admin.create_account(&by, new).await?;
        Ok(json(&view(&account)))
    })
    .await
}

async fn update(admin: &AccountAdmin, name: &str, request: Request<Body>) -> Response {
    let answer = Refusals::of(&request);
    let by = principal(&request);
    let body = match answer.read_body(request, MAX_BODY_BYTES).await {
        Ok(body) => body,
        Err(refused) => return refused,
    };
    respond(&answer, StatusCode::OK, async {
        let by = by?;
        let fields = object(&body, &["description", "permissions"]).map_err(|e| match e {
            AccountError::BadRequest(m) if m.contains("`name`") => {
                AccountError::BadRequest("an account cannot be renamed: create a new one".into())
            }
            AccountError::BadRequest(m) if m.contains("`enabled`") => AccountError::BadRequest(
                "use POST .../enable or .../disable to switch an account on or off".into(),
            ),
            other => other,
        })?;
        if fields.is_empty() {
            return Err(AccountError::BadRequest(
                "nothing to change: give description or permissions".into(),
            ));
        }
        let update = AccountUpdate {
            description: string(&fields, "description")?,
            permissions: fields
                .get("permissions")
                .map(|p| permissions(p, "permissions"))
                .transpose()?,
        };
        let account = admin.update_account(&by, name, update).await?;
        Ok(json(&view(&account)))
    })
    .await
}

async fn create_token(admin: &AccountAdmin, account: &str, request: Request<Body>) -> Response {
    let answer = Refusals::of(&request);
    let by = principal(&request);
    let body = match answer.read_body(request, MAX_BODY_BYTES).await {
        Ok(body) => body,
        Err(refused) => return refused,
    };
    let mut response = respond(&answer, StatusCode::CREATED, async {
        let by = by?;
        let fields = object(&body, &["name", "expiresInSeconds", "permissions"])?;
        let name = string(&fields, "name")?.ok_or_else(|| missing("name"))?;
        let mut new = NewToken::new(name);
        if let Some(secs) = fields.get("expiresInSeconds") {
            let secs = secs
                .as_u64()
                .filter(|s| (1..=MAX_TOKEN_LIFETIME.as_secs()).contains(s))
                .ok_or_else(|| {
                    AccountError::BadRequest(format!(
                        "`expiresInSeconds` must be a whole number from 1 to {}",
                        MAX_TOKEN_LIFETIME.as_secs()
                    ))
                })?;
            new = new.expires_in(std::time::Duration::from_secs(secs));
        }
        if let Some(p) = fields.get("permissions") {
            new = new.permissions(permissions(p, "permissions")?);
        }
        let issued = admin.create_token(&by, account, new).await?;
        let mut body = json(&issued.info);
        if let Value::Object(map) = &mut body {
            map.insert(
                "token".into(),
                Value::from(issued.token.expose_secret().to_owned()),
            );
        }
        Ok(body)
    })
    .await;
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The body as a JSON object with only `allowed` fields. A password or hash is refused
/// first, with its own message: service accounts never have one.
fn object(body: &[u8], allowed: &[&str]) -> Result<Map<String, Value>, AccountError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|_| AccountError::BadRequest("the body must be a JSON object".into()))?;
    let Value::Object(map) = value else {
        return Err(AccountError::BadRequest(
            "the body must be a JSON object".into(),
        ));
    };
    if let Some(key) = map.keys().find(|k| {
        let k = k.to_ascii_lowercase();
        k.contains("password") || k.contains("hash") || k == "secret"
    }) {
        return Err(AccountError::BadRequest(format!(
            "service accounts have no password: remove `{key}` and create a token with POST .../tokens"
        )));
    }
    if let Some(key) = map.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(AccountError::BadRequest(format!(
            "unknown field `{key}` (expected {})",
            allowed.join(", ")
        )));
    }
    Ok(map)
}

fn string(fields: &Map<String, Value>, key: &str) -> Result<Option<String>, AccountError> {
    match fields.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(AccountError::BadRequest(format!(
            "`{key}` must be a string"
        ))),
    }
}

fn missing(key: &str) -> AccountError {
    AccountError::BadRequest(format!("`{key}` is required"))
}

fn permissions(value: &Value, path: &str) -> Result<AccessRestrictions, AccountError> {
    AccessRestrictions::from_json(value, path).map_err(AccountError::BadRequest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_strict_and_passwords_are_refused() {
        let ok = object(br#"{"name":"ci"}"#, &["name"]).unwrap();
        assert_eq!(ok["name"], "ci");
        for (body, says) in [
            (&br#"{"name":"ci","password":"x"}"#[..], "no password"),
            (br#"{"name":"ci","passwordHash":"x"}"#, "no password"),
            (br#"{"name":"ci","hash":"x"}"#, "no password"),
            (br#"{"name":"ci","extra":1}"#, "unknown field `extra`"),
            (br#"["ci"]"#, "JSON object"),
            (b"not json", "JSON object"),
        ] {
            let e = object(body, &["name"]).unwrap_err();
            assert!(e.to_string().contains(says), "{e}");
            assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        }
    }

    #[test]
    fn the_enabled_filter() {
        assert_eq!(parse_enabled(None).unwrap(), None);
        assert_eq!(parse_enabled(Some("enabled=true")).unwrap(), Some(true));
        assert_eq!(parse_enabled(Some("enabled=false")).unwrap(), Some(false));
        assert!(parse_enabled(Some("enabled=yes")).is_err());
        assert!(parse_enabled(Some("limit=5")).is_err());
    }
}
