//! The config file exactly as serde reads it: stage one of two.

use std::path::PathBuf;

use serde::Deserialize;

use super::serving::{LogFormat, RawServing};
use super::ConfigError;
use crate::duration::HumanDuration;
use crate::phase::{Alg, Phase};

/// The whole file. See `docs/configuration.md` for every key.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// `legacy`, `dual`, `transition` or `asymmetric`. Required.
    pub phase: Option<Phase>,
    /// Accept a 16 to 31-byte HS256 secret in phases `legacy`, `dual` and
    /// `transition`, for both services unless a section says otherwise.
    /// Defaults to `false`.
    pub allow_weak_hs256_secret: Option<bool>,
    /// The `[issuer]` section.
    pub issuer: Option<RawIssuer>,
    /// The `[verifier]` section.
    pub verifier: Option<RawVerifier>,
    /// The `[gateway]` section.
    pub gateway: Option<RawGateway>,
}

/// `[issuer]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIssuer {
    /// Listen address. Defaults to `127.0.0.1:8080`.
    pub listen: Option<String>,
    /// A second listener for the operational routes (`/metrics`), which
    /// then leave the public one. Defaults to none.
    pub admin_listen: Option<String>,
    /// Most connections open at once per listener. Defaults to `10000`.
    pub max_connections: Option<usize>,
    /// PEM certificate chain (leaf first): the HTTP listeners serve TLS
    /// 1.2/1.3 with it, reloaded when the file changes. Needs
    /// `tls_key_file`. Defaults to none (plain HTTP).
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key of `tls_cert_file`. Defaults to none.
    pub tls_key_file: Option<PathBuf>,
    /// Reload when the config file or a file it names changes (as a
    /// Kubernetes ConfigMap update does). Defaults to `false`.
    pub watch_config: Option<bool>,
    /// `text` or `json` (one object per line). Defaults to `text`.
    pub log_format: Option<LogFormat>,
    /// The `iss` claim and base of the metadata URLs. Required.
    pub issuer: Option<String>,
    /// The `aud` claim. Required.
    pub audience: Option<String>,
    /// Token lifetime, at most `24h`. Defaults to `15m`.
    pub token_ttl: Option<HumanDuration>,
    /// Key directory. Defaults to `keys`.
    pub key_dir: Option<PathBuf>,
    /// HS256 secret file; required in every phase but `asymmetric`. No default.
    pub hs256_secret_file: Option<PathBuf>,
    /// RSA modulus size for new keys: 2048, 3072 or 4096. Defaults to `2048`.
    pub key_bits: Option<u32>,
    /// Automatic rotation period, or `"off"`. Defaults to `90d`.
    pub rotate_every: Option<String>,
    /// `Cache-Control: max-age` of the JWKS. Defaults to `5m`.
    pub jwks_max_age: Option<HumanDuration>,
    /// Pre-publish time of a new key and grace time of a retiring one;
    /// longer than `jwks_max_age`. Defaults to `15m`.
    pub key_prepublish: Option<HumanDuration>,
    /// Failed client authentications per window before 429. Defaults to `10`.
    pub failed_auth_limit: Option<u32>,
    /// Window of `failed_auth_limit`. Defaults to `1m`.
    pub failed_auth_window: Option<HumanDuration>,
    /// Proxies (CIDRs or addresses) whose `X-Forwarded-For` names the
    /// client the failed-auth limits count. Defaults to none.
    pub trusted_proxies: Option<Vec<String>>,
    /// Every connection to `listen` starts with a PROXY protocol v2 header,
    /// whose source a peer in `trusted_proxies` is believed. Defaults to `false`.
    pub proxy_protocol: Option<bool>,
    /// `[[issuer.clients]]`. Defaults to none.
    #[serde(default)]
    pub clients: Vec<RawClient>,
    /// Accept a 16 to 31-byte HS256 secret (see the top-level key).
    /// Defaults to the top-level value, else `false`.
    pub allow_weak_hs256_secret: Option<bool>,
    /// `[issuer.legacy]`: the shape of HS256 tokens. Defaults to none.
    pub legacy: Option<RawIssuerLegacy>,
}

/// `[issuer.legacy]`: how HS256 tokens minted in phases `legacy` and `dual`
/// look, so the old fleet's verifiers accept them.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIssuerLegacy {
    /// The `iss` claim, any non-empty string. Defaults to `issuer.issuer`.
    pub issuer: Option<String>,
    /// The `typ` header: `"JWT"`, `"at+jwt"` or `""` (none). Defaults to `"at+jwt"`.
    pub typ: Option<String>,
    /// Whether the header carries the secret's `kid`. Defaults to `true`.
    pub kid: Option<bool>,
    /// The `aud` claim; `""` for none. Defaults to `issuer.audience`.
    pub audience: Option<String>,
    /// `[issuer.legacy.claims]`: static extra claims. Defaults to none.
    #[serde(default)]
    pub claims: toml::Table,
}

/// `[[issuer.clients]]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawClient {
    /// The client id. Required.
    pub id: Option<String>,
    /// `sha256:<hex>`, an argon2id or PBKDF2-SHA256 PHC string, or a bcrypt hash. Required.
    pub secret_hash: Option<String>,
    /// Allowed scopes. Defaults to none.
    pub scopes: Option<Vec<String>>,
}

/// `[verifier]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawVerifier {
    /// Listen address. Defaults to `127.0.0.1:8081`.
    pub listen: Option<String>,
    /// A second listener for the operational routes (`/metrics`, `/keys`,
    /// `/migration`), which then leave the public one. Defaults to none.
    pub admin_listen: Option<String>,
    /// The gRPC ext_authz listener (`envoy.service.auth.v3.Authorization/Check`).
    /// Defaults to none (off).
    pub grpc_listen: Option<String>,
    /// Most connections open at once per listener. Defaults to `10000`.
    pub max_connections: Option<usize>,
    /// PEM certificate chain (leaf first): the HTTP listeners serve TLS
    /// 1.2/1.3 with it, reloaded when the file changes. Needs
    /// `tls_key_file`. Defaults to none (plain HTTP).
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key of `tls_cert_file`. Defaults to none.
    pub tls_key_file: Option<PathBuf>,
    /// Reload when the config file or a file it names changes (as a
    /// Kubernetes ConfigMap update does). Defaults to `false`.
    pub watch_config: Option<bool>,
    /// `text` or `json` (one object per line). Defaults to `text`.
    pub log_format: Option<LogFormat>,
    /// The exact `iss` expected. Required.
    pub issuer: Option<String>,
    /// The audience `aud` must be or contain. Required.
    pub audience: Option<String>,
    /// JWKS URL; required when RS256 is accepted. No default.
    pub jwks_url: Option<String>,
    /// HS256 secret file; required when HS256 is accepted. No default.
    pub hs256_secret_file: Option<PathBuf>,
    /// Override of the phase's accepted algorithms. Defaults to the phase's.
    pub accept: Option<Vec<Alg>>,
    /// PEM file of CA certificates trusted for the JWKS fetch, beside the
    /// system roots. Defaults to none.
    pub jwks_ca_file: Option<PathBuf>,
    /// PEM client certificate presented to the JWKS endpoint (mTLS). Needs
    /// `jwks_client_key_file`. Defaults to none.
    pub jwks_client_cert_file: Option<PathBuf>,
    /// PEM private key of `jwks_client_cert_file`. Defaults to none.
    pub jwks_client_key_file: Option<PathBuf>,
    /// Allow a plain-http JWKS URL on a non-loopback host. Defaults to `false`.
    pub allow_insecure_jwks_http: Option<bool>,
    /// Clock-skew leeway, at most `5m`. Defaults to `30s`.
    pub leeway: Option<HumanDuration>,
    /// Longest accepted token lifetime. Defaults to `24h`.
    pub max_token_lifetime: Option<HumanDuration>,
    /// Largest accepted token in bytes (256 to 65536). Defaults to `8192`.
    pub max_token_bytes: Option<usize>,
    /// Accept only `typ: at+jwt`. Defaults to `false`.
    pub strict_typ: Option<bool>,
    /// Lower bound of the JWKS TTL. Defaults to `5m`.
    pub jwks_min_ttl: Option<HumanDuration>,
    /// Upper bound of the JWKS TTL. Defaults to `24h`.
    pub jwks_max_ttl: Option<HumanDuration>,
    /// Least time between unknown-kid refetches. Defaults to `30s`.
    pub unknown_kid_cooldown: Option<HumanDuration>,
    /// How long an unknown kid is remembered. Defaults to `1m`.
    pub negative_cache_ttl: Option<HumanDuration>,
    /// Longest time stale keys keep serving while fetches fail. Defaults to `6h`.
    pub jwks_max_staleness: Option<HumanDuration>,
    /// JWKS connect timeout. Defaults to `2s`.
    pub jwks_connect_timeout: Option<HumanDuration>,
    /// JWKS total request timeout. Defaults to `5s`.
    pub jwks_timeout: Option<HumanDuration>,
    /// Longest a request waits for a JWKS fetch it needs (unknown kid, no
    /// usable keys) before it gets 503 with `Retry-After`; the fetch goes on.
    /// Defaults to `1s`.
    pub jwks_request_wait: Option<HumanDuration>,
    /// Verified-token cache entries; 0 turns it off. Defaults to `10000`.
    pub token_cache_size: Option<usize>,
    /// The issuer's `GET /migration`, or `"off"`. Defaults to the `jwks_url`
    /// with `/.well-known/jwks.json` replaced by `/migration`.
    pub issuer_migration_url: Option<String>,
    /// Enter phase `asymmetric` even while HS256 tokens may still be valid.
    /// Defaults to `false`.
    pub force_phase: Option<bool>,
    /// Accept a 16 to 31-byte HS256 secret (see the top-level key).
    /// Defaults to the top-level value, else `false`.
    pub allow_weak_hs256_secret: Option<bool>,
    /// `[verifier.legacy]`: looser checks of HS256 tokens. Defaults to none.
    pub legacy: Option<RawVerifierLegacy>,
}

/// `[verifier.legacy]`: the legacy profile, loosening checks of HS256 tokens
/// only (never RS256), so the old issuer's tokens pass during the migration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawVerifierLegacy {
    /// More `iss` values accepted on HS256 tokens; `""` accepts a token
    /// without `iss`. Defaults to `[]`.
    pub issuers: Option<Vec<String>>,
    /// Whether an HS256 token needs `aud` (one that has it must match
    /// either way). Defaults to `true`.
    pub audience_required: Option<bool>,
    /// The claim holding the subject; a number is read as decimal text.
    /// Defaults to `"sub"`.
    pub subject_claim: Option<String>,
    /// The claim holding the scopes: a space-delimited string or an array
    /// of strings. Defaults to `"scope"`.
    pub scope_claim: Option<String>,
    /// More HS256 secret files, tried in order after `hs256_secret_file`.
    /// Defaults to `[]`.
    pub secret_files: Option<Vec<PathBuf>>,
}

/// `[gateway]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGateway {
    /// Listen address. Defaults to `127.0.0.1:8082`.
    pub listen: Option<String>,
    /// A second listener for `/healthz` and `/metrics`, which then leave the
    /// public one (where every path is proxied). Defaults to none.
    pub admin_listen: Option<String>,
    /// Most connections open at once per listener. Defaults to `10000`.
    pub max_connections: Option<usize>,
    /// PEM certificate chain (leaf first): the HTTP listeners serve TLS
    /// 1.2/1.3 with it, reloaded when the file changes. Needs
    /// `tls_key_file`. Defaults to none (plain HTTP).
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key of `tls_cert_file`. Defaults to none.
    pub tls_key_file: Option<PathBuf>,
    /// Reload when the config file or a file it names changes (as a
    /// Kubernetes ConfigMap update does). Defaults to `false`.
    pub watch_config: Option<bool>,
    /// `text` or `json` (one object per line). Defaults to `text`.
    pub log_format: Option<LogFormat>,
    /// The issuer's key directory, read only. Defaults to `keys`.
    pub key_dir: Option<PathBuf>,
    /// The `iss` of signed tokens (the issuer's). Required when a route signs.
    pub issuer: Option<String>,
    /// Upstream connect timeout. Defaults to `2s`.
    pub connect_timeout: Option<HumanDuration>,
    /// Longest wait for an upstream's response head. Defaults to `30s`.
    pub upstream_timeout: Option<HumanDuration>,
    /// `[[gateway.routes]]`. Defaults to none.
    #[serde(default)]
    pub routes: Vec<RawRoute>,
}

/// `[[gateway.routes]]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    /// The route's name (the `route` metric label). Required.
    pub name: Option<String>,
    /// The `Host` the route answers. Defaults to any host.
    pub host: Option<String>,
    /// The path prefix the route answers. Defaults to `/`.
    pub path_prefix: Option<String>,
    /// Remove `path_prefix` before forwarding. Defaults to `false`.
    pub strip_prefix: Option<bool>,
    /// The upstream base URL (`http://host:port[/path]`). Required.
    pub upstream: Option<String>,
    /// Verify the client's bearer token. Defaults to `true`.
    pub verify: Option<bool>,
    /// Scopes the verified token must hold. Defaults to none.
    pub scopes: Option<Vec<String>>,
    /// Sign a fresh RS256 token for the upstream. Defaults to `false`.
    pub sign: Option<bool>,
    /// `aud` of signed tokens. Required when `sign = true`.
    pub audience: Option<String>,
    /// Lifetime of signed tokens, at most `1h`. Defaults to `60s`.
    pub sign_ttl: Option<HumanDuration>,
    /// Header carrying the signed token. Defaults to `authorization`.
    pub sign_header: Option<String>,
    /// `replace` or `fail` when the client sent `sign_header`. Defaults to `replace`.
    pub if_present: Option<String>,
    /// The `sub` and `client_id` of signed tokens when `verify = false`. No default.
    pub service_identity: Option<String>,
}

/// Moves the deployment keys out of a raw section.
macro_rules! take_serving {
    ($($section:ty),*) => {$(
        impl $section {
            /// The deployment keys (`tls_*`, `watch_config`, `log_format`).
            pub fn take_serving(&mut self) -> RawServing {
                RawServing {
                    tls_cert_file: self.tls_cert_file.take(),
                    tls_key_file: self.tls_key_file.take(),
                    watch_config: self.watch_config.take(),
                    log_format: self.log_format.take(),
                }
            }
        }
    )*};
}
take_serving!(RawIssuer, RawVerifier, RawGateway);

impl RawConfig {
    /// Parses TOML; an error names the field (`issuer.token_ttl: …`) and the line.
    pub fn parse(text: &str) -> Result<RawConfig, ConfigError> {
        let de = toml::Deserializer::new(text);
        serde_path_to_error::deserialize(de).map_err(|err| {
            let path = err.path().to_string();
            let inner = err.into_inner();
            let line = inner
                .span()
                .map(|span| text[..span.start.min(text.len())].matches('\n').count() + 1);
            let mut message = inner.message().trim().replace('\n', " ");
            if let Some(line) = line {
                message = format!("{message} (line {line})");
            }
            let field = if path == "." || path.is_empty() {
                "(file)".to_owned()
            } else {
                path
            };
            ConfigError::Parse { field, message }
        })
    }
}
