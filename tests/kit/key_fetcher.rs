//! Key sets without a socket: a [`KeyFetcher`] that answers by URL, in process.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

use axum::Router;
use axum::body::Body;
use http::Request;
use s2s_auth::jwks::FetchFuture;
use s2s_auth::jwks::{FetchError, FetchedDocument, KeyFetcher};
use tower::ServiceExt;

/// A [`KeyFetcher`] that serves key sets by URL, in process, and counts its fetches:
/// documents held in memory, and routers (a service's own `jwks_router()`) called with
/// `oneshot` for the URLs below their base. Anything else is a 404. It passes on no
/// `Cache-Control`, so a JWKS cache keeps its default refresh.
#[derive(Default)]
pub struct InProcessJwks {
    /// By URL.
    documents: Mutex<HashMap<String, Vec<u8>>>,
    /// By base URL.
    routers: Mutex<Vec<(String, Router)>>,
    fetches: AtomicUsize,
}

impl InProcessJwks {
    /// Answers `url` with `body`.
    pub fn serve_document(&self, url: &str, body: Vec<u8>) {
        let mut documents = self
            .documents
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        documents.insert(url.to_owned(), body);
    }

    /// Answers every URL below `base` by calling `router` with the rest of the URL as path.
    pub fn mount(&self, base: &str, router: Router) {
        let mut routers = self.routers.lock().unwrap_or_else(PoisonError::into_inner);
        routers.push((base.to_owned(), router));
    }

    /// Fetches so far.
    pub fn fetches(&self) -> usize {
        self.fetches.load(Ordering::Relaxed)
    }

    /// Counts from zero again.
    pub fn reset_fetches(&self) {
        self.fetches.store(0, Ordering::Relaxed);
    }

    fn document(&self, url: &str) -> Option<Vec<u8>> {
        let documents = self
            .documents
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        documents.get(url).cloned()
    }

    /// The router mounted at a base `url` starts with, and the path after the base.
    fn router<'u>(&self, url: &'u str) -> Option<(Router, &'u str)> {
        let routers = self.routers.lock().unwrap_or_else(PoisonError::into_inner);
        routers.iter().find_map(|(base, router)| {
            let path = url.strip_prefix(base.as_str())?;
            Some((router.clone(), path))
        })
    }
}

impl KeyFetcher for InProcessJwks {
    fn fetch<'a>(&'a self, url: &'a str, max_bytes: usize) -> FetchFuture<'a> {
        Box::pin(async move {
            self.fetches.fetch_add(1, Ordering::Relaxed);
            if let Some(body) = self.document(url) {
                if body.len() > max_bytes {
                    return Err(FetchError::TooLarge { limit: max_bytes });
                }
                return Ok(FetchedDocument::new(body));
            }
            let (router, path) = self.router(url).ok_or(FetchError::Status(404))?;
            let req = Request::get(path)
                .body(Body::empty())
                .map_err(|e| FetchError::Transport(e.to_string()))?;
            let Ok(res) = router.oneshot(req).await;
            if !res.status().is_success() {
                return Err(FetchError::Status(res.status().as_u16()));
            }
            let body = axum::body::to_bytes(res.into_body(), max_bytes)
                .await
                .map_err(|_| FetchError::TooLarge { limit: max_bytes });
            Ok(FetchedDocument::new(body?.to_vec()))
        })
    }
}
