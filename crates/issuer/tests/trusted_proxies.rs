//! The failed-auth limits behind a proxy: `issuer.trusted_proxies` makes
//! them count the client `X-Forwarded-For` names, and only for a peer that
//! is a listed proxy.

mod common;

use std::net::IpAddr;

use bytes::Bytes;
use common::*;
use http::{Request, StatusCode};
use http_body_util::Full;
use keyshift_core::Phase;

/// The proxy every request of these tests comes through.
const PROXY: [u8; 4] = [127, 0, 0, 1];

/// A token request with `body`, as a proxy forwards it for `client`.
fn forwarded(client: &str, body: &str) -> Request<Full<Bytes>> {
    let (mut parts, body) = form(body).into_parts();
    parts
        .headers
        .insert("x-forwarded-for", client.parse().expect("header"));
    Request::from_parts(parts, body)
}

/// Ten bad logins from one client (guessing over ten ids), through `f`'s
/// proxy, with `failed_auth_limit = 2` (a network's ceiling is 5 × 2 = 10).
async fn ten_bad_logins_through_the_proxy(f: &Fixture) {
    let proxy = f.service_from(IpAddr::from(PROXY));
    for i in 0..10 {
        let body = format!("grant_type=client_credentials&client_id=guess-{i}&client_secret=x");
        let (s, _, _) = into_parts(proxy.handle(forwarded("203.0.113.7", &body)).await).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "bad login {i}");
    }
}

#[tokio::test]
async fn ten_bad_logins_behind_a_trusted_proxy_leave_other_clients_untouched() {
    let f = fixture(Phase::Dual).await;
    f.try_reload_with(Phase::Dual, |cfg| {
        cfg.issuer("failed_auth_limit", 2)
            .issuer("trusted_proxies", vec!["127.0.0.0/8"])
    })
    .await
    .expect("reload");
    ten_bad_logins_through_the_proxy(&f).await;
    let proxy = f.service_from(IpAddr::from(PROXY));
    // Another client behind the same proxy gets its tokens...
    let (s, _, b) = into_parts(proxy.handle(forwarded("198.51.100.9", GOOD)).await).await;
    assert_eq!(s, StatusCode::OK, "{b:?}");
    // ...while the guesser's own address is at its network's ceiling.
    let (s, _, _) = into_parts(proxy.handle(forwarded("203.0.113.7", GOOD)).await).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn without_trusted_proxies_the_same_ten_bad_logins_lock_out_everyone_behind_the_proxy() {
    // The control of the test above: what the issue reported.
    let f = fixture(Phase::Dual).await;
    f.try_reload_with(Phase::Dual, |cfg| cfg.issuer("failed_auth_limit", 2))
        .await
        .expect("reload");
    ten_bad_logins_through_the_proxy(&f).await;
    let proxy = f.service_from(IpAddr::from(PROXY));
    let (s, _, _) = into_parts(proxy.handle(forwarded("198.51.100.9", GOOD)).await).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn an_untrusted_peer_cannot_pick_its_own_address_with_x_forwarded_for() {
    let f = fixture(Phase::Dual).await;
    f.try_reload_with(Phase::Dual, |cfg| {
        cfg.issuer("failed_auth_limit", 2)
            .issuer("trusted_proxies", vec!["10.0.0.0/8"])
    })
    .await
    .expect("reload");
    let guesser = f.service_from([192, 0, 2, 50].into());
    // A fresh X-Forwarded-For on every guess would be a fresh network, were
    // it believed: it is not, so the guesser's own network fills up.
    for i in 0..10 {
        let body = format!("grant_type=client_credentials&client_id=guess-{i}&client_secret=x");
        let spoofed = format!("198.51.100.{i}");
        let (s, _, _) = into_parts(guesser.handle(forwarded(&spoofed, &body)).await).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "bad login {i}");
    }
    let (s, _, _) = into_parts(guesser.handle(forwarded("198.51.100.200", GOOD)).await).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
    // A spoofed list that ends in a trusted proxy's address changes nothing either.
    let (s, _, _) = into_parts(
        guesser
            .handle(forwarded("198.51.100.201, 10.0.0.1", GOOD))
            .await,
    )
    .await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
}
