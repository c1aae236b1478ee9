//! The JWKS client's TLS: a private CA from `jwks_ca_file`, and a client
//! certificate (`jwks_client_cert_file`) for an endpoint that demands mTLS.
//! The endpoint is a small rustls server on loopback that refuses any
//! connection without a certificate of the test CA.

use std::sync::Arc;
use std::time::Duration;

use keyshift_core::config::TlsFiles;
use keyshift_testkit::tls::TestCa;
use keyshift_verifier::jwks::{FetchError, Fetched, Fetcher, Transport};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const JWKS: &str = r#"{"keys":[]}"#;

/// Serves `JWKS` over TLS to clients holding a certificate of `ca`.
async fn mtls_endpoint(ca: &TestCa) -> std::net::SocketAddr {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca.pem().as_bytes()).expect("CA"))
        .expect("root");
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .expect("client verifier");
    let server = ca.server("jwks");
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![server.der()],
            PrivateKeyDer::from_pem_slice(server.key_pem.as_bytes()).expect("key"),
        )
        .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = vec![0u8; 4096];
                let _ = tls.read(&mut buf).await;
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{JWKS}",
                    JWKS.len()
                );
                let _ = tls.write_all(answer.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    addr
}

fn transport(ca_file: Option<&std::path::Path>, client: Option<&TlsFiles>) -> Transport {
    Transport::with_files(
        Duration::from_secs(2),
        Duration::from_secs(5),
        ca_file,
        client,
    )
    .expect("transport")
}

#[tokio::test]
async fn a_client_certificate_opens_an_mtls_jwks_endpoint_and_nothing_else_does() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = TestCa::new();
    let ca_file = ca.write(dir.path());
    let (cert_file, key_file) = ca.client("verifier-1").write(dir.path(), "client");
    let addr = mtls_endpoint(&ca).await;
    let url: url::Url = format!("https://localhost:{}/.well-known/jwks.json", addr.port())
        .parse()
        .expect("url");
    let client = TlsFiles {
        cert_file,
        key_file,
    };

    let with_cert = Fetcher::new(&url, &transport(Some(&ca_file), Some(&client))).expect("fetcher");
    match with_cert.fetch(None).await {
        Ok(Fetched::Body { body, .. }) => assert_eq!(&body[..], JWKS.as_bytes()),
        other => panic!("with the client certificate: {other:?}"),
    }
    let without_cert = Fetcher::new(&url, &transport(Some(&ca_file), None)).expect("fetcher");
    assert!(
        matches!(without_cert.fetch(None).await, Err(FetchError::Request(_))),
        "no client certificate: the handshake is refused"
    );
    let without_ca = Fetcher::new(&url, &transport(None, Some(&client))).expect("fetcher");
    assert!(
        matches!(without_ca.fetch(None).await, Err(FetchError::Request(_))),
        "the private CA is not trusted without jwks_ca_file"
    );
}

#[test]
fn unusable_tls_files_are_config_errors_that_name_the_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("bad.pem");
    std::fs::write(&bad, "not PEM\n").expect("write");
    let err = Transport::with_files(
        Duration::from_secs(1),
        Duration::from_secs(1),
        Some(&bad),
        None,
    )
    .expect_err("not a CA file");
    assert!(err.to_string().contains("verifier.jwks_ca_file"), "{err}");
    let ca = TestCa::new();
    let (cert_file, _) = ca.client("a").write(dir.path(), "a");
    let (_, other_key) = ca.client("b").write(dir.path(), "b");
    let missing = TlsFiles {
        cert_file: cert_file.clone(),
        key_file: dir.path().join("missing.key"),
    };
    let err = Transport::with_files(
        Duration::from_secs(1),
        Duration::from_secs(1),
        None,
        Some(&missing),
    )
    .expect_err("no key");
    assert!(
        err.to_string().contains("verifier.jwks_client_cert_file"),
        "{err}"
    );
    // A key that is not the certificate's: rustls refuses the pair.
    let mismatched = TlsFiles {
        cert_file,
        key_file: other_key,
    };
    assert!(
        Transport::with_files(
            Duration::from_secs(1),
            Duration::from_secs(1),
            None,
            Some(&mismatched)
        )
        .is_err(),
        "a key of another certificate is refused"
    );
}
