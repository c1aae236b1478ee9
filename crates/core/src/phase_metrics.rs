//! The two metrics both services export about the phase (names per the
//! contract). Recorded through the `metrics` facade: a no-op until the
//! binary installs an exporter.

use metrics::{describe_gauge, gauge};

use crate::Phase;

/// `keyshift_phase_info{phase}`: 1 for the current phase, 0 for the others.
pub const PHASE_INFO: &str = "keyshift_phase_info";
/// `keyshift_hs256_secret_configured`: 1 while a shared HS256 secret is
/// loaded. In phase `asymmetric` it should be 0 (the secret removed).
pub const SECRET_CONFIGURED: &str = "keyshift_hs256_secret_configured";

/// Registers help text; each service calls it once at start.
pub fn describe() {
    describe_gauge!(
        PHASE_INFO,
        "The migration phase: 1 for the current phase, 0 for the others."
    );
    describe_gauge!(
        SECRET_CONFIGURED,
        "1 while a shared HS256 secret is configured; remove it in phase asymmetric."
    );
}

/// Publishes the phase and whether a secret is configured.
pub fn set(phase: Phase, secret_configured: bool) {
    for p in Phase::ALL {
        gauge!(PHASE_INFO, "phase" => p.as_str()).set(if p == phase { 1.0 } else { 0.0 });
    }
    gauge!(SECRET_CONFIGURED).set(if secret_configured { 1.0 } else { 0.0 });
}
