//! End to end: the real `keyshift` binary as an issuer, and its offline commands.

mod common;

use std::time::Duration;

use common::{fetch_token, http, keyshift, start, token_alg, write_config};
use keyshift_core::secret::SecretHash;
use keyshift_core::{Alg, Phase};
use keyshift_testkit::net::unused_fixed_port;
use keyshift_testkit::process::wait_for_exit;
use keyshift_testkit::{eventually, jwt};
use nix::sys::signal::Signal;

#[test]
fn issuer_binary_serves_reloads_on_sighup_and_drains_on_sigterm() {
    let tmp = common::dir_with_secret();
    let config = write_config(tmp.path(), Phase::Dual, None);
    let mut issuer = start("issuer", &config);

    let token = fetch_token(issuer.addr, "svc-a", "s3cret");
    assert_eq!(token_alg(&token), Alg::Hs256);
    let jwks = http(issuer.addr, "GET", "/.well-known/jwks.json", &[], b"");
    assert_eq!(jwks.json()["keys"].as_array().map(Vec::len), Some(1));

    // The offline tools see the same key directory.
    let list = keyshift()
        .args(["keys", "list", "--config"])
        .arg(&config)
        .output()
        .expect("keys list");
    assert!(list.status.success());
    let listing = String::from_utf8_lossy(&list.stdout);
    assert!(listing.contains("active"), "{listing}");
    let minted = keyshift()
        .args(["token", "--client", "svc-a", "--scope", "read", "--config"])
        .arg(&config)
        .output()
        .expect("token");
    assert!(
        minted.status.success(),
        "{}",
        String::from_utf8_lossy(&minted.stderr)
    );
    assert_eq!(
        token_alg(String::from_utf8_lossy(&minted.stdout).trim()),
        Alg::Hs256
    );

    // Phase switch by config edit + SIGHUP: the next token is RS256.
    write_config(tmp.path(), Phase::Transition, None);
    issuer.signal(Signal::SIGHUP);
    assert!(
        eventually(Duration::from_secs(10), || token_alg(&fetch_token(
            issuer.addr,
            "svc-a",
            "s3cret"
        )) == Alg::Rs256),
        "issuer did not switch to RS256 after SIGHUP"
    );

    // A broken config on SIGHUP keeps the running one, and says why.
    let seen = issuer.log_len();
    std::fs::write(&config, "phase = \"sideways\"\n").expect("break config");
    issuer.signal(Signal::SIGHUP);
    let line = issuer
        .wait_for_log("config reload failed", seen, Duration::from_secs(10))
        .expect("the reload failure is logged");
    let logged = issuer.log_line(line).expect("the line found");
    assert!(logged.contains("phase"), "names the field: {logged}");
    assert_eq!(
        token_alg(&fetch_token(issuer.addr, "svc-a", "s3cret")),
        Alg::Rs256
    );

    let metrics = http(issuer.addr, "GET", "/metrics", &[], b"").text();
    assert!(
        metrics.contains("keyshift_tokens_issued_total{alg=\"HS256\",client=\"svc-a\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("keyshift_tokens_issued_total{alg=\"RS256\",client=\"svc-a\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("keyshift_phase_info{phase=\"transition\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("keyshift_signing_keys{state=\"active\"} 1"),
        "{metrics}"
    );

    issuer.signal(Signal::SIGTERM);
    assert!(issuer.wait_exit().success());
}

#[test]
fn bad_config_names_the_field_and_exits_2() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("bad.toml");
    std::fs::write(&path, "phase = \"dual\"\n[issuer]\nissuer = \"http://x\"\naudience = \"a\"\nhs256_secret_file = \"s\"\ntoken_ttl = \"soon\"\n").expect("write");
    for args in [vec!["issuer", "--config"], vec!["config", "check"]] {
        let out = keyshift().args(&args).arg(&path).output().expect("run");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        assert!(err.contains("issuer.token_ttl"), "{err}");
    }
}

#[test]
fn corrupt_manifest_at_start_is_one_line_naming_the_path_and_the_problem_once() {
    let tmp = common::dir_with_secret();
    let config = write_config(tmp.path(), Phase::Dual, None);
    let manifest = tmp.path().join("keys").join("manifest.json");
    std::fs::create_dir(tmp.path().join("keys")).expect("key dir");
    std::fs::write(&manifest, "{\"version\":1,\"keys\":[{\"kid\":").expect("corrupt");
    let out = keyshift()
        .args(["issuer", "--config"])
        .arg(&config)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.contains(&manifest.display().to_string()), "{err}");
    assert_eq!(err.matches("damaged manifest").count(), 1, "{err}");
    assert_eq!(err.matches("EOF while parsing").count(), 1, "{err}");
    assert!(err.contains("issuer.key_dir"), "{err}");
    // Left as it was for the operator to look at.
    assert_eq!(
        std::fs::read_to_string(&manifest).expect("kept"),
        "{\"version\":1,\"keys\":[{\"kid\":"
    );
}

/// Runs `keyshift keys ARGS --config CONFIG`; returns (success, stdout, stderr).
fn keys(config: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let out = keyshift()
        .arg("keys")
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .expect("keyshift keys");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The kid in "generated KID (STATE, BITS bits)".
fn generated_kid(stdout: &str) -> String {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("generated "))
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no kid in {stdout}"))
        .to_owned()
}

/// The STATE column of `keyshift keys list` for `kid`.
fn listed_state(listing: &str, kid: &str) -> Option<String> {
    listing
        .lines()
        .find(|l| l.starts_with(kid))
        .and_then(|l| l.split_whitespace().nth(1))
        .map(str::to_owned)
}

#[test]
fn keys_commands_generate_list_rotate_and_retire_offline() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let config = write_config(tmp.path(), Phase::Transition, None);
    let key_dir = tmp.path().join("keys");

    // No key directory: a clear error naming the setting, nothing created
    // (finding 8 of issue 12: not even the folder and its keys.lock).
    for args in [
        &["rotate"][..],
        &["rotate", "--now"],
        &["retire", "kid", "--force"],
        &["list"],
    ] {
        let (ok, _, err) = keys(&config, args);
        assert!(!ok, "{args:?}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.contains("issuer.key_dir")
                && err.contains("does not exist")
                && err.contains("a typo?"),
            "{args:?}: {err}"
        );
        assert!(!key_dir.exists(), "{args:?} created {}", key_dir.display());
    }

    // The first key is active at once; the second one waits as next.
    let (ok, out, err) = keys(&config, &["generate"]);
    assert!(ok, "{err}");
    assert!(
        out.starts_with(&format!("created the key directory {}", key_dir.display())),
        "{out}"
    );
    assert!(out.contains("(active, 2048 bits)"), "{out}");
    let first = generated_kid(&out);
    let (ok, out, err) = keys(&config, &["generate", "--bits", "3072"]);
    assert!(ok, "{err}");
    assert!(out.contains("(next, 3072 bits)"), "{out}");
    let second = generated_kid(&out);
    let (ok, _, err) = keys(&config, &["generate"]);
    assert!(!ok && err.contains("a next key already exists"), "{err}");
    for kid in [&first, &second] {
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(key_dir.join(format!("{kid}.pem")))
                .expect("key file")
                .permissions(),
        );
        assert_eq!(mode & 0o777, 0o600, "{kid}");
    }
    let (ok, listing, _) = keys(&config, &["list"]);
    assert!(ok);
    assert_eq!(listed_state(&listing, &first).as_deref(), Some("active"));
    assert_eq!(listed_state(&listing, &second).as_deref(), Some("next"));

    // rotate schedules the waiting key; --now promotes it.
    let (ok, out, err) = keys(&config, &["rotate"]);
    assert!(ok, "{err}");
    assert!(
        out.starts_with(&format!("{second} is the next key")),
        "{out}"
    );
    let (ok, listing, _) = keys(&config, &["list"]);
    assert!(ok);
    assert!(
        listing
            .lines()
            .any(|l| l.starts_with(&second) && l.contains("activates")),
        "{listing}"
    );
    let (ok, out, err) = keys(&config, &["rotate", "--now"]);
    assert!(ok, "{err}");
    assert!(out.contains(&format!("{second} is active now")), "{out}");
    let (_, listing, _) = keys(&config, &["list"]);
    assert_eq!(listed_state(&listing, &second).as_deref(), Some("active"));
    assert_eq!(listed_state(&listing, &first).as_deref(), Some("retiring"));

    // Retiring early needs --force; the active key cannot be retired at all.
    let (ok, _, err) = keys(&config, &["retire", &first]);
    assert!(!ok && err.contains("--force"), "{err}");
    let (ok, _, err) = keys(&config, &["retire", &second, "--force"]);
    assert!(!ok && err.contains("this key is active"), "{err}");
    let (ok, _, err) = keys(&config, &["retire", "no-such-kid-no-such-kid"]);
    assert!(!ok && err.contains("no key with kid"), "{err}");
    let (ok, out, err) = keys(&config, &["retire", &first, "--force"]);
    assert!(ok, "{err}");
    assert!(out.contains(&format!("{first} retired")), "{out}");
    assert!(
        !key_dir.join(format!("{first}.pem")).exists(),
        "private key deleted"
    );
    let (_, listing, _) = keys(&config, &["list"]);
    assert_eq!(listed_state(&listing, &first).as_deref(), Some("retired"));

    // The issuer starts on what the tools left, signing with the active key.
    std::fs::write(
        tmp.path().join("hs256.secret"),
        "0123456789abcdef0123456789abcdef\n",
    )
    .expect("secret");
    let mut issuer = start("issuer", &config);
    let token = fetch_token(issuer.addr, "svc-a", "s3cret");
    assert_eq!(
        jwt::header(&token).and_then(|h| h.kid).as_deref(),
        Some(second.as_str())
    );
    issuer.signal(Signal::SIGTERM);
    assert!(issuer.wait_exit().success());
}

#[test]
fn config_check_prints_effective_settings() {
    let tmp = common::dir_with_secret();
    let path = write_config(tmp.path(), Phase::Dual, None);
    let out = keyshift()
        .args(["config", "check"])
        .arg(&path)
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("token_ttl = \"15m\""), "{text}");
    assert!(text.contains("key_prepublish = \"15m\""), "{text}");
}

#[test]
fn secret_hash_reads_stdin() {
    use std::io::Write;
    let mut child = keyshift()
        .args(["secret", "hash"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"s3cret\n")
        .expect("write");
    let out = child.wait_with_output().expect("wait");
    let printed = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert_eq!(printed, SecretHash::sha256_of(b"s3cret").to_config_string());
}

#[test]
fn verifier_refuses_an_hs256_override_in_phase_asymmetric() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("v.toml");
    std::fs::write(
        &path,
        "phase = \"asymmetric\"\n[verifier]\nlisten = \"127.0.0.1:0\"\nissuer = \"i\"\naudience = \"a\"\njwks_url = \"http://127.0.0.1:9/jwks\"\nhs256_secret_file = \"s\"\n",
    )
    .expect("write");
    let out = keyshift()
        .args(["verifier", "--accept", "hs256,rs256", "--config"])
        .arg(&path)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--accept") && err.contains("asymmetric"),
        "{err}"
    );
    // The same override in the config file is refused too.
    std::fs::write(
        &path,
        "phase = \"asymmetric\"\n[verifier]\nissuer = \"i\"\naudience = \"a\"\njwks_url = \"http://127.0.0.1:9/jwks\"\naccept = [\"HS256\", \"RS256\"]\n",
    )
    .expect("write");
    let out = keyshift()
        .args(["verifier", "--config"])
        .arg(&path)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("verifier.accept"));
}

/// A running `keyshift dev`: its stdout lines so far, and the pids of the
/// services it started (for a clean-up that leaves no orphan behind).
struct Dev {
    child: std::process::Child,
    output: String,
    service_pids: Vec<i32>,
}

impl Dev {
    /// Starts `keyshift dev` in `dir` on the given ports and waits (≤ 60 s)
    /// for the end of its curl session.
    fn start(dir: &std::path::Path, issuer_port: u16, verifier_port: u16) -> Dev {
        use std::io::BufRead;
        let mut child = keyshift()
            .args(["dev", "--dir"])
            .arg(dir)
            .args([
                "--issuer-listen",
                &format!("127.0.0.1:{issuer_port}"),
                "--verifier-listen",
                &format!("127.0.0.1:{verifier_port}"),
            ])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("spawn keyshift dev");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut dev = Dev {
            child,
            output: String::new(),
            service_pids: Vec::new(),
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let line = rx
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no curl session in time:\n{}", dev.output));
            dev.output.push_str(&line);
            dev.output.push('\n');
            if let Some(pids) = line.split("keyshift dev is running (").nth(1) {
                dev.service_pids = pids
                    .split(" pid ")
                    .skip(1)
                    .filter_map(|p| p.split(|c: char| !c.is_ascii_digit()).next())
                    .filter_map(|p| p.parse().ok())
                    .collect();
            }
            if line.contains("Ctrl-C stops everything.") {
                return dev;
            }
        }
    }

    /// The first printed line containing all of `parts`.
    fn line_with(&self, parts: &[&str]) -> &str {
        self.output
            .lines()
            .find(|l| parts.iter().all(|p| l.contains(p)))
            .unwrap_or_else(|| panic!("no line with {parts:?} in:\n{}", self.output))
    }

    /// SIGTERM, then waits (≤ 20 s) for the exit status.
    fn stop(&mut self) -> std::process::ExitStatus {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, Signal::SIGTERM).expect("SIGTERM");
        wait_for_exit(&mut self.child, Duration::from_secs(20)).expect("dev stops")
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        // A failed test must not leave services holding the ports.
        let _ = self.child.kill();
        let _ = self.child.wait();
        for pid in &self.service_pids {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(*pid), Signal::SIGKILL);
        }
    }
}

/// `http://HOST:PORT/PATH` → (address, path).
fn split_url(url: &str) -> (std::net::SocketAddr, String) {
    let rest = url.strip_prefix("http://").expect("http URL");
    let (host, path) = rest.split_once('/').expect("a path");
    (host.parse().expect("host:port"), format!("/{path}"))
}

/// Does what the printed token curl does: HTTP Basic with the secret file it names.
fn curl_token(dev: &Dev) -> String {
    use base64::Engine;
    let line = dev.line_with(&["curl -s -u dev-client:$(cat ", "/oauth/token"]);
    let secret_file = line
        .split("$(cat ")
        .nth(1)
        .and_then(|r| r.split(')').next())
        .expect("secret file");
    let secret = std::fs::read_to_string(secret_file).expect("printed secret file");
    let url = line.split_whitespace().last().expect("url");
    let (addr, path) = split_url(url);
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("dev-client:{secret}"));
    let resp = http(
        addr,
        "POST",
        &path,
        &[
            ("Authorization", &format!("Basic {basic}")),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        b"grant_type=client_credentials",
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    resp.json()["access_token"]
        .as_str()
        .expect("token")
        .to_owned()
}

/// The kids of the JWKS at the printed URL.
fn printed_jwks_kids(dev: &Dev) -> Vec<String> {
    let line = dev.line_with(&["curl -s http://", "/.well-known/jwks.json"]);
    let (addr, path) = split_url(line.split_whitespace().last().expect("url"));
    let jwks = http(addr, "GET", &path, &[], b"").json();
    jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| k["kid"].as_str().expect("kid").to_owned())
        .collect()
}

fn mode(path: &std::path::Path) -> u32 {
    std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(path).expect("file").permissions())
        & 0o777
}

#[test]
fn dev_generates_its_files_once_prints_a_working_session_and_stops_on_sigterm() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join(".keyshift");
    // `keyshift dev` prints URLs with its ports, so it refuses port 0.
    let (ip, vp) = (unused_fixed_port(), unused_fixed_port());

    let mut dev = Dev::start(&dir, ip, vp);
    assert!(
        dev.output.contains("keyshift dev: generated"),
        "{}",
        dev.output
    );
    assert_eq!(dev.service_pids.len(), 2, "{}", dev.output);
    for secret in ["hs256.secret", "dev-client.secret"] {
        assert_eq!(mode(&dir.join(secret)), 0o600, "{secret}");
    }
    assert!(dir.join("keyshift.toml").exists());
    assert!(dir.join("keys").join("manifest.json").exists());
    let hs256 = std::fs::read(dir.join("hs256.secret")).expect("secret");
    let client_secret = std::fs::read(dir.join("dev-client.secret")).expect("secret");

    // The printed session works as printed.
    let token = curl_token(&dev);
    let verify = dev.line_with(&["Authorization: Bearer $TOKEN", "/verify"]);
    let (addr, path) = split_url(verify.split_whitespace().last().expect("url"));
    assert_eq!(addr.port(), vp);
    let resp = http(
        addr,
        "GET",
        &path,
        &[("Authorization", &format!("Bearer {token}"))],
        b"",
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.header("x-auth-client"), Some("dev-client"));
    let kids = printed_jwks_kids(&dev);
    assert_eq!(kids.len(), 1, "{kids:?}");

    assert!(dev.stop().success(), "dev exits 0 on SIGTERM");
    assert!(
        eventually(Duration::from_secs(10), || {
            [ip, vp]
                .iter()
                .all(|p| std::net::TcpStream::connect(("127.0.0.1", *p)).is_err())
        }),
        "the services stopped with dev"
    );
    drop(dev);

    // A second run reuses everything: same secrets, same key.
    let mut dev = Dev::start(&dir, ip, vp);
    assert!(!dev.output.contains("generated"), "{}", dev.output);
    assert_eq!(
        std::fs::read(dir.join("hs256.secret")).expect("secret"),
        hs256
    );
    assert_eq!(
        std::fs::read(dir.join("dev-client.secret")).expect("secret"),
        client_secret
    );
    assert_eq!(printed_jwks_kids(&dev), kids);
    curl_token(&dev);
    assert!(dev.stop().success());
}

/// Reads from `stream` until the end of a response head; returns it.
fn read_head(stream: &mut std::net::TcpStream) -> String {
    use std::io::Read;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert!(head.len() < 8192, "head too long");
        let n = stream.read(&mut byte).expect("read head");
        assert_eq!(
            n,
            1,
            "connection closed after {:?}",
            String::from_utf8_lossy(&head)
        );
        head.push(byte[0]);
    }
    String::from_utf8_lossy(&head).into_owned()
}

#[test]
fn sigterm_drains_a_request_in_flight() {
    use std::io::{Read, Write};
    let tmp = common::dir_with_secret();
    let config = write_config(tmp.path(), Phase::Dual, None);
    let mut issuer = start("issuer", &config);
    let body = b"grant_type=client_credentials&client_id=svc-a&client_secret=s3cret";
    let (first, rest) = body.split_at(body.len() / 2);

    let mut stream = std::net::TcpStream::connect_timeout(&issuer.addr, Duration::from_secs(5))
        .expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        stream,
        "POST /oauth/token HTTP/1.1\r\nHost: {}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nExpect: 100-continue\r\n\r\n",
        issuer.addr,
        body.len()
    )
    .expect("head");
    // hyper says 100 Continue when the handler starts reading the body:
    // from here on the request is in flight.
    let interim = read_head(&mut stream);
    assert!(interim.starts_with("HTTP/1.1 100"), "{interim}");
    stream.write_all(first).expect("half the body");

    issuer.signal(Signal::SIGTERM);
    // Shutdown has begun once the listener is gone...
    assert!(
        eventually(Duration::from_secs(10), || std::net::TcpStream::connect(
            issuer.addr
        )
        .is_err()),
        "the issuer kept accepting after SIGTERM"
    );
    // ...and the request in flight still completes.
    stream.write_all(rest).expect("rest of the body");
    let head = read_head(&mut stream);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let mut response_body = Vec::new();
    let _ = stream.read_to_end(&mut response_body);
    let json: serde_json::Value = serde_json::from_slice(&response_body).expect("json");
    assert!(json["access_token"].is_string(), "{json}");
    assert!(issuer.wait_exit().success(), "exit 0 after the drain");
}
