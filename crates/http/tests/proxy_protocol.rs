//! `serve_proxy_protocol` through real sockets: the PROXY v2 header is read
//! before HTTP, its source reaches the service, and a connection without
//! one is closed unanswered.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use keyshift_http::proxy_protocol::{encode_v2, SIGNATURE};
use keyshift_http::{serve_proxy_protocol, Limits};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A server on 127.0.0.1:0 answering "<socket peer ip> <source or ->".
async fn server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(serve_proxy_protocol(
        listener,
        Limits::default(),
        |peer: SocketAddr, source: Option<SocketAddr>| {
            let text = format!(
                "{} {}",
                peer.ip(),
                source.map_or("-".to_owned(), |s| s.to_string())
            );
            hyper::service::service_fn(move |_req| {
                let text = text.clone();
                async move { Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from(text)))) }
            })
        },
        std::future::pending(),
    ));
    addr
}

/// Writes `preamble` and one GET, reads until the server closes or 5 s pass.
async fn exchange(addr: SocketAddr, preamble: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let _ = s.write_all(preamble).await;
    let _ = s
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn the_source_of_the_proxy_header_reaches_the_service() {
    let addr = server().await;
    let header = encode_v2(
        "203.0.113.7:4711".parse().expect("src"),
        "10.0.0.1:443".parse().expect("dst"),
    );
    let answer = exchange(addr, &header).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("127.0.0.1 203.0.113.7:4711"), "{answer}");
    // A LOCAL command (a health check of the proxy's own) names no source.
    let mut local = SIGNATURE.to_vec();
    local.extend_from_slice(&[0x20, 0x00, 0, 0]);
    let answer = exchange(addr, &local).await;
    assert!(answer.ends_with("127.0.0.1 -"), "{answer}");
}

#[tokio::test]
async fn a_connection_without_a_proxy_header_is_closed_unanswered() {
    let addr = server().await;
    assert_eq!(exchange(addr, b"").await, "", "plain HTTP gets nothing");
    assert_eq!(
        exchange(addr, b"PROXY TCP4 203.0.113.7 10.0.0.1 4711 443\r\n").await,
        "",
        "version 1 is not read"
    );
}
