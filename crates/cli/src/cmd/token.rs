//! `keyshift token --config F --client ID`: mints a token offline, from the
//! key directory and secret the issuer uses, for scripts and tests.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Context};
use keyshift_core::clock::{Clock, SystemClock};
use keyshift_core::Alg;
use keyshift_issuer::keystore::KeyStore;
use keyshift_issuer::mint::{Signer, TokenRequest, TokenTemplate};
use keyshift_issuer::routes::token::grant_scope;

use super::load_config;

/// Flags of `keyshift token`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The config file.
    #[arg(long, short)]
    config: PathBuf,
    /// A client id from `[[issuer.clients]]`.
    #[arg(long)]
    client: String,
    /// Space-delimited scopes (a subset of the client's); default: all it may have.
    #[arg(long)]
    scope: Option<String>,
    /// How many tokens to print, one per line (each with its own jti).
    #[arg(long, default_value_t = 1)]
    count: usize,
}

/// Prints one token for the client, signed as the issuer would sign it now.
pub fn run(args: Args) -> anyhow::Result<()> {
    let config = load_config(&args.config)?;
    let issuer = config.require_issuer()?;
    let Some(client) = issuer.clients.iter().find(|c| c.id == args.client) else {
        bail!("no client `{}` in issuer.clients", args.client);
    };
    let scope = grant_scope(args.scope.as_deref(), &client.scopes).map_err(|_| {
        anyhow::anyhow!(
            "--scope: not a subset of the client's scopes [{}]",
            client.scopes.join(" ")
        )
    })?;
    let (secret, active) = match config.phase.signs() {
        Alg::Hs256 => {
            let secret = issuer.load_secret(config.phase)?;
            (
                Some(secret.context("issuer.hs256_secret_file is not set")?),
                None,
            )
        }
        Alg::Rs256 => {
            let keys = KeyStore::new(&issuer.key_dir)
                .load()
                .context("issuer.key_dir")?;
            (
                None,
                Some(keys.active().context("issuer.key_dir: no active key")?),
            )
        }
    };
    let signer = Signer::for_phase(issuer, config.phase, secret.as_ref(), active)
        .context("nothing to sign with")?;
    let template = TokenTemplate::for_phase(issuer, config.phase);
    let mut tokens = Vec::with_capacity(args.count);
    let mut latest: Option<(u64, u64)> = None;
    for _ in 0..args.count {
        let (token, claims) = signer.mint(
            &template,
            TokenRequest {
                client_id: &client.id,
                scope: &scope,
                now: SystemClock.now_secs(),
            },
        )?;
        latest = latest.max(Some((claims.exp, claims.iat)));
        tokens.push(token);
    }
    // Recorded before any token leaves this process.
    if let (Alg::Hs256, Some((exp, iat))) = (signer.alg(), latest) {
        record_hs256(&issuer.key_dir, iat, exp);
    }
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for token in tokens {
        writeln!(out, "{token}")?;
    }
    out.flush()?;
    Ok(())
}

/// Records the HS256 tokens about to be minted in the issuer's record
/// (see `keyshift_issuer::ledger`), which the running issuer merges on its
/// next key tick: verifiers asking the issuer then know about them too.
/// A key directory that does not exist is not created (a warning says so).
fn record_hs256(key_dir: &std::path::Path, iat: u64, exp: u64) {
    use keyshift_issuer::ledger::{merge_into, LedgerFile};
    // Exact, not reserved ahead as the issuer's are: the tokens exist.
    let record = LedgerFile::minted(iat, exp);
    let recorded = if key_dir.is_dir() {
        merge_into(key_dir, record)
            .map(drop)
            .map_err(anyhow::Error::from)
    } else {
        Err(anyhow::anyhow!("{} does not exist", key_dir.display()))
    };
    if let Err(e) = recorded {
        eprintln!(
            "keyshift: warning: the issuer's record of HS256 tokens was not updated ({}): verifiers asking the issuer will not know these tokens",
            crate::one_line(&e)
        );
    }
}
