//! The issuer under test, called directly (no sockets), with a clock the
//! test moves.

#![allow(dead_code)]

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
use keyshift_core::{Config, Phase};
use keyshift_issuer::keystore::KeyStore;
use keyshift_issuer::rotation::RotationPolicy;
use keyshift_issuer::{Issuer, IssuerService, StartError};
use keyshift_testkit::{Client, ConfigToml};
use serde_json::Value;

pub const T0: u64 = 1_900_000_000;

pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub config_path: std::path::PathBuf,
    pub clock: Arc<ManualClock>,
    pub issuer: Arc<Issuer>,
    /// Clients added to every config this fixture writes.
    pub extra: Vec<Client>,
}

/// The fixture's config: clients `svc-a` (secret `secret-a`) and `svc:b%+`
/// (secret `p+ss w:rd%`), both `sha256:` hashed, `token_ttl = ttl`, then the
/// `extra` clients; the shared secret `hs256.secret` where the phase needs it.
pub fn config_toml(phase: Phase, ttl: &str, extra: &[Client]) -> ConfigToml {
    let mut cfg = ConfigToml::new(phase)
        .issuer("issuer", "http://issuer.test")
        .issuer("audience", "https://api.test");
    if phase.needs_shared_secret() {
        cfg = cfg.issuer("hs256_secret_file", "hs256.secret");
    }
    let cfg = cfg
        .issuer("token_ttl", ttl)
        .issuer("key_prepublish", "15m")
        .issuer("rotate_every", "30d")
        .issuer("failed_auth_limit", 3)
        .client(Client::sha256("svc-a", b"secret-a", &["read", "write"]))
        .client(Client::sha256("svc:b%+", b"p+ss w:rd%", &["read"]));
    extra.iter().cloned().fold(cfg, ConfigToml::client)
}

/// Writes `cfg` in `dir` and loads it.
pub fn write_config(dir: &Path, cfg: &ConfigToml) -> Config {
    Config::load(&cfg.write_to(dir)).expect("valid config")
}

/// An issuer in `phase` on a fresh key directory, at `T0` on a manual clock.
pub async fn fixture(phase: Phase) -> Fixture {
    fixture_with(phase, &[]).await
}

/// [`fixture`] with `extra` clients in its config.
pub async fn fixture_with(phase: Phase, extra: &[Client]) -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("hs256.secret"), [b'k'; 32]).expect("secret");
    let cfg = write_config(dir.path(), &config_toml(phase, "10m", extra));
    if phase.signs() == keyshift_core::Alg::Rs256 {
        // The issuer makes no key directory in a phase that signs RS256: the
        // operator does, deliberately (`keyshift keys generate`).
        KeyStore::new(dir.path().join("keys"))
            .generate_next(T0, 2048)
            .expect("keys generate");
    }
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
        config_path: dir.path().join(keyshift_testkit::config::FILE_NAME),
        dir,
        clock,
        issuer: Arc::new(issuer),
        extra: extra.to_vec(),
    }
}

impl Fixture {
    pub fn service(&self) -> IssuerService {
        self.service_from([10, 0, 0, 1].into())
    }

    pub fn service_from(&self, ip: IpAddr) -> IssuerService {
        IssuerService::new(self.issuer.clone(), ip)
    }

    pub async fn send(&self, req: Request<Full<Bytes>>) -> (StatusCode, http::HeaderMap, Bytes) {
        into_parts(self.service().handle(req).await).await
    }

    pub async fn token_post(&self, body: &str) -> (StatusCode, http::HeaderMap, Value) {
        let (s, h, b) = self.send(form(body)).await;
        (s, h, serde_json::from_slice(&b).unwrap_or(Value::Null))
    }

    pub async fn jwks(&self) -> Value {
        let (s, _, b) = self.send(get("/.well-known/jwks.json")).await;
        assert_eq!(s, StatusCode::OK);
        serde_json::from_slice(&b).expect("jwks json")
    }

    /// Reloads the fixture's config for `phase`; panics if refused.
    pub async fn reload(&self, phase: Phase) {
        self.try_reload(phase).await.expect("reload");
    }

    /// Reloads the fixture's config for `phase`.
    pub async fn try_reload(&self, phase: Phase) -> Result<(), StartError> {
        self.try_reload_ttl(phase, "10m").await
    }

    /// The fixture's config for `phase`, written (as an operator edits it).
    pub fn config(&self, phase: Phase) -> Config {
        write_config(self.dir.path(), &config_toml(phase, "10m", &self.extra))
    }

    /// Reloads the fixture's config for `phase` with `token_ttl = ttl`.
    pub async fn try_reload_ttl(&self, phase: Phase, ttl: &str) -> Result<(), StartError> {
        self.try_reload_with(phase, |cfg| cfg.issuer("token_ttl", ttl))
            .await
    }

    /// Reloads the fixture's config for `phase` as `edit` changes it.
    pub async fn try_reload_with(
        &self,
        phase: Phase,
        edit: impl FnOnce(ConfigToml) -> ConfigToml,
    ) -> Result<(), StartError> {
        let cfg = write_config(
            self.dir.path(),
            &edit(config_toml(phase, "10m", &self.extra)),
        );
        self.issuer
            .reload(cfg.phase, cfg.require_issuer().expect("issuer").clone())
            .await
    }

    /// A new issuer on the same config and key directory, as after a restart.
    pub async fn restart(self) -> Fixture {
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
    pub fn key_store(&self) -> KeyStore {
        KeyStore::new(self.config_path.with_file_name("keys"))
    }

    /// The kid of the active RSA key, from the manifest on disk.
    pub fn active_kid(&self) -> String {
        self.key_store()
            .load()
            .expect("keys")
            .active()
            .expect("active")
            .kid
            .clone()
    }

    /// The `kid` header of a freshly minted token.
    pub async fn signing_kid(&self) -> String {
        let (s, _, body) = self.token_post(GOOD).await;
        assert_eq!(s, StatusCode::OK, "{body}");
        jsonwebtoken::decode_header(body["access_token"].as_str().expect("token"))
            .expect("header")
            .kid
            .expect("kid")
    }

    pub async fn jwks_kids(&self) -> Vec<String> {
        self.jwks().await["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .map(|k| k["kid"].as_str().expect("kid").to_owned())
            .collect()
    }
}

/// The fixture's rotation settings, for offline `keyshift keys` operations.
pub fn fixture_policy() -> RotationPolicy {
    RotationPolicy {
        rotate_every: Some(Duration::from_secs(30 * 86_400)),
        prepublish: Duration::from_secs(900),
        token_ttl: Duration::from_secs(600),
    }
}

pub async fn into_parts(resp: Response<Full<Bytes>>) -> (StatusCode, http::HeaderMap, Bytes) {
    let (parts, body) = resp.into_parts();
    let bytes = body.collect().await.expect("body").to_bytes();
    (parts.status, parts.headers, bytes)
}

pub fn form(body: &str) -> Request<Full<Bytes>> {
    Request::post("/oauth/token")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from(body.to_owned())))
        .expect("request")
}

pub fn basic(id_secret: &str, body: &str) -> Request<Full<Bytes>> {
    Request::post("/oauth/token")
        .header("content-type", "application/x-www-form-urlencoded")
        .header(
            "authorization",
            format!("Basic {}", STANDARD.encode(id_secret)),
        )
        .body(Full::new(Bytes::from(body.to_owned())))
        .expect("request")
}

pub fn get(path: &str) -> Request<Full<Bytes>> {
    Request::get(path)
        .body(Full::new(Bytes::new()))
        .expect("request")
}

pub const GOOD: &str = "grant_type=client_credentials&client_id=svc-a&client_secret=secret-a";

pub fn error_code(body: &Value) -> &str {
    body["error"].as_str().unwrap_or("")
}

/// Decodes a token with jsonwebtoken against the JWKS the issuer serves
/// (RS256) or the shared secret (HS256): independent of the issuer's code.
pub async fn verify_independently(f: &Fixture, token: &str) -> AccessTokenClaims {
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

/// An argon2id PHC string of `secret` with the given costs (memory KiB,
/// passes, lanes); small costs keep tests fast.
pub fn argon2_phc(secret: &[u8], m: u32, t: u32, p: u32) -> String {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let params = argon2::Params::new(m, t, p, None).expect("argon2 params");
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let salt = SaltString::encode_b64(b"0123456789abcdef").expect("salt");
    argon
        .hash_password(secret, &salt)
        .expect("argon2 hash")
        .to_string()
}

/// Client `id` (scope `read`) with an argon2id hash of `secret`.
pub fn argon2_client(id: &str, secret: &[u8], m: u32, t: u32, p: u32) -> Client {
    Client::with_hash(id, argon2_phc(secret, m, t, p), &["read"])
}
