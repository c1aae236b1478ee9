//! The end-to-end tests' side of keyshift-testkit: the real `keyshift`
//! binary, the config every test starts from, a blocking HTTP/1.1 client.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use keyshift_core::{Alg, Phase};
use keyshift_testkit::{jwt, Client, ConfigToml, Log, Service};

/// The binary under test.
pub fn keyshift() -> Command {
    Command::new(env!("CARGO_BIN_EXE_keyshift"))
}

/// Starts `keyshift <what> --config <config>`, its log captured, and waits
/// for its listening line.
pub fn start(what: &str, config: &Path) -> Service {
    let mut command = keyshift();
    command.arg(what).arg("--config").arg(config);
    Service::start(command, Log::Capture).unwrap_or_else(|e| panic!("keyshift {what}: {e}"))
}

/// A parsed HTTP/1.1 response.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The first header called `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("json body")
    }

    /// The body as text.
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
    http_after(addr, b"", method, path, headers, body)
}

/// [`http`] on a connection that starts with `preamble` (a PROXY header).
pub fn http_after(
    addr: SocketAddr,
    preamble: &[u8],
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpResponse {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    stream.write_all(preamble).expect("write preamble");
    stream
        .write_all(&request(addr, method, path, headers, body))
        .expect("write");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read");
    parse(&raw)
}

/// [`http`] over TLS with `tls` (a client of the test CA).
pub fn https(
    addr: SocketAddr,
    tls: std::sync::Arc<rustls::ClientConfig>,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpResponse {
    let raw =
        keyshift_testkit::tls::exchange(addr, tls, &request(addr, method, path, headers, body))
            .expect("https exchange");
    parse(&raw)
}

/// `GET url` by curl over HTTP/2 and TLS (a real HTTP/2 client: Debian's
/// curl with nghttp2), trusting `ca_file`, with `token` as the bearer:
/// `"<HTTP version> <status>"`, e.g. `"2 200"`.
pub fn curl_h2(url: &str, ca_file: &Path, token: &str) -> String {
    let out = Command::new("curl")
        .args(["-sS", "--http2", "--max-time", "10", "-o", "/dev/null"])
        .args(["-w", "%{http_version} %{http_code}", "--cacert"])
        .arg(ca_file)
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .arg(url)
        .output()
        .expect("curl (Debian's curl, with nghttp2)");
    assert!(
        out.status.success(),
        "curl {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// One HTTP/1.1 request, `Connection: close`.
fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Vec<u8> {
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (n, v) in headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    req.push_str("\r\n");
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// A whole HTTP/1.1 response.
fn parse(raw: &[u8]) -> HttpResponse {
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

/// The `alg` of a compact JWS.
pub fn token_alg(token: &str) -> Alg {
    jwt::header(token).expect("a keyshift JWT").alg
}

/// The config every end-to-end test starts from: an issuer on 127.0.0.1:0
/// with client `svc-a` (secret `s3cret`), and, given the issuer's address, a
/// verifier on 127.0.0.1:0 reading its JWKS. Both name `hs256.secret`.
pub fn config(phase: Phase, jwks_of: Option<SocketAddr>) -> ConfigToml {
    let cfg = ConfigToml::new(phase)
        .issuer("listen", "127.0.0.1:0")
        .issuer("issuer", "http://127.0.0.1")
        .issuer("audience", "https://api.test")
        .issuer("hs256_secret_file", "hs256.secret")
        .client(Client::sha256("svc-a", b"s3cret", &["read", "write"]));
    match jwks_of {
        None => cfg,
        Some(issuer) => cfg
            .verifier("listen", "127.0.0.1:0")
            .verifier("issuer", "http://127.0.0.1")
            .verifier("audience", "https://api.test")
            .verifier("jwks_url", format!("http://{issuer}/.well-known/jwks.json"))
            .verifier("hs256_secret_file", "hs256.secret"),
    }
}

/// Writes [`config`] as `keyshift.toml` in `dir`; returns its path.
pub fn write_config(dir: &Path, phase: Phase, jwks_of: Option<SocketAddr>) -> PathBuf {
    config(phase, jwks_of).write_to(dir)
}

/// `keyshift keys generate --config <config>`: the key directory made
/// deliberately, as an operator must before a first start in a phase that
/// signs RS256.
pub fn generate_keys(config: &Path) {
    let out = keyshift()
        .args(["keys", "generate", "--config"])
        .arg(config)
        .output()
        .expect("keyshift keys generate");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
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
