//! What a cached token costs in memory: the heap a service holds after verifying 20,000
//! distinct JWTs with the verified-token cache on, less the same with it off, per token.
//! The figure is the one `AuthBuilder::verified_cache_capacity` documents, and this test
//! keeps it true (the bound below is that figure with a margin).
//!
//! One test in this binary, so no other test allocates while it counts.

#[path = "kit/mod.rs"]
mod kit;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Arc;
use std::sync::atomic::{AtomicIsize, Ordering};

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::{Request, StatusCode};
use kit::{InProcessJwks, SigningKey, jwks, now};
use s2s_auth::{Auth, JwksAccess};
use serde_json::json;
use tower::ServiceExt;

/// Bytes currently allocated through the global allocator.
static LIVE: AtomicIsize = AtomicIsize::new(0);

struct Counting;

// SAFETY: every call is forwarded unchanged to the system allocator; the counter is only
// arithmetic on the sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's layout, passed on.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: a pointer this allocator handed out, with its layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        // SAFETY: as for `dealloc` and `alloc`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const URL: &str = "https://idp.example.com/jwks";
const TOKENS: usize = 20_000;

/// Heap held after `tokens` went through an app with the given cache capacity, less the
/// heap held before the first request.
async fn held_after(tokens: &[String], capacity: u64, key: &SigningKey) -> isize {
    let fetcher = Arc::new(InProcessJwks::default());
    fetcher.serve_document(URL, jwks(&[key]).to_string().into_bytes());
    let auth = Auth::builder("catalog")
        .key_fetcher(fetcher)
        .verified_cache_capacity(capacity)
        .jwks_access(
            JwksAccess::new(URL)
                .issuers(["https://idp.example.com"])
                .audiences(["catalog"])
                .subject_prefix("idp"),
        )
        .build()
        .expect("builds");
    let app = Router::new()
        .route("/x", get(|| async { "ok" }))
        .layer(auth.layer());
    // The first request fetches the key set: not part of what is measured.
    let send = |token: &str| {
        Request::get("/x")
            .header("authorization", format!("Bearer {token}"))
            .body(Body::empty())
            .expect("request")
    };
    let reply = app.clone().oneshot(send(&tokens[0])).await.expect("reply");
    assert_eq!(reply.status(), StatusCode::OK);
    let before = LIVE.load(Ordering::Relaxed);
    for token in tokens {
        let reply = app.clone().oneshot(send(token)).await.expect("reply");
        assert_eq!(reply.status(), StatusCode::OK);
    }
    let after = LIVE.load(Ordering::Relaxed);
    drop(app);
    after - before
}

#[tokio::test(flavor = "current_thread")]
async fn memory_per_cached_token() {
    let key = SigningKey::es256("idp-key-2026-12");
    let now = now();
    // Realistic sizes: a 36-character subject, a uuid `jti`, the usual claims.
    let tokens: Vec<String> = (0..TOKENS)
        .map(|n| {
            key.sign(&json!({
                "iss": "https://idp.example.com", "aud": "catalog",
                "sub": format!("deploy-bot-{n:08}-0000-0000-000000000000"),
                "jti": format!("{n:08}-1111-2222-3333-444444444444"),
                "iat": now, "exp": now + 3600,
            }))
        })
        .collect();
    let off = held_after(&tokens, 0, &key).await;
    let on = held_after(&tokens, TOKENS as u64, &key).await;
    let per_token = (on - off) / TOKENS as isize;
    println!(
        "heap held per cached token: {per_token} bytes, of which the token is {} (cache on {on} B, off {off} B, {TOKENS} tokens)",
        tokens[0].len()
    );
    // The documented figure (`AuthBuilder::verified_cache_capacity`): about 420 bytes plus
    // the token itself (these are 390 bytes long).
    let len = tokens[0].len() as isize;
    assert!(
        (300..=480).contains(&(per_token - len)),
        "{per_token} bytes per cached token: update the documented figure"
    );
}
