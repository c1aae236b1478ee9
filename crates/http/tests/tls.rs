//! TLS on a listener through real sockets: a connection that never
//! completes its handshake is closed at the header read timeout (tokio's
//! paused clock), and a certificate reload that does not load keeps the
//! running pair while a good one replaces it for the next handshake.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use keyshift_http::tls::ServerTls;
use keyshift_http::{serve, Limits, Listener, HEADER_READ_TIMEOUT};
use keyshift_testkit::tls::{presented_leaf, TestCa};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

async fn tls_server(tls: Arc<ServerTls>) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(serve(
        Listener::tls(listener, tls),
        Limits::default(),
        |_| {
            hyper::service::service_fn(|_req| async {
                Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from_static(b"ok"))))
            })
        },
        std::future::pending(),
    ));
    addr
}

fn pair(dir: &std::path::Path, ca: &TestCa, cn: &str) -> Arc<ServerTls> {
    let (cert, key) = ca.server(cn).write(dir, "tls");
    Arc::new(ServerTls::load(&cert, &key).expect("pair"))
}

#[tokio::test(start_paused = true)]
async fn a_connection_that_never_finishes_its_handshake_is_closed_at_the_header_timeout() {
    let dir = tempfile::tempdir().expect("tempdir");
    let addr = tls_server(pair(dir.path(), &TestCa::new(), "a")).await;
    let mut silent = TcpStream::connect(addr).await.expect("connect");
    // Half a TLS record header, then nothing.
    silent.write_all(&[0x16, 0x03]).await.expect("partial");
    let started = tokio::time::Instant::now();
    let mut buf = [0u8; 64];
    let n = silent.read(&mut buf).await.unwrap_or(0);
    assert_eq!(n, 0, "closed without an answer");
    assert!(started.elapsed() >= HEADER_READ_TIMEOUT);
}

#[tokio::test]
async fn a_reload_that_does_not_load_keeps_the_running_certificate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = TestCa::new();
    let first = ca.server("first");
    let (cert, key) = first.write(dir.path(), "tls");
    let tls = Arc::new(ServerTls::load(&cert, &key).expect("pair"));
    let addr = tls_server(tls.clone()).await;
    let client = ca.client_config(&[b"http/1.1"], &[]);
    let leaf = |client| tokio::task::spawn_blocking(move || presented_leaf(addr, client).ok());
    assert_eq!(leaf(client.clone()).await.expect("join"), Some(first.der()));

    // The key of another certificate: refused, the first pair stays.
    let other = ca.server("other");
    std::fs::write(&key, &other.key_pem).expect("write key");
    let err = tls.reload().expect_err("mismatched pair");
    assert!(
        err.to_string().contains("do not make a usable pair"),
        "{err}"
    );
    assert_eq!(leaf(client.clone()).await.expect("join"), Some(first.der()));
    assert_eq!(tls.leaf(), Some(first.der()));

    // Not PEM at all: refused too.
    std::fs::write(&cert, "garbage\n").expect("write cert");
    assert!(tls.reload().is_err());

    // A good pair: served from the next handshake on.
    other.write(dir.path(), "tls");
    tls.reload().expect("good pair");
    assert_eq!(leaf(client).await.expect("join"), Some(other.der()));
}
