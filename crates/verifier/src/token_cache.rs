//! The verified-token cache (like Envoy's jwt_cache): a token seen and
//! verified before is answered without parsing or signature work.
//!
//! Bounded, with quick_cache's S3-FIFO eviction (scan-resistant: a flood of
//! one-off tokens does not push out the tokens clients keep reusing), its
//! shards locked only for a probe and never across an `.await`. Keyed by a
//! keyed hash of the token's tail, but an entry stores the whole token and a
//! hit compares it, so no collision can ever authenticate a different token.
//! Entries carry the key generation they were verified under (policy reloads
//! and JWKS key-set changes bump it): an entry of an older generation is a
//! miss. Entries die at the token's `exp` (plus leeway).

use std::hash::{BuildHasher, Hasher, RandomState};
use std::sync::Arc;

use crate::verifier::Verified;

/// Bytes of the token's end that are hashed: the signature, unique per token.
const HASHED_TAIL: usize = 48;

struct Entry {
    token: Box<str>,
    verified: Arc<Verified>,
    generation: u64,
}

/// The cache.
pub struct TokenCache {
    cache: quick_cache::sync::Cache<u64, Arc<Entry>>,
    hasher: RandomState,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache")
            .field("len", &self.cache.len())
            .finish_non_exhaustive()
    }
}

impl TokenCache {
    /// A cache of `capacity` entries; `None` for 0 (off).
    pub fn new(capacity: usize) -> Option<TokenCache> {
        (capacity > 0).then(|| TokenCache {
            cache: quick_cache::sync::Cache::new(capacity),
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
        let entry = self.cache.get(&hash)?;
        if entry.generation != generation || &*entry.token != token {
            return None;
        }
        if entry.verified.exp.saturating_add(leeway) <= now {
            self.cache.remove(&hash);
            return None;
        }
        Some(entry.verified.clone())
    }

    /// Caches a verified token.
    pub fn insert(&self, token: &str, verified: Arc<Verified>, generation: u64, _now: u64) {
        let entry = Entry {
            token: token.into(),
            verified,
            generation,
        };
        self.cache.insert(self.hash(token), Arc::new(entry));
    }

    /// Entries currently held.
    pub fn len(&self) -> usize {
        self.cache.len()
    }

    /// Whether the cache holds nothing.
    pub fn is_empty(&self) -> bool {
        self.cache.is_empty()
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
    fn reused_tokens_survive_a_flood_of_one_off_tokens() {
        let c = TokenCache::new(1_000).expect("on");
        let hot: Vec<String> = (0..100).map(|i| format!("hot.{i}")).collect();
        for t in &hot {
            c.insert(t, verified(10_000), 1, 100);
        }
        let mut misses = 0;
        for i in 0..20_000 {
            c.insert(&format!("cold.{i}"), verified(10_000), 1, 100);
            let t = &hot[i % hot.len()];
            if c.get(t, 1, 100, 0).is_none() {
                misses += 1;
                c.insert(t, verified(10_000), 1, 100);
            }
        }
        assert!(misses < 2_000, "{misses} misses of 20000 hot lookups");
    }

    #[test]
    fn stays_bounded() {
        let c = TokenCache::new(64).expect("on");
        for i in 0..1_000 {
            c.insert(&format!("t.{i}"), verified(10_000), 1, 100);
        }
        assert!(c.len() <= 64, "{}", c.len());
    }
}
