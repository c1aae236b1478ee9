//! `GET /healthz` and `GET /metrics`.

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderValue, Response};
use http_body_util::Full;

use crate::issuer::Issuer;

/// Liveness: the process answers.
pub fn healthz() -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from_static(b"ok\n")));
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    resp
}

/// Prometheus text exposition format 0.0.4.
pub fn metrics(issuer: &Issuer) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(issuer.render_metrics())));
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    resp
}
