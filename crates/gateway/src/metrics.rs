//! Metric names (../shared/contract.md, "Gateway") and the handles of one
//! route, registered once at start so a request formats no label.

use metrics::{counter, histogram, Counter, Histogram};

/// Requests by route and outcome.
pub const REQUESTS: &str = "keyshift_gateway_requests_total";
/// Time from request head to response head, by route.
pub const DURATION: &str = "keyshift_gateway_duration_seconds";
/// Upstream failures by route and kind.
pub const UPSTREAM_ERRORS: &str = "keyshift_gateway_upstream_errors_total";
/// Tokens signed (cache misses), by route.
pub const SIGNED: &str = "keyshift_gateway_signed_total";
/// Signed-token cache lookups by result (`hit`, `miss`).
pub const SIGNED_CACHE: &str = "keyshift_gateway_signed_cache_total";

/// Buckets of [`DURATION`]: 0.5 ms (a refusal, a cache-hit proxy on
/// loopback) to 30 s (the default upstream timeout); the time is the
/// upstream's in the main, so the buckets follow web latencies.
pub const DURATION_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The route label of a request no route matched.
pub const NO_ROUTE: &str = "none";

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The upstream answered; its answer was passed on.
    Proxied,
    /// No or a refused token (401, or 400 for a malformed Authorization).
    Unauthorized,
    /// The token lacks a route scope (403).
    InsufficientScope,
    /// RS256 keys unavailable at the verifier (503).
    KeysUnavailable,
    /// The client sent `sign_header` on an `if_present = "fail"` route (400).
    HeaderPresent,
    /// No signing key, or signing failed (500).
    SignFailed,
    /// The upstream could not be reached or broke the exchange (502).
    BadGateway,
    /// The upstream did not answer in time (504).
    Timeout,
    /// No route matches (404).
    NoRoute,
}

impl Outcome {
    /// Every outcome, in label order.
    pub const ALL: [Outcome; 9] = [
        Outcome::Proxied,
        Outcome::Unauthorized,
        Outcome::InsufficientScope,
        Outcome::KeysUnavailable,
        Outcome::HeaderPresent,
        Outcome::SignFailed,
        Outcome::BadGateway,
        Outcome::Timeout,
        Outcome::NoRoute,
    ];

    /// The `outcome` label value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Outcome::Proxied => "proxied",
            Outcome::Unauthorized => "unauthorized",
            Outcome::InsufficientScope => "insufficient_scope",
            Outcome::KeysUnavailable => "keys_unavailable",
            Outcome::HeaderPresent => "header_present",
            Outcome::SignFailed => "sign_failed",
            Outcome::BadGateway => "bad_gateway",
            Outcome::Timeout => "timeout",
            Outcome::NoRoute => "no_route",
        }
    }
}

/// Why an upstream exchange failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamError {
    /// Connection refused, unreachable, or the connect timeout.
    Connect,
    /// No response head within `upstream_timeout`.
    Timeout,
    /// The connection broke or the upstream spoke no valid HTTP/1.1.
    Protocol,
}

impl UpstreamError {
    /// Every kind, in label order.
    pub const ALL: [UpstreamError; 3] = [
        UpstreamError::Connect,
        UpstreamError::Timeout,
        UpstreamError::Protocol,
    ];

    /// The `kind` label value.
    pub const fn as_str(self) -> &'static str {
        match self {
            UpstreamError::Connect => "connect",
            UpstreamError::Timeout => "timeout",
            UpstreamError::Protocol => "protocol",
        }
    }
}

/// The metric handles of one route (or of [`NO_ROUTE`]).
#[derive(Debug, Clone)]
pub struct RouteMetrics {
    requests: [Counter; Outcome::ALL.len()],
    upstream_errors: [Counter; UpstreamError::ALL.len()],
    /// [`DURATION`] of the route.
    pub duration: Histogram,
    /// [`SIGNED`] of the route.
    pub signed: Counter,
}

impl RouteMetrics {
    /// Registers the series of route `name`.
    pub fn new(name: &str) -> RouteMetrics {
        let route = name.to_owned();
        RouteMetrics {
            requests: Outcome::ALL
                .map(|o| counter!(REQUESTS, "route" => route.clone(), "outcome" => o.as_str())),
            upstream_errors: UpstreamError::ALL
                .map(|k| counter!(UPSTREAM_ERRORS, "route" => route.clone(), "kind" => k.as_str())),
            duration: histogram!(DURATION, "route" => route.clone()),
            signed: counter!(SIGNED, "route" => route),
        }
    }

    /// Counts one request.
    pub fn request(&self, outcome: Outcome) {
        if let Some(c) = self.requests.get(outcome as usize) {
            c.increment(1);
        }
    }

    /// Counts one upstream failure.
    pub fn upstream_error(&self, kind: UpstreamError) {
        if let Some(c) = self.upstream_errors.get(kind as usize) {
            c.increment(1);
        }
    }
}

/// The signed-token cache counters.
#[derive(Debug, Clone)]
pub struct CacheMetrics {
    /// A reused token.
    pub hit: Counter,
    /// A token signed.
    pub miss: Counter,
}

impl CacheMetrics {
    /// Registers both series.
    pub fn new() -> CacheMetrics {
        CacheMetrics {
            hit: counter!(SIGNED_CACHE, "result" => "hit"),
            miss: counter!(SIGNED_CACHE, "result" => "miss"),
        }
    }
}

impl Default for CacheMetrics {
    fn default() -> Self {
        CacheMetrics::new()
    }
}

/// Describes every gateway metric; called once at start.
pub fn describe() {
    metrics::describe_counter!(REQUESTS, "gateway requests by route and outcome");
    metrics::describe_histogram!(
        DURATION,
        metrics::Unit::Seconds,
        "time from request head to response head, by route"
    );
    metrics::describe_counter!(UPSTREAM_ERRORS, "upstream failures by route and kind");
    metrics::describe_counter!(SIGNED, "RS256 tokens signed for upstreams, by route");
    metrics::describe_counter!(SIGNED_CACHE, "signed-token cache lookups by result");
}
