//! The issuer's HTTP behaviour, by calling the service directly (no sockets).

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use keyshift_core::claims::AccessTokenClaims;
use keyshift_core::clock::ManualClock;
use keyshift_core::secret::SecretHash;
use keyshift_core::{Clock, Config};
use keyshift_issuer::keystore::KeyStore;
use keyshift_issuer::rotation::RotationPolicy;
use keyshift_issuer::{Issuer, IssuerService, StartError};
use serde_json::Value;

const T0: u64 = 1_900_000_000;

struct Fixture {
    _dir: tempfile::TempDir,
    config_path: std::path::PathBuf,
    clock: Arc<ManualClock>,
    issuer: Arc<Issuer>,
}

fn config_text(phase: &str, extra_issuer: &str) -> String {
    let weird = SecretHash::sha256_of(b"p+ss w:rd%").to_config_string();
    let a = SecretHash::sha256_of(b"secret-a").to_config_string();
    format!(
        r#"phase = "{phase}"
[issuer]
issuer = "http://issuer.test"
audience = "https://api.test"
hs256_secret_file = "hs256.secret"
token_ttl = "10m"
key_prepublish = "15m"
rotate_every = "30d"
failed_auth_limit = 3
{extra_issuer}

[[issuer.clients]]
id = "svc-a"
secret_hash = "{a}"
scopes = ["read", "write"]

[[issuer.clients]]
id = "svc:b%+"
secret_hash = "{weird}"
scopes = ["read"]
"#
    )
}

fn load(dir: &Path, phase: &str) -> Config {
    load_ttl(dir, phase, "10m")
}

/// The fixture's config with another `token_ttl`.
fn load_ttl(dir: &Path, phase: &str, ttl: &str) -> Config {
    let path = dir.join("keyshift.toml");
    let text =
        config_text(phase, "").replace("token_ttl = \"10m\"", &format!("token_ttl = \"{ttl}\""));
    std::fs::write(&path, text).expect("write config");
    Config::load(&path).expect("valid config")
}

async fn fixture(phase: &str) -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("hs256.secret"), [b'k'; 32]).expect("secret");
    let cfg = load(dir.path(), phase);
    let clock = ManualClock::at_secs(T0);
    let issuer = Issuer::start(
        cfg.phase,
        cfg.require_issuer().expect("issuer").clone(),
        clock.clone(),
        Arc::new(|| "# metrics\n".to_owned()),
    )
    .await
    .expect("start");
    Fixture {
        config_path: dir.path().join("keyshift.toml"),
        _dir: dir,
        clock,
        issuer: Arc::new(issuer),
    }
}

impl Fixture {
    fn service(&self) -> IssuerService {
        self.service_from([10, 0, 0, 1].into())
    }

    fn service_from(&self, ip: IpAddr) -> IssuerService {
        IssuerService::new(self.issuer.clone(), ip)
    }

    async fn send(&self, req: Request<Full<Bytes>>) -> (StatusCode, http::HeaderMap, Bytes) {
        into_parts(self.service().handle(req).await).await
    }

    async fn token_post(&self, body: &str) -> (StatusCode, http::HeaderMap, Value) {
        let (s, h, b) = self.send(form(body)).await;
        (s, h, serde_json::from_slice(&b).unwrap_or(Value::Null))
    }

    async fn jwks(&self) -> Value {
        let (s, _, b) = self.send(get("/.well-known/jwks.json")).await;
        assert_eq!(s, StatusCode::OK);
        serde_json::from_slice(&b).expect("jwks json")
    }

    async fn reload(&self, phase: &str) {
        self.try_reload(phase).await.expect("reload");
    }

    async fn try_reload(&self, phase: &str) -> Result<(), StartError> {
        self.try_reload_ttl(phase, "10m").await
    }

    async fn try_reload_ttl(&self, phase: &str, ttl: &str) -> Result<(), StartError> {
        let cfg = load_ttl(self.config_path.parent().expect("dir"), phase, ttl);
        self.issuer
            .reload(cfg.phase, cfg.require_issuer().expect("issuer").clone())
            .await
    }

    /// A new issuer on the same config and key directory, as after a restart.
    async fn restart(self) -> Fixture {
        let cfg = Config::load(&self.config_path).expect("config");
        let issuer = Issuer::start(
            cfg.phase,
            cfg.require_issuer().expect("issuer").clone(),
            self.clock.clone(),
            Arc::new(|| "# metrics\n".to_owned()),
        )
        .await
        .expect("restart");
        Fixture {
            issuer: Arc::new(issuer),
            ..self
        }
    }

    /// The key directory, as `keyshift keys …` opens it.
    fn key_store(&self) -> KeyStore {
        KeyStore::new(self.config_path.with_file_name("keys"))
    }

    /// The kid of the active RSA key, from the manifest on disk.
    fn active_kid(&self) -> String {
        self.key_store()
            .load()
            .expect("keys")
            .active()
            .expect("active")
            .kid
            .clone()
    }

    /// The `kid` header of a freshly minted token.
    async fn signing_kid(&self) -> String {
        let (s, _, body) = self.token_post(GOOD).await;
        assert_eq!(s, StatusCode::OK, "{body}");
        jsonwebtoken::decode_header(body["access_token"].as_str().expect("token"))
            .expect("header")
            .kid
            .expect("kid")
    }

    async fn jwks_kids(&self) -> Vec<String> {
        self.jwks().await["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .map(|k| k["kid"].as_str().expect("kid").to_owned())
            .collect()
    }
}

/// The fixture's rotation settings, for offline `keyshift keys` operations.
fn fixture_policy() -> RotationPolicy {
    RotationPolicy {
        rotate_every: Some(Duration::from_secs(30 * 86_400)),
        prepublish: Duration::from_secs(900),
        token_ttl: Duration::from_secs(600),
    }
}

async fn into_parts(resp: Response<Full<Bytes>>) -> (StatusCode, http::HeaderMap, Bytes) {
    let (parts, body) = resp.into_parts();
    let bytes = body.collect().await.expect("body").to_bytes();
    (parts.status, parts.headers, bytes)
}

fn form(body: &str) -> Request<Full<Bytes>> {
    Request::post("/oauth/token")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from(body.to_owned())))
        .expect("request")
}

fn basic(id_secret: &str, body: &str) -> Request<Full<Bytes>> {
    Request::post("/oauth/token")
        .header("content-type", "application/x-www-form-urlencoded")
        .header(
            "authorization",
            format!("Basic {}", STANDARD.encode(id_secret)),
        )
        .body(Full::new(Bytes::from(body.to_owned())))
        .expect("request")
}

fn get(path: &str) -> Request<Full<Bytes>> {
    Request::get(path)
        .body(Full::new(Bytes::new()))
        .expect("request")
}

const GOOD: &str = "grant_type=client_credentials&client_id=svc-a&client_secret=secret-a";

fn error_code(body: &Value) -> &str {
    body["error"].as_str().unwrap_or("")
}

/// Decodes a token with jsonwebtoken against the JWKS the issuer serves
/// (RS256) or the shared secret (HS256): independent of the issuer's code.
async fn verify_independently(f: &Fixture, token: &str) -> AccessTokenClaims {
    let header = jsonwebtoken::decode_header(token).expect("header");
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    let kid = header.kid.clone().expect("kid always present");
    let mut validation = Validation::new(header.alg);
    validation.set_issuer(&["http://issuer.test"]);
    validation.set_audience(&["https://api.test"]);
    validation.validate_exp = false; // the fixture's clock is in the future
    let key = match header.alg {
        Algorithm::HS256 => DecodingKey::from_secret(&[b'k'; 32]),
        Algorithm::RS256 => {
            let jwks = f.jwks().await;
            let jwk = jwks["keys"]
                .as_array()
                .expect("keys")
                .iter()
                .find(|k| k["kid"] == kid.as_str())
                .expect("token kid is published")
                .clone();
            DecodingKey::from_rsa_components(
                jwk["n"].as_str().expect("n"),
                jwk["e"].as_str().expect("e"),
            )
            .expect("jwk")
        }
        other => panic!("unexpected alg {other:?}"),
    };
    jsonwebtoken::decode::<AccessTokenClaims>(token, &key, &validation)
        .expect("token verifies independently")
        .claims
}

#[tokio::test]
async fn dual_phase_issues_hs256_with_every_claim() {
    let f = fixture("dual").await;
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
    assert_eq!(claims.aud, "https://api.test");
}

#[tokio::test]
async fn transition_phase_issues_rs256_verifiable_with_served_jwks() {
    let f = fixture("transition").await;
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
    let f = fixture("dual").await;
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
    let f = fixture("dual").await;
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
    let f = fixture("dual").await;
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
async fn failed_authentications_are_rate_limited_per_client_and_ip() {
    let f = fixture("dual").await;
    let bad = "grant_type=client_credentials&client_id=svc-a&client_secret=nope";
    for _ in 0..3 {
        let (s, _, _) = f.token_post(bad).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
    }
    // Now even the right secret is refused without being checked...
    let (s, h, b) = f.token_post(GOOD).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{b}");
    let retry: u64 = h["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("secs");
    assert!((1..=60).contains(&retry), "{retry}");
    // ...from another address too (the client id is limited)...
    let other = f.service_from([10, 0, 0, 2].into());
    let (s, _, _) = into_parts(other.handle(form(GOOD)).await).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
    // ...and the first address is limited for other clients.
    let (s, _, _) = f
        .send(basic(
            "svc%3Ab%25%2B:p%2Bss+w%3Ard%25",
            "grant_type=client_credentials",
        ))
        .await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
    // After the window, the client gets in again.
    f.clock.advance(Duration::from_secs(61));
    let (s, _, _) = f.token_post(GOOD).await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn jwks_has_only_public_members_and_honours_etag() {
    let f = fixture("dual").await;
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
    let f = fixture("legacy").await;
    assert_eq!(f.jwks().await["keys"].as_array().map(Vec::len), Some(0));
    f.reload("dual").await;
    assert_eq!(f.jwks().await["keys"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn metadata_documents_describe_the_endpoints() {
    let f = fixture("dual").await;
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
async fn restart_keeps_keys_and_old_tokens_verify() {
    let f = fixture("transition").await;
    let (_, _, body) = f.token_post(GOOD).await;
    let token = body["access_token"].as_str().expect("token").to_owned();
    let before = f.jwks().await;
    // A second issuer on the same directory, as after a restart.
    let cfg = Config::load(&f.config_path).expect("config");
    let restarted = Issuer::start(
        cfg.phase,
        cfg.require_issuer().expect("issuer").clone(),
        f.clock.clone(),
        Arc::new(String::new),
    )
    .await
    .expect("restart");
    let g = Fixture {
        issuer: Arc::new(restarted),
        config_path: f.config_path.clone(),
        clock: f.clock.clone(),
        _dir: tempfile::tempdir().expect("t"),
    };
    assert_eq!(g.jwks().await, before);
    verify_independently(&g, &token).await;
}

#[tokio::test]
async fn rotation_prepublishes_before_signing_and_retires_on_time() {
    let f = fixture("transition").await;
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
    assert!(f.clock.now_secs() >= rotate_at + 1500);
}

#[tokio::test]
async fn bad_config_on_reload_keeps_the_running_one() {
    let f = fixture("dual").await;
    let cfg = load(f.config_path.parent().expect("dir"), "dual");
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
async fn key_made_offline_signs_only_prepublish_after_the_issuer_first_served_it() {
    let f = fixture("transition").await;
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
    let f = fixture("legacy").await;
    let old = f.active_kid();
    let next = f
        .key_store()
        .rotate(T0, &fixture_policy(), 2048, false)
        .expect("rotate");
    f.clock.set(Duration::from_secs(T0 + 2000));
    f.issuer.maintain_keys().await.expect("tick");
    assert_eq!(f.active_kid(), old, "legacy serves no JWKS: never promoted");
    f.reload("dual").await;
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
    let f = fixture("legacy").await;
    for phase in ["transition", "asymmetric"] {
        let err = f.try_reload(phase).await.expect_err("refused");
        assert!(matches!(err, StartError::Refused(_)), "{err}");
        let msg = err.to_string();
        assert!(
            msg.contains("never served") && msg.contains("phase dual first"),
            "{msg}"
        );
        assert!(f.signing_kid().await.starts_with("hs256-"), "still HS256");
        assert_eq!(f.jwks_kids().await.len(), 0, "still legacy");
    }
    // Through dual, once the key has been served for key_prepublish: fine.
    f.reload("dual").await;
    f.clock.advance(Duration::from_secs(900));
    f.reload("legacy").await;
    // Back in legacy the JWKS dropped it: a verifier may have cached that.
    let err = f.try_reload("transition").await.expect_err("refused again");
    assert!(matches!(err, StartError::Refused(_)), "{err}");
    f.reload("dual").await;
    f.clock.advance(Duration::from_secs(899));
    f.reload("legacy").await;
    let err = f.try_reload("transition").await.expect_err("too early");
    assert!(err.to_string().contains("never served"), "{err}");
    f.reload("dual").await;
    f.clock.advance(Duration::from_secs(900));
    f.reload("transition").await;
    assert_eq!(f.signing_kid().await, f.active_kid());
}

#[tokio::test]
async fn shortened_token_ttl_does_not_retire_a_key_before_its_longer_tokens_expire() {
    let f = fixture("transition").await;
    f.try_reload_ttl("transition", "24h").await.expect("24h");
    let (_, _, body) = f.token_post(GOOD).await;
    assert_eq!(body["expires_in"], 86_400);
    let long_token = body["access_token"].as_str().expect("token").to_owned();
    let old = f.signing_kid().await;
    f.clock.advance(Duration::from_secs(60));
    f.try_reload_ttl("transition", "10m").await.expect("10m");

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
