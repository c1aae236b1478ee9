//! The validated `[gateway]` section and its `[[gateway.routes]]`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::raw::{RawGateway, RawRoute};
use super::serving::Serving;
use super::{
    duration, is_scope_token, issuer_url, listeners, parse_listen, positive, required_string,
    resolve, ConfigError, DEFAULT_KEY_DIR,
};
use crate::duration::HumanDuration;

/// Default gateway listen address.
pub const DEFAULT_GATEWAY_LISTEN: &str = "127.0.0.1:8082";
/// Default upstream connect timeout: a healthy upstream in the same network
/// accepts in milliseconds; past this the answer is 502.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Default longest wait for an upstream's response head; past it, 504.
pub const DEFAULT_UPSTREAM_TIMEOUT: Duration = Duration::from_secs(30);
/// Default of a route's `verify`: a route checks tokens unless it says not to.
pub const DEFAULT_ROUTE_VERIFY: bool = true;
/// Default of a route's `sign`.
pub const DEFAULT_ROUTE_SIGN: bool = false;
/// Default of a route's `strip_prefix`.
pub const DEFAULT_STRIP_PREFIX: bool = false;
/// Default lifetime of a token the gateway signs.
pub const DEFAULT_SIGN_TTL: Duration = Duration::from_secs(60);
/// Longest lifetime of a token the gateway signs: it stands for one request.
pub const MAX_SIGN_TTL: Duration = Duration::from_secs(3600);
/// Default header carrying the signed token.
pub const DEFAULT_SIGN_HEADER: &str = "authorization";
/// Default path prefix: every path.
pub const DEFAULT_PATH_PREFIX: &str = "/";

/// What a signing route does when the client already sent `sign_header`
/// (Otoroshi's `replace_if_present` / `fail_if_present`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IfPresent {
    /// Drop the client's value and set the signed token.
    Replace,
    /// Refuse the request (400) without contacting the upstream.
    Fail,
}

impl IfPresent {
    /// `replace` or `fail`.
    pub const fn as_str(self) -> &'static str {
        match self {
            IfPresent::Replace => "replace",
            IfPresent::Fail => "fail",
        }
    }
}

/// The validated `[gateway]` section.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Listen address (every path proxied there, but for `/healthz` and
    /// `/metrics` without `admin_listen`).
    pub listen: SocketAddr,
    /// The listener of `/healthz` and `/metrics`, if separate.
    pub admin_listen: Option<SocketAddr>,
    /// Most connections open at once per listener.
    pub max_connections: usize,
    /// TLS, config watching and the log format.
    pub serving: Serving,
    /// The issuer's key directory (read only).
    pub key_dir: PathBuf,
    /// `iss` of signed tokens; set when a route signs.
    pub issuer: Option<String>,
    /// Upstream connect timeout.
    pub connect_timeout: Duration,
    /// Longest wait for an upstream's response head.
    pub upstream_timeout: Duration,
    /// The routes, in file order.
    pub routes: Vec<RouteConfig>,
}

/// One validated `[[gateway.routes]]` table.
#[derive(Debug, Clone)]
pub struct RouteConfig {
    /// The name (the `route` metric label).
    pub name: String,
    /// The host (lower case, no port) it answers, or any.
    pub host: Option<String>,
    /// The path prefix, starting with `/`.
    pub path_prefix: String,
    /// Whether the prefix is removed before forwarding.
    pub strip_prefix: bool,
    /// The upstream base URL (http).
    pub upstream: url::Url,
    /// Whether the client's bearer token is verified.
    pub verify: bool,
    /// Scopes the verified token must hold.
    pub scopes: Vec<String>,
    /// Whether a fresh RS256 token is signed for the upstream.
    pub sign: bool,
    /// `aud` of signed tokens (set when `sign`).
    pub audience: Option<String>,
    /// Lifetime of signed tokens.
    pub sign_ttl: Duration,
    /// The header carrying the signed token: a valid field name, lower case.
    pub sign_header: String,
    /// What to do when the client sent `sign_header` itself.
    pub if_present: IfPresent,
    /// `sub` and `client_id` of signed tokens when `verify = false`.
    pub service_identity: Option<String>,
}

/// Whether `text` is an HTTP field name (RFC 9110 §5.1: a token).
fn is_header_name(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

impl GatewayConfig {
    pub(super) fn from_raw(mut raw: RawGateway, base: &Path) -> Result<GatewayConfig, ConfigError> {
        let serving = Serving::from_raw("gateway", raw.take_serving(), base)?;
        let listen = parse_listen("gateway.listen", raw.listen, DEFAULT_GATEWAY_LISTEN)?;
        let (admin_listen, max_connections) =
            listeners("gateway", listen, raw.admin_listen, raw.max_connections)?;
        let connect_timeout = positive(
            "gateway.connect_timeout",
            duration(raw.connect_timeout, DEFAULT_CONNECT_TIMEOUT),
        )?;
        let upstream_timeout = positive(
            "gateway.upstream_timeout",
            duration(raw.upstream_timeout, DEFAULT_UPSTREAM_TIMEOUT),
        )?;
        if raw.routes.is_empty() {
            return Err(ConfigError::invalid(
                "gateway.routes",
                "missing; a gateway needs at least one [[gateway.routes]] table",
            ));
        }
        let mut routes: Vec<RouteConfig> = Vec::with_capacity(raw.routes.len());
        for (i, r) in raw.routes.into_iter().enumerate() {
            let route = RouteConfig::from_raw(r, i)?;
            if routes.iter().any(|x| x.name == route.name) {
                return Err(ConfigError::invalid(
                    format!("gateway.routes[{i}].name"),
                    format!("duplicate route name `{}`", route.name),
                ));
            }
            if routes
                .iter()
                .any(|x| x.host == route.host && x.path_prefix == route.path_prefix)
            {
                return Err(ConfigError::invalid(
                    format!("gateway.routes[{i}].path_prefix"),
                    "another route has the same host and path_prefix; it could never match",
                ));
            }
            routes.push(route);
        }
        let issuer = match raw.issuer {
            Some(text) => Some(issuer_url("gateway.issuer", Some(text))?),
            None if routes.iter().any(|r| r.sign) => {
                return Err(ConfigError::invalid(
                    "gateway.issuer",
                    "missing; a route signs tokens and needs their `iss` (the issuer's)",
                ))
            }
            None => None,
        };
        Ok(GatewayConfig {
            listen,
            admin_listen,
            max_connections,
            serving,
            key_dir: resolve(
                base,
                raw.key_dir
                    .unwrap_or_else(|| PathBuf::from(DEFAULT_KEY_DIR)),
            ),
            issuer,
            connect_timeout,
            upstream_timeout,
            routes,
        })
    }

    /// Whether a route verifies tokens (and so needs a `[verifier]` section).
    pub fn verifies(&self) -> bool {
        self.routes.iter().any(|r| r.verify)
    }

    /// Whether a route signs tokens (and so needs the key directory).
    pub fn signs(&self) -> bool {
        self.routes.iter().any(|r| r.sign)
    }
}

impl RouteConfig {
    fn from_raw(raw: RawRoute, i: usize) -> Result<RouteConfig, ConfigError> {
        let field = |name: &str| format!("gateway.routes[{i}].{name}");
        let name = required_string(&field("name"), raw.name)?;
        if !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            return Err(ConfigError::invalid(
                field("name"),
                format!("`{name}` may hold only letters, digits, `-`, `_` and `.` (it is a metric label)"),
            ));
        }
        let host = match raw.host {
            Some(h) if h.is_empty() || h.contains(['/', ' ', ':']) => {
                return Err(ConfigError::invalid(
                    field("host"),
                    format!("`{h}` is not a host name (no port, no path)"),
                ))
            }
            Some(h) => Some(h.to_ascii_lowercase()),
            None => None,
        };
        let path_prefix = raw
            .path_prefix
            .unwrap_or_else(|| DEFAULT_PATH_PREFIX.to_owned());
        if !path_prefix.starts_with('/') || path_prefix.contains(['?', '#', ' ']) {
            return Err(ConfigError::invalid(
                field("path_prefix"),
                format!("`{path_prefix}` must start with `/` and hold no query or fragment"),
            ));
        }
        let text = required_string(&field("upstream"), raw.upstream)?;
        let upstream = url::Url::parse(&text).map_err(|e| {
            ConfigError::invalid(field("upstream"), format!("`{text}` is not a URL: {e}"))
        })?;
        if upstream.scheme() != "http" || upstream.host().is_none() {
            return Err(ConfigError::invalid(
                field("upstream"),
                format!("`{text}` must be an http://host[:port][/path] URL (https upstreams are not supported yet)"),
            ));
        }
        if upstream.query().is_some()
            || upstream.fragment().is_some()
            || !upstream.username().is_empty()
        {
            return Err(ConfigError::invalid(
                field("upstream"),
                "must have no query, fragment or credentials",
            ));
        }
        let verify = raw.verify.unwrap_or(DEFAULT_ROUTE_VERIFY);
        let scopes = raw.scopes.unwrap_or_default();
        if let Some(s) = scopes.iter().find(|s| !is_scope_token(s)) {
            return Err(ConfigError::invalid(
                field("scopes"),
                format!("`{s}` is not a valid scope token (RFC 6749 §3.3)"),
            ));
        }
        if !verify && !scopes.is_empty() {
            return Err(ConfigError::invalid(
                field("scopes"),
                "needs verify = true: scopes are checked on the verified token",
            ));
        }
        let sign = raw.sign.unwrap_or(DEFAULT_ROUTE_SIGN);
        let audience = match raw.audience {
            Some(a) => Some(required_string(&field("audience"), Some(a))?),
            None if sign => {
                return Err(ConfigError::invalid(
                    field("audience"),
                    "missing; sign = true needs the `aud` of the upstream",
                ))
            }
            None => None,
        };
        let sign_ttl = positive(&field("sign_ttl"), duration(raw.sign_ttl, DEFAULT_SIGN_TTL))?;
        if sign_ttl > MAX_SIGN_TTL {
            return Err(ConfigError::invalid(
                field("sign_ttl"),
                format!(
                    "{} is longer than the allowed {}",
                    HumanDuration(sign_ttl),
                    HumanDuration(MAX_SIGN_TTL)
                ),
            ));
        }
        let header_text = raw
            .sign_header
            .unwrap_or_else(|| DEFAULT_SIGN_HEADER.to_owned());
        if !is_header_name(&header_text) {
            return Err(ConfigError::invalid(
                field("sign_header"),
                format!("`{header_text}` is not a header name"),
            ));
        }
        let sign_header = header_text.to_ascii_lowercase();
        let if_present = match raw.if_present.as_deref() {
            None | Some("replace") => IfPresent::Replace,
            Some("fail") => IfPresent::Fail,
            Some(other) => {
                return Err(ConfigError::invalid(
                    field("if_present"),
                    format!("`{other}` is not one of replace, fail"),
                ))
            }
        };
        let service_identity = match raw.service_identity {
            Some(s) => Some(required_string(&field("service_identity"), Some(s))?),
            None if sign && !verify => {
                return Err(ConfigError::invalid(
                    field("service_identity"),
                    "missing; sign = true with verify = false needs the `sub` to sign for",
                ))
            }
            None => None,
        };
        Ok(RouteConfig {
            name,
            host,
            path_prefix,
            strip_prefix: raw.strip_prefix.unwrap_or(DEFAULT_STRIP_PREFIX),
            upstream,
            verify,
            scopes,
            sign,
            audience,
            sign_ttl,
            sign_header,
            if_present,
            service_identity,
        })
    }
}
