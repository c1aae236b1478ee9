//! What `/migration` reports: per-algorithm counts since start, the last
//! accepted HS256 token, and whether it is safe to move to phase `asymmetric`.

use std::sync::atomic::{AtomicU64, Ordering};

use keyshift_core::{AcceptSet, Alg, Phase};
use serde::Serialize;

/// Counters updated on every verification (relaxed atomics, no locks).
#[derive(Debug, Default)]
pub struct MigrationStats {
    accepted: [AtomicU64; 3],
    rejected: [AtomicU64; 3],
    /// Unix seconds of the last accepted HS256 token (0: none).
    last_hs256_accepted: AtomicU64,
    /// Largest `exp` of any accepted HS256 token (0: none).
    latest_hs256_exp: AtomicU64,
    started_at: AtomicU64,
}

/// Index 0 HS256, 1 RS256, 2 other.
pub(crate) fn slot(alg: Option<Alg>) -> usize {
    match alg {
        Some(Alg::Hs256) => 0,
        Some(Alg::Rs256) => 1,
        None => 2,
    }
}

impl MigrationStats {
    /// Stats starting at `now` (unix seconds).
    pub fn new(now: u64) -> MigrationStats {
        let s = MigrationStats::default();
        s.started_at.store(now, Ordering::Relaxed);
        s
    }

    pub(crate) fn accepted(&self, alg: Alg, exp: u64, now: u64) {
        self.accepted[slot(Some(alg))].fetch_add(1, Ordering::Relaxed);
        if alg == Alg::Hs256 {
            self.last_hs256_accepted.fetch_max(now, Ordering::Relaxed);
            self.latest_hs256_exp.fetch_max(exp, Ordering::Relaxed);
        }
    }

    pub(crate) fn rejected(&self, alg: Option<Alg>) {
        self.rejected[slot(alg)].fetch_add(1, Ordering::Relaxed);
    }

    /// The report, as of `now`.
    pub fn report(
        &self,
        phase: Phase,
        accept: AcceptSet,
        now: u64,
        leeway: u64,
    ) -> MigrationReport {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let nonzero = |v: u64| (v != 0).then_some(v);
        let last_hs = nonzero(load(&self.last_hs256_accepted));
        let latest_exp = nonzero(load(&self.latest_hs256_exp));
        let (ready, reason) = if phase == Phase::Asymmetric {
            (
                true,
                "already in phase asymmetric: HS256 is refused".to_owned(),
            )
        } else if phase.signs() == Alg::Hs256 {
            (
                false,
                format!(
                    "phase {phase}: the issuer still signs HS256; move to phase transition first"
                ),
            )
        } else {
            match latest_exp {
                Some(exp) if exp.saturating_add(leeway) > now => (
                    false,
                    format!(
                        "an accepted HS256 token is valid for {} more seconds",
                        exp.saturating_add(leeway) - now
                    ),
                ),
                Some(_) => (
                    true,
                    "every HS256 token this verifier accepted has expired".to_owned(),
                ),
                None => (
                    true,
                    format!(
                        "no HS256 token accepted in the {} seconds since start",
                        now.saturating_sub(load(&self.started_at))
                    ),
                ),
            }
        };
        let per_alg = |i: usize| AlgCounts {
            accepted: load(&self.accepted[i]),
            rejected: load(&self.rejected[i]),
        };
        MigrationReport {
            phase,
            accepted_algorithms: accept.iter().map(Alg::as_str).collect(),
            signs: phase.signs().as_str(),
            counts: Counts {
                hs256: per_alg(0),
                rs256: per_alg(1),
                other: per_alg(2),
            },
            last_hs256_accepted_unix: last_hs,
            latest_hs256_exp_unix: latest_exp,
            since_unix: load(&self.started_at),
            ready_for_asymmetric: ready,
            reason,
        }
    }
}

/// Accepted and rejected counts of one algorithm.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct AlgCounts {
    /// Accepted since start.
    pub accepted: u64,
    /// Rejected since start.
    pub rejected: u64,
}

/// Counts per algorithm.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct Counts {
    /// HS256.
    #[serde(rename = "HS256")]
    pub hs256: AlgCounts,
    /// RS256.
    #[serde(rename = "RS256")]
    pub rs256: AlgCounts,
    /// Anything else (none, ES256, unreadable, missing).
    pub other: AlgCounts,
}

/// The JSON of `GET /migration`.
#[derive(Debug, Clone, Serialize)]
pub struct MigrationReport {
    /// The phase.
    pub phase: Phase,
    /// Accepted algorithms.
    pub accepted_algorithms: Vec<&'static str>,
    /// What the issuer signs in this phase.
    pub signs: &'static str,
    /// Counts since start.
    pub counts: Counts,
    /// Last HS256 acceptance.
    pub last_hs256_accepted_unix: Option<u64>,
    /// After this, no HS256 token this verifier accepted is valid.
    pub latest_hs256_exp_unix: Option<u64>,
    /// Start of the counts.
    pub since_unix: u64,
    /// Whether phase `asymmetric` can be entered without rejecting a valid token seen here.
    pub ready_for_asymmetric: bool,
    /// Why (not).
    pub reason: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_once_every_accepted_hs256_token_expired() {
        let s = MigrationStats::new(1_000);
        let accept = Phase::Transition.default_accept();
        assert!(
            !s.report(Phase::Dual, accept, 1_000, 30)
                .ready_for_asymmetric
        );
        assert!(
            s.report(Phase::Transition, accept, 1_100, 30)
                .ready_for_asymmetric
        );
        s.accepted(Alg::Hs256, 2_000, 1_100);
        let r = s.report(Phase::Transition, accept, 1_500, 30);
        assert!(!r.ready_for_asymmetric, "{}", r.reason);
        assert_eq!(r.latest_hs256_exp_unix, Some(2_000));
        assert_eq!(r.counts.hs256.accepted, 1);
        assert!(
            !s.report(Phase::Transition, accept, 2_029, 30)
                .ready_for_asymmetric
        );
        assert!(
            s.report(Phase::Transition, accept, 2_030, 30)
                .ready_for_asymmetric
        );
    }
}
