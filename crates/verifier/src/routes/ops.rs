//! `/migration`, `/keys`, `/healthz`, `/readyz`, `/metrics`.

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, Response, StatusCode};
use http_body_util::Full;
use serde::Serialize;

use crate::service::State;

fn json(value: &impl Serialize) -> Response<Full<Bytes>> {
    let body = serde_json::to_vec_pretty(value).unwrap_or_else(|_| b"{}".to_vec());
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    resp
}

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

/// Liveness.
pub fn healthz() -> Response<Full<Bytes>> {
    text(StatusCode::OK, "ok\n")
}

/// Ready once the keys the accepted algorithms need are loaded.
pub fn readyz(state: &State) -> Response<Full<Bytes>> {
    if state.verifier.ready() {
        text(StatusCode::OK, "ready\n")
    } else {
        text(StatusCode::SERVICE_UNAVAILABLE, "keys not loaded\n")
    }
}

/// Prometheus text exposition format 0.0.4.
pub fn metrics(state: &State) -> Response<Full<Bytes>> {
    state.verifier.publish_gauges();
    let mut resp = Response::new(Full::new(Bytes::from((state.render_metrics)())));
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    resp
}
