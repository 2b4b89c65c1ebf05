//! The tower middleware: [`AuthLayer`], [`AuthService`] and their [`ResponseFuture`].
//!
//! ```
//! use axum::{routing::get, Router};
//! use s2s_auth::{Auth, StaticToken};
//!
//! let auth = Auth::builder("catalog")
//!     .static_token(StaticToken::new("ci-bot", "a-long-random-token-for-ci"))
//!     .build()
//!     .unwrap();
//! // Apply it to the outermost router, and declare policies with the full paths the
//! // router sees: the layer matches `request.uri().path()` against its own registry.
//! let app: Router = Router::new()
//!     .route("/entities", get(|| async { "[]" }))
//!     .layer(auth.layer());
//! ```
//!
//! The layer works on any `tower::Service<http::Request<B>>` whose response body can be
//! built from a `String` (axum's `Body`, `String`, `Full<Bytes>`): refusals are JSON bodies.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{Request, Response};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use crate::auth::Auth;

/// Wraps a service in [`AuthService`]. Made by [`Auth::layer`].
#[derive(Clone, Debug)]
pub struct AuthLayer {
    auth: Auth,
}

impl AuthLayer {
    /// A layer for this configuration (the same as [`Auth::layer`]).
    pub fn new(auth: Auth) -> Self {
        Self { auth }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            auth: self.auth.clone(),
        }
    }
}

/// Authenticates and authorizes each request, then calls `inner` with the [`Principal`]
/// in the request's extensions, or answers the refusal itself.
///
/// [`Principal`]: crate::Principal
#[derive(Clone, Debug)]
pub struct AuthService<S> {
    inner: S,
    auth: Auth,
}

impl<S> AuthService<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, auth: Auth) -> Self {
        Self { inner, auth }
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for AuthService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: From<String>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        // Deciding is synchronous, so `inner` is called right here, on the instance that
        // `poll_ready` readied: no clone of `inner` is needed.
        match self.auth.decide(req.method(), req.uri(), req.headers()) {
            Ok(principal) => {
                // Only what this layer verified may reach the handler: a `Principal` that
                // other code put into the extensions earlier is dropped, so the handler and
                // the audit event always agree on who is calling.
                match principal {
                    Some(principal) => {
                        req.extensions_mut().insert(principal);
                    }
                    None => {
                        req.extensions_mut().remove::<crate::Principal>();
                    }
                }
                ResponseFuture::Inner {
                    future: self.inner.call(req),
                }
            }
            Err(refusal) => ResponseFuture::Refused {
                response: Some(refusal.map(ResBody::from)),
            },
        }
    }
}

pin_project! {
    /// The response future of [`AuthService`]: the inner service's future, or a refusal.
    #[project = ResponseFutureProj]
    #[allow(missing_docs)] // pin-project-lite cannot carry docs on pinned fields

    pub enum ResponseFuture<F, B> {
        /// The request was let through.
        Inner {
            #[pin]
            future: F,
        },
        /// The request was refused.
        Refused {
            response: Option<Response<B>>,
        },
    }
}

impl<F, B, E> Future for ResponseFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            ResponseFutureProj::Inner { future } => future.poll(cx),
            ResponseFutureProj::Refused { response } => Poll::Ready(Ok(response
                .take()
                .expect("invariant: a ResponseFuture is not polled after it completed"))),
        }
    }
}
