//! `keyshift verifier --config F [--accept hs256,rs256]`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use keyshift_core::clock::system_clock;
use keyshift_core::config::VerifierConfig;
use keyshift_core::secret::HmacSecrets;
use keyshift_core::{AcceptSet, Alg, Config, Phase};
use keyshift_verifier::{State, Verifier};

use super::{load_config, runtime};
use crate::listeners::Listeners;
use crate::reload::Reloads;
use crate::{signals, telemetry};

/// Flags of `keyshift verifier`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The config file.
    #[arg(long, short)]
    config: PathBuf,
    /// Override of the accepted algorithms (e.g. `hs256,rs256`); wins over
    /// `verifier.accept` and the phase's default. At start it must fit the
    /// phase; on a reload into a phase it contradicts (HS256 in
    /// `asymmetric`) it is dropped with a warning, so it never strands a
    /// reload (`keyshift config check --accept …` tells in advance).
    #[arg(long, value_delimiter = ',')]
    accept: Option<Vec<Alg>>,
}

/// When the config is read: a flag that contradicts the phase is an error
/// at start, and set aside (with a warning) on a reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Start,
    Reload,
}

/// Loads the config and applies the `--accept` override (core's rules).
fn effective(
    path: &Path,
    accept: Option<&[Alg]>,
    stage: Stage,
) -> anyhow::Result<(Phase, VerifierConfig)> {
    let config: Config = load_config(path)?;
    let mut section = config.require_verifier()?.clone();
    if let Some(list) = accept {
        let flag: AcceptSet = list.iter().copied().collect();
        let refused = config.phase.refused_in(flag);
        if stage == Stage::Reload && !refused.is_empty() {
            tracing::warn!(
                phase = %config.phase,
                "--accept {flag} contradicts phase {} ({refused} is not accepted in it): applying the config's own accept ({}); restart without --accept to drop this line",
                config.phase,
                section.accept
            );
        } else {
            section.override_accept(config.phase, flag, "--accept")?;
        }
    }
    Ok((config.phase, section))
}

/// Runs the verifier until SIGTERM/SIGINT.
pub fn run(args: Args) -> anyhow::Result<()> {
    let (phase, section) = effective(&args.config, args.accept.as_deref(), Stage::Start)?;
    telemetry::init_logging(section.serving.log_format);
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
    let (term, int, hup) = signals::install().context("cannot install signal handlers")?;
    let verifier = Arc::new(Verifier::new(phase, &section, secrets, system_clock())?);
    verifier
        .check_start(section.force_phase)
        .await
        .with_context(|| args.config.display().to_string())?;
    let listeners = Listeners::bind(
        "verifier",
        section.listen,
        section.admin_listen,
        section.max_connections,
        section.serving.tls.as_ref(),
    )
    .await?;
    let addr = listeners.public.local_addr().context("listener address")?;
    let scheme = listeners.scheme();
    println!(
        "keyshift verifier listening on {scheme}://{addr} (phase {phase}, accepts {})",
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
    let mut reloads = Reloads::new(
        hup,
        &args.config,
        section.serving.watch_config,
        section.watched_files(),
        listeners.tls.clone(),
    );
    let tls = listeners.tls.clone();
    tokio::spawn(async move {
        loop {
            if !reloads.next().await.reads_config() {
                continue;
            }
            let loaded = effective(&args.config, args.accept.as_deref(), Stage::Reload)
                .and_then(|(phase, section)| Ok((phase, section.load_secrets()?, section)));
            let reloaded = match loaded {
                Ok((phase, secrets, section)) => background
                    .reload(phase, &section, secrets)
                    .await
                    .map(|()| section)
                    .map_err(anyhow::Error::from),
                Err(e) => Err(e),
            };
            telemetry::reloaded(reloaded.is_ok());
            match reloaded {
                Ok(section) => {
                    crate::reload::warn_if_tls_moved(
                        "verifier",
                        tls.as_deref(),
                        section.serving.tls.as_ref(),
                    );
                    reloads.watch(section.serving.watch_config, section.watched_files());
                }
                Err(e) => {
                    tracing::error!(error = %crate::one_line(&e), "config reload failed; keeping the running config");
                }
            }
            if let Some(jwks) = background.jwks() {
                jwks.force_refresh().await;
            }
            background.authority().check().await;
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
