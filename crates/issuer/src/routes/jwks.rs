//! `GET /.well-known/jwks.json`: the public keys (next, active, retiring),
//! pre-rendered at each key change, with `Cache-Control: max-age` and a strong
//! `ETag` honoured by `If-None-Match`.

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use http_body_util::Full;

use crate::issuer::Live;

/// Serves the JWKS, or 304 when the client's ETag matches.
pub fn handle(live: &Live, headers: &HeaderMap) -> Response<Full<Bytes>> {
    let matches = headers
        .get_all(IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| etag_list_matches(v, &live.jwks_etag));
    let mut resp = if matches {
        let mut r = Response::new(Full::new(Bytes::new()));
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else {
        let mut r = Response::new(Full::new(live.jwks.clone()));
        r.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/jwk-set+json"),
        );
        r
    };
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&format!(
        "public, max-age={}",
        live.config.jwks_max_age.as_secs()
    )) {
        h.insert(CACHE_CONTROL, v);
    }
    if let Ok(v) = HeaderValue::from_str(&live.jwks_etag) {
        h.insert(ETAG, v);
    }
    resp
}

/// `If-None-Match` uses weak comparison (RFC 9110 §13.1.2): `*`, or any
/// listed tag equal to ours once a `W/` prefix is dropped.
fn etag_list_matches(list: &str, ours: &str) -> bool {
    list.split(',')
        .map(str::trim)
        .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == ours)
}

#[cfg(test)]
mod tests {
    use super::etag_list_matches;

    #[test]
    fn if_none_match_uses_weak_comparison() {
        assert!(etag_list_matches("\"abc\"", "\"abc\""));
        assert!(etag_list_matches("\"x\", W/\"abc\"", "\"abc\""));
        assert!(etag_list_matches("*", "\"abc\""));
        assert!(!etag_list_matches("\"abd\"", "\"abc\""));
        assert!(!etag_list_matches("abc", "\"abc\""));
    }
}
