//! Helpers shared by the unit tests: a loopback HTTP stub and scratch folders.

use std::net::SocketAddr;
use std::path::PathBuf;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A loopback server that answers each of up to 8 connections with
/// `response` (a whole HTTP/1.1 response, `connection: close`) once it has
/// read the request's head and body, then closes.
pub async fn upstream(response: &'static str) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        for _ in 0..8 {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            read_request(&mut s).await;
            let _ = s.write_all(response.as_bytes()).await;
        }
    });
    addr
}

/// A whole HTTP/1.1 response with `status` (e.g. `200 OK`), `body` and its
/// `content-length`, closing the connection (leaked: tests only).
pub fn response(status: &str, body: &str) -> &'static str {
    Box::leak(
        format!(
            "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_boxed_str(),
    )
}

/// Reads a request's head and its `content-length` body (bounded), so the
/// stub never closes a socket with unread bytes (which would reset it).
async fn read_request(s: &mut tokio::net::TcpStream) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while buf.len() < 64 * 1024 {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let body_len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + body_len {
                return;
            }
        }
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// An empty scratch folder unique to this process, test thread and `name`;
/// the caller removes it.
pub fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "keyshift-loadtest-{name}-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}
