//! Audit: every decision is an [`AuditEvent`].
//!
//! Events always go to `tracing` on the target `s2s_auth::audit` (allows at `INFO`, refusals
//! at `WARN`), and to every [`AuditSink`] plugged into the [`Auth`](crate::Auth). An event
//! never holds a token: only its [`Fingerprint`]. An allow's event is built only when a sink
//! is plugged in or a subscriber takes the target at `INFO` (nothing that would receive it
//! misses it); a refusal's is always built, since the response carries its message.
//!
//! ```
//! use std::sync::Arc;
//! use s2s_auth::Auth;
//! use s2s_auth::audit::{JsonLinesSink, MemoryAuditSink};
//!
//! let memory = Arc::new(MemoryAuditSink::default());
//! let auth = Auth::builder("catalog")
//!     .audit_sink(memory.clone())
//!     .audit_sink(Arc::new(JsonLinesSink::new(std::io::stderr())))
//!     .build()?;
//! # let _ = auth;
//! assert!(memory.events().is_empty());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod request_id;
use request_id::RequestIds;

use std::io::Write;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::Serialize;
use time::OffsetDateTime;

use crate::principal::{CredentialKind, PrincipalType};
use crate::secret::Fingerprint;

/// Whether the request was let through.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    /// Let through to the handler.
    Allow,
    /// Refused with a 4xx status.
    Deny,
}

/// What an event records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum EventKind {
    /// A request's allow or deny.
    Request,
    /// This service issued a token (a plugin token, or one on behalf of a user): `target`,
    /// `subject`, `actor`, `expires_at` and the new token's fingerprint.
    TokenIssued,
    /// A signing key was generated (`kid`; `expires_at` is when it stops signing).
    KeyGenerated,
    /// A public key was published in the store, before it signs anything (`kid`;
    /// `expires_at` is when it leaves the JWKS).
    KeyPublished,
    /// Expired public keys left the store (`message` says how many).
    KeysPruned,
    /// A just-in-time on-behalf-of token was revoked (`subject`: who revoked it, `target`:
    /// the token's `jti`, `expires_at`: until when the revocation is kept).
    TokenRevoked,
    /// A service account was created (`subject`: the admin; `target`:
    /// `service-account:<name>`; `message`: its permissions).
    AccountCreated,
    /// A service account's description or permissions changed.
    AccountUpdated,
    /// A service account was enabled.
    AccountEnabled,
    /// A service account was disabled: every token of it is refused.
    AccountDisabled,
    /// A service account and its tokens were deleted.
    AccountDeleted,
    /// A service-account token was created (`message`: its name and id; `expires_at`;
    /// the token's fingerprint, never the token).
    AccountTokenIssued,
    /// A service-account token was revoked (`message`: its id).
    AccountTokenRevoked,
}

/// Text of an [`AuditEvent`] that making the event does not copy: a reason code or a method
/// name (static), or the service id, a route pattern, a subject (shared with the pipeline and
/// the principal). An event is made for every request, so its text is counted, not copied.
///
/// It reads as a `str` (it derefs to one), compares with `str` and `String`, prints and
/// serializes as the string itself.
///
/// ```
/// use s2s_auth::audit::AuditText;
///
/// let reason = AuditText::from_static("allowed");
/// assert_eq!(reason, "allowed");
/// assert_eq!(reason.len(), 7);
/// assert_eq!(AuditText::from(String::from("catalog")).as_str(), "catalog");
/// assert_eq!(serde_json::to_string(&reason)?, r#""allowed""#);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone)]
pub struct AuditText(Text);

/// The longest text kept inline (no allocation): a generated request id (29 bytes) fits.
const INLINE: usize = 30;

#[derive(Clone)]
enum Text {
    Static(&'static str),
    Shared(Arc<str>),
    /// Short text held in the value itself: `bytes[..len]` is the whole of a `str` it was
    /// copied from, or a generated request id (ASCII): valid UTF-8 either way.
    Inline {
        len: u8,
        bytes: [u8; INLINE],
    },
}

impl AuditText {
    /// Static text.
    pub const fn from_static(text: &'static str) -> Self {
        Self(Text::Static(text))
    }

    /// A copy of `text`: kept inline when it is short (a request id), shared otherwise.
    pub(crate) fn copied(text: &str) -> Self {
        let mut bytes = [0u8; INLINE];
        match bytes.get_mut(..text.len()) {
            Some(head) => {
                head.copy_from_slice(text.as_bytes());
                Self(Text::Inline {
                    len: text.len() as u8,
                    bytes,
                })
            }
            None => Self(Text::Shared(Arc::from(text))),
        }
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            Text::Static(s) => s,
            Text::Shared(s) => s,
            // Always valid: a whole `str`, or ASCII (see `Text::Inline`).
            Text::Inline { len, bytes } => {
                std::str::from_utf8(&bytes[..usize::from(*len)]).unwrap_or_default()
            }
        }
    }

    /// A method's name: static for the standard methods.
    pub(crate) fn method(method: &http::Method) -> Self {
        const STANDARD: [&str; 9] = [
            "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "CONNECT", "TRACE",
        ];
        let name = method.as_str();
        match STANDARD.iter().find(|s| **s == name) {
            Some(s) => Self::from_static(s),
            None => Self::from(Arc::<str>::from(name)),
        }
    }
}

impl std::ops::Deref for AuditText {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for AuditText {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl std::borrow::Borrow<str> for AuditText {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl From<&'static str> for AuditText {
    fn from(text: &'static str) -> Self {
        Self::from_static(text)
    }
}

impl From<Arc<str>> for AuditText {
    fn from(text: Arc<str>) -> Self {
        Self(Text::Shared(text))
    }
}

impl From<String> for AuditText {
    fn from(text: String) -> Self {
        Self(Text::Shared(text.into()))
    }
}

impl From<AuditText> for String {
    fn from(text: AuditText) -> Self {
        text.as_str().to_owned()
    }
}

impl std::fmt::Display for AuditText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Debug for AuditText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

impl PartialEq for AuditText {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for AuditText {}

impl std::hash::Hash for AuditText {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl PartialEq<str> for AuditText {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for AuditText {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<String> for AuditText {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<AuditText> for str {
    fn eq(&self, other: &AuditText) -> bool {
        self == other.as_str()
    }
}

impl PartialEq<AuditText> for &str {
    fn eq(&self, other: &AuditText) -> bool {
        *self == other.as_str()
    }
}

impl PartialEq<AuditText> for String {
    fn eq(&self, other: &AuditText) -> bool {
        self == other.as_str()
    }
}

impl Serialize for AuditText {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// One audited decision or credential event.
///
/// Serialized (by [`JsonLinesSink`]) with camelCase keys. Fields are public to read; the
/// struct is `#[non_exhaustive]` because later versions add fields.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct AuditEvent {
    /// What this event records. Request events are decisions; the others (issuing, keys)
    /// have `decision: allow`, `status: 200`, and empty `method` and `route`.
    pub event: EventKind,
    /// When the decision was made (UTC).
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
    /// The request's `x-request-id` when it sent a sane one (at most 128 visible ASCII
    /// characters), otherwise a process-unique id (a random prefix and a counter).
    pub request_id: AuditText,
    /// Allow or deny.
    pub decision: Decision,
    /// A stable snake_case reason: `allowed`, `unauthenticated_route`, or the code of the
    /// error ([`RequestError::code`](crate::error::RequestError::code)).
    pub reason: AuditText,
    /// A human sentence (the same as the response's `error_description`); empty on allow.
    pub message: String,
    /// The HTTP status the layer answered with, or 200 when it let the request through (the
    /// handler's own status is not known to the layer at that point).
    pub status: u16,
    /// This service's id.
    pub service_id: AuditText,
    /// The verified subject, when a credential was verified.
    pub subject: Option<AuditText>,
    /// The verified principal's type.
    pub principal_type: Option<PrincipalType>,
    /// The kind of the verified credential.
    pub credential: Option<CredentialKind>,
    /// The service acting on behalf of the subject, if any. A service acting for itself has
    /// none, so the two cases are told apart in the log.
    pub actor: Option<AuditText>,
    /// The request method.
    pub method: AuditText,
    /// The matched route pattern (`/entities/{id}`), or `<unlisted>`.
    pub route: AuditText,
    /// The fingerprint of the presented token, when there was one.
    pub token_fingerprint: Option<Fingerprint>,
    /// On an unauthenticated route: the code of the reason a presented credential was
    /// ignored (the handler saw no principal), e.g. `restricted_plugin` or `token_expired`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ignored: Option<String>,
    /// For an issued token: the service it is for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// For key events: the key's id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// For an issued token, when it expires; for a key, when it stops signing
    /// (`key_generated`) or leaves the published JWKS (`key_published`).
    #[serde(
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub expires_at: Option<OffsetDateTime>,
}

impl AuditEvent {
    /// A request's event before its decision: allowed until [`deny`](Self::deny) says not.
    pub(crate) fn request(
        time: OffsetDateTime,
        request_id: AuditText,
        service_id: AuditText,
        method: AuditText,
        route: AuditText,
    ) -> Self {
        AuditEvent {
            event: EventKind::Request,
            time,
            request_id,
            decision: Decision::Allow,
            reason: AuditText::from_static(""),
            message: String::new(),
            status: 200,
            service_id,
            subject: None,
            principal_type: None,
            credential: None,
            actor: None,
            method,
            route,
            token_fingerprint: None,
            ignored: None,
            target: None,
            kid: None,
            expires_at: None,
        }
    }

    /// An event that is not a request's decision (issuing, keys).
    pub(crate) fn lifecycle(
        kind: EventKind,
        request_id: AuditText,
        service_id: AuditText,
        reason: &'static str,
    ) -> Self {
        AuditEvent {
            event: kind,
            reason: AuditText::from_static(reason),
            ..AuditEvent::request(
                crate::clock::now().wall(),
                request_id,
                service_id,
                AuditText::from_static(""),
                AuditText::from_static(""),
            )
        }
    }

    /// Names the verified principal.
    pub(crate) fn fill_principal(&mut self, p: &crate::principal::Principal) {
        self.subject = Some(AuditText::from(p.shared_subject().clone()));
        self.principal_type = Some(p.principal_type());
        self.credential = Some(p.credential());
        self.actor = p.shared_actor().cloned().map(AuditText::from);
    }

    /// Records a refusal: its code, message and status.
    pub(crate) fn deny(&mut self, error: &crate::error::RequestError) {
        self.decision = Decision::Deny;
        self.reason = AuditText::from_static(error.code());
        self.message = error.to_string();
        self.status = error.status().as_u16();
    }
}

/// Somewhere audit events go. Implement it to ship events to your own store.
///
/// `record` is called on the request path: keep it quick and never block for long (hand the
/// event to a channel if the destination is slow).
pub trait AuditSink: Send + Sync {
    /// Records one event.
    fn record(&self, event: &AuditEvent);
}

impl<T: AuditSink + ?Sized> AuditSink for Arc<T> {
    fn record(&self, event: &AuditEvent) {
        (**self).record(event);
    }
}

/// Writes each event as one line of JSON, on a thread of its own, so that a slow or stalled
/// writer never holds up a request.
///
/// `record` (on the request path) serializes the event and hands the line to a bounded queue
/// without waiting; a writer thread (`s2s-auth-audit`) drains the queue into `out` (what
/// was queued together in one write), flushing whenever the queue runs empty, then pausing
/// a millisecond so that under load it is not woken by every event. The queue holds [`DEFAULT_QUEUE_EVENTS`] lines (1024, a
/// few hundred KiB at most) unless [`with_capacity`](Self::with_capacity) says otherwise.
///
/// **The trade-off:** when `out` falls behind for longer than the queue absorbs (a full
/// disk, a stalled pipe, a socket whose peer stopped reading), events are **dropped**, not
/// waited for, and counted: [`dropped`](Self::dropped) says how many, and a `WARN` on the
/// `s2s_auth::audit` target says so when the count reaches 1, 2, 4, 8, ... Every event
/// still goes to `tracing` on that target, whatever happens here. Lines the writer thread
/// had not written when the sink is dropped are written before it ends; call
/// [`flush`](Self::flush) before the process exits to wait for them. If `out` panics, the
/// thread stops writing and every later event is counted as dropped; requests go on.
///
/// ```
/// use std::time::Duration;
/// use s2s_auth::audit::JsonLinesSink;
///
/// let sink = JsonLinesSink::with_capacity(std::io::stderr(), 4096);
/// // ... requests ...
/// assert!(sink.flush(Duration::from_secs(1)));
/// assert_eq!(sink.dropped(), 0);
/// ```
pub struct JsonLinesSink {
    queue: SyncSender<Message>,
    dropped: Arc<AtomicU64>,
}

/// How many events a [`JsonLinesSink`] queues for its writer by default.
pub const DEFAULT_QUEUE_EVENTS: usize = 1024;

/// The writer thread's buffer: a batch of queued lines leaves in one write.
const WRITE_BUFFER_BYTES: usize = 64 * 1024;

/// How long the writer thread pauses after writing a batch, so that events arriving under
/// load are written together instead of each waking the thread.
const BATCH_PAUSE: Duration = Duration::from_millis(1);

/// What the writer thread is handed.
enum Message {
    /// One serialized event, with its newline.
    Line(Vec<u8>),
    /// Flush, then answer: every line queued before this one has been handled.
    Flush(mpsc::Sender<()>),
}

impl JsonLinesSink {
    /// Writes to `out` (a file, stderr, a socket), queueing up to [`DEFAULT_QUEUE_EVENTS`]
    /// events for it.
    pub fn new<W: Write + Send + 'static>(out: W) -> Self {
        Self::with_capacity(out, DEFAULT_QUEUE_EVENTS)
    }

    /// Writes to `out`, queueing up to `events` events (at least 1) for it: more absorbs
    /// longer stalls at the cost of memory; fewer drops sooner.
    pub fn with_capacity<W: Write + Send + 'static>(out: W, events: usize) -> Self {
        let (queue, lines) = mpsc::sync_channel(events.max(1));
        let dropped = Arc::new(AtomicU64::new(0));
        let counter = dropped.clone();
        let spawned = std::thread::Builder::new()
            .name("s2s-auth-audit".to_owned())
            .spawn(move || write_lines(out, lines, &counter));
        if let Err(e) = spawned {
            // The receiver is gone with the closure: every event counts as dropped.
            tracing::error!(target: "s2s_auth::audit", error = %e,
                "audit sink writer thread could not start; JSON-lines events are dropped");
        }
        Self { queue, dropped }
    }

    /// Events dropped so far: the queue was full (the writer is behind), or the writer has
    /// died. Never reset.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Waits up to `timeout` until every event recorded before this call has been written
    /// and `out` flushed (or counted in [`dropped`](Self::dropped), if the writer died).
    /// Returns `false` if the writer is still behind when the time is up. Blocks: call it
    /// at shutdown or in tests, never on the request path.
    pub fn flush(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let (ack, acked) = mpsc::channel();
        let mut message = Message::Flush(ack);
        loop {
            match self.queue.try_send(message) {
                Ok(()) => break,
                Err(TrySendError::Disconnected(_)) => return true,
                Err(TrySendError::Full(back)) => {
                    if Instant::now() >= deadline {
                        return false;
                    }
                    message = back;
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
        match acked.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(()) => true,
            Err(mpsc::RecvTimeoutError::Timeout) => false,
            // The writer died after taking the marker: what it held is counted as dropped.
            Err(mpsc::RecvTimeoutError::Disconnected) => true,
        }
    }

    fn count_drop(&self) {
        let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
        if n.is_power_of_two() {
            tracing::warn!(target: "s2s_auth::audit", dropped = n,
                "audit JSON-lines writer is behind or gone; events dropped");
        }
    }
}

/// The writer thread: lines to `out`, a flush whenever the queue runs dry. A panic in `out`
/// ends the writing: the lines it had not flushed out, what is queued then, and everything sent
/// later count as dropped (the thread stays, counting, until the sink is dropped).
fn write_lines<W: Write>(out: W, lines: Receiver<Message>, dropped: &AtomicU64) {
    // Lines queued together leave in one write, and the flush when the queue runs dry
    // sends them on.
    let mut out = std::io::BufWriter::with_capacity(WRITE_BUFFER_BYTES, out);
    let mut waiting: Vec<mpsc::Sender<()>> = Vec::new();
    // Lines handed to the buffer and not yet flushed out: lost if `out` panics.
    let mut unflushed: u64 = 0;
    let written = std::panic::catch_unwind(AssertUnwindSafe(|| {
        while let Ok(first) = lines.recv() {
            let mut next = Some(first);
            while let Some(message) = next.take() {
                match message {
                    Message::Line(line) => {
                        unflushed += 1;
                        if let Err(e) = out.write_all(&line) {
                            tracing::error!(target: "s2s_auth::audit", error = %e,
                                "audit sink write failed");
                        }
                    }
                    Message::Flush(ack) => waiting.push(ack),
                }
                next = lines.try_recv().ok();
            }
            if let Err(e) = out.flush() {
                tracing::error!(target: "s2s_auth::audit", error = %e, "audit sink flush failed");
            }
            unflushed = 0;
            for ack in waiting.drain(..) {
                let _ = ack.send(());
            }
            // Under load, a writer that blocks again at once is woken by every event: a
            // thread switch per request, on the cores that serve them. A short pause lets
            // the events of the next millisecond leave together (an event waits at most
            // that long; the queue absorbs about a thousand events meanwhile).
            std::thread::sleep(BATCH_PAUSE);
        }
    }));
    if written.is_err() {
        tracing::error!(target: "s2s_auth::audit",
            "audit sink writer panicked; JSON-lines events are dropped from now on");
        dropped.fetch_add(unflushed, Ordering::Relaxed);
        drop(waiting);
        // Every line still queued or sent later: counted, so that none goes missing unseen.
        while let Ok(message) = lines.recv() {
            match message {
                Message::Line(_) => {
                    dropped.fetch_add(1, Ordering::Relaxed);
                }
                Message::Flush(ack) => {
                    let _ = ack.send(());
                }
            }
        }
    }
}

impl AuditSink for JsonLinesSink {
    fn record(&self, event: &AuditEvent) {
        let Ok(mut line) = serde_json::to_vec(event) else {
            return;
        };
        line.push(b'\n');
        match self.queue.try_send(Message::Line(line)) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => self.count_drop(),
        }
    }
}

impl std::fmt::Debug for JsonLinesSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonLinesSink")
            .field("dropped", &self.dropped())
            .finish_non_exhaustive()
    }
}

/// Keeps events in memory: for tests, and for showing decisions in a demo.
#[derive(Debug, Default)]
pub struct MemoryAuditSink {
    events: Mutex<Vec<AuditEvent>>,
}

impl MemoryAuditSink {
    /// Every event recorded so far.
    pub fn events(&self) -> Vec<AuditEvent> {
        self.events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The most recent event.
    pub fn last(&self) -> Option<AuditEvent> {
        self.events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .last()
            .cloned()
    }

    /// Forgets every event.
    pub fn clear(&self) {
        self.events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

impl AuditSink for MemoryAuditSink {
    fn record(&self, event: &AuditEvent) {
        self.events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(event.clone());
    }
}

/// Emits the event on the `s2s_auth::audit` tracing target.
/// Sends each event to `tracing` and to every sink: the one way events leave the crate.
pub(crate) struct Auditor {
    sinks: Vec<Arc<dyn AuditSink>>,
    pub(crate) request_ids: RequestIds,
}

impl Auditor {
    pub(crate) fn new(sinks: Vec<Arc<dyn AuditSink>>) -> Self {
        Self {
            sinks,
            request_ids: RequestIds::new(),
        }
    }

    /// Records an event that is not a request's decision, with a new id.
    pub(crate) fn record_lifecycle(
        &self,
        kind: EventKind,
        service_id: &str,
        reason: &'static str,
        fill: impl FnOnce(&mut AuditEvent),
    ) {
        let service_id = AuditText::from(service_id.to_owned());
        let mut event = AuditEvent::lifecycle(kind, self.request_ids.next(), service_id, reason);
        fill(&mut event);
        self.record(&event);
    }

    /// Whether an allow decision's event would reach anyone: a sink, or a `tracing`
    /// subscriber that takes `s2s_auth::audit` events at INFO (asked with the event's own
    /// target, level and field names, so a filter on any of them counts). When nothing
    /// would, the pipeline does not build the event (its request id, texts and principal
    /// fields: about 350 instructions of a cached request, issue 11); every refusal's event
    /// is built, because the response carries its message.
    pub(crate) fn observes_allow(&self) -> bool {
        !self.sinks.is_empty()
            || tracing::enabled!(
                target: "s2s_auth::audit",
                tracing::Level::INFO,
                event,
                request_id,
                decision,
                reason,
                status,
                service_id,
                subject,
                principal_type,
                credential,
                actor,
                method,
                route,
                token_fingerprint,
                ignored,
                target,
                kid
            )
    }

    pub(crate) fn record(&self, event: &AuditEvent) {
        emit_tracing(event);
        for sink in &self.sinks {
            sink.record(event);
        }
    }

    pub(crate) fn sink_count(&self) -> usize {
        self.sinks.len()
    }
}

fn emit_tracing(e: &AuditEvent) {
    macro_rules! audit_event {
        ($level:expr) => {
            tracing::event!(
                target: "s2s_auth::audit",
                $level,
                event = ?e.event,
                request_id = %e.request_id,
                decision = ?e.decision,
                reason = %e.reason,
                status = e.status,
                service_id = %e.service_id,
                subject = e.subject.as_deref(),
                principal_type = e.principal_type.map(|t| t.to_string()),
                credential = e.credential.map(|k| k.as_str()),
                actor = e.actor.as_deref(),
                method = %e.method,
                route = %e.route,
                token_fingerprint = e.token_fingerprint.map(|f| f.to_string()),
                ignored = e.ignored.as_deref(),
                target = e.target.as_deref(),
                kid = e.kid.as_deref(),
                "{}",
                if e.message.is_empty() { "allowed" } else { e.message.as_str() }
            )
        };
    }
    match e.decision {
        Decision::Allow => audit_event!(tracing::Level::INFO),
        Decision::Deny => audit_event!(tracing::Level::WARN),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An allow is built only when a sink or a subscriber takes it: asked at the event's
    /// own target, level and fields.
    #[test]
    fn an_allow_is_observed_by_a_sink_or_a_subscriber_that_takes_it() {
        use tracing_subscriber::EnvFilter;
        let quiet = Auditor::new(Vec::new());
        let with_sink = Auditor::new(vec![
            Arc::new(MemoryAuditSink::default()) as Arc<dyn AuditSink>
        ]);
        let observed = |filter: &str| {
            let subscriber = tracing_subscriber::fmt()
                .with_env_filter(EnvFilter::new(filter))
                .with_writer(std::io::sink)
                .finish();
            tracing::subscriber::with_default(subscriber, || {
                (quiet.observes_allow(), with_sink.observes_allow())
            })
        };
        let none =
            tracing::subscriber::with_default(tracing::subscriber::NoSubscriber::default(), || {
                (quiet.observes_allow(), with_sink.observes_allow())
            });
        assert_eq!(none, (false, true), "no subscriber: only the sink");
        assert_eq!(observed("s2s_auth::audit=info"), (true, true));
        assert_eq!(observed("info"), (true, true));
        assert_eq!(observed("s2s_auth=debug"), (true, true));
        assert_eq!(observed("s2s_auth::audit[{decision}]=info"), (true, true));
        assert_eq!(
            observed("s2s_auth::audit=warn"),
            (false, true),
            "refusals only"
        );
        assert_eq!(
            observed("s2s_auth::jwks=info"),
            (false, true),
            "another target"
        );
    }

    #[test]
    fn copied_text_reads_back_whole_inline_or_shared() {
        for len in [0, 1, INLINE - 1, INLINE, INLINE + 1, 200] {
            let text: String = "é-x".chars().cycle().take(len).collect();
            let copied = AuditText::copied(&text);
            assert_eq!(copied, text.as_str(), "{len} chars");
            let inline = matches!(copied.0, Text::Inline { .. });
            assert_eq!(inline, text.len() <= INLINE, "{} bytes", text.len());
        }
        // No allocation for a request id: the generated ones fit.
        assert!(matches!(
            AuditText::copied("0123456789ab-ffffffffffffffff").0,
            Text::Inline { .. }
        ));
    }
}
