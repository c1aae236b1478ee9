//! `GET /migration`: the issuer's phase and its record of HS256 tokens
//! (see [`crate::ledger`]), which verifiers read before they refuse HS256.

use bytes::Bytes;
use http::Response;
use http_body_util::Full;
use keyshift_http::ops::json;

use crate::issuer::Issuer;

/// The issuer's answer (JSON, `Cache-Control: no-store`).
pub fn handle(issuer: &Issuer) -> Response<Full<Bytes>> {
    json(&issuer.migration())
}
