//! How a service is deployed, the same keys in `[issuer]`, `[verifier]` and
//! `[gateway]`: TLS on its listeners, reloading when its files change, and
//! the log format. One copy of each rule, read by each section.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{resolve, ConfigError};

/// Default of `watch_config`: reload on SIGHUP only.
pub const DEFAULT_WATCH_CONFIG: bool = false;
/// Default of `log_format`.
pub const DEFAULT_LOG_FORMAT: LogFormat = LogFormat::Text;

/// A certificate chain and its private key, both PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, leaf first.
    pub cert_file: PathBuf,
    /// The private key of the leaf (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
}

/// How the service writes its log lines to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// `time level message key=value…`, for people.
    Text,
    /// One JSON object per line (`timestamp`, `level`, `fields.message`,
    /// the other fields), for log pipelines.
    Json,
}

impl LogFormat {
    /// The config value.
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
    }
}

/// The validated deployment keys of one service section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Serving {
    /// `tls_cert_file` and `tls_key_file`: the HTTP listeners serve TLS
    /// 1.2/1.3 (HTTP/2 by ALPN) when set, plain HTTP when not.
    pub tls: Option<TlsFiles>,
    /// Reload when the config file or a file it names changes.
    pub watch_config: bool,
    /// The log format.
    pub log_format: LogFormat,
}

/// The deployment keys as serde reads them (stage one), copied out of each
/// section's raw struct.
#[derive(Debug, Clone, Default)]
pub struct RawServing {
    /// `tls_cert_file`.
    pub tls_cert_file: Option<PathBuf>,
    /// `tls_key_file`.
    pub tls_key_file: Option<PathBuf>,
    /// `watch_config`.
    pub watch_config: Option<bool>,
    /// `log_format`.
    pub log_format: Option<LogFormat>,
}

impl Serving {
    /// Validates the keys of `section`: the TLS files come both or neither,
    /// relative paths resolve against `base`.
    pub fn from_raw(section: &str, raw: RawServing, base: &Path) -> Result<Serving, ConfigError> {
        let tls = pair(
            [
                format!("{section}.tls_cert_file"),
                format!("{section}.tls_key_file"),
            ],
            raw.tls_cert_file,
            raw.tls_key_file,
            base,
        )?;
        Ok(Serving {
            tls,
            watch_config: raw.watch_config.unwrap_or(DEFAULT_WATCH_CONFIG),
            log_format: raw.log_format.unwrap_or(DEFAULT_LOG_FORMAT),
        })
    }

    /// The files besides the config file whose change `watch_config`
    /// reloads for: the TLS pair (watched in any case, see the binary).
    pub fn files(&self) -> Vec<PathBuf> {
        self.tls
            .iter()
            .flat_map(|t| [t.cert_file.clone(), t.key_file.clone()])
            .collect()
    }
}

/// `jwks_client_cert_file` and `jwks_client_key_file` of `section`, both or
/// neither: the client certificate of mTLS to the JWKS endpoint.
pub(super) fn client_cert(
    section: &str,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    base: &Path,
) -> Result<Option<TlsFiles>, ConfigError> {
    pair(
        [
            format!("{section}.jwks_client_cert_file"),
            format!("{section}.jwks_client_key_file"),
        ],
        cert,
        key,
        base,
    )
}

/// A certificate file and its key file, named by the two `fields`: both
/// (resolved against `base`) or neither; one alone names the missing one.
fn pair(
    fields: [String; 2],
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    base: &Path,
) -> Result<Option<TlsFiles>, ConfigError> {
    let [cert_field, key_field] = fields;
    match (cert, key) {
        (Some(cert), Some(key)) => Ok(Some(TlsFiles {
            cert_file: resolve(base, cert),
            key_file: resolve(base, key),
        })),
        (None, None) => Ok(None),
        (Some(_), None) => Err(ConfigError::invalid(
            key_field,
            format!("missing: {cert_field} needs its private key"),
        )),
        (None, Some(_)) => Err(ConfigError::invalid(
            cert_field,
            format!("missing: {key_field} needs its certificate"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_files_come_both_or_neither_and_resolve_against_the_config_folder() {
        let base = Path::new("/etc/keyshift");
        let both = Serving::from_raw(
            "issuer",
            RawServing {
                tls_cert_file: Some("tls/cert.pem".into()),
                tls_key_file: Some("/secrets/key.pem".into()),
                ..RawServing::default()
            },
            base,
        )
        .expect("both");
        assert_eq!(
            both.tls,
            Some(TlsFiles {
                cert_file: "/etc/keyshift/tls/cert.pem".into(),
                key_file: "/secrets/key.pem".into(),
            })
        );
        assert_eq!(both.files().len(), 2);
        let err = Serving::from_raw(
            "verifier",
            RawServing {
                tls_cert_file: Some("cert.pem".into()),
                ..RawServing::default()
            },
            base,
        )
        .expect_err("cert without key");
        assert_eq!(err.field(), Some("verifier.tls_key_file"));
        let err = Serving::from_raw(
            "gateway",
            RawServing {
                tls_key_file: Some("key.pem".into()),
                ..RawServing::default()
            },
            base,
        )
        .expect_err("key without cert");
        assert_eq!(err.field(), Some("gateway.tls_cert_file"));
        let plain = Serving::from_raw("issuer", RawServing::default(), base).expect("defaults");
        assert_eq!(plain.tls, None);
        assert!(!plain.watch_config);
        assert_eq!(plain.log_format, LogFormat::Text);
        assert!(plain.files().is_empty());
    }

    #[test]
    fn the_jwks_client_certificate_comes_with_its_key() {
        let base = Path::new("/etc/keyshift");
        assert_eq!(
            client_cert("verifier", None, None, base).expect("none"),
            None
        );
        let err = client_cert("verifier", Some("c.pem".into()), None, base).expect_err("no key");
        assert_eq!(err.field(), Some("verifier.jwks_client_key_file"));
        let err = client_cert("verifier", None, Some("k.pem".into()), base).expect_err("no cert");
        assert_eq!(err.field(), Some("verifier.jwks_client_cert_file"));
    }
}
