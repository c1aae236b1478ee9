//! End to end: the real binary under abusive clients. Each test makes the
//! abuse through real sockets and asserts the bound, and that a normal
//! request still succeeds meanwhile.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use common::{fetch_token, start, write_config};
use keyshift_core::Phase;

/// Resident memory of a process, from /proc (Linux), in bytes.
fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("VmRSS line");
    kb * 1024
}

#[test]
fn a_token_body_trickled_one_byte_per_segment_holds_no_more_than_the_body_cap() {
    let tmp = common::dir_with_secret();
    let config = write_config(tmp.path(), Phase::Dual, None);
    let issuer = start("issuer", &config);
    let addr = issuer.addr;
    fetch_token(addr, "svc-a", "s3cret"); // warm up
    let before = rss_bytes(issuer.id());

    // Five connections each declare a 16,000-byte body and send 6,000 bytes
    // of it, one byte per TCP segment. Before the fix each byte pinned a
    // ~4 KB read buffer: 5 x 6,000 x 4 KB = 120 MB.
    const CONNECTIONS: usize = 5;
    const BYTES: usize = 6_000;
    let (sent_tx, sent_rx) = std::sync::mpsc::channel();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let done_rx = std::sync::Arc::new(std::sync::Mutex::new(done_rx));
    let mut threads = Vec::new();
    for _ in 0..CONNECTIONS {
        let sent_tx = sent_tx.clone();
        let done_rx = done_rx.clone();
        threads.push(std::thread::spawn(move || {
            let mut s = TcpStream::connect(addr).expect("connect");
            s.set_nodelay(true).expect("nodelay");
            s.write_all(
                b"POST /oauth/token HTTP/1.1\r\nHost: x\r\n\
                  Content-Type: application/x-www-form-urlencoded\r\n\
                  Content-Length: 16000\r\n\r\n",
            )
            .expect("head");
            for _ in 0..BYTES {
                s.write_all(b"a").expect("byte");
                // Give the server time to read each byte on its own.
                std::thread::sleep(Duration::from_micros(30));
            }
            let _ = sent_tx.send(());
            // Hold the connection (and whatever the server keeps for it)
            // until the memory has been read.
            let _ = done_rx
                .lock()
                .map(|rx| rx.recv_timeout(Duration::from_secs(30)));
        }));
    }
    for _ in 0..CONNECTIONS {
        sent_rx
            .recv_timeout(Duration::from_secs(60))
            .expect("trickle finished");
    }
    let during = rss_bytes(issuer.id());
    // Service is unaffected meanwhile.
    fetch_token(addr, "svc-a", "s3cret");
    for _ in 0..CONNECTIONS {
        let _ = done_tx.send(());
    }
    for t in threads {
        t.join().expect("thread");
    }
    let growth = during.saturating_sub(before);
    eprintln!(
        "RSS {} KiB before, {} KiB while trickling",
        before / 1024,
        during / 1024
    );
    assert!(
        growth < 24 * 1024 * 1024,
        "RSS grew by {} KiB while {CONNECTIONS} connections trickled {BYTES} bytes each",
        growth / 1024
    );
}
