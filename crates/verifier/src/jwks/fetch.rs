//! Fetching the JWKS: hyper's client over rustls (aws-lc-rs; system roots,
//! a private CA and a client certificate as configured),
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

/// How the verifier reaches the issuer (JWKS and `/migration`): timeouts,
/// and the TLS client config with the system roots, `jwks_ca_file`'s CAs
/// and the `jwks_client_cert_file` certificate when configured. Built once
/// per config (files read here, not per fetch).
#[derive(Clone)]
pub struct Transport {
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Total request timeout.
    pub timeout: Duration,
    tls: std::sync::Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("connect_timeout", &self.connect_timeout)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// Why the JWKS client's TLS could not be set up (a config error: the
/// verifier does not start, a reload is refused).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// `jwks_ca_file` did not load, or the client certificate pair did not.
    #[error("{field}")]
    Files {
        /// The config key.
        field: &'static str,
        /// The cause.
        #[source]
        source: Box<keyshift_http::tls::TlsError>,
    },
    /// A CA certificate of `jwks_ca_file` is not a usable trust anchor.
    #[error("verifier.jwks_ca_file: {path}: certificate {index} is not a usable CA")]
    Anchor {
        /// The file.
        path: std::path::PathBuf,
        /// Its position in the file, from 1.
        index: usize,
    },
    /// rustls refused the client certificate or the protocol versions.
    #[error("{field}: TLS set-up failed")]
    Rustls {
        /// The config key.
        field: &'static str,
        /// rustls' reason.
        #[source]
        source: Box<rustls::Error>,
    },
}

impl Transport {
    /// The system roots only, no client certificate.
    pub fn new(connect_timeout: Duration, timeout: Duration) -> Result<Transport, TransportError> {
        Transport::with_files(connect_timeout, timeout, None, None)
    }

    /// The transport a `[verifier]` section describes.
    pub fn from_config(
        cfg: &keyshift_core::config::VerifierConfig,
    ) -> Result<Transport, TransportError> {
        Transport::with_files(
            cfg.jwks_connect_timeout,
            cfg.jwks_timeout,
            cfg.jwks_ca_file.as_deref(),
            cfg.jwks_client_cert.as_ref(),
        )
    }

    /// Roots: the system's (when there are any) and those of `ca_file`;
    /// the client certificate of `client` when given.
    pub fn with_files(
        connect_timeout: Duration,
        timeout: Duration,
        ca_file: Option<&std::path::Path>,
        client: Option<&keyshift_core::config::TlsFiles>,
    ) -> Result<Transport, TransportError> {
        let mut roots = rustls::RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        let (added, _) = roots.add_parsable_certificates(native.certs);
        if added == 0 && ca_file.is_none() {
            tracing::warn!("no system CA certificates; https JWKS URLs will fail unless verifier.jwks_ca_file names a CA");
        }
        if let Some(path) = ca_file {
            let certs = keyshift_http::tls::read_certificates(path).map_err(|source| {
                TransportError::Files {
                    field: "verifier.jwks_ca_file",
                    source: Box::new(source),
                }
            })?;
            for (i, cert) in certs.into_iter().enumerate() {
                roots.add(cert).map_err(|_| TransportError::Anchor {
                    path: path.to_owned(),
                    index: i + 1,
                })?;
            }
        }
        let builder = rustls::ClientConfig::builder_with_provider(keyshift_http::tls::provider())
            .with_safe_default_protocol_versions()
            .map_err(|source| TransportError::Rustls {
                field: "verifier.jwks_url",
                source: Box::new(source),
            })?
            .with_root_certificates(roots);
        let tls = match client {
            Some(files) => {
                let (chain, key) = keyshift_http::tls::read_pair(&files.cert_file, &files.key_file)
                    .map_err(|source| TransportError::Files {
                        field: "verifier.jwks_client_cert_file",
                        source: Box::new(source),
                    })?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|source| TransportError::Rustls {
                        field: "verifier.jwks_client_cert_file",
                        source: Box::new(source),
                    })?
            }
            None => builder.with_no_client_auth(),
        };
        Ok(Transport {
            connect_timeout,
            timeout,
            tls: std::sync::Arc::new(tls),
        })
    }
}

impl Fetcher {
    /// A client for `url` over `transport`.
    pub fn new(url: &url::Url, transport: &Transport) -> Result<Fetcher, FetchError> {
        let uri: Uri = url
            .as_str()
            .parse()
            .map_err(|e: http::uri::InvalidUri| FetchError::Request(e.into()))?;
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(transport.connect_timeout));
        http.set_nodelay(true);
        http.enforce_http(false);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config((*transport.tls).clone())
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(https);
        Ok(Fetcher {
            client,
            uri,
            timeout: transport.timeout,
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
