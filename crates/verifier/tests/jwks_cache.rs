//! JWKS cache behaviour, driven by a manual clock and a JWKS server the test
//! controls: TTL and clamping, refresh-ahead, unknown-kid floods, outages,
//! rotation, and token-cache invalidation.

mod common;

use std::time::Duration;

use common::*;
use http::StatusCode;
use keyshift_core::Phase;

#[tokio::test]
async fn ttl_comes_from_max_age_clamped_and_refreshes_ahead() {
    let (a, _) = keys();
    let server = JwksServer::start(jwks_of(&[a])).await;
    server.set(Mode::Ok {
        body: jwks_of(&[a]),
        max_age: Some(1800),
    });
    let f = fixture_with(Phase::Dual, "", server).await;
    let jwks = f.verifier.jwks().expect("jwks");
    assert_eq!(jwks.status().ttl_seconds, 1800);
    // Refreshed at 80 % of the TTL, before the keys expire.
    f.clock.advance(Duration::from_secs(1439));
    assert!(!jwks.refresh_if_due().await);
    f.clock.advance(Duration::from_secs(1));
    assert!(jwks.refresh_if_due().await);

    // A TTL longer than the maximum staleness (1h here) is refreshed at half
    // of the staleness at the latest: the keys never reach the 503 point.
    f.server.set(Mode::Ok {
        body: jwks_of(&[a]),
        max_age: Some(86_400),
    });
    jwks.force_refresh().await;
    assert_eq!(jwks.status().ttl_seconds, 86_400);
    f.clock.advance(Duration::from_secs(1799));
    assert!(!jwks.refresh_if_due().await);
    f.clock.advance(Duration::from_secs(1));
    assert!(jwks.refresh_if_due().await);
    assert!(jwks.usable());

    // Below the minimum (5m) and above the maximum (24h) the bounds win.
    f.server.set(Mode::Ok {
        body: jwks_of(&[a]),
        max_age: Some(10),
    });
    jwks.force_refresh().await;
    assert_eq!(jwks.status().ttl_seconds, 300);
    f.server.set(Mode::Ok {
        body: jwks_of(&[a]),
        max_age: Some(10_000_000),
    });
    jwks.force_refresh().await;
    assert_eq!(jwks.status().ttl_seconds, 86_400);
    f.server.set(Mode::Ok {
        body: jwks_of(&[a]),
        max_age: None,
    });
    jwks.force_refresh().await;
    assert_eq!(jwks.status().ttl_seconds, 300, "no max-age: the minimum");
}

/// 200 concurrent requests with random kids, each refused as unknown;
/// returns the JWKS fetches they caused.
async fn random_kid_burst(f: &Fixture, key: &'static TestKey) -> usize {
    let before = f.server.hits();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..200 {
        let verifier = f.verifier.clone();
        let token = rs256_with_kid(key, &format!("random-{i}"));
        tasks.spawn(async move { verifier.verify(&token).await.err() });
    }
    while let Some(result) = tasks.join_next().await {
        assert_eq!(
            result.expect("task"),
            Some(keyshift_verifier::VerifyError::UnknownKid)
        );
    }
    f.server.hits() - before
}

#[tokio::test]
async fn a_burst_of_random_kids_costs_one_fetch_per_cooldown() {
    let f = fixture(Phase::Dual, "").await;
    let (a, _) = keys();
    assert_eq!(random_kid_burst(&f, a).await, 1);
    // After the cooldown the same flood costs one fetch again, and within
    // the next cooldown none.
    f.clock.advance(Duration::from_secs(31));
    assert_eq!(random_kid_burst(&f, a).await, 1);
    f.clock.advance(Duration::from_secs(20));
    assert_eq!(random_kid_burst(&f, a).await, 0);
}

#[tokio::test]
async fn a_rotated_key_is_picked_up_on_first_sight() {
    let (a, b) = keys();
    let f = fixture(Phase::Dual, "").await;
    // A scheduled refresh just happened: the cooldown counts from unknown-kid refetches only.
    f.verifier.jwks().expect("jwks").force_refresh().await;
    f.server.set(Mode::Ok {
        body: jwks_of(&[b, a]),
        max_age: Some(300),
    });
    assert_eq!(f.check(&rs256(b, &claims())).await.0, StatusCode::OK);
    assert_eq!(f.check(&rs256(a, &claims())).await.0, StatusCode::OK);
}

#[tokio::test]
async fn unknown_kid_refetch_is_limited_by_the_cooldown() {
    let (a, b) = keys();
    let f = fixture(Phase::Dual, "").await;
    let fetches = f.fetches();
    let stranger = |kid: &str| rs256_with_kid(a, kid);
    assert_eq!(f.check(&stranger("x1")).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(f.fetches(), fetches + 1);
    // Within 30 s, a new unknown kid does not refetch, even if the key now exists.
    f.server.set(Mode::Ok {
        body: jwks_of(&[a, b]),
        max_age: Some(300),
    });
    f.clock.advance(Duration::from_secs(29));
    assert_eq!(
        f.check(&rs256(b, &claims())).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(f.fetches(), fetches + 1);
    // Right after the cooldown it does: a kid first seen during the cooldown
    // is remembered only until the cooldown ends, not for the negative TTL.
    f.clock.advance(Duration::from_secs(2));
    assert_eq!(f.check(&rs256(b, &claims())).await.0, StatusCode::OK);
    assert_eq!(f.fetches(), fetches + 2);
}

#[tokio::test]
async fn outages_keep_serving_cached_keys_until_max_staleness_then_503() {
    let (a, _) = keys();
    let token = rs256(a, &claims());
    let outages = [
        Mode::Status(500),
        Mode::Ok {
            body: "<html>garbage</html>".into(),
            max_age: Some(300),
        },
        Mode::Ok {
            body: r#"{"keys":[]}"#.into(),
            max_age: Some(300),
        },
        Mode::Slow(Duration::from_secs(3600)),
    ];
    for outage in outages {
        let f = fixture(Phase::Dual, "").await;
        let jwks = f.verifier.jwks().expect("jwks");
        f.server.set(outage.clone());
        assert_eq!(jwks.force_refresh().await.as_str(), "error", "{outage:?}");
        assert_eq!(
            f.check(&token).await.0,
            StatusCode::OK,
            "{outage:?}: stale keys serve"
        );
        // HS256 is untouched by a JWKS outage.
        f.clock.advance(Duration::from_secs(3601));
        assert_eq!(
            f.check(&hs256(&serde_json::json!({
                "iss": ISS, "aud": AUD, "sub": "s", "exp": NOW + 4000, "iat": NOW + 3601
            })))
            .await
            .0,
            StatusCode::OK
        );
        let (s, c) = f
            .check(&rs256(
                a,
                &serde_json::json!({
                    "iss": ISS, "aud": AUD, "sub": "s", "exp": NOW + 4000, "iat": NOW + 3601
                }),
            ))
            .await;
        assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{outage:?}: {c}");
        assert!(!f.verifier.ready());
    }
    // Connection refused.
    let f = fixture(Phase::Dual, "").await;
    f.server.stop().await;
    assert_eq!(
        f.verifier
            .jwks()
            .expect("jwks")
            .force_refresh()
            .await
            .as_str(),
        "error"
    );
    assert_eq!(f.check(&token).await.0, StatusCode::OK);
}

#[tokio::test]
async fn nothing_fetched_yet_is_503_for_rs256_only() {
    let (a, _) = keys();
    let server = JwksServer::start(jwks_of(&[a])).await;
    server.set(Mode::Status(503));
    let f = fixture_with(Phase::Dual, "", server).await;
    let req = http::Request::get("/verify")
        .header("authorization", format!("Bearer {}", rs256(a, &claims())))
        .body(())
        .expect("req");
    let resp = f.service.handle(req).await;
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(resp.headers().contains_key("retry-after"));
    assert_eq!(f.check(&hs256(&claims())).await.0, StatusCode::OK);
}

#[tokio::test]
async fn token_cache_is_invalidated_by_a_phase_change() {
    let f = fixture(Phase::Transition, "").await;
    let token = hs256(&claims());
    assert_eq!(f.check(&token).await.0, StatusCode::OK);
    assert_eq!(
        f.check(&token).await.0,
        StatusCode::OK,
        "served from the token cache"
    );
    // Forced: the HS256 token just accepted is still valid.
    let cfg = config(Phase::Asymmetric, &f.server.url(), "force_phase = true");
    f.verifier
        .reload(Phase::Asymmetric, cfg.require_verifier().expect("v"), None)
        .await
        .expect("reload");
    let (s, c) = f.check(&token).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{c}");
}

#[tokio::test]
async fn cached_tokens_still_expire() {
    let f = fixture(Phase::Dual, "").await;
    let token = rs256(&keys().0, &claims());
    assert_eq!(f.check(&token).await.0, StatusCode::OK);
    f.clock.advance(Duration::from_secs(600 + 30));
    assert_eq!(f.check(&token).await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn readiness_and_migration_report() {
    let f = fixture(Phase::Transition, "").await;
    assert!(f.verifier.ready());
    assert_eq!(f.check(&hs256(&claims())).await.0, StatusCode::OK);
    let report = f.verifier.migration();
    assert_eq!(report.counts.hs256.accepted, 1);
    assert!(!report.ready_for_asymmetric, "{}", report.reason);
    assert_eq!(report.latest_hs256_exp_unix, Some(NOW + 600));
    // The token seen has expired, but one minted before this verifier started
    // in phase transition may live max_token_lifetime (1h) + leeway (30s).
    f.clock.advance(Duration::from_secs(631));
    let report = f.verifier.migration();
    assert!(!report.ready_for_asymmetric, "{}", report.reason);
    assert_eq!(report.hs256_valid_until_unix, Some(NOW + 3630));
    f.clock.advance(Duration::from_secs(3630 - 631));
    assert!(f.verifier.migration().ready_for_asymmetric);
}

/// Tokio's clock is paused: the hanging JWKS server and the fetch timeout
/// pass without real waiting, and `Instant` shows how long a request waited.
#[tokio::test(start_paused = true)]
async fn a_request_waits_for_a_hanging_jwks_only_the_request_wait_then_gets_503() {
    let server = JwksServer::start(String::new()).await;
    server.set(Mode::Slow(Duration::from_secs(3_600)));
    // Cold start: the first fetch hangs until the 5 s fetch timeout.
    let f = fixture_with(Phase::Dual, "", server).await;
    let (a, _) = keys();
    let started = tokio::time::Instant::now();
    let (s, c) = f.check(&rs256(a, &claims())).await;
    let waited = started.elapsed();
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{c}");
    assert!(
        waited >= Duration::from_secs(1) && waited < Duration::from_secs(2),
        "answered after the 1 s request wait, not the 5 s fetch timeout: {waited:?}"
    );
    // Meanwhile the refetch goes on; a second request joins it (no new
    // fetch), and also waits no longer than the request wait.
    let fetches = f.fetches();
    let started = tokio::time::Instant::now();
    let (s, _) = f.check(&rs256(a, &claims())).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    assert!(started.elapsed() <= Duration::from_secs(1));
    assert_eq!(f.fetches(), fetches, "joined the refetch in flight");
    // HS256 needs no key set: answered at once.
    let started = tokio::time::Instant::now();
    assert_eq!(f.check(&hs256(&claims())).await.0, StatusCode::OK);
    assert_eq!(started.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn a_slow_but_finishing_refetch_within_the_wait_serves_the_new_key() {
    let (a, b) = keys();
    let server = JwksServer::start(jwks_of(&[a])).await;
    let f = fixture_with(Phase::Dual, "", server).await;
    // The issuer rotated: the refetch for b's kid takes 500 ms (< 1 s wait).
    f.server.set(Mode::Delayed {
        delay: Duration::from_millis(500),
        body: jwks_of(&[a, b]),
    });
    let (s, c) = f.check(&rs256(b, &claims())).await;
    assert_eq!(s, StatusCode::OK, "{c}");
}
