//! Service accounts in the store: one suite run against every backend (memory, SQLite in
//! memory and in a file, PostgreSQL), then what only one backend can show: PostgreSQL
//! waking the other replicas after an account or token write (and not after a last-used
//! batch), and neither SQL store ever holding a token in plain text.
//!
//! The PostgreSQL tests read `S2S_TEST_POSTGRES_URL` ([`common::postgres_url`]). Without it
//! they print `SKIPPED` and pass, except under `CI=true`, where they fail.

mod common;

use std::fmt::Debug;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use s2s_auth::restrictions::{AccessRestriction, AccessRestrictions, Action};
use s2s_auth::store::{
    AccountToken, AccountsSnapshot, MemoryStore, PostgresStore, ServiceAccount, SqliteStore, Store,
    StoreError, TokenDigest,
};

// ---------------------------------------------------------------------------------------
// Helpers

/// This process, in hex: `<pid>-<nanos>`, so runs sharing one PostgreSQL database never
/// meet.
fn process_tag() -> &'static str {
    static TAG: OnceLock<String> = OnceLock::new();
    TAG.get_or_init(|| {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("the clock is after 1970")
            .subsec_nanos();
        format!("{:x}-{nanos:x}", std::process::id())
    })
}

/// A prefix for the account names of one test (or one suite run): valid as the start of
/// an account name, unique to this process and call.
fn run() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!("t{}-{}", process_tag(), N.fetch_add(1, Ordering::Relaxed))
}

/// A token id (`sat_` and 24 hex digits) no other token of any run has.
fn token_id() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .subsec_nanos();
    static START: OnceLock<u32> = OnceLock::new();
    let start = *START.get_or_init(|| nanos);
    format!(
        "sat_{:08x}{start:08x}{:08x}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn sha256(text: &str) -> TokenDigest {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, text.as_bytes());
    TokenDigest(digest.as_ref().try_into().expect("SHA-256 has 32 bytes"))
}

fn catalog_only() -> AccessRestrictions {
    AccessRestrictions::new([AccessRestriction::plugin("catalog")]).unwrap()
}

fn account(name: &str) -> ServiceAccount {
    ServiceAccount {
        name: name.to_owned(),
        description: "deploys the catalog".into(),
        permissions: catalog_only(),
        enabled: true,
        created_at: 1_700_000_000,
        updated_at: 1_700_000_000,
    }
}

/// A token of `account` with a fresh id, and the digest of a string no other token has.
fn token(account: &str, name: &str) -> AccountToken {
    let id = token_id();
    AccountToken {
        digest: sha256(&format!("token {id}")),
        id,
        account: account.to_owned(),
        name: name.to_owned(),
        permissions: None,
        expires_at: None,
        created_at: 1_700_000_100,
        last_used_at: None,
    }
}

fn names(tokens: &[AccountToken]) -> Vec<&str> {
    tokens.iter().map(|t| t.name.as_str()).collect()
}

fn assert_conflict<T: Debug>(result: Result<T, StoreError>) {
    assert!(matches!(result, Err(StoreError::Conflict(_))), "{result:?}");
}

fn assert_not_found<T: Debug>(result: Result<T, StoreError>) {
    assert!(matches!(result, Err(StoreError::NotFound(_))), "{result:?}");
}

fn assert_invalid<T: Debug>(result: Result<T, StoreError>) {
    assert!(matches!(result, Err(StoreError::Invalid(_))), "{result:?}");
}

/// The part of a snapshot whose account names start with `prefix` (a shared PostgreSQL
/// database holds other tests' and other runs' accounts too).
fn only(snapshot: &AccountsSnapshot, prefix: &str) -> AccountsSnapshot {
    AccountsSnapshot {
        accounts: snapshot
            .accounts
            .iter()
            .filter(|a| a.name.starts_with(prefix))
            .cloned()
            .collect(),
        tokens: snapshot
            .tokens
            .iter()
            .filter(|t| t.account.starts_with(prefix))
            .cloned()
            .collect(),
    }
}

/// A SQLite file in the temp directory, deleted (with its WAL files) on drop.
struct TempDb(PathBuf);

impl TempDb {
    fn new(name: &str) -> Self {
        Self(std::env::temp_dir().join(format!("s2s-auth-accounts-{name}-{}.sqlite", run())))
    }

    fn path(&self) -> &str {
        self.0.to_str().expect("temp paths are UTF-8 here")
    }

    /// Every file SQLite keeps the database in, WAL first: a checkpoint copies the WAL into
    /// the main file before it removes the WAL, so what was written is in one of the two
    /// whenever they are read in this order.
    fn bytes(&self) -> Vec<u8> {
        let mut all = Vec::new();
        for suffix in ["-wal", "-journal", ""] {
            let mut file = self.0.clone().into_os_string();
            file.push(suffix);
            if let Ok(bytes) = std::fs::read(file) {
                all.extend(bytes);
            }
        }
        all
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let mut file = self.0.clone().into_os_string();
            file.push(suffix);
            let _ = std::fs::remove_file(file);
        }
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// One at a time: the PostgreSQL tests share one database, and the signal tests count
/// what the others would announce.
static POSTGRES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

// ---------------------------------------------------------------------------------------
// The suite every backend passes

async fn suite(store: &dyn Store) {
    creates_gets_and_refuses_a_taken_name(store).await;
    refuses_bad_names_and_descriptions(store).await;
    update_keeps_created_at_and_needs_the_account(store).await;
    lists_tokens_by_name_and_refuses_a_taken_name_id_or_digest(store).await;
    a_token_of_an_absent_account_is_not_found(store).await;
    deletes_a_token_once(store).await;
    touch_raises_last_used_never_lowers_it_and_skips_unknown_ids(store).await;
    deleting_an_account_deletes_its_tokens(store).await;
    names_that_cannot_be_stored_have_nothing_stored(store).await;
    permissions_and_fields_round_trip_exactly(store).await;
    snapshot_is_in_byte_order(store).await;
    snapshot_never_shows_a_token_without_its_account(store).await;
}

async fn creates_gets_and_refuses_a_taken_name(store: &dyn Store) {
    let a = account(&format!("{}.create", run()));
    assert_eq!(store.account(&a.name).await.unwrap(), None);
    store.create_account(&a).await.unwrap();
    assert_eq!(store.account(&a.name).await.unwrap(), Some(a.clone()));

    // A second create under the name is refused whole: nothing of it is stored.
    let mut other = a.clone();
    other.description = "an impostor".into();
    other.permissions = AccessRestrictions::new([AccessRestriction::plugin("scaffolder")]).unwrap();
    assert_conflict(store.create_account(&other).await);
    assert_eq!(store.account(&a.name).await.unwrap(), Some(a));
}

async fn refuses_bad_names_and_descriptions(store: &dyn Store) {
    for bad in [
        "CI".to_owned(),
        "a:b".into(),
        "a/b".into(),
        String::new(),
        "a".repeat(64),
    ] {
        assert_invalid(store.create_account(&account(&bad)).await);
        assert_invalid(store.update_account(&account(&bad)).await);
        assert_eq!(store.account(&bad).await.unwrap(), None, "{bad:?}");
    }
    let mut a = account(&format!("{}.description", run()));
    a.description = "rings a bell\x07".into();
    assert_invalid(store.create_account(&a).await);
    assert_eq!(store.account(&a.name).await.unwrap(), None);

    // Tokens: the same name rule, and ids are `sat_` and 24 lower-case hex digits.
    let owner = format!("{}.badtokens", run());
    store.create_account(&account(&owner)).await.unwrap();
    for bad in ["CI", "a:b", "a/b", ""] {
        assert_invalid(store.create_account_token(&token(&owner, bad)).await);
    }
    let mut t = token(&owner, "ci");
    for bad in [
        "sat_0123456789ABCDEF01234567",
        "sat_0123",
        "tok_0123456789abcdef01234567",
    ] {
        t.id = bad.into();
        assert_invalid(store.create_account_token(&t).await);
    }
    assert!(store.account_tokens(&owner).await.unwrap().is_empty());
}

async fn update_keeps_created_at_and_needs_the_account(store: &dyn Store) {
    let created = account(&format!("{}.update", run()));
    store.create_account(&created).await.unwrap();
    let mut changed = created.clone();
    changed.description = "deploys the catalog, read-only now".into();
    changed.permissions =
        AccessRestrictions::new([AccessRestriction::plugin("catalog").actions([Action::Read])])
            .unwrap();
    changed.enabled = false;
    changed.updated_at = created.updated_at + 60;
    changed.created_at = 42; // a caller's mistake, not a way to rewrite history
    store.update_account(&changed).await.unwrap();
    let stored = store.account(&created.name).await.unwrap().unwrap();
    assert_eq!(
        stored,
        ServiceAccount {
            created_at: created.created_at,
            ..changed
        }
    );

    let absent = account(&format!("{}.never-created", run()));
    assert_not_found(store.update_account(&absent).await);
    assert_eq!(store.account(&absent.name).await.unwrap(), None);
}

async fn lists_tokens_by_name_and_refuses_a_taken_name_id_or_digest(store: &dyn Store) {
    let (owner, neighbour) = (format!("{}.tokens", run()), format!("{}.next", run()));
    store.create_account(&account(&owner)).await.unwrap();
    store.create_account(&account(&neighbour)).await.unwrap();
    let zeta = token(&owner, "zeta");
    let alpha = token(&owner, "alpha");
    let mid = token(&owner, "mid-1");
    for t in [&zeta, &alpha, &mid] {
        store.create_account_token(t).await.unwrap();
    }
    let listed = store.account_tokens(&owner).await.unwrap();
    assert_eq!(names(&listed), ["alpha", "mid-1", "zeta"]);
    assert_eq!(listed, vec![alpha.clone(), mid, zeta]);

    // A taken name within the account (fresh id and digest).
    assert_conflict(store.create_account_token(&token(&owner, "alpha")).await);
    // A taken id, even in another account.
    let mut same_id = token(&neighbour, "fresh");
    same_id.id = alpha.id.clone();
    assert_conflict(store.create_account_token(&same_id).await);
    // A taken digest, even in another account: one token would verify as two.
    let mut same_digest = token(&neighbour, "fresh");
    same_digest.digest = alpha.digest;
    assert_conflict(store.create_account_token(&same_digest).await);
    assert_eq!(store.account_tokens(&owner).await.unwrap(), listed);
    assert!(store.account_tokens(&neighbour).await.unwrap().is_empty());

    // The same token name in another account is another token.
    let other_alpha = token(&neighbour, "alpha");
    store.create_account_token(&other_alpha).await.unwrap();
    assert_eq!(
        store.account_tokens(&neighbour).await.unwrap(),
        vec![other_alpha]
    );
}

async fn a_token_of_an_absent_account_is_not_found(store: &dyn Store) {
    let absent = format!("{}.absent", run());
    assert_not_found(store.create_account_token(&token(&absent, "ci")).await);
    assert_eq!(store.account(&absent).await.unwrap(), None);
    assert!(store.account_tokens(&absent).await.unwrap().is_empty());
}

async fn deletes_a_token_once(store: &dyn Store) {
    let (owner, other) = (format!("{}.revoke", run()), format!("{}.bystander", run()));
    store.create_account(&account(&owner)).await.unwrap();
    store.create_account(&account(&other)).await.unwrap();
    let (gone, kept) = (token(&owner, "gone"), token(&owner, "kept"));
    store.create_account_token(&gone).await.unwrap();
    store.create_account_token(&kept).await.unwrap();

    // Another account cannot revoke it by its id.
    assert!(!store.delete_account_token(&other, &gone.id).await.unwrap());
    assert!(store.delete_account_token(&owner, &gone.id).await.unwrap());
    assert!(!store.delete_account_token(&owner, &gone.id).await.unwrap());
    assert_eq!(store.account_tokens(&owner).await.unwrap(), vec![kept]);
}

async fn touch_raises_last_used_never_lowers_it_and_skips_unknown_ids(store: &dyn Store) {
    let owner = format!("{}.touch", run());
    store.create_account(&account(&owner)).await.unwrap();
    let (first, second) = (token(&owner, "first"), token(&owner, "second"));
    store.create_account_token(&first).await.unwrap();
    store.create_account_token(&second).await.unwrap();
    let last_used = |tokens: Vec<AccountToken>| -> Vec<Option<i64>> {
        tokens.iter().map(|t| t.last_used_at).collect()
    };

    store.touch_account_tokens(&[]).await.unwrap();
    store
        .touch_account_tokens(&[(first.id.clone(), 100)])
        .await
        .unwrap();
    assert_eq!(
        last_used(store.account_tokens(&owner).await.unwrap()),
        [Some(100), None]
    );
    // An older time (a batch from a replica that lagged) does not lower it.
    store
        .touch_account_tokens(&[(first.id.clone(), 50)])
        .await
        .unwrap();
    assert_eq!(
        last_used(store.account_tokens(&owner).await.unwrap()),
        [Some(100), None]
    );
    // One call for a batch; ids no token has (or no token could have) are skipped.
    store
        .touch_account_tokens(&[
            (token_id(), 500),
            (first.id.clone(), 200),
            ("not-a-token-id".into(), 500),
            ("sat_\0".into(), 500),
            (second.id.clone(), 300),
        ])
        .await
        .unwrap();
    let touched = store.account_tokens(&owner).await.unwrap();
    assert_eq!(last_used(touched.clone()), [Some(200), Some(300)]);
    // Nothing else of the tokens changed.
    assert_eq!(
        touched,
        vec![
            AccountToken {
                last_used_at: Some(200),
                ..first
            },
            AccountToken {
                last_used_at: Some(300),
                ..second
            },
        ]
    );
}

async fn deleting_an_account_deletes_its_tokens(store: &dyn Store) {
    let owner = format!("{}.delete", run());
    store.create_account(&account(&owner)).await.unwrap();
    let tokens = [token(&owner, "a"), token(&owner, "b")];
    for t in &tokens {
        store.create_account_token(t).await.unwrap();
    }
    assert!(store.delete_account(&owner).await.unwrap());
    assert!(!store.delete_account(&owner).await.unwrap());
    assert_eq!(store.account(&owner).await.unwrap(), None);
    assert!(store.account_tokens(&owner).await.unwrap().is_empty());
    let snapshot = store.accounts_snapshot().await.unwrap();
    assert!(
        !snapshot
            .tokens
            .iter()
            .any(|t| tokens.iter().any(|gone| gone.id == t.id))
    );
    assert!(
        !store
            .delete_account_token(&owner, &tokens[0].id)
            .await
            .unwrap()
    );

    // An account created again under the name starts without tokens, and the old tokens'
    // ids, names and digests are free again: nothing of them was left behind.
    store.create_account(&account(&owner)).await.unwrap();
    assert!(store.account_tokens(&owner).await.unwrap().is_empty());
    store.create_account_token(&tokens[0]).await.unwrap();
    assert_eq!(
        store.account_tokens(&owner).await.unwrap(),
        vec![tokens[0].clone()]
    );
}

async fn names_that_cannot_be_stored_have_nothing_stored(store: &dyn Store) {
    // A NUL, too: PostgreSQL text cannot hold one, and every store answers alike.
    for bad in ["a\0b", "CI", ""] {
        assert_eq!(store.account(bad).await.unwrap(), None, "{bad:?}");
        assert!(store.account_tokens(bad).await.unwrap().is_empty());
        assert!(!store.delete_account(bad).await.unwrap());
        assert!(
            !store
                .delete_account_token(bad, "sat_0123456789abcdef01234567")
                .await
                .unwrap()
        );
    }
    let owner = format!("{}.nul", run());
    store.create_account(&account(&owner)).await.unwrap();
    assert!(!store.delete_account_token(&owner, "sat_\0").await.unwrap());
}

async fn permissions_and_fields_round_trip_exactly(store: &dyn Store) {
    let mut a = account(&format!("{}.round-trip", run()));
    a.description = "line one\n\tläuft ✓ \"quoted\" 'single'".into();
    // Not in plugin order: the order given is the order kept.
    a.permissions = AccessRestrictions::new([
        AccessRestriction::plugin("search").actions([Action::Read]),
        AccessRestriction::plugin("catalog")
            .permissions(["catalog.entity.refresh", "catalog.entity.read"])
            .actions([Action::Update, Action::Read]),
        AccessRestriction::plugin("scaffolder"),
    ])
    .unwrap();
    a.enabled = false;
    a.created_at = -1;
    a.updated_at = i64::MAX;
    store.create_account(&a).await.unwrap();

    let mut narrow = token(&a.name, "narrow");
    narrow.permissions = Some(
        AccessRestrictions::new([AccessRestriction::plugin("catalog")
            .permissions(["catalog.entity.read"])
            .actions([Action::Read])])
        .unwrap(),
    );
    narrow.expires_at = Some(1_800_000_000);
    narrow.last_used_at = Some(1_700_000_200);
    let full = token(&a.name, "full");
    store.create_account_token(&narrow).await.unwrap();
    store.create_account_token(&full).await.unwrap();

    assert_eq!(store.account(&a.name).await.unwrap(), Some(a.clone()));
    let tokens = vec![full, narrow];
    assert_eq!(store.account_tokens(&a.name).await.unwrap(), tokens);
    let snapshot = only(&store.accounts_snapshot().await.unwrap(), &a.name);
    assert_eq!(
        snapshot,
        AccountsSnapshot {
            accounts: vec![a],
            tokens
        }
    );
}

async fn snapshot_is_in_byte_order(store: &dyn Store) {
    let prefix = format!("{}.order-", run());
    // Byte order: `-` < `.` < digits < `_` < letters (a locale would order them otherwise).
    let ordered = ["a", "a-x", "a.x", "a0", "a_x", "ab", "b"].map(|s| format!("{prefix}{s}"));
    for i in [6, 2, 0, 4, 1, 5, 3] {
        store.create_account(&account(&ordered[i])).await.unwrap();
    }
    let token_names = ["a-1", "a.1", "a1", "a_1", "b"];
    for owner in [&ordered[3], &ordered[0]] {
        for i in [4, 0, 3, 1, 2] {
            store
                .create_account_token(&token(owner, token_names[i]))
                .await
                .unwrap();
        }
    }

    let snapshot = store.accounts_snapshot().await.unwrap();
    // All of it in order (other tests' accounts too), not only this test's part.
    assert!(
        snapshot
            .accounts
            .windows(2)
            .all(|w| w[0].name.as_bytes() < w[1].name.as_bytes())
    );
    assert!(snapshot.tokens.windows(2).all(|w| {
        (w[0].account.as_bytes(), w[0].name.as_bytes())
            < (w[1].account.as_bytes(), w[1].name.as_bytes())
    }));
    let ours = only(&snapshot, &prefix);
    let account_names: Vec<&str> = ours.accounts.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(
        account_names,
        ordered.iter().map(String::as_str).collect::<Vec<_>>()
    );
    let listed: Vec<(&str, &str)> = ours
        .tokens
        .iter()
        .map(|t| (t.account.as_str(), t.name.as_str()))
        .collect();
    let expected: Vec<(&str, &str)> = [&ordered[0], &ordered[3]]
        .into_iter()
        .flat_map(|owner| token_names.iter().map(move |n| (owner.as_str(), *n)))
        .collect();
    assert_eq!(listed, expected);

    // The snapshot says what the single reads say.
    for a in &ours.accounts {
        assert_eq!(store.account(&a.name).await.unwrap().as_ref(), Some(a));
        let of_a: Vec<AccountToken> = ours
            .tokens
            .iter()
            .filter(|t| t.account == a.name)
            .cloned()
            .collect();
        assert_eq!(store.account_tokens(&a.name).await.unwrap(), of_a);
    }
}

/// While another task keeps creating an account with a token and deleting it again,
/// every snapshot lists each token's account: the two tables are read as of one moment.
async fn snapshot_never_shows_a_token_without_its_account(store: &dyn Store) {
    let churned = format!("{}.churn", run());
    let done = AtomicBool::new(false);
    let writer = async {
        for _ in 0..25 {
            store.create_account(&account(&churned)).await.unwrap();
            tokio::task::yield_now().await;
            store
                .create_account_token(&token(&churned, "ci"))
                .await
                .unwrap();
            tokio::task::yield_now().await;
            assert!(store.delete_account(&churned).await.unwrap());
            tokio::task::yield_now().await;
        }
        done.store(true, Ordering::Relaxed);
    };
    let reader = async {
        let mut snapshots = 0;
        while !done.load(Ordering::Relaxed) {
            let snapshot = store.accounts_snapshot().await.unwrap();
            for t in &snapshot.tokens {
                assert!(
                    snapshot.accounts.iter().any(|a| a.name == t.account),
                    "token {} listed without its account {}",
                    t.id,
                    t.account
                );
            }
            snapshots += 1;
            tokio::task::yield_now().await;
        }
        snapshots
    };
    let ((), snapshots) = tokio::join!(writer, reader);
    assert!(snapshots > 0);
    assert_eq!(store.account(&churned).await.unwrap(), None);
}

#[tokio::test]
async fn memory_passes_the_suite() {
    suite(&MemoryStore::new()).await;
}

#[tokio::test]
async fn sqlite_in_memory_passes_the_suite() {
    suite(&SqliteStore::open(":memory:").await.unwrap()).await;
}

#[tokio::test]
async fn sqlite_file_passes_the_suite() {
    let db = TempDb::new("suite");
    suite(&SqliteStore::open(db.path()).await.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_passes_the_suite() {
    let Some(url) = common::postgres_url("postgres_passes_the_suite") else {
        return;
    };
    let _serial = POSTGRES.lock().await;
    suite(&PostgresStore::connect(&url).await.unwrap()).await;
}

// ---------------------------------------------------------------------------------------
// The token itself is never stored

/// The token a caller would present, and the account and token record of it.
fn known_token(owner: &str) -> (String, AccountToken) {
    let plaintext = format!("s2s_sa_{}_plaintext-never-stored", process_tag());
    let mut t = token(owner, "ci");
    t.digest = sha256(&plaintext);
    (plaintext, t)
}

#[tokio::test]
async fn sqlite_file_holds_the_digest_never_the_token() {
    let db = TempDb::new("plaintext");
    let owner = format!("{}.plaintext", run());
    let (plaintext, t) = known_token(&owner);
    let hex = t.digest.to_hex();
    {
        let store = SqliteStore::open(db.path()).await.unwrap();
        store.create_account(&account(&owner)).await.unwrap();
        store.create_account_token(&t).await.unwrap();
    }
    // The store is dropped; its connections close (and checkpoint) on their own threads,
    // so look until the digest is on disk.
    let mut bytes = db.bytes();
    for _ in 0..50 {
        if contains(&bytes, &hex) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        bytes = db.bytes();
    }
    assert!(contains(&bytes, &hex), "the digest is what the file holds");
    assert!(!contains(&bytes, &plaintext), "the token itself is not");
}

#[tokio::test]
async fn postgres_tables_hold_the_digest_never_the_token() {
    let Some(url) = common::postgres_url("postgres_tables_hold_the_digest_never_the_token") else {
        return;
    };
    let _serial = POSTGRES.lock().await;
    let store = PostgresStore::connect(&url).await.unwrap();
    let owner = format!("{}.plaintext", run());
    let (plaintext, t) = known_token(&owner);
    store.create_account(&account(&owner)).await.unwrap();
    store.create_account_token(&t).await.unwrap();

    // Every column of every row of this account, as text.
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    let rows: Vec<String> = sqlx::query_scalar(
        "SELECT row_to_json(a)::text FROM s2s_auth.service_accounts a WHERE name = $1 \
         UNION ALL \
         SELECT row_to_json(t)::text FROM s2s_auth.account_tokens t WHERE account = $1",
    )
    .bind(&owner)
    .fetch_all(&pool)
    .await
    .unwrap();
    pool.close().await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(
        rows.iter().any(|row| row.contains(&t.digest.to_hex())),
        "{rows:?}"
    );
    assert!(rows.iter().all(|row| !row.contains(&plaintext)), "{rows:?}");
}

// ---------------------------------------------------------------------------------------
// PostgreSQL: other replicas hear of account writes

/// Waits for the next wake-up of `signal`, at most 5 s.
async fn woken(signal: &mut tokio::sync::watch::Receiver<u64>, after: &str) {
    tokio::time::timeout(Duration::from_secs(5), signal.changed())
        .await
        .unwrap_or_else(|_| panic!("no wake-up within 5 s after {after}"))
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_account_writes_wake_another_replica() {
    let Some(url) = common::postgres_url("postgres_account_writes_wake_another_replica") else {
        return;
    };
    let _serial = POSTGRES.lock().await;
    let writer = PostgresStore::connect(&url).await.unwrap();
    let replica = PostgresStore::connect(&url).await.unwrap();
    let mut signal = replica.revocation_signal().expect("PostgreSQL signals");
    // The first wake-up says the listener is in place.
    woken(&mut signal, "subscribing").await;

    let owner = format!("{}.signal", run());
    writer.create_account(&account(&owner)).await.unwrap();
    woken(&mut signal, "create_account").await;
    let t = token(&owner, "ci");
    writer.create_account_token(&t).await.unwrap();
    woken(&mut signal, "create_account_token").await;
    writer
        .touch_account_tokens(&[(t.id.clone(), 1_700_000_500)])
        .await
        .unwrap();
    // Whatever the touch did (it is not announced), start counting afresh.
    tokio::time::sleep(Duration::from_millis(200)).await;
    signal.borrow_and_update();
    assert!(writer.delete_account_token(&owner, &t.id).await.unwrap());
    woken(&mut signal, "delete_account_token").await;
    // What the replica reads once woken is the write that woke it.
    assert!(replica.account_tokens(&owner).await.unwrap().is_empty());
}

/// On the channel itself, in commit order: every account and token write that changed
/// something is announced once, as `account:<name>`; a last-used batch is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_announces_each_account_write_but_not_last_used() {
    let Some(url) = common::postgres_url("postgres_announces_each_account_write_but_not_last_used")
    else {
        return;
    };
    let _serial = POSTGRES.lock().await;
    let mut listener = sqlx::postgres::PgListener::connect(&url).await.unwrap();
    listener.listen("s2s_auth_revocations").await.unwrap();
    let store = PostgresStore::connect(&url).await.unwrap();

    let prefix = run();
    let (owner, marker) = (format!("{prefix}.announced"), format!("{prefix}.marker"));
    let mut a = account(&owner);
    store.create_account(&a).await.unwrap();
    let t = token(&owner, "ci");
    store.create_account_token(&t).await.unwrap();
    store
        .touch_account_tokens(&[(t.id.clone(), 1_700_000_500)])
        .await
        .unwrap();
    a.enabled = false;
    store.update_account(&a).await.unwrap();
    store
        .touch_account_tokens(&[(t.id.clone(), 1_700_000_600)])
        .await
        .unwrap();
    assert!(store.delete_account_token(&owner, &t.id).await.unwrap());
    assert!(store.delete_account(&owner).await.unwrap());
    // Notifications arrive in commit order: once the marker's is here, every earlier
    // one is too.
    store.create_account(&account(&marker)).await.unwrap();

    let mut heard = Vec::new();
    loop {
        let notification = tokio::time::timeout(Duration::from_secs(5), listener.recv())
            .await
            .expect("the marker's notification within 5 s")
            .unwrap();
        let payload = notification.payload().to_owned();
        if payload == format!("account:{marker}") {
            break;
        }
        if payload.starts_with(&format!("account:{prefix}.")) {
            heard.push(payload);
        }
    }
    // create, token create, update, token delete, delete: five, and no touch among them.
    assert_eq!(heard, vec![format!("account:{owner}"); 5]);
}

// ---------------------------------------------------------------------------------------
// PostgreSQL: rows that cannot be read back

#[tokio::test]
async fn postgres_rows_that_cannot_be_read_back_are_invalid() {
    let Some(url) = common::postgres_url("postgres_rows_that_cannot_be_read_back_are_invalid")
    else {
        return;
    };
    let _serial = POSTGRES.lock().await;
    let store = PostgresStore::connect(&url).await.unwrap();
    let owner = format!("{}.unreadable", run());
    store.create_account(&account(&owner)).await.unwrap();
    store
        .create_account_token(&token(&owner, "ci"))
        .await
        .unwrap();

    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    let edit = |sql: &'static str| sqlx::query(sql).bind(&owner).execute(&pool);
    edit("UPDATE s2s_auth.service_accounts SET permissions = '[]' WHERE name = $1")
        .await
        .unwrap();
    let account_read = store.account(&owner).await;
    let snapshot_read = store.accounts_snapshot().await;
    edit("UPDATE s2s_auth.service_accounts SET permissions = '[{\"plugin\":\"catalog\"}]' WHERE name = $1")
        .await
        .unwrap();
    edit("UPDATE s2s_auth.account_tokens SET digest_sha256 = 'not hex' WHERE account = $1")
        .await
        .unwrap();
    let tokens_read = store.account_tokens(&owner).await;
    // Removed before asserting, so a failure leaves no unreadable row behind to break
    // every later snapshot of this database.
    assert!(store.delete_account(&owner).await.unwrap());
    pool.close().await;
    assert_invalid(account_read);
    assert_invalid(snapshot_read);
    assert_invalid(tokens_read);
}
