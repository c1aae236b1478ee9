//! End to end: the real issuer and verifier binaries walk the migration
//! (dual → transition → asymmetric) by config edit + SIGHUP while a client
//! keeps minting and verifying tokens; not one request may fail. Tokens
//! live 2 s, so that the verifier is ready for asymmetric within seconds.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{fetch_token, http, start, token_alg};
use keyshift_core::{Alg, Phase};
use keyshift_testkit::eventually;
use nix::sys::signal::Signal;

/// The common config with 2 s tokens and a 1 s leeway.
fn write_config(
    dir: &std::path::Path,
    phase: Phase,
    jwks_of: Option<std::net::SocketAddr>,
) -> std::path::PathBuf {
    let cfg = common::config(phase, jwks_of).issuer("token_ttl", "2s");
    match jwks_of {
        Some(_) => cfg.verifier("leeway", "1s"),
        None => cfg,
    }
    .write_to(dir)
}

fn verify(verifier: std::net::SocketAddr, token: &str) -> common::HttpResponse {
    http(
        verifier,
        "GET",
        "/verify",
        &[("Authorization", &format!("Bearer {token}"))],
        b"",
    )
}

#[test]
fn phase_switches_by_sighup_fail_no_request() {
    let tmp = common::dir_with_secret();
    // The issuer first, on port 0: the verifier's jwks_url names the port it got.
    let config = write_config(tmp.path(), Phase::Dual, None);
    let issuer = start("issuer", &config);
    let ia = issuer.addr;
    write_config(tmp.path(), Phase::Dual, Some(ia));
    let verifier = start("verifier", &config);
    let va = verifier.addr;

    // A client that never stops: mint, verify, count.
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let worker = {
        let (stop, ok, failures) = (stop.clone(), ok.clone(), failures.clone());
        std::thread::spawn(move || {
            for _ in 0..100_000 {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let token = fetch_token(ia, "svc-a", "s3cret");
                let resp = verify(va, &token);
                if resp.status == 200 {
                    ok.fetch_add(1, Ordering::SeqCst);
                } else {
                    failures.lock().expect("lock").push(format!(
                        "{} {} {:?}",
                        token_alg(&token),
                        resp.status,
                        resp.header("www-authenticate")
                    ));
                }
            }
        })
    };
    let wait_ok = |n: u64| {
        let target = ok.load(Ordering::SeqCst) + n;
        assert!(
            eventually(Duration::from_secs(20), || ok.load(Ordering::SeqCst)
                >= target),
            "traffic stalled"
        );
    };

    wait_ok(20);
    for phase in [Phase::Transition, Phase::Asymmetric] {
        write_config(tmp.path(), phase, Some(ia));
        // Issuer first when it stops signing HS256; then the verifiers.
        issuer.signal(Signal::SIGHUP);
        assert!(
            eventually(Duration::from_secs(10), || token_alg(&fetch_token(
                ia, "svc-a", "s3cret"
            )) == Alg::Rs256),
            "issuer did not switch to RS256"
        );
        if phase == Phase::Asymmetric {
            // As the runbook says: only once the verifier is ready (the
            // issuer's last HS256 token, 2 s + leeway, has expired).
            assert!(
                eventually(Duration::from_secs(30), || {
                    http(va, "GET", "/migration", &[], b"").json()["ready_for_asymmetric"] == true
                }),
                "the verifier never became ready for asymmetric"
            );
        }
        verifier.signal(Signal::SIGHUP);
        assert!(
            eventually(Duration::from_secs(10), || {
                http(va, "GET", "/migration", &[], b"").json()["phase"] == phase.as_str()
            }),
            "verifier did not switch to {phase}"
        );
        wait_ok(20);
    }

    stop.store(true, Ordering::SeqCst);
    worker.join().expect("worker");
    let failures = failures.lock().expect("lock");
    assert!(failures.is_empty(), "failed requests: {failures:?}");

    // In phase asymmetric an HS256 token (minted offline with the old secret) is refused.
    let hs = common::keyshift()
        .args(["token", "--client", "svc-a", "--config"])
        .arg(write_config(tmp.path(), Phase::Dual, Some(ia)))
        .output()
        .expect("token");
    let hs_token = String::from_utf8_lossy(&hs.stdout).trim().to_owned();
    assert_eq!(token_alg(&hs_token), Alg::Hs256);
    let resp = verify(va, &hs_token);
    assert_eq!(resp.status, 401);

    let metrics = http(va, "GET", "/metrics", &[], b"").text();
    assert!(
        metrics.contains("keyshift_verify_total{alg=\"RS256\",outcome=\"accepted\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("keyshift_verify_total{alg=\"HS256\",outcome=\"accepted\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("keyshift_phase_info{phase=\"asymmetric\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("keyshift_ready_for_asymmetric 1"),
        "{metrics}"
    );

    // SIGHUP refetches the JWKS, and a bad config on reload keeps the running
    // one: the refetch after the failed reload proves the signal was handled.
    let fetches = || {
        http(va, "GET", "/keys", &[], b"").json()["fetches"]
            .as_u64()
            .unwrap_or(0)
    };
    let before = fetches();
    let logged = verifier.log_len();
    let config = write_config(tmp.path(), Phase::Asymmetric, Some(ia));
    std::fs::write(&config, "phase = \"sideways\"\n").expect("bad config");
    verifier.signal(Signal::SIGHUP);
    assert!(
        verifier
            .wait_for_log("config reload failed", logged, Duration::from_secs(10))
            .is_some(),
        "the bad config was not refused"
    );
    assert!(
        eventually(Duration::from_secs(10), || fetches() > before),
        "SIGHUP did not refetch the JWKS"
    );
    assert_eq!(
        http(va, "GET", "/migration", &[], b"").json()["phase"],
        "asymmetric"
    );
    let rs = fetch_token(ia, "svc-a", "s3cret");
    assert_eq!(
        verify(va, &rs).status,
        200,
        "the running config still serves"
    );

    // Phase asymmetric needs no secret: a verifier whose config still names a
    // destroyed secret file starts, serves RS256, and reports the leftover.
    write_config(tmp.path(), Phase::Asymmetric, Some(ia));
    std::fs::remove_file(tmp.path().join("hs256.secret")).expect("destroy secret");
    let fresh = start("verifier", &config);
    assert_eq!(verify(fresh.addr, &rs).status, 200);
    let metrics = http(fresh.addr, "GET", "/metrics", &[], b"").text();
    assert!(
        metrics.contains("keyshift_hs256_secret_configured 1"),
        "{metrics}"
    );
}
