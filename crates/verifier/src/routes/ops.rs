//! `/migration`, `/keys`, `/readyz` (`/healthz` and `/metrics` are
//! [`keyshift_http::ops`]).

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use keyshift_http::ops::{json, text};

use crate::service::State;

/// Readiness for phase 3 and the counts behind it.
pub fn migration(state: &State) -> Response<Full<Bytes>> {
    json(&state.verifier.migration())
}

/// The JWKS cache status (public parts only).
pub fn keys(state: &State) -> Response<Full<Bytes>> {
    match state.verifier.jwks() {
        Some(jwks) => json(&jwks.status()),
        None => json(&serde_json::json!({ "keys": [], "note": "RS256 is not configured" })),
    }
}

/// Ready once the keys the accepted algorithms need are loaded.
pub fn readyz(state: &State) -> Response<Full<Bytes>> {
    if state.verifier.ready() {
        text(StatusCode::OK, "ready\n")
    } else {
        text(StatusCode::SERVICE_UNAVAILABLE, "keys not loaded\n")
    }
}
