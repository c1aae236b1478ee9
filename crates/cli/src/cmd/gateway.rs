//! `keyshift gateway --config F`: the reverse proxy of docs/gateway.md.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use keyshift_core::clock::system_clock;
use keyshift_gateway::keys::ActiveKey;
use keyshift_gateway::State;
use keyshift_verifier::Verifier;

use super::{load_config, runtime};
use crate::listeners::Listeners;
use crate::reload::Reloads;
use crate::{signals, telemetry};

/// Flags of `keyshift gateway`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The config file (its `[gateway]` section, and `[verifier]` when a route verifies).
    #[arg(long, short)]
    config: PathBuf,
}

/// Runs the gateway until SIGTERM/SIGINT; SIGHUP (or `watch_config`)
/// reloads the phase, the `[verifier]` section and the issuer's keys.
pub fn run(args: Args) -> anyhow::Result<()> {
    let config = load_config(&args.config)?;
    let gateway = config.require_gateway()?.clone();
    telemetry::init_logging(gateway.serving.log_format);
    let verifier_section = if gateway.verifies() {
        let section = config.require_verifier()?.clone();
        let secret = section
            .load_secrets()
            .with_context(|| args.config.display().to_string())?;
        Some((section, secret))
    } else {
        None
    };
    let keys = if gateway.signs() {
        Some(Arc::new(ActiveKey::open(&gateway.key_dir)?))
    } else {
        None
    };
    let phase = config.phase;
    // Besides the config, `watch_config` watches the [verifier] section's files.
    let watched = verifier_section
        .as_ref()
        .map(|(section, _)| section.watched_files())
        .unwrap_or_default();
    runtime()?.block_on(async move {
        let (handle, render) = telemetry::install_prometheus(&[
            (
                keyshift_verifier::metrics::VERIFY_DURATION,
                keyshift_verifier::metrics::VERIFY_DURATION_BUCKETS,
            ),
            (
                keyshift_gateway::metrics::DURATION,
                keyshift_gateway::metrics::DURATION_BUCKETS,
            ),
        ])?;
        keyshift_gateway::metrics::describe();
        let verifier = match verifier_section {
            Some((section, secret)) => {
                keyshift_verifier::metrics::describe();
                let v = Arc::new(Verifier::new(phase, &section, secret, system_clock())?);
                tokio::spawn(v.clone().run_refresher());
                Some(v)
            }
            None => None,
        };
        let (term, int, hup) = signals::install().context("cannot install signal handlers")?;
        let listeners = Listeners::bind(
            "gateway",
            gateway.listen,
            gateway.admin_listen,
            gateway.max_connections,
            gateway.serving.tls.as_ref(),
        )
        .await?;
        let addr = listeners.public.local_addr().context("listener address")?;
        let scheme = listeners.scheme();
        println!(
            "keyshift gateway listening on {scheme}://{addr} (phase {phase}, {} routes)",
            gateway.routes.len()
        );
        if let Some(admin) = &listeners.admin {
            let admin = admin.local_addr().context("admin listener address")?;
            println!("keyshift gateway admin routes on http://{admin}");
        }
        tokio::spawn(telemetry::upkeep(handle));
        if let Some(keys) = &keys {
            tokio::spawn(keys.clone().run_reloader());
        }
        // SIGHUP (and, with watch_config, a changed config) reloads the
        // phase and the [verifier] section of the routes that verify, and
        // the issuer's keys; a changed TLS pair reloads on its own. Routes,
        // listeners and timeouts are read at start.
        let mut reloads = Reloads::new(
            hup,
            &args.config,
            gateway.serving.watch_config,
            watched,
            listeners.tls.clone(),
        );
        let (reload_keys, reload_verifier) = (keys.clone(), verifier.clone());
        let config_path = args.config.clone();
        tokio::spawn(async move {
            loop {
                if !reloads.next().await.reads_config() {
                    continue;
                }
                if let Some(keys) = &reload_keys {
                    if let Err(e) = keys.reload() {
                        tracing::error!(error = %e, "key reload failed; keeping the running key");
                    }
                }
                let result = reload(&config_path, reload_verifier.as_deref()).await;
                telemetry::reloaded(result.is_ok());
                match result {
                    Ok((watch, files)) => reloads.watch(watch, files),
                    Err(e) => tracing::error!(error = %crate::one_line(&e), "config reload failed; keeping the running config"),
                }
            }
        });
        let state = Arc::new(State::new(&gateway, verifier, keys, system_clock(), render));
        listeners
            .serve(
                signals::shutdown(term, int),
                |listener, exposure, limits, stop| {
                    keyshift_gateway::run(listener, state.clone(), exposure, limits, stop.wait())
                },
            )
            .await;
        tracing::info!("gateway stopped");
        Ok(())
    })
}

/// Reads the config again and applies the phase and `[verifier]` section to
/// the routes' verifier (the same validation and refusals as the verifier
/// service's reload). Returns `watch_config` and the files to watch.
async fn reload(
    path: &std::path::Path,
    verifier: Option<&Verifier>,
) -> anyhow::Result<(bool, Vec<std::path::PathBuf>)> {
    let config = load_config(path)?;
    let gateway = config.require_gateway()?;
    if gateway.verifies() != verifier.is_some() {
        tracing::warn!(
            "whether a route verifies changed: the gateway applies it at the next restart"
        );
    }
    let Some(verifier) = verifier else {
        return Ok((gateway.serving.watch_config, Vec::new()));
    };
    let section = config.require_verifier()?;
    let secrets = section.load_secrets()?;
    verifier.reload(config.phase, section, secrets).await?;
    tracing::info!(phase = %config.phase, "gateway reloaded: phase and [verifier] section applied");
    Ok((gateway.serving.watch_config, section.watched_files()))
}
