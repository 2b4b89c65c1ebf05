//! The tower middleware: [`AuthLayer`], [`AuthService`] and their [`ResponseFuture`], the
//! trio every tower-http middleware has.
//!
//! Use it to guard a router you already have (the crate's first use case):
//!
//! ```
//! use axum::{routing::get, Router};
//! use http::Method;
//! use s2s_auth::{Auth, RoutePolicy, StaticToken};
//!
//! let auth = Auth::builder("catalog")
//!     .static_token(StaticToken::new("ci-bot", "a-long-random-token-for-ci"))
//!     .route("/healthz", [Method::GET], RoutePolicy::unauthenticated())
//!     .build()?;
//! // Apply it to the outermost router, and declare policies with the full paths the
//! // router sees: the layer matches `request.uri().path()` against its own registry.
//! let app: Router = Router::new()
//!     .route("/entities", get(|| async { "[]" }))
//!     .route("/healthz", get(|| async { "ok" }))
//!     .layer(auth.layer());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! **Around the router, for the fewest instructions.** `Router::layer` puts the layer inside
//! every route, and axum then boxes it once more per request (a clone of the boxed route
//! and a boxed future): about 1,230 of the 2,870 instructions the layer adds to a cached
//! request (`benches/callgrind.rs`, `jwt-es256` against `jwt-es256-outer`). Wrapping the
//! whole router instead makes one [`AuthService`] that sees every request, unrouted ones
//! included, with the same policies and the same answers. (Under wrk on loopback the two
//! served the same rate, within noise: see `BENCHMARKS.md`, load benchmark.)
//!
//! ```
//! use axum::{routing::get, Router};
//! use s2s_auth::{Auth, StaticToken};
//! use tower::Layer;
//!
//! let auth = Auth::builder("catalog")
//!     .static_token(StaticToken::new("ci-bot", "a-long-random-token-for-ci"))
//!     .build()?;
//! let router: Router = Router::new().route("/entities", get(|| async { "[]" }));
//! let app = auth.layer().layer(router); // AuthService<Router>
//! // Served as any tower service:
//! // axum::serve(listener, axum::ServiceExt::<axum::extract::Request>::into_make_service(app))
//! # let _ = app;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The layer cannot see which routes an axum `Router` serves, so it cannot tell a misspelt
//! policy path from a real one. Declare routes through [`Auth::router`] instead and every
//! policy path is checked against the routes at start.
//!
//! The layer works on any `tower::Service<http::Request<B>>` whose response body can be
//! built from a `String` (axum's `Body`, `String`, `Full<Bytes>`): refusals are JSON bodies.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{Request, Response};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

pub use crate::extract::MAX_TOKEN_LEN;

use crate::auth::Auth;
use crate::pipeline::{Decided, PendingDecision};
use crate::principal::{Principal, Realm};

impl Auth {
    /// The tower layer that guards a router or service with this configuration. Apply it
    /// outermost, so it sees full paths (see the [`layer`](crate::layer) module).
    pub fn layer(&self) -> AuthLayer {
        AuthLayer::new(self.clone())
    }
}

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
        AuthService::new(inner, self.auth.clone())
    }
}

/// Authenticates and authorizes each request, then calls `inner` with the [`Principal`]
/// in the request's extensions, or answers the refusal itself.
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

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the service.
    pub fn into_inner(self) -> S {
        self.inner
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
        let pipeline = &self.auth.pipeline;
        let state = match pipeline.decide(req.method(), req.uri(), req.headers()) {
            // Decided without I/O (almost always): call `inner` right here, on the instance
            // that `poll_ready` readied.
            Decided::Ready(Ok(principal)) => {
                set_principal(&mut req, principal, &self.auth);
                State::Inner {
                    future: self.inner.call(req),
                }
            }
            Decided::Ready(Err(refusal)) => State::Refused {
                response: Some(refusal.map(ResBody::from)),
            },
            // A key must be fetched first. The readied `inner` moves into the future and a
            // clone takes its place (tower's rule: the instance that was polled ready is
            // the one that must be called).
            Decided::Pending(decision) => {
                let clone = self.inner.clone();
                let inner = std::mem::replace(&mut self.inner, clone);
                State::Verifying {
                    decision,
                    pending: Some((inner, req, self.auth.clone())),
                }
            }
        };
        ResponseFuture { state }
    }
}

pin_project! {
    /// The response future of [`AuthService`].
    pub struct ResponseFuture<S, ReqBody>
    where
        S: Service<Request<ReqBody>>,
    {
        #[pin]
        state: State<S, ReqBody>,
    }
}

impl<S: Service<Request<ReqBody>>, ReqBody> std::fmt::Debug for ResponseFuture<S, ReqBody> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

pin_project! {
    /// A verification waiting for a key, the inner service's future, or a refusal.
    #[project = StateProj]
    enum State<S, ReqBody>
    where
        S: Service<Request<ReqBody>>,
    {
        Verifying {
            decision: PendingDecision,
            pending: Option<(S, Request<ReqBody>, Auth)>,
        },
        Inner {
            #[pin]
            future: S::Future,
        },
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

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        loop {
            match state.as_mut().project() {
                StateProj::Verifying { decision, pending } => {
                    let outcome = std::task::ready!(decision.as_mut().poll(cx));
                    let Some((mut inner, mut req, auth)) = pending.take() else {
                        unreachable!(
                            "invariant: a Verifying future holds its request until decided"
                        )
                    };
                    let next = match outcome {
                        Ok(principal) => {
                            set_principal(&mut req, principal, &auth);
                            State::Inner {
                                future: inner.call(req),
                            }
                        }
                        Err(refusal) => State::Refused {
                            response: Some(refusal.map(ResBody::from)),
                        },
                    };
                    state.set(next);
                }
                StateProj::Inner { future } => return future.poll(cx),
                StateProj::Refused { response } => {
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
/// calling (a `Principal` inserted by other code upstream is dropped). With no principal, the
/// realm goes in instead, so the extractor's rejection sends this service's challenge.
fn set_principal<B>(req: &mut Request<B>, principal: Option<Principal>, auth: &Auth) {
    match principal {
        Some(principal) => {
            req.extensions_mut().insert(principal);
        }
        None => {
            req.extensions_mut().remove::<Principal>();
            req.extensions_mut()
                .insert(Realm(auth.pipeline.realm.clone()));
        }
    }
}
