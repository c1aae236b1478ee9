//! The issuer's HTTP behaviour, by calling the service directly (no sockets).

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use http::{Request, StatusCode};
use http_body_util::Full;
use jsonwebtoken::Algorithm;
use keyshift_core::Phase;
use serde_json::Value;

#[tokio::test]
async fn dual_phase_issues_hs256_with_every_claim() {
    let f = fixture(Phase::Dual).await;
    let (status, headers, body) = f.token_post(GOOD).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 600);
    assert_eq!(body["scope"], "read write");
    let token = body["access_token"].as_str().expect("token");
    assert_eq!(
        jsonwebtoken::decode_header(token).expect("h").alg,
        Algorithm::HS256
    );
    let claims = verify_independently(&f, token).await;
    assert_eq!(
        (claims.sub.as_str(), claims.client_id.as_str()),
        ("svc-a", "svc-a")
    );
    assert_eq!((claims.iat, claims.nbf, claims.exp), (T0, T0, T0 + 600));
    assert_eq!(claims.iss, "http://issuer.test");
    assert_eq!(claims.aud.as_deref(), Some("https://api.test"));
}

#[tokio::test]
async fn transition_phase_issues_rs256_verifiable_with_served_jwks() {
    let f = fixture(Phase::Transition).await;
    let (status, _, body) = f.token_post(GOOD).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let token = body["access_token"].as_str().expect("token");
    assert_eq!(
        jsonwebtoken::decode_header(token).expect("h").alg,
        Algorithm::RS256
    );
    let claims = verify_independently(&f, token).await;
    assert_eq!(claims.scope, "read write");
}

#[tokio::test]
async fn basic_auth_with_reserved_characters_in_id_and_secret() {
    let f = fixture(Phase::Dual).await;
    // id "svc:b%+" and secret "p+ss w:rd%", form-urlencoded then base64 (RFC 6749 §2.3.1).
    let (status, _, body) = f
        .send(basic(
            "svc%3Ab%25%2B:p%2Bss+w%3Ard%25",
            "grant_type=client_credentials",
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{body:?}");
    let body: Value = serde_json::from_slice(&body).expect("json");
    let claims = verify_independently(&f, body["access_token"].as_str().expect("token")).await;
    assert_eq!(claims.client_id, "svc:b%+");
    // The same secret sent raw (not form-encoded) is a different secret.
    let (status, headers, _) = f
        .send(basic(
            "svc%3Ab%25%2B:p+ss w:rd%",
            "grant_type=client_credentials",
        ))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(headers["www-authenticate"]
        .to_str()
        .expect("ascii")
        .starts_with("Basic"));
}

#[tokio::test]
async fn scope_is_narrowed_and_escalation_refused() {
    let f = fixture(Phase::Dual).await;
    let (s, _, body) = f.token_post(&format!("{GOOD}&scope=write")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(body["scope"], "write");
    let claims = verify_independently(&f, body["access_token"].as_str().expect("t")).await;
    assert_eq!(claims.scope, "write");
    let (s, _, body) = f.token_post(&format!("{GOOD}&scope=read+admin")).await;
    assert_eq!(
        (s, error_code(&body)),
        (StatusCode::BAD_REQUEST, "invalid_scope")
    );
}

#[tokio::test]
async fn every_token_endpoint_error() {
    let f = fixture(Phase::Dual).await;
    // invalid_request: no grant_type, repeated parameter, wrong content type, two methods.
    for body in [
        "client_id=svc-a&client_secret=secret-a",
        &format!("{GOOD}&scope=read&scope=write"),
    ] {
        let (s, h, b) = f.token_post(body).await;
        assert_eq!(
            (s, error_code(&b)),
            (StatusCode::BAD_REQUEST, "invalid_request"),
            "{body}"
        );
        assert_eq!(h["cache-control"], "no-store");
    }
    let json = Request::post("/oauth/token")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(b"{}")))
        .expect("req");
    let (s, _, b) = f.send(json).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(String::from_utf8_lossy(&b).contains("invalid_request"));
    let (s, _, _) = f.send(basic("svc-a:secret-a", GOOD)).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    // invalid_client: wrong secret, unknown client (post: no Basic challenge).
    for body in [
        "grant_type=client_credentials&client_id=svc-a&client_secret=nope",
        "grant_type=client_credentials&client_id=ghost&client_secret=secret-a",
        "grant_type=client_credentials",
    ] {
        let (s, h, b) = f.token_post(body).await;
        assert_eq!(
            (s, error_code(&b)),
            (StatusCode::UNAUTHORIZED, "invalid_client"),
            "{body}"
        );
        assert!(h.get("www-authenticate").is_none());
    }
    // unsupported_grant_type, only for an authenticated client.
    let (s, _, b) = f
        .token_post("grant_type=password&client_id=svc-a&client_secret=secret-a")
        .await;
    assert_eq!(
        (s, error_code(&b)),
        (StatusCode::BAD_REQUEST, "unsupported_grant_type")
    );

    // 413 for an oversized body, 405 for GET, 404 elsewhere.
    let (s, _, _) = f
        .token_post(&format!("{GOOD}&pad={}", "x".repeat(17 * 1024)))
        .await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    let (s, h, _) = f.send(get("/oauth/token")).await;
    assert_eq!(
        (s, h["allow"].to_str().expect("ascii")),
        (StatusCode::METHOD_NOT_ALLOWED, "POST")
    );
    let (s, _, _) = f.send(get("/nope")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn failed_authentications_lock_out_the_guessers_network_not_the_client_or_its_neighbours() {
    // The fixture allows 3 failures per (client id, network).
    let f = fixture(Phase::Dual).await;
    let bad = "grant_type=client_credentials&client_id=svc-a&client_secret=nope";
    for _ in 0..3 {
        let (s, _, _) = f.token_post(bad).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
    }
    // From the guesser's network even the right secret is refused unchecked...
    let (s, h, b) = f.token_post(GOOD).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{b}");
    assert_eq!(error_code(&b), "slow_down", "see docs/decisions.md");
    let retry: u64 = h["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("secs");
    assert!((1..=60).contains(&retry), "{retry}");
    // ...but the client itself, from its own network, is not locked out...
    let other = f.service_from([10, 0, 0, 2].into());
    let (s, _, _) = into_parts(other.handle(form(GOOD)).await).await;
    assert_eq!(s, StatusCode::OK);
    // ...and the guesser's neighbours (same address, other clients) are not either.
    let (s, _, _) = f
        .send(basic(
            "svc%3Ab%25%2B:p%2Bss+w%3Ard%25",
            "grant_type=client_credentials",
        ))
        .await;
    assert_eq!(s, StatusCode::OK);
    // After the window, the guesser's network gets in again.
    f.clock.advance(Duration::from_secs(61));
    let (s, _, _) = f.token_post(GOOD).await;
    assert_eq!(s, StatusCode::OK);
}
#[tokio::test]
async fn jwks_has_only_public_members_and_honours_etag() {
    let f = fixture(Phase::Dual).await;
    let (s, h, b) = f.send(get("/.well-known/jwks.json")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h["cache-control"], "public, max-age=300");
    let etag = h["etag"].to_str().expect("etag").to_owned();
    assert!(
        etag.starts_with('"') && etag.ends_with('"'),
        "strong etag {etag}"
    );
    let jwks: Value = serde_json::from_slice(&b).expect("json");
    let keys = jwks["keys"].as_array().expect("keys");
    assert_eq!(keys.len(), 1);
    for key in keys {
        let mut names: Vec<_> = key.as_object().expect("obj").keys().cloned().collect();
        names.sort();
        assert_eq!(names, ["alg", "e", "kid", "kty", "n", "use"]);
        let n = keyshift_core::b64::decode(key["n"].as_str().expect("n")).expect("b64");
        assert_ne!(n[0], 0, "n has no leading zero byte");
    }
    let cond = Request::get("/.well-known/jwks.json")
        .header("if-none-match", etag.as_str())
        .body(Full::new(Bytes::new()))
        .expect("req");
    let (s, h, b) = f.send(cond).await;
    assert_eq!(s, StatusCode::NOT_MODIFIED);
    assert!(b.is_empty());
    assert_eq!(h["etag"].to_str().expect("etag"), etag);
    let stale = Request::get("/.well-known/jwks.json")
        .header("if-none-match", "\"other\"")
        .body(Full::new(Bytes::new()))
        .expect("req");
    assert_eq!(f.send(stale).await.0, StatusCode::OK);
}

#[tokio::test]
async fn legacy_phase_publishes_no_rsa_keys() {
    let f = fixture(Phase::Legacy).await;
    assert_eq!(f.jwks().await["keys"].as_array().map(Vec::len), Some(0));
    f.reload(Phase::Dual).await;
    assert_eq!(f.jwks().await["keys"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn metadata_documents_describe_the_endpoints() {
    let f = fixture(Phase::Dual).await;
    for path in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
    ] {
        let (s, _, b) = f.send(get(path)).await;
        assert_eq!(s, StatusCode::OK);
        let m: Value = serde_json::from_slice(&b).expect("json");
        assert_eq!(m["issuer"], "http://issuer.test");
        assert_eq!(m["token_endpoint"], "http://issuer.test/oauth/token");
        assert_eq!(m["jwks_uri"], "http://issuer.test/.well-known/jwks.json");
        assert_eq!(
            m["grant_types_supported"],
            serde_json::json!(["client_credentials"])
        );
        assert_eq!(
            m["token_endpoint_auth_methods_supported"],
            serde_json::json!(["client_secret_basic", "client_secret_post"])
        );
        assert_eq!(m["scopes_supported"], serde_json::json!(["read", "write"]));
    }
    let (s, _, b) = f.send(get("/healthz")).await;
    assert_eq!((s, &b[..]), (StatusCode::OK, &b"ok\n"[..]));
    let (s, _, b) = f.send(get("/metrics")).await;
    assert_eq!((s, &b[..]), (StatusCode::OK, &b"# metrics\n"[..]));
}

#[tokio::test]
async fn bad_config_on_reload_keeps_the_running_one() {
    let f = fixture(Phase::Dual).await;
    let cfg = f.config(Phase::Dual);
    let mut broken = cfg.require_issuer().expect("issuer").clone();
    broken.hs256_secret_file = Some(f.config_path.with_file_name("missing.secret"));
    let err = f
        .issuer
        .reload(cfg.phase, broken)
        .await
        .expect_err("missing secret");
    assert!(
        err.to_string().contains("issuer.hs256_secret_file"),
        "{err}"
    );
    let (s, _, _) = f.token_post(GOOD).await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn argon2_verifications_are_bounded_and_the_overflow_gets_429() {
    let f = fixture_with(
        Phase::Dual,
        &[argon2_client("svc-slow", b"slow-secret", 64, 1, 1)],
    )
    .await;
    let slow = "grant_type=client_credentials&client_id=svc-slow&client_secret=slow-secret";
    assert_eq!(f.token_post(slow).await.0, StatusCode::OK);
    // Unknown ids are checked against a configured client's hash (a decoy
    // chosen by a keyed hash of the id): some cost a slow-hash slot, some not.
    let ghost = |want_slow: bool| {
        let live = f.issuer.live();
        let id = (0..1_000)
            .map(|i| format!("ghost-{i}"))
            .find(|id| live.auth().decoy_for(id).is_slow() == want_slow)
            .expect("both kinds among 1,000 ids");
        format!("grant_type=client_credentials&client_id={id}&client_secret=slow-secret")
    };

    // Every slot busy (a flood in progress).
    let slots = f.issuer.hash_slots().clone();
    let n = u32::try_from(slots.available_permits()).expect("few permits");
    assert!(n >= 2, "at least two slots: {n}");
    let held = slots.acquire_many_owned(n).await.expect("all permits");
    tokio::time::pause(); // the queue wait passes without sleeping
    let (s, h, b) = f.token_post(slow).await;
    assert_eq!(
        (s, error_code(&b)),
        (StatusCode::TOO_MANY_REQUESTS, "slow_down"),
        "{b}"
    );
    assert_eq!(h["retry-after"], "1");
    assert_eq!(h["cache-control"], "no-store");
    // An unknown id with a slow decoy waits for a slot like a slow client...
    assert_eq!(
        f.token_post(&ghost(true)).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
    // ...one with a sha256 decoy does not, like a sha256 client.
    assert_eq!(
        f.token_post(&ghost(false)).await.0,
        StatusCode::UNAUTHORIZED
    );
    // sha256 clients need no slot.
    assert_eq!(f.token_post(GOOD).await.0, StatusCode::OK);
    // Being busy is not a failed authentication: nothing was counted (the
    // three counts are those of the sha256-decoy ghost's failure).
    assert_eq!(
        f.issuer.live().auth().limiter().tracked(),
        3,
        "a 429 for busy is no failure"
    );
    drop(held);
    assert_eq!(f.token_post(slow).await.0, StatusCode::OK);
    assert_eq!(
        f.issuer.hash_slots().available_permits(),
        usize::try_from(n).expect("usize"),
        "every permit came back"
    );
}

#[tokio::test]
async fn over_long_client_ids_are_invalid_clients_that_never_become_limiter_keys() {
    let f = fixture(Phase::Dual).await;
    let long = "x".repeat(257);
    for body in [
        format!("grant_type=client_credentials&client_id={long}&client_secret=s"),
        format!(
            "grant_type=client_credentials&client_id={}&client_secret=s",
            "y".repeat(16 * 1024 - 100)
        ),
    ] {
        let (s, h, b) = f.token_post(&body).await;
        assert_eq!(
            (s, error_code(&b)),
            (StatusCode::UNAUTHORIZED, "invalid_client")
        );
        assert!(h.get("www-authenticate").is_none());
    }
    let (s, h, _) = f
        .send(basic(&format!("{long}:s"), "grant_type=client_credentials"))
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(h.contains_key("www-authenticate"));
    // Only the address was counted...
    assert_eq!(f.issuer.live().auth().limiter().tracked(), 1);
    // ...toward its network's ceiling (5 x 3): 12 more and it is reached.
    for _ in 0..12 {
        let body = format!("grant_type=client_credentials&client_id={long}&client_secret=s");
        assert_eq!(f.token_post(&body).await.0, StatusCode::UNAUTHORIZED);
    }
    let (s, _, _) = f.token_post(GOOD).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
    // A 256-byte id is an ordinary (unknown) id: pair, network and id counted.
    let other = f.service_from([10, 0, 0, 9].into());
    let body = format!(
        "grant_type=client_credentials&client_id={}&client_secret=s",
        "z".repeat(256)
    );
    let (s, _, _) = into_parts(other.handle(form(&body)).await).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(f.issuer.live().auth().limiter().tracked(), 4);
}

#[tokio::test]
async fn ipv6_peers_are_limited_per_64() {
    let f = fixture(Phase::Dual).await;
    let bad = "grant_type=client_credentials&client_id=nobody&client_secret=nope";
    let from = |ip: &str| f.service_from(ip.parse().expect("ip"));
    for i in 1..=3 {
        let peer = from(&format!("2001:db8:0:7::{i}"));
        let (s, _, _) = into_parts(peer.handle(form(bad)).await).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
    }
    // Another address of the same /64, same id: limited.
    let (s, _, _) = into_parts(from("2001:db8:0:7:ffff::1").handle(form(bad)).await).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
    // The neighbouring /64 is not.
    let (s, _, _) = into_parts(from("2001:db8:0:8::1").handle(form(bad)).await).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}
/// A request body that sends `first` and then nothing, ever.
struct Stalls {
    first: Option<Bytes>,
}

impl hyper::body::Body for Stalls {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        match self.first.take() {
            Some(b) => std::task::Poll::Ready(Some(Ok(hyper::body::Frame::data(b)))),
            None => std::task::Poll::Pending,
        }
    }
}

fn stalling_post(first: &str, content_length: usize) -> Request<Stalls> {
    Request::post("/oauth/token")
        .header("content-type", "application/x-www-form-urlencoded")
        .header("content-length", content_length)
        .body(Stalls {
            first: Some(Bytes::from(first.to_owned())),
        })
        .expect("request")
}

#[tokio::test]
async fn a_body_that_never_finishes_gets_408_after_the_body_timeout() {
    let f = fixture(Phase::Dual).await;
    tokio::time::pause();
    let started = tokio::time::Instant::now();
    let resp = f
        .service()
        .handle(stalling_post("grant_type=client_cre", GOOD.len()))
        .await;
    let waited = started.elapsed();
    let limit = keyshift_issuer::routes::token::BODY_READ_TIMEOUT;
    assert!(
        waited >= limit && waited < limit + Duration::from_secs(1),
        "answered at the timeout, not before: {waited:?}"
    );
    let (s, h, b) = into_parts(resp).await;
    assert_eq!(s, StatusCode::REQUEST_TIMEOUT);
    assert_eq!(h["connection"], "close");
    let body: Value = serde_json::from_slice(&b).expect("json");
    assert_eq!(error_code(&body), "invalid_request");
}

#[tokio::test]
async fn a_declared_length_over_the_limit_gets_413_without_reading_the_body() {
    let f = fixture(Phase::Dual).await;
    // The body never arrives: only an answer from the header can come back.
    let resp = tokio::time::timeout(
        Duration::from_secs(5),
        f.service().handle(stalling_post("", 16 * 1024 + 1)),
    )
    .await
    .expect("answered at once");
    let (s, h, b) = into_parts(resp).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(h["cache-control"], "no-store");
    let body: Value = serde_json::from_slice(&b).expect("json");
    assert_eq!(error_code(&body), "invalid_request");
}

#[tokio::test]
async fn legacy_phase_issues_hs256_and_publishes_no_key() {
    let f = fixture(Phase::Legacy).await;
    let (s, _, body) = f.token_post(GOOD).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let token = body["access_token"].as_str().expect("token");
    assert_eq!(
        jsonwebtoken::decode_header(token).expect("h").alg,
        Algorithm::HS256
    );
    let claims = verify_independently(&f, token).await;
    assert_eq!(claims.client_id, "svc-a");
    assert!(f.jwks_kids().await.is_empty());
}

#[tokio::test]
async fn asymmetric_phase_never_reads_a_leftover_secret_file() {
    let f = fixture(Phase::Transition).await;
    // The operator destroyed the secret but left its path in the config.
    std::fs::remove_file(f.dir.path().join("hs256.secret")).expect("destroy secret");
    f.try_reload_with(Phase::Asymmetric, |cfg| {
        cfg.issuer("hs256_secret_file", "hs256.secret")
    })
    .await
    .expect("asymmetric needs no secret: the file is not read");
    let (s, _, body) = f.token_post(GOOD).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    // Back to transition the secret is needed again: refused, with the field named.
    let err = f
        .try_reload(Phase::Transition)
        .await
        .expect_err("secret missing");
    assert!(err.to_string().contains("hs256_secret_file"), "{err}");
}

#[tokio::test]
async fn asymmetric_phase_issues_rs256_with_no_secret_configured() {
    let f = fixture(Phase::Asymmetric).await;
    let live = f.issuer.live();
    assert!(live.config().hs256_secret_file.is_none());
    let (s, _, body) = f.token_post(GOOD).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let token = body["access_token"].as_str().expect("token");
    assert_eq!(
        jsonwebtoken::decode_header(token).expect("h").alg,
        Algorithm::RS256
    );
    verify_independently(&f, token).await;
}

#[tokio::test]
async fn body_client_id_must_match_the_basic_one() {
    let f = fixture(Phase::Dual).await;
    let (s, _, b) = f
        .send(basic(
            "svc-a:secret-a",
            "grant_type=client_credentials&client_id=svc%3Ab%25%2B",
        ))
        .await;
    let b: Value = serde_json::from_slice(&b).expect("json");
    assert_eq!(
        (s, error_code(&b)),
        (StatusCode::BAD_REQUEST, "invalid_request")
    );
    // The same id repeated in the body is fine.
    let (s, _, _) = f
        .send(basic(
            "svc-a:secret-a",
            "grant_type=client_credentials&client_id=svc-a",
        ))
        .await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn form_content_type_with_parameters_is_accepted() {
    let f = fixture(Phase::Dual).await;
    for content_type in [
        "application/x-www-form-urlencoded; charset=UTF-8",
        "Application/X-WWW-Form-Urlencoded;charset=utf-8",
    ] {
        let req = Request::post("/oauth/token")
            .header("content-type", content_type)
            .body(Full::new(Bytes::from_static(GOOD.as_bytes())))
            .expect("request");
        let (s, _, b) = f.send(req).await;
        assert_eq!(s, StatusCode::OK, "{content_type}: {b:?}");
    }
    let req = Request::post("/oauth/token")
        .header("content-type", "application/x-www-form-urlencodedx")
        .body(Full::new(Bytes::from_static(GOOD.as_bytes())))
        .expect("request");
    assert_eq!(f.send(req).await.0, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn guesses_in_flight_at_once_get_no_more_tries_than_the_limit() {
    // The fixture allows 3 failures per (client id, network), so 15 per
    // network and 60 per client id. An argon2 client: every guess waits for
    // a hashing slot, so all 200 are in flight together.
    let f = fixture_with(
        Phase::Dual,
        &[argon2_client("svc-slow", b"slow-secret", 64, 1, 1)],
    )
    .await;
    let storm = |from_one_address: bool, body: fn(u32) -> String| {
        let mut set = tokio::task::JoinSet::new();
        for i in 0..200u32 {
            let ip: std::net::IpAddr = if from_one_address {
                [192, 0, 2, 1].into()
            } else {
                [
                    10,
                    1,
                    u8::try_from(i / 200).expect("small"),
                    u8::try_from(i % 200 + 1).expect("small"),
                ]
                .into()
            };
            let svc = f.service_from(ip);
            let req = form(&body(i));
            set.spawn(async move { into_parts(svc.handle(req).await).await.0 });
        }
        set
    };
    let count =
        |answers: &[StatusCode], want: StatusCode| answers.iter().filter(|s| **s == want).count();

    // One client id guessed from 200 addresses: the id's ceiling holds.
    let answers = storm(false, |_| {
        "grant_type=client_credentials&client_id=svc-slow&client_secret=wrong".to_owned()
    })
    .join_all()
    .await;
    assert_eq!(count(&answers, StatusCode::UNAUTHORIZED), 60, "{answers:?}");
    assert_eq!(count(&answers, StatusCode::TOO_MANY_REQUESTS), 140);

    // 200 ids sprayed from one address: the network's ceiling holds.
    f.clock.advance(Duration::from_secs(61));
    let answers = storm(true, |i| {
        format!("grant_type=client_credentials&client_id=ghost-{i}&client_secret=wrong")
    })
    .join_all()
    .await;
    assert_eq!(count(&answers, StatusCode::UNAUTHORIZED), 15, "{answers:?}");
    assert_eq!(count(&answers, StatusCode::TOO_MANY_REQUESTS), 185);
    // And one id guessed from one address: the pair's limit holds.
    f.clock.advance(Duration::from_secs(61));
    let answers = storm(true, |_| {
        "grant_type=client_credentials&client_id=svc-slow&client_secret=wrong".to_owned()
    })
    .join_all()
    .await;
    assert_eq!(count(&answers, StatusCode::UNAUTHORIZED), 3, "{answers:?}");

    // The right secret still gets in once the window has passed.
    f.clock.advance(Duration::from_secs(61));
    let right = "grant_type=client_credentials&client_id=svc-slow&client_secret=slow-secret";
    assert_eq!(f.token_post(right).await.0, StatusCode::OK);
}

#[tokio::test]
async fn bcrypt_and_pbkdf2_clients_of_an_old_store_authenticate() {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let bcrypt_hash = bcrypt::hash_with_salt(b"old-bcrypt-secret", 4, *b"0123456789abcdef")
        .expect("bcrypt")
        .format_for_version(bcrypt::Version::TwoY);
    let salt = SaltString::encode_b64(b"0123456789abcdef").expect("salt");
    let pbkdf2_hash = pbkdf2::Pbkdf2
        .hash_password_customized(
            b"old-pbkdf2-secret",
            None,
            None,
            pbkdf2::Params {
                rounds: 1_000,
                output_length: 32,
            },
            &salt,
        )
        .expect("pbkdf2")
        .to_string();
    let f = fixture_with(
        Phase::Dual,
        &[
            keyshift_testkit::Client::with_hash("old-bcrypt", bcrypt_hash, &["read"]),
            keyshift_testkit::Client::with_hash("old-pbkdf2", pbkdf2_hash, &["read"]),
        ],
    )
    .await;
    for (id, secret) in [
        ("old-bcrypt", "old-bcrypt-secret"),
        ("old-pbkdf2", "old-pbkdf2-secret"),
    ] {
        let ok = format!("grant_type=client_credentials&client_id={id}&client_secret={secret}");
        let (s, _, b) = f.token_post(&ok).await;
        assert_eq!(s, StatusCode::OK, "{id}: {b}");
        assert_eq!(b["scope"], "read");
        let bad = format!("grant_type=client_credentials&client_id={id}&client_secret=x{secret}");
        assert_eq!(f.token_post(&bad).await.0, StatusCode::UNAUTHORIZED, "{id}");
    }
}

/// A request body whose connection breaks before any byte arrives.
struct Broken;

impl hyper::body::Body for Broken {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        std::task::Poll::Ready(Some(Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "peer reset",
        ))))
    }
}

#[tokio::test]
async fn a_body_that_breaks_off_is_an_invalid_request_not_a_server_error() {
    let f = fixture(Phase::Dual).await;
    let req = Request::post("/oauth/token")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Broken)
        .expect("request");
    let (s, _, b) = into_parts(f.service().handle(req).await).await;
    let body: Value = serde_json::from_slice(&b).expect("json");
    assert_eq!(
        (s, error_code(&body)),
        (StatusCode::BAD_REQUEST, "invalid_request"),
        "{body}"
    );
    // Nothing was counted against anyone: no credentials were read.
    assert_eq!(f.issuer.live().auth().limiter().tracked(), 0);
}
