//! `GET /.well-known/oauth-authorization-server` and
//! `/.well-known/openid-configuration`: RFC 8414 metadata, pre-rendered.
//!
//! For an issuer URL with a path (`https://id.example.com/tenant-a`) the
//! document is also where each spec looks for it: RFC 8414 §3.1 inserts
//! the well-known part before the path
//! (`/.well-known/oauth-authorization-server/tenant-a`), OpenID Connect
//! Discovery §4 appends it (`/tenant-a/.well-known/openid-configuration`).

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, Response};
use http_body_util::Full;

use keyshift_core::config::IssuerConfig;

use crate::issuer::Live;

/// RFC 8414's well-known path.
pub const OAUTH_WELL_KNOWN: &str = "/.well-known/oauth-authorization-server";
/// OpenID Connect Discovery's well-known path.
pub const OIDC_WELL_KNOWN: &str = "/.well-known/openid-configuration";

/// Whether `path` is one of the locations of the metadata of `config`'s
/// issuer URL.
pub fn is_metadata_path(config: &IssuerConfig, path: &str) -> bool {
    if path == OAUTH_WELL_KNOWN || path == OIDC_WELL_KNOWN {
        return true;
    }
    let issuer_path = config.issuer_path();
    !issuer_path.is_empty()
        && (path.strip_prefix(OAUTH_WELL_KNOWN) == Some(issuer_path)
            || path.strip_suffix(OIDC_WELL_KNOWN) == Some(issuer_path))
}

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
