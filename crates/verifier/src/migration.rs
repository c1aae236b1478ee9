//! What `/migration` reports: per-algorithm counts since start, the last
//! accepted HS256 token, and whether it is safe to move to phase `asymmetric`.

use std::sync::atomic::{AtomicU64, Ordering};

use keyshift_core::config::VerifierLegacy;
use keyshift_core::{AcceptSet, Alg, Phase};

use crate::error::AlgLabel;
use crate::legacy::{Loosening, Loosenings};
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
    /// Unix seconds since which this verifier has run in a phase whose issuer
    /// signs RS256 (0: it is in a phase that signs HS256). HS256 tokens minted
    /// before then, unseen here, may be valid until it plus the maximum lifetime.
    rs256_since: AtomicU64,
    /// HS256 tokens accepted only through the legacy profile.
    legacy_accepted: AtomicU64,
    /// The same, per loosening relied on.
    legacy_by: [AtomicU64; Loosening::ALL.len()],
}

/// The counter slot of an algorithm: its [`AlgLabel`] position.
pub(crate) fn slot(alg: Option<Alg>) -> usize {
    alg.map_or(AlgLabel::Other, AlgLabel::from).index()
}

impl MigrationStats {
    /// Stats starting at `now` (unix seconds) in `phase`.
    pub fn new(now: u64, phase: Phase) -> MigrationStats {
        let s = MigrationStats::default();
        s.started_at.store(now, Ordering::Relaxed);
        s.phase_changed(None, phase, now);
        s
    }

    /// Notes a phase change (or the first phase): entering a phase whose
    /// issuer signs RS256 starts the window after which no unseen HS256 token
    /// can still be valid; going back to an HS256-signing phase ends it.
    pub(crate) fn phase_changed(&self, old: Option<Phase>, new: Phase, now: u64) {
        let was_rs = old.is_some_and(|p| p.signs() == Alg::Rs256);
        match (was_rs, new.signs()) {
            (false, Alg::Rs256) => self.rs256_since.store(now.max(1), Ordering::Relaxed),
            (_, Alg::Hs256) => self.rs256_since.store(0, Ordering::Relaxed),
            (true, Alg::Rs256) => {}
        }
    }

    pub(crate) fn accepted(&self, alg: Alg, exp: u64, now: u64) {
        self.accepted[slot(Some(alg))].fetch_add(1, Ordering::Relaxed);
        if alg == Alg::Hs256 {
            self.last_hs256_accepted.fetch_max(now, Ordering::Relaxed);
            self.latest_hs256_exp.fetch_max(exp, Ordering::Relaxed);
        }
    }

    pub(crate) fn legacy_accepted(&self, loosened: Loosenings) {
        self.legacy_accepted.fetch_add(1, Ordering::Relaxed);
        for l in loosened.iter() {
            self.legacy_by[l.index()].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// What `/migration` says about a configured legacy profile.
    pub fn legacy_report(&self, profile: &VerifierLegacy) -> LegacyReport {
        let by = |l: Loosening| self.legacy_by[l.index()].load(Ordering::Relaxed);
        LegacyReport {
            issuers: profile.issuers.clone(),
            audience_required: profile.audience_required,
            subject_claim: profile.subject_claim.clone(),
            scope_claim: profile.scope_claim.clone(),
            secret_files: profile.secret_files.len(),
            accepted: self.legacy_accepted.load(Ordering::Relaxed),
            accepted_by_loosening: LooseningCounts {
                issuers: by(Loosening::Issuers),
                audience_required: by(Loosening::AudienceRequired),
                subject_claim: by(Loosening::SubjectClaim),
                scope_claim: by(Loosening::ScopeClaim),
                secret_files: by(Loosening::SecretFiles),
            },
        }
    }

    pub(crate) fn rejected(&self, alg: Option<Alg>) {
        self.rejected[slot(alg)].fetch_add(1, Ordering::Relaxed);
    }

    /// The report, as of `now`. `max_lifetime` and `leeway` are the
    /// verifier's claim rules: no HS256 token it would accept outlives them.
    pub fn report(
        &self,
        phase: Phase,
        accept: AcceptSet,
        now: u64,
        max_lifetime: u64,
        leeway: u64,
    ) -> MigrationReport {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let nonzero = |v: u64| (v != 0).then_some(v);
        let last_hs = nonzero(load(&self.last_hs256_accepted));
        let latest_exp = nonzero(load(&self.latest_hs256_exp));
        let rs_since = nonzero(load(&self.rs256_since));
        // Every HS256 token seen here is dead after `latest_exp + leeway`; one
        // minted before this verifier entered an RS256-signing phase, and not
        // seen yet, is dead at the latest `rs_since + max_lifetime + leeway`.
        let seen_until = latest_exp.map(|e| e.saturating_add(leeway));
        let unseen_until = rs_since.map(|t| t.saturating_add(max_lifetime).saturating_add(leeway));
        let hs256_valid_until = match phase.signs() {
            Alg::Hs256 => None,
            Alg::Rs256 => seen_until.max(unseen_until),
        };
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
            match (seen_until, unseen_until) {
                (Some(until), _) if until > now => (
                    false,
                    format!(
                        "an accepted HS256 token is valid for {} more seconds",
                        until - now
                    ),
                ),
                (_, Some(until)) if until > now => (
                    false,
                    format!(
                        "an HS256 token minted before this verifier entered phase {phase} may be \
                         valid for {} more seconds (max_token_lifetime plus leeway)",
                        until - now
                    ),
                ),
                (Some(_), _) => (
                    true,
                    "every HS256 token this verifier accepted has expired, and so has any \
                     minted before it entered an RS256 phase"
                        .to_owned(),
                ),
                (None, _) => (
                    true,
                    "no HS256 token accepted, and any minted before this verifier entered an \
                     RS256 phase has expired"
                        .to_owned(),
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
            hs256_valid_until_unix: hs256_valid_until,
            since_unix: load(&self.started_at),
            ready_for_asymmetric: ready,
            reason,
            hs256_secret_weak: false,
            legacy_profile: None,
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
    /// After this, no HS256 token this verifier would accept can be valid:
    /// the later of `latest_hs256_exp_unix` and the time it entered an
    /// RS256-signing phase, each plus the claim rules' lifetime and leeway.
    /// `None` while the issuer signs HS256.
    pub hs256_valid_until_unix: Option<u64>,
    /// Start of the counts.
    pub since_unix: u64,
    /// Whether phase `asymmetric` can be entered without rejecting a valid token seen here.
    pub ready_for_asymmetric: bool,
    /// Why (not).
    pub reason: String,
    /// Whether a loaded HS256 secret is shorter than 32 bytes
    /// (`allow_weak_hs256_secret`).
    pub hs256_secret_weak: bool,
    /// The legacy profile in force (`[verifier.legacy]`), and what it let
    /// through; `null` when none is (absent, or phase `asymmetric`).
    pub legacy_profile: Option<LegacyReport>,
}

/// The legacy profile as `/migration` lists it: each loosened check, and
/// how many HS256 tokens relied on it since start. A loosening whose count
/// stays at 0 for a token lifetime can be turned off.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct LegacyReport {
    /// Extra `iss` values accepted on HS256 tokens (`""`: none needed).
    pub issuers: Vec<String>,
    /// Whether `aud` is required on HS256 tokens.
    pub audience_required: bool,
    /// The claim the subject is read from.
    pub subject_claim: String,
    /// The claim the scopes are read from.
    pub scope_claim: String,
    /// How many extra secrets are tried after `hs256_secret_file`.
    pub secret_files: usize,
    /// HS256 tokens accepted only through the profile.
    pub accepted: u64,
    /// The same, per loosening relied on (a token may count under several).
    pub accepted_by_loosening: LooseningCounts,
}

/// Acceptances per loosening, named by the config key that loosens.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct LooseningCounts {
    /// A listed `iss`, or none.
    pub issuers: u64,
    /// No `aud`.
    pub audience_required: u64,
    /// The subject from `subject_claim`, or a number.
    pub subject_claim: u64,
    /// The scopes from `scope_claim`, or an array.
    pub scope_claim: u64,
    /// The signature under an extra secret.
    pub secret_files: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIFETIME: u64 = 900;
    const LEEWAY: u64 = 30;

    fn ready(s: &MigrationStats, phase: Phase, now: u64) -> MigrationReport {
        s.report(phase, phase.default_accept(), now, LIFETIME, LEEWAY)
    }

    #[test]
    fn ready_only_once_every_accepted_hs256_token_expired() {
        let s = MigrationStats::new(1_000, Phase::Dual);
        assert!(!ready(&s, Phase::Dual, 1_000).ready_for_asymmetric);
        s.phase_changed(Some(Phase::Dual), Phase::Transition, 1_000);
        s.accepted(Alg::Hs256, 3_000, 1_100);
        let r = ready(&s, Phase::Transition, 1_500);
        assert!(!r.ready_for_asymmetric, "{}", r.reason);
        assert_eq!(r.latest_hs256_exp_unix, Some(3_000));
        assert_eq!(r.hs256_valid_until_unix, Some(3_030));
        assert_eq!(r.counts.hs256.accepted, 1);
        assert!(!ready(&s, Phase::Transition, 3_029).ready_for_asymmetric);
        assert!(ready(&s, Phase::Transition, 3_030).ready_for_asymmetric);
    }

    #[test]
    fn not_ready_right_after_start_or_switch_though_no_hs256_was_seen() {
        // Started in transition: HS256 tokens minted before the start may
        // still be valid, though this process has not seen one.
        let s = MigrationStats::new(10_000, Phase::Transition);
        let r = ready(&s, Phase::Transition, 10_001);
        assert!(!r.ready_for_asymmetric, "{}", r.reason);
        assert!(r.reason.contains("minted before"), "{}", r.reason);
        assert_eq!(r.hs256_valid_until_unix, Some(10_000 + LIFETIME + LEEWAY));
        assert!(!ready(&s, Phase::Transition, 10_929).ready_for_asymmetric);
        assert!(ready(&s, Phase::Transition, 10_930).ready_for_asymmetric);

        // Back to dual and forward again: the window starts over.
        s.phase_changed(Some(Phase::Transition), Phase::Dual, 20_000);
        assert_eq!(ready(&s, Phase::Dual, 20_000).hs256_valid_until_unix, None);
        s.phase_changed(Some(Phase::Dual), Phase::Transition, 20_100);
        assert!(!ready(&s, Phase::Transition, 20_500).ready_for_asymmetric);
        assert!(ready(&s, Phase::Transition, 21_030).ready_for_asymmetric);
        // transition -> transition (a reload of other settings) keeps it.
        s.phase_changed(Some(Phase::Transition), Phase::Transition, 21_031);
        assert!(ready(&s, Phase::Transition, 21_031).ready_for_asymmetric);
    }
}
