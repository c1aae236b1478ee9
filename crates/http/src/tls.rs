//! TLS on a listener: rustls with the aws-lc-rs provider, TLS 1.2 and 1.3
//! only, HTTP/2 and HTTP/1.1 offered by ALPN, and a certificate that can be
//! swapped while the service runs.
//!
//! The server config is built once; its certificate resolver hands each
//! handshake the pair loaded last, so [`ServerTls::reload`] (on SIGHUP, or
//! when the binary sees the files change) takes effect for the next
//! connection without touching open ones, and keeps session resumption.
//! A pair that does not load (unreadable, not PEM, key not matching the
//! certificate) is refused with an error and the old one keeps serving.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;

/// ALPN protocol ids, preferred first.
pub const ALPN_H2: &[u8] = b"h2";
/// ALPN id of HTTP/1.1.
pub const ALPN_HTTP1: &[u8] = b"http/1.1";

/// Why a certificate and key pair did not load.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file could not be read.
    #[error("{path}: cannot read")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The certificate file holds no `CERTIFICATE` PEM block, or a damaged one.
    #[error("{path}: no PEM certificate in it")]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// The key file holds no private key PEM block (PKCS#8, PKCS#1 or SEC1).
    #[error("{path}: no PEM private key in it")]
    NoKey {
        /// The file.
        path: PathBuf,
    },
    /// rustls refused the key, or the key does not match the certificate.
    #[error("{cert} and {key} do not make a usable pair")]
    Pair {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// rustls' reason.
        #[source]
        source: rustls::Error,
    },
    /// The protocol versions could not be set (a provider without them).
    #[error("TLS set-up failed")]
    Setup(#[source] rustls::Error),
}

/// The provider every TLS endpoint of keyshift uses.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// A listener's TLS: the server config and the swappable certificate.
pub struct ServerTls {
    config: Arc<ServerConfig>,
    resolver: Arc<Resolver>,
}

impl fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerTls")
            .field("cert_file", &self.resolver.cert_file)
            .field("key_file", &self.resolver.key_file)
            .finish_non_exhaustive()
    }
}

impl ServerTls {
    /// Loads the pair and builds the server config.
    pub fn load(cert_file: &Path, key_file: &Path) -> Result<ServerTls, TlsError> {
        let provider = provider();
        let key = load_pair(cert_file, key_file, &provider)?;
        let resolver = Arc::new(Resolver {
            cert_file: cert_file.to_owned(),
            key_file: key_file.to_owned(),
            current: ArcSwap::from_pointee(key),
            provider: provider.clone(),
        });
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(TlsError::Setup)?
            .with_no_client_auth()
            .with_cert_resolver(resolver.clone());
        config.alpn_protocols = vec![ALPN_H2.to_vec(), ALPN_HTTP1.to_vec()];
        Ok(ServerTls {
            config: Arc::new(config),
            resolver,
        })
    }

    /// Reads the files again; the new pair serves the next handshakes. On
    /// an error the old pair stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let r = &self.resolver;
        let key = load_pair(&r.cert_file, &r.key_file, &r.provider)?;
        r.current.store(Arc::new(key));
        Ok(())
    }

    /// The certificate and key files.
    pub fn files(&self) -> [&Path; 2] {
        [&self.resolver.cert_file, &self.resolver.key_file]
    }

    /// The acceptor of the next connection.
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.config.clone())
    }

    /// The DER leaf certificate in force (tests compare it).
    pub fn leaf(&self) -> Option<CertificateDer<'static>> {
        self.resolver.current.load().cert.first().cloned()
    }
}

struct Resolver {
    cert_file: PathBuf,
    key_file: PathBuf,
    current: ArcSwap<CertifiedKey>,
    provider: Arc<CryptoProvider>,
}

impl fmt::Debug for Resolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resolver")
            .field("cert_file", &self.cert_file)
            .finish_non_exhaustive()
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

/// Reads a PEM chain and its key and checks that they belong together.
pub fn load_pair(
    cert_file: &Path,
    key_file: &Path,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let (chain, key) = read_pair(cert_file, key_file)?;
    CertifiedKey::from_der(chain, key, provider).map_err(|source| TlsError::Pair {
        cert: cert_file.to_owned(),
        key: key_file.to_owned(),
        source,
    })
}

/// Reads a PEM chain (leaf first) and its private key, unchecked: what a
/// TLS client presents as its certificate too.
pub fn read_pair(
    cert_file: &Path,
    key_file: &Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    let chain = read_certificates(cert_file)?;
    let key_pem = read(key_file)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|_| TlsError::NoKey {
        path: key_file.to_owned(),
    })?;
    Ok((chain, key))
}

/// Every `CERTIFICATE` block of a PEM file; at least one.
pub fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path)?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| TlsError::NoCertificate {
            path: path.to_owned(),
        })?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(chain)
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}
