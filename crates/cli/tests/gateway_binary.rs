//! `keyshift gateway` end to end: the real binary, a real issuer, and a
//! small upstream on loopback that records what it received.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{dir_with_secret, fetch_token, http, start, token_alg};
use keyshift_core::{Alg, Phase};
use keyshift_testkit::{eventually, Service};

/// What the upstream saw of one request.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    headers: Vec<(String, String)>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// How the upstream answers.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    /// 200 with the request body echoed, streamed as it arrives.
    Echo,
    /// Reads the request and never answers.
    Silent,
}

/// A thread-per-connection HTTP/1.1 upstream on 127.0.0.1:0.
struct Upstream {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Upstream {
    fn start(mode: Mode) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let log = log.clone();
                std::thread::spawn(move || serve(stream, mode, &log));
            }
        });
        Upstream { addr, seen }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

fn serve(stream: TcpStream, mode: Mode, log: &Mutex<Vec<Seen>>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(20)));
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut writer = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let path = line.split(' ').nth(1).unwrap_or("").to_owned();
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((n, v)) = h.split_once(':') {
                headers.push((n.trim().to_owned(), v.trim().to_owned()));
            }
        }
        let seen = Seen { path, headers };
        let length: usize = seen
            .header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        log.lock().unwrap_or_else(|p| p.into_inner()).push(seen);
        if mode == Mode::Silent {
            std::thread::sleep(Duration::from_secs(30));
            return;
        }
        let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {length}\r\nConnection: keep-alive, x-upstream-hop\r\nx-upstream-hop: 1\r\n\r\n");
        if writer.write_all(head.as_bytes()).is_err() {
            return;
        }
        let mut left = length;
        let mut buf = vec![0u8; 64 * 1024];
        while left > 0 {
            let n = match reader.read(&mut buf[..left.min(64 * 1024)]) {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            if writer.write_all(&buf[..n]).is_err() {
                return;
            }
            left -= n;
        }
    }
}

/// An issuer (phase dual: it signs HS256 and creates its key directory
/// with an active RSA key) and the config file the gateway reads.
struct Setup {
    dir: tempfile::TempDir,
    issuer: Service,
}

const ROUTES: &str = r#"
[[gateway.routes]]
name = "orders"
path_prefix = "/orders"
strip_prefix = true
upstream = "http://UPSTREAM/svc"
sign = true
audience = "https://orders.internal"

[[gateway.routes]]
name = "admin"
path_prefix = "/admin"
upstream = "http://UPSTREAM"
scopes = ["admin"]

[[gateway.routes]]
name = "strict"
path_prefix = "/strict"
upstream = "http://UPSTREAM"
sign = true
audience = "https://orders.internal"
sign_header = "x-internal-token"
if_present = "fail"

[[gateway.routes]]
name = "robot"
path_prefix = "/robot"
upstream = "http://UPSTREAM"
verify = false
sign = true
audience = "https://orders.internal"
service_identity = "batch-job"
"#;

impl Setup {
    fn new() -> Setup {
        let dir = dir_with_secret();
        let config = common::write_config(dir.path(), Phase::Dual, None);
        let issuer = start("issuer", &config);
        Setup { dir, issuer }
    }

    /// Starts a gateway in front of `upstream` with `extra` `[gateway]` keys.
    fn gateway(&self, upstream: SocketAddr, extra: &str) -> Service {
        let gateway = format!(
            "[gateway]\nlisten = \"127.0.0.1:0\"\nissuer = \"http://127.0.0.1\"\n{extra}\n{}",
            ROUTES.replace("UPSTREAM", &upstream.to_string())
        );
        let config = common::config(Phase::Dual, Some(self.issuer.addr))
            .gateway_lines(&gateway)
            .write_to(self.dir.path());
        start("gateway", &config)
    }

    fn token(&self) -> String {
        fetch_token(self.issuer.addr, "svc-a", "s3cret")
    }

    fn jwks(&self) -> jsonwebtoken::jwk::JwkSet {
        let resp = http(self.issuer.addr, "GET", "/.well-known/jwks.json", &[], b"");
        serde_json::from_slice(&resp.body).expect("jwks")
    }
}

/// Verifies `token` as an independent library would, with the issuer's JWKS.
fn verify_rs256(jwks: &jsonwebtoken::jwk::JwkSet, token: &str) -> serde_json::Value {
    let header = jsonwebtoken::decode_header(token).expect("header");
    assert_eq!(header.alg, jsonwebtoken::Algorithm::RS256);
    let kid = header.kid.expect("kid");
    let jwk = jwks.find(&kid).expect("kid in the issuer's JWKS");
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).expect("key");
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_issuer(&["http://127.0.0.1"]);
    validation.set_audience(&["https://orders.internal"]);
    jsonwebtoken::decode::<serde_json::Value>(token, &key, &validation)
        .expect("valid RS256")
        .claims
}

fn bearer_of(seen: &Seen, header: &str) -> String {
    seen.header(header)
        .and_then(|v| v.strip_prefix("Bearer "))
        .expect("bearer")
        .to_owned()
}

#[test]
fn hs256_in_rs256_out_with_the_route_audience_and_the_original_subject() {
    let setup = Setup::new();
    let upstream = Upstream::start(Mode::Echo);
    let gateway = setup.gateway(upstream.addr, "");
    let token = setup.token();
    assert_eq!(token_alg(&token), Alg::Hs256);
    let auth = format!("Bearer {token}");
    let resp = http(
        gateway.addr,
        "POST",
        "/orders/42?x=1",
        &[("Authorization", &auth)],
        b"hello",
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.body, b"hello");
    assert!(
        resp.header("x-upstream-hop").is_none(),
        "Connection-named header from upstream"
    );
    let seen = upstream.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].path, "/svc/42?x=1",
        "prefix stripped, base and query kept"
    );
    let signed = bearer_of(&seen[0], "authorization");
    assert_ne!(signed, token, "the client's HS256 token goes no further");
    let claims = verify_rs256(&setup.jwks(), &signed);
    assert_eq!(claims["sub"], "svc-a");
    assert_eq!(claims["client_id"], "svc-a");
    assert_eq!(claims["scope"], "read write");
    assert_eq!(claims["act"]["sub"], "keyshift-gateway");
    let ttl = claims["exp"].as_u64().unwrap_or(0) - claims["iat"].as_u64().unwrap_or(0);
    assert!(ttl <= 60, "sign_ttl");

    // The same identity again: the cached token, not a new signature.
    http(
        gateway.addr,
        "GET",
        "/orders/1",
        &[("Authorization", &auth)],
        b"",
    );
    let again = bearer_of(&upstream.seen()[1], "authorization");
    assert_eq!(again, signed, "reused from the signed-token cache");

    // A client-credentials identity without verification: the service identity.
    http(gateway.addr, "GET", "/robot", &[], b"");
    let robot = bearer_of(&upstream.seen()[2], "authorization");
    assert_eq!(verify_rs256(&setup.jwks(), &robot)["sub"], "batch-job");

    let metrics = http(gateway.addr, "GET", "/metrics", &[], b"").text();
    assert!(
        metrics.contains("keyshift_gateway_signed_total{route=\"orders\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("keyshift_gateway_signed_cache_total{result=\"hit\"} 1"),
        "{metrics}"
    );
}

#[test]
fn refused_tokens_get_the_verify_answer_and_the_upstream_sees_nothing() {
    let setup = Setup::new();
    let upstream = Upstream::start(Mode::Echo);
    let gateway = setup.gateway(upstream.addr, "");
    let token = setup.token();
    let mut forged = token.clone();
    forged.push('x');
    let cases: [(&str, Option<String>, u16, &str); 4] = [
        ("/orders/1", None, 401, "Bearer realm=\"keyshift\""),
        (
            "/orders/1",
            Some(format!("Bearer {forged}")),
            401,
            "invalid_token",
        ),
        (
            "/orders/1",
            Some("Bearer not.a.token".into()),
            401,
            "invalid_token",
        ),
        (
            "/admin/x",
            Some(format!("Bearer {token}")),
            403,
            "insufficient_scope",
        ),
    ];
    for (path, auth, status, challenge) in cases {
        let headers: Vec<(&str, &str)> =
            auth.iter().map(|a| ("Authorization", a.as_str())).collect();
        let resp = http(gateway.addr, "GET", path, &headers, b"");
        assert_eq!(resp.status, status, "{path} {auth:?}");
        let got = resp.header("www-authenticate").unwrap_or("");
        assert!(got.contains(challenge), "{path}: {got}");
    }
    assert!(
        upstream.seen().is_empty(),
        "the upstream saw a refused request"
    );
    assert_eq!(http(gateway.addr, "GET", "/nowhere", &[], b"").status, 404);
}

#[test]
fn rs256_in_rs256_out_and_if_present_both_ways() {
    let setup = Setup::new();
    let upstream = Upstream::start(Mode::Echo);
    let gateway = setup.gateway(upstream.addr, "");
    let rs256 = common::keyshift()
        .args(["token", "--client", "svc-a", "--config"])
        .arg(
            common::config(Phase::Transition, None)
                .issuer(
                    "key_dir",
                    setup.dir.path().join("keys").display().to_string(),
                )
                .write_to(&setup.dir.path().join("transition").tap_mkdir()),
        )
        .output()
        .expect("keyshift token");
    assert!(
        rs256.status.success(),
        "{}",
        String::from_utf8_lossy(&rs256.stderr)
    );
    let rs256 = String::from_utf8_lossy(&rs256.stdout).trim().to_owned();
    assert_eq!(token_alg(&rs256), Alg::Rs256);
    let auth = format!("Bearer {rs256}");
    // replace: the client's own Authorization on a non-verifying route is replaced.
    let resp = http(
        gateway.addr,
        "GET",
        "/robot",
        &[("Authorization", "Bearer mine")],
        b"",
    );
    assert_eq!(resp.status, 200);
    let replaced = bearer_of(&upstream.seen()[0], "authorization");
    assert_ne!(replaced, "mine");
    // RS256 in, RS256 out, in another header; the verified one is consumed.
    let resp = http(
        gateway.addr,
        "GET",
        "/strict/a",
        &[("Authorization", &auth)],
        b"",
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    let seen = &upstream.seen()[1];
    assert!(
        seen.header("authorization").is_none(),
        "consumed at the edge"
    );
    let claims = verify_rs256(&setup.jwks(), &bearer_of(seen, "x-internal-token"));
    assert_eq!(claims["sub"], "svc-a");
    // fail: the client sent the header the route signs into.
    let resp = http(
        gateway.addr,
        "GET",
        "/strict/a",
        &[
            ("Authorization", &auth),
            ("X-Internal-Token", "Bearer forged"),
        ],
        b"",
    );
    assert_eq!(resp.status, 400);
    assert_eq!(upstream.seen().len(), 2, "the upstream saw nothing of it");
}

trait TapMkdir {
    fn tap_mkdir(self) -> Self;
}

impl TapMkdir for std::path::PathBuf {
    fn tap_mkdir(self) -> Self {
        std::fs::create_dir_all(&self).expect("mkdir");
        std::fs::write(
            self.join("hs256.secret"),
            "0123456789abcdef0123456789abcdef\n",
        )
        .expect("secret");
        self
    }
}

#[test]
fn hop_by_hop_and_spoofed_identity_headers_never_reach_the_upstream() {
    let setup = Setup::new();
    let upstream = Upstream::start(Mode::Echo);
    let gateway = setup.gateway(upstream.addr, "");
    let resp = http(
        gateway.addr,
        "GET",
        "/robot/x",
        &[
            ("Connection", "close, X-Hop"),
            ("X-Hop", "1"),
            ("Keep-Alive", "timeout=5"),
            ("Proxy-Authorization", "Basic eA=="),
            ("X-Auth-Subject", "admin"),
            ("X-Auth-Scope", "everything"),
            ("X-Forwarded-For", "6.6.6.6"),
            ("X-Kept", "yes"),
        ],
        b"",
    );
    assert_eq!(resp.status, 200);
    assert!(resp
        .header("via")
        .is_some_and(|v| v.contains("keyshift-gateway")));
    let seen = &upstream.seen()[0];
    for gone in [
        "x-hop",
        "keep-alive",
        "proxy-authorization",
        "x-auth-subject",
        "x-auth-scope",
    ] {
        assert!(seen.header(gone).is_none(), "{gone} reached the upstream");
    }
    assert_eq!(seen.header("x-kept"), Some("yes"));
    assert_eq!(seen.header("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(seen.header("x-forwarded-proto"), Some("http"));
    assert!(seen
        .header("x-forwarded-host")
        .is_some_and(|h| h.starts_with("127.0.0.1")));
    assert!(seen
        .header("via")
        .is_some_and(|v| v.contains("keyshift-gateway")));
}

#[test]
fn upstream_down_is_502_and_silent_is_504_without_token_material() {
    let setup = Setup::new();
    let silent = Upstream::start(Mode::Silent);
    let gateway = setup.gateway(silent.addr, "upstream_timeout = \"300ms\"");
    let token = setup.token();
    let auth = format!("Bearer {token}");
    let resp = http(
        gateway.addr,
        "GET",
        "/orders/1",
        &[("Authorization", &auth)],
        b"",
    );
    assert_eq!(resp.status, 504);
    assert!(!resp.text().contains("eyJ"), "{}", resp.text());
    drop(gateway);

    let down = keyshift_testkit::net::unused_fixed_port();
    let gateway = setup.gateway(format!("127.0.0.1:{down}").parse().expect("addr"), "");
    let resp = http(
        gateway.addr,
        "GET",
        "/orders/1",
        &[("Authorization", &auth)],
        b"",
    );
    assert_eq!(resp.status, 502);
    assert!(!resp.text().contains("eyJ"));
    let metrics = http(gateway.addr, "GET", "/metrics", &[], b"").text();
    assert!(
        metrics.contains(
            "keyshift_gateway_upstream_errors_total{route=\"orders\",kind=\"connect\"} 1"
        ),
        "{metrics}"
    );
    let mut log = String::new();
    for i in 0..gateway.log_len() {
        log.push_str(&gateway.log_line(i).unwrap_or_default());
    }
    assert!(!log.contains(&token[..20]), "token material in the log");
}

/// 16 MB (not the issue's 50, to keep `make test` fast) streamed to the
/// upstream and back while the gateway's peak RSS grows by far less.
#[test]
fn a_large_body_streams_both_ways_with_bounded_memory() {
    const SIZE: usize = 16 * 1024 * 1024;
    let setup = Setup::new();
    let upstream = Upstream::start(Mode::Echo);
    let gateway = setup.gateway(upstream.addr, "");
    let hwm = |pid: u32| -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
        status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse().ok())
            .expect("VmHWM")
    };
    // Warm up the connection pool and the allocator.
    assert_eq!(
        http(gateway.addr, "POST", "/robot", &[], &[7u8; 1024]).status,
        200
    );
    let before = hwm(gateway.id());
    let stream = TcpStream::connect(gateway.addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut writer = stream.try_clone().expect("clone");
    let sender = std::thread::spawn(move || {
        let head = format!("POST /robot HTTP/1.1\r\nHost: gw\r\nConnection: close\r\nContent-Length: {SIZE}\r\n\r\n");
        writer.write_all(head.as_bytes()).expect("head");
        let chunk = vec![0x5au8; 64 * 1024];
        for _ in 0..SIZE / chunk.len() {
            writer.write_all(&chunk).expect("body");
        }
    });
    let mut reader = BufReader::new(stream);
    let mut status = String::new();
    reader.read_line(&mut status).expect("status");
    assert!(status.contains(" 200 "), "{status}");
    let mut received = 0usize;
    let mut buf = vec![0u8; 64 * 1024];
    let mut in_body = false;
    let mut line = String::new();
    while !in_body {
        line.clear();
        reader.read_line(&mut line).expect("header");
        in_body = line == "\r\n";
    }
    loop {
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                assert!(buf[..n].iter().all(|b| *b == 0x5a));
                received += n;
            }
            Err(e) => panic!("read: {e}"),
        }
    }
    sender.join().expect("sender");
    assert_eq!(received, SIZE);
    let grown_kb = hwm(gateway.id()).saturating_sub(before);
    assert!(
        grown_kb < 6 * 1024,
        "gateway peak RSS grew {grown_kb} KiB for a 16 MiB body"
    );
}

#[test]
fn a_rotation_at_the_issuer_is_followed() {
    let setup = Setup::new();
    let upstream = Upstream::start(Mode::Echo);
    let gateway = setup.gateway(upstream.addr, "");
    http(gateway.addr, "GET", "/robot", &[], b"");
    let first = jsonwebtoken::decode_header(bearer_of(&upstream.seen()[0], "authorization"))
        .expect("header")
        .kid;
    let config = setup.dir.path().join("keyshift.toml");
    let rotated = common::keyshift()
        .args(["keys", "rotate", "--now", "--config"])
        .arg(&config)
        .output()
        .expect("keys rotate");
    assert!(
        rotated.status.success(),
        "{}",
        String::from_utf8_lossy(&rotated.stderr)
    );
    gateway.signal(nix::sys::signal::Signal::SIGHUP);
    let mut kid = first.clone();
    assert!(
        eventually(Duration::from_secs(10), || {
            http(gateway.addr, "GET", "/robot", &[], b"");
            let seen = upstream.seen();
            let last = seen
                .last()
                .map(|s| bearer_of(s, "authorization"))
                .unwrap_or_default();
            kid = jsonwebtoken::decode_header(&last).ok().and_then(|h| h.kid);
            kid != first
        }),
        "the gateway still signs with {first:?}"
    );
    // The issuer publishes the new key (SIGHUP makes it re-read its keys).
    setup.issuer.signal(nix::sys::signal::Signal::SIGHUP);
    let last = bearer_of(upstream.seen().last().expect("seen"), "authorization");
    assert!(
        eventually(Duration::from_secs(10), || setup
            .jwks()
            .find(kid.as_deref().unwrap_or(""))
            .is_some()),
        "new kid {kid:?} not in the issuer's JWKS"
    );
    assert_eq!(verify_rs256(&setup.jwks(), &last)["sub"], "batch-job");
}

#[test]
fn clients_speak_http2_over_tls_to_the_gateway_and_the_upstream_still_gets_an_rs256_token() {
    let setup = Setup::new();
    let upstream = Upstream::start(Mode::Echo);
    let ca = keyshift_testkit::tls::TestCa::new();
    let ca_file = ca.write(setup.dir.path());
    ca.server("gateway").write(setup.dir.path(), "gateway");
    let gateway = setup.gateway(
        upstream.addr,
        "tls_cert_file = \"gateway.crt\"\ntls_key_file = \"gateway.key\"",
    );
    let token = setup.token();
    assert_eq!(token_alg(&token), Alg::Hs256);
    let answer = common::curl_h2(
        &format!("https://localhost:{}/orders/1", gateway.addr.port()),
        &ca_file,
        &token,
    );
    assert_eq!(answer, "2 200");
    let seen = upstream.seen();
    let [one] = seen.as_slice() else {
        panic!("one request upstream: {seen:?}")
    };
    assert_eq!(one.path, "/svc/1");
    let claims = verify_rs256(&setup.jwks(), &bearer_of(one, "authorization"));
    assert_eq!(claims["sub"], "svc-a");
}

#[test]
fn a_reload_moves_the_gateways_verifier_to_asymmetric_without_a_restart() {
    let setup = Setup::new();
    let upstream = Upstream::start(Mode::Echo);
    let gateway = setup.gateway(upstream.addr, "");
    let pid = gateway.id();
    let hs256 = setup.token();
    assert_eq!(token_alg(&hs256), Alg::Hs256);
    let status = |token: &str| {
        http(
            gateway.addr,
            "GET",
            "/orders/1",
            &[("Authorization", &format!("Bearer {token}"))],
            b"",
        )
        .status
    };
    assert_eq!(status(&hs256), 200);
    // The same file, phase asymmetric (forced: the issuer minted HS256
    // tokens a moment ago, which the guard rail would otherwise protect).
    let gateway_lines = format!(
        "[gateway]\nlisten = \"127.0.0.1:0\"\nissuer = \"http://127.0.0.1\"\n\n{}",
        ROUTES.replace("UPSTREAM", &upstream.addr.to_string())
    );
    common::config(Phase::Asymmetric, Some(setup.issuer.addr))
        .verifier("force_phase", true)
        .gateway_lines(&gateway_lines)
        .write_to(setup.dir.path());
    gateway.signal(nix::sys::signal::Signal::SIGHUP);
    assert!(
        eventually(Duration::from_secs(20), || status(&hs256) == 401),
        "HS256 refused after the reload"
    );
    assert_eq!(gateway.id(), pid, "no restart");
    let metrics = http(gateway.addr, "GET", "/metrics", &[], b"").text();
    assert!(
        metrics.contains("keyshift_config_reloads_total{result=\"ok\"} 1"),
        "{metrics}"
    );
}
