//! `keyshift verifier --config F [--accept hs256,rs256]`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use keyshift_core::clock::system_clock;
use keyshift_core::config::VerifierConfig;
use keyshift_core::secret::HmacSecret;
use keyshift_core::{Alg, Config, Phase};
use keyshift_verifier::{State, Verifier};

use super::{load_config, runtime};
use crate::listeners::Listeners;
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
    let secret = section
        .load_secret()
        .with_context(|| args.config.display().to_string())?;
    runtime()?.block_on(serve(args, phase, section, secret))
}

async fn serve(
    args: Args,
    phase: Phase,
    section: VerifierConfig,
    secret: Option<HmacSecret>,
) -> anyhow::Result<()> {
    let (handle, render) = telemetry::install_prometheus(&[(
        keyshift_verifier::metrics::VERIFY_DURATION,
        keyshift_verifier::metrics::VERIFY_DURATION_BUCKETS,
    )])?;
    keyshift_verifier::metrics::describe();
    let (term, int, mut hup) = signals::install().context("cannot install signal handlers")?;
    let verifier = Arc::new(Verifier::new(phase, &section, secret, system_clock())?);
    let listeners = Listeners::bind(
        "verifier",
        section.listen,
        section.admin_listen,
        section.max_connections,
    )
    .await?;
    let addr = listeners.public.local_addr().context("listener address")?;
    println!(
        "keyshift verifier listening on http://{addr} (phase {phase}, accepts {})",
        section.accept
    );
    if let Some(admin) = &listeners.admin {
        let admin = admin.local_addr().context("admin listener address")?;
        println!("keyshift verifier admin routes on http://{admin}");
    }
    let grpc = match section.grpc_listen {
        Some(addr) => {
            let listener = crate::listeners::bind_one("verifier.grpc_listen", addr).await?;
            let addr = listener.local_addr().context("gRPC listener address")?;
            println!("keyshift verifier gRPC ext_authz on {addr}");
            Some(listener)
        }
        None => None,
    };
    tokio::spawn(telemetry::upkeep(handle));
    tokio::spawn(verifier.clone().run_refresher());

    let background = verifier.clone();
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            tracing::info!(config = %args.config.display(), "SIGHUP: reloading config and refetching the JWKS");
            let loaded = effective(&args.config, args.accept.as_deref())
                .and_then(|(phase, section)| Ok((phase, section.load_secret()?, section)));
            let reloaded = match loaded {
                Ok((phase, secret, section)) => background
                    .reload(phase, &section, secret)
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

    // The gRPC listener stops on the same signal as the HTTP ones.
    let (stop_grpc, grpc_stopped) = tokio::sync::watch::channel(false);
    let grpc = grpc.map(|listener| {
        let mut stopped = grpc_stopped;
        tokio::spawn(keyshift_verifier::grpc::serve(
            listener,
            verifier.clone(),
            async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            },
        ))
    });
    let state = Arc::new(State {
        verifier,
        render_metrics: render,
    });
    let shutdown = async move {
        signals::shutdown(term, int).await;
        let _ = stop_grpc.send(true);
    };
    listeners
        .serve(shutdown, |listener, exposure, limits, stop| {
            keyshift_verifier::run_with(listener, state.clone(), exposure, limits, stop.wait())
        })
        .await;
    if let Some(task) = grpc {
        match task.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::error!(error = %keyshift_core::error::chain(&e), "gRPC listener failed")
            }
            Err(e) => tracing::error!(error = %e, "gRPC listener task failed"),
        }
    }
    tracing::info!("verifier stopped");
    Ok(())
}
