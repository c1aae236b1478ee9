//! Helpers for the end-to-end tests: the real `keyshift` binary, real
//! loopback HTTP, bounded waits.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The binary under test.
pub fn keyshift() -> Command {
    Command::new(env!("CARGO_BIN_EXE_keyshift"))
}

/// A running service; killed on drop.
pub struct Service {
    pub child: Child,
    pub addr: SocketAddr,
    /// Its stderr (the log) so far, one entry per line; also echoed.
    pub stderr: Arc<Mutex<Vec<String>>>,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Service {
    /// Starts `keyshift <what> --config <config>` and waits (≤ 30 s) for its
    /// "listening on http://ADDR" line.
    pub fn start(what: &str, config: &Path) -> Service {
        let mut child = keyshift()
            .arg(what)
            .arg("--config")
            .arg(config)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn keyshift");
        let stderr_lines = Arc::new(Mutex::new(Vec::new()));
        let err = child.stderr.take().expect("stderr");
        let sink = stderr_lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                eprintln!("{line}");
                sink.lock().unwrap_or_else(|p| p.into_inner()).push(line);
            }
        });
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("listening on http://").nth(1) {
                    let addr = rest.split_whitespace().next().unwrap_or("").to_owned();
                    let _ = tx.send(addr);
                }
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("keyshift {what} did not start listening"));
        Service {
            child,
            addr: addr.parse().expect("address"),
            stderr: stderr_lines,
        }
    }

    /// Waits (≤ `limit`) for a stderr line containing `needle` after the
    /// first `skip` lines; returns its index.
    pub fn wait_for_log(&self, needle: &str, skip: usize, limit: Duration) -> Option<usize> {
        let mut found = None;
        eventually(limit, || {
            let lines = self.stderr.lock().unwrap_or_else(|p| p.into_inner());
            found = lines
                .iter()
                .enumerate()
                .skip(skip)
                .find(|(_, l)| l.contains(needle))
                .map(|(i, _)| i);
            found.is_some()
        });
        found
    }

    /// How many stderr lines so far.
    pub fn log_len(&self) -> usize {
        self.stderr.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Sends a signal to the service.
    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, sig).expect("signal");
    }

    /// Waits (≤ 20 s) for the process to exit; returns its status.
    pub fn wait_exit(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "service did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A parsed HTTP/1.1 response.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("json body")
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One request on a fresh connection (`Connection: close`), 10 s timeout.
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpResponse {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (n, v) in headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).expect("write");
    stream.write_all(body).expect("write body");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("end of headers");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    HttpResponse {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    }
}

/// Gets a token from the issuer by client_secret_post.
pub fn fetch_token(issuer: SocketAddr, client: &str, secret: &str) -> String {
    let body = format!("grant_type=client_credentials&client_id={client}&client_secret={secret}");
    let resp = http(
        issuer,
        "POST",
        "/oauth/token",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        body.as_bytes(),
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    resp.json()["access_token"]
        .as_str()
        .expect("token")
        .to_owned()
}

/// The decoded JOSE header of a compact JWS.
pub fn token_header(token: &str) -> serde_json::Value {
    let header = token.split('.').next().expect("header");
    let json = keyshift_core::b64::decode(header).expect("b64");
    serde_json::from_slice(&json).expect("json")
}

/// The `alg` of a compact JWS.
pub fn token_alg(token: &str) -> String {
    token_header(token)["alg"].as_str().expect("alg").to_owned()
}

/// Polls `check` every 50 ms for at most `limit`.
pub fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// Writes `keyshift.toml` in `dir`: an issuer on `issuer_listen` with client
/// `svc-a` (secret `s3cret`), and, given the issuer's port, a verifier on
/// 127.0.0.1:0 reading its JWKS.
pub fn write_config(
    dir: &Path,
    phase: &str,
    issuer_listen: &str,
    verifier_of_port: Option<u16>,
) -> std::path::PathBuf {
    let hash = keyshift_core::secret::SecretHash::sha256_of(b"s3cret").to_config_string();
    let mut text = format!(
        r#"phase = "{phase}"
[issuer]
listen = "{issuer_listen}"
issuer = "http://127.0.0.1"
audience = "https://api.test"
hs256_secret_file = "hs256.secret"

[[issuer.clients]]
id = "svc-a"
secret_hash = "{hash}"
scopes = ["read", "write"]
"#
    );
    if let Some(port) = verifier_of_port {
        text.push_str(&format!(
            r#"
[verifier]
listen = "127.0.0.1:0"
issuer = "http://127.0.0.1"
audience = "https://api.test"
jwks_url = "http://127.0.0.1:{port}/.well-known/jwks.json"
hs256_secret_file = "hs256.secret"
"#
        ));
    }
    let path = dir.join("keyshift.toml");
    std::fs::write(&path, text).expect("config");
    path
}

/// A temporary folder holding `hs256.secret` (32 bytes and a newline), the
/// shared secret every test config names.
pub fn dir_with_secret() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        tmp.path().join("hs256.secret"),
        "0123456789abcdef0123456789abcdef\n",
    )
    .expect("secret");
    tmp
}

/// A loopback port free right now (for a service whose address another
/// config must name before it starts).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}
