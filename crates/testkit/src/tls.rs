//! A test CA (rcgen) that issues server and client certificates for
//! loopback, and the blocking rustls client the end-to-end tests speak
//! HTTPS with. Keys are generated per test, never committed.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, ServerName};

/// A certificate authority of its own, for one test.
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

impl std::fmt::Debug for TestCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCa").finish_non_exhaustive()
    }
}

/// A certificate and its key, as PEM.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The certificate.
    pub cert_pem: String,
    /// Its PKCS#8 private key.
    pub key_pem: String,
}

impl Issued {
    /// Writes `<name>.crt` and `<name>.key` into `dir`, each replaced
    /// atomically (written beside, then renamed over), as a certificate
    /// manager does; returns their paths.
    pub fn write(&self, dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let cert = dir.join(format!("{name}.crt"));
        let key = dir.join(format!("{name}.key"));
        replace(&key, self.key_pem.as_bytes());
        replace(&cert, self.cert_pem.as_bytes());
        (cert, key)
    }

    /// The DER of the certificate.
    pub fn der(&self) -> CertificateDer<'static> {
        use rustls::pki_types::pem::PemObject;
        CertificateDer::from_pem_slice(self.cert_pem.as_bytes()).expect("own PEM")
    }
}

/// Writes `bytes` to `path` through a temporary file and a rename.
pub fn replace(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).expect("write temp");
    std::fs::rename(&tmp, path).expect("rename");
}

impl TestCa {
    /// A new CA with a fresh P-256 key.
    pub fn new() -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "keyshift test CA");
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("CA key");
        let cert = params.self_signed(&key).expect("CA certificate");
        TestCa {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// The CA certificate, PEM.
    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// Writes the CA certificate to `dir/ca.crt`.
    pub fn write(&self, dir: &Path) -> PathBuf {
        let path = dir.join("ca.crt");
        std::fs::write(&path, &self.pem).expect("write CA");
        path
    }

    /// A server certificate for `localhost` and `127.0.0.1`, named `cn`.
    pub fn server(&self, cn: &str) -> Issued {
        self.issue(cn, ExtendedKeyUsagePurpose::ServerAuth)
    }

    /// A client certificate named `cn`.
    pub fn client(&self, cn: &str) -> Issued {
        self.issue(cn, ExtendedKeyUsagePurpose::ClientAuth)
    }

    fn issue(&self, cn: &str, usage: ExtendedKeyUsagePurpose) -> Issued {
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                .expect("params");
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![usage];
        let key = KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &self.issuer).expect("sign");
        Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }

    /// A rustls client trusting this CA only, offering `alpn`, limited to
    /// `versions` (empty: TLS 1.2 and 1.3).
    pub fn client_config(
        &self,
        alpn: &[&[u8]],
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> Arc<rustls::ClientConfig> {
        use rustls::pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(self.pem.as_bytes()).expect("CA PEM"))
            .expect("CA root");
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider);
        let builder = if versions.is_empty() {
            builder.with_safe_default_protocol_versions()
        } else {
            builder.with_protocol_versions(versions)
        }
        .expect("versions");
        let mut config = builder.with_root_certificates(roots).with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(config)
    }
}

impl Default for TestCa {
    fn default() -> Self {
        TestCa::new()
    }
}

/// A blocking TLS connection to `addr` (name `localhost`), handshake done.
pub fn connect(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
) -> std::io::Result<rustls::StreamOwned<rustls::ClientConnection, TcpStream>> {
    let tcp = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    let name = ServerName::try_from("localhost").expect("name");
    let conn = rustls::ClientConnection::new(config, name).map_err(std::io::Error::other)?;
    let mut stream = rustls::StreamOwned::new(conn, tcp);
    while stream.conn.is_handshaking() {
        stream.conn.complete_io(&mut stream.sock)?;
    }
    Ok(stream)
}

/// The leaf certificate a TLS server at `addr` presents now.
pub fn presented_leaf(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
) -> std::io::Result<CertificateDer<'static>> {
    let stream = connect(addr, config)?;
    stream
        .conn
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.clone().into_owned())
        .ok_or_else(|| std::io::Error::other("no certificate"))
}

/// Sends `request` (raw HTTP/1.1 bytes) over a fresh TLS connection and
/// returns the raw answer, read to the end.
pub fn exchange(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
    request: &[u8],
) -> std::io::Result<Vec<u8>> {
    let mut stream = connect(addr, config)?;
    stream.write_all(request)?;
    stream.flush()?;
    let mut raw = Vec::new();
    match stream.read_to_end(&mut raw) {
        Ok(_) => Ok(raw),
        // A peer that closes without close_notify after a full answer.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !raw.is_empty() => Ok(raw),
        Err(e) => Err(e),
    }
}

/// A hand-made ClientHello with `version` in its version field and no
/// `supported_versions` extension (so nothing newer is offered): ECDHE
/// suites with AES-GCM, the groups and signature schemes a TLS 1.2 server
/// needs. With `[3, 2]` it is what a TLS 1.1 client sends; with `[3, 3]`
/// the same hello as TLS 1.2, the control.
pub fn client_hello(version: [u8; 2]) -> Vec<u8> {
    let mut ext = Vec::new();
    // supported_groups: x25519, secp256r1.
    ext.extend_from_slice(&[0x00, 0x0a, 0x00, 0x06, 0x00, 0x04, 0x00, 0x1d, 0x00, 0x17]);
    // ec_point_formats: uncompressed.
    ext.extend_from_slice(&[0x00, 0x0b, 0x00, 0x02, 0x01, 0x00]);
    // signature_algorithms: ecdsa_secp256r1_sha256, rsa_pss_rsae_sha256.
    ext.extend_from_slice(&[0x00, 0x0d, 0x00, 0x06, 0x00, 0x04, 0x04, 0x03, 0x08, 0x04]);
    let mut body = Vec::new();
    body.extend_from_slice(&version);
    body.extend_from_slice(&[0x11; 32]); // random
    body.push(0); // session id
                  // ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, ECDHE_RSA_WITH_AES_128_GCM_SHA256.
    body.extend_from_slice(&[0x00, 0x04, 0xc0, 0x2b, 0xc0, 0x2f]);
    body.extend_from_slice(&[0x01, 0x00]); // compression: null
    body.extend_from_slice(&u16::try_from(ext.len()).expect("small").to_be_bytes());
    body.extend_from_slice(&ext);
    let mut handshake = vec![0x01, 0x00];
    handshake.extend_from_slice(&u16::try_from(body.len()).expect("small").to_be_bytes());
    handshake.extend_from_slice(&body);
    let mut record = vec![0x16, 0x03, 0x01];
    record.extend_from_slice(&u16::try_from(handshake.len()).expect("small").to_be_bytes());
    record.extend_from_slice(&handshake);
    record
}

/// How a server answered a ClientHello.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HelloAnswer {
    /// A handshake record: the server goes on (ServerHello).
    Handshake,
    /// An alert record with this description.
    Alert(u8),
    /// Nothing, or something else.
    Other,
}

/// Sends `hello` to `addr` and reads the first record of the answer.
pub fn answer_to(addr: SocketAddr, hello: &[u8]) -> std::io::Result<HelloAnswer> {
    let mut tcp = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    tcp.write_all(hello)?;
    let mut answer = [0u8; 7];
    let mut got = 0;
    while got < answer.len() {
        match tcp.read(&mut answer[got..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
    }
    Ok(match &answer[..got] {
        [0x16, ..] => HelloAnswer::Handshake,
        [0x15, _, _, 0x00, 0x02, _level, description] => HelloAnswer::Alert(*description),
        _ => HelloAnswer::Other,
    })
}

/// The alert `protocol_version` (RFC 8446 §6).
pub const ALERT_PROTOCOL_VERSION: u8 = 70;
