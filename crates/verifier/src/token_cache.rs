//! The verified-token cache (like Envoy's jwt_cache): a token seen and
//! verified before is answered without parsing or signature work.
//!
//! Bounded (entries spread over shards with a short std `Mutex` each, never
//! held across an `.await`); keyed by a keyed hash of the token's tail, but
//! an entry stores the whole token and a hit compares it, so no collision can
//! ever authenticate a different token. Entries carry the key generation
//! they were verified under (policy reloads and JWKS key-set changes bump
//! it): an entry of an older generation is a miss. Entries die at the token's
//! `exp` (plus leeway).

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher, RandomState};
use std::sync::{Arc, Mutex};

use crate::verifier::Verified;

const SHARDS: usize = 16;
/// Bytes of the token's end that are hashed: the signature, unique per token.
const HASHED_TAIL: usize = 48;

struct Entry {
    token: Box<str>,
    verified: Arc<Verified>,
    generation: u64,
}

#[derive(Default)]
struct Shard {
    map: HashMap<u64, Entry, BuildIdentity>,
    last_sweep_secs: u64,
}

/// The cache.
pub struct TokenCache {
    shards: Vec<Mutex<Shard>>,
    per_shard: usize,
    hasher: RandomState,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache")
            .field("capacity", &(self.per_shard * SHARDS))
            .finish_non_exhaustive()
    }
}

impl TokenCache {
    /// A cache of about `capacity` entries; `None` for 0 (off).
    pub fn new(capacity: usize) -> Option<TokenCache> {
        if capacity == 0 {
            return None;
        }
        let per_shard = capacity.div_ceil(SHARDS);
        Some(TokenCache {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            per_shard,
            hasher: RandomState::new(),
        })
    }

    fn hash(&self, token: &str) -> u64 {
        let bytes = token.as_bytes();
        let tail = &bytes[bytes.len().saturating_sub(HASHED_TAIL)..];
        let mut h = self.hasher.build_hasher();
        h.write_usize(bytes.len());
        h.write(tail);
        h.finish()
    }

    fn shard(&self, hash: u64) -> std::sync::MutexGuard<'_, Shard> {
        // The shard count divides u64 evenly enough; `%` of a keyed hash.
        let i = (hash % SHARDS as u64) as usize;
        self.shards[i].lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The verified claims of `token`, if cached under `generation` and still
    /// valid at `now` (seconds) with `leeway`.
    pub fn get(
        &self,
        token: &str,
        generation: u64,
        now: u64,
        leeway: u64,
    ) -> Option<Arc<Verified>> {
        let hash = self.hash(token);
        let mut shard = self.shard(hash);
        let entry = shard.map.get(&hash)?;
        if entry.generation != generation || &*entry.token != token {
            return None;
        }
        if entry.verified.exp.saturating_add(leeway) <= now {
            shard.map.remove(&hash);
            return None;
        }
        Some(entry.verified.clone())
    }

    /// Caches a verified token.
    pub fn insert(&self, token: &str, verified: Arc<Verified>, generation: u64, now: u64) {
        let hash = self.hash(token);
        let mut shard = self.shard(hash);
        if shard.map.len() >= self.per_shard && !shard.map.contains_key(&hash) {
            // Sweep dead entries at most once a second; otherwise make room
            // by dropping one entry (the cheapest to find).
            if shard.last_sweep_secs != now {
                shard.last_sweep_secs = now;
                shard
                    .map
                    .retain(|_, e| e.generation == generation && e.verified.exp > now);
            }
            if shard.map.len() >= self.per_shard {
                if let Some(victim) = shard.map.keys().next().copied() {
                    shard.map.remove(&victim);
                }
            }
        }
        shard.map.insert(
            hash,
            Entry {
                token: token.into(),
                verified,
                generation,
            },
        );
    }

    /// Entries currently held (all shards).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().map(|s| s.map.len()).unwrap_or(0))
            .sum()
    }

    /// Whether the cache holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The map's keys are already keyed hashes: hash them no further.
#[derive(Default, Clone, Copy)]
struct BuildIdentity;

impl BuildHasher for BuildIdentity {
    type Hasher = IdentityHasher;
    fn build_hasher(&self) -> IdentityHasher {
        IdentityHasher(0)
    }
}

#[derive(Default)]
struct IdentityHasher(u64);

impl Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyshift_core::Alg;

    fn verified(exp: u64) -> Arc<Verified> {
        Arc::new(Verified::new("s", "c", "read", Alg::Rs256, Some("k"), exp))
    }

    #[test]
    fn hit_needs_same_token_same_generation_and_unexpired() {
        let c = TokenCache::new(100).expect("on");
        c.insert("a.b.sig1", verified(1_000), 7, 500);
        assert!(c.get("a.b.sig1", 7, 500, 0).is_some());
        assert!(
            c.get("a.b.sig1", 8, 500, 0).is_none(),
            "older generation is a miss"
        );
        assert!(
            c.get("x.b.sig1", 7, 500, 0).is_none(),
            "same tail, different token"
        );
        assert!(c.get("a.b.sig1", 7, 1_000, 0).is_none(), "expired");
        assert!(TokenCache::new(0).is_none());
    }

    #[test]
    fn stays_bounded() {
        let c = TokenCache::new(64).expect("on");
        for i in 0..1_000 {
            c.insert(&format!("t.{i}"), verified(10_000), 1, 100);
        }
        assert!(c.len() <= 64 + SHARDS, "{}", c.len());
    }
}
