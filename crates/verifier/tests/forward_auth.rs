//! The forward-auth routes beside `/verify`: `/verify/<anything>` for
//! Envoy's HTTP ext_authz, and `/auth_request` with nginx's answer set
//! (200, 401 and 403 only), each outcome of the contract checked.

mod common;

use common::*;
use http::{HeaderMap, HeaderValue, Request, StatusCode};
use keyshift_core::Phase;

/// Sends `uri` with `headers` (raw values, so a test can send bytes that are
/// not text); returns the status and headers.
async fn send(f: &Fixture, uri: &str, headers: &[(&str, HeaderValue)]) -> (StatusCode, HeaderMap) {
    let mut req = Request::get(uri);
    for (n, v) in headers {
        req = req.header(*n, v.clone());
    }
    let resp = f.service.handle(req.body(()).expect("request")).await;
    (resp.status(), resp.headers().clone())
}

fn bearer(token: &str) -> (&'static str, HeaderValue) {
    (
        "authorization",
        HeaderValue::from_str(&format!("Bearer {token}")).expect("header"),
    )
}

fn challenge(h: &HeaderMap) -> &str {
    let all: Vec<_> = h.get_all("www-authenticate").iter().collect();
    assert_eq!(all.len(), 1, "exactly one challenge: {all:?}");
    all[0].to_str().expect("text")
}

#[tokio::test]
async fn envoy_appended_paths_are_verified_like_verify() {
    let f = fixture(Phase::Dual, "").await;
    let (a, _) = keys();
    let token = rs256(a, &claims());
    let (s, h) = send(&f, "/verify/api/orders/7", &[bearer(&token)]).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h["x-auth-subject"], "svc-a");
    assert_eq!(h["x-auth-client"], "svc-a");
    assert_eq!(h["x-auth-scope"], "read write");
    assert_eq!(h["x-auth-alg"], "RS256");
    assert_eq!(h["x-auth-kid"], "key-1");

    let (s, h) = send(&f, "/verify/api/orders", &[]).await;
    assert_eq!(
        (s, challenge(&h)),
        (StatusCode::UNAUTHORIZED, "Bearer realm=\"keyshift\"")
    );
    let (s, h) = send(&f, "/verify/api", &[bearer("not.a.token")]).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(challenge(&h).contains("error=\"invalid_token\""));
}

#[tokio::test]
async fn under_an_appended_path_scopes_come_from_the_header_not_the_clients_query() {
    let f = fixture(Phase::Dual, "").await;
    let token = hs256(&claims());
    // The query is the client's original one: an API's own `scope`
    // parameter neither requires nor relaxes anything.
    let (s, _) = send(&f, "/verify/search?scope=admin", &[bearer(&token)]).await;
    assert_eq!(s, StatusCode::OK);
    let require = |v: &str| ("x-auth-require-scope", HeaderValue::from_str(v).expect("v"));
    let (s, _) = send(&f, "/verify/orders", &[bearer(&token), require("read")]).await;
    assert_eq!(s, StatusCode::OK);
    let (s, h) = send(
        &f,
        "/verify/orders",
        &[bearer(&token), require("write admin")],
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(
        challenge(&h).contains("error=\"insufficient_scope\"")
            && challenge(&h).contains("scope=\"write admin\""),
        "{h:?}"
    );
    // Everything but the exact route and its subpaths is still unknown.
    assert_eq!(
        send(&f, "/verifyx", &[bearer(&token)]).await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn auth_request_accepts_with_the_five_identity_headers() {
    let f = fixture(Phase::Dual, "").await;
    let (a, _) = keys();
    let (s, h) = send(&f, "/auth_request", &[bearer(&rs256(a, &claims()))]).await;
    assert_eq!(s, StatusCode::OK);
    for (name, value) in [
        ("x-auth-subject", "svc-a"),
        ("x-auth-client", "svc-a"),
        ("x-auth-scope", "read write"),
        ("x-auth-alg", "RS256"),
        ("x-auth-kid", "key-1"),
    ] {
        assert_eq!(h[name], value, "{name}");
    }
    assert!(!h.contains_key("www-authenticate"));
}

#[tokio::test]
async fn auth_request_refusals_are_401_or_403_with_their_challenges() {
    let f = fixture(Phase::Dual, "").await;
    let token = hs256(&claims());
    let (s, h) = send(&f, "/auth_request", &[]).await;
    assert_eq!(
        (s, challenge(&h)),
        (StatusCode::UNAUTHORIZED, "Bearer realm=\"keyshift\"")
    );
    let mut expired = claims();
    expired["exp"] = serde_json::json!(NOW - 3_600);
    expired["iat"] = serde_json::json!(NOW - 4_000);
    expired["nbf"] = serde_json::json!(NOW - 4_000);
    let (s, h) = send(&f, "/auth_request", &[bearer(&hs256(&expired))]).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(
        challenge(&h),
        "Bearer realm=\"keyshift\", error=\"invalid_token\", error_description=\"token expired\""
    );
    let (s, h) = send(&f, "/auth_request?scope=read+admin", &[bearer(&token)]).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(
        challenge(&h).contains("error=\"insufficient_scope\"")
            && challenge(&h).contains("scope=\"read admin\""),
        "{h:?}"
    );
    assert_eq!(
        send(&f, "/auth_request?scope=read", &[bearer(&token)])
            .await
            .0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn auth_request_answers_malformed_requests_with_401_invalid_request_where_verify_says_400() {
    let f = fixture(Phase::Dual, "").await;
    let token = hs256(&claims());
    let malformed: [Vec<(&str, HeaderValue)>; 3] = [
        // Two Authorization headers.
        vec![bearer(&token), bearer(&token)],
        // Not text: nginx passes such bytes on as they are.
        vec![(
            "authorization",
            HeaderValue::from_bytes(b"Bearer \xc3\xa9t\xc3\xa9").expect("obs-text"),
        )],
        // A required scope that could break the challenge.
        vec![
            bearer(&token),
            ("x-auth-require-scope", HeaderValue::from_static("a\"b")),
        ],
    ];
    for headers in malformed {
        let (s, h) = send(&f, "/auth_request", &headers).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{headers:?}");
        assert!(
            challenge(&h).starts_with("Bearer realm=\"keyshift\", error=\"invalid_request\""),
            "{h:?}"
        );
        // The same request at /verify keeps its 400.
        let (s, h) = send(&f, "/verify", &headers).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{headers:?}");
        assert!(challenge(&h).contains("error=\"invalid_request\""));
    }
}

#[tokio::test]
async fn auth_request_says_keys_unavailable_as_401_temporarily_unavailable_with_retry_after() {
    let (a, _) = keys();
    let server = JwksServer::start(jwks_of(&[a])).await;
    server.set(Mode::Status(503));
    let f = fixture_with(Phase::Dual, "", server).await;
    let token = rs256(a, &claims());
    let (s, h) = send(&f, "/auth_request", &[bearer(&token)]).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(
        challenge(&h),
        "Bearer realm=\"keyshift\", error=\"temporarily_unavailable\", error_description=\"signing keys unavailable\""
    );
    let retry: u64 = h["retry-after"]
        .to_str()
        .expect("text")
        .parse()
        .expect("seconds");
    assert!((1..=600).contains(&retry), "{retry}");
    // /verify says the same as a 503; no other refusal carries Retry-After.
    let (s, h) = send(&f, "/verify", &[bearer(&token)]).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    assert!(h.contains_key("retry-after"));
    let (_, h) = send(&f, "/auth_request", &[bearer("a.b.c")]).await;
    assert!(!h.contains_key("retry-after"));
    // HS256 does not need the JWKS.
    assert_eq!(
        send(&f, "/auth_request", &[bearer(&hs256(&claims()))])
            .await
            .0,
        StatusCode::OK
    );
}
