//! Service-account tokens against static tokens, side by side in one process:
//!
//! - `service_account/static_10000_tokens`: the layer with 10,000 static tokens, one of
//!   them sent every request (the same case as `request/static_10000_tokens` in `layer`);
//! - `service_account/account_token_10000_tokens`: the layer with service accounts, 1,000
//!   accounts of 10 tokens each, one of the tokens sent every request;
//! - a paired, interleaved check of the two (rounds of batches, alternating which side runs
//!   first), and the store calls counted over all of it: verification must need none.
//!
//! Target (issue 13): a service-account token within 1.5x of a static token, and no store
//! access per request. `cargo bench --bench service_accounts` runs it and rewrites its
//! section of `BENCHMARKS.md`; `cargo test --benches` runs each routine once and writes
//! nothing.

#[allow(dead_code)]
mod report;

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::routing::get;
use http::{HeaderValue, StatusCode};
use s2s_auth::restrictions::{AccessRestriction, AccessRestrictions};
use s2s_auth::service_account::ServiceAccounts;
use s2s_auth::store::{
    AccountToken, AccountsSnapshot, MemoryStore, PublicKeyRecord, ServiceAccount, Store,
    StoreFuture, TokenDigest,
};
use s2s_auth::{Auth, StaticToken};
use tokio::runtime::Runtime;
use tower::ServiceExt;

use report::request::{self, ITEM_PATH, ITEM_URI, ok};

const ACCOUNTS: usize = 1_000;
const TOKENS_PER_ACCOUNT: usize = 10;
const STATIC_TOKENS: usize = 10_000;
const RATIO_LIMIT: f64 = 1.5;
const PAIRED_ROUNDS: usize = 21;
const PAIRED_BATCH: u32 = 20_000;

/// A store that counts every service-account call made of it.
struct Counting {
    inner: MemoryStore,
    calls: AtomicUsize,
}

impl Counting {
    fn count<'a, T>(&'a self, f: StoreFuture<'a, T>) -> StoreFuture<'a, T> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        f
    }
}

impl Store for Counting {
    fn put_public_key<'a>(&'a self, key: &'a PublicKeyRecord) -> StoreFuture<'a, ()> {
        self.inner.put_public_key(key)
    }
    fn public_keys<'a>(&'a self, s: &'a str, now: i64) -> StoreFuture<'a, Vec<PublicKeyRecord>> {
        self.inner.public_keys(s, now)
    }
    fn prune_public_keys(&self, now: i64) -> StoreFuture<'_, u64> {
        self.inner.prune_public_keys(now)
    }
    fn create_account<'a>(&'a self, a: &'a ServiceAccount) -> StoreFuture<'a, ()> {
        self.count(self.inner.create_account(a))
    }
    fn account<'a>(&'a self, n: &'a str) -> StoreFuture<'a, Option<ServiceAccount>> {
        self.count(self.inner.account(n))
    }
    fn create_account_token<'a>(&'a self, t: &'a AccountToken) -> StoreFuture<'a, ()> {
        self.count(self.inner.create_account_token(t))
    }
    fn account_tokens<'a>(&'a self, a: &'a str) -> StoreFuture<'a, Vec<AccountToken>> {
        self.count(self.inner.account_tokens(a))
    }
    fn touch_account_tokens<'a>(&'a self, u: &'a [(String, i64)]) -> StoreFuture<'a, ()> {
        self.count(self.inner.touch_account_tokens(u))
    }
    fn accounts_snapshot(&self) -> StoreFuture<'_, AccountsSnapshot> {
        self.count(self.inner.accounts_snapshot())
    }
}

/// The `i`-th service-account token: the prefix and 43 base64url characters.
fn account_token(i: usize) -> String {
    format!("s2s_sa_{i:05}{}", "x".repeat(38))
}

fn static_token(i: usize) -> String {
    format!("s2s-bench-token-{i:05}-9f3c1a7e52d04b68")
}

struct Fixtures {
    static_app: Router,
    account_app: Router,
    static_header: HeaderValue,
    account_header: HeaderValue,
    store: Arc<Counting>,
}

fn fixtures(rt: &Runtime) -> Fixtures {
    let plain = || Router::new().route(ITEM_PATH, get(ok));
    let auth = (0..STATIC_TOKENS).fold(Auth::builder("catalog"), |b, i| {
        b.static_token(StaticToken::new(format!("caller-{i}"), static_token(i)))
    });
    let static_auth = auth.build().expect("builds");
    let store = Arc::new(Counting {
        inner: MemoryStore::new(),
        calls: AtomicUsize::new(0),
    });
    let permissions =
        AccessRestrictions::new([AccessRestriction::plugin("catalog")]).expect("valid");
    rt.block_on(async {
        for a in 0..ACCOUNTS {
            let name = format!("account-{a:04}");
            store
                .create_account(&ServiceAccount {
                    name: name.clone(),
                    description: String::new(),
                    permissions: permissions.clone(),
                    enabled: true,
                    created_at: 1,
                    updated_at: 1,
                })
                .await
                .expect("stored");
            for t in 0..TOKENS_PER_ACCOUNT {
                let i = a * TOKENS_PER_ACCOUNT + t;
                store
                    .create_account_token(&AccountToken {
                        id: format!("sat_{i:024x}"),
                        account: name.clone(),
                        name: format!("t{t}"),
                        digest: TokenDigest(report::sha256(account_token(i).as_bytes())),
                        permissions: None,
                        expires_at: None,
                        created_at: 1,
                        last_used_at: None,
                    })
                    .await
                    .expect("stored");
            }
        }
    });
    // A staleness of an hour: the background read (every 30 min) does not run during the
    // bench, so any store call counted during it would be one made by a request.
    let account_auth = Auth::builder("catalog")
        .service_accounts(
            ServiceAccounts::new(["user:default/ops"])
                .store(store.clone())
                .staleness(Duration::from_secs(3600))
                .last_used_interval(Duration::from_secs(3600)),
        )
        .build()
        .expect("builds");
    rt.block_on(async {
        account_auth
            .service_accounts()
            .expect("configured")
            .reload()
            .await
            .expect("read");
    });
    let f = Fixtures {
        static_app: plain().layer(static_auth.layer()),
        account_app: plain().layer(account_auth.layer()),
        static_header: request::bearer(&static_token(7)),
        account_header: request::bearer(&account_token(4_567)),
        store,
    };
    for (app, header) in [
        (&f.static_app, &f.static_header),
        (&f.account_app, &f.account_header),
    ] {
        let (status, body) = request::send(rt, app, request::get(ITEM_URI, header.clone()));
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (status, _) = request::send(
        rt,
        &f.account_app,
        request::get(
            ITEM_URI,
            request::bearer(&account_token(ACCOUNTS * TOKENS_PER_ACCOUNT)),
        ),
    );
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "an unknown token is refused"
    );
    f
}

fn send(app: &Router, header: &HeaderValue) -> impl Future<Output = ()> + use<> {
    let req = request::get(ITEM_URI, header.clone());
    let app = app.clone();
    async move {
        black_box(app.oneshot(req).await.ok());
    }
}

fn batch(rt: &Runtime, app: &Router, header: &HeaderValue, n: u32) -> f64 {
    rt.block_on(async {
        let start = Instant::now();
        for _ in 0..n {
            send(app, header).await;
        }
        start.elapsed().as_secs_f64() * 1e9 / f64::from(n)
    })
}

fn main() {
    let started = SystemTime::now();
    let rt = report::runtime();
    let f = fixtures(&rt);
    let calls_before = f.store.calls.load(Ordering::SeqCst);
    let mut c = report::criterion(4, 100);
    let mut group = c.benchmark_group("service_account");
    group.bench_function("static_10000_tokens", |b| {
        b.to_async(&rt)
            .iter(|| send(&f.static_app, &f.static_header));
    });
    group.bench_function("account_token_10000_tokens", |b| {
        b.to_async(&rt)
            .iter(|| send(&f.account_app, &f.account_header));
    });
    group.finish();
    c.final_summary();
    if !report::is_full_run() {
        return;
    }
    println!(
        "Paired, interleaved check ({PAIRED_ROUNDS} rounds of {PAIRED_BATCH} requests a side)…"
    );
    let times = report::round_robin(PAIRED_ROUNDS, 2, |side| match side {
        0 => batch(&rt, &f.static_app, &f.static_header, PAIRED_BATCH),
        _ => batch(&rt, &f.account_app, &f.account_header, PAIRED_BATCH),
    });
    let ratios: Vec<f64> = times[1].iter().zip(&times[0]).map(|(a, s)| a / s).collect();
    let ratio = report::Figure::of(ratios);
    let static_ns = report::Figure::of(times[0].clone());
    let account_ns = report::Figure::of(times[1].clone());
    let store_calls = f.store.calls.load(Ordering::SeqCst) - calls_before;
    let requests = (PAIRED_ROUNDS + 1) as u64 * u64::from(PAIRED_BATCH);
    summary(started, ratio, static_ns, account_ns, store_calls, requests);
}

fn summary(
    started: SystemTime,
    ratio: report::Figure,
    static_ns: report::Figure,
    account_ns: report::Figure,
    store_calls: usize,
    paired_requests: u64,
) {
    use report::{machine_section, now_utc, ns, ratio as r};
    let benches = [
        "service_account/static_10000_tokens",
        "service_account/account_token_10000_tokens",
    ];
    let Some(est) = report::estimates_of_this_run("service_accounts", benches, started) else {
        return;
    };
    let crit = est[1].mean / est[0].mean;
    let ok = ratio.median <= RATIO_LIMIT && crit <= RATIO_LIMIT && store_calls == 0;
    let mut body = format!(
        "## Service-account tokens (`cargo bench --bench service_accounts`)\n\n\
         Generated {} from one run. The layer over one handler: 10,000 static tokens, one sent\n\
         every request, against {ACCOUNTS} service accounts of {TOKENS_PER_ACCOUNT} tokens, one\n\
         sent every request. Target: a service-account token within {RATIO_LIMIT}x of a static\n\
         token, no store access per request.\n\n\
         | bench | mean | median |\n|---|---|---|\n",
        now_utc()
    );
    for (bench, e) in benches.iter().zip(&est) {
        body.push_str(&format!(
            "| `{bench}` | {} | {} |\n",
            ns(e.mean),
            ns(e.median)
        ));
    }
    body.push_str(&format!(
        "\n| check | figure | target | verdict |\n|---|---|---|---|\n\
         | service-account / static, criterion means | {} | <= {RATIO_LIMIT} | {} |\n\
         | service-account / static, paired median ({PAIRED_ROUNDS} rounds, IQR {}) | {} (static {}, service account {}) | <= {RATIO_LIMIT} | {} |\n\
         | store calls during the criterion and paired runs ({paired_requests} paired requests and criterion's) | {store_calls} | 0 | {} |\n\n\
         Overall: {}.\n\n{}",
        r(crit),
        if crit <= RATIO_LIMIT { "PASS" } else { "MISS" },
        ratio.iqr(r),
        r(ratio.median),
        ns(static_ns.median),
        ns(account_ns.median),
        if ratio.median <= RATIO_LIMIT { "PASS" } else { "MISS" },
        if store_calls == 0 { "PASS" } else { "MISS" },
        if ok { "PASS" } else { "MISS" },
        machine_section("release (cargo bench)"),
    ));
    report::write_section("service_accounts", &body);
}
