//! The issuer's metrics, recorded by a `DebuggingRecorder` installed for
//! the test's thread only (the test runs its runtime on that thread).

mod common;

use std::future::Future;
use std::time::Duration;

use common::*;
use keyshift_core::Phase;
use keyshift_issuer::metrics::{NEXT_ROTATION, TOKEN_REQUESTS};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};

/// Runs `test` on a current-thread runtime with a fresh local recorder.
fn with_recorder<F: Future<Output = ()>>(test: impl FnOnce(Snapshotter) -> F) {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    metrics::with_local_recorder(&recorder, || rt.block_on(test(snapshotter)));
}

/// Counter increments since the last snapshot, by `outcome` label.
fn outcomes(s: &Snapshotter) -> Vec<(String, u64)> {
    let mut out: Vec<(String, u64)> = s
        .snapshot()
        .into_vec()
        .into_iter()
        .filter(|(k, ..)| k.key().name() == TOKEN_REQUESTS)
        .filter_map(|(k, _, _, v)| {
            let outcome = k
                .key()
                .labels()
                .find(|l| l.key() == "outcome")?
                .value()
                .to_owned();
            match v {
                DebugValue::Counter(n) if n > 0 => Some((outcome, n)),
                _ => None,
            }
        })
        .collect();
    out.sort();
    out
}

/// The gauge's value and help text.
fn gauge(s: &Snapshotter, name: &str) -> (Option<f64>, Option<String>) {
    s.snapshot()
        .into_vec()
        .into_iter()
        .find(|(k, ..)| k.key().name() == name)
        .map(|(_, _, help, v)| {
            let value = match v {
                DebugValue::Gauge(g) => Some(g.0),
                _ => None,
            };
            (value, help.map(|h| h.to_string()))
        })
        .unwrap_or((None, None))
}

#[test]
fn every_token_request_is_counted_under_its_outcome() {
    with_recorder(|snap| async move {
        let f = fixture(Phase::Dual).await;
        let one = |o: &str| vec![(o.to_owned(), 1)];

        f.token_post(GOOD).await;
        assert_eq!(outcomes(&snap), one("issued"));
        f.token_post("client_id=svc-a&client_secret=secret-a").await;
        assert_eq!(outcomes(&snap), one("invalid_request"));
        f.token_post(&format!("{GOOD}&scope=admin")).await;
        assert_eq!(outcomes(&snap), one("invalid_scope"));
        f.token_post("grant_type=password&client_id=svc-a&client_secret=secret-a")
            .await;
        assert_eq!(outcomes(&snap), one("unsupported_grant_type"));
        let bad = "grant_type=client_credentials&client_id=svc-a&client_secret=nope";
        for _ in 0..3 {
            f.token_post(bad).await;
        }
        assert_eq!(outcomes(&snap), vec![("invalid_client".to_owned(), 3)]);
        f.token_post(GOOD).await;
        assert_eq!(outcomes(&snap), one("rate_limited"));
        // 413 is a malformed request too (408 and busy: error.rs unit test).
        f.clock.advance(Duration::from_secs(61));
        f.token_post(&format!("{GOOD}&pad={}", "x".repeat(17 * 1024)))
            .await;
        assert_eq!(outcomes(&snap), one("invalid_request"));
    });
}

#[test]
fn next_rotation_gauge_has_help_and_shows_no_stale_date_when_rotation_is_off() {
    with_recorder(|snap| async move {
        keyshift_issuer::metrics::describe();
        let f = fixture(Phase::Transition).await;
        let (value, help) = gauge(&snap, NEXT_ROTATION);
        assert_eq!(value, Some((T0 + 30 * 86_400) as f64));
        assert!(help.is_some_and(|h| h.contains("+Inf")), "described");

        // rotate_every = "off": nothing scheduled, and the old date is gone.
        f.try_reload_with(Phase::Transition, |cfg| cfg.issuer("rotate_every", "off"))
            .await
            .expect("reload");
        assert_eq!(gauge(&snap, NEXT_ROTATION).0, Some(f64::INFINITY));

        // A rotation by hand is a schedule again: its real date shows.
        let next = f
            .key_store()
            .rotate(T0 + 10, &fixture_policy(), 2048, false)
            .expect("rotate");
        f.clock.set(Duration::from_secs(T0 + 100));
        assert!(f.issuer.maintain_keys().await.expect("tick"));
        assert_eq!(next.activate_at, Some(T0 + 910));
        assert_eq!(
            gauge(&snap, NEXT_ROTATION).0,
            Some((T0 + 100 + 900) as f64),
            "first served at T0+100: promoted 15 minutes later"
        );
    });
}
