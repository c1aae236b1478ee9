//! The issuer's Prometheus metrics (names per the contract). The binary owns
//! the exporter; this crate only records.

use metrics::{describe_counter, describe_gauge, gauge, Unit};

use keyshift_core::Phase;

use crate::keystore::KeyState;

/// `keyshift_tokens_issued_total{alg, client}`: tokens issued.
pub const TOKENS_ISSUED: &str = "keyshift_tokens_issued_total";
/// `keyshift_token_requests_total{outcome}`: token requests by outcome.
pub const TOKEN_REQUESTS: &str = "keyshift_token_requests_total";
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
