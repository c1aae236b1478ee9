//! Test fixtures: RSA keys, token builders, a JWKS server the test controls
//! (not the issuer's code), and verifiers on a manual clock.

#![allow(dead_code)]

pub mod snap;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{KeyPair, RsaKeyPair, RSA_PKCS1_SHA256};
use bytes::Bytes;
use hmac::{Hmac, Mac};
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use keyshift_core::b64;
use keyshift_core::clock::ManualClock;
use keyshift_core::secret::{HmacSecret, HmacSecrets};
use keyshift_core::{Config, Phase};
use keyshift_testkit::ConfigToml;
use keyshift_verifier::{State, Verifier, VerifierService};
use sha2::Sha256;

pub const NOW: u64 = 1_900_000_000;
pub const ISS: &str = "https://issuer.test";
pub const AUD: &str = "https://api.test";
pub const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

/// An RSA key with its JWK.
pub struct TestKey {
    pub pair: RsaKeyPair,
    pub kid: String,
    pub n: String,
    pub e: String,
}

impl TestKey {
    pub fn generate(kid: &str) -> TestKey {
        let pair = RsaKeyPair::generate(KeySize::Rsa2048).expect("keygen");
        let public = pair.public_key();
        let n = b64::encode(public.modulus().big_endian_without_leading_zero());
        let e = b64::encode(public.exponent().big_endian_without_leading_zero());
        TestKey {
            pair,
            kid: kid.to_owned(),
            n,
            e,
        }
    }

    pub fn jwk(&self) -> serde_json::Value {
        serde_json::json!({"kty":"RSA","use":"sig","alg":"RS256","kid":self.kid,"n":self.n,"e":self.e})
    }

    /// The public key as a PEM SubjectPublicKeyInfo, for the HS256-with-public-key attack.
    pub fn public_pem(&self) -> String {
        use aws_lc_rs::encoding::AsDer;
        let der = self.pair.public_key().as_der().expect("spki");
        let b64std = {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.encode(der.as_ref())
        };
        let mut pem = String::from("-----BEGIN PUBLIC KEY-----\n");
        for chunk in b64std.as_bytes().chunks(64) {
            pem.push_str(std::str::from_utf8(chunk).expect("ascii"));
            pem.push('\n');
        }
        pem.push_str("-----END PUBLIC KEY-----\n");
        pem
    }

    pub fn modulus(&self) -> Vec<u8> {
        b64::decode(&self.n).expect("n")
    }
}

/// Two keys generated once per test binary.
pub fn keys() -> &'static (TestKey, TestKey) {
    static KEYS: OnceLock<(TestKey, TestKey)> = OnceLock::new();
    KEYS.get_or_init(|| (TestKey::generate("key-1"), TestKey::generate("key-2")))
}

pub fn jwks_of(keys: &[&TestKey]) -> String {
    serde_json::json!({ "keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>() }).to_string()
}

/// Standard valid claims at `NOW`.
pub fn claims() -> serde_json::Value {
    serde_json::json!({
        "iss": ISS, "aud": AUD, "sub": "svc-a", "client_id": "svc-a",
        "scope": "read write", "iat": NOW, "nbf": NOW, "exp": NOW + 600, "jti": "j1"
    })
}

pub fn signing_input(header: &str, payload: &str) -> String {
    format!("{}.{}", b64::encode(header), b64::encode(payload))
}

pub fn sign_rs(key: &TestKey, input: &str) -> String {
    let mut sig = vec![0u8; key.pair.public_modulus_len()];
    key.pair
        .sign(
            &RSA_PKCS1_SHA256,
            &SystemRandom::new(),
            input.as_bytes(),
            &mut sig,
        )
        .expect("sign");
    format!("{input}.{}", b64::encode(sig))
}

pub fn sign_hs(secret: &[u8], input: &str) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("hmac");
    mac.update(input.as_bytes());
    format!("{input}.{}", b64::encode(mac.finalize().into_bytes()))
}

/// An RS256 token by `key` with `claims`.
pub fn rs256(key: &TestKey, claims: &serde_json::Value) -> String {
    let header = serde_json::json!({"alg":"RS256","typ":"at+jwt","kid":key.kid}).to_string();
    sign_rs(key, &signing_input(&header, &claims.to_string()))
}

/// An RS256 token signed by `key` whose header names `kid` (known or not).
pub fn rs256_with_kid(key: &TestKey, kid: &str) -> String {
    let header = serde_json::json!({"alg":"RS256","kid":kid}).to_string();
    sign_rs(key, &signing_input(&header, &claims().to_string()))
}

/// An HS256 token with the shared secret.
pub fn hs256(claims: &serde_json::Value) -> String {
    let header = r#"{"alg":"HS256","typ":"JWT"}"#;
    sign_hs(SECRET, &signing_input(header, &claims.to_string()))
}

/// What the JWKS test server answers.
#[derive(Clone, Debug)]
pub enum Mode {
    Ok {
        body: String,
        max_age: Option<u64>,
    },
    Status(u16),
    /// Answers nothing for this long (longer than the fetch timeout: a hang).
    Slow(Duration),
    /// Answers `body` after `delay`.
    Delayed {
        delay: Duration,
        body: String,
    },
    /// 302 to `location`.
    Redirect(String),
}

/// A JWKS server on 127.0.0.1:0 whose answers the test sets. It plays the
/// issuer's `/migration` too: 404 until [`JwksServer::set_migration`].
pub struct JwksServer {
    pub addr: SocketAddr,
    pub mode: Arc<Mutex<Mode>>,
    /// What `/migration` answers (`None`: 404, an issuer without it).
    pub migration: Arc<Mutex<Option<serde_json::Value>>>,
    /// JWKS requests (not `/migration`).
    pub hits: Arc<AtomicUsize>,
    pub paths: Arc<Mutex<Vec<String>>>,
    /// The accept loop; taken by [`JwksServer::stop`].
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl JwksServer {
    pub async fn start(body: String) -> JwksServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let mode = Arc::new(Mutex::new(Mode::Ok {
            body,
            max_age: Some(300),
        }));
        let hits = Arc::new(AtomicUsize::new(0));
        let paths = Arc::new(Mutex::new(Vec::new()));
        let migration = Arc::new(Mutex::new(None::<serde_json::Value>));
        let (m, h, p, mig) = (mode.clone(), hits.clone(), paths.clone(), migration.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    break;
                };
                let (m, h, p, mig) = (m.clone(), h.clone(), p.clone(), mig.clone());
                tokio::spawn(async move {
                    let svc =
                        hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                            let (m, h, p, mig) = (m.clone(), h.clone(), p.clone(), mig.clone());
                            async move {
                                p.lock().expect("lock").push(req.uri().path().to_owned());
                                if req.uri().path() == "/migration" {
                                    let answer = mig.lock().expect("lock").clone();
                                    let mut r = match answer {
                                        Some(v) => {
                                            Response::new(Full::new(Bytes::from(v.to_string())))
                                        }
                                        None => {
                                            let mut r = Response::new(Full::new(Bytes::new()));
                                            *r.status_mut() = StatusCode::NOT_FOUND;
                                            r
                                        }
                                    };
                                    r.headers_mut()
                                        .insert("connection", "close".parse().expect("header"));
                                    return Ok::<_, Infallible>(r);
                                }
                                h.fetch_add(1, Ordering::SeqCst);
                                let mode = m.lock().expect("lock").clone();
                                let resp = match mode {
                                    Mode::Ok { body, max_age } => {
                                        let mut r = Response::new(Full::new(Bytes::from(body)));
                                        if let Some(age) = max_age {
                                            r.headers_mut().insert(
                                                "cache-control",
                                                format!("max-age={age}").parse().expect("header"),
                                            );
                                        }
                                        r
                                    }
                                    Mode::Status(code) => {
                                        let mut r =
                                            Response::new(Full::new(Bytes::from_static(b"oops")));
                                        *r.status_mut() =
                                            StatusCode::from_u16(code).expect("status");
                                        r
                                    }
                                    Mode::Slow(d) => {
                                        tokio::time::sleep(d).await;
                                        Response::new(Full::new(Bytes::from_static(b"{}")))
                                    }
                                    Mode::Delayed { delay, body } => {
                                        tokio::time::sleep(delay).await;
                                        Response::new(Full::new(Bytes::from(body)))
                                    }
                                    Mode::Redirect(location) => {
                                        let mut r = Response::new(Full::new(Bytes::new()));
                                        *r.status_mut() = StatusCode::FOUND;
                                        r.headers_mut()
                                            .insert("location", location.parse().expect("header"));
                                        r
                                    }
                                };
                                // No keep-alive: a stopped server must refuse the next fetch.
                                let mut resp = resp;
                                resp.headers_mut()
                                    .insert("connection", "close".parse().expect("header"));
                                Ok::<_, Infallible>(resp)
                            }
                        });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        JwksServer {
            addr,
            mode,
            migration,
            hits,
            paths,
            task: Mutex::new(Some(task)),
        }
    }

    /// Answers `/migration` as an issuer in `phase` whose last HS256 token
    /// is valid until `hs256_valid_until`.
    pub fn set_migration(&self, phase: Phase, hs256_valid_until: Option<u64>) {
        *self.migration.lock().expect("lock") = Some(serde_json::json!({
            "service": "issuer",
            "phase": phase.as_str(),
            "signs": phase.signs().as_str(),
            "hs256_last_issued_unix": hs256_valid_until.map(|t| t.saturating_sub(600)),
            "hs256_valid_until_unix": hs256_valid_until,
            "tracked_since_unix": 1,
        }));
    }

    pub fn set(&self, mode: Mode) {
        *self.mode.lock().expect("lock") = mode;
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    /// Stops listening: once this returns, later fetches get connection
    /// refused (the accept loop has ended and dropped its listener).
    pub async fn stop(&self) {
        let task = self.task.lock().expect("lock").take();
        if let Some(task) = task {
            task.abort();
            let _ = task.await;
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/.well-known/jwks.json", self.addr)
    }
}

/// The config of a verifier using `jwks_url`, with `extra` lines (TOML) in
/// `[verifier]`; it names a secret file where the phase needs one (the
/// fixtures hand the secret over directly: see [`secret_for`]).
pub fn config(phase: Phase, jwks_url: &str, extra: &str) -> Config {
    let mut cfg = ConfigToml::new(phase)
        .verifier("issuer", ISS)
        .verifier("audience", AUD)
        .verifier("jwks_url", jwks_url)
        .verifier("jwks_timeout", "2s")
        .verifier("jwks_connect_timeout", "2s")
        .verifier("max_token_lifetime", "1h")
        .verifier("jwks_max_staleness", "1h");
    if phase.needs_shared_secret() {
        cfg = cfg.verifier("hs256_secret_file", "unused");
    }
    Config::from_toml_str(&cfg.verifier_lines(extra).render(), &std::env::temp_dir())
        .expect("valid test config")
}

/// The test secret, unless `phase` is asymmetric.
pub fn secret_for(phase: Phase) -> Option<HmacSecret> {
    phase
        .needs_shared_secret()
        .then(|| HmacSecret::new(SECRET.to_vec()).expect("secret"))
}

/// A verifier on a manual clock at `NOW`, its JWKS fetched once.
pub struct Fixture {
    pub clock: Arc<ManualClock>,
    pub verifier: Arc<Verifier>,
    pub service: VerifierService,
    pub server: JwksServer,
}

pub async fn fixture(phase: Phase, extra: &str) -> Fixture {
    let (a, _) = keys();
    let server = JwksServer::start(jwks_of(&[a])).await;
    let f = fixture_with(phase, extra, server).await;
    if let Some(jwks) = f.verifier.jwks() {
        assert!(
            jwks.usable(),
            "the first JWKS fetch failed: {:?}",
            jwks.status()
        );
    }
    f
}

pub async fn fixture_with(phase: Phase, extra: &str, server: JwksServer) -> Fixture {
    fixture_with_secrets(phase, extra, server, secret_for(phase).into()).await
}

/// A verifier as [`fixture_with`] makes it, given its HS256 secrets (the
/// legacy profile's extra ones too).
pub async fn fixture_with_secrets(
    phase: Phase,
    extra: &str,
    server: JwksServer,
    secrets: HmacSecrets,
) -> Fixture {
    let cfg = config(phase, &server.url(), extra);
    let section = cfg.require_verifier().expect("verifier");
    let clock = ManualClock::at_secs(NOW);
    let verifier =
        Arc::new(Verifier::new(phase, section, secrets, clock.clone()).expect("verifier"));
    if let Some(jwks) = verifier.jwks() {
        jwks.refresh_if_due().await;
    }
    let service = VerifierService::new(Arc::new(State {
        verifier: verifier.clone(),
        render_metrics: Arc::new(String::new),
    }));
    Fixture {
        clock,
        verifier,
        service,
        server,
    }
}

impl Fixture {
    /// `GET /verify` with `Authorization: Bearer <token>`: status and challenge.
    pub async fn check(&self, token: &str) -> (StatusCode, String) {
        self.request(&[("authorization", format!("Bearer {token}"))], "/verify")
            .await
    }

    pub async fn request(&self, headers: &[(&str, String)], uri: &str) -> (StatusCode, String) {
        let mut req = Request::get(uri);
        for (n, v) in headers {
            req = req.header(*n, v.as_str());
        }
        let resp = self.service.handle(req.body(()).expect("request")).await;
        let challenge = resp
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        (resp.status(), challenge)
    }

    /// Reloads the verifier with the config of `phase`, `jwks_url` and
    /// `extra`, and the test secret unless the phase is asymmetric.
    pub async fn reload(
        &self,
        phase: Phase,
        jwks_url: &str,
        extra: &str,
    ) -> Result<(), keyshift_verifier::BuildError> {
        let cfg = config(phase, jwks_url, extra);
        self.verifier
            .reload(
                phase,
                cfg.require_verifier().expect("verifier"),
                secret_for(phase),
            )
            .await
    }

    pub fn fetches(&self) -> u64 {
        self.verifier.jwks().map(|j| j.fetch_count()).unwrap_or(0)
    }
}
