//! The tower layer in front of a protected route: called directly, and
//! served over real HTTP on 127.0.0.1:0.

mod common;

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use common::*;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use keyshift_core::Phase;
use keyshift_verifier::layer::RequireToken;
use keyshift_verifier::Verified;
use serde_json::json;
use tower::{Layer, ServiceExt};

/// The protected route: answers with who called and what they may do.
async fn orders<B>(req: Request<B>) -> Result<Response<Full<Bytes>>, Infallible> {
    let body = match req.extensions().get::<Arc<Verified>>() {
        Some(v) => format!("{} {} {}", v.sub(), v.alg, v.scope()),
        None => "unreachable without a token".to_owned(),
    };
    Ok(Response::new(Full::new(Bytes::from(body))))
}

async fn call(layer: &RequireToken, auth: Option<&str>) -> (StatusCode, String, String) {
    let svc = layer.layer(tower::service_fn(orders::<()>));
    let mut req = Request::get("/orders");
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    let resp = svc
        .oneshot(req.body(()).expect("request"))
        .await
        .expect("infallible");
    let challenge = resp
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let status = resp.status();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    (
        status,
        challenge,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

#[tokio::test]
async fn the_layer_lets_through_only_tokens_the_verifier_accepts_with_the_scopes() {
    let f = fixture(Phase::Dual, "").await;
    let (a, _) = keys();
    let layer = RequireToken::new(f.verifier.clone()).scopes(&["read"]);
    let rs = format!("Bearer {}", rs256(a, &claims()));
    let hs = format!("Bearer {}", hs256(&claims()));

    let (status, _, body) = call(&layer, Some(&rs)).await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, "svc-a RS256 read write")
    );
    let (status, _, body) = call(&layer, Some(&hs)).await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, "svc-a HS256 read write")
    );

    let (status, challenge, body) = call(&layer, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(challenge, "Bearer realm=\"keyshift\"");
    assert!(body.is_empty(), "the inner route never ran");

    let mut c = claims();
    c["exp"] = json!(NOW - 60);
    let (status, challenge, _) = call(&layer, Some(&format!("Bearer {}", rs256(a, &c)))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");

    let admin = RequireToken::new(f.verifier.clone()).scopes(&["admin"]);
    let (status, challenge, _) = call(&admin, Some(&rs)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(challenge.contains("scope=\"admin\""), "{challenge}");

    let (status, _, _) = call(&layer, Some("Basic dXNlcjpwYXNz")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let report = f.verifier.migration();
    assert_eq!(report.counts.rs256.accepted, 1);
    assert_eq!(report.counts.hs256.accepted, 1);
}

#[tokio::test]
async fn a_protected_route_served_over_http() {
    let f = fixture(Phase::Transition, "").await;
    let (a, _) = keys();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let layer = RequireToken::new(f.verifier.clone()).scopes(&["write"]);
    let server = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let svc = TowerToHyperService::new(layer.layer(tower::service_fn(orders)));
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc),
            );
        }
    });
    let get = |auth: Option<String>| async move {
        let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("handshake");
        tokio::spawn(conn);
        let mut req = Request::get("/orders").header("host", addr.to_string());
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let resp = sender
            .send_request(req.body(Full::new(Bytes::new())).expect("request"))
            .await
            .expect("response");
        let status = resp.status();
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    };
    let ok = get(Some(format!("Bearer {}", rs256(a, &claims())))).await;
    assert_eq!(ok, (StatusCode::OK, "svc-a RS256 read write".to_owned()));
    let (status, _) = get(None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    server.abort();
}
