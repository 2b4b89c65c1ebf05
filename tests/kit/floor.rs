//! The crypto floor as a middleware, for the benches that compare the layer with it
//! (`benches/callgrind.rs`, `benches/jwt.rs`): `jsonwebtoken::decode_header`, a ready
//! `DecodingKey` and `Validation` by the header's `kid`, `jsonwebtoken::decode` into `C`, the
//! claims into the request's extensions; 401 otherwise. What the load bench's floor server
//! (`loadbench/src/floor.rs`, a package of its own) does.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::middleware::Next;
use axum::response::IntoResponse;
use http::{Request, StatusCode};
use jsonwebtoken::{DecodingKey, Validation, decode, decode_header};
use serde::de::DeserializeOwned;

/// `router` behind the floor, which verifies with `keys` (by `kid`) and decodes into `C`.
pub fn floor<C>(router: Router, keys: HashMap<String, (DecodingKey, Validation)>) -> Router
where
    C: DeserializeOwned + Clone + Send + Sync + 'static,
{
    let keys = Arc::new(keys);
    router.layer(axum::middleware::from_fn(
        move |mut req: Request<Body>, next: Next| {
            let keys = keys.clone();
            async move {
                let claims = req
                    .headers()
                    .get(http::header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("Bearer "))
                    .and_then(|token| {
                        let kid = decode_header(token).ok()?.kid?;
                        let (key, validation) = keys.get(&kid)?;
                        decode::<C>(token, key, validation).ok()
                    });
                match claims {
                    Some(claims) => {
                        req.extensions_mut().insert(claims.claims);
                        next.run(req).await
                    }
                    None => StatusCode::UNAUTHORIZED.into_response(),
                }
            }
        },
    ))
}
