//! The attack catalog: each token or request below must be refused, and
//! each test fails if the check it targets is removed. Every token goes
//! through the service (`/verify`) with a JWKS served by a test server.

mod common;

use common::*;
use http::StatusCode;
use keyshift_core::{b64, Phase};
use serde_json::json;

fn invalid(challenge: &str, description: &str) -> bool {
    challenge.contains("error=\"invalid_token\"") && challenge.contains(description)
}

#[tokio::test]
async fn valid_tokens_pass_and_set_forward_auth_headers() {
    let f = fixture(Phase::Dual, "").await;
    let (a, _) = keys();
    let req = http::Request::get("/verify")
        .header("authorization", format!("Bearer {}", rs256(a, &claims())))
        .body(())
        .expect("req");
    let resp = f.service.handle(req).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let h = resp.headers();
    assert_eq!(h["x-auth-subject"], "svc-a");
    assert_eq!(h["x-auth-client"], "svc-a");
    assert_eq!(h["x-auth-scope"], "read write");
    assert_eq!(h["x-auth-alg"], "RS256");
    assert_eq!(h["x-auth-kid"], "key-1");
    assert_eq!(
        f.check(&hs256(&claims())).await.0,
        StatusCode::OK,
        "legacy HS256 without kid"
    );
}

#[tokio::test]
async fn alg_none_in_every_spelling_is_refused() {
    let f = fixture(Phase::Dual, "").await;
    for alg in ["none", "None", "NONE", "nOnE"] {
        let header = json!({"alg": alg, "typ": "JWT"}).to_string();
        let input = signing_input(&header, &claims().to_string());
        // With an empty signature (the classic form) and with any signature.
        for (token, why) in [
            (format!("{input}."), "empty segment"),
            (format!("{input}.AAAA"), "algorithm not accepted"),
        ] {
            let (s, c) = f.check(&token).await;
            assert_eq!(s, StatusCode::UNAUTHORIZED, "{alg}");
            assert!(invalid(&c, why), "{alg}: {c}");
        }
    }
}

#[tokio::test]
async fn hs256_signed_with_the_rsa_public_key_is_refused() {
    let f = fixture(Phase::Dual, "").await;
    let (a, _) = keys();
    let header = json!({"alg":"HS256","typ":"JWT","kid":a.kid}).to_string();
    let input = signing_input(&header, &claims().to_string());
    for key in [a.public_pem().into_bytes(), a.modulus()] {
        let (s, c) = f.check(&sign_hs(&key, &input)).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        assert!(invalid(&c, "signature"), "{c}");
    }
}

#[tokio::test]
async fn stripped_or_tampered_signatures_are_refused() {
    let f = fixture(Phase::Dual, "").await;
    let (a, _) = keys();
    let token = rs256(a, &claims());
    let (input, _) = token.rsplit_once('.').expect("3 parts");
    let (s, _) = f.check(&format!("{input}.")).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // Tampered payload: same header and signature, scope widened.
    let mut c = claims();
    c["scope"] = json!("read write admin");
    let header = json!({"alg":"RS256","typ":"at+jwt","kid":a.kid}).to_string();
    let tampered_input = signing_input(&header, &c.to_string());
    let sig = token.rsplit('.').next().expect("sig");
    let (s, ch) = f.check(&format!("{tampered_input}.{sig}")).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(invalid(&ch, "signature"), "{ch}");
    let hs = hs256(&claims());
    let hs_sig = hs.rsplit('.').next().expect("sig");
    let hs_tampered = signing_input(r#"{"alg":"HS256","typ":"JWT"}"#, &c.to_string());
    assert_eq!(
        f.check(&format!("{hs_tampered}.{hs_sig}")).await.0,
        StatusCode::UNAUTHORIZED
    );
}

/// An HS256 token over exactly `input` (whatever its shape), so the only
/// thing that can refuse it is the check under test.
fn hs_over(input: &str) -> String {
    sign_hs(SECRET, input)
}

const HS_HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

#[tokio::test]
async fn wrong_segment_counts_and_encodings_are_malformed() {
    let f = fixture(Phase::Dual, "").await;
    let h = b64::encode(HS_HEADER);
    let p = b64::encode(claims().to_string());
    // Every token below carries a valid HMAC over the text before its last
    // dot: a lenient splitter or base64 decoder would accept it.
    let cases: Vec<(String, &str)> = vec![
        (format!("{h}.{p}"), "compact JWS"),
        (hs_over(&format!("{h}.{p}.{p}")), "more than three segments"),
        (
            hs_over(&format!("{h}.{p}.{p}.{p}")),
            "more than three segments",
        ),
        (hs_over(&format!("{h}=.{p}")), "bad base64url"),
        (hs_over(&format!("{h}.{p}=")), "bad base64url"),
        (hs_over(&format!("{h}.{} ", p)), "bad base64url"),
        (hs_over(&format!("{h}. {p}")), "bad base64url"),
        (
            hs_over(&format!("{}.{p}", b64::encode("not json"))),
            "header is not a JSON object",
        ),
    ];
    // The standard alphabet (`+`, `/`) instead of base64url: find claims whose
    // encoding has a `-` or `_`, swap it, and sign what results.
    let std_alphabet = (0..500)
        .map(|i| {
            let mut c = claims();
            c["jti"] = json!(format!("j?>~{i}"));
            b64::encode(c.to_string())
        })
        .find(|p| p.contains(['-', '_']))
        .expect("some encoding has - or _")
        .replace('-', "+")
        .replace('_', "/");
    let mut cases = cases;
    cases.push((hs_over(&format!("{h}.{std_alphabet}")), "bad base64url"));
    for (token, why) in cases {
        let (s, c) = f.check(&token).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{token}");
        assert!(invalid(&c, why), "{token}: {c}");
    }
    // The issuer's own header in the wrong alphabet takes no fast path either.
    let (s, _) = f.check(&hs_over(&format!("{h}.{p}"))).await;
    assert_eq!(s, StatusCode::OK, "the same token, well-formed, passes");
}

#[tokio::test]
async fn duplicate_claims_and_headers_are_refused() {
    let f = fixture(Phase::Dual, "").await;
    let (a, _) = keys();
    let header = json!({"alg":"RS256","typ":"at+jwt","kid":a.kid}).to_string();
    let payload = format!(
        r#"{{"iss":"{ISS}","aud":"{AUD}","sub":"svc-a","sub":"admin","exp":{},"iat":{NOW}}}"#,
        NOW + 600
    );
    let (s, c) = f
        .check(&sign_rs(a, &signing_input(&header, &payload)))
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(invalid(&c, "claims"), "{c}");
    // Duplicate header members, each value valid on its own, properly signed.
    for dup_header in [
        format!(r#"{{"alg":"RS256","kid":"{0}","kid":"{0}"}}"#, a.kid),
        format!(r#"{{"alg":"RS256","alg":"RS256","kid":"{}"}}"#, a.kid),
    ] {
        let (s, c) = f
            .check(&sign_rs(
                a,
                &signing_input(&dup_header, &claims().to_string()),
            ))
            .await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{dup_header}");
        assert!(invalid(&c, "header is not a JSON object"), "{c}");
    }
}

#[tokio::test]
async fn crit_headers_are_refused_even_empty() {
    let f = fixture(Phase::Dual, "").await;
    let (a, _) = keys();
    for crit in [json!(["exp"]), json!(["b64"]), json!([])] {
        let header =
            json!({"alg":"RS256","typ":"at+jwt","kid":a.kid,"crit":crit,"exp":1}).to_string();
        let (s, c) = f
            .check(&sign_rs(a, &signing_input(&header, &claims().to_string())))
            .await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{crit}");
        assert!(invalid(&c, "crit"), "{c}");
    }
}

#[tokio::test]
async fn header_supplied_keys_and_urls_are_ignored() {
    let f = fixture(Phase::Dual, "").await;
    let (_, attacker) = keys();
    let before = f.server.hits();
    // The attacker signs with its own key and ships it in the header.
    let header = json!({
        "alg":"RS256","typ":"at+jwt","kid":"key-1",
        "jwk": attacker.jwk(),
        "jku": format!("http://{}/attacker-jwks", f.server.addr),
        "x5u": format!("http://{}/attacker-cert", f.server.addr),
        "x5c": ["MIIB"],
    })
    .to_string();
    let (s, c) = f
        .check(&sign_rs(
            attacker,
            &signing_input(&header, &claims().to_string()),
        ))
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(invalid(&c, "signature"), "{c}");
    // With a kid only the attacker's embedded key has: no key, and no request to jku/x5u.
    let header = json!({"alg":"RS256","kid":"key-2","jku": format!("http://{}/attacker-jwks", f.server.addr)}).to_string();
    let (s, c) = f
        .check(&sign_rs(
            attacker,
            &signing_input(&header, &claims().to_string()),
        ))
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(invalid(&c, "unknown key id"), "{c}");
    let paths = f.server.paths.lock().expect("lock").clone();
    assert!(
        paths.iter().all(|p| p == "/.well-known/jwks.json"),
        "{paths:?}"
    );
    assert!(
        f.server.hits() <= before + 1,
        "at most the unknown-kid refetch"
    );
}

#[tokio::test]
async fn es256_with_zero_signature_is_refused() {
    let f = fixture(Phase::Dual, "").await;
    let header = json!({"alg":"ES256","typ":"at+jwt","kid":"key-1"}).to_string();
    let token = format!(
        "{}.{}",
        signing_input(&header, &claims().to_string()),
        b64::encode([0u8; 64])
    );
    let (s, c) = f.check(&token).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(invalid(&c, "algorithm"), "{c}");
}

#[tokio::test]
async fn hostile_kids_are_unknown_not_crashes() {
    let f = fixture(Phase::Dual, "").await;
    let (a, _) = keys();
    for kid in ["../../../../etc/passwd".to_owned(), "k".repeat(5_000)] {
        let header = json!({"alg":"RS256","typ":"at+jwt","kid":kid}).to_string();
        let (s, c) = f
            .check(&sign_rs(a, &signing_input(&header, &claims().to_string())))
            .await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        assert!(c.contains("invalid_token"), "{c}");
    }
}

#[tokio::test]
async fn time_claims_are_enforced_with_leeway() {
    let f = fixture(Phase::Dual, "").await;
    let (a, _) = keys();
    let with = |changes: serde_json::Value| {
        let mut c = claims();
        for (k, v) in changes.as_object().expect("obj") {
            if v.is_null() {
                c.as_object_mut().expect("obj").remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        rs256(a, &c)
    };
    let cases = [
        (json!({"exp": NOW - 31}), "expired"),
        (json!({"nbf": NOW + 31}), "not yet valid"),
        (json!({"iat": NOW + 31}), "not yet valid"),
        (json!({"exp": null}), "exp is required"),
        (json!({"exp": "1900000600"}), "wrong type"),
        (json!({"exp": 1e300}), "out of range"),
        (json!({"exp": NOW + 7200}), "lifetime"),
        (json!({"iss": "https://evil.test"}), "wrong issuer"),
        (json!({"iss": [ISS]}), "wrong type"),
        (json!({"aud": "https://other.test"}), "wrong audience"),
    ];
    for (change, why) in cases {
        let (s, c) = f.check(&with(change.clone())).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{change}");
        assert!(invalid(&c, why), "{change}: {c}");
    }
    assert_eq!(
        f.check(&with(json!({"exp": NOW - 29}))).await.0,
        StatusCode::OK,
        "inside leeway"
    );
    assert_eq!(
        f.check(&with(json!({"aud": ["x", AUD]}))).await.0,
        StatusCode::OK,
        "aud array"
    );
}

#[tokio::test]
async fn typ_is_checked_strictly_when_asked() {
    let lenient = fixture(Phase::Dual, "").await;
    let strict = fixture(Phase::Dual, "strict_typ = true").await;
    let (a, _) = keys();
    let token = |typ: Option<&str>| {
        let mut h = json!({"alg":"RS256","kid":a.kid});
        if let Some(t) = typ {
            h["typ"] = json!(t);
        }
        sign_rs(a, &signing_input(&h.to_string(), &claims().to_string()))
    };
    for typ in [
        Some("at+jwt"),
        Some("application/at+jwt"),
        Some("JWT"),
        None,
    ] {
        assert_eq!(
            lenient.check(&token(typ)).await.0,
            StatusCode::OK,
            "{typ:?}"
        );
    }
    assert_eq!(
        lenient.check(&token(Some("id_token+jwt"))).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(strict.check(&token(Some("at+jwt"))).await.0, StatusCode::OK);
    for typ in [Some("JWT"), None] {
        assert_eq!(
            strict.check(&token(typ)).await.0,
            StatusCode::UNAUTHORIZED,
            "{typ:?}"
        );
    }
}

#[tokio::test]
async fn small_and_duplicated_jwks_keys_are_not_selectable() {
    let (a, b) = keys();
    // A 1024-bit modulus under kid "weak", and key-2 listed twice with different moduli.
    let mut weak = vec![0xc5u8; 128];
    weak[127] |= 1;
    let body = json!({"keys": [
        a.jwk(),
        {"kty":"RSA","kid":"weak","n": b64::encode(&weak),"e":"AQAB"},
        b.jwk(),
        {"kty":"RSA","kid":"key-2","n": a.n,"e":"AQAB"},
    ]})
    .to_string();
    let f = fixture_with(Phase::Dual, "", JwksServer::start(body).await).await;
    assert_eq!(f.check(&rs256(a, &claims())).await.0, StatusCode::OK);
    let header = json!({"alg":"RS256","kid":"weak"}).to_string();
    let (s, c) = f
        .check(&sign_rs(a, &signing_input(&header, &claims().to_string())))
        .await;
    assert!(
        s == StatusCode::UNAUTHORIZED && invalid(&c, "unknown key id"),
        "{c}"
    );
    let (s, c) = f.check(&rs256(b, &claims())).await;
    assert!(
        s == StatusCode::UNAUTHORIZED && invalid(&c, "unknown key id"),
        "{c}"
    );
}

#[tokio::test]
async fn hs256_is_refused_in_phase_asymmetric_and_rs256_in_legacy() {
    let f = fixture(Phase::Asymmetric, "").await;
    let (s, c) = f.check(&hs256(&claims())).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(invalid(&c, "algorithm not accepted"), "{c}");
    assert_eq!(
        f.check(&rs256(&keys().0, &claims())).await.0,
        StatusCode::OK
    );

    let legacy = fixture(Phase::Legacy, "").await;
    assert_eq!(legacy.check(&hs256(&claims())).await.0, StatusCode::OK);
    assert_eq!(
        legacy.check(&rs256(&keys().0, &claims())).await.0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn request_shapes_get_the_right_challenge() {
    let f = fixture(Phase::Dual, "").await;
    let token = hs256(&claims());
    // Missing token and another scheme: bare challenge, no error code (RFC 6750 §3.1).
    for headers in [
        vec![],
        vec![("authorization", "Basic dXNlcjpwYXNz".to_owned())],
    ] {
        let (s, c) = f.request(&headers, "/verify").await;
        assert_eq!(
            (s, c.as_str()),
            (StatusCode::UNAUTHORIZED, "Bearer realm=\"keyshift\"")
        );
    }
    // The scheme is case-insensitive.
    let (s, _) = f
        .request(&[("authorization", format!("bearer {token}"))], "/verify")
        .await;
    assert_eq!(s, StatusCode::OK);
    // Two Authorization headers: 400 invalid_request.
    let (s, c) = f
        .request(
            &[
                ("authorization", format!("Bearer {token}")),
                ("authorization", format!("Bearer {token}")),
            ],
            "/verify",
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(c.contains("invalid_request"), "{c}");
    // Oversized token: refused before decoding.
    let (s, c) = f
        .check(&format!("{}.{}.AAAA", "a".repeat(9_000), "b"))
        .await;
    assert!(
        s == StatusCode::UNAUTHORIZED && invalid(&c, "too large"),
        "{c}"
    );
}

#[tokio::test]
async fn insufficient_scope_is_403_naming_the_scope() {
    let f = fixture(Phase::Dual, "").await;
    let token = hs256(&claims());
    let auth = ("authorization", format!("Bearer {token}"));
    assert_eq!(
        f.request(std::slice::from_ref(&auth), "/verify?scope=read+write")
            .await
            .0,
        StatusCode::OK
    );
    let (s, c) = f
        .request(std::slice::from_ref(&auth), "/verify?scope=read+admin")
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(
        c.contains("error=\"insufficient_scope\"") && c.contains("scope=\"read admin\""),
        "{c}"
    );
    let (s, _) = f
        .request(
            &[auth.clone(), ("x-auth-require-scope", "admin".to_owned())],
            "/verify",
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // A required scope that could break the challenge is a malformed request,
    // never dropped (which would let the token pass) nor echoed raw.
    for query in ["/verify?scope=read%22%2C+x%3D%22", "/verify?scope=r%5Cd"] {
        let (s, c) = f.request(std::slice::from_ref(&auth), query).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{query}");
        assert!(c.contains("error=\"invalid_request\""), "{c}");
    }
    let (s, _) = f
        .request(
            &[auth, ("x-auth-require-scope", "ad\"min".to_owned())],
            "/verify",
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_one_mebibyte_header_is_refused_cleanly_over_real_http() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let f = fixture(Phase::Dual, "").await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let state = std::sync::Arc::new(keyshift_verifier::State {
        verifier: f.verifier.clone(),
        render_metrics: std::sync::Arc::new(String::new),
    });
    let server = tokio::spawn(keyshift_verifier::run(
        listener,
        state,
        std::future::pending(),
    ));
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let big = format!(
        "GET /verify HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\r\n",
        "a".repeat(1 << 20)
    );
    // The server may close before reading it all; a write error is fine.
    let _ = stream.write_all(big.as_bytes()).await;
    let mut buf = vec![0u8; 256];
    let n = tokio::time::timeout(std::time::Duration::from_secs(10), stream.read(&mut buf))
        .await
        .expect("answer in time")
        .unwrap_or(0);
    let head = String::from_utf8_lossy(&buf[..n]);
    assert!(
        head.starts_with("HTTP/1.1 431") || head.starts_with("HTTP/1.1 400") || n == 0,
        "{head}"
    );
    // And the server still serves.
    let mut s2 = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s2.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut out = String::new();
    s2.read_to_string(&mut out).await.expect("read");
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    server.abort();
}

#[tokio::test]
async fn the_issuers_exact_hs256_header_takes_the_fast_path_and_still_is_checked() {
    use keyshift_core::secret::HmacSecret;
    let f = fixture(Phase::Dual, "").await;
    let kid = HmacSecret::new(SECRET.to_vec())
        .expect("secret")
        .kid()
        .to_owned();
    // The header the issuer writes (core's one encoding of it)...
    let header_b64 =
        keyshift_core::claims::JwsHeader::new(keyshift_core::Alg::Hs256, &kid).encode();
    let header =
        String::from_utf8(keyshift_core::b64::decode(&header_b64).expect("b64")).expect("utf8");
    // ...is the one the policy recognises without decoding.
    assert_eq!(
        f.verifier
            .policy()
            .issuer_hs256_header(&header_b64)
            .map(|k| k.kid.as_str()),
        Some(kid.as_str())
    );
    let good = sign_hs(SECRET, &signing_input(&header, &claims().to_string()));
    assert!(good.starts_with(&format!("{header_b64}.")), "{good}");
    let req = http::Request::get("/verify")
        .header("authorization", format!("Bearer {good}"))
        .body(())
        .expect("req");
    let resp = f.service.handle(req).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["x-auth-kid"], kid.as_str());
    // Same header, wrong key: the signature still decides.
    let forged = sign_hs(
        b"another-secret-another-secret-!!",
        &signing_input(&header, &claims().to_string()),
    );
    assert_eq!(f.check(&forged).await.0, StatusCode::UNAUTHORIZED);
    // Same header in phase asymmetric (secret still configured): refused.
    // (Forced: the HS256 token just accepted is still valid.)
    let cfg = config(Phase::Asymmetric, &f.server.url(), "force_phase = true");
    let secret = HmacSecret::new(SECRET.to_vec()).expect("secret");
    f.verifier
        .reload(
            Phase::Asymmetric,
            cfg.require_verifier().expect("v"),
            Some(secret),
        )
        .await
        .expect("reload");
    let (s, c) = f.check(&good).await;
    assert!(
        s == StatusCode::UNAUTHORIZED && invalid(&c, "algorithm not accepted"),
        "{c}"
    );
}

#[tokio::test]
async fn empty_subject_and_invalid_utf8_in_ignored_members_are_refused_though_signed() {
    let f = fixture(Phase::Dual, "").await;
    let header = json!({"alg":"HS256","typ":"at+jwt"}).to_string();
    // `"sub": ""` would be forwarded as an empty X-Auth-Subject.
    let mut empty_sub = claims();
    empty_sub["sub"] = json!("");
    let (s, c) = f
        .check(&sign_hs(
            SECRET,
            &signing_input(&header, &empty_sub.to_string()),
        ))
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(invalid(&c, "sub missing, empty or not printable"), "{c}");
    // Invalid UTF-8 (and an overlong encoding) inside a member nobody reads,
    // in the header and in the payload, each properly signed.
    let payload = claims().to_string();
    let bad_payload = |junk: &[u8]| {
        let mut p = payload.trim_end_matches('}').as_bytes().to_vec();
        p.extend_from_slice(b",\"x\":\"");
        p.extend_from_slice(junk);
        p.extend_from_slice(b"\"}");
        p
    };
    for junk in [&b"\xff\xfe"[..], b"\xc0\xaf"] {
        let mut bad_header = br#"{"alg":"HS256","x":""#.to_vec();
        bad_header.extend_from_slice(junk);
        bad_header.extend_from_slice(b"\"}");
        for (h, p, why) in [
            (
                keyshift_core::b64::encode(&bad_header),
                keyshift_core::b64::encode(payload.as_bytes()),
                "header is not UTF-8",
            ),
            (
                keyshift_core::b64::encode(header.as_bytes()),
                keyshift_core::b64::encode(bad_payload(junk)),
                "payload is not UTF-8",
            ),
        ] {
            let input = format!("{h}.{p}");
            let mut mac =
                <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(SECRET).expect("hmac");
            hmac::Mac::update(&mut mac, input.as_bytes());
            let sig = keyshift_core::b64::encode(hmac::Mac::finalize(mac).into_bytes());
            let (s, c) = f.check(&format!("{input}.{sig}")).await;
            assert_eq!(s, StatusCode::UNAUTHORIZED, "{why}");
            assert!(invalid(&c, why), "{c}");
        }
    }
}
