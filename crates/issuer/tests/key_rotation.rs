//! Key rotation and phase changes as the running issuer sees them: keys are
//! served before they sign, and stay served until their last token expired,
//! driven by a clock the test moves.

mod common;

use std::time::Duration;

use common::*;
use keyshift_core::Phase;
use keyshift_issuer::keystore::KeyState;
use keyshift_issuer::StartError;

#[tokio::test]
async fn restart_keeps_keys_and_old_tokens_verify() {
    let f = fixture(Phase::Transition).await;
    let (_, _, body) = f.token_post(GOOD).await;
    let token = body["access_token"].as_str().expect("token").to_owned();
    let before = f.jwks().await;
    // A second issuer on the same directory, as after a restart.
    let g = f.restart().await;
    assert_eq!(g.jwks().await, before);
    verify_independently(&g, &token).await;
}

#[tokio::test]
async fn rotation_prepublishes_before_signing_and_retires_on_time() {
    let f = fixture(Phase::Transition).await;
    let (_, _, body) = f.token_post(GOOD).await;
    let old_token = body["access_token"].as_str().expect("t").to_owned();
    let old_kid = jsonwebtoken::decode_header(&old_token)
        .expect("h")
        .kid
        .expect("kid");

    // 30 days minus the 15 minute pre-publish time later, a next key appears...
    let rotate_at = T0 + 30 * 86_400;
    f.clock.set(Duration::from_secs(rotate_at - 900));
    assert!(f.issuer.maintain_keys().await.expect("tick"));
    let kids: Vec<String> = f.jwks().await["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| k["kid"].as_str().expect("kid").to_owned())
        .collect();
    assert_eq!(kids.len(), 2);
    assert_eq!(kids[1], old_kid);
    let new_kid = kids[0].clone();
    // ...while tokens are still signed by the old key.
    let (_, _, body) = f.token_post(GOOD).await;
    let kid = jsonwebtoken::decode_header(body["access_token"].as_str().expect("t"))
        .expect("h")
        .kid;
    assert_eq!(kid.as_deref(), Some(old_kid.as_str()));

    // At the rotation date the new key signs; the old one is still published.
    f.clock.set(Duration::from_secs(rotate_at));
    assert!(f.issuer.maintain_keys().await.expect("tick"));
    let (_, _, body) = f.token_post(GOOD).await;
    let new_token = body["access_token"].as_str().expect("t").to_owned();
    assert_eq!(
        jsonwebtoken::decode_header(&new_token)
            .expect("h")
            .kid
            .as_deref(),
        Some(new_kid.as_str())
    );
    verify_independently(&f, &new_token).await;
    verify_independently(&f, &old_token).await;

    // The old key leaves the JWKS token_ttl (10m) + pre-publish (15m) later, not before.
    f.clock.set(Duration::from_secs(rotate_at + 1499));
    assert!(!f.issuer.maintain_keys().await.expect("tick"));
    assert_eq!(f.jwks().await["keys"].as_array().map(Vec::len), Some(2));
    f.clock.set(Duration::from_secs(rotate_at + 1500));
    assert!(f.issuer.maintain_keys().await.expect("tick"));
    let keys = f.jwks().await;
    assert_eq!(keys["keys"].as_array().map(Vec::len), Some(1));
    assert_eq!(keys["keys"][0]["kid"], new_kid.as_str());
    // Retired on that tick, dated, and its private key deleted.
    let manifest = f.key_store().load().expect("keys").manifest;
    let old = manifest
        .keys
        .iter()
        .find(|k| k.kid == old_kid)
        .expect("old key still listed");
    assert_eq!(old.state, KeyState::Retired);
    assert_eq!(old.retired_at, Some(rotate_at + 1500));
    assert!(!f
        .config_path
        .with_file_name("keys")
        .join(format!("{old_kid}.pem"))
        .exists());
    // Tokens it signed no longer verify against the served JWKS.
    let served = f.jwks_kids().await;
    assert!(!served.contains(&old_kid), "{served:?}");
}

#[tokio::test]
async fn key_made_offline_signs_only_prepublish_after_the_issuer_first_served_it() {
    let f = fixture(Phase::Transition).await;
    let old = f.signing_kid().await;
    // `keyshift keys rotate` while the issuer is down, a day before it comes back.
    let next = f
        .key_store()
        .rotate(T0 + 10, &fixture_policy(), 2048, false)
        .expect("rotate");
    f.clock.set(Duration::from_secs(T0 + 86_400));
    let f = f.restart().await;
    // Its date is long past, but verifiers see it only from now on.
    assert_eq!(f.signing_kid().await, old);
    assert!(f.jwks_kids().await.contains(&next.kid));
    f.clock.advance(Duration::from_secs(899));
    f.issuer.maintain_keys().await.expect("tick");
    assert_eq!(f.signing_kid().await, old);
    f.clock.advance(Duration::from_secs(1));
    assert!(f.issuer.maintain_keys().await.expect("tick"));
    assert_eq!(f.signing_kid().await, next.kid);
}

#[tokio::test]
async fn key_rotated_in_phase_legacy_is_promoted_only_after_dual_served_it() {
    let f = fixture(Phase::Legacy).await;
    let old = f.active_kid();
    let next = f
        .key_store()
        .rotate(T0, &fixture_policy(), 2048, false)
        .expect("rotate");
    f.clock.set(Duration::from_secs(T0 + 2000));
    f.issuer.maintain_keys().await.expect("tick");
    assert_eq!(f.active_kid(), old, "legacy serves no JWKS: never promoted");
    f.reload(Phase::Dual).await;
    assert!(f.jwks_kids().await.contains(&next.kid));
    f.clock.advance(Duration::from_secs(899));
    f.issuer.maintain_keys().await.expect("tick");
    assert_eq!(f.active_kid(), old);
    f.clock.advance(Duration::from_secs(1));
    assert!(f.issuer.maintain_keys().await.expect("tick"));
    assert_eq!(f.active_kid(), next.kid);
}

#[tokio::test]
async fn reload_from_legacy_straight_to_rs256_is_refused_and_keeps_the_running_config() {
    let f = fixture(Phase::Legacy).await;
    for phase in [Phase::Transition, Phase::Asymmetric] {
        let err = f.try_reload(phase).await.expect_err("refused");
        assert!(matches!(err, StartError::Refused(_)), "{err}");
        let msg = err.to_string();
        assert!(
            msg.contains("serves no RSA key") && msg.contains("phase dual first"),
            "{msg}"
        );
        assert!(f.signing_kid().await.starts_with("hs256-"), "still HS256");
        assert_eq!(f.jwks_kids().await.len(), 0, "still legacy");
    }
    // Through dual, once the key has been served for key_prepublish: fine.
    f.reload(Phase::Dual).await;
    f.clock.advance(Duration::from_secs(900));
    f.reload(Phase::Legacy).await;
    // Back in legacy the JWKS dropped it: a verifier may have cached that.
    let err = f
        .try_reload(Phase::Transition)
        .await
        .expect_err("refused again");
    assert!(matches!(err, StartError::Refused(_)), "{err}");
    f.reload(Phase::Dual).await;
    f.clock.advance(Duration::from_secs(900));
    f.reload(Phase::Transition).await;
    assert_eq!(f.signing_kid().await, f.active_kid());
}

#[tokio::test]
async fn shortened_token_ttl_does_not_retire_a_key_before_its_longer_tokens_expire() {
    let f = fixture(Phase::Transition).await;
    f.try_reload_ttl(Phase::Transition, "24h")
        .await
        .expect("24h");
    let (_, _, body) = f.token_post(GOOD).await;
    assert_eq!(body["expires_in"], 86_400);
    let long_token = body["access_token"].as_str().expect("token").to_owned();
    let old = f.signing_kid().await;
    f.clock.advance(Duration::from_secs(60));
    f.try_reload_ttl(Phase::Transition, "10m")
        .await
        .expect("10m");

    // A rotation by hand, published at once, promoted 15 minutes later.
    let next = f
        .key_store()
        .rotate(T0 + 60, &fixture_policy(), 2048, false)
        .expect("rotate");
    f.issuer.maintain_keys().await.expect("publish");
    let promoted_at = T0 + 60 + 900;
    f.clock.set(Duration::from_secs(promoted_at));
    assert!(f.issuer.maintain_keys().await.expect("promote"));
    assert_eq!(f.signing_kid().await, next.kid);

    // 10m + 15m later (what the current token_ttl alone would give) the old
    // key is still published: the 24h token still verifies.
    f.clock.set(Duration::from_secs(promoted_at + 600 + 900));
    f.issuer.maintain_keys().await.expect("tick");
    assert!(f.jwks_kids().await.contains(&old));
    f.clock
        .set(Duration::from_secs(promoted_at + 86_400 + 900 - 1));
    f.issuer.maintain_keys().await.expect("tick");
    assert!(f.jwks_kids().await.contains(&old));
    verify_independently(&f, &long_token).await;
    // It leaves when the 24h token has expired plus the pre-publish time.
    f.clock.set(Duration::from_secs(promoted_at + 86_400 + 900));
    assert!(f.issuer.maintain_keys().await.expect("retire"));
    assert_eq!(f.jwks_kids().await, [next.kid]);
}
