//! The issuer's Prometheus metrics (names per the contract). The binary owns
//! the exporter; this crate only records.

use std::collections::HashMap;

use metrics::{
    counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram, Counter,
    Histogram, Unit,
};

use keyshift_core::config::ClientConfig;
use keyshift_core::{Alg, Phase};

use crate::keystore::KeyState;

/// `keyshift_tokens_issued_total{alg, client}`: tokens issued.
pub const TOKENS_ISSUED: &str = "keyshift_tokens_issued_total";
/// `keyshift_token_requests_total{outcome}`: token requests by outcome.
pub const TOKEN_REQUESTS: &str = "keyshift_token_requests_total";
/// `keyshift_token_request_duration_seconds`: time to answer a token request.
pub const TOKEN_REQUEST_DURATION: &str = "keyshift_token_request_duration_seconds";

/// Buckets of `keyshift_token_request_duration_seconds`. A sha256 client's
/// request takes ~50 µs with HS256 and ~0.3 ms with RS256 signing (one RSA
/// signature, docs/performance.md); slow hashes add 5-50 ms (bcrypt cost 10,
/// argon2id defaults), and a request waiting for a slow-hash slot up to 2 s.
/// 14 buckets, one series set: cheap.
pub const TOKEN_REQUEST_DURATION_BUCKETS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
    2.5,
];

/// Every `outcome` label of `keyshift_token_requests_total`.
pub const OUTCOMES: [&str; 7] = [
    "issued",
    "invalid_request",
    "invalid_client",
    "invalid_scope",
    "unsupported_grant_type",
    "rate_limited",
    "server_error",
];

/// `keyshift_signing_keys{state}`: keys per state (next, active, retiring).
pub const SIGNING_KEYS: &str = "keyshift_signing_keys";

/// `keyshift_next_rotation_timestamp_seconds`: when the active key is due to
/// be replaced (see [`crate::rotation::next_rotation`]); `+Inf` when no
/// rotation is scheduled (`rotate_every = "off"` and no dated next key).
pub const NEXT_ROTATION: &str = "keyshift_next_rotation_timestamp_seconds";

/// Registers help text; call once at start.
pub fn describe() {
    describe_counter!(
        TOKENS_ISSUED,
        Unit::Count,
        "Access tokens issued, by signing algorithm and client."
    );
    describe_counter!(
        TOKEN_REQUESTS,
        Unit::Count,
        "Token endpoint requests by outcome (issued or the RFC 6749 error, or rate_limited)."
    );
    describe_histogram!(
        TOKEN_REQUEST_DURATION,
        Unit::Seconds,
        "Time to answer a token request, from the headers read to the response built."
    );
    describe_gauge!(
        SIGNING_KEYS,
        Unit::Count,
        "RSA keys in the key directory by state (next, active, retiring)."
    );
    describe_gauge!(
        NEXT_ROTATION,
        Unit::Seconds,
        "Unix time at which the active signing key is due to be replaced; +Inf when no rotation is scheduled."
    );
    keyshift_core::phase_metrics::describe();
    keyshift_http::metrics::describe();
}

/// Publishes the phase gauges (shared with the other service).
pub fn set_phase(phase: Phase, secret_configured: bool) {
    keyshift_core::phase_metrics::set(phase, secret_configured);
}

/// Publishes the key counts.
pub fn set_key_counts(count: impl Fn(KeyState) -> usize) {
    for state in [KeyState::Next, KeyState::Active, KeyState::Retiring] {
        gauge!(SIGNING_KEYS, "state" => state.as_str()).set(count(state) as f64);
    }
}

/// Publishes when the next rotation is due; `None` (nothing scheduled) is
/// `+Inf`: "never", which keeps `time() > gauge` alerts quiet, where 0 would
/// read as "overdue since 1970" and a value left from an earlier schedule
/// would show a date that no longer holds.
pub fn set_next_rotation(unix: Option<u64>) {
    gauge!(NEXT_ROTATION).set(unix.map_or(f64::INFINITY, |t| t as f64));
}

/// The token endpoint's metric handles, registered once per config (the
/// request path only increments): one per outcome, one per configured client
/// and algorithm, and the duration histogram.
#[derive(Debug)]
pub struct TokenMetrics {
    requests: [Counter; OUTCOMES.len()],
    issued: HashMap<String, [Counter; Alg::ALL.len()]>,
    duration: Histogram,
}

impl TokenMetrics {
    /// Handles for `clients`.
    pub fn new(clients: &[ClientConfig]) -> TokenMetrics {
        TokenMetrics {
            requests: OUTCOMES.map(|o| counter!(TOKEN_REQUESTS, "outcome" => o)),
            issued: clients
                .iter()
                .map(|c| {
                    let per_alg = Alg::ALL.map(
                        |a| counter!(TOKENS_ISSUED, "alg" => a.as_str(), "client" => c.id.clone()),
                    );
                    (c.id.clone(), per_alg)
                })
                .collect(),
            duration: histogram!(TOKEN_REQUEST_DURATION),
        }
    }

    /// Counts one answered request (`outcome` from [`OUTCOMES`]) and its duration.
    pub fn answered(&self, outcome: &str, seconds: f64) {
        if let Some(i) = OUTCOMES.iter().position(|o| *o == outcome) {
            self.requests[i].increment(1);
        }
        self.duration.record(seconds);
    }

    /// Counts a token issued to `client` (a configured one).
    pub fn issued(&self, client: &str, alg: Alg) {
        if let Some(c) = self.issued.get(client) {
            c[alg.index()].increment(1);
        }
    }
}
