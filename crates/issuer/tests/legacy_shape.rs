//! `[issuer.legacy]`: the HS256 tokens keyshift mints in phases `legacy`
//! and `dual` take the shape the old fleet's verifiers expect, checked by a
//! verifier configured like the old system (jsonwebtoken: `iss`, the shared
//! secret, no `typ` check, no `kid`, no `aud`); RS256 tokens keep RFC 9068.

mod common;

use common::*;
use http::StatusCode;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use keyshift_core::Phase;
use serde_json::Value;

const OLD_SHAPE: &str = r#"legacy = { issuer = "legacy-auth", typ = "JWT", kid = false, audience = "", claims = { tenant = "acme", roles = ["svc"] } }"#;

async fn token(f: &Fixture) -> String {
    let (status, _, body) = f.token_post(GOOD).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["access_token"].as_str().expect("token").to_owned()
}

/// The old system's verifier: HS256 with the shared secret and its `iss`;
/// it knows nothing of `typ`, `kid` or `aud`.
fn old_verifier(token: &str) -> Result<Value, jsonwebtoken::errors::Error> {
    let mut v = Validation::new(Algorithm::HS256);
    v.set_issuer(&["legacy-auth"]);
    v.validate_aud = false;
    v.validate_exp = false; // the fixture's clock is in the future
    jsonwebtoken::decode::<Value>(token, &DecodingKey::from_secret(&[b'k'; 32]), &v)
        .map(|d| d.claims)
}

#[tokio::test]
async fn hs256_tokens_take_the_legacy_shape_an_old_verifier_accepts() {
    let f = fixture(Phase::Legacy).await;
    for phase in [Phase::Legacy, Phase::Dual] {
        f.try_reload_with(phase, |c| c.issuer_lines(OLD_SHAPE))
            .await
            .expect("reload");
        let token = token(&f).await;
        let header = keyshift_testkit::jwt::header_json(&token).expect("header");
        assert_eq!(
            header,
            serde_json::json!({"alg": "HS256", "typ": "JWT"}),
            "{phase}: no kid"
        );
        let claims = old_verifier(&token).unwrap_or_else(|e| panic!("{phase}: {e}"));
        assert_eq!(claims["iss"], "legacy-auth");
        assert!(claims.get("aud").is_none(), "{phase}: {claims}");
        assert_eq!(claims["tenant"], "acme");
        assert_eq!(claims["roles"], serde_json::json!(["svc"]));
        assert_eq!(claims["sub"], "svc-a");
        assert_eq!(claims["scope"], "read write");
    }
}

#[tokio::test]
async fn rs256_tokens_keep_rfc9068_and_asymmetric_ignores_the_table() {
    let f = fixture(Phase::Dual).await;
    for phase in [Phase::Transition, Phase::Asymmetric] {
        f.try_reload_with(phase, |c| c.issuer_lines(OLD_SHAPE))
            .await
            .unwrap_or_else(|e| panic!("{phase}: {e}"));
        let token = token(&f).await;
        let claims = verify_independently(&f, &token).await;
        assert_eq!(claims.iss, "http://issuer.test", "{phase}");
        assert_eq!(claims.aud.as_deref(), Some("https://api.test"));
        assert!(claims.extra.is_empty(), "{phase}: {:?}", claims.extra);
    }
    let cfg = f.config(Phase::Asymmetric);
    assert!(cfg.issuer.expect("issuer").legacy.is_none());
}

#[tokio::test]
async fn an_empty_legacy_table_mints_keyshifts_own_shape() {
    let f = fixture(Phase::Dual).await;
    f.try_reload_with(Phase::Dual, |c| c.issuer_lines("legacy = {}"))
        .await
        .expect("reload");
    let token = token(&f).await;
    let claims = verify_independently(&f, &token).await;
    assert_eq!(claims.iss, "http://issuer.test");
    assert_eq!(claims.aud.as_deref(), Some("https://api.test"));
    assert!(claims.extra.is_empty());
    assert!(
        old_verifier(&token).is_err(),
        "a different iss: the old verifier refuses"
    );
}
