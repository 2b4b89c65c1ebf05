//! Publishing this service's public keys: `GET /.backstage/auth/v1/jwks.json`, the
//! document peers verify our plugin tokens with.

use crate::auth::Auth;
use crate::plugin::JWKS_PATH;

impl Auth {
    /// A router serving this service's published keys at
    /// `GET /.backstage/auth/v1/jwks.json` (`{"keys": [...]}`, public parts only). Merge it
    /// into your router before applying [`Auth::layer`]; the route is unauthenticated.
    ///
    /// The route is public, so it is cheap: the set is served from memory and read from the
    /// store again at most every 5 seconds (one request reads for everyone; a flood of
    /// requests costs the store nothing more). Keys other replicas publish show up within
    /// those seconds; this process's own keys at once. It lists the key that signs now,
    /// the one that signs next (published a key duration ahead) and older keys whose tokens
    /// may still be alive. It answers 503 while the store has never answered; once it has,
    /// a failing store is answered from the last copy (its expired keys left out). An empty
    /// set when plugin tokens are not configured.
    pub fn jwks_router<S: Clone + Send + Sync + 'static>(&self) -> axum::Router<S> {
        let auth = self.clone();
        axum::Router::new().route(
            JWKS_PATH,
            axum::routing::get(move || {
                let auth = auth.clone();
                async move { auth.published_jwks().await }
            }),
        )
    }

    async fn published_jwks(&self) -> axum::response::Response {
        use axum::response::IntoResponse;
        let Some(keys) = &self.pipeline.keys else {
            return axum::Json(serde_json::json!({ "keys": [] })).into_response();
        };
        match keys.published().await {
            Ok(keys) => (
                [(http::header::CACHE_CONTROL, "public, max-age=60")],
                axum::Json(serde_json::json!({ "keys": keys })),
            )
                .into_response(),
            Err(e) => {
                tracing::warn!(target: "s2s_auth::keys", error = %e, "cannot list published keys");
                (
                    http::StatusCode::SERVICE_UNAVAILABLE,
                    [(http::header::RETRY_AFTER, "5")],
                    "key store unavailable",
                )
                    .into_response()
            }
        }
    }
}
