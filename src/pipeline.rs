//! The decision every request goes through, in the order of DESIGN.md section 3:
//!
//! ```text
//! extract ─► classify ─► verify (one verifier) ─► authorize (the route's policy) ─► respond
//! ```
//!
//! Each stage is its own module (`extract`, `classify`, `verify`, `policy`, `response`);
//! this one only strings them together and audits the outcome, so "where is 401 vs 403
//! decided" has one answer: the error's own [`status`](crate::error::RequestError::status), turned
//! into a response by `response`, called from here.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use http::{HeaderMap, HeaderValue, Method, Response, Uri};

use crate::audit::{AuditEvent, AuditText, Auditor};
use crate::clock;
use crate::error::RequestError;
use crate::extract;
use crate::plugin::{KeyManager, ServiceDiscovery};
use crate::policy::{DefaultPolicy, PolicyRegistry, Resolved, RouteSpec, authorize};
use crate::principal::Principal;
use crate::static_token::StaticToken;
use crate::verifier::{TokenFingerprint, Verification};
use crate::verify::Verifiers;

/// Everything a decision needs. Built once by the builder; rebuilt only to bind the policies
/// of a router wrapper (sharing every verifier and cache).
pub(crate) struct Pipeline {
    pub(crate) service_id: String,
    /// The service id again, shared with every request that needs it for a challenge.
    pub(crate) realm: Arc<str>,
    pub(crate) verifiers: Arc<Verifiers>,
    pub(crate) keys: Option<Arc<KeyManager>>,
    /// Just-in-time on-behalf-of tokens, when configured.
    pub(crate) jit: Option<Arc<crate::jit::Jit>>,
    /// Service accounts, when configured.
    pub(crate) accounts: Option<crate::service_account::AccountAdmin>,
    /// Where other services are (for the outbound client).
    pub(crate) discovery: Option<Arc<dyn ServiceDiscovery>>,
    pub(crate) static_callers: Arc<[StaticToken]>,
    /// The routes as declared (builder and config), kept to merge with a router's own.
    pub(crate) specs: Vec<RouteSpec>,
    pub(crate) registry: PolicyRegistry,
    pub(crate) auditor: Arc<Auditor>,
}

/// The outcome of [`Pipeline::decide`]: the principal to hand on (none on an unauthenticated
/// route without a usable credential) or the refusal to send.
pub(crate) type Outcome = Result<Option<Principal>, Response<String>>;

/// The outcome, now or once a key is fetched.
pub(crate) enum Decided {
    Ready(Outcome),
    Pending(PendingDecision),
}

/// What a request's audit event is made of, gathered while deciding; the event itself is
/// built by [`Pipeline::conclude`], and for an allow only when something receives it.
struct Facts<'a> {
    /// The request's clock reading.
    now: clock::Now,
    request_id: RequestId<'a>,
    fingerprint: TokenFingerprint<'a>,
    /// Whether an allow's event is received ([`Auditor::observes_allow`]), asked once.
    audited: bool,
}

/// Where the event's request id comes from.
enum RequestId<'a> {
    /// The request's first `x-request-id` (checked, or replaced by a new id, when the event
    /// is built).
    Header(Option<&'a HeaderValue>),
    /// Taken already (a decision that outlives the request's headers).
    Taken(AuditText),
}

/// A decision waiting for a key fetch.
pub(crate) type PendingDecision = Pin<Box<dyn Future<Output = Outcome> + Send>>;

impl Pipeline {
    /// The same pipeline with another set of routes (the router wrapper's, merged).
    pub(crate) fn with_routes(
        &self,
        specs: Vec<RouteSpec>,
        default: DefaultPolicy,
    ) -> Result<Self, crate::ConfigError> {
        Ok(Self {
            service_id: self.service_id.clone(),
            realm: self.realm.clone(),
            verifiers: self.verifiers.clone(),
            keys: self.keys.clone(),
            jit: self.jit.clone(),
            accounts: self.accounts.clone(),
            discovery: self.discovery.clone(),
            static_callers: self.static_callers.clone(),
            registry: PolicyRegistry::new(&specs, default)?,
            specs,
            auditor: self.auditor.clone(),
        })
    }

    /// Decides one request and audits the decision.
    pub(crate) fn decide(
        self: &Arc<Self>,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
    ) -> Decided {
        let resolved = self.registry.resolve(method, uri.path());
        let read = extract::read_headers(headers);
        // The request's one clock reading, for the event, the claims and the key ages.
        let now = clock::now();
        let audited = self.auditor.observes_allow();
        // Extract, then classify and verify (one verifier; see the `verify` module).
        let (verification, fingerprint) = match extract::bearer_token(&read, uri) {
            Ok(Some(token)) => self.verifiers.verify(token, now, audited),
            Ok(None) => (
                Verification::Done(Err(RequestError::MissingCredentials)),
                TokenFingerprint::None,
            ),
            Err(e) => (Verification::Done(Err(e)), TokenFingerprint::None),
        };
        let facts = Facts {
            now,
            request_id: RequestId::Header(read.request_id),
            fingerprint,
            audited,
        };
        match verification {
            Verification::Done(result) => {
                Decided::Ready(self.conclude(method, uri.path(), &resolved, facts, result))
            }
            Verification::Pending(pending) => {
                // The headers stay behind: the request id and fingerprint are taken now.
                let facts = Facts {
                    now,
                    request_id: RequestId::Taken(
                        self.auditor.request_ids.for_request(read.request_id),
                    ),
                    fingerprint: facts.fingerprint.settle(),
                    audited,
                };
                let this = self.clone();
                let method = method.clone();
                let path = uri.path().to_owned();
                Decided::Pending(Box::pin(async move {
                    let result = pending.await;
                    let resolved = this.registry.resolve(&method, &path);
                    this.conclude(&method, &path, &resolved, facts, result)
                }))
            }
        }
    }

    /// The request's audit event, before its decision.
    fn event(&self, method: &Method, resolved: &Resolved<'_>, facts: Facts<'_>) -> AuditEvent {
        let request_id = match facts.request_id {
            RequestId::Header(header) => self.auditor.request_ids.for_request(header),
            RequestId::Taken(id) => id,
        };
        // Before the event exists (a hash, when it is computed here, between building the
        // event and returning it made the compiler copy the whole event out).
        let token_fingerprint = facts.fingerprint.get();
        let mut event = AuditEvent::request(
            facts.now.wall(),
            request_id,
            AuditText::from(Arc::clone(&self.realm)),
            AuditText::method(method),
            resolved.pattern(),
        );
        event.token_fingerprint = token_fingerprint;
        event
    }

    /// Authorizes a verification result by the route's policy, audits, and returns the
    /// outcome (respond: the refusal is built by the `response` module). An allow builds
    /// its event only when something receives it ([`Auditor::observes_allow`]); every
    /// other decision builds and records one.
    // The refusal is built once and moved straight into the response future; boxing it would
    // add an allocation to every refused request for no gain.
    #[allow(clippy::result_large_err)]
    fn conclude(
        &self,
        method: &Method,
        path: &str,
        resolved: &Resolved<'_>,
        facts: Facts<'_>,
        verified: Result<Principal, RequestError>,
    ) -> Outcome {
        if resolved.is_unauthenticated() {
            let mut event = self.event(method, resolved, facts);
            if let Ok(p) = &verified {
                event.fill_principal(p);
            }
            return Ok(self.unauthenticated(method, &mut event, verified));
        }
        let (principal, error) = match verified {
            Ok(principal) => match authorize(&principal, method, resolved, &self.service_id) {
                Ok(()) => {
                    if facts.audited {
                        let mut event = self.event(method, resolved, facts);
                        event.fill_principal(&principal);
                        event.reason = AuditText::from_static("allowed");
                        self.auditor.record(&event);
                    }
                    return Ok(Some(principal));
                }
                Err(error) => (Some(principal), RequestError::from(error)),
            },
            Err(error) => (None, error),
        };
        let mut event = self.event(method, resolved, facts);
        if let Some(p) = &principal {
            event.fill_principal(p);
        }
        event.deny(&error);
        self.auditor.record(&event);
        // The message written once: the audit event's is the response's.
        Err(crate::response::refusal(
            &error,
            &event.message,
            &self.service_id,
            method,
            path,
        ))
    }

    /// Everyone may call an unauthenticated route. A credential sent anyway still yields a
    /// principal, but only one the same request would have been let through with on a route
    /// that asks for any authenticated caller: a credential restricted to other plugins, a
    /// read-only one writing, or an invalid one is dropped (a stale token must not break a
    /// health check), and the audit event says why.
    fn unauthenticated(
        &self,
        method: &Method,
        event: &mut AuditEvent,
        verified: Result<Principal, RequestError>,
    ) -> Option<Principal> {
        let authenticated = Resolved::Default(DefaultPolicy::Authenticated);
        let principal = match verified {
            Ok(p) => match authorize(&p, method, &authenticated, &self.service_id) {
                Ok(()) => Some(p),
                Err(refused) => {
                    event.message = format!("credential ignored: {refused}");
                    event.ignored = Some(refused.code().to_owned());
                    None
                }
            },
            Err(RequestError::MissingCredentials) => None,
            Err(e) => {
                event.message = format!("credential ignored: {e}");
                event.ignored = Some(e.code().to_owned());
                None
            }
        };
        event.reason = AuditText::from_static("unauthenticated_route");
        self.auditor.record(event);
        principal
    }
}
