//! The crypto floor: the least a JWT middleware can do and still verify. It reads the
//! bearer token, picks a `DecodingKey` built once at start by the header's `kid`, and calls
//! `jsonwebtoken::decode` with a `Validation` made once per key (`exp`, `iss`, `aud`
//! required and checked). No cache, no audit, no policy: a layer that does more work per
//! fresh token than this costs what that work costs.
//!
//! The usual tower trio: [`FloorLayer`] holds the keys, [`Floor`] wraps `inner`,
//! [`ResponseFuture`] is either the inner future or a ready 401.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use pin_project_lite::pin_project;
use serde::Deserialize;
use tower::{Layer, Service};

use crate::Result;

/// What a verified token leaves in the request extensions.
#[derive(Clone, Debug, Deserialize)]
pub(crate) struct Claims {
    #[allow(dead_code)] // Carried like the peers carry theirs; the handler does not read it.
    pub(crate) sub: String,
}

/// The keys by `kid`, each with the `Validation` for its algorithm.
pub(crate) struct FloorKeys {
    by_kid: HashMap<String, (DecodingKey, Validation)>,
}

impl FloorKeys {
    pub(crate) fn from_jwks(jwks: &JwkSet, issuer: &str, audience: &str) -> Result<Self> {
        let mut by_kid = HashMap::new();
        for jwk in &jwks.keys {
            let kid = jwk.common.key_id.clone().ok_or("every JWK needs a kid")?;
            let alg: Algorithm = jwk
                .common
                .key_algorithm
                .ok_or("every JWK needs an alg")?
                .to_string()
                .parse()?;
            let mut validation = Validation::new(alg);
            validation.set_issuer(&[issuer]);
            validation.set_audience(&[audience]);
            validation.set_required_spec_claims(&["exp", "iss", "aud"]);
            by_kid.insert(kid, (DecodingKey::from_jwk(jwk)?, validation));
        }
        Ok(Self { by_kid })
    }

    fn verify(&self, token: &str) -> Option<Claims> {
        let kid = decode_header(token).ok()?.kid?;
        let (key, validation) = self.by_kid.get(&kid)?;
        decode::<Claims>(token, key, validation)
            .ok()
            .map(|data| data.claims)
    }
}

/// `Authorization: Bearer <token>`, the scheme case-insensitive.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

fn unauthorized() -> Response<Body> {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::UNAUTHORIZED;
    response
        .headers_mut()
        .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

#[derive(Clone)]
pub(crate) struct FloorLayer {
    keys: Arc<FloorKeys>,
}

impl FloorLayer {
    pub(crate) fn new(keys: FloorKeys) -> Self {
        Self {
            keys: Arc::new(keys),
        }
    }
}

impl<S> Layer<S> for FloorLayer {
    type Service = Floor<S>;

    fn layer(&self, inner: S) -> Floor<S> {
        Floor {
            inner,
            keys: Arc::clone(&self.keys),
        }
    }
}

#[derive(Clone)]
pub(crate) struct Floor<S> {
    inner: S,
    keys: Arc<FloorKeys>,
}

impl<S, B> Service<Request<B>> for Floor<S>
where
    S: Service<Request<B>, Response = Response<Body>>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<std::result::Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        // Verification is synchronous, so `inner` is called here, on the service that was
        // polled ready: no clone of `inner` is needed.
        match bearer(request.headers()).and_then(|token| self.keys.verify(token)) {
            Some(claims) => {
                request.extensions_mut().insert(claims);
                ResponseFuture {
                    state: State::Inner {
                        future: self.inner.call(request),
                    },
                }
            }
            None => ResponseFuture {
                state: State::Refused {
                    response: Some(unauthorized()),
                },
            },
        }
    }
}

pin_project! {
    pub(crate) struct ResponseFuture<F> {
        #[pin]
        state: State<F>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Inner { #[pin] future: F },
        Refused { response: Option<Response<Body>> },
    }
}

impl<F, E> Future for ResponseFuture<F>
where
    F: Future<Output = std::result::Result<Response<Body>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        match self.project().state.project() {
            StateProj::Inner { future } => future.poll(cx),
            StateProj::Refused { response } => Poll::Ready(Ok(response
                .take()
                .expect("invariant: a ready future is not polled again"))),
        }
    }
}
