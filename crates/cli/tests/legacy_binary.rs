//! End to end with the real binary: a fleet adopted from a home-grown HS256
//! issuer walks all four phases by config edit + SIGHUP; the old issuer's
//! tokens (minted here by jsonwebtoken, not by keyshift) and keyshift's own,
//! shaped by `[issuer.legacy]`, pass wherever HS256 is accepted; a weak
//! legacy secret runs with its flag, a warning and a gauge; an old client
//! store is imported and authenticates.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use common::{config, fetch_token, http, start, token_alg};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use keyshift_core::{Alg, Phase};
use keyshift_testkit::eventually;
use nix::sys::signal::Signal;
use serde_json::json;

/// The shared secret every test config names (see `common::dir_with_secret`).
const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

const ISSUER_SHAPE: &str = r#"legacy = { issuer = "legacy-auth", typ = "JWT", kid = false, audience = "", claims = { tenant = "acme" } }"#;
const PROFILE: &str = r#"legacy = { issuers = ["legacy-auth"], audience_required = false, subject_claim = "user_id", scope_claim = "scp" }"#;

/// A token of the old issuer, as it minted them for years.
fn old_token(secret: &[u8]) -> String {
    let now = keyshift_core::clock::SystemClock;
    let now = keyshift_core::Clock::now_secs(&now);
    let claims = json!({"iss": "legacy-auth", "user_id": 4711, "scp": ["orders:read"], "iat": now, "exp": now + 600});
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret),
    )
    .expect("mint")
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

fn write(dir: &Path, phase: Phase, issuer: Option<SocketAddr>) -> std::path::PathBuf {
    let mut cfg = config(phase, issuer).issuer_lines(ISSUER_SHAPE);
    if issuer.is_some() {
        cfg = cfg.verifier_lines(PROFILE);
        if phase == Phase::Asymmetric {
            // The walk is compressed: HS256 tokens minted a moment ago are
            // still valid, so the verifier's readiness check would refuse
            // the switch (tested on its own in operator_walk.rs).
            cfg = cfg.verifier("force_phase", true);
        }
    }
    cfg.write_to(dir)
}

/// Reloads `service` and waits until `done` says the new config is live.
fn reload(service: &keyshift_testkit::Service, done: impl FnMut() -> bool, what: &str) {
    service.signal(Signal::SIGHUP);
    assert!(eventually(Duration::from_secs(10), done), "{what}");
}

#[test]
fn a_legacy_fleet_walks_all_four_phases_and_no_legitimate_token_is_refused() {
    let tmp = common::dir_with_secret();
    let path = write(tmp.path(), Phase::Legacy, None);
    let issuer = start("issuer", &path);
    let ia = issuer.addr;
    write(tmp.path(), Phase::Legacy, Some(ia));
    let verifier = start("verifier", &path);
    let va = verifier.addr;
    let in_phase = |addr, phase: Phase| {
        let gauge = format!("keyshift_phase_info{{phase=\"{phase}\"}} 1");
        http(addr, "GET", "/metrics", &[], b"")
            .text()
            .contains(&gauge)
    };

    let check = common::keyshift()
        .args(["config", "check"])
        .arg(&path)
        .output()
        .expect("config check");
    let printed = String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success(), "{printed}");
    assert!(
        printed.contains("[verifier.legacy]")
            && printed.contains("audience_required = false   # loosened")
            && printed.contains("[issuer.legacy]"),
        "{printed}"
    );

    for phase in Phase::ALL {
        if phase != Phase::Legacy {
            write(tmp.path(), phase, Some(ia));
            // As the runbook orders it: the issuer first, except into
            // asymmetric, where the verifiers stop accepting HS256 first.
            let order = if phase == Phase::Asymmetric {
                [&verifier, &issuer]
            } else {
                [&issuer, &verifier]
            };
            for service in order {
                let addr = service.addr;
                reload(
                    service,
                    || in_phase(addr, phase),
                    &format!("reload to {phase}"),
                );
            }
            if phase == Phase::Dual {
                assert!(
                    eventually(Duration::from_secs(10), || {
                        http(va, "GET", "/readyz", &[], b"").status == 200
                    }),
                    "the verifier fetched the JWKS"
                );
            }
        }
        let token = fetch_token(ia, "svc-a", "s3cret");
        let header = keyshift_testkit::jwt::header_json(&token).expect("header");
        if phase.signs() == Alg::Hs256 {
            assert_eq!(header, json!({"alg": "HS256", "typ": "JWT"}), "{phase}");
        } else {
            assert_eq!(header["typ"], "at+jwt", "{phase}: RFC 9068 again");
        }
        let resp = verify(va, &token);
        assert_eq!(resp.status, 200, "{phase}: keyshift's token: {resp:?}");
        let resp = verify(va, &old_token(SECRET));
        if phase.accepts(Alg::Hs256) {
            assert_eq!(
                resp.status, 200,
                "{phase}: the old issuer's token: {resp:?}"
            );
            assert_eq!(resp.header("x-auth-subject"), Some("4711"));
            assert_eq!(resp.header("x-auth-scope"), Some("orders:read"));
        } else {
            assert_eq!(resp.status, 401, "{phase}: HS256 is over");
        }
    }
    let metrics = http(va, "GET", "/metrics", &[], b"").text();
    // The old token in three phases; keyshift's legacy-shaped ones (another
    // iss, no aud) in two.
    for (loosening, n) in [
        ("issuers", 5),
        ("audience_required", 5),
        ("subject_claim", 3),
        ("scope_claim", 3),
        ("secret_files", 0),
    ] {
        let series = format!("keyshift_verify_legacy_total{{loosening=\"{loosening}\"}} {n}");
        assert!(metrics.contains(&series), "{series} in\n{metrics}");
    }
    let report = http(va, "GET", "/migration", &[], b"").json();
    assert!(report["legacy_profile"].is_null(), "ignored in asymmetric");
    assert!(
        verifier
            .wait_for_log(
                "verifier.legacy is ignored in phase asymmetric",
                0,
                Duration::from_secs(5)
            )
            .is_some(),
        "the warning of the ignored table"
    );
}

#[test]
fn a_weak_legacy_secret_runs_only_with_its_flag_warned_about_at_start_and_every_reload() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let weak = b"24-bytes-of-old-secret!!";
    std::fs::write(tmp.path().join("hs256.secret"), weak).expect("secret");
    let path = config(Phase::Legacy, None).write_to(tmp.path());
    let refused = common::keyshift()
        .args(["issuer", "--config"])
        .arg(&path)
        .output()
        .expect("issuer");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("issuer.hs256_secret_file") && stderr.contains("allow_weak_hs256_secret"),
        "{stderr}"
    );

    let flagged = |issuer: Option<SocketAddr>| {
        config(Phase::Legacy, issuer)
            .top_level("allow_weak_hs256_secret", true)
            .write_to(tmp.path())
    };
    flagged(None);
    let issuer = start("issuer", &path);
    flagged(Some(issuer.addr));
    let verifier = start("verifier", &path);
    for service in [&issuer, &verifier] {
        let warned = service.wait_for_log("shorter than 32 bytes", 0, Duration::from_secs(5));
        let first = warned.expect("warned at start");
        let metrics = http(service.addr, "GET", "/metrics", &[], b"").text();
        assert!(
            metrics.contains("keyshift_hs256_secret_weak 1"),
            "{metrics}"
        );
        service.signal(Signal::SIGHUP);
        assert!(
            service
                .wait_for_log("shorter than 32 bytes", first + 1, Duration::from_secs(10))
                .is_some(),
            "warned again on reload"
        );
    }
    let token = fetch_token(issuer.addr, "svc-a", "s3cret");
    assert_eq!(verify(verifier.addr, &token).status, 200);
    assert_eq!(
        verify(verifier.addr, &old_token(weak)).status,
        401,
        "no profile: wrong iss"
    );
}

#[test]
fn an_old_client_store_is_imported_and_its_bcrypt_client_authenticates() {
    let tmp = common::dir_with_secret();
    let bcrypt = bcrypt::hash_with_salt(b"old-client-secret", 4, *b"0123456789abcdef")
        .expect("bcrypt")
        .format_for_version(bcrypt::Version::TwoY);
    let export = tmp.path().join("clients.csv");
    std::fs::write(
        &export,
        format!("id,secret_hash,scopes\nbilling,{bcrypt},\"read write\"\n"),
    )
    .expect("export");
    let out = common::keyshift()
        .args(["clients", "import", "--from"])
        .arg(&export)
        .output()
        .expect("import");
    let tables = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        tables.contains("[[issuer.clients]]\nid = \"billing\""),
        "{tables}"
    );

    let path = config(Phase::Dual, None).write_to(tmp.path());
    let mut text = std::fs::read_to_string(&path).expect("config");
    text.push_str(&tables);
    std::fs::write(&path, text).expect("config");
    let issuer = start("issuer", &path);
    let token = fetch_token(issuer.addr, "billing", "old-client-secret");
    assert_eq!(token_alg(&token), Alg::Hs256);

    std::fs::write(
        &export,
        "id,secret_hash,scopes\nbilling,old-client-secret,read\n",
    )
    .expect("export");
    let out = common::keyshift()
        .args(["clients", "import", "--from"])
        .arg(&export)
        .output()
        .expect("import");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "nothing printed");
    assert!(
        stderr.contains("line 2 (client `billing`)")
            && stderr.contains("plain-text secrets are refused"),
        "{stderr}"
    );
}
