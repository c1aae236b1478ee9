//! Fetching the JWKS: hyper's client over rustls (aws-lc-rs, system roots),
//! connect and total timeouts, a 64 KiB body cap, no redirects, `If-None-Match`.

use std::time::Duration;

use bytes::Bytes;
use http::header::{CACHE_CONTROL, ETAG, IF_NONE_MATCH};
use http::{Request, StatusCode, Uri};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// Largest JWKS body accepted.
pub const MAX_JWKS_BYTES: usize = 64 * 1024;

/// What a fetch brought.
#[derive(Debug)]
pub enum Fetched {
    /// 200 with a body.
    Body {
        /// The body.
        body: Bytes,
        /// `Cache-Control: max-age`, if given.
        max_age: Option<Duration>,
        /// The `ETag`, if given.
        etag: Option<String>,
    },
    /// 304: the cached keys are still current.
    NotModified {
        /// `Cache-Control: max-age`, if given.
        max_age: Option<Duration>,
    },
}

/// Why a fetch failed (logged, counted as `error`, never fatal).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// The URL, the TLS set-up, or the connection or protocol failed.
    #[error("request failed")]
    Request(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// No answer within the total timeout.
    #[error("timed out")]
    Timeout,
    /// A status other than 200/304 (redirects included: they are not followed).
    #[error("unexpected status {0}")]
    Status(StatusCode),
    /// The body exceeded [`MAX_JWKS_BYTES`] or broke off.
    #[error("body too large or unreadable")]
    Body,
}

/// The JWKS HTTP client.
#[derive(Clone)]
pub struct Fetcher {
    client: Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
    uri: Uri,
    timeout: Duration,
}

impl std::fmt::Debug for Fetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fetcher")
            .field("uri", &self.uri)
            .finish_non_exhaustive()
    }
}

impl Fetcher {
    /// A client for `url` with the given timeouts.
    pub fn new(
        url: &url::Url,
        connect_timeout: Duration,
        timeout: Duration,
    ) -> Result<Fetcher, FetchError> {
        let uri: Uri = url
            .as_str()
            .parse()
            .map_err(|e: http::uri::InvalidUri| FetchError::Request(e.into()))?;
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(connect_timeout));
        http.set_nodelay(true);
        http.enforce_http(false);
        let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = match hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_native_roots(provider.clone())
        {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "no system CA certificates; https JWKS URLs will fail");
                let config = rustls::ClientConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()
                    .map_err(|e| FetchError::Request(e.into()))?
                    .with_root_certificates(rustls::RootCertStore::empty())
                    .with_no_client_auth();
                hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(config)
            }
        };
        let https = builder.https_or_http().enable_http1().wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(https);
        Ok(Fetcher {
            client,
            uri,
            timeout,
        })
    }

    /// The JWKS URL.
    pub fn url(&self) -> String {
        self.uri.to_string()
    }

    /// GETs the JWKS, with `If-None-Match` when an ETag is known.
    pub async fn fetch(&self, etag: Option<&str>) -> Result<Fetched, FetchError> {
        let mut req = Request::get(self.uri.clone())
            .header("accept", "application/jwk-set+json, application/json");
        if let Some(tag) = etag {
            req = req.header(IF_NONE_MATCH, tag);
        }
        let req = req
            .body(Empty::new())
            .map_err(|e| FetchError::Request(e.into()))?;
        let work = async {
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|e| FetchError::Request(e.into()))?;
            let status = resp.status();
            let max_age = resp
                .headers()
                .get_all(CACHE_CONTROL)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .find_map(max_age);
            match status {
                StatusCode::OK => {
                    let etag = resp
                        .headers()
                        .get(ETAG)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned);
                    let body = Limited::new(resp.into_body(), MAX_JWKS_BYTES)
                        .collect()
                        .await
                        .map_err(|_| FetchError::Body)?
                        .to_bytes();
                    Ok(Fetched::Body {
                        body,
                        max_age,
                        etag,
                    })
                }
                StatusCode::NOT_MODIFIED => Ok(Fetched::NotModified { max_age }),
                other => Err(FetchError::Status(other)),
            }
        };
        tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| FetchError::Timeout)?
    }
}

/// `max-age=N` of a `Cache-Control` value (`no-store`/`no-cache` → 0).
pub fn max_age(value: &str) -> Option<Duration> {
    value.split(',').map(str::trim).find_map(|d| {
        if d.eq_ignore_ascii_case("no-store") || d.eq_ignore_ascii_case("no-cache") {
            return Some(Duration::ZERO);
        }
        let (name, v) = d.split_once('=')?;
        if name.trim().eq_ignore_ascii_case("max-age") {
            v.trim()
                .trim_matches('"')
                .parse()
                .ok()
                .map(Duration::from_secs)
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::max_age;
    use std::time::Duration;

    #[test]
    fn parses_max_age() {
        assert_eq!(
            max_age("public, max-age=300"),
            Some(Duration::from_secs(300))
        );
        assert_eq!(max_age("Max-Age=\"60\""), Some(Duration::from_secs(60)));
        assert_eq!(max_age("no-store"), Some(Duration::ZERO));
        assert_eq!(max_age("public"), None);
        assert_eq!(max_age("max-age=abc"), None);
    }
}
