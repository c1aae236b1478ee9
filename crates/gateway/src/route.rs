//! Route matching: `host` and/or `path_prefix`, the longest prefix wins (a
//! route naming the host beats one that does not at the same length), and
//! the upstream URI a request is sent to.

use http::uri::{PathAndQuery, Uri};
use keyshift_core::config::RouteConfig;

use crate::metrics::RouteMetrics;
use crate::sign::{self, SignSpec};

/// One route, ready to serve.
#[derive(Debug)]
pub struct Route {
    /// The validated config.
    pub config: RouteConfig,
    /// `config.scopes` as the verifier takes them.
    pub scopes: Vec<String>,
    /// Its metric handles.
    pub metrics: RouteMetrics,
    /// What it signs, when `sign = true`.
    pub sign: Option<SignSpec>,
    /// The upstream's `scheme://authority`.
    upstream_origin: String,
    /// The upstream's base path without a trailing `/` (empty for `/`).
    upstream_base: String,
}

impl Route {
    /// Builds route number `index` from its config; `issuer` is the `iss`
    /// of the tokens it signs.
    pub fn new(config: RouteConfig, index: usize, issuer: &str) -> Route {
        let url = &config.upstream;
        let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
        let host = url.host_str().unwrap_or_default();
        Route {
            scopes: config.scopes.clone(),
            metrics: RouteMetrics::new(&config.name),
            sign: config.sign.then(|| SignSpec {
                route: index,
                template: sign::template(
                    issuer,
                    config.audience.as_deref().unwrap_or_default(),
                    config.sign_ttl,
                ),
            }),
            upstream_origin: format!("{}://{host}{port}", url.scheme()),
            upstream_base: url.path().trim_end_matches('/').to_owned(),
            config,
        }
    }

    /// Whether `path` is under this route's prefix, segment-wise: `/api`
    /// takes `/api` and `/api/x`, never `/apiary`.
    fn takes(&self, path: &str) -> bool {
        let prefix = &self.config.path_prefix;
        match path.strip_prefix(prefix.as_str()) {
            Some(rest) => prefix.ends_with('/') || rest.is_empty() || rest.starts_with('/'),
            None => false,
        }
    }

    /// The upstream URI of a request for `uri` (path and query kept, the
    /// prefix removed when `strip_prefix`).
    pub fn target(&self, uri: &Uri) -> Result<Uri, http::Error> {
        let path = uri.path();
        let rest = if self.config.strip_prefix {
            path.strip_prefix(self.config.path_prefix.trim_end_matches('/'))
                .unwrap_or(path)
        } else {
            path
        };
        let rest = if rest.starts_with('/') { rest } else { "/" };
        let mut pq = String::with_capacity(self.upstream_base.len() + path.len() + 16);
        pq.push_str(&self.upstream_base);
        pq.push_str(rest);
        if let Some(q) = uri.query() {
            pq.push('?');
            pq.push_str(q);
        }
        Uri::builder()
            .scheme(self.config.upstream.scheme())
            .authority(
                self.upstream_origin
                    .split_once("://")
                    .map_or("", |(_, a)| a),
            )
            .path_and_query(PathAndQuery::try_from(pq)?)
            .build()
    }
}

/// The routes of a gateway.
#[derive(Debug)]
pub struct Router {
    routes: Vec<Route>,
}

impl Router {
    /// Builds the routes, in config order; `issuer` is the `iss` of signed tokens.
    pub fn new(routes: Vec<RouteConfig>, issuer: &str) -> Router {
        Router {
            routes: routes
                .into_iter()
                .enumerate()
                .map(|(i, r)| Route::new(r, i, issuer))
                .collect(),
        }
    }

    /// The route for a request to `host` (any case, port ignored) and
    /// `path`, if any.
    pub fn find(&self, host: Option<&str>, path: &str) -> Option<&Route> {
        let host = host.map(strip_port);
        self.routes
            .iter()
            .filter(|r| match &r.config.host {
                Some(want) => host.is_some_and(|h| h.eq_ignore_ascii_case(want)),
                None => true,
            })
            .filter(|r| r.takes(path))
            .max_by_key(|r| (r.config.path_prefix.len(), r.config.host.is_some()))
    }

    /// Every route.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }
}

/// `example.com` of `example.com:8080`; `[::1]` of `[::1]:8080`.
fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host
            .split_once(']')
            .map_or(host, |(h, _)| &host[..h.len() + 1]);
    }
    host.split_once(':').map_or(host, |(h, _)| h)
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyshift_core::config::IfPresent;
    use std::time::Duration;

    fn route(
        name: &str,
        host: Option<&str>,
        prefix: &str,
        upstream: &str,
        strip: bool,
    ) -> RouteConfig {
        RouteConfig {
            name: name.into(),
            host: host.map(str::to_owned),
            path_prefix: prefix.into(),
            strip_prefix: strip,
            upstream: url::Url::parse(upstream).expect("url"),
            verify: false,
            scopes: Vec::new(),
            sign: false,
            audience: None,
            sign_ttl: Duration::from_secs(60),
            sign_header: "authorization".into(),
            if_present: IfPresent::Replace,
            service_identity: None,
        }
    }

    fn router() -> Router {
        Router::new(
            vec![
                route("root", None, "/", "http://10.0.0.1:80", false),
                route("api", None, "/api", "http://10.0.0.2:8080/base/", true),
                route("api-v2", None, "/api/v2", "http://10.0.0.3", false),
                route(
                    "api-acme",
                    Some("acme.test"),
                    "/api",
                    "http://10.0.0.4",
                    false,
                ),
            ],
            "http://issuer.test",
        )
    }

    fn name<'a>(r: &'a Router, host: Option<&str>, path: &str) -> Option<&'a str> {
        r.find(host, path).map(|r| r.config.name.as_str())
    }

    #[test]
    fn longest_prefix_wins_segment_wise() {
        let r = router();
        assert_eq!(name(&r, None, "/api/v2/x"), Some("api-v2"));
        assert_eq!(name(&r, None, "/api/v1"), Some("api"));
        assert_eq!(name(&r, None, "/api"), Some("api"));
        assert_eq!(
            name(&r, None, "/apiary"),
            Some("root"),
            "not a segment of /api"
        );
        assert_eq!(name(&r, None, "/"), Some("root"));
    }

    #[test]
    fn a_route_naming_the_host_beats_one_that_does_not() {
        let r = router();
        assert_eq!(name(&r, Some("ACME.test:8443"), "/api/x"), Some("api-acme"));
        assert_eq!(name(&r, Some("other.test"), "/api/x"), Some("api"));
        assert_eq!(
            name(&r, None, "/api/x"),
            Some("api"),
            "no Host: no host route"
        );
        let only_host = Router::new(vec![route("h", Some("a.test"), "/", "http://x", false)], "");
        assert_eq!(name(&only_host, Some("b.test"), "/"), None);
    }

    #[test]
    fn target_keeps_the_query_and_strips_the_prefix_when_asked() {
        let r = router();
        let uri: Uri = "/api/orders?id=7".parse().expect("uri");
        let api = r.find(None, "/api/orders").expect("api");
        assert_eq!(
            api.target(&uri).expect("target").to_string(),
            "http://10.0.0.2:8080/base/orders?id=7"
        );
        let bare: Uri = "/api".parse().expect("uri");
        assert_eq!(
            api.target(&bare).expect("target").to_string(),
            "http://10.0.0.2:8080/base/"
        );
        let v2 = r.find(None, "/api/v2/x").expect("v2");
        let uri: Uri = "/api/v2/x".parse().expect("uri");
        assert_eq!(
            v2.target(&uri).expect("target").to_string(),
            "http://10.0.0.3/api/v2/x"
        );
    }

    #[test]
    fn ports_are_stripped_from_hosts() {
        assert_eq!(strip_port("a.test:80"), "a.test");
        assert_eq!(strip_port("[::1]:80"), "[::1]");
        assert_eq!(strip_port("a.test"), "a.test");
    }
}
