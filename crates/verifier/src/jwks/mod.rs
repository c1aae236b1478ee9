//! The JWKS cache: RSA keys by `kid`, parsed once when fetched, read
//! lock-free on the request path.
//!
//! - TTL from `Cache-Control: max-age`, clamped to `[jwks_min_ttl, jwks_max_ttl]`;
//!   refreshed in the background at 80 % of it (at the latest at half of
//!   `jwks_max_staleness`), so requests never wait for it.
//! - An unknown kid refetches at most once per `unknown_kid_cooldown`, counted from
//!   the last refetch an unknown kid caused; one fetch is in flight at a time
//!   and concurrent waiters share it. A kid the refetch did not bring is
//!   remembered (`negative_cache_ttl`) so a flood of random kids costs no
//!   fetch; a kid first seen during the cooldown is remembered only until the
//!   cooldown ends, so a key rotated in meanwhile is picked up by the next
//!   refetch instead of being refused for a whole negative TTL. Kids longer
//!   than any the cache accepts from a JWKS are refused without a lookup.
//! - A failed fetch (error status, timeout, garbage, empty set) never replaces
//!   good keys; they keep serving until `jwks_max_staleness` past the last
//!   success, then RS256 requests get [`VerifyError::KeysUnavailable`] (503).
//!
//! All time comes from the injected clock, so tests move it instead of sleeping.

mod fetch;
mod parse;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use keyshift_core::config::VerifierConfig;
use keyshift_core::error::chain;
use keyshift_core::SharedClock;
use serde::Serialize;
use sha2::{Digest, Sha256};

pub use fetch::{max_age, FetchError, Fetched, Fetcher, Transport, TransportError, MAX_JWKS_BYTES};
pub use parse::{parse_jwks, rsa_public_key_der, JwksError, RsaKey};

/// Why a JWKS refresh brought no keys (logged, counted as `error`, shown
/// by `/keys`; the cached keys keep serving).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RefreshError {
    /// The download failed.
    #[error("JWKS fetch failed")]
    Fetch(#[from] FetchError),
    /// The document is not a usable JWK Set.
    #[error("JWKS document refused")]
    Parse(#[from] JwksError),
}

use crate::error::VerifyError;
use crate::metrics;

/// Most unknown kids remembered at once.
const NEGATIVE_CACHE_MAX: usize = 10_000;
/// Key-set generations, unique across every cache of the process: a reload
/// that replaces the cache (new JWKS URL) never reuses a generation the
/// token cache may still hold verdicts for.
static GENERATIONS: AtomicU64 = AtomicU64::new(1);

fn next_generation() -> u64 {
    GENERATIONS.fetch_add(1, Ordering::Relaxed)
}

/// Longest kid the cache keeps from a JWKS (and so the longest worth a lookup).
pub const MAX_KID_BYTES: usize = 256;
/// First retry delay after a failed fetch; doubles up to [`RETRY_MAX`].
const RETRY_MIN: Duration = Duration::from_secs(2);
const RETRY_MAX: Duration = Duration::from_secs(60);

/// The cache's timing settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JwksSettings {
    /// Lower bound of the TTL.
    pub min_ttl: Duration,
    /// Upper bound of the TTL.
    pub max_ttl: Duration,
    /// Least time between unknown-kid refetches.
    pub cooldown: Duration,
    /// How long an unknown kid is remembered.
    pub negative_ttl: Duration,
    /// How long stale keys keep serving while fetches fail.
    pub max_staleness: Duration,
    /// Longest a request waits for a fetch it needs.
    pub request_wait: Duration,
}

impl From<&VerifierConfig> for JwksSettings {
    fn from(c: &VerifierConfig) -> Self {
        JwksSettings {
            min_ttl: c.jwks_min_ttl,
            max_ttl: c.jwks_max_ttl,
            cooldown: c.unknown_kid_cooldown,
            negative_ttl: c.negative_cache_ttl,
            max_staleness: c.jwks_max_staleness,
            request_wait: c.jwks_request_wait,
        }
    }
}

/// The keys of the last good fetch.
#[derive(Debug, Default)]
pub struct KeySnapshot {
    keys: HashMap<String, Arc<RsaKey>>,
    /// Bumped whenever the key set changes (the token cache keys on it).
    pub generation: u64,
    /// When these keys were fetched (clock time).
    pub fetched_at: Duration,
}

impl KeySnapshot {
    /// The number of keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether there is no key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// The outcome of the last fetch, for `/keys` and the metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FetchOutcome {
    /// 200 with a usable JWK Set.
    Ok,
    /// 304.
    NotModified,
    /// Anything else.
    Error,
}

impl FetchOutcome {
    /// The `outcome` label of `keyshift_jwks_fetch_total`.
    pub const fn as_str(self) -> &'static str {
        match self {
            FetchOutcome::Ok => "ok",
            FetchOutcome::NotModified => "not_modified",
            FetchOutcome::Error => "error",
        }
    }
}

#[derive(Debug, Default)]
struct FetchState {
    etag: Option<String>,
    body_digest: Option<[u8; 32]>,
    ttl: Duration,
    next_refresh: Duration,
    last_attempt: Option<Duration>,
    last_outcome: Option<FetchOutcome>,
    last_error: Option<Arc<RefreshError>>,
    last_unknown_refetch: Option<Duration>,
    /// An unknown-kid refetch task is running.
    refetching: bool,
    failures: u32,
    fetches: u64,
}

/// The JWKS cache of one verifier.
pub struct JwksCache {
    /// Swapped by [`JwksCache::reconfigure`] on reload.
    fetcher: ArcSwap<Fetcher>,
    /// Swapped by [`JwksCache::reconfigure`]; read lock-free.
    settings: ArcSwap<JwksSettings>,
    clock: SharedClock,
    snapshot: ArcSwap<KeySnapshot>,
    /// Milliseconds of the last successful fetch, 0 for never (read on the request path).
    last_success_ms: AtomicU64,
    /// `settings.max_staleness` in ms, for the request path (one atomic load).
    max_staleness_ms: AtomicU64,
    /// Never held across an `.await`.
    state: Mutex<FetchState>,
    /// Held across a fetch: the single flight. Never taken on the fast path.
    flight: tokio::sync::Mutex<()>,
    /// Counts finished unknown-kid refetches; requests wait on it.
    fetches_done: tokio::sync::watch::Sender<u64>,
    negative: Mutex<HashMap<String, Duration>>,
    /// Whether the phase accepts RS256: a failed fetch is then a warning;
    /// otherwise (phase `legacy`, whose issuer rightly serves no RSA key)
    /// nothing depends on it yet.
    needed: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for JwksCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksCache")
            .field("fetcher", &self.fetcher.load())
            .field("keys", &self.snapshot.load().len())
            .finish_non_exhaustive()
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl JwksCache {
    /// An empty cache for `fetcher`; nothing is fetched until asked.
    pub fn new(fetcher: Fetcher, settings: JwksSettings, clock: SharedClock) -> JwksCache {
        JwksCache {
            fetcher: ArcSwap::from_pointee(fetcher),
            max_staleness_ms: AtomicU64::new(ms(settings.max_staleness)),
            settings: ArcSwap::from_pointee(settings),
            clock,
            snapshot: ArcSwap::from_pointee(KeySnapshot::default()),
            last_success_ms: AtomicU64::new(0),
            state: Mutex::new(FetchState::default()),
            flight: tokio::sync::Mutex::new(()),
            fetches_done: tokio::sync::watch::Sender::new(0),
            negative: Mutex::new(HashMap::new()),
            needed: std::sync::atomic::AtomicBool::new(true),
        }
    }

    /// Says whether the phase accepts RS256 (see the `needed` field).
    pub fn set_needed(&self, needed: bool) {
        self.needed.store(needed, Ordering::Relaxed);
    }

    /// Applies new settings and a fetcher with the new timeouts (same URL)
    /// on reload; the cached keys stay.
    pub fn reconfigure(&self, settings: JwksSettings, fetcher: Fetcher) {
        self.max_staleness_ms
            .store(ms(settings.max_staleness), Ordering::Release);
        self.settings.store(Arc::new(settings));
        self.fetcher.store(Arc::new(fetcher));
    }

    /// The current settings.
    pub fn settings(&self) -> JwksSettings {
        **self.settings.load()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, FetchState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The key for `kid`, lock-free.
    pub fn get(&self, kid: &str) -> Option<Arc<RsaKey>> {
        self.snapshot.load().keys.get(kid).cloned()
    }

    /// The generation of the current key set (bumped on every change).
    pub fn generation(&self) -> u64 {
        self.snapshot.load().generation
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Arc<KeySnapshot> {
        self.snapshot.load_full()
    }

    /// Whether keys from a successful fetch exist and are within the maximum staleness.
    pub fn usable(&self) -> bool {
        self.usable_at(ms(self.clock.now()))
    }

    /// [`JwksCache::usable`] at `now_ms` (the request path passes the time
    /// it already read): two atomic loads, no clock read, no lock.
    pub fn usable_at(&self, now_ms: u64) -> bool {
        let last = self.last_success_ms.load(Ordering::Acquire);
        last != 0 && now_ms.saturating_sub(last) <= self.max_staleness_ms.load(Ordering::Acquire)
    }

    /// Seconds a client should wait before retrying after a 503.
    pub fn retry_after(&self) -> u64 {
        let now = self.clock.now();
        let next = self.state().next_refresh;
        next.saturating_sub(now).as_secs().clamp(1, 60)
    }

    /// The slow path, for a kid not in the snapshot or keys that are not
    /// usable (never fetched, or past the maximum staleness): the
    /// single-flight, cooldown-limited refetch, then the negative cache.
    /// Without usable keys afterwards the answer is
    /// [`VerifyError::KeysUnavailable`] (503: our fault, not the client's).
    ///
    /// The refetch runs in a task of its own; a request waits for it at most
    /// `request_wait` (a proxy's auth subrequest must not hang on a slow
    /// JWKS endpoint), then gets `KeysUnavailable`, and the fetch goes on for
    /// the requests after it.
    pub async fn lookup_unknown(self: &Arc<Self>, kid: &str) -> Result<Arc<RsaKey>, VerifyError> {
        if kid.len() > MAX_KID_BYTES {
            // No JWKS key can have it: refuse without a fetch or an entry.
            return Err(self.unknown_or_unavailable());
        }
        let now = self.clock.now();
        if self.usable() {
            if self.is_negative(kid, now) {
                return Err(VerifyError::UnknownKid);
            }
            // A fetch since the caller looked may have brought it.
            if let Some(key) = self.get(kid) {
                return Ok(key);
            }
        }
        let mut done = self.fetches_done.subscribe();
        let seen = *done.borrow_and_update();
        let settings = **self.settings.load();
        // Until when a miss is remembered: a kid whose own refetch proved it
        // unknown, for the negative TTL; one that only rode along on another
        // kid's refetch, until the next refetch is allowed, no longer (one
        // random kid per cooldown must not keep a real rotation refused).
        let remember_until;
        {
            let mut state = self.state();
            if !state.refetching {
                if let Some(cool_until) = state
                    .last_unknown_refetch
                    .map(|t| t + settings.cooldown)
                    .filter(|until| now < *until)
                {
                    drop(state);
                    // Not proven unknown by a fetch: remembered until the next
                    // refetch is allowed, no longer.
                    self.remember_unknown(kid, cool_until);
                    return Err(self.unknown_or_unavailable());
                }
                state.last_unknown_refetch = Some(now);
                state.refetching = true;
                drop(state);
                remember_until = now + settings.negative_ttl;
                tracing::debug!("unknown kid or unusable keys: refetching the JWKS");
                self.spawn_refetch(kid.to_owned());
            } else {
                // A refetch is in flight: wait for it, start none.
                remember_until = state.last_unknown_refetch.unwrap_or(now) + settings.cooldown;
            }
        }
        let waited =
            tokio::time::timeout(settings.request_wait, done.wait_for(|n| *n > seen)).await;
        if !matches!(waited, Ok(Ok(_))) {
            return Err(VerifyError::KeysUnavailable);
        }
        if !self.usable() {
            return Err(VerifyError::KeysUnavailable);
        }
        match self.get(kid) {
            Some(key) => Ok(key),
            None => {
                self.remember_unknown(kid, remember_until);
                Err(VerifyError::UnknownKid)
            }
        }
    }

    /// The refetch of [`JwksCache::lookup_unknown`], in a task of its own so
    /// that no request's timeout cancels it. It waits for a fetch in flight
    /// (a scheduled refresh), fetches unless that one brought `kid`, and
    /// then wakes every request waiting, also if it panicked.
    fn spawn_refetch(self: &Arc<Self>, kid: String) {
        /// Clears `refetching` and announces the end of the refetch on drop.
        struct Done(Arc<JwksCache>);
        impl Drop for Done {
            fn drop(&mut self) {
                self.0.state().refetching = false;
                self.0.fetches_done.send_modify(|n| *n = n.wrapping_add(1));
            }
        }
        let done = Done(self.clone());
        tokio::spawn(async move {
            let cache = &done.0;
            let _flight = cache.flight.lock().await;
            if !(cache.usable() && cache.get(&kid).is_some()) {
                cache.fetch_locked().await;
            }
        });
    }

    fn unknown_or_unavailable(&self) -> VerifyError {
        if self.usable() {
            VerifyError::UnknownKid
        } else {
            VerifyError::KeysUnavailable
        }
    }

    fn is_negative(&self, kid: &str, now: Duration) -> bool {
        let negative = self.negative.lock().unwrap_or_else(|p| p.into_inner());
        negative.get(kid).is_some_and(|until| now < *until)
    }

    fn remember_unknown(&self, kid: &str, until: Duration) {
        let now = self.clock.now();
        let mut negative = self.negative.lock().unwrap_or_else(|p| p.into_inner());
        if negative.len() >= NEGATIVE_CACHE_MAX {
            negative.retain(|_, t| now < *t);
            if negative.len() >= NEGATIVE_CACHE_MAX {
                negative.clear();
            }
        }
        negative.insert(kid.to_owned(), until);
    }

    /// Installs keys from a JWKS body obtained out of band (a file shipped
    /// with the service, a benchmark), as if fetched now.
    pub fn load_static(&self, body: &[u8]) -> Result<(), JwksError> {
        let (keys, _) = parse_jwks(body)?;
        let now = self.clock.now();
        let generation = next_generation();
        self.snapshot.store(Arc::new(KeySnapshot {
            keys,
            generation,
            fetched_at: now,
        }));
        self.succeeded(now, None);
        Ok(())
    }

    /// Fetches if the refresh time has come and no fetch is in flight.
    /// Returns whether it fetched.
    pub async fn refresh_if_due(&self) -> bool {
        let due = self.clock.now() >= self.state().next_refresh;
        if !due {
            return false;
        }
        let Ok(_flight) = self.flight.try_lock() else {
            return false;
        };
        self.fetch_locked().await;
        true
    }

    /// Why the last fetch failed, if it did.
    pub fn last_error(&self) -> Option<Arc<RefreshError>> {
        self.state().last_error.clone()
    }

    /// Fetches now (SIGHUP), waiting for a fetch in flight first.
    pub async fn force_refresh(&self) -> FetchOutcome {
        let _flight = self.flight.lock().await;
        self.fetch_locked().await
    }

    /// One fetch; the caller holds `flight`.
    async fn fetch_locked(&self) -> FetchOutcome {
        let etag = {
            let mut state = self.state();
            state.fetches += 1;
            state.last_attempt = Some(self.clock.now());
            if self.snapshot.load().is_empty() {
                None
            } else {
                state.etag.clone()
            }
        };
        let fetcher = self.fetcher.load_full();
        let result = fetcher.fetch(etag.as_deref()).await;
        let now = self.clock.now();
        let (outcome, error) = match result {
            Ok(Fetched::Body {
                body,
                max_age,
                etag,
            }) => match parse_jwks(&body) {
                Ok((keys, skipped)) => {
                    let digest: [u8; 32] = Sha256::digest(&body).into();
                    let changed = self.state().body_digest != Some(digest);
                    if changed {
                        let generation = next_generation();
                        let count = keys.len();
                        self.snapshot.store(Arc::new(KeySnapshot {
                            keys,
                            generation,
                            fetched_at: now,
                        }));
                        self.negative
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .clear();
                        tracing::info!(keys = count, skipped, "JWKS keys updated");
                    }
                    let mut state = self.state();
                    state.etag = etag;
                    state.body_digest = Some(digest);
                    drop(state);
                    self.succeeded(now, max_age);
                    (FetchOutcome::Ok, None)
                }
                Err(e) => (FetchOutcome::Error, Some(Arc::new(RefreshError::from(e)))),
            },
            Ok(Fetched::NotModified { max_age }) => {
                self.succeeded(now, max_age);
                (FetchOutcome::NotModified, None)
            }
            Err(e) => (FetchOutcome::Error, Some(Arc::new(RefreshError::from(e)))),
        };
        let mut state = self.state();
        state.last_outcome = Some(outcome);
        if let Some(err) = &error {
            state.failures = state.failures.saturating_add(1);
            let backoff = RETRY_MIN
                .saturating_mul(1u32 << (state.failures - 1).min(6))
                .min(RETRY_MAX);
            state.next_refresh = now + backoff;
            let (error, failures) = (chain(err.as_ref()), state.failures);
            let cached = self.snapshot.load().len();
            if !self.needed.load(Ordering::Relaxed) {
                tracing::info!(%error, failures, "JWKS fetch failed; RS256 is not accepted in this phase, so nothing depends on it yet");
            } else if cached == 0 {
                tracing::warn!(%error, failures, "JWKS fetch failed and no key is cached: RS256 requests get 503 until a fetch succeeds");
            } else if self.usable() {
                tracing::warn!(%error, failures, cached, "JWKS fetch failed; the cached keys keep serving");
            } else {
                tracing::warn!(%error, failures, cached, "JWKS fetch failed and the cached keys are past jwks_max_staleness: RS256 requests get 503");
            }
        }
        state.last_error = error;
        drop(state);
        metrics::jwks_fetched(
            outcome,
            self.snapshot.load().len(),
            self.last_success_secs(),
        );
        outcome
    }

    fn succeeded(&self, now: Duration, max_age: Option<Duration>) {
        let settings = self.settings.load();
        let ttl = max_age
            .unwrap_or(settings.min_ttl)
            .clamp(settings.min_ttl, settings.max_ttl);
        let mut state = self.state();
        state.ttl = ttl;
        state.failures = 0;
        // Refresh ahead: at 80 % of the TTL, and never later than half the
        // maximum staleness, so a long max-age cannot let the keys reach the
        // 503 point before the next scheduled fetch.
        state.next_refresh = now + ttl.mul_f64(0.8).min(settings.max_staleness / 2);
        drop(state);
        self.last_success_ms
            .store(ms(now).max(1), Ordering::Release);
    }

    fn last_success_secs(&self) -> Option<u64> {
        match self.last_success_ms.load(Ordering::Acquire) {
            0 => None,
            v => Some(v / 1000),
        }
    }

    /// How many fetches were attempted (for tests and `/keys`).
    pub fn fetch_count(&self) -> u64 {
        self.state().fetches
    }

    /// The status for `GET /keys`.
    pub fn status(&self) -> KeysStatus {
        let now = self.clock.now();
        let snapshot = self.snapshot.load();
        let state = self.state();
        let mut kids: Vec<KeyStatus> = snapshot
            .keys
            .values()
            .map(|k| KeyStatus {
                kid: k.kid.clone(),
                bits: k.bits,
                age_seconds: now.saturating_sub(snapshot.fetched_at).as_secs(),
            })
            .collect();
        kids.sort_by(|a, b| a.kid.cmp(&b.kid));
        KeysStatus {
            url: self.fetcher.load().url(),
            keys: kids,
            generation: snapshot.generation,
            usable: self.usable(),
            ttl_seconds: state.ttl.as_secs(),
            next_refresh_in_seconds: state.next_refresh.saturating_sub(now).as_secs(),
            last_success_unix: self.last_success_secs(),
            last_attempt_unix: state.last_attempt.map(|d| d.as_secs()),
            last_outcome: state.last_outcome,
            last_error: state.last_error.as_deref().map(|e| chain(e)),
            consecutive_failures: state.failures,
            fetches: state.fetches,
        }
    }
}

/// One cached key in `/keys`: public facts only.
#[derive(Debug, Clone, Serialize)]
pub struct KeyStatus {
    /// The kid.
    pub kid: String,
    /// Modulus bits.
    pub bits: usize,
    /// Seconds since the fetch that brought this key set.
    pub age_seconds: u64,
}

/// The JSON of `GET /keys`.
#[derive(Debug, Clone, Serialize)]
pub struct KeysStatus {
    /// The JWKS URL.
    pub url: String,
    /// Cached keys.
    pub keys: Vec<KeyStatus>,
    /// Key-set generation.
    pub generation: u64,
    /// Whether RS256 verification can use them (fetched, not too stale).
    pub usable: bool,
    /// The current TTL.
    pub ttl_seconds: u64,
    /// When the next background refresh is due.
    pub next_refresh_in_seconds: u64,
    /// Last successful fetch.
    pub last_success_unix: Option<u64>,
    /// Last attempt.
    pub last_attempt_unix: Option<u64>,
    /// Outcome of the last attempt.
    pub last_outcome: Option<FetchOutcome>,
    /// Its error, if it failed.
    pub last_error: Option<String>,
    /// Failures in a row.
    pub consecutive_failures: u32,
    /// Fetches attempted since start.
    pub fetches: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_negative_cache_stays_bounded_under_a_flood_of_random_kids() {
        let url = url::Url::parse("http://127.0.0.1:9/jwks.json").expect("url");
        let fetcher = Fetcher::new(
            &url,
            &Transport::new(Duration::from_secs(1), Duration::from_secs(1)).expect("transport"),
        )
        .expect("fetcher");
        let settings = JwksSettings {
            min_ttl: Duration::from_secs(300),
            max_ttl: Duration::from_secs(3600),
            cooldown: Duration::from_secs(30),
            negative_ttl: Duration::from_secs(60),
            max_staleness: Duration::from_secs(3600),
            request_wait: Duration::from_secs(1),
        };
        let cache = JwksCache::new(
            fetcher,
            settings,
            keyshift_core::clock::ManualClock::at_secs(1_000),
        );
        let until = Duration::from_secs(2_000);
        for i in 0..(2 * NEGATIVE_CACHE_MAX + 7) {
            cache.remember_unknown(&format!("random-{i}"), until);
            let len = cache.negative.lock().map(|n| n.len()).unwrap_or(usize::MAX);
            assert!(len <= NEGATIVE_CACHE_MAX, "{len} entries after {i}");
        }
    }
}
