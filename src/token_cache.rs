//! The verified-token cache: a bounded map from a token to what verifying it found, so a
//! token seen before costs a lookup instead of a signature check.
//!
//! **Admission and eviction.** Every verified token is admitted, and eviction is CLOCK
//! (second chance): each entry has a bit set when it is used; to make room, a hand sweeps the
//! entries, takes the first one that is expired or whose bit is clear, and clears the bits
//! it passes. An entry used since the hand last passed stays; an entry not used for a full
//! turn goes. So when the working set shifts (10,000 cached tokens stop coming, 10,000 new
//! ones start), the new ones replace the old within one pass through them, and are served
//! from the cache from the second pass on.
//!
//! This replaces `moka`'s TinyLFU, which admits a new entry only when its estimated
//! frequency beats its victim's: after a shift the old entries, counted often during
//! their time, kept their places for several passes while every new token paid a signature
//! check *and* the cache's bookkeeping (issue 11 measured 0.86-0.97x of the rate with the
//! cache off). The price of CLOCK is that a working set larger than the cache, cycling in
//! order, gets no hits (as with LRU); a miss then costs the fresh verification plus one
//! insert here (a lock, a map insert, a step or two of the hand), which the load bench
//! measures against the cache turned off.
//!
//! **Keys and safety.** An entry holds the whole token, and a hit compares the whole
//! token (in time that depends only on its length, not on where it differs). The map is
//! indexed by a keyed hash (`foldhash`, seeded at random per process) of the token's length
//! and its last [`KEYED_TAIL`] bytes: for every token the cache holds (a JWT) those are
//! signature bytes, which no two tokens share, so the hash spreads as well as a hash of the
//! whole token and costs the same for a 300-byte token as for an 8 KiB one. It is safe
//! because the hash only picks a slot: a hash that two tokens share, by chance or by an
//! attacker's crafting (the same signature under another header or payload), costs a miss
//! or an eviction, never the other token's principal, and only a verified token is ever
//! inserted. Keeping the token costs its length in memory per entry.
//!
//! **One lock, not shards.** One `Mutex`, held for a map operation (tens of nanoseconds)
//! and never across I/O or user code. Sharding was tried and measured: with 16 shards each
//! bounded to a 16th of the capacity, a working set as large as the cache fills some shards
//! past their share (a hash spreads tokens unevenly), and those shards thrash; the unit
//! test `a_shifted_working_set_is_cached_within_one_pass` got 54% hits instead of 100% on
//! the second pass. An HTTP server does not make lookups often enough for one short lock to
//! be the bottleneck. A poisoned lock is taken over rather than propagated: every slot
//! carries its own token, and the whole-token compare keeps a half-written map from
//! answering for the wrong one.
//!
//! **Memory** (measured by `tests/token_cache_memory.rs`, which counts allocations): see
//! `AuthBuilder::verified_cache_capacity` for the bytes per token.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::sync::{Mutex, PoisonError};

use foldhash::quality::SeedableRandomState;

/// How many of a token's last bytes the slot hash reads (with the token's length).
const KEYED_TAIL: usize = 32;

/// A bounded map from a token to `V`, each entry valid until its `exp` (seconds since the
/// Unix epoch).
pub(crate) struct TokenCache<V> {
    entries: Mutex<Entries<V>>,
    hasher: SeedableRandomState,
}

struct Entries<V> {
    /// Keyed hash of the token -> index into `slots`.
    index: HashMap<u64, u32, BuildHasherDefault<PassThrough>>,
    slots: Vec<Slot<V>>,
    /// Indexes of emptied slots (removed entries), reused before the hand evicts anything.
    free: Vec<u32>,
    /// CLOCK's hand: the next slot a sweep looks at.
    hand: usize,
    capacity: usize,
}

struct Slot<V> {
    token: Box<[u8]>,
    hash: u64,
    exp: u64,
    /// Used since the hand last passed.
    used: bool,
    /// `None` once removed (the slot is then on the free list).
    value: Option<V>,
}

/// The map's hasher: the key is already a keyed hash of the token.
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only `u64` keys are hashed; kept total for any other use.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

impl<V: Clone> TokenCache<V> {
    /// A cache of at most `capacity` entries (at least one). Nothing is allocated for
    /// entries until they are inserted.
    pub(crate) fn new(capacity: u64) -> Self {
        let capacity = usize::try_from(capacity).unwrap_or(usize::MAX).max(1);
        Self {
            entries: Mutex::new(Entries {
                index: HashMap::default(),
                slots: Vec::new(),
                free: Vec::new(),
                hand: 0,
                capacity,
            }),
            hasher: crate::secret::seeded_hasher(),
        }
    }

    /// The slot hash of a token: its length and its last [`KEYED_TAIL`] bytes, keyed.
    fn hash(&self, token: &[u8]) -> u64 {
        let tail = &token[token.len().saturating_sub(KEYED_TAIL)..];
        let mut hasher = self.hasher.build_hasher();
        hasher.write_usize(token.len());
        hasher.write(tail);
        hasher.finish()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries<V>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The value for `token`, marking it used; `None` when absent or expired at `now`.
    #[cfg(test)]
    pub(crate) fn get(&self, token: &[u8], now: u64) -> Option<V> {
        self.get_with(token, now, |v| Some(v.clone()))
    }

    /// What `answer` makes of the value for `token`, read under the lock (so a hit costs
    /// no reference count on the value), marking it used; `None` when absent or expired
    /// at `now`. When `answer` returns `None` (the value no longer holds), the entry is
    /// removed under the same lock. `answer` must be short and must not block: it runs
    /// with the cache locked.
    pub(crate) fn get_with<R>(
        &self,
        token: &[u8],
        now: u64,
        answer: impl FnOnce(&V) -> Option<R>,
    ) -> Option<R> {
        let hash = self.hash(token);
        let mut entries = self.lock();
        let &i = entries.index.get(&hash)?;
        let slot = entries.slots.get_mut(i as usize)?;
        if !same_token(&slot.token, token) || slot.exp <= now {
            return None;
        }
        slot.used = true;
        let answered = answer(slot.value.as_ref()?);
        if answered.is_none() {
            entries.free_slot(i, hash);
        }
        answered
    }

    /// Remembers `value` for `token` until `exp`, evicting an entry if the cache is full.
    pub(crate) fn insert(&self, token: &[u8], value: V, exp: u64, now: u64) {
        let hash = self.hash(token);
        let slot = Slot {
            token: token.into(),
            hash,
            exp,
            // Unused until a hit: an entry inserted and never used again goes first.
            used: false,
            value: Some(value),
        };
        let mut entries = self.lock();
        if let Some(&i) = entries.index.get(&hash) {
            // The same token again (two requests verified it at once), or a hash shared with
            // another token: either way the newer verification takes the slot, and a hit
            // still compares the whole token.
            entries.slots[i as usize] = slot;
            return;
        }
        let i = match entries.free.pop() {
            Some(i) => {
                entries.slots[i as usize] = slot;
                i
            }
            None if entries.slots.len() < entries.capacity => {
                if entries.slots.len() == entries.slots.capacity() {
                    // Grow by doubling, but never past the capacity.
                    let more = entries
                        .slots
                        .len()
                        .max(8)
                        .min(entries.capacity - entries.slots.len());
                    entries.slots.reserve_exact(more);
                }
                entries.slots.push(slot);
                (entries.slots.len() - 1) as u32
            }
            None => {
                let i = entries.victim(now);
                let old = std::mem::replace(&mut entries.slots[i], slot).hash;
                entries.index.remove(&old);
                i as u32
            }
        };
        entries.index.insert(hash, i);
    }

    /// The number of entries.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().index.len()
    }
}

/// Whether two tokens are the same, in time that depends only on their lengths (a cached
/// token's bytes must not leak through how soon a comparison stops).
fn same_token(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    // No early exit: every byte pair is folded in, eight bytes at a time as one word (a
    // fold of the zipped bytes cost 12 instructions per 16 bytes, about 220 of a cached
    // request's, issue 11), then the rest a byte at a time.
    let (a_words, a_rest) = a.as_chunks::<8>();
    let (b_words, b_rest) = b.as_chunks::<8>();
    let words = a_words.iter().zip(b_words).fold(0u64, |diff, (x, y)| {
        diff | (u64::from_ne_bytes(*x) ^ u64::from_ne_bytes(*y))
    });
    let rest = a_rest
        .iter()
        .zip(b_rest)
        .fold(0u8, |diff, (x, y)| diff | (x ^ y));
    std::hint::black_box(words | u64::from(rest)) == 0
}

impl<V> Entries<V> {
    /// Empties slot `i` (indexed under `hash`) and puts it on the free list. The token goes
    /// too: a removed entry holds no credential until the slot is reused.
    fn free_slot(&mut self, i: u32, hash: u64) {
        self.index.remove(&hash);
        let slot = &mut self.slots[i as usize];
        slot.value = None;
        slot.token = Box::default();
        self.free.push(i);
    }

    /// The slot to evict from a full cache: from the hand on, the first one that is expired
    /// or unused since the hand last passed, clearing the bits of those it passes. Ends
    /// within one turn and one step: after a turn every bit it passed is clear. Each step
    /// past a used entry pays for a hit, so the sweep is constant work per insert on average.
    fn victim(&mut self, now: u64) -> usize {
        let len = self.slots.len();
        loop {
            let i = self.hand % len;
            self.hand = (i + 1) % len;
            let slot = &mut self.slots[i];
            if slot.exp <= now || !slot.used {
                return i;
            }
            slot.used = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Forgets `token` as the verifier does when its key left the JWKS: a lookup whose
    /// answer is `None`.
    fn forget<V: Clone>(cache: &TokenCache<V>, token: &[u8]) {
        cache.get_with(token, 0, |_| None::<()>);
    }

    /// A token-like key: 300 bytes, differing only in its last four.
    fn key(n: u32) -> Vec<u8> {
        let mut k = vec![b'a'; 300];
        k[296..].copy_from_slice(&n.to_le_bytes());
        k
    }

    #[test]
    fn tokens_are_compared_whole() {
        assert!(same_token(b"", b""));
        assert!(same_token(&key(7), &key(7)));
        assert!(!same_token(&key(7), &key(8)));
        assert!(!same_token(b"abcdefghij", b"abcdefghiJ"));
        assert!(!same_token(b"Abcdefghij", b"abcdefghij"));
        assert!(!same_token(b"abc", b"abcd"));
        // A difference in any byte, in a chunk or in the rest, of tokens of many lengths.
        for len in [1, 31, 32, 33, 63, 64, 65, 290, 300] {
            let a: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            assert!(same_token(&a, &a.clone()), "{len}");
            for at in 0..len {
                let mut b = a.clone();
                b[at] ^= 0x40;
                assert!(!same_token(&a, &b), "{len} bytes, differing at {at}");
            }
        }
    }

    /// Two tokens under one hash (as a crafted collision would put them): each answers only
    /// for itself.
    #[test]
    fn a_shared_hash_never_answers_for_the_other_token() {
        let cache = TokenCache::new(100);
        let hash = cache.hash(&key(1));
        cache.insert(&key(1), 1, u64::MAX, 0);
        {
            // Point the first token's index entry at a slot holding another token.
            let mut entries = cache.lock();
            let i = entries.index[&hash] as usize;
            entries.slots[i].token = key(2).into();
        }
        assert_eq!(cache.get(&key(1), 0), None);
        forget(&cache, &key(1));
        assert_eq!(cache.len(), 1, "a remove of another token leaves the slot");
    }

    /// The slot hash reads only the tail, so a token that reuses a cached token's signature
    /// under another header or payload lands on its slot: it must miss, and both tokens must
    /// still be told apart when both are inserted.
    #[test]
    fn a_token_with_another_tokens_tail_never_answers_for_it() {
        let cache = TokenCache::new(100);
        let mut forged = key(1);
        forged[0] = b'b';
        assert_eq!(
            cache.hash(&forged),
            cache.hash(&key(1)),
            "same length, same tail"
        );
        cache.insert(&key(1), "one", u64::MAX, 0);
        assert_eq!(cache.get(&forged, 0), None);
        cache.insert(&forged, "forged", u64::MAX, 0);
        assert_eq!(cache.get(&key(1), 0), None, "the newer token took the slot");
        assert_eq!(cache.get(&forged, 0), Some("forged"));
        // Tokens shorter than the tail are hashed whole.
        cache.insert(b"short", "short", u64::MAX, 0);
        assert_eq!(cache.get(b"short", 0), Some("short"));
        assert_eq!(cache.get(b"shorT", 0), None);
        assert_ne!(cache.hash(b"short"), cache.hash(b"shorT"));
    }

    #[test]
    fn a_hit_needs_the_same_token_and_an_unexpired_entry() {
        let cache = TokenCache::new(100);
        cache.insert(&key(1), "one", 50, 10);
        assert_eq!(cache.get(&key(1), 10), Some("one"));
        assert_eq!(cache.get(&key(2), 10), None);
        assert_eq!(cache.get(&key(1), 50), None, "expired at exp");
        forget(&cache, &key(1));
        assert_eq!(cache.get(&key(1), 10), None);
        assert_eq!(cache.len(), 0);
        // A removed slot is reused.
        cache.insert(&key(3), "three", 50, 10);
        assert_eq!(cache.get(&key(3), 10), Some("three"));
    }

    #[test]
    fn never_holds_more_than_its_capacity() {
        let cache = TokenCache::new(160);
        for n in 0..10_000 {
            cache.insert(&key(n), n, u64::MAX, 0);
        }
        assert!(cache.len() <= 160, "{}", cache.len());
        let entries = cache.lock();
        assert!(entries.slots.len() <= 160);
        assert!(entries.slots.capacity() <= 160);
    }

    /// The cliff of issue 11: after the working set shifts, the new tokens are served from
    /// the cache from their second pass on.
    #[test]
    fn a_shifted_working_set_is_cached_within_one_pass() {
        let cache = TokenCache::new(10_000);
        passes(&cache, 0..10_000, 5);
        let hits = passes(&cache, 100_000..110_000, 4);
        assert_eq!(hits[0], 0);
        assert_eq!(hits[1..], [10_000, 10_000, 10_000]);
    }

    #[test]
    fn a_sweep_takes_an_expired_entry_before_a_used_one() {
        let slot = |n: u32, exp: u64, used: bool| Slot {
            token: key(n).into(),
            hash: u64::from(n),
            exp,
            used,
            value: Some(n),
        };
        for seed in 0..3 {
            let mut entries = Entries {
                index: HashMap::default(),
                slots: vec![
                    slot(0, u64::MAX, true),
                    slot(1, 5, true),
                    slot(2, u64::MAX, true),
                ],
                free: Vec::new(),
                hand: seed,
                capacity: 3,
            };
            // At 10, slot 1 is expired: taken although it was used, from wherever the sweep
            // starts.
            assert_eq!(entries.victim(10), 1);
            // All used and live: one turn clears every bit, then the sweep takes one.
            for s in &mut entries.slots {
                s.exp = u64::MAX;
                s.used = true;
            }
            let _ = entries.victim(10);
            assert!(entries.slots.iter().all(|s| !s.used));
        }
    }

    /// Hits per pass of a working set cycled in a fixed order through a cache.
    fn passes(cache: &TokenCache<u32>, tokens: std::ops::Range<u32>, passes: usize) -> Vec<usize> {
        (0..passes)
            .map(|_| {
                let mut hits = 0;
                for n in tokens.clone() {
                    match cache.get(&key(n), 0) {
                        Some(v) => {
                            assert_eq!(v, n);
                            hits += 1;
                        }
                        None => cache.insert(&key(n), n, u64::MAX, 0),
                    }
                }
                hits
            })
            .collect()
    }

    /// The overflow case of issue 11: twice as many tokens as entries, cycled in order.
    /// Like LRU, CLOCK gets no hits here (each entry goes just before its turn comes
    /// again); what matters is that each miss stays cheap: one step of the hand, since the
    /// entries it meets were never used.
    #[test]
    fn a_working_set_twice_the_cache_stays_within_the_capacity() {
        let cache = TokenCache::new(10_000);
        let hits = passes(&cache, 0..20_000, 3);
        assert_eq!(hits, [0, 0, 0]);
        assert_eq!(cache.len(), 10_000);
        let entries = cache.lock();
        assert_eq!(entries.slots.len(), 10_000);
        assert!(entries.slots.iter().all(|s| !s.used));
    }

    #[test]
    fn a_poisoned_lock_still_answers_only_for_its_own_tokens() {
        let cache = std::sync::Arc::new(TokenCache::new(64));
        cache.insert(&key(1), 1, u64::MAX, 0);
        let c = cache.clone();
        let _ = std::thread::spawn(move || {
            let _guard = c.entries.lock().unwrap();
            panic!("poison the lock");
        })
        .join();
        assert_eq!(cache.get(&key(1), 0), Some(1));
        assert_eq!(cache.get(&key(2), 0), None);
    }
}
