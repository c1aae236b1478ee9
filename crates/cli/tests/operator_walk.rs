//! The operator's walk of docs/migration-runbook.md with separate issuer and
//! verifier processes (the real binary), each mistake of issue 12 made once:
//! the refusal or warning the operator sees is asserted, and the legitimate
//! token still passes. What the operator saw is printed as `operator saw:`
//! lines (`cargo test --test operator_walk -- --nocapture` shows them).

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{fetch_token, http, keyshift, start, token_alg};
use keyshift_core::{Alg, Phase};
use keyshift_testkit::net::unused_fixed_port;
use keyshift_testkit::prom;
use keyshift_testkit::{eventually, ConfigToml, Log, Service};
use nix::sys::signal::Signal;

const WAIT: Duration = Duration::from_secs(15);

fn saw(what: &str, text: &str) {
    eprintln!("operator saw: [{what}] {}", text.trim());
}

/// The walk's config: the issuer on a fixed port (it is restarted, and the
/// verifier's jwks_url names it), tokens of 20 s, a verifier beside it.
fn config(phase: Phase, issuer_port: u16) -> ConfigToml {
    let issuer: SocketAddr = ([127, 0, 0, 1], issuer_port).into();
    common::config(phase, Some(issuer))
        .issuer("listen", issuer.to_string())
        .issuer("token_ttl", "20s")
        .verifier("leeway", "1s")
}

fn verify(verifier: SocketAddr, token: &str) -> common::HttpResponse {
    http(
        verifier,
        "GET",
        "/verify",
        &[("Authorization", &format!("Bearer {token}"))],
        b"",
    )
}

fn migration(addr: SocketAddr) -> serde_json::Value {
    http(addr, "GET", "/migration", &[], b"").json()
}

/// The value of the series `name{labels}` on `addr`'s /metrics.
fn metric(addr: SocketAddr, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let text = http(addr, "GET", "/metrics", &[], b"").text();
    prom::parse(&text)
        .into_iter()
        .find(|(s, _)| s.matches(name, labels))
        .map(|(_, v)| v)
}

/// A line of the log after `from` that contains `needle` (waits for it).
fn logged(service: &Service, needle: &str, from: usize) -> String {
    let i = service
        .wait_for_log(needle, from, WAIT)
        .unwrap_or_else(|| panic!("no log line with {needle:?}"));
    service.log_line(i).expect("the line")
}

/// Starts `keyshift <what> --config <config>` expecting it to exit before
/// listening; returns its log (stderr).
fn start_refused(what: &str, config: &Path, dir: &Path) -> String {
    let log = dir.join(format!("{what}-refused.log"));
    let mut command = keyshift();
    command.arg(what).arg("--config").arg(config);
    let started = Service::start(command, Log::File(log.clone()));
    assert!(started.is_err(), "keyshift {what} started");
    std::fs::read_to_string(&log).expect("its log")
}

/// One SIGHUP to `service` with `config` written; waits for the reload's
/// outcome line and returns it.
fn reload(service: &Service, config: &ConfigToml, dir: &Path) -> String {
    let from = service.log_len();
    config.write_to(dir);
    service.signal(Signal::SIGHUP);
    let mut outcome = None;
    let seen = eventually(WAIT, || {
        outcome = (from..service.log_len())
            .filter_map(|i| service.log_line(i))
            .find(|l| l.contains("config reloaded") || l.contains("config reload failed"));
        outcome.is_some()
    });
    assert!(seen, "no reload outcome in the log");
    outcome.unwrap_or_default()
}

#[test]
fn the_runbook_walk_with_each_mistake_made_once() {
    let tmp = common::dir_with_secret();
    let dir = tmp.path();
    let port = unused_fixed_port();
    let config_path: PathBuf = config(Phase::Dual, port).write_to(dir);
    let mut issuer = start("issuer", &config_path);
    let verifier = start("verifier", &config_path);
    let (ia, va) = (issuer.addr, verifier.addr);
    assert!(eventually(WAIT, || http(va, "GET", "/readyz", &[], b"")
        .status
        == 200));

    // Every instance reports itself (finding 7).
    for addr in [ia, va] {
        let v = http(addr, "GET", "/version", &[], b"");
        assert_eq!(v.status, 200);
        saw("GET /version", &v.text().replace('\n', " "));
        assert_eq!(
            metric(
                addr,
                "keyshift_build_info",
                &[("version", env!("CARGO_PKG_VERSION"))]
            ),
            Some(1.0)
        );
    }

    // Mistake 2: the verifier switched to asymmetric while the issuer signs HS256.
    let from = issuer.log_len();
    let hs = fetch_token(ia, "svc-a", "s3cret");
    assert_eq!(token_alg(&hs), Alg::Hs256);
    // One audit line per token request, never a secret (finding 7's "what is it doing").
    let audit = logged(&issuer, "token request", from);
    let jti = keyshift_testkit::jwt::payload(&hs)
        .map(|p| p["jti"].as_str().unwrap_or("").to_owned())
        .expect("claims");
    for field in [
        "outcome=\"issued\"",
        "client=\"svc-a\"",
        "alg=\"HS256\"",
        "scope=\"read write\"",
        &format!("jti=\"{jti}\""),
    ] {
        assert!(audit.contains(field), "{field} in {audit}");
    }
    let from = issuer.log_len();
    let form = [("Content-Type", "application/x-www-form-urlencoded")];
    let guess = b"grant_type=client_credentials&client_id=svc-a&client_secret=guessed-secret";
    assert_eq!(http(ia, "POST", "/oauth/token", &form, guess).status, 401);
    let audit = logged(&issuer, "token request", from);
    saw("issuer audit line of a failed token request", &audit);
    assert!(
        audit.contains("outcome=\"invalid_client\"") && !audit.contains("guessed-secret"),
        "{audit}"
    );
    let line = reload(&verifier, &config(Phase::Asymmetric, port), dir);
    saw(
        "verifier SIGHUP into asymmetric while the issuer signs HS256",
        &line,
    );
    assert!(
        line.contains("config reload failed") && line.contains("still signs HS256"),
        "{line}"
    );
    assert!(line.contains("force_phase"), "the way out: {line}");
    assert_eq!(
        verify(va, &hs).status,
        200,
        "the legitimate token still passes"
    );
    let m = migration(va);
    assert_eq!(
        (m["phase"].as_str(), m["ready_for_asymmetric"].as_bool()),
        (Some("dual"), Some(false))
    );
    assert_eq!(
        metric(va, "keyshift_config_reloads_total", &[("result", "error")]),
        Some(1.0),
        "a failed SIGHUP is counted"
    );
    assert_eq!(
        metric(va, "keyshift_config_last_reload_successful", &[]),
        Some(0.0)
    );

    // A changed listen: applied for the rest, logged as needing a restart (finding 7).
    let moved = config(Phase::Dual, port).verifier("listen", "127.0.0.1:1");
    let line = reload(&verifier, &moved, dir);
    assert!(line.contains("config reloaded"), "{line}");
    let warning = logged(&verifier, "restart is needed", 0);
    saw("verifier SIGHUP with another listen", &warning);
    assert_eq!(verify(va, &hs).status, 200, "still listening where it was");
    assert_eq!(
        metric(va, "keyshift_config_last_reload_successful", &[]),
        Some(1.0)
    );

    // The issuer to transition; /migration says whose phase is whose (finding 8).
    let line = reload(&issuer, &config(Phase::Transition, port), dir);
    assert!(line.contains("config reloaded"), "{line}");
    reload(&verifier, &config(Phase::Dual, port), dir);
    // A SIGHUP asks the issuer again, right after the reload.
    assert!(eventually(WAIT, || migration(va)["issuer"]["phase"] == "transition"));
    let m = migration(va);
    saw(
        "verifier GET /migration, verifier in dual, issuer in transition",
        &format!(
            "phase {} issuer.phase {} issuer.signs {}",
            m["phase"], m["issuer"]["phase"], m["issuer"]["signs"]
        ),
    );
    assert_eq!(m["phase"], "dual");
    assert_eq!(m["issuer"]["phase"], "transition");
    assert_eq!(m["issuer"]["signs"], "RS256");
    assert_eq!(
        m["issuer"]["hs256_valid_until_unix"],
        migration(ia)["hs256_valid_until_unix"]
    );
    let line = reload(&verifier, &config(Phase::Transition, port), dir);
    assert!(line.contains("config reloaded"), "{line}");
    let rs = fetch_token(ia, "svc-a", "s3cret");
    assert_eq!(token_alg(&rs), Alg::Rs256);
    assert_eq!(verify(va, &rs).status, 200);

    // Finding 4: the reason's seconds are those of hs256_valid_until_unix.
    let m = migration(va);
    let reason = m["reason"].as_str().expect("reason").to_owned();
    saw("verifier GET /migration in transition", &reason);
    let until = m["hs256_valid_until_unix"].as_u64().expect("until");
    let now = keyshift_core::clock::Clock::now_secs(&keyshift_core::clock::SystemClock);
    let said: u64 = reason
        .split(" more seconds")
        .next()
        .and_then(|s| s.rsplit('(').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no seconds in {reason}"));
    assert!(
        said.abs_diff(until.saturating_sub(now)) <= 2,
        "{said} vs {until} - {now}: {reason}"
    );
    assert!(reason.contains(&until.to_string()), "{reason}");

    // Mistake 1: the issuer restarted in transition with a mistyped key_dir.
    issuer.signal(Signal::SIGTERM);
    assert!(issuer.wait_exit().success());
    for typo in ["kyes", "/nonexistent/deep/keys"] {
        let path = config(Phase::Transition, port)
            .issuer("key_dir", typo)
            .write_to(dir);
        let log = start_refused("issuer", &path, dir);
        saw(
            &format!("issuer start in transition, key_dir = {typo:?}"),
            &log,
        );
        assert_eq!(log.lines().count(), 1, "{log}");
        assert!(
            log.contains("issuer.key_dir") && log.contains("does not exist"),
            "{log}"
        );
        assert!(log.contains("unknown key id"), "{log}");
        assert!(!dir.join("kyes").exists() && !Path::new("/nonexistent").exists());
    }
    config(Phase::Transition, port).write_to(dir);
    let issuer = start("issuer", &config_path);
    let again = fetch_token(issuer.addr, "svc-a", "s3cret");
    assert_eq!(
        keyshift_testkit::jwt::header(&again).and_then(|h| h.kid),
        keyshift_testkit::jwt::header(&rs).and_then(|h| h.kid),
        "the same key signs after the restart"
    );
    assert_eq!(
        verify(va, &rs).status,
        200,
        "the token from before the restart still passes"
    );
    assert_eq!(
        migration(issuer.addr)["hs256_last_issued_unix"],
        m["issuer"]["hs256_last_issued_unix"],
        "the issuer's record of HS256 tokens survived the restart"
    );

    // Mistake 2 again, 7 s into transition: refused, then forced on purpose.
    let line = reload(&verifier, &config(Phase::Asymmetric, port), dir);
    saw(
        "verifier SIGHUP into asymmetric seconds after transition",
        &line,
    );
    assert!(
        line.contains("refused") && line.contains("valid until"),
        "{line}"
    );
    let forced = config(Phase::Asymmetric, port).verifier("force_phase", true);
    let line = reload(&verifier, &forced, dir);
    assert!(line.contains("config reloaded"), "{line}");
    saw(
        "verifier SIGHUP into asymmetric with force_phase = true",
        &logged(&verifier, "though not ready", 0),
    );
    let m = migration(va);
    saw(
        "verifier GET /migration after the forced switch",
        m["reason"].as_str().unwrap_or(""),
    );
    assert_eq!(
        m["ready_for_asymmetric"], false,
        "the dashboard does not turn green"
    );
    assert!(
        m["reason"]
            .as_str()
            .is_some_and(|r| r.contains("too early")),
        "{m}"
    );
    assert_eq!(metric(va, "keyshift_ready_for_asymmetric", &[]), Some(0.0));
    assert_eq!(metric(va, "keyshift_phase_forced_total", &[]), Some(1.0));
    assert_eq!(verify(va, &rs).status, 200, "RS256 passes");

    // A straggler is attributable (finding 7): its client in the log and in /migration.
    let straggler = common::keyshift()
        .args(["token", "--client", "svc-a", "--config"])
        .arg(
            config(Phase::Dual, port)
                .issuer("key_dir", "elsewhere")
                .write_to(dir),
        )
        .output()
        .expect("token");
    config(Phase::Asymmetric, port).write_to(dir);
    let hs_late = String::from_utf8_lossy(&straggler.stdout).trim().to_owned();
    let from = verifier.log_len();
    assert_eq!(verify(va, &hs_late).status, 401);
    let line = logged(&verifier, "straggler", from);
    saw(
        "verifier log for an HS256 token refused in asymmetric",
        &line,
    );
    assert!(line.contains("svc-a"), "{line}");
    assert_eq!(migration(va)["stragglers"][0]["client"], "svc-a");
}

#[test]
fn a_legacy_verifier_is_quiet_about_an_empty_jwks_and_a_jwks_outage_is_not_an_attack() {
    let tmp = common::dir_with_secret();
    let dir = tmp.path();
    let port = unused_fixed_port();
    let path = config(Phase::Legacy, port).write_to(dir);
    let issuer = start("issuer", &path);
    let verifier = start("verifier", &path);
    // Finding 3: the issuer's JWKS is rightly empty in legacy.
    let line = logged(&verifier, "JWKS fetch failed", 0);
    saw("legacy verifier log, jwks_url set, issuer in legacy", &line);
    assert!(line.contains("nothing depends on it yet"), "{line}");
    assert!(!line.contains("cached keys keep serving"), "{line}");
    assert!(!line.contains("WARN"), "{line}");
    let hs = fetch_token(issuer.addr, "svc-a", "s3cret");
    assert_eq!(verify(verifier.addr, &hs).status, 200);
    drop(verifier);

    // Finding 6: a verifier in dual whose JWKS cannot be fetched answers RS256 with 503,
    // counted as keys_unavailable, not unknown_kid.
    let dead = unused_fixed_port();
    let outage = config(Phase::Dual, port)
        .verifier(
            "jwks_url",
            format!("http://127.0.0.1:{dead}/.well-known/jwks.json"),
        )
        .write_to(dir);
    // An RS256 token signed with the issuer's key (its legacy start made one).
    let rs_path = dir.join("rs.toml");
    std::fs::write(&rs_path, config(Phase::Transition, port).render()).expect("config");
    let verifier = start("verifier", &outage);
    let line = logged(&verifier, "JWKS fetch failed", 0);
    saw("dual verifier log, JWKS unreachable", &line);
    assert!(line.contains("no key is cached"), "{line}");
    let rs = common::keyshift()
        .args(["token", "--client", "svc-a", "--config"])
        .arg(&rs_path)
        .output()
        .expect("token");
    let rs = String::from_utf8_lossy(&rs.stdout).trim().to_owned();
    let resp = verify(verifier.addr, &rs);
    saw(
        "dual verifier, RS256 token, JWKS unreachable",
        &format!(
            "{} Retry-After {:?}",
            resp.status,
            resp.header("retry-after")
        ),
    );
    assert_eq!(resp.status, 503);
    let outcome = |o| {
        metric(
            verifier.addr,
            "keyshift_verify_total",
            &[("alg", "RS256"), ("outcome", o)],
        )
    };
    assert_eq!(outcome("keys_unavailable"), Some(1.0));
    assert_eq!(outcome("unknown_kid"), Some(0.0));
}

#[test]
fn an_accept_flag_is_documented_checked_ahead_and_never_strands_a_reload() {
    let tmp = common::dir_with_secret();
    let dir = tmp.path();
    let port = unused_fixed_port();
    let path = config(Phase::Transition, port).write_to(dir);
    common::generate_keys(&path);
    let issuer = start("issuer", &path);
    // Finding 5: config check with the flag says what a later phase will do.
    let out = keyshift()
        .args(["config", "check", "--accept", "hs256,rs256"])
        .arg(&path)
        .output()
        .expect("config check");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let warning = text
        .lines()
        .find(|l| l.contains("--accept"))
        .unwrap_or_else(|| panic!("no warning in {text}"));
    saw(
        "keyshift config check --accept hs256,rs256 (phase transition)",
        warning,
    );
    assert!(
        warning.contains("contradicts phase asymmetric"),
        "{warning}"
    );

    let mut command = keyshift();
    command
        .args(["verifier", "--accept", "hs256,rs256", "--config"])
        .arg(&path);
    let verifier = Service::start(command, Log::Capture).expect("verifier");
    let rs = fetch_token(issuer.addr, "svc-a", "s3cret");
    // Forced: this test is about the flag, not readiness.
    let forced = config(Phase::Asymmetric, port).verifier("force_phase", true);
    let line = reload(&verifier, &forced, dir);
    assert!(line.contains("config reloaded"), "{line}");
    saw(
        "verifier --accept hs256,rs256, SIGHUP into asymmetric",
        &logged(&verifier, "contradicts phase asymmetric", 0),
    );
    let m = migration(verifier.addr);
    assert_eq!(m["phase"], "asymmetric");
    assert_eq!(m["accepted_algorithms"], serde_json::json!(["RS256"]));
    assert_eq!(verify(verifier.addr, &rs).status, 200);
    // A start in asymmetric while the issuer says an HS256 token may live (its record
    // began in transition, 20 s ago at most) is refused.
    let log = start_refused(
        "verifier",
        &config(Phase::Asymmetric, port).write_to(dir),
        dir,
    );
    saw(
        "verifier started in asymmetric, issuer's HS256 tokens still valid",
        &log,
    );
    assert!(log.contains("refused: phase asymmetric"), "{log}");
    // At start the contract stands: a flag that contradicts the phase is refused.
    let mut command = keyshift();
    command
        .args(["verifier", "--accept", "hs256,rs256", "--config"])
        .arg(&path);
    let refused = Service::start(command, Log::File(dir.join("flag.log")));
    assert!(refused.is_err());
    let log = std::fs::read_to_string(dir.join("flag.log")).expect("log");
    saw("verifier --accept hs256,rs256 started in asymmetric", &log);
    assert!(
        log.contains("--accept") && log.contains("asymmetric"),
        "{log}"
    );
}
