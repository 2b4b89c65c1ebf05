//! The identity provider's side, served by the benchmarked process itself on the issuer's
//! loopback port: the JWKS at `<issuer>/jwks.json` and an OIDC discovery document at
//! `<issuer>/.well-known/openid-configuration` (tower-oauth2-resource-server finds its keys
//! through discovery). Keys are fetched once at start and on refresh, so this costs the
//! measured requests nothing.

use axum::Router;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::json;
use tokio::net::TcpListener;

use crate::Result;
use crate::fixture::Meta;

/// Binds the issuer's `host:port` and serves the documents in the background.
pub(crate) async fn spawn(meta: &Meta, jwks_json: String) -> Result<()> {
    let authority = meta
        .issuer
        .strip_prefix("http://")
        .filter(|a| !a.contains('/'))
        .ok_or_else(|| {
            format!(
                "issuer {} must be http://HOST:PORT to be served in-process",
                meta.issuer
            )
        })?;
    let discovery = json!({
        "issuer": meta.issuer,
        "jwks_uri": meta.jwks_url(),
        "authorization_endpoint": format!("{}/authorize", meta.issuer),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256", "RS256"],
    })
    .to_string();
    let json_doc = |body: String| {
        move || {
            let body = body.clone();
            async move {
                (
                    [
                        (CONTENT_TYPE, "application/json"),
                        (CACHE_CONTROL, "max-age=600"),
                    ],
                    body,
                )
                    .into_response()
            }
        }
    };
    let app = Router::new()
        .route("/jwks.json", get(json_doc(jwks_json)))
        .route(
            "/.well-known/openid-configuration",
            get(json_doc(discovery)),
        );
    let listener = TcpListener::bind(authority)
        .await
        .map_err(|e| format!("key server on {authority}: {e}"))?;
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            eprintln!("loadbench: key server stopped: {e}");
        }
    });
    Ok(())
}
