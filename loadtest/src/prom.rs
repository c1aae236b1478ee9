//! Before/after differences of the counters the harness reads from
//! `/metrics` (parsed by [`keyshift_testkit::prom`]).
//!
//! The metric names are the services' (docs/metrics.md lists them), spelled
//! once here: the harness reaches the services over HTTP only, so it does
//! not link their `metrics.rs` constants.

use std::collections::BTreeMap;

pub use keyshift_testkit::prom::{parse, Samples, Series};

/// `keyshift_verify_total{alg, outcome}` (verifier).
pub const VERIFY_TOTAL: &str = "keyshift_verify_total";
/// `keyshift_key_cache_total{result}` (verifier).
pub const KEY_CACHE: &str = "keyshift_key_cache_total";
/// `keyshift_token_cache_total{result}` (verifier).
pub const TOKEN_CACHE: &str = "keyshift_token_cache_total";
/// `keyshift_jwks_fetch_total{outcome}` (verifier).
pub const JWKS_FETCH: &str = "keyshift_jwks_fetch_total";
/// `keyshift_verify_legacy_total{loosening}` (verifier, with `[verifier.legacy]`).
pub const VERIFY_LEGACY: &str = "keyshift_verify_legacy_total";
/// `keyshift_gateway_requests_total{route, outcome}` (gateway).
pub const GATEWAY_REQUESTS: &str = "keyshift_gateway_requests_total";
/// `keyshift_gateway_signed_cache_total{result}` (gateway).
pub const GATEWAY_SIGNED_CACHE: &str = "keyshift_gateway_signed_cache_total";
/// `keyshift_gateway_signed_total{route}` (gateway).
pub const GATEWAY_SIGNED: &str = "keyshift_gateway_signed_total";
/// `keyshift_gateway_upstream_errors_total{route, kind}` (gateway).
pub const GATEWAY_UPSTREAM_ERRORS: &str = "keyshift_gateway_upstream_errors_total";
/// `keyshift_tokens_issued_total{alg, client}` (issuer).
pub const TOKENS_ISSUED: &str = "keyshift_tokens_issued_total";
/// `keyshift_token_requests_total{outcome}` (issuer).
pub const TOKEN_REQUESTS: &str = "keyshift_token_requests_total";

/// The increase of a counter from `before` to `after`, as Prometheus'
/// `increase()` sees it: a value that went down means the process restarted
/// (counters reset to 0), so the increase is the value after the reset.
pub fn counter_increase(before: f64, after: f64) -> f64 {
    if after < before {
        after
    } else {
        after - before
    }
}

/// The increase of one series (missing before counts as 0).
fn increase(before: &Samples, series: &Series, value: f64) -> f64 {
    counter_increase(before.get(series).copied().unwrap_or(0.0), value)
}

/// Sums the increases of every series of `name` whose labels include all `labels`.
pub fn delta_where(before: &Samples, after: &Samples, name: &str, labels: &[(&str, &str)]) -> f64 {
    after
        .iter()
        .filter(|(s, _)| s.matches(name, labels))
        .map(|(s, v)| increase(before, s, *v))
        .sum()
}

/// Increases of `name` grouped by the values of `keys` joined with `/`
/// (e.g. `["alg", "outcome"]` → `"HS256/accepted"`), zeros left out.
pub fn deltas_by(
    before: &Samples,
    after: &Samples,
    name: &str,
    keys: &[&str],
) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for (s, v) in after.iter().filter(|(s, _)| s.matches(name, &[])) {
        let d = increase(before, s, *v);
        if d > 0.0 {
            let key: Vec<&str> = keys.iter().map(|k| s.label(k)).collect();
            *out.entry(key.join("/")).or_insert(0) += d.round() as u64;
        }
    }
    out
}

/// hit / (hit + miss) of a `{result="hit|miss"}` counter; `None` without lookups.
pub fn hit_rate(before: &Samples, after: &Samples, name: &str) -> Option<f64> {
    let hit = delta_where(before, after, name, &[("result", "hit")]);
    let miss = delta_where(before, after, name, &[("result", "miss")]);
    let total = hit + miss;
    (total > 0.0).then(|| hit / total)
}

/// The value of a gauge series with exactly these labels among others.
pub fn gauge(samples: &Samples, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|(s, _)| s.matches(name, labels))
        .map(|(_, v)| *v)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEFORE: &str = "# HELP x\nkeyshift_verify_total{alg=\"HS256\",outcome=\"accepted\"} 10\nkeyshift_key_cache_total{result=\"hit\"} 5\n";
    const AFTER: &str = "keyshift_verify_total{alg=\"HS256\",outcome=\"accepted\"} 25\nkeyshift_verify_total{alg=\"RS256\",outcome=\"accepted\"} 7\nkeyshift_key_cache_total{result=\"hit\"} 14\nkeyshift_key_cache_total{result=\"miss\"} 1\ngarbage line\n";

    #[test]
    fn deltas_and_hit_rates() {
        let (b, a) = (parse(BEFORE), parse(AFTER));
        assert_eq!(
            delta_where(&b, &a, VERIFY_TOTAL, &[("outcome", "accepted")]),
            22.0
        );
        assert_eq!(delta_where(&b, &a, VERIFY_TOTAL, &[("alg", "RS256")]), 7.0);
        assert_eq!(hit_rate(&b, &a, KEY_CACHE), Some(0.9));
        assert_eq!(hit_rate(&b, &a, TOKEN_CACHE), None);
        let by = deltas_by(&b, &a, VERIFY_TOTAL, &["alg", "outcome"]);
        assert_eq!(by.get("HS256/accepted"), Some(&15));
        assert_eq!(by.get("RS256/accepted"), Some(&7));
        assert_eq!(by.len(), 2);
    }

    #[test]
    fn a_counter_that_went_down_restarted_so_its_increase_is_the_new_value() {
        assert_eq!(counter_increase(100.0, 130.0), 30.0);
        assert_eq!(counter_increase(100.0, 40.0), 40.0);
        let b = parse("keyshift_jwks_fetch_total{outcome=\"ok\"} 50\n");
        let a = parse("keyshift_jwks_fetch_total{outcome=\"ok\"} 3\n");
        assert_eq!(delta_where(&b, &a, JWKS_FETCH, &[]), 3.0);
        assert_eq!(
            deltas_by(&b, &a, JWKS_FETCH, &["outcome"]).get("ok"),
            Some(&3)
        );
    }
}
