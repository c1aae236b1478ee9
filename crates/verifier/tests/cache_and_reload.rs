//! The JWKS cache's edges (single flight, body cap, redirects, key fitness,
//! staleness, the background refresher), reload, the ops routes and the
//! per-decision metrics. JWKS from a test server; time from a manual clock.

mod common;

use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Waker};
use std::time::Duration;

use common::snap::*;
use common::*;
use http::StatusCode;
use keyshift_core::Phase;
use keyshift_testkit::eventually_async;
use keyshift_verifier::VerifyError;
use metrics_util::debugging::DebuggingRecorder;
use serde_json::json;

#[tokio::test]
async fn concurrent_requests_for_a_rotated_kid_share_one_fetch_and_all_pass() {
    let (a, b) = keys();
    let f = fixture(Phase::Dual, "").await;
    f.server.set(Mode::Ok {
        body: jwks_of(&[a, b]),
        max_age: Some(300),
    });
    let before = f.server.hits();
    // Each request is polled once, here, before the runtime runs anything
    // else (the JWKS server included): the first takes the single flight and
    // starts its fetch, which cannot finish yet; so every later one finds
    // the fetch in flight and must wait for it. None may be done.
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..50 {
        let verifier = f.verifier.clone();
        let mut c = claims();
        c["jti"] = json!(format!("j{i}"));
        let token = rs256(b, &c);
        let mut request = Box::pin(async move { verifier.verify(&token).await.map(|v| v.alg) });
        let first_poll = request
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()));
        assert!(
            first_poll.is_pending(),
            "request {i} did not wait for the fetch"
        );
        tasks.spawn(request);
    }
    let mut passed = 0;
    while let Some(result) = tasks.join_next().await {
        assert!(result.expect("task").is_ok(), "a waiter was refused");
        passed += 1;
    }
    assert_eq!(passed, 50);
    assert_eq!(f.server.hits() - before, 1, "one fetch for all waiters");
}

#[tokio::test]
async fn a_body_over_64_kib_is_a_failed_fetch_and_keys_stay() {
    let (a, b) = keys();
    let f = fixture(Phase::Dual, "").await;
    // A valid JWK Set with key b, padded past the cap with whitespace.
    let mut body = jwks_of(&[a, b]);
    body.insert_str(1, &" ".repeat(keyshift_verifier::jwks::MAX_JWKS_BYTES));
    f.server.set(Mode::Ok {
        body,
        max_age: Some(300),
    });
    let jwks = f.verifier.jwks().expect("jwks");
    assert_eq!(jwks.force_refresh().await.as_str(), "error");
    assert_eq!(f.check(&rs256(a, &claims())).await.0, StatusCode::OK);
    assert!(
        jwks.get(&b.kid).is_none(),
        "the oversized body was not used"
    );
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let (a, b) = keys();
    let f = fixture(Phase::Dual, "").await;
    let elsewhere = JwksServer::start(jwks_of(&[a, b])).await;
    f.server.set(Mode::Redirect(elsewhere.url()));
    let jwks = f.verifier.jwks().expect("jwks");
    assert_eq!(jwks.force_refresh().await.as_str(), "error");
    assert_eq!(elsewhere.hits(), 0, "the redirect target was never asked");
    assert!(jwks.status().last_error.unwrap_or_default().contains("302"));
}

#[tokio::test]
async fn keys_unfit_for_rs256_signatures_are_not_selectable() {
    let (a, b) = keys();
    for unfit in [
        json!({"use": "enc"}),
        json!({"key_ops": ["encrypt", "wrapKey"]}),
        json!({"alg": "RS384"}),
        json!({"alg": "PS256"}),
        json!({"kty": "EC"}),
    ] {
        let mut jwk = b.jwk();
        for (k, v) in unfit.as_object().expect("object") {
            jwk[k] = v.clone();
        }
        let body = json!({"keys": [a.jwk(), jwk]}).to_string();
        let f = fixture_with(Phase::Dual, "", JwksServer::start(body).await).await;
        let (s, c) = f.check(&rs256(b, &claims())).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{unfit}");
        assert!(c.contains("unknown key id"), "{unfit}: {c}");
        assert_eq!(f.check(&rs256(a, &claims())).await.0, StatusCode::OK);
    }
    // key_ops with "verify" among others is fit.
    let mut jwk = b.jwk();
    jwk["key_ops"] = json!(["verify", "sign"]);
    let body = json!({"keys": [jwk]}).to_string();
    let f = fixture_with(Phase::Dual, "", JwksServer::start(body).await).await;
    assert_eq!(f.check(&rs256(b, &claims())).await.0, StatusCode::OK);
}

#[tokio::test]
async fn token_cache_is_invalidated_by_key_set_and_accept_changes() {
    let (a, b) = keys();
    let f = fixture(Phase::Dual, "").await;
    let token = rs256(a, &claims());
    assert_eq!(f.check(&token).await.0, StatusCode::OK);
    // Key a leaves the JWKS: its cached verdict must not outlive it.
    f.server.set(Mode::Ok {
        body: jwks_of(&[b]),
        max_age: Some(300),
    });
    f.verifier.jwks().expect("jwks").force_refresh().await;
    let (s, c) = f.check(&token).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{c}");

    // An accept-only change (same phase) drops cached verdicts too.
    let hs = hs256(&claims());
    assert_eq!(f.check(&hs).await.0, StatusCode::OK);
    f.reload(Phase::Dual, &f.server.url(), "accept = [\"RS256\"]")
        .await
        .expect("reload");
    let (s, c) = f.check(&hs).await;
    assert!(
        s == StatusCode::UNAUTHORIZED && c.contains("algorithm not accepted"),
        "{c}"
    );
}

#[tokio::test]
async fn past_max_staleness_even_cached_rs256_tokens_get_503_with_retry_after() {
    let (a, _) = keys();
    let f = fixture(Phase::Dual, "").await;
    // Valid for the whole test: an hour, the longest the fixture accepts.
    let mut long = claims();
    long["exp"] = json!(NOW + 3600);
    let rs = rs256(a, &long);
    let hs = hs256(&long);
    assert_eq!(f.check(&rs).await.0, StatusCode::OK);
    assert_eq!(f.check(&hs).await.0, StatusCode::OK);
    f.server.stop().await;
    // Within the maximum staleness (1h) the cached keys serve.
    f.clock.advance(Duration::from_secs(3000));
    assert_eq!(f.check(&rs).await.0, StatusCode::OK);
    f.clock.advance(Duration::from_secs(601));
    let req = http::Request::get("/verify")
        .header("authorization", format!("Bearer {rs}"))
        .body(())
        .expect("req");
    let resp = f.service.handle(req).await;
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    let retry: u64 = resp.headers()["retry-after"]
        .to_str()
        .expect("text")
        .parse()
        .expect("seconds");
    assert!((1..=60).contains(&retry), "{retry}");
    // The shared secret does not go stale.
    assert_eq!(
        f.check(&hs256(&json!({
            "iss": ISS, "aud": AUD, "sub": "s", "iat": NOW + 3601, "exp": NOW + 4000
        })))
        .await
        .0,
        StatusCode::OK
    );
    assert!(!f.verifier.ready());
    let (s, _) = f.request(&[], "/readyz").await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn the_background_refresher_fetches_when_due() {
    let f = fixture(Phase::Dual, "").await;
    let fetches = f.fetches();
    // Not due yet (TTL 300 s, refresh at 80 %): a tick fetches nothing.
    f.clock.advance(Duration::from_secs(200));
    assert!(!f.verifier.refresh_tick().await);
    assert_eq!(f.fetches(), fetches, "fetched before the refresh was due");
    f.clock.advance(Duration::from_secs(41));
    assert!(f.verifier.refresh_tick().await, "due, not fetched");
    assert_eq!(f.fetches(), fetches + 1);
    // The background loop ticks on its own: due again, it fetches.
    tokio::spawn(f.verifier.clone().run_refresher());
    f.clock.advance(Duration::from_secs(241));
    assert!(
        eventually_async(Duration::from_secs(5), || f.fetches() > fetches + 1).await,
        "no background fetch"
    );
}

#[tokio::test]
async fn keys_and_readyz_routes_report_the_cache() {
    let f = fixture(Phase::Dual, "").await;
    let req = http::Request::get("/keys").body(()).expect("req");
    let resp = f.service.handle(req).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .expect("body")
        .to_bytes();
    let status: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(status["keys"][0]["kid"], "key-1");
    assert_eq!(status["keys"][0]["bits"], 2048);
    assert_eq!(status["usable"], true);
    assert_eq!(status["last_outcome"], "ok");
    let text = String::from_utf8_lossy(&body);
    for private in ["\"n\"", "\"d\"", "\"p\"", "\"q\""] {
        assert!(!text.contains(private), "{private} in /keys: {text}");
    }
    assert_eq!(f.request(&[], "/readyz").await.0, StatusCode::OK);
    assert_eq!(f.request(&[], "/healthz").await.0, StatusCode::OK);

    // Nothing fetched yet: not ready.
    let server = JwksServer::start(String::new()).await;
    server.set(Mode::Status(500));
    let g = fixture_with(Phase::Dual, "", server).await;
    assert_eq!(
        g.request(&[], "/readyz").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
}

#[tokio::test]
async fn reload_to_an_unusable_jwks_url_is_refused_and_keys_stay() {
    let (a, b) = keys();
    let f = fixture(Phase::Dual, "").await;
    let dead = JwksServer::start(String::new()).await;
    dead.set(Mode::Status(404));
    let err = f
        .reload(Phase::Transition, &dead.url(), "")
        .await
        .expect_err("refused");
    assert!(err.to_string().contains("verifier.jwks_url"), "{err}");
    assert_eq!(f.verifier.policy().phase, Phase::Dual, "nothing applied");
    assert_eq!(f.check(&rs256(a, &claims())).await.0, StatusCode::OK);

    // A good new URL replaces the keys, and is fetched before it serves.
    let other = JwksServer::start(jwks_of(&[b])).await;
    f.reload(Phase::Dual, &other.url(), "")
        .await
        .expect("reload");
    assert_eq!(f.check(&rs256(b, &claims())).await.0, StatusCode::OK);
    let (s, c) = f.check(&rs256(a, &claims())).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{c}");
}

#[tokio::test]
async fn reload_applies_cache_settings_and_token_cache_size() {
    let (a, b) = keys();
    let f = fixture(Phase::Dual, "").await;
    f.reload(
        Phase::Dual,
        &f.server.url(),
        "unknown_kid_cooldown = \"5m\"\ntoken_cache_size = 0",
    )
    .await
    .expect("reload");
    let jwks = f.verifier.jwks().expect("jwks");
    assert_eq!(jwks.settings().cooldown, Duration::from_secs(300));
    // The new cooldown governs: one unknown-kid refetch, then none for 5 min.
    let stranger = |kid: &str| rs256_with_kid(a, kid);
    let fetches = f.fetches();
    assert_eq!(f.check(&stranger("x1")).await.0, StatusCode::UNAUTHORIZED);
    f.server.set(Mode::Ok {
        body: jwks_of(&[a, b]),
        max_age: Some(300),
    });
    f.clock.advance(Duration::from_secs(60));
    assert_eq!(
        f.check(&rs256(b, &claims())).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(f.fetches(), fetches + 1);
    f.clock.advance(Duration::from_secs(241));
    assert_eq!(f.check(&rs256(b, &claims())).await.0, StatusCode::OK);
}

// === metrics ===

const VERIFY: &str = keyshift_verifier::metrics::VERIFY_TOTAL;
const KEY_CACHE: &str = keyshift_verifier::metrics::KEY_CACHE;
const TOKEN_CACHE: &str = keyshift_verifier::metrics::TOKEN_CACHE;

#[tokio::test]
async fn a_503_for_unavailable_keys_counts_as_keys_unavailable_not_unknown_kid() {
    let (a, _) = keys();
    let server = JwksServer::start(jwks_of(&[a])).await;
    server.set(Mode::Status(503));
    let (verifier, snapshotter) = metered(Phase::Dual, "", &server).await;
    let err = verifier
        .verify(&rs256(a, &claims()))
        .await
        .expect_err("no keys");
    assert_eq!(err, VerifyError::KeysUnavailable);
    let snap = snapshotter.snapshot().into_vec();
    let rs = |outcome| counter(&snap, VERIFY, &[("alg", "RS256"), ("outcome", outcome)]);
    assert_eq!(rs("keys_unavailable"), Some(1), "a JWKS outage is ours");
    assert_eq!(
        rs("unknown_kid"),
        Some(0),
        "and does not look like an attack"
    );
}

#[tokio::test]
async fn an_unknown_kid_refetch_counts_each_decision_once() {
    let (a, b) = keys();
    let server = JwksServer::start(jwks_of(&[a])).await;
    let (verifier, snapshotter) = metered(Phase::Dual, "", &server).await;
    snapshotter.snapshot();
    server.set(Mode::Ok {
        body: jwks_of(&[a, b]),
        max_age: Some(300),
    });
    verifier
        .verify(&rs256(b, &claims()))
        .await
        .expect("rotated key");
    let snap = snapshotter.snapshot().into_vec();
    assert_eq!(counter(&snap, KEY_CACHE, &[("result", "miss")]), Some(1));
    assert_eq!(counter(&snap, KEY_CACHE, &[("result", "hit")]), Some(0));
    assert_eq!(counter(&snap, TOKEN_CACHE, &[("result", "miss")]), Some(1));
    assert_eq!(
        counter(&snap, VERIFY, &[("alg", "RS256"), ("outcome", "accepted")]),
        Some(1)
    );
    assert_eq!(
        histogram_len(&snap, keyshift_verifier::metrics::VERIFY_DURATION, "RS256"),
        1
    );
    // The same token again: one token-cache hit, no key lookup.
    verifier.verify(&rs256(b, &claims())).await.expect("again");
    let snap = snapshotter.snapshot().into_vec();
    assert_eq!(counter(&snap, TOKEN_CACHE, &[("result", "hit")]), Some(1));
    assert_eq!(counter(&snap, KEY_CACHE, &[("result", "hit")]), Some(0));

    // No token: counted as missing, with no duration sample.
    verifier.record_missing();
    let snap = snapshotter.snapshot().into_vec();
    assert_eq!(
        counter(&snap, VERIFY, &[("alg", "other"), ("outcome", "missing")]),
        Some(1)
    );
    assert_eq!(
        histogram_len(&snap, keyshift_verifier::metrics::VERIFY_DURATION, "other"),
        0
    );
    // Two Authorization headers over the service: a 400, counted as malformed.
    let service = keyshift_verifier::VerifierService::new(Arc::new(keyshift_verifier::State {
        verifier: verifier.clone(),
        render_metrics: Arc::new(String::new),
    }));
    let req = http::Request::get("/verify")
        .header("authorization", "Bearer a.b.c")
        .header("authorization", "Bearer d.e.f")
        .body(())
        .expect("req");
    assert_eq!(service.handle(req).await.status(), StatusCode::BAD_REQUEST);
    let snap = snapshotter.snapshot().into_vec();
    assert_eq!(
        counter(&snap, VERIFY, &[("alg", "other"), ("outcome", "malformed")]),
        Some(1)
    );
}

#[tokio::test]
async fn the_token_cache_metric_exists_only_while_the_cache_is_on() {
    let (a, _) = keys();
    let server = JwksServer::start(jwks_of(&[a])).await;
    let (verifier, snapshotter) = metered(Phase::Dual, "token_cache_size = 0", &server).await;
    verifier.verify(&rs256(a, &claims())).await.expect("valid");
    let snap = snapshotter.snapshot().into_vec();
    assert_eq!(counter(&snap, TOKEN_CACHE, &[("result", "miss")]), None);
    assert_eq!(counter(&snap, TOKEN_CACHE, &[("result", "hit")]), None);
    assert_eq!(
        counter(&snap, VERIFY, &[("alg", "RS256"), ("outcome", "accepted")]),
        Some(1)
    );
}

#[tokio::test]
async fn a_secret_left_configured_in_asymmetric_is_reported_not_read() {
    let (a, _) = keys();
    let server = JwksServer::start(jwks_of(&[a])).await;
    // The file does not exist: in phase asymmetric it is never read.
    let (verifier, snapshotter) = metered(
        Phase::Asymmetric,
        "hs256_secret_file = \"/nonexistent/hs256.secret\"",
        &server,
    )
    .await;
    let snap = snapshotter.snapshot().into_vec();
    assert_eq!(
        gauge(&snap, keyshift_core::phase_metrics::SECRET_CONFIGURED),
        Some(1.0)
    );
    verifier
        .verify(&rs256(a, &claims()))
        .await
        .expect("RS256 serves");
    let (_, clean) = metered(Phase::Asymmetric, "", &server).await;
    let snap_clean = clean.snapshot().into_vec();
    assert_eq!(
        gauge(&snap_clean, keyshift_core::phase_metrics::SECRET_CONFIGURED),
        Some(0.0)
    );
}

#[tokio::test]
async fn readiness_gauges_follow_the_migration_report() {
    let (a, _) = keys();
    let server = JwksServer::start(jwks_of(&[a])).await;
    let (verifier, _) = metered(Phase::Transition, "", &server).await;
    // publish_gauges uses the macros: run it under a recorder we can read.
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || verifier.publish_gauges());
    let readiness = snapshotter.snapshot().into_vec();
    assert_eq!(
        gauge(&readiness, keyshift_verifier::metrics::READY_FOR_ASYMMETRIC),
        Some(0.0),
        "just entered transition: HS256 tokens minted before may live"
    );
    assert_eq!(
        gauge(&readiness, keyshift_verifier::metrics::HS256_VALID_UNTIL),
        Some((NOW + 3600 + 30) as f64)
    );
    let report = verifier.migration();
    assert!(!report.ready_for_asymmetric);
    assert_eq!(report.hs256_valid_until_unix, Some(NOW + 3630));
    assert!(matches!(
        verifier.verify("a.b").await,
        Err(VerifyError::Malformed(_))
    ));
}
