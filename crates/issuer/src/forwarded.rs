//! Which client a token request comes from, behind trusted proxies: the
//! address the failed-auth limits count (see [`crate::ratelimit`]).
//!
//! A request whose socket peer is one of `issuer.trusted_proxies` is
//! counted against the right-most `X-Forwarded-For` address that is not a
//! trusted proxy: each proxy appends the address it saw, so everything to
//! its right was written by proxies the operator listed, and everything to
//! its left by the client, who may write anything. A peer that is not
//! trusted is counted as itself, whatever its `X-Forwarded-For` says.
//!
//! With `issuer.proxy_protocol`, the connection's PROXY header says whose
//! connection a proxy forwards ([`proxied_peer`]); that address then stands
//! for the peer, when the header came from a trusted proxy.

use std::net::{IpAddr, SocketAddr};

use http::HeaderMap;
use keyshift_core::config::IpNet;

/// `X-Forwarded-For`.
pub const X_FORWARDED_FOR: &str = "x-forwarded-for";

/// The address the limits count for a request from `peer` with `headers`.
///
/// Walks `X-Forwarded-For` (all of its lines, in order, as one list) from
/// the right while the addresses are trusted proxies. The first untrusted
/// one is the client. An entry that is not an address (a proxy that writes
/// `unknown`, or garbage) ends the walk at the last trusted hop, as does a
/// list of trusted proxies only: the proxy nearest the client is counted,
/// never an address someone else could have chosen.
pub fn client_addr(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let peer = peer.to_canonical();
    if !is_trusted(peer, trusted) {
        return peer;
    }
    let mut hops: Vec<&str> = Vec::new();
    for value in headers.get_all(X_FORWARDED_FOR) {
        let Ok(text) = value.to_str() else {
            // Not text: written by no proxy; the entries right of it are
            // unknown too, so the peer is all that is known.
            return peer;
        };
        hops.extend(text.split(','));
    }
    let mut nearest = peer;
    for hop in hops.iter().rev() {
        let Some(addr) = parse_hop(hop) else {
            return nearest;
        };
        if !is_trusted(addr, trusted) {
            return addr;
        }
        nearest = addr;
    }
    nearest
}

/// The peer of a connection that started with a PROXY header naming
/// `source`: the source when the socket peer `socket` is a trusted proxy
/// (anyone else could have written any address), else `socket`. No source
/// (a LOCAL command) leaves `socket`.
pub fn proxied_peer(socket: IpAddr, source: Option<SocketAddr>, trusted: &[IpNet]) -> IpAddr {
    let socket = socket.to_canonical();
    match source {
        Some(source) if is_trusted(socket, trusted) => source.ip().to_canonical(),
        _ => socket,
    }
}

fn is_trusted(addr: IpAddr, trusted: &[IpNet]) -> bool {
    trusted.iter().any(|net| net.contains(&addr))
}

/// One `X-Forwarded-For` entry: `192.0.2.1`, `2001:db8::1`, and the forms
/// with a port some proxies write (`192.0.2.1:4711`, `[2001:db8::1]:4711`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    let addr = hop
        .parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .or_else(|| {
            hop.strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .and_then(|h| h.parse().ok())
        })?;
    Some(addr.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().expect("cidr")).collect()
    }

    fn from(peer: &str, xff: &[&str], trusted: &[&str]) -> String {
        let mut headers = HeaderMap::new();
        for line in xff {
            headers.append(X_FORWARDED_FOR, line.parse().expect("header"));
        }
        client_addr(peer.parse().expect("ip"), &headers, &nets(trusted)).to_string()
    }

    const PROXIES: &[&str] = &["10.0.0.0/8", "fd00::/8"];

    #[test]
    fn an_untrusted_peer_is_itself_whatever_it_forwards() {
        assert_eq!(from("192.0.2.9", &["203.0.113.1"], PROXIES), "192.0.2.9");
        assert_eq!(from("192.0.2.9", &["203.0.113.1"], &[]), "192.0.2.9");
        assert_eq!(from("10.0.0.1", &["203.0.113.1"], &[]), "10.0.0.1");
    }

    #[test]
    fn behind_trusted_proxies_the_rightmost_untrusted_hop_is_the_client() {
        // The client prepended a spoofed address; the proxy appended the real one.
        assert_eq!(
            from("10.0.0.1", &["198.51.100.1, 203.0.113.7"], PROXIES),
            "203.0.113.7"
        );
        // Two trusted proxies: the inner one appended the outer one.
        assert_eq!(
            from(
                "10.0.0.1",
                &["198.51.100.1, 203.0.113.7, 10.9.9.9"],
                PROXIES
            ),
            "203.0.113.7"
        );
        // Several header lines are one list, in order.
        assert_eq!(
            from(
                "10.0.0.1",
                &["198.51.100.1", "203.0.113.7", "10.9.9.9"],
                PROXIES
            ),
            "203.0.113.7"
        );
        assert_eq!(from("fd00::1", &["2001:db8::7"], PROXIES), "2001:db8::7");
        assert_eq!(
            from("::ffff:10.0.0.1", &["[2001:db8::7]:4711"], PROXIES),
            "2001:db8::7"
        );
        assert_eq!(
            from("10.0.0.1", &["203.0.113.7:4711"], PROXIES),
            "203.0.113.7"
        );
    }

    #[test]
    fn a_proxy_header_is_believed_from_trusted_proxies_only() {
        let trusted = nets(PROXIES);
        let source = Some("203.0.113.7:4711".parse().expect("addr"));
        let ip = |s: &str| -> IpAddr { s.parse().expect("ip") };
        assert_eq!(
            proxied_peer(ip("10.0.0.1"), source, &trusted),
            ip("203.0.113.7")
        );
        assert_eq!(
            proxied_peer(ip("192.0.2.9"), source, &trusted),
            ip("192.0.2.9")
        );
        assert_eq!(proxied_peer(ip("10.0.0.1"), None, &trusted), ip("10.0.0.1"));
        let mapped = Some("[::ffff:203.0.113.7]:1".parse().expect("addr"));
        assert_eq!(
            proxied_peer(ip("fd00::1"), mapped, &trusted),
            ip("203.0.113.7")
        );
    }

    #[test]
    fn without_a_usable_hop_the_nearest_trusted_proxy_is_counted() {
        assert_eq!(from("10.0.0.1", &[], PROXIES), "10.0.0.1");
        assert_eq!(from("10.0.0.1", &["10.2.2.2"], PROXIES), "10.2.2.2");
        // Garbage ends the walk: nothing left of it is believed.
        assert_eq!(
            from("10.0.0.1", &["203.0.113.7, unknown, 10.2.2.2"], PROXIES),
            "10.2.2.2"
        );
        assert_eq!(from("10.0.0.1", &[""], PROXIES), "10.0.0.1");
    }
}
