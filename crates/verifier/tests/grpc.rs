//! gRPC ext_authz through a real gRPC client (tonic) on loopback: every
//! outcome of `/verify` as Envoy's `Check` answer.

mod common;

use std::collections::HashMap;

use common::*;
use envoy_types::pb::envoy::config::core::v3::{HeaderMap as RawHeaders, HeaderValue as RawHeader};
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Request};
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, CheckRequest, CheckResponse};
use keyshift_core::Phase;
use tonic::transport::Channel;

/// A `Check` client connected to `f`'s verifier served on 127.0.0.1:0; the
/// server stops when the fixture's test ends.
async fn client(f: &Fixture) -> AuthorizationClient<Channel> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(keyshift_verifier::grpc::serve(
        listener,
        f.verifier.clone(),
        std::future::pending(),
    ));
    AuthorizationClient::connect(format!("http://{addr}"))
        .await
        .expect("connect")
}

/// A request whose HTTP headers are `headers` (Envoy's `headers` map, one
/// line per name) and whose context extensions are `extensions`.
fn request(headers: &[(&str, &str)], extensions: &[(&str, &str)]) -> CheckRequest {
    let map: HashMap<String, String> = headers
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    CheckRequest {
        attributes: Some(AttributeContext {
            request: Some(Request {
                http: Some(HttpRequest {
                    method: "GET".into(),
                    // The client's query: never read for scopes.
                    path: "/orders?scope=admin".into(),
                    headers: map,
                    ..HttpRequest::default()
                }),
                ..Request::default()
            }),
            context_extensions: extensions
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            ..AttributeContext::default()
        }),
    }
}

async fn check(c: &mut AuthorizationClient<Channel>, req: CheckRequest) -> CheckResponse {
    c.check(req)
        .await
        .expect("a Check answer, never a gRPC error")
        .into_inner()
}

/// (gRPC code, HTTP status, WWW-Authenticate, Retry-After) of a denial.
fn denial(resp: &CheckResponse) -> (i32, i32, String, Option<String>) {
    let code = resp.status.as_ref().map_or(-1, |s| s.code);
    let Some(HttpResponse::DeniedResponse(d)) = &resp.http_response else {
        panic!("not a denial: {resp:?}");
    };
    let header = |name: &str| {
        let all: Vec<&str> = d
            .headers
            .iter()
            .filter_map(|h| h.header.as_ref())
            .filter(|h| h.key.eq_ignore_ascii_case(name))
            .map(|h| h.value.as_str())
            .collect();
        assert!(all.len() <= 1, "{name} once: {all:?}");
        all.first().map(|v| (*v).to_owned())
    };
    (
        code,
        d.status.as_ref().map_or(0, |s| s.code),
        header("www-authenticate").unwrap_or_default(),
        header("retry-after"),
    )
}

/// The headers an OK answer sets, and the ones it removes.
fn allowed(resp: &CheckResponse) -> (HashMap<String, String>, Vec<String>) {
    assert_eq!(resp.status.as_ref().map(|s| s.code), Some(0), "{resp:?}");
    let Some(HttpResponse::OkResponse(ok)) = &resp.http_response else {
        panic!("not OK: {resp:?}");
    };
    for h in &ok.headers {
        assert_eq!(
            h.append_action, 2,
            "OVERWRITE_IF_EXISTS_OR_ADD: a client's own value never survives"
        );
    }
    let set = ok
        .headers
        .iter()
        .filter_map(|h| h.header.as_ref())
        .map(|h| (h.key.clone(), h.value.clone()))
        .collect();
    (set, ok.headers_to_remove.clone())
}

#[tokio::test]
async fn an_accepted_token_sets_the_identity_headers_over_the_clients() {
    let f = fixture(Phase::Dual, "").await;
    let mut c = client(&f).await;
    let (a, _) = keys();
    let bearer = format!("Bearer {}", rs256(a, &claims()));
    let resp = check(
        &mut c,
        request(
            &[("authorization", &bearer), ("x-auth-subject", "spoofed")],
            &[],
        ),
    )
    .await;
    let (set, removed) = allowed(&resp);
    let want: HashMap<String, String> = [
        ("x-auth-subject", "svc-a"),
        ("x-auth-client", "svc-a"),
        ("x-auth-scope", "read write"),
        ("x-auth-alg", "RS256"),
        ("x-auth-kid", "key-1"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    assert_eq!(set, want);
    assert!(removed.is_empty(), "{removed:?}");

    // A legacy HS256 token has no kid: a client's X-Auth-Kid is removed.
    let bearer = format!("Bearer {}", hs256(&claims()));
    let resp = check(&mut c, request(&[("authorization", &bearer)], &[])).await;
    let (set, removed) = allowed(&resp);
    assert_eq!(set.get("x-auth-alg").map(String::as_str), Some("HS256"));
    assert!(!set.contains_key("x-auth-kid"));
    assert_eq!(removed, ["x-auth-kid"]);
}

#[tokio::test]
async fn refusals_carry_the_status_and_challenge_of_verify() {
    let f = fixture(Phase::Dual, "").await;
    let mut c = client(&f).await;
    let token = hs256(&claims());
    let bearer = format!("Bearer {token}");

    let resp = check(&mut c, request(&[], &[])).await;
    assert_eq!(
        denial(&resp),
        (16, 401, "Bearer realm=\"keyshift\"".into(), None)
    );
    let resp = check(&mut c, request(&[("authorization", "Bearer a.b.c")], &[])).await;
    let (code, status, challenge, _) = denial(&resp);
    assert_eq!((code, status), (16, 401));
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");

    let mut expired = claims();
    expired["exp"] = serde_json::json!(NOW - 3_600);
    expired["iat"] = serde_json::json!(NOW - 4_000);
    let expired = format!("Bearer {}", hs256(&expired));
    let (_, status, challenge, _) =
        denial(&check(&mut c, request(&[("authorization", &expired)], &[])).await);
    assert_eq!(status, 401);
    assert!(challenge.contains("token expired"), "{challenge}");

    // Scopes from the route's context extension and from X-Auth-Require-Scope.
    let resp = check(
        &mut c,
        request(&[("authorization", &bearer)], &[("scope", "read admin")]),
    )
    .await;
    let (code, status, challenge, _) = denial(&resp);
    assert_eq!((code, status), (7, 403));
    assert!(
        challenge.contains("error=\"insufficient_scope\"")
            && challenge.contains("scope=\"read admin\""),
        "{challenge}"
    );
    let resp = check(
        &mut c,
        request(
            &[
                ("authorization", &bearer),
                ("x-auth-require-scope", "admin"),
            ],
            &[],
        ),
    )
    .await;
    assert_eq!(denial(&resp).1, 403);
    // The path's `?scope=admin` is the client's and did not count.
    let resp = check(
        &mut c,
        request(&[("authorization", &bearer)], &[("scope", "read")]),
    )
    .await;
    allowed(&resp);
}

#[tokio::test]
async fn malformed_requests_are_400_invalid_request() {
    let f = fixture(Phase::Dual, "").await;
    let mut c = client(&f).await;
    let bearer = format!("Bearer {}", hs256(&claims()));
    // Raw headers keep two Authorization lines apart.
    let mut req = request(&[], &[]);
    let raw = |v: &str| RawHeader {
        key: "authorization".into(),
        raw_value: v.as_bytes().to_vec(),
        ..RawHeader::default()
    };
    if let Some(http) = req
        .attributes
        .as_mut()
        .and_then(|a| a.request.as_mut())
        .and_then(|r| r.http.as_mut())
    {
        http.header_map = Some(RawHeaders {
            headers: vec![raw(&bearer), raw(&bearer)],
        });
    }
    let (code, status, challenge, _) = denial(&check(&mut c, req).await);
    assert_eq!((code, status), (3, 400));
    assert!(
        challenge.contains("error=\"invalid_request\""),
        "{challenge}"
    );
    // Not text.
    let (code, status, _, _) = denial(
        &check(
            &mut c,
            request(&[("authorization", "Bearer \u{e9}t\u{e9}")], &[]),
        )
        .await,
    );
    assert_eq!((code, status), (3, 400));
    let (_, status, _, _) = denial(
        &check(
            &mut c,
            request(&[("authorization", &bearer)], &[("scope", "a\"b")]),
        )
        .await,
    );
    assert_eq!(status, 400);
}

#[tokio::test]
async fn keys_unavailable_is_503_with_retry_after_and_everything_is_counted_like_verify() {
    let (a, _) = keys();
    let server = JwksServer::start(jwks_of(&[a])).await;
    server.set(Mode::Status(503));
    let f = fixture_with(Phase::Dual, "", server).await;
    let mut c = client(&f).await;
    let before = f.verifier.migration().counts;
    let bearer = format!("Bearer {}", rs256(a, &claims()));
    let (code, status, challenge, retry) =
        denial(&check(&mut c, request(&[("authorization", &bearer)], &[])).await);
    assert_eq!((code, status), (14, 503));
    assert!(challenge.contains("temporarily_unavailable"), "{challenge}");
    let retry: u64 = retry.expect("Retry-After").parse().expect("seconds");
    assert!((1..=600).contains(&retry), "{retry}");
    let hs = format!("Bearer {}", hs256(&claims()));
    allowed(&check(&mut c, request(&[("authorization", &hs)], &[])).await);
    check(&mut c, request(&[], &[])).await;
    // The verify path's own counts (the same as keyshift_verify_total's).
    let after = f.verifier.migration().counts;
    assert_eq!(after.rs256.rejected - before.rs256.rejected, 1);
    assert_eq!(after.hs256.accepted - before.hs256.accepted, 1);
    assert_eq!(after.other.rejected - before.other.rejected, 1);
}

#[tokio::test]
async fn a_check_request_past_the_size_bound_is_refused_before_parsing() {
    let f = fixture(Phase::Dual, "").await;
    let mut c = client(&f).await;
    let huge = "x".repeat(keyshift_verifier::grpc::MAX_CHECK_REQUEST_BYTES);
    let err = c
        .check(request(&[("x-padding", &huge)], &[]))
        .await
        .expect_err("refused");
    assert_eq!(err.code(), tonic::Code::OutOfRange, "{err:?}");
    // The channel still serves a normal request.
    let bearer = format!("Bearer {}", hs256(&claims()));
    allowed(&check(&mut c, request(&[("authorization", &bearer)], &[])).await);
}
