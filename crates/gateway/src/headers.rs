//! Header rewriting of a proxy (RFC 9110 §7.6): hop-by-hop fields and those
//! the `Connection` header names are removed both ways, `Via` is appended,
//! `X-Forwarded-*` are set from what the gateway saw (never from what the
//! client claims), and identity headers a client sent are removed: only a
//! forward-auth check may set `X-Auth-*`, so a backend behind the gateway
//! must never see a client's own.

use std::net::IpAddr;

use http::header::{self, HeaderName};
use http::{HeaderMap, HeaderValue};

/// The `Via` entry of the gateway.
pub const VIA: HeaderValue = HeaderValue::from_static("1.1 keyshift-gateway");
/// `X-Forwarded-For`.
pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// `X-Forwarded-Proto`.
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
/// `X-Forwarded-Host`.
pub const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
/// The prefix of the identity headers forward-auth sets.
pub const IDENTITY_PREFIX: &str = "x-auth-";

/// Hop-by-hop fields (RFC 9110 §7.6.1, and RFC 2616's list that proxies
/// still meet: `Keep-Alive`, `Proxy-Connection`, the proxy credentials).
const HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::PROXY_AUTHORIZATION,
    header::PROXY_AUTHENTICATE,
];

/// Removes the hop-by-hop fields and every field `Connection` names.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
}

/// Removes the identity headers (`X-Auth-*`) and `Forwarded` a client sent.
pub fn strip_identity(headers: &mut HeaderMap) {
    let spoofed: Vec<HeaderName> = headers
        .keys()
        .filter(|n| n.as_str().starts_with(IDENTITY_PREFIX))
        .cloned()
        .collect();
    for name in &spoofed {
        headers.remove(name);
    }
    headers.remove(header::FORWARDED);
}

/// Sets `Via` and `X-Forwarded-For/Proto/Host` on a request to an upstream
/// and removes `Host` (the client sets the upstream's). The client's
/// `X-Forwarded-*` are replaced: at the edge they are claims, not facts.
pub fn forward_request(headers: &mut HeaderMap, peer: IpAddr) {
    let host = headers.remove(header::HOST);
    headers.insert(X_FORWARDED_FOR, peer_value(peer));
    headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("http"));
    match host {
        Some(h) => headers.insert(X_FORWARDED_HOST, h),
        None => headers.remove(X_FORWARDED_HOST),
    };
    headers.append(header::VIA, VIA);
}

/// Rewrites an upstream's response headers for the client.
pub fn forward_response(headers: &mut HeaderMap) {
    strip_hop_by_hop(headers);
    headers.append(header::VIA, VIA);
}

fn peer_value(peer: IpAddr) -> HeaderValue {
    // An IP address is always a valid header value.
    HeaderValue::from_str(&peer.to_string()).unwrap_or(HeaderValue::from_static("unknown"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(
                HeaderName::from_bytes(n.as_bytes()).expect("name"),
                HeaderValue::from_str(v).expect("value"),
            );
        }
        h
    }

    #[test]
    fn hop_by_hop_and_connection_named_fields_are_removed() {
        let mut h = map(&[
            ("connection", "keep-alive, X-Secret-Hop"),
            ("connection", "x-other"),
            ("keep-alive", "timeout=5"),
            ("x-secret-hop", "1"),
            ("x-other", "2"),
            ("te", "trailers"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("proxy-authorization", "Basic eA=="),
            ("content-type", "text/plain"),
            ("authorization", "Bearer t"),
        ]);
        strip_hop_by_hop(&mut h);
        let left: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        assert_eq!(left, ["content-type", "authorization"]);
    }

    #[test]
    fn client_identity_headers_are_removed() {
        let mut h = map(&[
            ("x-auth-subject", "admin"),
            ("X-Auth-Scope", "root"),
            ("forwarded", "for=1.2.3.4"),
            ("x-authority", "kept: not an identity header"),
        ]);
        strip_identity(&mut h);
        let left: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        assert_eq!(left, ["x-authority"]);
    }

    #[test]
    fn forwarded_fields_are_the_gateways_and_via_is_appended() {
        let mut h = map(&[
            ("host", "shop.test"),
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-proto", "https"),
            ("via", "1.0 client-proxy"),
        ]);
        forward_request(&mut h, "127.0.0.1".parse().expect("ip"));
        assert!(h.get(header::HOST).is_none());
        assert_eq!(h[X_FORWARDED_FOR], "127.0.0.1");
        assert_eq!(h[X_FORWARDED_PROTO], "http");
        assert_eq!(h[X_FORWARDED_HOST], "shop.test");
        let via: Vec<_> = h.get_all(header::VIA).iter().collect();
        assert_eq!(via, ["1.0 client-proxy", "1.1 keyshift-gateway"]);
        let mut no_host = map(&[("x-forwarded-host", "evil.test")]);
        forward_request(&mut no_host, "::1".parse().expect("ip"));
        assert!(no_host.get(X_FORWARDED_HOST).is_none());
        assert_eq!(no_host[X_FORWARDED_FOR], "::1");
    }
}
