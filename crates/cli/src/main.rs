//! `keyshift`: the one binary. It parses flags, loads config, builds the
//! runtime and hands off to the library crates; it owns the Prometheus
//! exporter and the signal handling.

mod cmd;
mod effective;
mod listeners;
mod process_metrics;
mod reload;
mod signals;
mod telemetry;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Move a fleet of services from a shared HS256 secret to RS256 tokens
/// without downtime.
#[derive(Debug, Parser)]
#[command(name = "keyshift", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the issuer (token endpoint, JWKS, key rotation).
    Issuer {
        /// The config file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Run the verifier (forward-auth endpoint, JWKS cache).
    Verifier(cmd::verifier::Args),
    /// Run the gateway (verify at the edge, sign RS256 tokens for backends).
    Gateway(cmd::gateway::Args),
    /// Run issuer and verifier on loopback with a generated config in ./.keyshift/.
    Dev(cmd::dev::Args),
    /// Manage the issuer's key directory offline.
    Keys(cmd::keys::Args),
    /// Mint a token for a configured client (for scripts and tests).
    Token(cmd::token::Args),
    /// Config file tools.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Client secret tools.
    Secret {
        #[command(subcommand)]
        command: SecretCommand,
    },
    /// OAuth client tools.
    Clients {
        #[command(subcommand)]
        command: ClientsCommand,
    },
}

#[derive(Debug, Subcommand)]
enum ClientsCommand {
    /// Print `[[issuer.clients]]` tables for an export of an old client
    /// store (JSON or CSV: id, secret_hash, scopes); plain-text secrets are refused.
    Import(cmd::clients::ImportArgs),
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Validate a config file and print the effective settings.
    Check {
        /// The config file.
        file: PathBuf,
        /// The `--accept` flag the verifier runs with, checked against the
        /// file's phase and the phases after it.
        #[arg(long, value_delimiter = ',')]
        accept: Option<Vec<keyshift_core::Alg>>,
    },
}

#[derive(Debug, Subcommand)]
enum SecretCommand {
    /// Read a client secret on stdin and print its `secret_hash` value.
    Hash(cmd::secret::HashArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Issuer { config } => cmd::issuer::run(&config),
        Command::Verifier(args) => cmd::verifier::run(args),
        Command::Gateway(args) => cmd::gateway::run(args),
        Command::Dev(args) => cmd::dev::run(args),
        Command::Keys(args) => cmd::keys::run(args),
        Command::Token(args) => cmd::token::run(args),
        Command::Config {
            command: ConfigCommand::Check { file, accept },
        } => cmd::config::check(&file, accept.as_deref()),
        Command::Secret {
            command: SecretCommand::Hash(args),
        } => cmd::secret::hash(args),
        Command::Clients {
            command: ClientsCommand::Import(args),
        } => cmd::clients::import(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // One line, naming the cause chain, for humans and log scrapers alike.
            eprintln!("keyshift: error: {}", one_line(&err));
            ExitCode::from(cmd::exit_code(&err))
        }
    }
}

/// The error and its causes on one line, each said once. Many errors (ours
/// with `{0}` in their message, `std::io` wrappers, thiserror `source`
/// fields) already print their cause and also return it as `source()`;
/// anyhow's `{:#}` would then print it twice. A cause whose text the line
/// already holds is skipped.
pub(crate) fn one_line(err: &anyhow::Error) -> String {
    keyshift_core::error::chain(err.as_ref())
}

#[cfg(test)]
mod tests {
    use super::one_line;

    #[derive(Debug, thiserror::Error)]
    #[error("{path}: damaged manifest: {reason}")]
    struct Inner {
        path: &'static str,
        reason: &'static str,
    }

    #[derive(Debug, thiserror::Error)]
    #[error("issuer.key_dir: {0}")]
    struct Outer(#[from] Inner);

    #[test]
    fn each_cause_is_printed_once() {
        let err = anyhow::Error::from(Outer(Inner {
            path: "/k/manifest.json",
            reason: "expected value at line 1",
        }))
        .context("issuer");
        assert_eq!(
            format!("{err:#}").matches("damaged manifest").count(),
            2,
            "anyhow alone repeats it"
        );
        assert_eq!(
            one_line(&err),
            "issuer: issuer.key_dir: /k/manifest.json: damaged manifest: expected value at line 1"
        );
        let io = std::io::Error::other("disk on fire");
        let err = anyhow::Error::from(io).context("writing keys");
        assert_eq!(one_line(&err), "writing keys: disk on fire");
    }
}
