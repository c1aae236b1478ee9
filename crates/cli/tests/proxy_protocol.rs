//! The issuer binary behind a proxy that sends the PROXY protocol: the
//! failed-auth limits count the address the header names, and a connection
//! without a header is never served.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::*;
use keyshift_core::Phase;
use keyshift_http::proxy_protocol::encode_v2;

/// A token request for `client_id`/`secret`, forwarded by a proxy for `source`.
fn token_status(issuer: SocketAddr, source: &str, client_id: &str, secret: &str) -> u16 {
    let header = encode_v2(source.parse().expect("source"), issuer);
    let body =
        format!("grant_type=client_credentials&client_id={client_id}&client_secret={secret}");
    http_after(
        issuer,
        &header,
        "POST",
        "/oauth/token",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        body.as_bytes(),
    )
    .status
}

#[test]
fn the_failed_auth_limits_count_the_proxy_headers_source() {
    let tmp = dir_with_secret();
    let issuer = start(
        "issuer",
        &config(Phase::Dual, None)
            .issuer("failed_auth_limit", 2)
            .issuer("trusted_proxies", vec!["127.0.0.0/8"])
            .issuer("proxy_protocol", true)
            .write_to(tmp.path()),
    );
    // Ten bad logins (ten ids) from one client fill its network's ceiling (5 × 2)...
    for i in 0..10 {
        assert_eq!(
            token_status(issuer.addr, "203.0.113.7:4711", &format!("guess-{i}"), "x"),
            401
        );
    }
    assert_eq!(
        token_status(issuer.addr, "203.0.113.7:4712", "svc-a", "s3cret"),
        429
    );
    // ...and no one else's: another client behind the same proxy gets its token.
    assert_eq!(
        token_status(issuer.addr, "198.51.100.9:4711", "svc-a", "s3cret"),
        200
    );

    // Plain HTTP on the listener is closed unanswered.
    let mut plain = TcpStream::connect(issuer.addr).expect("connect");
    plain
        .set_read_timeout(Some(Duration::from_secs(15)))
        .expect("timeout");
    plain
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("write");
    let mut answer = Vec::new();
    let _ = plain.read_to_end(&mut answer);
    assert!(answer.is_empty(), "{}", String::from_utf8_lossy(&answer));
}
