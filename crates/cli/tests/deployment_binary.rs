//! End to end with the real binary, deployed as docs/deployment.md says:
//! TLS on issuer and verifier with a test CA (rcgen), the verifier fetching
//! the JWKS over TLS from that private CA (`jwks_ca_file`), HTTP/2 by ALPN
//! (curl, a real HTTP/2 client), TLS 1.1 refused, a certificate swapped on
//! disk and by SIGHUP served without a restart (and a broken one not),
//! `watch_config` following a ConfigMap-style symlink swap and keeping the
//! running config on a bad one, JSON logs, and the issuer's `/readyz`.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{config, curl_h2, dir_with_secret, generate_keys, http, https, start};
use keyshift_core::Phase;
use keyshift_testkit::tls::{self, TestCa};
use keyshift_testkit::{eventually, prom};
use nix::sys::signal::Signal;

/// How long a change on disk may take to serve: the services look every
/// 2 s (`keyshift_core::watch::WATCH_INTERVAL`); the bound is generous
/// for a loaded CI machine, and the loop ends as soon as it is seen.
const PICKUP: Duration = Duration::from_secs(20);

fn h1(ca: &TestCa) -> std::sync::Arc<rustls::ClientConfig> {
    ca.client_config(&[b"http/1.1"], &[])
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn token_over_tls(issuer: SocketAddr, ca: &TestCa) -> String {
    let resp = https(
        issuer,
        h1(ca),
        "POST",
        "/oauth/token",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        b"grant_type=client_credentials&client_id=svc-a&client_secret=s3cret",
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    resp.json()["access_token"]
        .as_str()
        .expect("token")
        .to_owned()
}

/// Issuer over TLS in phase `transition` (signs RS256), its key set made.
fn tls_issuer(dir: &Path, ca: &TestCa) -> (keyshift_testkit::Service, PathBuf) {
    ca.server("issuer").write(dir, "issuer");
    let cfg = config(Phase::Transition, None)
        .issuer("tls_cert_file", "issuer.crt")
        .issuer("tls_key_file", "issuer.key")
        .write_to(dir);
    generate_keys(&cfg);
    (start("issuer", &cfg), cfg)
}

#[test]
fn issuer_and_verifier_serve_tls_and_the_verifier_fetches_the_jwks_from_a_private_ca() {
    let tmp = dir_with_secret();
    let dir = tmp.path();
    let ca = TestCa::new();
    let ca_file = ca.write(dir);
    let (issuer, _) = tls_issuer(dir, &ca);
    let readyz = https(issuer.addr, h1(&ca), "GET", "/readyz", &[], b"");
    assert_eq!((readyz.status, readyz.text().as_str()), (200, "ready\n"));
    let plain = std::panic::catch_unwind(|| http(issuer.addr, "GET", "/healthz", &[], b""));
    assert!(
        plain.is_err() || plain.is_ok_and(|r| r.status != 200),
        "plain HTTP is not served on a TLS listener"
    );
    let token = token_over_tls(issuer.addr, &ca);

    // A verifier trusting the test CA through jwks_ca_file, serving TLS itself.
    ca.server("verifier").write(dir, "verifier");
    let jwks_url = format!(
        "https://localhost:{}/.well-known/jwks.json",
        issuer.addr.port()
    );
    let verifier_cfg = |with_ca: bool| {
        let mut cfg = config(Phase::Transition, Some(issuer.addr))
            .issuer("tls_cert_file", "issuer.crt")
            .issuer("tls_key_file", "issuer.key")
            .verifier("jwks_url", jwks_url.as_str())
            .verifier("tls_cert_file", "verifier.crt")
            .verifier("tls_key_file", "verifier.key");
        if with_ca {
            cfg = cfg.verifier("jwks_ca_file", "ca.crt");
        }
        cfg
    };
    let with_ca = dir.join("with-ca");
    std::fs::create_dir(&with_ca).expect("mkdir");
    for f in [
        "hs256.secret",
        "ca.crt",
        "verifier.crt",
        "verifier.key",
        "issuer.crt",
        "issuer.key",
    ] {
        std::fs::copy(dir.join(f), with_ca.join(f)).expect("copy");
    }
    let verifier = start("verifier", &verifier_cfg(true).write_to(&with_ca));
    let resp = https(
        verifier.addr,
        h1(&ca),
        "GET",
        "/verify",
        &[("Authorization", &bearer(&token))],
        b"",
    );
    assert_eq!(
        resp.status,
        200,
        "RS256 token verified with keys fetched over TLS: {}",
        resp.text()
    );
    let answer = curl_h2(
        &format!("https://localhost:{}/verify", verifier.addr.port()),
        &ca_file,
        &token,
    );
    assert_eq!(answer, "2 200", "HTTP/2 by ALPN");

    // Without the CA, the same verifier cannot trust the issuer: no keys,
    // not ready, the RS256 token not accepted.
    let without_ca = dir.join("without-ca");
    std::fs::create_dir(&without_ca).expect("mkdir");
    for f in [
        "hs256.secret",
        "verifier.crt",
        "verifier.key",
        "issuer.crt",
        "issuer.key",
    ] {
        std::fs::copy(dir.join(f), without_ca.join(f)).expect("copy");
    }
    let blind = start("verifier", &verifier_cfg(false).write_to(&without_ca));
    let ready = https(blind.addr, h1(&ca), "GET", "/readyz", &[], b"");
    assert_eq!(ready.status, 503, "{}", ready.text());
    let resp = https(
        blind.addr,
        h1(&ca),
        "GET",
        "/verify",
        &[("Authorization", &bearer(&token))],
        b"",
    );
    assert_ne!(resp.status, 200, "no trusted JWKS, no RS256 token");
}

#[test]
fn tls_1_1_is_refused_and_tls_1_2_and_1_3_are_served() {
    let tmp = dir_with_secret();
    let ca = TestCa::new();
    let (issuer, _) = tls_issuer(tmp.path(), &ca);
    // The same hello, as TLS 1.2 and as TLS 1.1: only the version differs.
    assert_eq!(
        tls::answer_to(issuer.addr, &tls::client_hello([3, 3])).expect("connect"),
        tls::HelloAnswer::Handshake,
        "control: the hand-made hello as TLS 1.2 gets a ServerHello"
    );
    assert_eq!(
        tls::answer_to(issuer.addr, &tls::client_hello([3, 2])).expect("connect"),
        tls::HelloAnswer::Alert(tls::ALERT_PROTOCOL_VERSION),
        "a TLS 1.1 ClientHello gets protocol_version"
    );
    for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
        let config = ca.client_config(&[b"http/1.1"], &[version]);
        let resp = https(issuer.addr, config, "GET", "/healthz", &[], b"");
        assert_eq!(resp.status, 200, "{version:?}");
    }
}

#[test]
fn a_certificate_replaced_on_disk_or_reloaded_by_sighup_serves_without_a_restart() {
    let tmp = dir_with_secret();
    let dir = tmp.path();
    let ca = TestCa::new();
    let first = ca.server("first");
    first.write(dir, "verifier");
    let cfg = config(Phase::Legacy, None)
        .verifier("listen", "127.0.0.1:0")
        .verifier("issuer", "http://127.0.0.1")
        .verifier("audience", "https://api.test")
        .verifier("hs256_secret_file", "hs256.secret")
        .verifier("tls_cert_file", "verifier.crt")
        .verifier("tls_key_file", "verifier.key")
        .write_to(dir);
    let verifier = start("verifier", &cfg);
    let pid = verifier.id();
    let leaf = || tls::presented_leaf(verifier.addr, h1(&ca)).ok();
    assert_eq!(leaf(), Some(first.der()));

    // A certificate manager renews it: new key, new certificate, renamed in.
    let second = ca.server("second");
    second.write(dir, "verifier");
    assert!(
        eventually(PICKUP, || leaf() == Some(second.der())),
        "the renewed certificate serves"
    );

    // A broken certificate is refused; the running one stays.
    let skip = verifier.log_len();
    tls::replace(&dir.join("verifier.crt"), b"not a certificate\n");
    assert!(
        verifier
            .wait_for_log("TLS certificate reload failed", skip, PICKUP)
            .is_some(),
        "the refusal is logged"
    );
    assert_eq!(leaf(), Some(second.der()), "still the last good pair");

    // SIGHUP reloads it too (here the watch may also see it first: either
    // way the third pair serves and the process is the same one).
    let third = ca.server("third");
    third.write(dir, "verifier");
    verifier.signal(Signal::SIGHUP);
    assert!(eventually(PICKUP, || leaf() == Some(third.der())));
    assert_eq!(verifier.id(), pid, "no restart");
}

/// kubelet's layout of a ConfigMap volume: `keyshift.toml ->
/// ..data/keyshift.toml`, `..data -> ..<version>`; an update writes a new
/// version folder and renames a new `..data` link over the old one.
struct ConfigMapVolume {
    root: PathBuf,
    version: u32,
}

impl ConfigMapVolume {
    fn new(root: &Path, text: &str) -> ConfigMapVolume {
        let mut volume = ConfigMapVolume {
            root: root.to_owned(),
            version: 0,
        };
        volume.publish(text);
        std::os::unix::fs::symlink("..data/keyshift.toml", root.join("keyshift.toml"))
            .expect("file link");
        volume
    }

    fn publish(&mut self, text: &str) {
        self.version += 1;
        let folder = format!("..v{}", self.version);
        std::fs::create_dir(self.root.join(&folder)).expect("version folder");
        std::fs::write(self.root.join(&folder).join("keyshift.toml"), text).expect("write");
        std::os::unix::fs::symlink(&folder, self.root.join("..data_tmp")).expect("new link");
        std::fs::rename(self.root.join("..data_tmp"), self.root.join("..data")).expect("swap");
    }

    fn file(&self) -> PathBuf {
        self.root.join("keyshift.toml")
    }
}

fn reloads(addr: SocketAddr, result: &str) -> f64 {
    let text = http(addr, "GET", "/metrics", &[], b"").text();
    prom::parse(&text)
        .iter()
        .filter(|(s, _)| s.matches("keyshift_config_reloads_total", &[("result", result)]))
        .map(|(_, v)| v)
        .sum()
}

fn hs256_token(audience: &str) -> String {
    use jsonwebtoken::{Algorithm, EncodingKey, Header};
    let now = keyshift_core::Clock::now_secs(&keyshift_core::clock::SystemClock);
    let mut header = Header::new(Algorithm::HS256);
    header.typ = Some("at+jwt".to_owned());
    let claims = serde_json::json!({
        "iss": "http://127.0.0.1", "aud": audience, "sub": "svc-a", "client_id": "svc-a",
        "scope": "read", "iat": now, "exp": now + 300,
    });
    jsonwebtoken::encode(
        &header,
        &claims,
        &EncodingKey::from_secret(b"0123456789abcdef0123456789abcdef"),
    )
    .expect("mint")
}

#[test]
fn watch_config_follows_a_configmap_symlink_swap_and_keeps_serving_on_a_bad_one() {
    let tmp = dir_with_secret();
    let dir = tmp.path();
    let secret = std::fs::read(dir.join("hs256.secret")).expect("secret");
    let volume_dir = dir.join("config");
    std::fs::create_dir(&volume_dir).expect("mkdir");
    std::fs::write(volume_dir.join("hs256.secret"), secret).expect("secret");
    let text = |audience: &str| {
        config(Phase::Legacy, None)
            .verifier("listen", "127.0.0.1:0")
            .verifier("issuer", "http://127.0.0.1")
            .verifier("audience", audience)
            .verifier("hs256_secret_file", "hs256.secret")
            .verifier("watch_config", true)
            .render()
    };
    let mut volume = ConfigMapVolume::new(&volume_dir, &text("https://a.test"));
    let verifier = start("verifier", &volume.file());
    let (for_a, for_b) = (hs256_token("https://a.test"), hs256_token("https://b.test"));
    let status = |token: &str| {
        http(
            verifier.addr,
            "GET",
            "/verify",
            &[("Authorization", &bearer(token))],
            b"",
        )
        .status
    };
    assert_eq!((status(&for_a), status(&for_b)), (200, 401));

    volume.publish(&text("https://b.test"));
    assert!(
        eventually(PICKUP, || status(&for_b) == 200),
        "the new audience is in force without a signal"
    );
    assert_eq!(status(&for_a), 401);
    assert_eq!(reloads(verifier.addr, "ok"), 1.0);

    // A broken update: refused, counted, the running config keeps serving.
    volume.publish("phase = \"dual\"\n[verifier]\nlisten = \n");
    assert!(
        eventually(PICKUP, || reloads(verifier.addr, "error") >= 1.0),
        "the bad update is refused"
    );
    assert_eq!(status(&for_b), 200, "still the last good config");
    assert_eq!(reloads(verifier.addr, "ok"), 1.0);
}

#[test]
fn json_logs_are_one_object_per_line_with_time_level_and_message() {
    let tmp = dir_with_secret();
    let cfg = config(Phase::Legacy, None)
        .issuer("log_format", "json")
        .write_to(tmp.path());
    let issuer = start("issuer", &cfg);
    // A reload that fails logs an error line with fields.
    std::fs::write(&cfg, "phase = ").expect("break the config");
    let skip = issuer.log_len();
    issuer.signal(Signal::SIGHUP);
    assert!(issuer
        .wait_for_log("config reload failed", skip, PICKUP)
        .is_some());
    let lines: Vec<String> = (0..issuer.log_len())
        .filter_map(|i| issuer.log_line(i))
        .collect();
    assert!(lines.len() >= 2, "{lines:?}");
    let mut levels = Vec::new();
    for line in &lines {
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not one JSON object: {line:?}: {e}"));
        let time = v["timestamp"].as_str().expect("timestamp");
        assert!(
            time.ends_with('Z') && time.contains('T'),
            "RFC 3339 UTC: {time}"
        );
        let message = v["fields"]["message"].as_str().expect("message");
        assert!(!message.is_empty());
        levels.push(v["level"].as_str().expect("level").to_owned());
    }
    assert!(levels.iter().any(|l| l == "INFO"), "{levels:?}");
    let failure = lines
        .iter()
        .find(|l| l.contains("config reload failed"))
        .expect("the failure line");
    let v: serde_json::Value = serde_json::from_str(failure).expect("json");
    assert_eq!(v["level"], "ERROR");
    assert!(
        v["fields"]["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{v}"
    );
}
