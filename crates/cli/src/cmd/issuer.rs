//! `keyshift issuer --config F`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use keyshift_core::clock::system_clock;
use keyshift_core::config::{IssuerConfig, KEY_SYNC_INTERVAL};
use keyshift_http::ops::Exposure;
use keyshift_issuer::Issuer;

use super::{load_config, runtime};
use crate::listeners::Listeners;
use crate::reload::Reloads;
use crate::{signals, telemetry};

/// How often the issuer maintains its keys whatever the manifest says
/// (records what it serves); between two, [`KEY_SYNC_INTERVAL`] looks for
/// a changed manifest or a due rotation step.
const KEY_TICK: Duration = Duration::from_secs(30);

/// Runs the issuer until SIGTERM/SIGINT.
pub fn run(config_path: &Path) -> anyhow::Result<()> {
    let config = load_config(config_path)?;
    let issuer_config = config.require_issuer()?.clone();
    telemetry::init_logging(issuer_config.serving.log_format);
    runtime()?.block_on(serve(config_path.to_owned(), config.phase, issuer_config))
}

async fn serve(
    config_path: PathBuf,
    phase: keyshift_core::Phase,
    config: IssuerConfig,
) -> anyhow::Result<()> {
    let (handle, render) = telemetry::install_prometheus(&[(
        keyshift_issuer::metrics::TOKEN_REQUEST_DURATION,
        keyshift_issuer::metrics::TOKEN_REQUEST_DURATION_BUCKETS,
    )])?;
    keyshift_issuer::metrics::describe();
    let (term, int, hup) = signals::install().context("cannot install signal handlers")?;
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
        config.serving.tls.as_ref(),
    )
    .await?;
    let addr = listeners.public.local_addr().context("listener address")?;
    let scheme = listeners.scheme();
    let live = issuer.live();
    println!(
        "keyshift issuer listening on {scheme}://{addr} (phase {}, signs {} with kid {})",
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
    let mut reloads = Reloads::new(
        hup,
        &config_path,
        config.serving.watch_config,
        config.watched_files(),
        listeners.tls.clone(),
    );
    let tls = listeners.tls.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(KEY_TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut sync = tokio::time::interval(KEY_SYNC_INTERVAL);
        sync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing: Option<String> = None;
        loop {
            tokio::select! {
                trigger = reloads.next() => {
                    if !trigger.reads_config() {
                        continue;
                    }
                    if let Some(section) = reload(&background, &config_path).await {
                        crate::reload::warn_if_tls_moved("issuer", tls.as_deref(), section.serving.tls.as_ref());
                        reloads.watch(section.serving.watch_config, section.watched_files());
                    }
                }
                _ = tick.tick() => {}
                _ = sync.tick() => {
                    let synced = background.sync_keys().await;
                    report_maintenance(synced.map(|_| ()), &mut failing);
                    continue;
                }
            }
            report_maintenance(background.maintain_keys().await.map(|_| ()), &mut failing);
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

/// Logs a failed key maintenance once per distinct error (the sync runs
/// every second), and its recovery.
fn report_maintenance(
    result: Result<(), keyshift_issuer::StartError>,
    failing: &mut Option<String>,
) {
    match result {
        Ok(()) => {
            if failing.take().is_some() {
                tracing::info!("key maintenance works again");
            }
        }
        Err(e) => {
            let text = e.to_string();
            if failing.as_deref() != Some(text.as_str()) {
                tracing::error!(error = %e, "key maintenance failed; keeping the current keys");
                *failing = Some(text);
            }
        }
    }
}

/// Reloads config and keys (SIGHUP, `watch_config`); counts the result
/// (`keyshift_config_reloads_total`) and returns the section now in force.
/// A refused reload keeps the running config.
async fn reload(issuer: &Issuer, path: &Path) -> Option<IssuerConfig> {
    let result = match keyshift_core::Config::load(path) {
        Ok(config) => match config.require_issuer() {
            Ok(section) => issuer
                .reload(config.phase, section.clone())
                .await
                .map(|()| section.clone())
                .map_err(anyhow::Error::from),
            Err(e) => Err(e.into()),
        },
        Err(e) => Err(e.into()),
    };
    telemetry::reloaded(result.is_ok());
    match result {
        Ok(section) => Some(section),
        Err(e) => {
            tracing::error!(error = %crate::one_line(&e), "config reload failed; keeping the running config");
            None
        }
    }
}
