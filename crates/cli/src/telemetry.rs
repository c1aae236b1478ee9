//! Logging and the Prometheus exporter; only the binary installs them.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Logs to stderr; `RUST_LOG` overrides the default `info` level.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}

/// Installs the global Prometheus recorder with explicit buckets for each
/// histogram (so `histogram_quantile` works), and returns a render function.
pub fn install_prometheus(
    histograms: &[(&str, &[f64])],
) -> anyhow::Result<(PrometheusHandle, keyshift_verifier::RenderMetrics)> {
    let mut builder = PrometheusBuilder::new();
    for (name, buckets) in histograms {
        builder = builder
            .set_buckets_for_metric(Matcher::Full((*name).to_owned()), buckets)
            .with_context(|| format!("histogram buckets for {name}"))?;
    }
    let handle = builder
        .install_recorder()
        .context("cannot install the metrics recorder")?;
    let render_handle = handle.clone();
    Ok((handle, Arc::new(move || render_handle.render())))
}

/// Runs the exporter's periodic upkeep (drains histogram buffers).
pub async fn upkeep(handle: PrometheusHandle) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tick.tick().await;
        handle.run_upkeep();
    }
}
