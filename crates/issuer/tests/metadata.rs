//! The metadata document strict OAuth and OpenID clients validate, at every
//! location the specs look for it (scripts/metadata-check.py runs authlib's
//! validators on the real binary's answers).

mod common;

use common::*;
use http::StatusCode;
use keyshift_core::Phase;
use serde_json::{json, Value};

async fn document(f: &Fixture, path: &str) -> (StatusCode, Value) {
    let (s, _, b) = f.send(get(path)).await;
    (s, serde_json::from_slice(&b).unwrap_or(Value::Null))
}

#[tokio::test]
async fn the_members_rfc_8414_and_oidc_discovery_require_are_present_and_not_empty() {
    let f = fixture(Phase::Dual).await;
    let (s, m) = document(&f, "/.well-known/openid-configuration").await;
    assert_eq!(s, StatusCode::OK);
    // RFC 8414 §2: REQUIRED; `[]` failed authlib's validator.
    assert_eq!(m["response_types_supported"], json!(["none"]));
    // OpenID Connect Discovery §3: REQUIRED.
    assert_eq!(m["subject_types_supported"], json!(["public"]));
    assert_eq!(m["id_token_signing_alg_values_supported"], json!(["RS256"]));
    assert!(m.get("authorization_endpoint").is_none(), "there is none");
}

#[tokio::test]
async fn an_issuer_url_with_a_path_is_also_served_where_rfc_8414_and_oidc_look() {
    let f = fixture(Phase::Dual).await;
    f.try_reload_with(Phase::Dual, |cfg| {
        cfg.issuer("issuer", "https://issuer.test/tenant-a/")
    })
    .await
    .expect("reload");
    for path in [
        "/.well-known/oauth-authorization-server/tenant-a",
        "/tenant-a/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
    ] {
        let (s, m) = document(&f, path).await;
        assert_eq!(s, StatusCode::OK, "{path}");
        assert_eq!(m["issuer"], "https://issuer.test/tenant-a/", "{path}");
        assert_eq!(
            m["token_endpoint"],
            "https://issuer.test/tenant-a/oauth/token"
        );
    }
    for path in [
        "/.well-known/oauth-authorization-server/tenant-b",
        "/.well-known/oauth-authorization-server/tenant-a/x",
        "/tenant-b/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server/",
    ] {
        assert_eq!(document(&f, path).await.0, StatusCode::NOT_FOUND, "{path}");
    }
    let (s, _, _) = f
        .send(
            http::Request::post("/.well-known/oauth-authorization-server/tenant-a")
                .body(http_body_util::Full::new(bytes::Bytes::new()))
                .expect("request"),
        )
        .await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
}
