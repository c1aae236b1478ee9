//! The accept loop's bounds through real sockets on loopback: the
//! connection cap, the header read timeout (slowloris) and the idle
//! keep-alive timeout, each with a normal request beside the abuse.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use keyshift_http::{serve, Limits, HEADER_READ_TIMEOUT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A server answering 200 "ok" on 127.0.0.1:0 with `limits`; its address.
async fn server(limits: Limits) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(serve(
        listener,
        limits,
        |_| {
            hyper::service::service_fn(|_req| async {
                Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from_static(b"ok"))))
            })
        },
        std::future::pending(),
    ));
    addr
}

/// Sends one keep-alive GET on `s` and reads the whole answer (it is tiny).
async fn get(s: &mut TcpStream) -> std::io::Result<String> {
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await?;
    let mut buf = vec![0u8; 1024];
    let n = s.read(&mut buf).await?;
    Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// Whether the server closed `s` (EOF or reset) without answering.
async fn closed(s: &mut TcpStream) -> bool {
    let _ = s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let mut buf = [0u8; 64];
    matches!(
        tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await,
        Ok(Ok(0) | Err(_))
    )
}

#[tokio::test]
async fn past_the_connection_cap_new_connections_are_closed_and_open_ones_still_served() {
    let addr = server(Limits { max_connections: 2 }).await;
    let mut a = TcpStream::connect(addr).await.expect("a");
    let mut b = TcpStream::connect(addr).await.expect("b");
    // Both accepted and served (each now holds a slot).
    assert!(get(&mut a).await.expect("a").starts_with("HTTP/1.1 200"));
    assert!(get(&mut b).await.expect("b").starts_with("HTTP/1.1 200"));
    // A third is closed at accept.
    let mut c = TcpStream::connect(addr)
        .await
        .expect("c connects (the kernel accepts)");
    assert!(
        closed(&mut c).await,
        "over the cap: closed without an answer"
    );
    // The open ones are still served.
    assert!(get(&mut a)
        .await
        .expect("a again")
        .starts_with("HTTP/1.1 200"));
    // When one closes, its slot is free again.
    drop(b);
    let mut served = false;
    for _ in 0..50 {
        let mut d = TcpStream::connect(addr).await.expect("d");
        if get(&mut d)
            .await
            .is_ok_and(|r| r.starts_with("HTTP/1.1 200"))
        {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(served, "a freed slot was never reused");
}

/// Tokio's clock is paused: the timeouts pass without real waiting.
#[tokio::test(start_paused = true)]
async fn slow_headers_and_idle_keep_alive_connections_are_closed_at_the_header_timeout() {
    let addr = server(Limits::default()).await;
    // Slowloris: half a request line, then nothing.
    let mut slow = TcpStream::connect(addr).await.expect("slow");
    slow.write_all(b"GET / HT").await.expect("partial");
    // Idle keep-alive: one request served, then nothing.
    let mut idle = TcpStream::connect(addr).await.expect("idle");
    assert!(get(&mut idle)
        .await
        .expect("first")
        .starts_with("HTTP/1.1 200"));
    let started = tokio::time::Instant::now();
    let mut buf = [0u8; 256];
    let n = slow.read(&mut buf).await.unwrap_or(0);
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(n == 0 || text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(started.elapsed() >= HEADER_READ_TIMEOUT - Duration::from_secs(1));
    assert_eq!(
        idle.read(&mut buf).await.unwrap_or(0),
        0,
        "idle connection closed"
    );
    // Meanwhile a normal client is served.
    let mut normal = TcpStream::connect(addr).await.expect("normal");
    assert!(get(&mut normal)
        .await
        .expect("normal")
        .starts_with("HTTP/1.1 200"));
}

#[tokio::test]
async fn oversized_or_too_many_headers_get_431_and_a_normal_request_still_succeeds() {
    use keyshift_http::MAX_HEADER_BYTES;
    let addr = server(Limits::default()).await;
    let read_status = |mut s: TcpStream| async move {
        let mut buf = vec![0u8; 256];
        let n = s.read(&mut buf).await.unwrap_or(0);
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    // One header past the byte bound (a long URL counts the same way).
    let mut big = TcpStream::connect(addr).await.expect("big");
    let filler = "a".repeat(MAX_HEADER_BYTES + 1);
    let _ = big
        .write_all(format!("GET / HTTP/1.1\r\nHost: x\r\nX-Filler: {filler}\r\n\r\n").as_bytes())
        .await;
    let answer = read_status(big).await;
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 431"),
        "{answer}"
    );
    // One header more than parsed (Host is one).
    let mut many = TcpStream::connect(addr).await.expect("many");
    let headers: String = (0..keyshift_http::MAX_HEADERS)
        .map(|i| format!("X-H{i}: v\r\n"))
        .collect();
    many.write_all(format!("GET / HTTP/1.1\r\nHost: x\r\n{headers}\r\n").as_bytes())
        .await
        .expect("write");
    let answer = read_status(many).await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    // Just under the byte bound is served.
    let mut ok = TcpStream::connect(addr).await.expect("ok");
    let filler = "a".repeat(MAX_HEADER_BYTES - 1024);
    ok.write_all(format!("GET / HTTP/1.1\r\nHost: x\r\nX-Filler: {filler}\r\n\r\n").as_bytes())
        .await
        .expect("write");
    assert!(read_status(ok).await.starts_with("HTTP/1.1 200"));
    let mut normal = TcpStream::connect(addr).await.expect("normal");
    assert!(get(&mut normal)
        .await
        .expect("normal")
        .starts_with("HTTP/1.1 200"));
}
