//! The revocation signal of [`PostgresStore`](super::PostgresStore): `LISTEN` on the
//! channel every revoking transaction `NOTIFY`s, in a task of its own, turned into a
//! [`watch`] value that counts wake-ups.
//!
//! One task per store, started by the first [`Signal::subscribe`] and ended when the last
//! receiver is dropped (a later subscribe starts a new one). It holds one connection of its
//! own, outside the store's pool, so listening never takes a connection from the queries.

use std::future::Future;
use std::pin::pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::Poll;
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use tokio::sync::watch;

use super::postgres::Redactor;

/// The channel revocations and service-account changes are announced on. The payload (the
/// revoked `jti`, or `account:<name>`) is informative only: a listener reads everything
/// again on any wake-up, so a `jti` that looks like `account:x` misleads nobody.
pub(super) const CHANNEL: &str = "s2s_auth_revocations";

/// The longest wait between two attempts to (re)connect the listener.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// The first wait after a failed attempt; doubled after each further failure.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);

/// The running listener's sender, if one runs. Behind a mutex that [`Signal::subscribe`] and
/// a task about to end both take, so no receiver is ever handed out by a task that has
/// decided to end.
pub(super) struct Signal {
    running: Mutex<Option<Arc<watch::Sender<u64>>>>,
    /// Removes the password from connection errors before they are logged.
    redactor: Redactor,
}

impl Signal {
    pub(super) fn new(redactor: Redactor) -> Self {
        Self {
            running: Mutex::new(None),
            redactor,
        }
    }

    /// A receiver of the running listener's wake-ups, starting the listener when none runs.
    /// `None` without a tokio runtime (there is nowhere to run it).
    pub(super) fn subscribe(
        self: &Arc<Self>,
        pool: &PgPool,
        acquire_timeout: Duration,
    ) -> Option<watch::Receiver<u64>> {
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(tx) = running.as_ref()
            && tx.receiver_count() > 0
        {
            // Its task is running and cannot end while this lock is held; from now on it
            // has a receiver again, so it goes on.
            return Some(tx.subscribe());
        }
        // None runs, or one is ending (its last receiver is gone): start a new one.
        let (tx, rx) = watch::channel(0);
        let tx = Arc::new(tx);
        *running = Some(tx.clone());
        let pool = listener_pool(&pool.connect_options(), acquire_timeout);
        runtime.spawn(listen(pool, tx, self.clone()));
        Some(rx)
    }

    /// Whether the task of `tx` may end: no receiver is left. Decided under the lock, so no
    /// subscribe can hand out a receiver of `tx` afterwards.
    fn may_end(&self, tx: &Arc<watch::Sender<u64>>) -> bool {
        let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        if tx.receiver_count() > 0 {
            return false;
        }
        if running.as_ref().is_some_and(|r| Arc::ptr_eq(r, tx)) {
            *running = None;
        }
        true
    }
}

/// A pool of one connection for [`PgListener`], which keeps its connection for as long as
/// it listens (and takes a new one from this pool when it reconnects).
fn listener_pool(options: &PgConnectOptions, acquire_timeout: Duration) -> PgPool {
    PgPoolOptions::new()
        .max_connections(1)
        .min_connections(0)
        .acquire_timeout(acquire_timeout)
        .idle_timeout(None)
        .max_lifetime(None)
        .connect_lazy_with(options.clone())
}

/// One more wake-up: a revocation was announced, or some may have been missed.
fn bump(tx: &watch::Sender<u64>) {
    tx.send_modify(|n| *n = n.wrapping_add(1));
}

/// The listener task: connect, `LISTEN`, bump, then bump once per notification. After a
/// lost connection it reconnects and bumps again: notifications sent while it was away are
/// lost, so the receivers must read the revocations again.
async fn listen(pool: PgPool, tx: Arc<watch::Sender<u64>>, signal: Arc<Signal>) {
    let mut backoff = FIRST_BACKOFF;
    'connect: loop {
        let attempt = async {
            let mut listener = PgListener::connect_with(&pool).await?;
            // When the connection drops inside `try_recv`, reconnect (and LISTEN again)
            // before it answers `Ok(None)`: the bump for the reconnect then comes after
            // the new LISTEN is in place, so no revocation falls between the two.
            listener.eager_reconnect(true);
            listener.listen(CHANNEL).await?;
            Ok::<_, sqlx::Error>(listener)
        };
        let mut listener = match first(tx.closed(), attempt).await {
            Either::Left(()) => {
                if signal.may_end(&tx) {
                    break 'connect;
                }
                continue 'connect;
            }
            Either::Right(Ok(listener)) => listener,
            Either::Right(Err(e)) => {
                tracing::warn!(
                    target: "s2s_auth::revocation",
                    error = %signal.redactor.redact(e.to_string()),
                    retry_in = ?backoff,
                    "cannot listen for revocations in PostgreSQL; replicas poll meanwhile"
                );
                if let Either::Left(()) = first(tx.closed(), tokio::time::sleep(backoff)).await
                    && signal.may_end(&tx)
                {
                    break 'connect;
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue 'connect;
            }
        };
        backoff = FIRST_BACKOFF;
        // Listening from here on; what was revoked before may not have been announced to us.
        bump(&tx);
        loop {
            match first(tx.closed(), listener.try_recv()).await {
                Either::Left(()) => {
                    if signal.may_end(&tx) {
                        break 'connect;
                    }
                    // Subscribed again just now. The receive was cancelled halfway, so
                    // start over on a fresh connection rather than trust that one.
                    continue 'connect;
                }
                Either::Right(Ok(Some(_notification))) => bump(&tx),
                // Lost and re-established (see `eager_reconnect` above).
                Either::Right(Ok(None)) => bump(&tx),
                Either::Right(Err(e)) => {
                    tracing::warn!(
                        target: "s2s_auth::revocation",
                        error = %signal.redactor.redact(e.to_string()),
                        "lost the PostgreSQL revocation listener; reconnecting"
                    );
                    continue 'connect;
                }
            }
        }
    }
    pool.close().await;
}

enum Either<A, B> {
    Left(A),
    Right(B),
}

/// Whichever of two futures finishes first (`left` when both are ready); the other is
/// dropped. The library's tokio has no `select!` (no `macros` feature).
async fn first<A: Future, B: Future>(left: A, right: B) -> Either<A::Output, B::Output> {
    let mut left = pin!(left);
    let mut right = pin!(right);
    std::future::poll_fn(|cx| {
        if let Poll::Ready(v) = left.as_mut().poll(cx) {
            return Poll::Ready(Either::Left(v));
        }
        if let Poll::Ready(v) = right.as_mut().poll(cx) {
            return Poll::Ready(Either::Right(v));
        }
        Poll::Pending
    })
    .await
}
