//! The issuer as the authority on HS256's end (`GET /migration`, its record
//! kept across restarts), and its refusal to make a key directory for a
//! phase that signs RS256 (a mistyped `key_dir` would orphan every token).

mod common;

use std::time::Duration;

use common::{fixture, get, verify_independently, Fixture, GOOD, T0};
use http::StatusCode;
use keyshift_core::{Alg, Phase};
use keyshift_issuer::keystore::KeyStoreError;
use keyshift_issuer::StartError;
use serde_json::Value;

async fn migration(f: &Fixture) -> Value {
    let (s, h, b) = f.send(get("/migration")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h["cache-control"], "no-store");
    serde_json::from_slice(&b).expect("json")
}

#[tokio::test]
async fn migration_reports_the_last_hs256_token_and_keeps_it_across_a_restart() {
    let f = fixture(Phase::Dual).await;
    let m = migration(&f).await;
    assert_eq!(m["service"], "issuer");
    assert_eq!(m["phase"], "dual");
    assert_eq!(m["signs"], "HS256");
    assert_eq!(
        m["hs256_valid_until_unix"],
        Value::Null,
        "nothing minted yet"
    );
    assert_eq!(m["tracked_since_unix"], T0);

    f.clock.advance(Duration::from_secs(5));
    let (s, _, body) = f.token_post(GOOD).await;
    assert_eq!(s, StatusCode::OK);
    let claims = verify_independently(&f, body["access_token"].as_str().expect("token")).await;
    let m = migration(&f).await;
    assert_eq!(m["hs256_last_issued_unix"], claims.iat);
    // Recorded ahead of minting: the exp plus at most a minute.
    assert_eq!(m["hs256_valid_until_unix"], claims.exp + 60);

    f.reload(Phase::Transition).await;
    let m = migration(&f).await;
    assert_eq!(
        (m["phase"].as_str(), m["signs"].as_str()),
        (Some("transition"), Some("RS256"))
    );
    assert_eq!(m["hs256_valid_until_unix"], claims.exp + 60);
    assert_eq!(f.signing_kid().await, f.active_kid());

    // A restart in transition still knows the HS256 token minted in dual.
    let f = f.restart().await;
    let m = migration(&f).await;
    assert_eq!(m["hs256_valid_until_unix"], claims.exp + 60);
    assert_eq!(m["hs256_last_issued_unix"], claims.iat);
}

#[tokio::test]
async fn version_names_the_issuer_and_its_build() {
    let f = fixture(Phase::Dual).await;
    let (s, _, b) = f.send(get("/version")).await;
    assert_eq!(s, StatusCode::OK);
    let v: Value = serde_json::from_slice(&b).expect("json");
    assert_eq!(v["service"], "issuer");
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    assert!(v["git_sha"].as_str().is_some_and(|s| !s.is_empty()), "{v}");
}

#[tokio::test]
async fn a_reload_into_transition_with_a_mistyped_key_dir_is_refused_and_creates_nothing() {
    let f = fixture(Phase::Dual).await;
    let kid = f.active_kid();
    let typo = f.dir.path().join("kyes");
    let err = f
        .try_reload_with(Phase::Transition, |cfg| {
            cfg.issuer("key_dir", typo.display().to_string())
        })
        .await
        .expect_err("refused");
    assert!(
        matches!(
            err,
            StartError::KeyDirRefused {
                phase: Phase::Transition,
                source: KeyStoreError::NoDirectory { .. }
            }
        ),
        "{err}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("issuer.key_dir") && msg.contains("kyes"),
        "{msg}"
    );
    assert!(
        msg.contains("unknown key id"),
        "says what it prevents: {msg}"
    );
    assert!(!typo.exists(), "nothing created at the typo");

    // The running config stays (dual, HS256); the right key_dir goes through.
    assert_eq!(
        jsonwebtoken::decode_header(
            f.token_post(GOOD).await.2["access_token"]
                .as_str()
                .expect("t")
        )
        .expect("header")
        .alg,
        jsonwebtoken::Algorithm::HS256
    );
    f.reload(Phase::Transition).await;
    assert_eq!(f.signing_kid().await, kid);
}

#[tokio::test]
async fn an_empty_key_dir_is_refused_in_transition_but_gets_its_first_key_in_dual() {
    let f = fixture(Phase::Dual).await;
    let empty = f.dir.path().join("empty");
    std::fs::create_dir(&empty).expect("mkdir");
    let err = f
        .try_reload_with(Phase::Transition, |cfg| {
            cfg.issuer("key_dir", empty.display().to_string())
        })
        .await
        .expect_err("refused");
    assert!(
        matches!(
            err,
            StartError::KeyDirRefused {
                source: KeyStoreError::Empty { .. },
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        std::fs::read_dir(&empty).expect("ls").count(),
        0,
        "not even keys.lock"
    );

    // In dual a new key directory is legitimate: no RS256 token exists yet.
    let new = f.dir.path().join("new-keys");
    f.try_reload_with(Phase::Dual, |cfg| {
        cfg.issuer("key_dir", new.display().to_string())
    })
    .await
    .expect("dual makes its key directory");
    assert!(new.join("manifest.json").exists());
    // ... the last folder only.
    let deep = f.dir.path().join("no/such/keys");
    let err = f
        .try_reload_with(Phase::Dual, |cfg| {
            cfg.issuer("key_dir", deep.display().to_string())
        })
        .await
        .expect_err("parent missing");
    assert!(err.to_string().contains("its parent"), "{err}");
    assert!(!f.dir.path().join("no").exists());
    let m = migration(&f).await;
    assert_eq!(m["signs"], Alg::Hs256.as_str());
}
