//! One module per subcommand.

pub mod config;
pub mod dev;
pub mod issuer;
pub mod keys;
pub mod secret;
pub mod token;
pub mod verifier;

use std::path::Path;

use anyhow::Context;
use keyshift_core::{Config, ConfigError};

/// Exit status for a failed command: 2 for bad config or usage, 1 otherwise.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    if err.chain().any(|e| e.is::<ConfigError>()) {
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
