//! The tower middleware: [`AuthLayer`], [`AuthService`] and their [`ResponseFuture`].
//!
//! ```
//! use axum::{routing::get, Router};
//! use s2s_auth::{Auth, StaticToken};
//!
//! let auth = Auth::builder("catalog")
//!     .static_token(StaticToken::new("ci-bot", "a-long-random-token-for-ci"))
//!     .build()?;
//! // Apply it to the outermost router, and declare policies with the full paths the
//! // router sees: the layer matches `request.uri().path()` against its own registry.
//! let app: Router = Router::new()
//!     .route("/entities", get(|| async { "[]" }))
//!     .layer(auth.layer());
//! # Ok::<(), Box<dyn std::error::Error>>(())
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

use crate::auth::{Auth, Decided, PendingDecision};

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
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    ResBody: From<String>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        match self.auth.decide(req.method(), req.uri(), req.headers()) {
            // Decided without I/O (almost always): call `inner` right here, on the instance
            // that `poll_ready` readied.
            Decided::Ready(Ok(principal)) => {
                set_principal(&mut req, principal);
                ResponseFuture::Inner {
                    future: self.inner.call(req),
                }
            }
            Decided::Ready(Err(refusal)) => ResponseFuture::Refused {
                response: Some(refusal.map(ResBody::from)),
            },
            // A key must be fetched first. The readied `inner` moves into the future and a
            // clone takes its place (tower's rule: the instance that was polled ready is
            // the one that must be called).
            Decided::Pending(decision) => {
                let clone = self.inner.clone();
                let inner = std::mem::replace(&mut self.inner, clone);
                ResponseFuture::Verifying {
                    decision,
                    pending: Some((inner, req)),
                }
            }
        }
    }
}

pin_project! {
    /// The response future of [`AuthService`]: a verification waiting for a key, the inner
    /// service's future, or a refusal.
    #[project = ResponseFutureProj]
    #[allow(missing_docs)] // pin-project-lite cannot carry docs on pinned fields
    pub enum ResponseFuture<S, ReqBody>
    where
        S: Service<Request<ReqBody>>,
    {
        /// Waiting for a key fetch before deciding.
        Verifying {
            decision: PendingDecision,
            pending: Option<(S, Request<ReqBody>)>,
        },
        /// The request was let through.
        Inner {
            #[pin]
            future: S::Future,
        },
        /// The request was refused.
        Refused {
            response: Option<S::Response>,
        },
    }
}

impl<S, ReqBody, ResBody> Future for ResponseFuture<S, ReqBody>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: From<String>,
{
    type Output = Result<Response<ResBody>, S::Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            match self.as_mut().project() {
                ResponseFutureProj::Verifying { decision, pending } => {
                    let outcome = std::task::ready!(decision.as_mut().poll(cx));
                    let Some((mut inner, mut req)) = pending.take() else {
                        unreachable!(
                            "invariant: a Verifying future holds its request until decided"
                        )
                    };
                    let next = match outcome {
                        Ok(principal) => {
                            set_principal(&mut req, principal);
                            ResponseFuture::Inner {
                                future: inner.call(req),
                            }
                        }
                        Err(refusal) => ResponseFuture::Refused {
                            response: Some(refusal.map(ResBody::from)),
                        },
                    };
                    self.set(next);
                }
                ResponseFutureProj::Inner { future } => return future.poll(cx),
                ResponseFutureProj::Refused { response } => {
                    return Poll::Ready(Ok(response
                        .take()
                        .expect("invariant: a ResponseFuture is not polled after it completed")));
                }
            }
        }
    }
}

/// Puts the verified principal into the request, or removes any there: only what this layer
/// verified may reach the handler, so the handler and the audit event always agree on who is
/// calling (a `Principal` inserted by other code upstream is dropped).
fn set_principal<B>(req: &mut Request<B>, principal: Option<crate::Principal>) {
    match principal {
        Some(principal) => {
            req.extensions_mut().insert(principal);
        }
        None => {
            req.extensions_mut().remove::<crate::Principal>();
        }
    }
}
