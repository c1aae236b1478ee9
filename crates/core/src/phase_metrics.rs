//! The metrics both services export about the phase and the shared secret
//! (names per the contract). Recorded through the `metrics` facade: a no-op until the
//! binary installs an exporter.

use metrics::{describe_gauge, gauge};

use crate::Phase;

/// `keyshift_phase_info{phase}`: 1 for the current phase, 0 for the others.
pub const PHASE_INFO: &str = "keyshift_phase_info";
/// `keyshift_hs256_secret_configured`: 1 while a shared HS256 secret is
/// loaded. In phase `asymmetric` it should be 0 (the secret removed).
pub const SECRET_CONFIGURED: &str = "keyshift_hs256_secret_configured";
/// `keyshift_hs256_secret_weak`: 1 while a loaded HS256 secret is shorter
/// than 32 bytes (`allow_weak_hs256_secret`), so a dashboard shows that the
/// weak legacy secret is still live.
pub const SECRET_WEAK: &str = "keyshift_hs256_secret_weak";

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
    describe_gauge!(
        SECRET_WEAK,
        "1 while a loaded HS256 secret is shorter than 32 bytes (allow_weak_hs256_secret)."
    );
}

/// Publishes the phase and whether a secret is configured.
pub fn set(phase: Phase, secret_configured: bool) {
    for p in Phase::ALL {
        gauge!(PHASE_INFO, "phase" => p.as_str()).set(if p == phase { 1.0 } else { 0.0 });
    }
    gauge!(SECRET_CONFIGURED).set(if secret_configured { 1.0 } else { 0.0 });
}

/// Publishes whether a loaded HS256 secret is weak.
pub fn set_secret_weak(weak: bool) {
    gauge!(SECRET_WEAK).set(if weak { 1.0 } else { 0.0 });
}
