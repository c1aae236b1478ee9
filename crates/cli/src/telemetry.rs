//! Logging and the Prometheus exporter; only the binary installs them.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use keyshift_core::config::LogFormat;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Logs to stderr in `format` (`log_format`); `RUST_LOG` overrides the
/// default `info` level. JSON is one object per line: `timestamp` (RFC
/// 3339, UTC), `level`, `fields` (`message` and the event's fields), and
/// `spans` when there are any.
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
        LogFormat::Json => builder.json().with_ansi(false).try_init(),
    };
}

/// Installs the global Prometheus recorder with explicit buckets for each
/// histogram (so `histogram_quantile` works), publishes the build and the
/// config loaded now, and returns a render function that appends the
/// `process_*` metrics.
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
    keyshift_core::ops_metrics::describe();
    let build = keyshift_http::ops::BUILD;
    keyshift_core::ops_metrics::started(build.version, build.git_sha, now_secs());
    let render_handle = handle.clone();
    let render = move || {
        let mut text = render_handle.render();
        if let Some(reading) = crate::process_metrics::read() {
            crate::process_metrics::render(&reading, &mut text);
        }
        text
    };
    Ok((handle, Arc::new(render)))
}

/// Counts a config reload (SIGHUP) and its result.
pub fn reloaded(ok: bool) {
    let result = if ok {
        keyshift_core::ops_metrics::ReloadResult::Ok
    } else {
        keyshift_core::ops_metrics::ReloadResult::Error
    };
    keyshift_core::ops_metrics::reloaded(result, now_secs());
}

fn now_secs() -> u64 {
    keyshift_core::clock::Clock::now_secs(&keyshift_core::clock::SystemClock)
}

/// Runs the exporter's periodic upkeep (drains histogram buffers).
pub async fn upkeep(handle: PrometheusHandle) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tick.tick().await;
        handle.run_upkeep();
    }
}
