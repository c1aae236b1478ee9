//! `keyshift keys generate|list|rotate|retire`: the key directory, offline.
//! The running issuer picks changes up on SIGHUP or within its next key tick.

use std::path::PathBuf;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::Context;
use clap::Subcommand;
use keyshift_core::clock::{Clock, SystemClock};
use keyshift_issuer::keystore::{KeyEntry, KeyStore};
use keyshift_issuer::rotation::RotationPolicy;

use super::load_config;

/// Flags of `keyshift keys`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The config file (its `[issuer]` section names the key directory).
    #[arg(long, short, global = true, default_value = "keyshift.toml")]
    config: PathBuf,
    #[command(subcommand)]
    command: KeysCommand,
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Create the first key (active) or a `next` key waiting for a rotation.
    Generate {
        /// Modulus size: 2048, 3072 or 4096 (default: issuer.key_bits).
        #[arg(long)]
        bits: Option<u32>,
    },
    /// List the keys with their states and dates.
    List,
    /// Schedule a rotation: the next key signs once the issuer has published
    /// it for issuer.key_prepublish. Needs an active key to replace.
    Rotate {
        /// Promote now, skipping the pre-publish wait (for a compromised key).
        #[arg(long)]
        now: bool,
    },
    /// Retire a retiring (or next) key now, removing it from the JWKS.
    Retire {
        /// The kid (a thumbprint may start with `-`: taken as the kid, not a flag).
        #[arg(allow_hyphen_values = true)]
        kid: String,
        /// Retire even though tokens it signed may still be valid.
        #[arg(long)]
        force: bool,
    },
}

/// Runs one `keys` subcommand.
pub fn run(args: Args) -> anyhow::Result<()> {
    let config = load_config(&args.config)?;
    let issuer = config.require_issuer()?;
    let store = KeyStore::new(&issuer.key_dir);
    let now = SystemClock.now_secs();
    let policy = RotationPolicy {
        rotate_every: issuer.rotate_every,
        prepublish: issuer.key_prepublish,
        token_ttl: issuer.token_ttl,
    };
    // Every error of the store names the folder; this names the setting.
    let dir = "issuer.key_dir";
    match args.command {
        KeysCommand::Generate { bits } => {
            let existed = issuer.key_dir.is_dir();
            let entry = store
                .generate_next(now, bits.unwrap_or(issuer.key_bits))
                .context(dir)?;
            if !existed {
                println!("created the key directory {}", issuer.key_dir.display());
            }
            println!(
                "generated {} ({}, {} bits)",
                entry.kid,
                entry.state.as_str(),
                entry.bits
            );
        }
        KeysCommand::List => {
            let keys = store.load().context(dir)?;
            println!(
                "{:<44} {:<9} {:>5}  {:<20}  NEXT EVENT",
                "KID", "STATE", "BITS", "CREATED"
            );
            for k in &keys.manifest.keys {
                println!(
                    "{:<44} {:<9} {:>5}  {:<20}  {}",
                    k.kid,
                    k.state.as_str(),
                    k.bits,
                    when(k.created_at),
                    next_event(k)
                );
            }
            for f in &keys.foreign_files {
                println!("# unexpected file (left untouched): {}", f.display());
            }
        }
        KeysCommand::Rotate { now: immediately } => {
            let entry = store
                .rotate(now, &policy, issuer.key_bits, immediately)
                .context(dir)?;
            match entry.activate_at {
                Some(at) => println!(
                    "{} is the next key; the issuer publishes it on SIGHUP or within its next key tick, and signs with it issuer.key_prepublish ({}) later, not before {}",
                    entry.kid,
                    humantime::format_duration(issuer.key_prepublish),
                    when(at)
                ),
                None => println!("{} is active now; send SIGHUP to the issuer", entry.kid),
            }
        }
        KeysCommand::Retire { kid, force } => {
            let entry = store.retire(&kid, now, force).context(dir)?;
            println!("{} retired; send SIGHUP to the issuer", entry.kid);
        }
    }
    Ok(())
}

fn when(secs: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs)).to_string()
}

fn next_event(k: &KeyEntry) -> String {
    match (k.activate_at, k.retire_at, k.retired_at) {
        (Some(at), _, _) => format!("activates {}", when(at)),
        (_, _, Some(at)) => format!("retired {}", when(at)),
        (_, Some(at), _) => format!("retires {}", when(at)),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(subcommand)]
        command: KeysCommand,
    }

    #[test]
    fn a_kid_that_starts_with_a_dash_is_a_kid_not_a_flag() {
        // RFC 7638 thumbprints are base64url: one in 64 starts with `-`.
        for args in [
            vec!["keys", "retire", "-wQ3kZ0thumbprint"],
            vec!["keys", "retire", "-wQ3kZ0thumbprint", "--force"],
            vec!["keys", "retire", "--force", "-wQ3kZ0thumbprint"],
        ] {
            let cli = Cli::try_parse_from(&args).expect("parses");
            match cli.command {
                KeysCommand::Retire { kid, force } => {
                    assert_eq!(kid, "-wQ3kZ0thumbprint", "{args:?}");
                    assert_eq!(force, args.contains(&"--force"), "{args:?}");
                }
                other => panic!("{other:?}"),
            }
        }
    }
}
