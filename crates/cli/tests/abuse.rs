//! End to end: the real binary under abusive clients. Each test makes the
//! abuse through real sockets and asserts the bound, and that a normal
//! request still succeeds meanwhile.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use common::{fetch_token, http, start, write_config};
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

#[test]
fn with_admin_listen_the_operational_routes_leave_the_public_listener() {
    let tmp = common::dir_with_secret();
    let issuer = start(
        "issuer",
        &common::config(Phase::Dual, None)
            .issuer("admin_listen", "127.0.0.1:0")
            .write_to(tmp.path()),
    );
    let admin = issuer
        .admin_addr(Duration::from_secs(10))
        .expect("admin line");
    // A client id that got a token shows in /metrics: only on the admin listener.
    fetch_token(issuer.addr, "svc-a", "s3cret");
    assert_eq!(http(issuer.addr, "GET", "/metrics", &[], b"").status, 404);
    let metrics = http(admin, "GET", "/metrics", &[], b"");
    assert_eq!(metrics.status, 200);
    assert!(metrics.text().contains("client=\"svc-a\""));
    for path in ["/healthz", "/.well-known/jwks.json"] {
        assert_eq!(
            http(issuer.addr, "GET", path, &[], b"").status,
            200,
            "{path}"
        );
    }

    let verifier_dir = common::dir_with_secret();
    let verifier = start(
        "verifier",
        &common::config(Phase::Dual, Some(issuer.addr))
            .verifier("admin_listen", "127.0.0.1:0")
            .write_to(verifier_dir.path()),
    );
    let admin = verifier
        .admin_addr(Duration::from_secs(10))
        .expect("admin line");
    for path in ["/metrics", "/keys", "/migration"] {
        assert_eq!(
            http(verifier.addr, "GET", path, &[], b"").status,
            404,
            "{path}"
        );
        assert_eq!(http(admin, "GET", path, &[], b"").status, 200, "{path}");
    }
    let token = fetch_token(issuer.addr, "svc-a", "s3cret");
    let auth = format!("Bearer {token}");
    let verified = http(
        verifier.addr,
        "GET",
        "/verify",
        &[("Authorization", &auth)],
        b"",
    );
    assert_eq!(verified.status, 200);
    assert_eq!(http(verifier.addr, "GET", "/healthz", &[], b"").status, 200);
}

#[test]
fn the_file_descriptor_limit_is_raised_and_idle_sockets_past_1024_leave_healthz_answering() {
    let tmp = common::dir_with_secret();
    let config = write_config(tmp.path(), Phase::Dual, None);
    // The common soft limit, with room above it (as systemd and most
    // shells give: soft 1,024, hard 524,288 or more).
    let hard = std::process::Command::new("sh")
        .args(["-c", "ulimit -Hn"])
        .output()
        .expect("sh");
    let hard = String::from_utf8_lossy(&hard.stdout).trim().to_owned();
    if hard != "unlimited" && hard.parse::<u64>().unwrap_or(0) < 4_096 {
        eprintln!("skipped: the hard descriptor limit here is {hard}, no room to raise");
        return;
    }
    let mut command = std::process::Command::new("sh");
    command
        .arg("-c")
        .arg("ulimit -Sn 1024 && exec \"$0\" issuer --config \"$1\"")
        .arg(env!("CARGO_BIN_EXE_keyshift"))
        .arg(&config);
    let issuer =
        keyshift_testkit::Service::start(command, keyshift_testkit::Log::Capture).expect("issuer");
    assert!(
        issuer
            .wait_for_log("raised_from=1024", 0, Duration::from_secs(5))
            .is_some(),
        "no log line of the raised limit"
    );
    // 1,100 idle sockets: past the old soft limit (this test process needs
    // room for them too).
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (_, own_hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
    setrlimit(Resource::RLIMIT_NOFILE, own_hard, own_hard).expect("setrlimit");
    let idle: Vec<TcpStream> = (0..1_100)
        .map(|_| TcpStream::connect(issuer.addr).expect("connect"))
        .collect();
    let health = http(issuer.addr, "GET", "/healthz", &[], b"");
    assert_eq!(health.status, 200);
    drop(idle);
    assert!(issuer
        .wait_for_log("Too many open files", 0, Duration::ZERO)
        .is_none());
}

/// Sends `head` then `body` on a fresh connection and reads the status line.
fn raw_status(addr: std::net::SocketAddr, head: &str, body: &[u8]) -> String {
    use std::io::Read;
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.write_all(head.as_bytes()).expect("head");
    let _ = s.write_all(body);
    let mut buf = [0u8; 512];
    let n = s.read(&mut buf).unwrap_or(0);
    String::from_utf8_lossy(&buf[..n])
        .lines()
        .next()
        .unwrap_or("")
        .to_owned()
}

#[test]
fn a_chunked_token_body_past_16_kib_gets_413_while_streaming_and_verify_never_reads_bodies() {
    let tmp = common::dir_with_secret();
    let issuer = start("issuer", &write_config(tmp.path(), Phase::Dual, None));
    // Chunked (no Content-Length): refused once past the cap, while streaming.
    let chunk = format!("{:x}\r\n{}\r\n", 4096, "a".repeat(4096));
    let body = chunk.repeat(5) + "0\r\n\r\n";
    let status = raw_status(
        issuer.addr,
        "POST /oauth/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Transfer-Encoding: chunked\r\n\r\n",
        body.as_bytes(),
    );
    assert!(status.starts_with("HTTP/1.1 413"), "{status}");
    // A normal token request meanwhile.
    fetch_token(issuer.addr, "svc-a", "s3cret");

    let vdir = common::dir_with_secret();
    let verifier = start(
        "verifier",
        &write_config(vdir.path(), Phase::Dual, Some(issuer.addr)),
    );
    // A 100 MB body is declared and never sent: the answer comes at once,
    // from the headers alone (a verifier that read bodies would wait).
    let status = raw_status(
        verifier.addr,
        "POST /verify HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n",
        b"only a little",
    );
    assert!(status.starts_with("HTTP/1.1 401"), "{status}");
    let token = fetch_token(issuer.addr, "svc-a", "s3cret");
    let auth = format!("Bearer {token}");
    assert_eq!(
        http(
            verifier.addr,
            "GET",
            "/verify",
            &[("Authorization", &auth)],
            b""
        )
        .status,
        200
    );
}
