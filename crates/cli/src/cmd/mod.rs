//! One module per subcommand.

pub mod clients;
pub mod config;
pub mod dev;
pub mod gateway;
pub mod issuer;
pub mod keys;
pub mod secret;
pub mod token;
pub mod verifier;

use std::path::Path;

use anyhow::Context;
use keyshift_core::secret::SecretError;
use keyshift_core::{Config, ConfigError};

/// Exit status for a failed command (README, "Exit codes"): 2 when the
/// config file, a value in it or a flag is wrong (fix the file), 1 for
/// everything else, including a file the config names that cannot be read
/// (fix the machine: permissions, a missing mount).
pub fn exit_code(err: &anyhow::Error) -> u8 {
    let config_wrong = err.chain().any(|e| match e.downcast_ref::<ConfigError>() {
        Some(ConfigError::Secret {
            source: SecretError::Read { .. },
            ..
        }) => false,
        Some(_) => true,
        None => false,
    });
    if config_wrong {
        2
    } else {
        1
    }
}

/// Loads a config file, with the file named in the error.
pub fn load_config(path: &Path) -> anyhow::Result<Config> {
    Config::load(path).with_context(|| format!("{}", path.display()))
}

/// A multi-threaded tokio runtime.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret_error(path: &Path) -> anyhow::Error {
        let source = keyshift_core::secret::HmacSecret::load(path).expect_err("unusable");
        anyhow::Error::from(ConfigError::Secret {
            field: "verifier.hs256_secret_file".into(),
            source,
        })
        .context("keyshift.toml")
    }

    #[test]
    fn exit_code_is_2_for_a_wrong_config_and_1_for_an_unreadable_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let short = dir.path().join("short.secret");
        std::fs::write(&short, b"too short").expect("write");
        assert_eq!(
            exit_code(&secret_error(&short)),
            2,
            "a wrong secret is config"
        );
        let missing = dir.path().join("missing.secret");
        let err = secret_error(&missing);
        assert_eq!(exit_code(&err), 1, "an unreadable file is the machine's");
        let line = crate::one_line(&err);
        assert!(
            line.contains("verifier.hs256_secret_file") && line.contains("missing.secret"),
            "{line}"
        );
        let parse = anyhow::Error::from(
            Config::from_toml_str("phase = 1", Path::new(".")).expect_err("bad"),
        );
        assert_eq!(exit_code(&parse), 2);
        assert_eq!(exit_code(&anyhow::anyhow!("port in use")), 1);
    }
}
