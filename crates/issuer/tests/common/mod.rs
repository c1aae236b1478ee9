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
use keyshift_core::secret::SecretHash;
use keyshift_core::Config;
use keyshift_issuer::keystore::KeyStore;
use keyshift_issuer::rotation::RotationPolicy;
use keyshift_issuer::{Issuer, IssuerService, StartError};
use serde_json::Value;

pub const T0: u64 = 1_900_000_000;

pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub config_path: std::path::PathBuf,
    pub clock: Arc<ManualClock>,
    pub issuer: Arc<Issuer>,
    /// Config appended to every config this fixture writes (extra clients).
    pub extra: String,
}

/// The fixture's config: clients `svc-a` (secret `secret-a`) and `svc:b%+`
/// (secret `p+ss w:rd%`), both `sha256:` hashed, `token_ttl = ttl`, and
/// `extra` appended (more `[[issuer.clients]]`, say).
pub fn config_text(phase: &str, ttl: &str, extra: &str) -> String {
    let weird = SecretHash::sha256_of(b"p+ss w:rd%").to_config_string();
    let a = SecretHash::sha256_of(b"secret-a").to_config_string();
    let secret_line = if phase == "asymmetric" {
        ""
    } else {
        "hs256_secret_file = \"hs256.secret\""
    };
    format!(
        r#"phase = "{phase}"
[issuer]
issuer = "http://issuer.test"
audience = "https://api.test"
{secret_line}
token_ttl = "{ttl}"
key_prepublish = "15m"
rotate_every = "30d"
failed_auth_limit = 3

[[issuer.clients]]
id = "svc-a"
secret_hash = "{a}"
scopes = ["read", "write"]

[[issuer.clients]]
id = "svc:b%+"
secret_hash = "{weird}"
scopes = ["read"]
{extra}
"#
    )
}

/// Writes the fixture's config in `dir` and loads it.
pub fn write_config(dir: &Path, phase: &str, ttl: &str, extra: &str) -> Config {
    let path = dir.join("keyshift.toml");
    std::fs::write(&path, config_text(phase, ttl, extra)).expect("write config");
    Config::load(&path).expect("valid config")
}

/// An issuer in `phase` on a fresh key directory, at `T0` on a manual clock.
pub async fn fixture(phase: &str) -> Fixture {
    fixture_with(phase, "").await
}

/// [`fixture`] with `extra` appended to its config.
pub async fn fixture_with(phase: &str, extra: &str) -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("hs256.secret"), [b'k'; 32]).expect("secret");
    let cfg = write_config(dir.path(), phase, "10m", extra);
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
        dir,
        clock,
        issuer: Arc::new(issuer),
        extra: extra.to_owned(),
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

    pub async fn reload(&self, phase: &str) {
        self.try_reload(phase).await.expect("reload");
    }

    pub async fn try_reload(&self, phase: &str) -> Result<(), StartError> {
        self.try_reload_ttl(phase, "10m").await
    }

    /// The fixture's config for `phase`, written (as an operator edits it).
    pub fn config(&self, phase: &str) -> Config {
        write_config(self.dir.path(), phase, "10m", &self.extra)
    }

    pub async fn try_reload_ttl(&self, phase: &str, ttl: &str) -> Result<(), StartError> {
        let cfg = write_config(self.dir.path(), phase, ttl, &self.extra);
        self.issuer
            .reload(cfg.phase, cfg.require_issuer().expect("issuer").clone())
            .await
    }

    /// Reloads the fixture's config for `phase` as `edit` changes its text.
    pub async fn try_reload_edited(
        &self,
        phase: &str,
        edit: impl Fn(String) -> String,
    ) -> Result<(), StartError> {
        std::fs::write(
            &self.config_path,
            edit(config_text(phase, "10m", &self.extra)),
        )
        .expect("write config");
        let cfg = Config::load(&self.config_path).expect("valid config");
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

/// A `[[issuer.clients]]` table for `id` with an argon2id hash of `secret`.
pub fn argon2_client(id: &str, secret: &[u8], m: u32, t: u32, p: u32) -> String {
    format!(
        "\n[[issuer.clients]]\nid = \"{id}\"\nsecret_hash = \"{}\"\nscopes = [\"read\"]\n",
        argon2_phc(secret, m, t, p)
    )
}
