//! Capacity arithmetic: instances needed for a target rate.

use serde::{Deserialize, Serialize};

/// The capacity line of one phase.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Capacity {
    /// The target rate asked for.
    pub target_rps: f64,
    /// Measured requests/s of one instance (this machine, load generator included).
    pub per_instance_rps: f64,
    /// `ceil(target / per_instance)`.
    pub instances: u64,
    /// The p99 objective, if given.
    pub p99_objective_ms: Option<f64>,
    /// Whether the measured p99 met it.
    pub p99_met: Option<bool>,
}

/// Instances for `target` at `measured` requests/s each; `None` if nothing was measured.
pub fn plan(
    target: f64,
    measured: f64,
    p99_ms: f64,
    objective_ms: Option<f64>,
) -> Option<Capacity> {
    if measured <= 0.0 || target <= 0.0 {
        return None;
    }
    Some(Capacity {
        target_rps: target,
        per_instance_rps: measured,
        instances: (target / measured).ceil() as u64,
        p99_objective_ms: objective_ms,
        p99_met: objective_ms.map(|o| p99_ms <= o),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_up_and_judges_the_objective() {
        let c = plan(10_000.0, 3_000.0, 4.0, Some(10.0)).expect("plan");
        assert_eq!(c.instances, 4);
        assert_eq!(c.p99_met, Some(true));
        assert_eq!(
            plan(9_000.0, 3_000.0, 12.0, Some(10.0))
                .expect("plan")
                .instances,
            3
        );
        assert_eq!(
            plan(1.0, 3_000.0, 12.0, Some(10.0)).expect("plan").p99_met,
            Some(false)
        );
        assert!(plan(100.0, 0.0, 1.0, None).is_none());
    }
}
