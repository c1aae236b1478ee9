//! `keyshift verifier --config F [--accept hs256,rs256]`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use keyshift_core::clock::system_clock;
use keyshift_core::config::VerifierConfig;
use keyshift_core::secret::HmacSecrets;
use keyshift_core::{Alg, Config, Phase};
use keyshift_verifier::{State, Verifier};
use tokio::net::TcpListener;

use super::{load_config, runtime};
use crate::{signals, telemetry};

/// Flags of `keyshift verifier`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The config file.
    #[arg(long, short)]
    config: PathBuf,
    /// Override of the accepted algorithms (e.g. `hs256,rs256`); wins over
    /// `verifier.accept` and the phase's default.
    #[arg(long, value_delimiter = ',')]
    accept: Option<Vec<Alg>>,
}

/// Loads the config and applies the `--accept` override (core's rules).
fn effective(path: &Path, accept: Option<&[Alg]>) -> anyhow::Result<(Phase, VerifierConfig)> {
    let config: Config = load_config(path)?;
    let mut section = config.require_verifier()?.clone();
    if let Some(list) = accept {
        section.override_accept(config.phase, list.iter().copied().collect(), "--accept")?;
    }
    Ok((config.phase, section))
}

/// Runs the verifier until SIGTERM/SIGINT.
pub fn run(args: Args) -> anyhow::Result<()> {
    telemetry::init_logging();
    let (phase, section) = effective(&args.config, args.accept.as_deref())?;
    let secrets = section
        .load_secrets()
        .with_context(|| args.config.display().to_string())?;
    runtime()?.block_on(serve(args, phase, section, secrets))
}

async fn serve(
    args: Args,
    phase: Phase,
    section: VerifierConfig,
    secrets: HmacSecrets,
) -> anyhow::Result<()> {
    let (handle, render) = telemetry::install_prometheus(&[(
        keyshift_verifier::metrics::VERIFY_DURATION,
        keyshift_verifier::metrics::VERIFY_DURATION_BUCKETS,
    )])?;
    keyshift_verifier::metrics::describe();
    let (term, int, mut hup) = signals::install().context("cannot install signal handlers")?;
    let verifier = Arc::new(Verifier::new(phase, &section, secrets, system_clock())?);
    let listener = TcpListener::bind(section.listen)
        .await
        .with_context(|| format!("verifier.listen: cannot listen on {}", section.listen))?;
    let addr = listener.local_addr().context("listener address")?;
    println!(
        "keyshift verifier listening on http://{addr} (phase {phase}, accepts {})",
        section.accept
    );
    tokio::spawn(telemetry::upkeep(handle));
    tokio::spawn(verifier.clone().run_refresher());

    let background = verifier.clone();
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            tracing::info!(config = %args.config.display(), "SIGHUP: reloading config and refetching the JWKS");
            let loaded = effective(&args.config, args.accept.as_deref())
                .and_then(|(phase, section)| Ok((phase, section.load_secrets()?, section)));
            let reloaded = match loaded {
                Ok((phase, secrets, section)) => background
                    .reload(phase, &section, secrets)
                    .await
                    .map_err(anyhow::Error::from),
                Err(e) => Err(e),
            };
            if let Err(e) = reloaded {
                tracing::error!(error = %crate::one_line(&e), "config reload failed; keeping the running config");
            }
            if let Some(jwks) = background.jwks() {
                jwks.force_refresh().await;
            }
        }
    });

    let state = Arc::new(State {
        verifier,
        render_metrics: render,
    });
    keyshift_verifier::run(listener, state, signals::shutdown(term, int)).await;
    tracing::info!("verifier stopped");
    Ok(())
}
