//! Publishing this service's public keys: `GET /.backstage/auth/v1/jwks.json`, the
//! document peers verify our plugin tokens with.

use crate::auth::Auth;
use crate::plugin::JWKS_PATH;

impl Auth {
    /// A router serving this service's published keys at
    /// `GET /.backstage/auth/v1/jwks.json` (`{"keys": [...]}`, public parts only). Merge it
    /// into your router before applying [`Auth::layer`]; the route is unauthenticated. It
    /// answers 503 when the store is unreachable, and an empty set when plugin tokens are
    /// not configured.
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
