//! The config file (TOML), in two stages.
//!
//! [`RawConfig`] is what serde reads: every field optional where a default
//! exists, unknown keys refused. [`Config::from_raw`] turns it into a
//! validated [`Config`] with defaults applied, relative paths resolved against
//! the config file's folder, and no contradiction left (e.g. an `accept` list
//! with HS256 in phase `asymmetric`). Every error names the field.
//!
//! ```
//! use keyshift_core::config::Config;
//! let cfg = Config::from_toml_str(r#"
//!     phase = "dual"
//!     [verifier]
//!     issuer = "http://127.0.0.1:8080"
//!     audience = "https://api.example.com"
//!     jwks_url = "http://127.0.0.1:8080/.well-known/jwks.json"
//!     hs256_secret_file = "hs256.secret"
//! "#, "/etc/keyshift".as_ref()).unwrap();
//! assert_eq!(cfg.phase.as_str(), "dual");
//! ```

mod gateway;
mod raw;
pub mod serving;
#[cfg(test)]
mod tests;

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use gateway::{
    GatewayConfig, IfPresent, RouteConfig, DEFAULT_CONNECT_TIMEOUT, DEFAULT_GATEWAY_LISTEN,
    DEFAULT_PATH_PREFIX, DEFAULT_ROUTE_SIGN, DEFAULT_ROUTE_VERIFY, DEFAULT_SIGN_HEADER,
    DEFAULT_SIGN_TTL, DEFAULT_STRIP_PREFIX, DEFAULT_UPSTREAM_TIMEOUT, MAX_SIGN_TTL,
};
pub use ipnet::IpNet;
pub use raw::{
    RawClient, RawConfig, RawGateway, RawIssuer, RawIssuerLegacy, RawRoute, RawVerifier,
    RawVerifierLegacy,
};
pub use serving::{LogFormat, Serving, TlsFiles};

use crate::claims::{HeaderTyp, REGISTERED_CLAIMS};
use crate::duration::HumanDuration;
use crate::phase::{AcceptSet, Alg, Phase};
use crate::secret::{HmacSecret, HmacSecrets, SecretError, SecretFloor, SecretHash};

/// Default issuer listen address. Defaults to `127.0.0.1:8080`.
pub const DEFAULT_ISSUER_LISTEN: &str = "127.0.0.1:8080";
/// Default verifier listen address. Defaults to `127.0.0.1:8081`.
pub const DEFAULT_VERIFIER_LISTEN: &str = "127.0.0.1:8081";
/// Default access token lifetime.
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(15 * 60);
/// Longest access token lifetime the issuer will be configured with.
pub const MAX_TOKEN_TTL: Duration = Duration::from_secs(24 * 3600);
/// Default key directory, relative to the config file.
pub const DEFAULT_KEY_DIR: &str = "keys";
/// Default RSA modulus size for new keys.
pub const DEFAULT_KEY_BITS: u32 = 2048;
/// Default automatic rotation period.
pub const DEFAULT_ROTATE_EVERY: Duration = Duration::from_secs(90 * 86_400);
/// Default `Cache-Control: max-age` of the issuer's JWKS.
pub const DEFAULT_JWKS_MAX_AGE: Duration = Duration::from_secs(5 * 60);
/// Default pre-publish time of a new key, and grace time of a retiring key
/// after its last token expired. Longer than the default JWKS max-age plus
/// the verifier's default unknown-kid cooldown.
pub const DEFAULT_KEY_PREPUBLISH: Duration = Duration::from_secs(15 * 60);
/// Default number of failed client authentications per window before 429.
pub const DEFAULT_FAILED_AUTH_LIMIT: u32 = 10;
/// Default window of the failed-authentication limit.
pub const DEFAULT_FAILED_AUTH_WINDOW: Duration = Duration::from_secs(60);
/// Default most connections open at once per listener: far above what one
/// instance serves behind a proxy that pools connections (hundreds), far
/// below the file descriptors a raised limit gives.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// Default proxies whose `X-Forwarded-For` is believed: none, so a
/// client cannot choose the address its failed logins are counted against.
pub const DEFAULT_TRUSTED_PROXIES: &[&str] = &[];
/// Default of `proxy_protocol`: connections speak HTTP from their first byte.
pub const DEFAULT_PROXY_PROTOCOL: bool = false;
/// Longest client id, in bytes. The token endpoint refuses longer ids before
/// any lookup, so they never become rate-limiter keys.
pub const MAX_CLIENT_ID_BYTES: usize = 256;

/// Default clock-skew leeway for `exp`, `nbf` and `iat`.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);
/// Default longest accepted token lifetime (`exp - iat`, and `exp - now`).
pub const DEFAULT_MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// Default largest accepted token, in bytes, checked before any decoding.
pub const DEFAULT_MAX_TOKEN_BYTES: usize = 8 * 1024;
/// Default lower bound of the JWKS cache TTL.
pub const DEFAULT_JWKS_MIN_TTL: Duration = Duration::from_secs(5 * 60);
/// Default upper bound of the JWKS cache TTL.
pub const DEFAULT_JWKS_MAX_TTL: Duration = Duration::from_secs(24 * 3600);
/// Default time between two refetches caused by unknown kids.
pub const DEFAULT_UNKNOWN_KID_COOLDOWN: Duration = Duration::from_secs(30);
/// Default time an unknown kid is remembered as unknown.
pub const DEFAULT_NEGATIVE_CACHE_TTL: Duration = Duration::from_secs(60);
/// Default longest time cached keys keep serving while the JWKS endpoint fails.
pub const DEFAULT_JWKS_MAX_STALENESS: Duration = Duration::from_secs(6 * 3600);
/// How often an issuer looks at its key directory's manifest and follows a
/// change another replica (or `keyshift keys`) made: the bound within which
/// every replica serves a newly published key, which `key_prepublish` must
/// cover beside `jwks_max_age`.
pub const KEY_SYNC_INTERVAL: Duration = Duration::from_secs(1);
/// How often a keyshift verifier looks whether its JWKS is due for a
/// refresh: on top of `jwks_max_age`, the longest a verifier may take to
/// see a newly published key, which `key_prepublish` must also cover.
pub const JWKS_REFRESH_TICK: Duration = Duration::from_secs(1);
/// Default JWKS connect timeout.
pub const DEFAULT_JWKS_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Default JWKS total request timeout.
pub const DEFAULT_JWKS_TIMEOUT: Duration = Duration::from_secs(5);
/// Default longest wait of a request for a JWKS fetch it needs: a proxy's
/// auth subrequest should not hang on a slow JWKS endpoint (503 and
/// `Retry-After` instead), while a healthy fetch on loopback or in one
/// region takes milliseconds.
pub const DEFAULT_JWKS_REQUEST_WAIT: Duration = Duration::from_secs(1);
/// Default gRPC ext_authz listener: none, the gRPC service is off.
pub const DEFAULT_GRPC_LISTEN: Option<&str> = None;
/// Default number of entries of the verified-token cache (0 turns it off).
pub const DEFAULT_TOKEN_CACHE_SIZE: usize = 10_000;
/// Default of `force_phase`: a verifier refuses to enter phase `asymmetric`
/// while an HS256 token may still be valid.
pub const DEFAULT_FORCE_PHASE: bool = false;
/// The suffix of a JWKS URL from which the issuer's `/migration` URL is
/// derived when `issuer_migration_url` is not set (the path keyshift's
/// issuer serves its JWKS at).
pub const JWKS_PATH: &str = "/.well-known/jwks.json";
/// The path of the issuer's migration report, the default
/// `issuer_migration_url` in place of [`JWKS_PATH`].
pub const DEFAULT_ISSUER_MIGRATION_PATH: &str = "/migration";
/// Default of `allow_weak_hs256_secret`.
pub const DEFAULT_ALLOW_WEAK_HS256_SECRET: bool = false;
/// Default `typ` of HS256 tokens shaped by `[issuer.legacy]`.
pub const DEFAULT_LEGACY_TYP: HeaderTyp = HeaderTyp::AtJwt;
/// Default of `[issuer.legacy] kid`.
pub const DEFAULT_LEGACY_KID: bool = true;
/// Default of `[verifier.legacy] audience_required`.
pub const DEFAULT_LEGACY_AUDIENCE_REQUIRED: bool = true;
/// Default of `[verifier.legacy] subject_claim`.
pub const DEFAULT_LEGACY_SUBJECT_CLAIM: &str = "sub";
/// Default of `[verifier.legacy] scope_claim`.
pub const DEFAULT_LEGACY_SCOPE_CLAIM: &str = "scope";
/// Claims the legacy profile may not read a subject or scopes from: they
/// decide the token's validity, never who it is for.
const NOT_A_SUBJECT_OR_SCOPE: [&str; 5] = ["iss", "aud", "exp", "nbf", "iat"];

/// A validated config: defaults applied, paths absolute, no contradictions.
#[derive(Debug, Clone)]
pub struct Config {
    /// The migration phase.
    pub phase: Phase,
    /// The folder relative paths were resolved against.
    pub base_dir: PathBuf,
    /// The `[issuer]` section, if present.
    pub issuer: Option<IssuerConfig>,
    /// The `[verifier]` section, if present.
    pub verifier: Option<VerifierConfig>,
    /// The `[gateway]` section, if present.
    pub gateway: Option<GatewayConfig>,
}

/// The validated `[issuer]` section.
#[derive(Debug, Clone)]
pub struct IssuerConfig {
    /// Listen address.
    pub listen: SocketAddr,
    /// The listener of the operational routes, if separate.
    pub admin_listen: Option<SocketAddr>,
    /// Most connections open at once per listener.
    pub max_connections: usize,
    /// TLS, config watching and the log format.
    pub serving: Serving,
    /// The `iss` claim; the metadata URLs are built on it.
    pub issuer: String,
    /// The `aud` claim.
    pub audience: String,
    /// Lifetime of issued tokens.
    pub token_ttl: Duration,
    /// Folder of RSA keys and their manifest.
    pub key_dir: PathBuf,
    /// The HS256 secret file, if configured.
    pub hs256_secret_file: Option<PathBuf>,
    /// Modulus size of newly generated keys.
    pub key_bits: u32,
    /// Automatic rotation period; `None` when `rotate_every = "off"`.
    pub rotate_every: Option<Duration>,
    /// `Cache-Control: max-age` of the JWKS.
    pub jwks_max_age: Duration,
    /// How long a new key is published before it signs, and how long a
    /// retiring key stays published after its last token expired.
    pub key_prepublish: Duration,
    /// Failed client authentications per window (per client id and per IP).
    pub failed_auth_limit: u32,
    /// The window of `failed_auth_limit`.
    pub failed_auth_window: Duration,
    /// Networks of the proxies in front of the issuer: a request from one of
    /// them is counted against the right-most address of its
    /// `X-Forwarded-For` outside them.
    pub trusted_proxies: Vec<IpNet>,
    /// Whether every connection to `listen` starts with a PROXY protocol v2
    /// header (the admin listener is reached directly and never does).
    pub proxy_protocol: bool,
    /// The OAuth clients.
    pub clients: Vec<ClientConfig>,
    /// Whether a 16 to 31-byte HS256 secret is accepted (always `false` in
    /// phase `asymmetric`, which reads no secret).
    pub allow_weak_hs256_secret: bool,
    /// The shape of HS256 tokens (`[issuer.legacy]`); `None` when absent,
    /// and in phase `asymmetric`, where it is ignored.
    pub legacy: Option<IssuerLegacy>,
    /// Settings present in the file that the phase ignores, by dotted name:
    /// each service warns about them at start and on every reload.
    pub ignored: Vec<&'static str>,
}

/// The validated `[issuer.legacy]`: what HS256 tokens minted in phases
/// `legacy` and `dual` look like. RS256 tokens keep RFC 9068's shape.
#[derive(Debug, Clone, PartialEq)]
pub struct IssuerLegacy {
    /// The `iss` claim.
    pub issuer: String,
    /// The `typ` header.
    pub typ: HeaderTyp,
    /// Whether the header names the secret's `kid`.
    pub kid: bool,
    /// The `aud` claim; `None` for no `aud`.
    pub audience: Option<String>,
    /// Static extra claims, none of them a claim keyshift writes.
    pub claims: serde_json::Map<String, serde_json::Value>,
}

/// One OAuth client.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The client id (also the token's `sub` and `client_id`).
    pub id: String,
    /// The hash of its secret.
    pub secret_hash: SecretHash,
    /// Scopes it may be granted.
    pub scopes: Vec<String>,
}

/// Which `typ` header values the verifier accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TypPolicy {
    /// `at+jwt`, `application/at+jwt`, `JWT` (any case) or no `typ`.
    Lenient,
    /// Only `at+jwt` / `application/at+jwt` (RFC 9068 §4).
    Strict,
}

/// The validated `[verifier]` section.
#[derive(Debug, Clone)]
pub struct VerifierConfig {
    /// Listen address.
    pub listen: SocketAddr,
    /// The listener of the operational routes, if separate.
    pub admin_listen: Option<SocketAddr>,
    /// The gRPC ext_authz listener, if on.
    pub grpc_listen: Option<SocketAddr>,
    /// Most connections open at once per listener.
    pub max_connections: usize,
    /// TLS, config watching and the log format.
    pub serving: Serving,
    /// The exact `iss` expected.
    pub issuer: String,
    /// The audience that `aud` must be or contain.
    pub audience: String,
    /// Where to fetch RSA keys; `None` when RS256 is not accepted.
    pub jwks_url: Option<url::Url>,
    /// The HS256 secret file, if configured.
    pub hs256_secret_file: Option<PathBuf>,
    /// Whether `accept` overrode the phase's default.
    pub accept_overridden: bool,
    /// The accepted algorithms (phase default or override).
    pub accept: AcceptSet,
    /// Whether a plain-http, non-loopback JWKS URL is allowed.
    pub allow_insecure_jwks_http: bool,
    /// Clock-skew leeway.
    pub leeway: Duration,
    /// Longest accepted token lifetime.
    pub max_token_lifetime: Duration,
    /// Largest accepted token in bytes.
    pub max_token_bytes: usize,
    /// Accepted `typ` values.
    pub typ: TypPolicy,
    /// Lower bound of the JWKS TTL.
    pub jwks_min_ttl: Duration,
    /// Upper bound of the JWKS TTL.
    pub jwks_max_ttl: Duration,
    /// Least time between refetches caused by unknown kids.
    pub unknown_kid_cooldown: Duration,
    /// How long an unknown kid is remembered.
    pub negative_cache_ttl: Duration,
    /// Longest time stale keys keep serving while fetches fail.
    pub jwks_max_staleness: Duration,
    /// CA certificates trusted for the JWKS fetch beside the system roots.
    pub jwks_ca_file: Option<PathBuf>,
    /// The client certificate presented to the JWKS endpoint (mTLS).
    pub jwks_client_cert: Option<TlsFiles>,
    /// JWKS connect timeout.
    pub jwks_connect_timeout: Duration,
    /// JWKS total request timeout.
    pub jwks_timeout: Duration,
    /// Longest a request waits for a JWKS fetch it needs.
    pub jwks_request_wait: Duration,
    /// Entries of the verified-token cache; 0 turns it off.
    pub token_cache_size: usize,
    /// The issuer's `GET /migration`, whose answer says until when an HS256
    /// token it minted may be valid; `None` when turned off (`"off"`) or
    /// not derivable from `jwks_url`.
    pub issuer_migration_url: Option<url::Url>,
    /// Whether a reload into (or a start in) phase `asymmetric` goes ahead
    /// while HS256 tokens may still be valid.
    pub force_phase: bool,
    /// Whether a 16 to 31-byte HS256 secret is accepted (always `false` in
    /// phase `asymmetric`, which reads no secret).
    pub allow_weak_hs256_secret: bool,
    /// The legacy profile (`[verifier.legacy]`); `None` when absent, and in
    /// phase `asymmetric`, where it is ignored.
    pub legacy: Option<VerifierLegacy>,
    /// Settings present in the file that the phase ignores, by dotted name:
    /// each service warns about them at start and on every reload.
    pub ignored: Vec<&'static str>,
}

/// The validated `[verifier.legacy]`: looser checks of HS256 tokens only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifierLegacy {
    /// More accepted `iss` values; `""` accepts a token without `iss`.
    pub issuers: Vec<String>,
    /// Whether `aud` must be present (a present one must match either way).
    pub audience_required: bool,
    /// The claim holding the subject.
    pub subject_claim: String,
    /// The claim holding the scopes.
    pub scope_claim: String,
    /// More HS256 secret files, tried in order after `hs256_secret_file`.
    pub secret_files: Vec<PathBuf>,
}

/// The warning a service logs for a setting its phase ignores.
pub fn ignored_warning(setting: &str) -> String {
    format!(
        "{setting} is ignored in phase asymmetric (no HS256 token is signed or accepted); remove it when convenient"
    )
}

/// Why a config could not be loaded. The message always names the field.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The TOML does not parse, or a value has the wrong type or form.
    #[error("{field}: {message}")]
    Parse {
        /// Dotted path of the field (`issuer.token_ttl`), or `(file)`.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// A value parsed but is not acceptable.
    #[error("{field}: {message}")]
    Invalid {
        /// Dotted path of the field.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// The HS256 secret file a field names cannot be read, or holds an
    /// unusable secret.
    #[error("{field}: {source}")]
    Secret {
        /// Dotted path of the field.
        field: String,
        /// What is wrong with the file.
        #[source]
        source: SecretError,
    },
}

impl ConfigError {
    fn invalid(field: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The dotted field name the error is about, if any.
    pub fn field(&self) -> Option<&str> {
        match self {
            ConfigError::Read { .. } => None,
            ConfigError::Parse { field, .. }
            | ConfigError::Invalid { field, .. }
            | ConfigError::Secret { field, .. } => Some(field),
        }
    }
}

impl Config {
    /// Reads and validates a config file; relative paths resolve against its folder.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let base = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let base = if base.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            base
        };
        let base = std::path::absolute(&base).unwrap_or(base);
        Config::from_toml_str(&text, &base)
    }

    /// Parses and validates TOML text; relative paths resolve against `base_dir`.
    pub fn from_toml_str(text: &str, base_dir: &Path) -> Result<Config, ConfigError> {
        let raw = RawConfig::parse(text)?;
        Config::from_raw(raw, base_dir)
    }

    /// Validates a raw config.
    pub fn from_raw(raw: RawConfig, base_dir: &Path) -> Result<Config, ConfigError> {
        let phase = raw.phase.ok_or_else(|| {
            ConfigError::invalid("phase", "missing (legacy, dual, transition or asymmetric)")
        })?;
        let weak = raw.allow_weak_hs256_secret;
        let issuer = raw
            .issuer
            .map(|r| IssuerConfig::from_raw(r, phase, weak, base_dir))
            .transpose()?;
        let verifier = raw
            .verifier
            .map(|r| VerifierConfig::from_raw(r, phase, weak, base_dir))
            .transpose()?;
        let gateway = raw
            .gateway
            .map(|r| GatewayConfig::from_raw(r, base_dir))
            .transpose()?;
        if issuer.is_none() && verifier.is_none() && gateway.is_none() {
            return Err(ConfigError::invalid(
                "(file)",
                "neither an [issuer], a [verifier] nor a [gateway] section",
            ));
        }
        if gateway.as_ref().is_some_and(GatewayConfig::verifies) && verifier.is_none() {
            return Err(ConfigError::invalid(
                "verifier",
                "section missing; a [[gateway.routes]] table has verify = true, and the gateway verifies with the [verifier] settings",
            ));
        }
        Ok(Config {
            phase,
            base_dir: base_dir.to_owned(),
            issuer,
            verifier,
            gateway,
        })
    }

    /// The `[issuer]` section, or an error naming it.
    pub fn require_issuer(&self) -> Result<&IssuerConfig, ConfigError> {
        self.issuer
            .as_ref()
            .ok_or_else(|| ConfigError::invalid("issuer", "section missing"))
    }

    /// The `[gateway]` section, or an error naming it.
    pub fn require_gateway(&self) -> Result<&GatewayConfig, ConfigError> {
        self.gateway
            .as_ref()
            .ok_or_else(|| ConfigError::invalid("gateway", "section missing"))
    }

    /// The `[verifier]` section, or an error naming it.
    pub fn require_verifier(&self) -> Result<&VerifierConfig, ConfigError> {
        self.verifier
            .as_ref()
            .ok_or_else(|| ConfigError::invalid("verifier", "section missing"))
    }
}

fn resolve(base: &Path, p: PathBuf) -> PathBuf {
    if p.is_absolute() {
        p
    } else {
        base.join(p)
    }
}

fn parse_listen(
    field: &str,
    value: Option<String>,
    default: &str,
) -> Result<SocketAddr, ConfigError> {
    let text = value.unwrap_or_else(|| default.to_owned());
    text.parse().map_err(|_| {
        ConfigError::invalid(
            field,
            format!("`{text}` is not an address like 127.0.0.1:8080"),
        )
    })
}

/// `admin_listen` (not the same address as `listen`) and `max_connections`
/// (1 to 1,000,000) of `section`.
fn listeners(
    section: &str,
    listen: SocketAddr,
    admin_listen: Option<String>,
    max_connections: Option<usize>,
) -> Result<(Option<SocketAddr>, usize), ConfigError> {
    let admin_field = format!("{section}.admin_listen");
    let admin = admin_listen
        .map(|text| parse_listen(&admin_field, Some(text), ""))
        .transpose()?;
    if admin.is_some_and(|a| a == listen && a.port() != 0) {
        return Err(ConfigError::invalid(
            admin_field,
            format!("is {section}.listen; give the operational routes another address or port"),
        ));
    }
    let max = max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS);
    if !(1..=1_000_000).contains(&max) {
        return Err(ConfigError::invalid(
            format!("{section}.max_connections"),
            "must be between 1 and 1000000",
        ));
    }
    Ok((admin, max))
}

fn required_string(field: &str, value: Option<String>) -> Result<String, ConfigError> {
    match value {
        Some(v) if !v.trim().is_empty() => Ok(v),
        Some(_) => Err(ConfigError::invalid(field, "must not be empty")),
        None => Err(ConfigError::invalid(field, "missing")),
    }
}

fn issuer_url(field: &str, value: Option<String>) -> Result<String, ConfigError> {
    let text = required_string(field, value)?;
    let url = url::Url::parse(&text)
        .map_err(|e| ConfigError::invalid(field, format!("`{text}` is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ConfigError::invalid(field, "must be an http(s) URL"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(ConfigError::invalid(
            field,
            "must have no query or fragment (RFC 8414 §2)",
        ));
    }
    Ok(text)
}

/// The effective `allow_weak_hs256_secret` of a section: its own value, else
/// the top level's; in phase `asymmetric` always `false`, and reported as
/// ignored when set.
fn allow_weak(
    section: Option<bool>,
    top: Option<bool>,
    phase: Phase,
    ignored: &mut Vec<&'static str>,
) -> bool {
    let set = section.or(top).unwrap_or(DEFAULT_ALLOW_WEAK_HS256_SECRET);
    if set && !phase.needs_shared_secret() {
        ignored.push("allow_weak_hs256_secret");
        return false;
    }
    set
}

fn floor(allow_weak: bool) -> SecretFloor {
    if allow_weak {
        SecretFloor::AllowWeak
    } else {
        SecretFloor::Full
    }
}

/// A string that goes into a token or a header: no control characters.
fn printable(field: &str, value: String) -> Result<String, ConfigError> {
    if value.chars().any(char::is_control) {
        Err(ConfigError::invalid(
            field,
            "must not contain control characters",
        ))
    } else {
        Ok(value)
    }
}

fn duration(value: Option<HumanDuration>, default: Duration) -> Duration {
    value.map(Duration::from).unwrap_or(default)
}

fn positive(field: &str, d: Duration) -> Result<Duration, ConfigError> {
    if d.is_zero() {
        Err(ConfigError::invalid(field, "must be greater than zero"))
    } else {
        Ok(d)
    }
}

/// A network in CIDR form (`10.0.0.0/8`, `fd00::/8`), or one address (a /32
/// or /128); host bits past the prefix are cleared.
fn network(field: &str, text: &str) -> Result<IpNet, ConfigError> {
    let text = text.trim();
    let net = match text.parse::<IpNet>() {
        Ok(net) => net,
        Err(_) => IpNet::from(text.parse::<IpAddr>().map_err(|_| {
            ConfigError::invalid(
                field,
                format!("`{text}` is not a CIDR like 10.0.0.0/8 or fd00::/8, nor an address"),
            )
        })?),
    };
    Ok(net.trunc())
}

/// A scope token as RFC 6749 §3.3 defines it.
pub fn is_scope_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
}

// === impl IssuerConfig ===

impl IssuerConfig {
    fn from_raw(
        mut raw: RawIssuer,
        phase: Phase,
        top_weak: Option<bool>,
        base: &Path,
    ) -> Result<IssuerConfig, ConfigError> {
        let serving = Serving::from_raw("issuer", raw.take_serving(), base)?;
        let listen = parse_listen("issuer.listen", raw.listen, DEFAULT_ISSUER_LISTEN)?;
        let (admin_listen, max_connections) =
            listeners("issuer", listen, raw.admin_listen, raw.max_connections)?;
        let issuer = issuer_url("issuer.issuer", raw.issuer)?;
        let audience = required_string("issuer.audience", raw.audience)?;
        let token_ttl = positive(
            "issuer.token_ttl",
            duration(raw.token_ttl, DEFAULT_TOKEN_TTL),
        )?;
        if token_ttl > MAX_TOKEN_TTL {
            return Err(ConfigError::invalid(
                "issuer.token_ttl",
                format!(
                    "{} is longer than the allowed {}",
                    HumanDuration(token_ttl),
                    HumanDuration(MAX_TOKEN_TTL)
                ),
            ));
        }
        let key_bits = raw.key_bits.unwrap_or(DEFAULT_KEY_BITS);
        if ![2048, 3072, 4096].contains(&key_bits) {
            return Err(ConfigError::invalid(
                "issuer.key_bits",
                format!("{key_bits} is not one of 2048, 3072, 4096"),
            ));
        }
        let rotate_every = match raw.rotate_every.as_deref() {
            None => Some(DEFAULT_ROTATE_EVERY),
            Some("off") => None,
            Some(text) => {
                let d: HumanDuration = text.parse().map_err(|e| {
                    ConfigError::invalid("issuer.rotate_every", format!("{e}, or \"off\""))
                })?;
                Some(positive("issuer.rotate_every", d.0)?)
            }
        };
        let jwks_max_age = duration(raw.jwks_max_age, DEFAULT_JWKS_MAX_AGE);
        let key_prepublish = duration(raw.key_prepublish, DEFAULT_KEY_PREPUBLISH);
        let publish_margin = KEY_SYNC_INTERVAL + JWKS_REFRESH_TICK;
        if key_prepublish < jwks_max_age + publish_margin {
            return Err(ConfigError::invalid(
                "issuer.key_prepublish",
                format!(
                    "{} must be at least issuer.jwks_max_age plus {} (every issuer replica picks up a new key within {}, a verifier looks for a due JWKS refresh every {}): {}, or verifiers could see a token before its key",
                    HumanDuration(key_prepublish),
                    HumanDuration(publish_margin),
                    HumanDuration(KEY_SYNC_INTERVAL),
                    HumanDuration(JWKS_REFRESH_TICK),
                    HumanDuration(jwks_max_age + publish_margin)
                ),
            ));
        }
        if let Some(every) = rotate_every {
            if every <= key_prepublish + token_ttl {
                return Err(ConfigError::invalid(
                    "issuer.rotate_every",
                    format!(
                        "{} must be longer than issuer.key_prepublish plus issuer.token_ttl ({})",
                        HumanDuration(every),
                        HumanDuration(key_prepublish + token_ttl)
                    ),
                ));
            }
        }
        let failed_auth_limit = raw.failed_auth_limit.unwrap_or(DEFAULT_FAILED_AUTH_LIMIT);
        if failed_auth_limit == 0 {
            return Err(ConfigError::invalid(
                "issuer.failed_auth_limit",
                "must be at least 1",
            ));
        }
        let failed_auth_window = positive(
            "issuer.failed_auth_window",
            duration(raw.failed_auth_window, DEFAULT_FAILED_AUTH_WINDOW),
        )?;
        let trusted_proxies = match &raw.trusted_proxies {
            Some(list) => list.iter().map(String::as_str).collect(),
            None => DEFAULT_TRUSTED_PROXIES.to_vec(),
        }
        .into_iter()
        .map(|text| network("issuer.trusted_proxies", text))
        .collect::<Result<Vec<_>, _>>()?;
        let proxy_protocol = raw.proxy_protocol.unwrap_or(DEFAULT_PROXY_PROTOCOL);
        if proxy_protocol && trusted_proxies.is_empty() {
            return Err(ConfigError::invalid(
                "issuer.proxy_protocol",
                "needs issuer.trusted_proxies: the proxies whose PROXY header is believed",
            ));
        }
        let hs256_secret_file = raw.hs256_secret_file.map(|p| resolve(base, p));
        if phase.needs_shared_secret() && hs256_secret_file.is_none() {
            return Err(ConfigError::invalid(
                "issuer.hs256_secret_file",
                format!("missing; phase {phase} needs the shared HS256 secret"),
            ));
        }
        let mut clients = Vec::with_capacity(raw.clients.len());
        for (i, c) in raw.clients.into_iter().enumerate() {
            let field = |name: &str| format!("issuer.clients[{i}].{name}");
            let id = required_string(&field("id"), c.id)?;
            if id.chars().any(char::is_control) {
                return Err(ConfigError::invalid(
                    field("id"),
                    "must not contain control characters",
                ));
            }
            if id.len() > MAX_CLIENT_ID_BYTES {
                return Err(ConfigError::invalid(
                    field("id"),
                    format!("longer than {MAX_CLIENT_ID_BYTES} bytes"),
                ));
            }
            if clients.iter().any(|x: &ClientConfig| x.id == id) {
                return Err(ConfigError::invalid(
                    field("id"),
                    format!("duplicate client id `{id}`"),
                ));
            }
            let hash_text = required_string(&field("secret_hash"), c.secret_hash)?;
            let secret_hash = SecretHash::parse(&hash_text)
                .map_err(|e| ConfigError::invalid(field("secret_hash"), e.to_string()))?;
            let scopes = c.scopes.unwrap_or_default();
            for s in &scopes {
                if !is_scope_token(s) {
                    return Err(ConfigError::invalid(
                        field("scopes"),
                        format!("`{s}` is not a valid scope token (RFC 6749 §3.3)"),
                    ));
                }
            }
            clients.push(ClientConfig {
                id,
                secret_hash,
                scopes,
            });
        }
        let mut ignored = Vec::new();
        let allow_weak_hs256_secret =
            allow_weak(raw.allow_weak_hs256_secret, top_weak, phase, &mut ignored);
        let legacy = match raw.legacy {
            Some(_) if !phase.needs_shared_secret() => {
                ignored.push("issuer.legacy");
                None
            }
            Some(l) => Some(IssuerLegacy::from_raw(l, &issuer, &audience)?),
            None => None,
        };
        Ok(IssuerConfig {
            listen,
            admin_listen,
            max_connections,
            serving,
            issuer,
            audience,
            token_ttl,
            key_dir: resolve(
                base,
                raw.key_dir
                    .unwrap_or_else(|| PathBuf::from(DEFAULT_KEY_DIR)),
            ),
            hs256_secret_file,
            key_bits,
            rotate_every,
            jwks_max_age,
            key_prepublish,
            failed_auth_limit,
            failed_auth_window,
            trusted_proxies,
            proxy_protocol,
            clients,
            allow_weak_hs256_secret,
            legacy,
            ignored,
        })
    }

    /// The files this section names whose change `watch_config` reloads
    /// for (the key directory has its own watch: the key tick).
    pub fn watched_files(&self) -> Vec<PathBuf> {
        self.hs256_secret_file.iter().cloned().collect()
    }

    /// Loads the HS256 secret if `phase` needs one and it is configured; the
    /// error names the field. In phase `asymmetric` the file is never read, so
    /// a leftover path to a destroyed secret cannot stop the issuer (it is
    /// reported instead: [`IssuerConfig::hs256_secret_file`] is still set).
    pub fn load_secret(&self, phase: Phase) -> Result<Option<HmacSecret>, ConfigError> {
        if !phase.needs_shared_secret() {
            return Ok(None);
        }
        load_secret(
            "issuer.hs256_secret_file",
            self.hs256_secret_file.as_deref(),
            floor(self.allow_weak_hs256_secret),
        )
    }

    /// The path of the issuer URL without a trailing `/` (`/tenant-a` for
    /// `https://id.example.com/tenant-a/`); empty when it has none.
    pub fn issuer_path(&self) -> &str {
        let after_scheme = self
            .issuer
            .split_once("://")
            .map_or(self.issuer.as_str(), |(_, rest)| rest);
        after_scheme
            .find('/')
            .and_then(|i| after_scheme.get(i..))
            .unwrap_or("")
            .trim_end_matches('/')
    }

    /// The token endpoint URL.
    pub fn token_endpoint(&self) -> String {
        format!("{}/oauth/token", self.issuer.trim_end_matches('/'))
    }

    /// The JWKS URL.
    pub fn jwks_uri(&self) -> String {
        format!(
            "{}/.well-known/jwks.json",
            self.issuer.trim_end_matches('/')
        )
    }

    /// Whether this section's HS256 tokens take the legacy shape in `phase`
    /// (phases `legacy` and `dual` sign HS256), and the shape.
    pub fn legacy_shape(&self, phase: Phase) -> Option<&IssuerLegacy> {
        self.legacy.as_ref().filter(|_| phase.signs() == Alg::Hs256)
    }
}

// === impl IssuerLegacy ===

impl IssuerLegacy {
    fn from_raw(
        raw: RawIssuerLegacy,
        issuer: &str,
        audience: &str,
    ) -> Result<IssuerLegacy, ConfigError> {
        let issuer = match raw.issuer {
            None => issuer.to_owned(),
            Some(s) if s.is_empty() => {
                return Err(ConfigError::invalid(
                    "issuer.legacy.issuer",
                    "must not be empty (a verifier that does not check iss ignores it; omit the key for issuer.issuer)",
                ))
            }
            Some(s) => printable("issuer.legacy.issuer", s)?,
        };
        let typ = match raw.typ {
            None => DEFAULT_LEGACY_TYP,
            Some(t) => HeaderTyp::from_config(&t).ok_or_else(|| {
                ConfigError::invalid(
                    "issuer.legacy.typ",
                    format!("`{t}` is not one of \"JWT\", \"at+jwt\" or \"\" (no typ)"),
                )
            })?,
        };
        let audience = match raw.audience {
            None => Some(audience.to_owned()),
            Some(a) if a.is_empty() => None,
            Some(a) => Some(printable("issuer.legacy.audience", a)?),
        };
        let mut claims = serde_json::Map::new();
        for (name, value) in raw.claims {
            let field = format!("issuer.legacy.claims.{name}");
            if REGISTERED_CLAIMS.contains(&name.as_str()) {
                return Err(ConfigError::invalid(
                    field,
                    format!(
                        "`{name}` is written by keyshift; set it with issuer.legacy's own keys"
                    ),
                ));
            }
            claims.insert(name, json_value(&field, value)?);
        }
        Ok(IssuerLegacy {
            issuer,
            typ,
            kid: raw.kid.unwrap_or(DEFAULT_LEGACY_KID),
            audience,
            claims,
        })
    }
}

/// A TOML value as the JSON claim it becomes; datetimes have no JSON form.
fn json_value(field: &str, value: toml::Value) -> Result<serde_json::Value, ConfigError> {
    Ok(match value {
        toml::Value::String(s) => s.into(),
        toml::Value::Integer(i) => i.into(),
        toml::Value::Float(f) => serde_json::Number::from_f64(f)
            .map(serde_json::Value::Number)
            .ok_or_else(|| ConfigError::invalid(field, "not a finite number"))?,
        toml::Value::Boolean(b) => b.into(),
        toml::Value::Datetime(_) => {
            return Err(ConfigError::invalid(
                field,
                "a TOML datetime has no JSON form; write it as a string or a number",
            ))
        }
        toml::Value::Array(items) => items
            .into_iter()
            .map(|v| json_value(field, v))
            .collect::<Result<Vec<_>, _>>()?
            .into(),
        toml::Value::Table(table) => table
            .into_iter()
            .map(|(k, v)| Ok((k, json_value(field, v)?)))
            .collect::<Result<serde_json::Map<_, _>, ConfigError>>()?
            .into(),
    })
}

fn load_secret(
    field: &str,
    path: Option<&Path>,
    floor: SecretFloor,
) -> Result<Option<HmacSecret>, ConfigError> {
    path.map(|p| {
        HmacSecret::load_with_floor(p, floor).map_err(|source| ConfigError::Secret {
            field: field.to_owned(),
            source,
        })
    })
    .transpose()
}

// === impl VerifierConfig ===

impl VerifierConfig {
    fn from_raw(
        mut raw: RawVerifier,
        phase: Phase,
        top_weak: Option<bool>,
        base: &Path,
    ) -> Result<VerifierConfig, ConfigError> {
        let serving = Serving::from_raw("verifier", raw.take_serving(), base)?;
        let jwks_ca_file = raw.jwks_ca_file.take().map(|p| resolve(base, p));
        let jwks_client_cert = serving::client_cert(
            "verifier",
            raw.jwks_client_cert_file.take(),
            raw.jwks_client_key_file.take(),
            base,
        )?;
        let listen = parse_listen("verifier.listen", raw.listen, DEFAULT_VERIFIER_LISTEN)?;
        let (admin_listen, max_connections) =
            listeners("verifier", listen, raw.admin_listen, raw.max_connections)?;
        let grpc_listen = raw
            .grpc_listen
            .or(DEFAULT_GRPC_LISTEN.map(str::to_owned))
            .map(|text| parse_listen("verifier.grpc_listen", Some(text), ""))
            .transpose()?;
        if let Some(grpc) = grpc_listen.filter(|g| g.port() != 0) {
            if grpc == listen || Some(grpc) == admin_listen {
                return Err(ConfigError::invalid(
                    "verifier.grpc_listen",
                    "is the address of verifier.listen or verifier.admin_listen; give gRPC its own port",
                ));
            }
        }
        let issuer = required_string("verifier.issuer", raw.issuer)?;
        let audience = required_string("verifier.audience", raw.audience)?;
        let accept_overridden = raw.accept.is_some();
        let accept = match raw.accept {
            None => phase.default_accept(),
            Some(list) => list.into_iter().collect(),
        };
        let allow_insecure_jwks_http = raw.allow_insecure_jwks_http.unwrap_or(false);
        let jwks_url = match raw.jwks_url {
            Some(text) => {
                let url = url::Url::parse(&text).map_err(|e| {
                    ConfigError::invalid("verifier.jwks_url", format!("`{text}` is not a URL: {e}"))
                })?;
                check_jwks_url(&url, allow_insecure_jwks_http)?;
                Some(url)
            }
            None => None,
        };
        let hs256_secret_file = raw.hs256_secret_file.map(|p| resolve(base, p));
        check_accept(
            phase,
            accept,
            "verifier.accept",
            jwks_url.is_some(),
            hs256_secret_file.is_some(),
        )?;
        let leeway = duration(raw.leeway, DEFAULT_LEEWAY);
        if leeway > Duration::from_secs(300) {
            return Err(ConfigError::invalid(
                "verifier.leeway",
                "more than 5m of clock skew is not a leeway",
            ));
        }
        let max_token_lifetime = positive(
            "verifier.max_token_lifetime",
            duration(raw.max_token_lifetime, DEFAULT_MAX_TOKEN_LIFETIME),
        )?;
        let max_token_bytes = raw.max_token_bytes.unwrap_or(DEFAULT_MAX_TOKEN_BYTES);
        if !(256..=65_536).contains(&max_token_bytes) {
            return Err(ConfigError::invalid(
                "verifier.max_token_bytes",
                "must be between 256 and 65536",
            ));
        }
        let typ = if raw.strict_typ.unwrap_or(false) {
            TypPolicy::Strict
        } else {
            TypPolicy::Lenient
        };
        let jwks_min_ttl = positive(
            "verifier.jwks_min_ttl",
            duration(raw.jwks_min_ttl, DEFAULT_JWKS_MIN_TTL),
        )?;
        let jwks_max_ttl = duration(raw.jwks_max_ttl, DEFAULT_JWKS_MAX_TTL);
        if jwks_max_ttl < jwks_min_ttl {
            return Err(ConfigError::invalid(
                "verifier.jwks_max_ttl",
                "must not be less than verifier.jwks_min_ttl",
            ));
        }
        let jwks_max_staleness = duration(raw.jwks_max_staleness, DEFAULT_JWKS_MAX_STALENESS);
        let issuer_migration_url = match raw.issuer_migration_url.as_deref() {
            Some("off") => None,
            Some(text) => {
                let field = "verifier.issuer_migration_url";
                let url = url::Url::parse(text).map_err(|e| {
                    ConfigError::invalid(field, format!("`{text}` is not a URL, or \"off\": {e}"))
                })?;
                check_fetch_url(field, &url, allow_insecure_jwks_http)?;
                Some(url)
            }
            None => jwks_url.as_ref().and_then(derive_migration_url),
        };
        let mut ignored = Vec::new();
        let allow_weak_hs256_secret =
            allow_weak(raw.allow_weak_hs256_secret, top_weak, phase, &mut ignored);
        let legacy = match raw.legacy {
            Some(_) if !phase.needs_shared_secret() => {
                ignored.push("verifier.legacy");
                None
            }
            Some(l) => Some(VerifierLegacy::from_raw(l, base)?),
            None => None,
        };
        Ok(VerifierConfig {
            listen,
            admin_listen,
            grpc_listen,
            max_connections,
            serving,
            issuer,
            audience,
            jwks_url,
            jwks_ca_file,
            jwks_client_cert,
            hs256_secret_file,
            accept_overridden,
            accept,
            allow_insecure_jwks_http,
            leeway,
            max_token_lifetime,
            max_token_bytes,
            typ,
            jwks_min_ttl,
            jwks_max_ttl,
            unknown_kid_cooldown: duration(raw.unknown_kid_cooldown, DEFAULT_UNKNOWN_KID_COOLDOWN),
            negative_cache_ttl: duration(raw.negative_cache_ttl, DEFAULT_NEGATIVE_CACHE_TTL),
            jwks_max_staleness,
            jwks_connect_timeout: positive(
                "verifier.jwks_connect_timeout",
                duration(raw.jwks_connect_timeout, DEFAULT_JWKS_CONNECT_TIMEOUT),
            )?,
            jwks_timeout: positive(
                "verifier.jwks_timeout",
                duration(raw.jwks_timeout, DEFAULT_JWKS_TIMEOUT),
            )?,
            jwks_request_wait: positive(
                "verifier.jwks_request_wait",
                duration(raw.jwks_request_wait, DEFAULT_JWKS_REQUEST_WAIT),
            )?,
            token_cache_size: raw.token_cache_size.unwrap_or(DEFAULT_TOKEN_CACHE_SIZE),
            issuer_migration_url,
            force_phase: raw.force_phase.unwrap_or(DEFAULT_FORCE_PHASE),
            allow_weak_hs256_secret,
            legacy,
            ignored,
        })
    }

    /// Replaces the accepted algorithms with an override from outside the
    /// file (`field` names it, e.g. `--accept`), under the same rules as
    /// `verifier.accept`.
    pub fn override_accept(
        &mut self,
        phase: Phase,
        accept: AcceptSet,
        field: &str,
    ) -> Result<(), ConfigError> {
        check_accept(
            phase,
            accept,
            field,
            self.jwks_url.is_some(),
            self.hs256_secret_file.is_some(),
        )?;
        self.accept = accept;
        self.accept_overridden = true;
        Ok(())
    }

    /// The files this section names whose change `watch_config` reloads
    /// for: the HS256 secrets, the JWKS CA and client certificate.
    pub fn watched_files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = self.hs256_secret_file.iter().cloned().collect();
        files.extend(
            self.legacy
                .iter()
                .flat_map(|l| l.secret_files.iter().cloned()),
        );
        files.extend(self.jwks_ca_file.iter().cloned());
        files.extend(
            self.jwks_client_cert
                .iter()
                .flat_map(|t| [t.cert_file.clone(), t.key_file.clone()]),
        );
        files
    }

    /// Loads the HS256 secrets if HS256 is accepted: `hs256_secret_file`,
    /// then the legacy profile's `secret_files` in order; the error names
    /// the field. Otherwise (phase `asymmetric`) no file is read, so a
    /// leftover path to a destroyed secret cannot stop the verifier (it is
    /// reported instead).
    pub fn load_secrets(&self) -> Result<HmacSecrets, ConfigError> {
        if !self.accept.contains(Alg::Hs256) {
            return Ok(HmacSecrets::default());
        }
        let floor = floor(self.allow_weak_hs256_secret);
        let primary = load_secret(
            "verifier.hs256_secret_file",
            self.hs256_secret_file.as_deref(),
            floor,
        )?;
        let mut extra = Vec::new();
        let files = self.legacy.iter().flat_map(|l| &l.secret_files);
        for (i, path) in files.enumerate() {
            let field = format!("verifier.legacy.secret_files[{i}]");
            extra.extend(load_secret(&field, Some(path), floor)?);
        }
        Ok(HmacSecrets { primary, extra })
    }
}

// === impl VerifierLegacy ===

impl VerifierLegacy {
    fn from_raw(raw: RawVerifierLegacy, base: &Path) -> Result<VerifierLegacy, ConfigError> {
        let issuers = raw
            .issuers
            .unwrap_or_default()
            .into_iter()
            .enumerate()
            .map(|(i, iss)| printable(&format!("verifier.legacy.issuers[{i}]"), iss))
            .collect::<Result<Vec<_>, _>>()?;
        let claim = |field: &str, value: Option<String>, default: &str| {
            let name = value.unwrap_or_else(|| default.to_owned());
            if name.is_empty() {
                return Err(ConfigError::invalid(field, "must not be empty"));
            }
            if NOT_A_SUBJECT_OR_SCOPE.contains(&name.as_str()) {
                return Err(ConfigError::invalid(
                    field,
                    format!("`{name}` decides whether a token is valid, not whom it is for"),
                ));
            }
            Ok(name)
        };
        let subject_claim = claim(
            "verifier.legacy.subject_claim",
            raw.subject_claim,
            DEFAULT_LEGACY_SUBJECT_CLAIM,
        )?;
        let scope_claim = claim(
            "verifier.legacy.scope_claim",
            raw.scope_claim,
            DEFAULT_LEGACY_SCOPE_CLAIM,
        )?;
        if subject_claim == scope_claim {
            return Err(ConfigError::invalid(
                "verifier.legacy.scope_claim",
                "must differ from verifier.legacy.subject_claim",
            ));
        }
        Ok(VerifierLegacy {
            issuers,
            audience_required: raw
                .audience_required
                .unwrap_or(DEFAULT_LEGACY_AUDIENCE_REQUIRED),
            subject_claim,
            scope_claim,
            secret_files: raw
                .secret_files
                .unwrap_or_default()
                .into_iter()
                .map(|p| resolve(base, p))
                .collect(),
        })
    }
}

/// The rules of an accepted-algorithm set, wherever it comes from (`field`):
/// not empty, no HS256 in phase `asymmetric`, and the key source of each
/// accepted algorithm configured.
fn check_accept(
    phase: Phase,
    accept: AcceptSet,
    field: &str,
    has_jwks_url: bool,
    has_secret_file: bool,
) -> Result<(), ConfigError> {
    if accept.is_empty() {
        return Err(ConfigError::invalid(field, "accepts no algorithm"));
    }
    if !phase.refused_in(accept).is_empty() {
        return Err(ConfigError::invalid(
            field,
            "HS256 cannot be accepted in phase asymmetric; remove HS256 or go back to phase transition",
        ));
    }
    if accept.contains(Alg::Rs256) && !has_jwks_url {
        return Err(ConfigError::invalid(
            "verifier.jwks_url",
            format!("missing; RS256 is accepted ({accept}, from {field})"),
        ));
    }
    if accept.contains(Alg::Hs256) && !has_secret_file {
        return Err(ConfigError::invalid(
            "verifier.hs256_secret_file",
            format!("missing; HS256 is accepted ({accept}, from {field})"),
        ));
    }
    Ok(())
}

/// Refuses a JWKS URL that is not https, unless its host is loopback or
/// `allow_insecure_jwks_http` is set.
pub fn check_jwks_url(url: &url::Url, allow_insecure_jwks_http: bool) -> Result<(), ConfigError> {
    check_fetch_url("verifier.jwks_url", url, allow_insecure_jwks_http)
}

/// The issuer's `/migration` beside a JWKS URL served at [`JWKS_PATH`]
/// (keyshift's issuer); `None` for any other JWKS URL (a third-party issuer).
pub fn derive_migration_url(jwks_url: &url::Url) -> Option<url::Url> {
    let base = jwks_url.path().strip_suffix(JWKS_PATH)?;
    if jwks_url.query().is_some() {
        return None;
    }
    let mut url = jwks_url.clone();
    url.set_path(&format!("{base}{DEFAULT_ISSUER_MIGRATION_PATH}"));
    Some(url)
}

/// The rule of every URL the verifier fetches from (`field` names it):
/// https, or http to a loopback host or with `allow_insecure_jwks_http`.
fn check_fetch_url(
    field: &str,
    url: &url::Url,
    allow_insecure_jwks_http: bool,
) -> Result<(), ConfigError> {
    match url.scheme() {
        "https" => Ok(()),
        "http" if allow_insecure_jwks_http || is_loopback_host(url) => Ok(()),
        "http" => Err(ConfigError::invalid(
            field,
            "plain http is refused for a non-loopback host (what is fetched over http can be forged); use https or set verifier.allow_insecure_jwks_http = true",
        )),
        other => Err(ConfigError::invalid(field, format!("scheme `{other}` is not http(s)"))),
    }
}

fn is_loopback_host(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}
