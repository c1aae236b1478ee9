//! Capacity arithmetic: instances needed for a target rate of legitimate
//! requests, honest about what was measured.
//!
//! One run measures one operating point per phase: the legitimate-token
//! throughput the verifier sustained with `--users` concurrent users, and the
//! p99 latency of those same requests. Cheap expected 401s (stragglers,
//! attack kids) are not counted as capacity. If the p99 at that point meets
//! the objective, an instance sustains at least that rate at the objective,
//! and `ceil(target / rate)` instances carry the target, assuming linear
//! scaling across instances (independent verifiers share nothing). If it
//! misses, the measured load is above one instance's capacity at that
//! objective, and one point cannot say by how much: no count is claimed.

use serde::{Deserialize, Serialize};

/// The assumption every capacity figure rests on (also in `summary.json`).
pub const ASSUMPTION: &str = "per instance = the legitimate-token requests/s one verifier sustained on this machine (its cores shared with the load generator and the issuer) at the measured p99; instances = ceil(target / per instance) assumes linear scaling across independent instances of the same size, valid only up to the rate measured per instance; a missed p99 objective gives no count (the measured load is above one instance's capacity at that objective)";

/// The capacity line of one phase.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Capacity {
    /// Legitimate requests/s asked for.
    pub target_rps: f64,
    /// Legitimate-token requests/s one instance sustained (expected 401s excluded).
    pub per_instance_rps: f64,
    /// Goose users that produced that rate.
    pub measured_users: usize,
    /// p99 of the legitimate-token requests at that rate, milliseconds.
    pub p99_ms: f64,
    /// The p99 objective, if given.
    pub p99_objective_ms: Option<f64>,
    /// Whether the measured p99 met it (`None` without an objective).
    pub p99_met: Option<bool>,
    /// `ceil(target / per_instance)`; `None` when the objective was missed.
    pub instances: Option<u64>,
    /// One line for people: the count, or why there is none.
    pub verdict: String,
}

/// Plans `target` legitimate requests/s from one measured point; `None` if
/// nothing legitimate was measured or the target is not positive.
pub fn plan(
    target: f64,
    legit_rps: f64,
    p99_ms: f64,
    objective_ms: Option<f64>,
    users: usize,
) -> Option<Capacity> {
    if !(legit_rps > 0.0 && legit_rps.is_finite() && target > 0.0 && target.is_finite()) {
        return None;
    }
    let meets = |o: f64| p99_ms <= o;
    let p99_met = objective_ms.map(meets);
    let (instances, verdict) = match objective_ms {
        Some(o) if !meets(o) => (
            None,
            format!(
                "n/a at p99 <= {o} ms: the measured load ({legit_rps:.0} legitimate req/s from {users} users, p99 {p99_ms:.2} ms) is above one instance's capacity at that objective; re-run with fewer --users to find the rate that meets it"
            ),
        ),
        _ => {
            let n = (target / legit_rps).ceil().max(1.0) as u64;
            let objective = objective_ms
                .map(|o| format!(", p99 {p99_ms:.2} ms meets {o} ms"))
                .unwrap_or_else(|| format!(", p99 {p99_ms:.2} ms (no objective given)"));
            (
                Some(n),
                format!(
                    "{n} instance(s) for {target:.0} legitimate req/s at {legit_rps:.0} req/s each{objective}"
                ),
            )
        }
    };
    Some(Capacity {
        target_rps: target,
        per_instance_rps: legit_rps,
        measured_users: users,
        p99_ms,
        p99_objective_ms: objective_ms,
        p99_met,
        instances,
        verdict,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_up_when_the_objective_is_met() {
        let c = plan(10_000.0, 3_000.0, 4.0, Some(10.0), 16).expect("plan");
        assert_eq!(c.instances, Some(4));
        assert_eq!(c.p99_met, Some(true));
        assert!(c.verdict.starts_with("4 instance(s)"), "{}", c.verdict);
        assert_eq!(
            plan(9_000.0, 3_000.0, 4.0, Some(10.0), 16)
                .expect("plan")
                .instances,
            Some(3)
        );
    }

    #[test]
    fn a_target_below_one_instance_still_needs_one() {
        let c = plan(10.0, 3_000.0, 4.0, None, 16).expect("plan");
        assert_eq!(c.instances, Some(1));
        assert_eq!(c.p99_met, None);
    }

    #[test]
    fn a_missed_objective_claims_no_count() {
        let c = plan(9_000.0, 3_000.0, 12.0, Some(10.0), 16).expect("plan");
        assert_eq!(c.p99_met, Some(false));
        assert_eq!(c.instances, None);
        assert!(
            c.verdict.starts_with("n/a at p99 <= 10 ms"),
            "{}",
            c.verdict
        );
        assert!(c.verdict.contains("16 users"));
    }

    #[test]
    fn the_objective_is_met_at_equality() {
        let c = plan(1.0, 3_000.0, 10.0, Some(10.0), 1).expect("plan");
        assert_eq!(c.p99_met, Some(true));
    }

    #[test]
    fn nothing_measured_or_no_target_gives_no_plan() {
        assert!(plan(100.0, 0.0, 1.0, None, 4).is_none());
        assert!(plan(0.0, 100.0, 1.0, None, 4).is_none());
        assert!(plan(100.0, f64::NAN, 1.0, None, 4).is_none());
        assert!(plan(f64::INFINITY, 100.0, 1.0, None, 4).is_none());
    }
}
