//! What `/migration` reports: per-algorithm counts since start, the last
//! accepted HS256 token, and whether it is safe to move to phase `asymmetric`.

use std::sync::atomic::{AtomicU64, Ordering};

use keyshift_core::config::VerifierLegacy;
use keyshift_core::{AcceptSet, Alg, Phase};

use crate::authority::{IssuerStatus, IssuerView};
use crate::error::AlgLabel;
use crate::legacy::{Loosening, Loosenings};
use crate::stragglers::Straggler;
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
    /// can still be valid; going back to an HS256-signing phase ends it. A
    /// start in `asymmetric` opens no window: the start was checked against
    /// the issuer's answer, and without one this verifier cannot know more.
    pub(crate) fn phase_changed(&self, old: Option<Phase>, new: Phase, now: u64) {
        let was_rs = old.is_some_and(|p| p.signs() == Alg::Rs256);
        match (old, was_rs, new.signs()) {
            (None, _, _) if new == Phase::Asymmetric => {
                self.rs256_since.store(0, Ordering::Relaxed)
            }
            (_, false, Alg::Rs256) => self.rs256_since.store(now.max(1), Ordering::Relaxed),
            (_, _, Alg::Hs256) => self.rs256_since.store(0, Ordering::Relaxed),
            (_, true, Alg::Rs256) => {}
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

    /// The report, as of `now`: the counts, and readiness for phase
    /// `asymmetric` from this verifier's observations and the issuer's
    /// answer (see [`assess`]).
    pub fn report(&self, input: ReportInput<'_>) -> MigrationReport {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let nonzero = |v: u64| (v != 0).then_some(v);
        let last_hs = nonzero(load(&self.last_hs256_accepted));
        let latest_exp = nonzero(load(&self.latest_hs256_exp));
        let assessment = assess(&Observed {
            phase: input.phase,
            now: input.now,
            max_lifetime: input.max_lifetime,
            leeway: input.leeway,
            seen_hs256_exp: latest_exp,
            unseen_since: nonzero(load(&self.rs256_since)),
            issuer: input.issuer,
        });
        let per_alg = |i: usize| AlgCounts {
            accepted: load(&self.accepted[i]),
            rejected: load(&self.rejected[i]),
        };
        MigrationReport {
            phase: input.phase,
            accepted_algorithms: input.accept.iter().map(Alg::as_str).collect(),
            counts: Counts {
                hs256: per_alg(0),
                rs256: per_alg(1),
                other: per_alg(2),
            },
            last_hs256_accepted_unix: last_hs,
            latest_hs256_exp_unix: latest_exp,
            hs256_valid_until_unix: assessment.hs256_valid_until,
            since_unix: load(&self.started_at),
            ready_for_asymmetric: assessment.ready,
            reason: assessment.reason,
            readiness_basis: assessment.basis,
            issuer: None,
            forced: None,
            stragglers: Vec::new(),
            legacy_clients: Vec::new(),
            hs256_secret_weak: false,
            legacy_profile: None,
        }
    }
}

/// What [`MigrationStats::report`] needs besides the counters.
#[derive(Debug, Clone, Copy)]
pub struct ReportInput<'a> {
    /// This verifier's phase.
    pub phase: Phase,
    /// Its accepted algorithms.
    pub accept: AcceptSet,
    /// Now (unix seconds).
    pub now: u64,
    /// Its `max_token_lifetime` (seconds): no HS256 token it accepts lives longer.
    pub max_lifetime: u64,
    /// Its `leeway` (seconds): it accepts a token this long after its `exp`.
    pub leeway: u64,
    /// The issuer's answer, or why there is none.
    pub issuer: &'a IssuerView,
}

/// Everything readiness is decided from; see [`assess`].
#[derive(Debug, Clone)]
pub struct Observed<'a> {
    /// This verifier's phase.
    pub phase: Phase,
    /// Now (unix seconds).
    pub now: u64,
    /// Its `max_token_lifetime` (seconds).
    pub max_lifetime: u64,
    /// Its `leeway` (seconds).
    pub leeway: u64,
    /// The latest `exp` of an HS256 token it accepted.
    pub seen_hs256_exp: Option<u64>,
    /// Since when it has been in a phase whose issuer signs RS256 (`None`:
    /// an HS256-signing phase, or started in `asymmetric`).
    pub unseen_since: Option<u64>,
    /// The issuer's answer, or why there is none.
    pub issuer: &'a IssuerView,
}

/// Whose word readiness rests on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Basis {
    /// The issuer's `/migration` answer and this verifier's observations.
    IssuerAndVerifier,
    /// This verifier's observations only (the issuer did not answer): tokens
    /// minted before it entered an RS256 phase are assumed to live
    /// `max_token_lifetime`.
    VerifierOnly,
}

/// The verdict on phase `asymmetric`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assessment {
    /// Whether no HS256 token this verifier would accept can still be valid.
    pub ready: bool,
    /// Why (not), naming what is still valid and until when, or the fault.
    pub reason: String,
    /// After this instant no HS256 token it would accept is valid; `None`
    /// while an issuer signs HS256 (no end yet).
    pub hs256_valid_until: Option<u64>,
    /// Whose word it rests on.
    pub basis: Basis,
}

/// Decides readiness for phase `asymmetric`. The later of every bound that
/// applies decides, and the reason names that one: an HS256 token this
/// verifier accepted (its `exp`), the issuer's last HS256 token (its
/// answer), or, without an answer, one minted before this verifier entered
/// an RS256 phase and not seen yet (`max_token_lifetime`); each plus
/// `leeway`. In phase `asymmetric` the same verdict says whether the switch
/// was premature: it stays false, naming the tokens being refused, until
/// they have expired.
pub fn assess(o: &Observed<'_>) -> Assessment {
    let (answer, basis, unknown_why) = match o.issuer {
        IssuerView::Answered(a) => (Some(a), Basis::IssuerAndVerifier, None),
        IssuerView::Unknown(why) => (None, Basis::VerifierOnly, Some(why.as_str())),
    };
    let too_early = if o.phase == Phase::Asymmetric {
        "phase asymmetric was entered too early, HS256 tokens still valid are refused: "
    } else {
        ""
    };
    let signs = answer.map_or(o.phase.signs(), |a| a.signs);
    if signs == Alg::Hs256 {
        let reason = match (answer, unknown_why) {
            (Some(a), _) => format!(
                "{too_early}the issuer (phase {}) still signs HS256; move it to phase transition first",
                a.phase
            ),
            (None, why) => format!(
                "{too_early}phase {}: the issuer signs HS256 in this phase (its /migration gave no answer: {}); move to phase transition first",
                o.phase,
                why.unwrap_or("")
            ),
        };
        return Assessment {
            ready: false,
            reason,
            hs256_valid_until: None,
            basis,
        };
    }
    let plus_leeway = |t: u64| t.saturating_add(o.leeway);
    let mut bounds: Vec<(u64, String)> = Vec::new();
    if let Some(exp) = o.seen_hs256_exp {
        bounds.push((
            plus_leeway(exp),
            "an HS256 token this verifier accepted".to_owned(),
        ));
    }
    match answer {
        Some(a) => {
            if let Some(until) = a.hs256_valid_until_unix {
                bounds.push((
                    plus_leeway(until),
                    format!("the issuer's last HS256 token (its phase: {})", a.phase),
                ));
            }
        }
        None => {
            if let Some(since) = o.unseen_since {
                bounds.push((
                    plus_leeway(since.saturating_add(o.max_lifetime)),
                    format!(
                        "an HS256 token minted before this verifier entered phase {} and not seen yet                          (max_token_lifetime plus leeway; the issuer's /migration would tell exactly,                          but gave no answer: {})",
                        o.phase.max(Phase::Transition),
                        unknown_why.unwrap_or("")
                    ),
                ));
            }
        }
    }
    let latest = bounds.into_iter().max_by_key(|(t, _)| *t);
    let until = latest.as_ref().map(|(t, _)| *t);
    match latest {
        Some((t, which)) if t > o.now => Assessment {
            ready: false,
            reason: format!(
                "{too_early}{which} is valid until {t} ({} more seconds)",
                t - o.now
            ),
            hs256_valid_until: until,
            basis,
        },
        _ => {
            let whose = match basis {
                Basis::IssuerAndVerifier => {
                    "by the issuer's record and this verifier's observations"
                }
                Basis::VerifierOnly => {
                    "by this verifier's observations (the issuer's /migration gave no answer)"
                }
            };
            let reason = if o.phase == Phase::Asymmetric {
                format!("in phase asymmetric, and no HS256 token can still be valid, {whose}")
            } else {
                format!("no HS256 token can still be valid, {whose}")
            };
            Assessment {
                ready: true,
                reason,
                hs256_valid_until: until,
                basis,
            }
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

/// The JSON of `GET /migration`. Top-level fields are this verifier's own;
/// `issuer` holds the issuer's answer, every field of it the issuer's.
#[derive(Debug, Clone, Serialize)]
pub struct MigrationReport {
    /// This verifier's phase.
    pub phase: Phase,
    /// The algorithms this verifier accepts.
    pub accepted_algorithms: Vec<&'static str>,
    /// Counts since start.
    pub counts: Counts,
    /// Last HS256 acceptance.
    pub last_hs256_accepted_unix: Option<u64>,
    /// After this, no HS256 token this verifier accepted is valid.
    pub latest_hs256_exp_unix: Option<u64>,
    /// After this, no HS256 token this verifier would accept can be valid:
    /// the latest of `latest_hs256_exp_unix`, the issuer's
    /// `hs256_valid_until_unix` (or, without its answer, the time this
    /// verifier entered an RS256-signing phase plus `max_token_lifetime`),
    /// each plus `leeway`. `None` while the issuer signs HS256.
    pub hs256_valid_until_unix: Option<u64>,
    /// Start of the counts.
    pub since_unix: u64,
    /// Whether phase `asymmetric` can be entered (or, in it, was entered)
    /// without refusing a valid HS256 token.
    pub ready_for_asymmetric: bool,
    /// Why (not).
    pub reason: String,
    /// Whose word readiness rests on.
    pub readiness_basis: Basis,
    /// The issuer's `/migration` as last seen (its fields are the issuer's).
    pub issuer: Option<IssuerStatus>,
    /// Set when this verifier entered `asymmetric` by `force_phase` while
    /// not ready.
    pub forced: Option<Forced>,
    /// Clients whose tokens were refused as `alg_disabled`, most recent
    /// first (unverified claims; see [`crate::stragglers`]).
    pub stragglers: Vec<Straggler>,
    /// Clients whose HS256 tokens passed only through the legacy profile,
    /// most recent first (bounded like `stragglers`; `alg` is HS256, `count`
    /// counts acceptances): who still mints the old shape.
    pub legacy_clients: Vec<Straggler>,
    /// Whether a loaded HS256 secret is shorter than 32 bytes
    /// (`allow_weak_hs256_secret`).
    pub hs256_secret_weak: bool,
    /// The legacy profile in force (`[verifier.legacy]`), and what it let
    /// through; `null` when none is (absent, or phase `asymmetric`).
    pub legacy_profile: Option<LegacyReport>,
}

/// A switch into phase `asymmetric` made by `force_phase` while not ready.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Forced {
    /// When.
    pub at_unix: u64,
    /// Readiness's reason at that moment.
    pub reason: String,
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
    use keyshift_core::migration::IssuerMigration;

    const LIFETIME: u64 = 900;
    const LEEWAY: u64 = 30;

    fn unknown() -> IssuerView {
        IssuerView::Unknown("connection refused".into())
    }

    fn issuer(phase: Phase, valid_until: Option<u64>) -> IssuerView {
        IssuerView::Answered(IssuerMigration {
            service: "issuer".into(),
            phase,
            signs: phase.signs(),
            hs256_last_issued_unix: valid_until.map(|t| t - 900),
            hs256_valid_until_unix: valid_until,
            tracked_since_unix: 1,
        })
    }

    fn report(s: &MigrationStats, phase: Phase, now: u64, issuer: &IssuerView) -> MigrationReport {
        s.report(ReportInput {
            phase,
            accept: phase.default_accept(),
            now,
            max_lifetime: LIFETIME,
            leeway: LEEWAY,
            issuer,
        })
    }

    fn ready(s: &MigrationStats, phase: Phase, now: u64) -> MigrationReport {
        report(s, phase, now, &unknown())
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
        assert_eq!(r.readiness_basis, Basis::VerifierOnly);
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

    #[test]
    fn the_reason_names_the_latest_bound_with_its_own_seconds() {
        // An accepted token valid 204 s more, an unseen window 329 s more:
        // the verdict and the reason are the window's (finding 4 of issue 12).
        let s = MigrationStats::new(10_000, Phase::Transition);
        let now = 10_000 + LIFETIME + LEEWAY - 329;
        s.accepted(Alg::Hs256, now + 204 - LEEWAY, now);
        let r = ready(&s, Phase::Transition, now);
        assert_eq!(r.hs256_valid_until_unix, Some(now + 329));
        assert!(r.reason.contains("329 more seconds"), "{}", r.reason);
        assert!(r.reason.contains("minted before"), "{}", r.reason);
        // The other way round, the accepted token's bound is named.
        s.accepted(Alg::Hs256, now + 500 - LEEWAY, now);
        let r = ready(&s, Phase::Transition, now);
        assert!(r.reason.contains("500 more seconds"), "{}", r.reason);
        assert!(r.reason.contains("this verifier accepted"), "{}", r.reason);
    }

    #[test]
    fn the_issuers_answer_replaces_the_unseen_window() {
        let s = MigrationStats::new(10_000, Phase::Transition);
        // The issuer's last HS256 token is valid until 10_100: with its
        // answer, the verifier need not wait max_token_lifetime.
        let answer = issuer(Phase::Transition, Some(10_100));
        let r = report(&s, Phase::Transition, 10_050, &answer);
        assert!(!r.ready_for_asymmetric);
        assert!(
            r.reason.contains("the issuer's last HS256 token"),
            "{}",
            r.reason
        );
        assert_eq!(r.hs256_valid_until_unix, Some(10_130));
        let r = report(&s, Phase::Transition, 10_130, &answer);
        assert!(r.ready_for_asymmetric, "{}", r.reason);
        assert_eq!(r.readiness_basis, Basis::IssuerAndVerifier);
        // ... but never a token this verifier saw.
        s.accepted(Alg::Hs256, 10_500, 10_130);
        assert!(!report(&s, Phase::Transition, 10_130, &answer).ready_for_asymmetric);

        // The issuer still signs HS256, whatever this verifier's phase says.
        let dual = issuer(Phase::Dual, Some(10_900));
        let r = report(&s, Phase::Transition, 99_999, &dual);
        assert!(!r.ready_for_asymmetric);
        assert!(
            r.reason
                .contains("the issuer (phase dual) still signs HS256"),
            "{}",
            r.reason
        );
        assert_eq!(r.hs256_valid_until_unix, None);
    }

    #[test]
    fn a_premature_switch_stays_not_ready_and_says_so() {
        let s = MigrationStats::new(10_000, Phase::Dual);
        s.phase_changed(Some(Phase::Dual), Phase::Asymmetric, 10_007);
        // The issuer still signs HS256: its fresh tokens are being refused.
        let r = report(
            &s,
            Phase::Asymmetric,
            10_010,
            &issuer(Phase::Dual, Some(10_900)),
        );
        assert!(!r.ready_for_asymmetric);
        assert!(
            r.reason
                .starts_with("phase asymmetric was entered too early"),
            "{}",
            r.reason
        );
        // Without the issuer's answer: the window since the switch.
        let r = report(&s, Phase::Asymmetric, 10_010, &unknown());
        assert!(!r.ready_for_asymmetric, "{}", r.reason);
        assert!(r.reason.contains("too early"), "{}", r.reason);
        assert!(
            report(
                &s,
                Phase::Asymmetric,
                10_007 + LIFETIME + LEEWAY,
                &unknown()
            )
            .ready_for_asymmetric
        );

        // Started in asymmetric (a checked start): nothing to wait for.
        let fresh = MigrationStats::new(10_000, Phase::Asymmetric);
        let r = report(&fresh, Phase::Asymmetric, 10_000, &unknown());
        assert!(r.ready_for_asymmetric, "{}", r.reason);
        assert!(r.reason.contains("gave no answer"), "{}", r.reason);
    }
}
