//! The verifier's Prometheus metrics (names per the contract). Handles for
//! the per-request series are registered once, so the request path never
//! hashes a label set. With no recorder installed everything is a no-op.

use metrics::{
    counter, describe_counter, describe_gauge, describe_histogram, gauge, Counter, Gauge,
    Histogram, Unit,
};

use keyshift_core::{Alg, Phase};

use crate::error::{outcome_index, AlgLabel, Outcome};
use crate::jwks::FetchOutcome;
use crate::legacy::{Loosening, Loosenings};

/// `keyshift_verify_total{alg, outcome}`.
pub const VERIFY_TOTAL: &str = "keyshift_verify_total";
/// `keyshift_verify_legacy_total{loosening}`: HS256 tokens accepted only
/// through the legacy profile, once per loosening each relied on. A counter
/// of its own rather than a label of `keyshift_verify_total`, whose label
/// set is contract: those acceptances also count there as `accepted`.
pub const VERIFY_LEGACY_TOTAL: &str = "keyshift_verify_legacy_total";
/// `keyshift_verify_duration_seconds{alg}`.
pub const VERIFY_DURATION: &str = "keyshift_verify_duration_seconds";
/// `keyshift_key_cache_total{result}`.
pub const KEY_CACHE: &str = "keyshift_key_cache_total";
/// `keyshift_token_cache_total{result}`.
pub const TOKEN_CACHE: &str = "keyshift_token_cache_total";
/// `keyshift_jwks_fetch_total{outcome}`.
pub const JWKS_FETCH: &str = "keyshift_jwks_fetch_total";
/// `keyshift_jwks_keys`.
pub const JWKS_KEYS: &str = "keyshift_jwks_keys";
/// `keyshift_jwks_last_success_timestamp_seconds`.
pub const JWKS_LAST_SUCCESS: &str = "keyshift_jwks_last_success_timestamp_seconds";
/// `keyshift_last_accepted_timestamp_seconds{alg}`.
pub const LAST_ACCEPTED: &str = "keyshift_last_accepted_timestamp_seconds";
/// `keyshift_ready_for_asymmetric`: `/migration`'s `ready_for_asymmetric` as 0/1.
pub const READY_FOR_ASYMMETRIC: &str = "keyshift_ready_for_asymmetric";
/// `keyshift_hs256_valid_until_timestamp_seconds`: `/migration`'s
/// `hs256_valid_until_unix` (0 while the issuer signs HS256).
pub const HS256_VALID_UNTIL: &str = "keyshift_hs256_valid_until_timestamp_seconds";
/// `keyshift_jwks_max_staleness_seconds`: the configured `jwks_max_staleness`,
/// so an alert can compare the age of the keys with it.
pub const JWKS_MAX_STALENESS: &str = "keyshift_jwks_max_staleness_seconds";

/// `keyshift_phase_forced_total`: switches into phase `asymmetric` that
/// `force_phase` pushed through while HS256 tokens could still be valid.
pub const PHASE_FORCED: &str = "keyshift_phase_forced_total";

/// Buckets of `keyshift_verify_duration_seconds`. Measured on one core
/// (docs/performance.md): a token-cache hit takes ~0.2 µs, a full HS256
/// verification ~1 µs, RS256 ~13 µs; an unknown-kid refetch takes a network
/// round trip (ms, up to the fetch timeout). Buckets from 250 ns to 5 s keep
/// each regime in its own few buckets so `histogram_quantile` can tell them
/// apart (18 buckets x 3 `alg` values: 60 series with `+Inf`, cheap).
pub const VERIFY_DURATION_BUCKETS: &[f64] = &[
    0.000_000_25,
    0.000_000_5,
    0.000_001,
    0.000_002_5,
    0.000_005,
    0.000_01,
    0.000_025,
    0.000_05,
    0.000_1,
    0.000_25,
    0.000_5,
    0.001,
    0.005,
    0.025,
    0.1,
    0.5,
    1.0,
    5.0,
];

/// Registers help text; call once at start.
pub fn describe() {
    describe_counter!(
        VERIFY_TOTAL,
        Unit::Count,
        "Token verifications by algorithm and outcome."
    );
    describe_counter!(
        VERIFY_LEGACY_TOTAL,
        Unit::Count,
        "HS256 tokens accepted only through the legacy profile, per loosening relied on."
    );
    describe_histogram!(
        VERIFY_DURATION,
        Unit::Seconds,
        "Time to verify one token, by algorithm."
    );
    describe_counter!(
        KEY_CACHE,
        Unit::Count,
        "RS256 key lookups in the JWKS cache (hit: kid cached)."
    );
    describe_counter!(
        TOKEN_CACHE,
        Unit::Count,
        "Verified-token cache lookups (hit: token verified before)."
    );
    describe_counter!(
        JWKS_FETCH,
        Unit::Count,
        "JWKS fetches by outcome (ok, not_modified, error)."
    );
    describe_gauge!(JWKS_KEYS, Unit::Count, "RSA keys in the JWKS cache.");
    describe_gauge!(
        JWKS_LAST_SUCCESS,
        Unit::Seconds,
        "Unix time of the last successful JWKS fetch."
    );
    describe_gauge!(
        LAST_ACCEPTED,
        Unit::Seconds,
        "Unix time a token of this algorithm was last accepted."
    );
    describe_gauge!(
        READY_FOR_ASYMMETRIC,
        "1 when no HS256 token this verifier would accept can still be valid (safe to enter phase asymmetric)."
    );
    describe_gauge!(
        HS256_VALID_UNTIL,
        Unit::Seconds,
        "Unix time after which no HS256 token this verifier would accept can be valid (0 while the issuer signs HS256)."
    );
    describe_gauge!(
        JWKS_MAX_STALENESS,
        Unit::Seconds,
        "The configured jwks_max_staleness: past it, RS256 requests get 503."
    );
    describe_counter!(
        PHASE_FORCED,
        Unit::Count,
        "Switches into phase asymmetric made by force_phase while HS256 tokens could still be valid."
    );
    counter!(PHASE_FORCED).absolute(0);
    keyshift_core::phase_metrics::describe();
    keyshift_http::metrics::describe();
}

/// Pre-registered handles of the per-request series.
#[derive(Clone)]
pub struct VerifyMetrics {
    totals: Vec<Counter>,
    durations: Vec<Histogram>,
    key_hit: Counter,
    key_miss: Counter,
    last_accepted: [Gauge; 2],
    legacy: [Counter; Loosening::ALL.len()],
}

impl std::fmt::Debug for VerifyMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("VerifyMetrics")
    }
}

impl VerifyMetrics {
    /// Registers every (alg, outcome) series with the installed recorder.
    pub fn register() -> VerifyMetrics {
        let mut totals = Vec::with_capacity(AlgLabel::ALL.len() * Outcome::ALL.len());
        for alg in AlgLabel::ALL {
            for outcome in Outcome::ALL {
                totals.push(
                    counter!(VERIFY_TOTAL, "alg" => alg.as_str(), "outcome" => outcome.as_str()),
                );
            }
        }
        VerifyMetrics {
            totals,
            durations: AlgLabel::ALL
                .iter()
                .map(|a| metrics::histogram!(VERIFY_DURATION, "alg" => a.as_str()))
                .collect(),
            key_hit: counter!(KEY_CACHE, "result" => "hit"),
            key_miss: counter!(KEY_CACHE, "result" => "miss"),
            last_accepted: [
                gauge!(LAST_ACCEPTED, "alg" => Alg::Hs256.as_str()),
                gauge!(LAST_ACCEPTED, "alg" => Alg::Rs256.as_str()),
            ],
            legacy: Loosening::ALL
                .map(|l| counter!(VERIFY_LEGACY_TOTAL, "loosening" => l.as_str())),
        }
    }

    /// Counts an acceptance that relied on the legacy profile.
    pub fn legacy(&self, loosened: Loosenings) {
        for l in loosened.iter() {
            self.legacy[l.index()].increment(1);
        }
    }

    /// Counts one verification and its duration.
    pub fn verified(&self, alg: AlgLabel, outcome: Outcome, seconds: f64) {
        self.counted(alg, outcome);
        if let Some(h) = self.durations.get(alg.index()) {
            h.record(seconds);
        }
    }

    /// Counts a decision that verified nothing (no duration sample).
    pub fn counted(&self, alg: AlgLabel, outcome: Outcome) {
        let i = alg.index() * Outcome::ALL.len() + outcome_index(outcome);
        if let Some(c) = self.totals.get(i) {
            c.increment(1);
        }
    }

    /// Records when a token of `alg` was last accepted.
    pub fn accepted_at(&self, alg: Alg, unix: u64) {
        self.last_accepted[alg.index()].set(unix as f64);
    }

    /// Counts a JWKS cache lookup.
    pub fn key_cache(&self, hit: bool) {
        if hit { &self.key_hit } else { &self.key_miss }.increment(1);
    }
}

/// The (hit, miss) handles of `keyshift_token_cache_total`, registered when
/// the token cache is switched on (absent while it is off).
pub fn token_cache_counters() -> (Counter, Counter) {
    (
        counter!(TOKEN_CACHE, "result" => "hit"),
        counter!(TOKEN_CACHE, "result" => "miss"),
    )
}

/// Publishes the phase gauges (shared with the other service).
pub fn set_phase(phase: Phase, secret_configured: bool) {
    keyshift_core::phase_metrics::set(phase, secret_configured);
}

/// Publishes readiness for phase `asymmetric`.
pub fn set_readiness(ready: bool, hs256_valid_until: Option<u64>) {
    gauge!(READY_FOR_ASYMMETRIC).set(if ready { 1.0 } else { 0.0 });
    gauge!(HS256_VALID_UNTIL).set(hs256_valid_until.unwrap_or(0) as f64);
}

/// Counts a switch into phase `asymmetric` that `force_phase` pushed through.
pub fn phase_forced() {
    counter!(PHASE_FORCED).increment(1);
}

/// Publishes the configured maximum staleness of the JWKS keys.
pub fn set_max_staleness(max: std::time::Duration) {
    gauge!(JWKS_MAX_STALENESS).set(max.as_secs_f64());
}

/// Counts a JWKS fetch and publishes the cache gauges.
pub fn jwks_fetched(outcome: FetchOutcome, keys: usize, last_success_unix: Option<u64>) {
    counter!(JWKS_FETCH, "outcome" => outcome.as_str()).increment(1);
    gauge!(JWKS_KEYS).set(keys as f64);
    if let Some(t) = last_success_unix {
        gauge!(JWKS_LAST_SUCCESS).set(t as f64);
    }
}
