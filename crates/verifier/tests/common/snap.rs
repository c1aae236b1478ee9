//! Metric snapshots of a verifier whose handles are registered with a local
//! recorder: counters, gauges and histogram sample counts by name and labels.

use std::sync::Arc;

use keyshift_core::clock::ManualClock;
use keyshift_core::secret::HmacSecrets;
use keyshift_core::Phase;
use keyshift_verifier::Verifier;
pub use metrics_util::debugging::Snapshotter;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};

use super::{config, secret_for, JwksServer, NOW};

/// One snapshot: counter values are the increments since the previous one
/// (the debugging recorder swaps them to zero), gauges their last value.
pub type Snap = Vec<(
    metrics_util::CompositeKey,
    Option<metrics::Unit>,
    Option<metrics::SharedString>,
    DebugValue,
)>;

pub fn counter(snap: &Snap, name: &str, labels: &[(&str, &str)]) -> Option<u64> {
    snap.iter().find_map(|(key, _, _, value)| {
        let k = key.key();
        let matches = k.name() == name
            && labels.len() == k.labels().count()
            && labels
                .iter()
                .all(|(n, v)| k.labels().any(|l| l.key() == *n && l.value() == *v));
        match (matches, value) {
            (true, DebugValue::Counter(c)) => Some(*c),
            _ => None,
        }
    })
}

pub fn gauge(snap: &Snap, name: &str) -> Option<f64> {
    snap.iter().find_map(
        |(key, _, _, value)| match (key.key().name() == name, value) {
            (true, DebugValue::Gauge(g)) => Some(g.into_inner()),
            _ => None,
        },
    )
}

pub fn histogram_len(snap: &Snap, name: &str, alg: &str) -> usize {
    snap.iter()
        .find_map(|(key, _, _, value)| {
            let k = key.key();
            let matches = k.name() == name && k.labels().any(|l| l.value() == alg);
            match (matches, value) {
                (true, DebugValue::Histogram(h)) => Some(h.len()),
                _ => None,
            }
        })
        .unwrap_or(0)
}

/// A verifier whose metric handles are registered with a local recorder.
pub async fn metered(
    phase: Phase,
    extra: &str,
    server: &JwksServer,
) -> (Arc<Verifier>, Snapshotter) {
    metered_with_secrets(phase, extra, server, secret_for(phase).into()).await
}

/// [`metered`], given the verifier's HS256 secrets.
pub async fn metered_with_secrets(
    phase: Phase,
    extra: &str,
    server: &JwksServer,
    secrets: HmacSecrets,
) -> (Arc<Verifier>, Snapshotter) {
    let recorder = DebuggingRecorder::new();
    let snap = recorder.snapshotter();
    let cfg = config(phase, &server.url(), extra);
    let section = cfg.require_verifier().expect("verifier").clone();
    let clock = ManualClock::at_secs(NOW);
    let verifier = metrics::with_local_recorder(&recorder, || {
        Verifier::new(phase, &section, secrets, clock).expect("verifier")
    });
    // Keep the recorder alive for the handles' lifetime.
    std::mem::forget(recorder);
    let verifier = Arc::new(verifier);
    if let Some(jwks) = verifier.jwks() {
        jwks.force_refresh().await;
    }
    (verifier, snap)
}
