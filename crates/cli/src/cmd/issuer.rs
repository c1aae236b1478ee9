//! `keyshift issuer --config F`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use keyshift_core::clock::system_clock;
use keyshift_http::ops::Exposure;
use keyshift_issuer::Issuer;

use super::{load_config, runtime};
use crate::listeners::Listeners;
use crate::{signals, telemetry};

/// How often the issuer applies due rotation steps and picks up offline key changes.
const KEY_TICK: Duration = Duration::from_secs(30);

/// Runs the issuer until SIGTERM/SIGINT.
pub fn run(config_path: &Path) -> anyhow::Result<()> {
    telemetry::init_logging();
    let config = load_config(config_path)?;
    let issuer_config = config.require_issuer()?.clone();
    runtime()?.block_on(serve(config_path.to_owned(), config.phase, issuer_config))
}

async fn serve(
    config_path: PathBuf,
    phase: keyshift_core::Phase,
    config: keyshift_core::config::IssuerConfig,
) -> anyhow::Result<()> {
    let (handle, render) = telemetry::install_prometheus(&[(
        keyshift_issuer::metrics::TOKEN_REQUEST_DURATION,
        keyshift_issuer::metrics::TOKEN_REQUEST_DURATION_BUCKETS,
    )])?;
    keyshift_issuer::metrics::describe();
    let (term, int, mut hup) = signals::install().context("cannot install signal handlers")?;
    let issuer = Issuer::start(phase, config.clone(), system_clock(), render)
        .await
        .context("issuer")?;
    let issuer = Arc::new(issuer);
    // Read once: the listeners are bound once (a change needs a restart).
    let proxy_protocol = config.proxy_protocol;
    let listeners = Listeners::bind(
        "issuer",
        config.listen,
        config.admin_listen,
        config.max_connections,
    )
    .await?;
    let addr = listeners.public.local_addr().context("listener address")?;
    let live = issuer.live();
    println!(
        "keyshift issuer listening on http://{addr} (phase {}, signs {} with kid {})",
        live.phase(),
        live.signer().alg(),
        live.signer().kid()
    );
    drop(live);
    if let Some(admin) = &listeners.admin {
        let admin = admin.local_addr().context("admin listener address")?;
        println!("keyshift issuer admin routes on http://{admin}");
    }
    tokio::spawn(telemetry::upkeep(handle));

    let background = issuer.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(KEY_TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = hup.recv() => reload(&background, &config_path).await,
                _ = tick.tick() => {}
            }
            if let Err(e) = background.maintain_keys().await {
                tracing::error!(error = %e, "key maintenance failed; keeping the current keys");
            }
        }
    });

    let has_admin = listeners.admin.is_some();
    listeners
        .serve(
            signals::shutdown(term, int),
            |listener, exposure, limits, stop| {
                let issuer = issuer.clone();
                // The proxy fronts `listen`; the admin listener is reached directly.
                let proxied = proxy_protocol && (exposure == Exposure::Public || !has_admin);
                async move {
                    if proxied {
                        keyshift_issuer::run_proxy_protocol(
                            listener,
                            issuer,
                            exposure,
                            limits,
                            stop.wait(),
                        )
                        .await;
                    } else {
                        keyshift_issuer::run_with(listener, issuer, exposure, limits, stop.wait())
                            .await;
                    }
                }
            },
        )
        .await;
    tracing::info!("issuer stopped");
    Ok(())
}

/// Reloads config and keys (SIGHUP); counts the result
/// (`keyshift_config_reloads_total`). A refused reload keeps the running config.
async fn reload(issuer: &Issuer, path: &Path) {
    tracing::info!(config = %path.display(), "SIGHUP: reloading config and keys");
    let result = match keyshift_core::Config::load(path) {
        Ok(config) => match config.require_issuer() {
            Ok(section) => issuer
                .reload(config.phase, section.clone())
                .await
                .map_err(anyhow::Error::from),
            Err(e) => Err(e.into()),
        },
        Err(e) => Err(e.into()),
    };
    if let Err(e) = &result {
        tracing::error!(error = %crate::one_line(e), "config reload failed; keeping the running config");
    }
    telemetry::reloaded(result.is_ok());
}
