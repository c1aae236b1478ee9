//! `GET /.well-known/oauth-authorization-server` and
//! `/.well-known/openid-configuration`: RFC 8414 metadata, pre-rendered.

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, Response};
use http_body_util::Full;

use crate::issuer::Live;

/// Serves the metadata document.
pub fn handle(live: &Live) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(live.metadata.clone()));
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(
        CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    resp
}
