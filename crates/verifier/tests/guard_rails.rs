//! A switch into phase `asymmetric` that would refuse valid HS256 tokens is
//! refused (with the way out in the message) unless `force_phase`; after a
//! forced one, readiness stays false and names the fault; the issuer's
//! `/migration` decides where it answers, and never blocks a start where it
//! does not; stragglers are attributable.

mod common;

use std::time::Duration;

use common::*;
use http::StatusCode;
use keyshift_core::Phase;
use keyshift_verifier::BuildError;

/// `GET /migration` of the fixture's service.
async fn migration(f: &Fixture) -> serde_json::Value {
    let resp = f
        .service
        .handle(http::Request::get("/migration").body(()).expect("request"))
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .expect("body")
        .to_bytes();
    serde_json::from_slice(&body).expect("json")
}

#[tokio::test]
async fn a_reload_into_asymmetric_while_the_issuer_signs_hs256_is_refused() {
    let f = fixture(Phase::Dual, "").await;
    f.server.set_migration(Phase::Dual, Some(NOW + 900));
    let hs = hs256(&claims());
    assert_eq!(f.check(&hs).await.0, StatusCode::OK);

    let err = f
        .reload(Phase::Asymmetric, &f.server.url(), "")
        .await
        .expect_err("refused");
    let msg = err.to_string();
    assert!(matches!(err, BuildError::NotReady { .. }), "{msg}");
    assert!(
        msg.contains("the issuer (phase dual) still signs HS256"),
        "{msg}"
    );
    assert!(msg.contains("force_phase = true"), "the way out: {msg}");

    // Nothing changed: the legitimate HS256 token still passes.
    assert_eq!(f.check(&hs).await.0, StatusCode::OK);
    let m = migration(&f).await;
    assert_eq!(m["phase"], "dual");
    assert_eq!(m["issuer"]["phase"], "dual", "whose phase: the issuer's");
    assert_eq!(m["issuer"]["signs"], "HS256");
    assert_eq!(m["ready_for_asymmetric"], false);
    assert_eq!(m["readiness_basis"], "issuer_and_verifier");
}

#[tokio::test]
async fn a_forced_premature_switch_stays_not_ready_and_names_the_stragglers() {
    let f = fixture(Phase::Transition, "").await;
    f.server.set_migration(Phase::Transition, Some(NOW + 7));
    f.reload(Phase::Asymmetric, &f.server.url(), "force_phase = true")
        .await
        .expect("forced");
    let hs = hs256(&claims());
    let (status, challenge) = f.check(&hs).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{challenge}");

    let m = migration(&f).await;
    assert_eq!(m["phase"], "asymmetric");
    assert_eq!(m["ready_for_asymmetric"], false, "the dashboard stays red");
    let reason = m["reason"].as_str().expect("reason");
    assert!(
        reason.starts_with("phase asymmetric was entered too early"),
        "{reason}"
    );
    assert!(reason.contains("the issuer's last HS256 token"), "{reason}");
    assert_eq!(m["forced"]["at_unix"], NOW);
    assert_eq!(m["stragglers"][0]["client"], "svc-a");
    assert_eq!(m["stragglers"][0]["alg"], "HS256");
    assert_eq!(m["stragglers"][0]["count"], 1);

    // Once the issuer's last HS256 token (and the leeway) has passed: ready.
    f.clock.advance(Duration::from_secs(7 + 30));
    let m = migration(&f).await;
    assert_eq!(m["ready_for_asymmetric"], true, "{}", m["reason"]);
}

#[tokio::test]
async fn the_issuers_answer_decides_and_the_reason_says_until_when() {
    let f = fixture(Phase::Transition, "").await;
    f.server.set_migration(Phase::Transition, Some(NOW + 100));
    let err = f
        .reload(Phase::Asymmetric, &f.server.url(), "")
        .await
        .expect_err("refused");
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("valid until {} (130 more seconds)", NOW + 130)),
        "{msg}"
    );
    // A legitimate token is accepted the whole time.
    assert_eq!(f.check(&hs256(&claims())).await.0, StatusCode::OK);
    // The token just accepted lives longer than the issuer's record says
    // (minted elsewhere with the secret): this verifier's own view counts too.
    f.clock.advance(Duration::from_secs(130));
    let err = f
        .reload(Phase::Asymmetric, &f.server.url(), "")
        .await
        .expect_err("still refused");
    assert!(err.to_string().contains("this verifier accepted"), "{err}");
    f.clock.advance(Duration::from_secs(600 + 30 - 130));
    f.reload(Phase::Asymmetric, &f.server.url(), "")
        .await
        .expect("ready: accepted");
    let m = migration(&f).await;
    assert_eq!(m["ready_for_asymmetric"], true, "{}", m["reason"]);
    assert_eq!(m["forced"], serde_json::Value::Null);
}

#[tokio::test]
async fn without_the_issuers_answer_the_verifier_waits_for_max_token_lifetime() {
    // The fixture's server answers /migration with 404: a third-party issuer.
    let f = fixture(Phase::Transition, "").await;
    let err = f
        .reload(Phase::Asymmetric, &f.server.url(), "")
        .await
        .expect_err("refused");
    assert!(err.to_string().contains("minted before"), "{err}");
    let m = migration(&f).await;
    assert_eq!(m["readiness_basis"], "verifier_only");
    assert!(
        m["issuer"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("404")),
        "{m}"
    );
    // max_token_lifetime (1h in the fixture) plus leeway after entering transition.
    f.clock.advance(Duration::from_secs(3600 + 30));
    f.reload(Phase::Asymmetric, &f.server.url(), "")
        .await
        .expect("ready");
}

#[tokio::test]
async fn a_start_in_asymmetric_is_refused_only_by_an_issuer_that_says_hs256_lives() {
    let (a, _) = keys();
    // No /migration at all: the start goes ahead.
    let f = fixture(Phase::Asymmetric, "").await;
    f.verifier
        .check_start(false)
        .await
        .expect("no answer, no block");
    assert_eq!(f.check(&rs256(a, &claims())).await.0, StatusCode::OK);

    // An issuer whose last HS256 token still lives: refused, unless forced.
    f.server.set_migration(Phase::Transition, Some(NOW + 300));
    let err = f.verifier.check_start(false).await.expect_err("refused");
    assert!(err.to_string().contains("330 more seconds"), "{err}");
    f.verifier.check_start(true).await.expect("forced");
    assert_eq!(migration(&f).await["forced"]["at_unix"], NOW);

    // An issuer done with HS256: fine.
    f.server.set_migration(Phase::Asymmetric, Some(NOW - 100));
    f.clock.advance(Duration::from_secs(1));
    f.verifier.check_start(false).await.expect("ready");
}

#[tokio::test]
async fn version_names_the_verifier_and_its_build() {
    let f = fixture(Phase::Dual, "").await;
    let resp = f
        .service
        .handle(http::Request::get("/version").body(()).expect("request"))
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .expect("body")
        .to_bytes();
    let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(v["service"], "verifier");
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
}
