//! One phase's figures from what goose saw, the services' `/metrics`
//! before and after, the harness's own counts and the events.

use std::time::Duration;

use keyshift_core::Phase;

use crate::capacity;
use crate::drive::Sent;
use crate::events::EventsReport;
use crate::pool::Kind;
use crate::prom::{self, Samples};
use crate::proxy::ProxyCounts;
use crate::report::{IssuerSummary, LegacySummary, PhaseSummary, PoolSummary};
use crate::token::MintCounts;
use crate::token_traffic::TokenCounts;

/// How often the verifier's background refresher looks at the JWKS (it
/// fetches at most once per look; keyshift-verifier's `run_refresher`).
pub const REFRESH_TICK: Duration = Duration::from_secs(1);
/// Fetches the bound allows beyond its terms (one look or refetch straddling
/// each end of the window).
pub const FETCH_SLACK: u64 = 2;

/// Everything one phase produced.
#[derive(Debug)]
pub struct PhaseInput<'a> {
    /// The phase.
    pub phase: Phase,
    /// Goose users.
    pub users: usize,
    /// Goose's tally.
    pub sent: &'a Sent,
    /// Time between the verifier scrapes.
    pub window: Duration,
    /// Verifier `/metrics` before.
    pub verifier_before: &'a Samples,
    /// Verifier `/metrics` after.
    pub verifier_after: &'a Samples,
    /// Issuer `/metrics` before.
    pub issuer_before: &'a Samples,
    /// Issuer `/metrics` after.
    pub issuer_after: &'a Samples,
    /// The harness's token requests between the issuer scrapes.
    pub mints: MintCounts,
    /// The soak's background token requests between them.
    pub background: Option<TokenCounts>,
    /// The pool.
    pub pool: PoolSummary,
    /// Rotation and outage.
    pub events: EventsReport,
    /// Whether attack traffic ran.
    pub attack: bool,
    /// SIGHUPs to the verifier since just before the window.
    pub verifier_sighups: u64,
    /// What the JWKS proxy served in the window (managed mode).
    pub proxy: Option<ProxyCounts>,
    /// The verifier's unknown-kid cooldown.
    pub unknown_kid_cooldown: Duration,
    /// Notes.
    pub notes: Vec<String>,
    /// Verifier RSS.
    pub rss_kib: Option<u64>,
    /// `(target, objective)`.
    pub capacity: Option<(f64, Option<f64>)>,
    /// Whether a legacy issuer's tokens were mixed in (`--legacy-issuer`).
    pub legacy: bool,
}

/// The most JWKS fetches a window of `window` may hold: one per refresher
/// look, one unknown-kid refetch per cooldown (however many random kids the
/// attack sends), one per rotation (the new kid's first sight) and per
/// SIGHUP (each forces one), plus [`FETCH_SLACK`]. A zero cooldown bounds
/// nothing (`u64::MAX`).
pub fn jwks_fetch_bound(window: Duration, cooldown: Duration, rotations: u64, sighups: u64) -> u64 {
    if cooldown.is_zero() {
        return u64::MAX;
    }
    let s = window.as_secs_f64();
    let scheduled = (s / REFRESH_TICK.as_secs_f64()).ceil() as u64 + 1;
    let unknown = (s / cooldown.as_secs_f64()).ceil() as u64 + 1;
    scheduled + unknown + rotations + sighups + FETCH_SLACK
}

/// The phase's summary (its `problems` are left for [`crate::check`]).
pub fn summarize(input: PhaseInput<'_>) -> PhaseSummary {
    let PhaseInput {
        phase,
        users,
        sent,
        window,
        verifier_before: vb,
        verifier_after: va,
        issuer_before: ib,
        issuer_after: ia,
        mints,
        background,
        pool,
        events,
        attack,
        verifier_sighups,
        proxy,
        unknown_kid_cooldown,
        notes,
        rss_kib,
        capacity,
        legacy,
    } = input;
    let (requests, legitimate_requests) = sent.answered_totals();
    let expected_rejections: u64 = sent
        .kinds
        .iter()
        .filter(|(k, _)| !k.legitimate())
        .map(|(_, c)| c.ok)
        .sum();
    let failed: u64 = sent.kinds.values().map(|c| c.failed).sum();
    // The soak's intended 503s (during the JWKS outage) are no failure.
    let server_errors: u64 = sent
        .kinds
        .values()
        .map(|c| c.server_errors.saturating_sub(c.outage_503))
        .sum();
    let seconds = sent.seconds.max(1e-3);
    let legitimate_rps = legitimate_requests as f64 / seconds;
    let p99 = sent.legitimate.p99_ms;

    let mut events_ran = Vec::new();
    if attack {
        events_ran.push("attack".to_owned());
    }
    if events.rotation.is_some() {
        events_ran.push("rotation".to_owned());
    }
    if events.outage.is_some() {
        events_ran.push("jwks_outage".to_owned());
    }
    let rotations = u64::from(events.rotation.is_some());

    PhaseSummary {
        phase,
        duration_s: sent.seconds,
        window_s: window.as_secs_f64(),
        users,
        requests,
        rps: requests as f64 / seconds,
        legitimate_requests,
        legitimate_rps,
        p50_ms: sent.legitimate.p50_ms,
        p95_ms: sent.legitimate.p95_ms,
        p99_ms: p99,
        max_ms: sent.max_ms,
        sent: sent
            .kinds
            .iter()
            .filter(|(_, c)| c.sent + c.ok + c.failed > 0)
            .map(|(k, c)| (k.name().to_owned(), *c))
            .collect(),
        outcomes: prom::deltas_by(vb, va, prom::VERIFY_TOTAL, &["alg", "outcome"]),
        expected_rejections,
        // Rows goose counted under no name of ours would be requests the harness cannot judge.
        unexpected: failed.max(server_errors) + sent.foreign_requests,
        problems: Vec::new(),
        key_cache_hit_rate: prom::hit_rate(vb, va, prom::KEY_CACHE),
        token_cache_hit_rate: prom::hit_rate(vb, va, prom::TOKEN_CACHE),
        jwks_fetches: prom::delta_where(vb, va, prom::JWKS_FETCH, &[]).round() as u64,
        jwks_fetch_errors: prom::delta_where(vb, va, prom::JWKS_FETCH, &[("outcome", "error")])
            .round() as u64,
        jwks_fetch_bound: jwks_fetch_bound(
            window,
            unknown_kid_cooldown,
            rotations,
            verifier_sighups,
        ),
        verifier_sighups,
        jwks_proxy: proxy,
        issuer: IssuerSummary {
            tokens_issued: prom::deltas_by(ib, ia, prom::TOKENS_ISSUED, &["alg"]),
            token_requests: prom::deltas_by(ib, ia, prom::TOKEN_REQUESTS, &["outcome"]),
            harness_mint_attempts: mints.attempts,
            harness_minted: mints.issued,
            background,
        },
        pool,
        events: events_ran,
        rotation: events.rotation,
        outage: events.outage,
        notes,
        verifier_rss_kib: rss_kib,
        capacity: capacity.and_then(|(target, objective)| {
            capacity::plan(target, legitimate_rps, p99, objective, users)
        }),
        legacy: legacy.then(|| legacy_summary(sent, vb, va)),
        gateway: None,
    }
}

/// The legacy issuer's tokens of a phase: goose's answers to both legacy
/// kinds, and the loosenings the verifier counted.
pub fn legacy_summary(sent: &Sent, vb: &Samples, va: &Samples) -> LegacySummary {
    let count = |k: Kind| sent.kinds.get(&k).copied().unwrap_or_default();
    let (pass, refused) = (count(Kind::Legacy), count(Kind::LegacyRefused));
    LegacySummary {
        sent: pass.sent + refused.sent,
        accepted: pass.ok,
        expected_rejections: refused.ok,
        unexpected_rejections: pass.failed,
        unexpected_other: refused.failed,
        loosenings: prom::deltas_by(vb, va, prom::VERIFY_LEGACY, &["loosening"]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drive::{Latency, SentCount};

    fn sent() -> Sent {
        let mut s = Sent {
            seconds: 10.0,
            legitimate: Latency {
                p50_ms: 1.0,
                p95_ms: 2.0,
                p99_ms: 3.0,
                max_ms: 4.0,
            },
            max_ms: 9.0,
            ..Sent::default()
        };
        let c = |sent, ok, failed| SentCount {
            sent,
            ok,
            failed,
            server_errors: 0,
            outage_503: 0,
        };
        s.kinds.insert(Kind::Rs256, c(905, 900, 0));
        s.kinds.insert(Kind::Straggler, c(50, 50, 0));
        s.kinds.insert(Kind::Attack, c(20, 19, 1));
        s.kinds.insert(Kind::NewKid, c(0, 0, 0));
        s
    }

    fn input<'a>(
        sent: &'a Sent,
        vb: &'a Samples,
        va: &'a Samples,
        ib: &'a Samples,
        ia: &'a Samples,
    ) -> PhaseInput<'a> {
        PhaseInput {
            phase: Phase::Asymmetric,
            users: 4,
            sent,
            window: Duration::from_secs(10),
            verifier_before: vb,
            verifier_after: va,
            issuer_before: ib,
            issuer_after: ia,
            mints: MintCounts {
                attempts: 41,
                issued: 41,
            },
            background: None,
            pool: PoolSummary::default(),
            events: EventsReport::default(),
            attack: true,
            verifier_sighups: 1,
            proxy: Some(ProxyCounts {
                requests: 12,
                served_503: 0,
                served_502: 1,
            }),
            unknown_kid_cooldown: Duration::from_secs(30),
            notes: vec![],
            rss_kib: None,
            capacity: Some((10_000.0, Some(5.0))),
            legacy: false,
        }
    }

    #[test]
    fn outcomes_are_keyed_by_alg_and_outcome_from_the_labels() {
        let s = sent();
        let vb = prom::parse(
            "keyshift_verify_total{alg=\"RS256\",outcome=\"accepted\"} 100\nkeyshift_jwks_fetch_total{outcome=\"ok\"} 4\n",
        );
        let va = prom::parse(concat!(
            "keyshift_verify_total{alg=\"RS256\",outcome=\"accepted\"} 1000\n",
            "keyshift_verify_total{outcome=\"alg_disabled\",alg=\"HS256\"} 50\n",
            "keyshift_verify_total{alg=\"RS256\",outcome=\"unknown_kid\"} 20\n",
            "keyshift_verify_total{alg=\"other\",outcome=\"malformed\"} 0\n",
            "keyshift_token_cache_total{result=\"hit\"} 800\n",
            "keyshift_token_cache_total{result=\"miss\"} 200\n",
            "keyshift_jwks_fetch_total{outcome=\"ok\"} 14\n",
            "keyshift_jwks_fetch_total{outcome=\"error\"} 2\n",
        ));
        let ib = prom::parse("keyshift_tokens_issued_total{alg=\"RS256\",client=\"svc-00\"} 5\n");
        let ia = prom::parse(concat!(
            "keyshift_tokens_issued_total{alg=\"RS256\",client=\"svc-00\"} 26\n",
            "keyshift_tokens_issued_total{alg=\"RS256\",client=\"svc-01\"} 20\n",
            "keyshift_token_requests_total{outcome=\"issued\"} 41\n",
        ));
        let p = summarize(input(&s, &vb, &va, &ib, &ia));
        assert_eq!(p.outcomes.get("RS256/accepted"), Some(&900));
        assert_eq!(p.outcomes.get("HS256/alg_disabled"), Some(&50));
        assert_eq!(p.outcomes.get("RS256/unknown_kid"), Some(&20));
        assert_eq!(p.outcomes.len(), 3, "zero deltas are left out");
        assert_eq!(p.token_cache_hit_rate, Some(0.8));
        assert_eq!(p.key_cache_hit_rate, None);
        assert_eq!((p.jwks_fetches, p.jwks_fetch_errors), (12, 2));
        assert_eq!(
            p.issuer.tokens_issued.get("RS256"),
            Some(&41),
            "summed over clients"
        );
        assert_eq!(p.issuer.token_requests.get("issued"), Some(&41));
        assert_eq!(p.requests, 970);
        assert_eq!(p.legitimate_requests, 900);
        assert_eq!(p.expected_rejections, 69);
        assert_eq!(p.unexpected, 1);
        assert_eq!(p.legitimate_rps, 90.0);
        let c = p.capacity.expect("capacity");
        assert_eq!(c.per_instance_rps, 90.0, "expected 401s are not capacity");
        assert_eq!(c.instances, Some(112));
        assert!(
            !p.sent.contains_key(Kind::NewKid.name()),
            "unused kinds left out"
        );
        assert_eq!(p.events, vec!["attack".to_owned()]);
        assert_eq!(p.jwks_proxy.map(|c| c.served_502), Some(1));
    }

    #[test]
    fn a_service_restart_in_the_window_counts_from_zero() {
        let s = sent();
        let vb = prom::parse("keyshift_verify_total{alg=\"RS256\",outcome=\"accepted\"} 5000\n");
        let va = prom::parse("keyshift_verify_total{alg=\"RS256\",outcome=\"accepted\"} 300\n");
        let empty = Samples::new();
        let p = summarize(input(&s, &vb, &va, &empty, &empty));
        assert_eq!(p.outcomes.get("RS256/accepted"), Some(&300));
    }

    #[test]
    fn legacy_tokens_are_counted_apart_with_the_loosenings() {
        let mut s = sent();
        let c = |sent, ok, failed| SentCount {
            sent,
            ok,
            failed,
            ..SentCount::default()
        };
        s.kinds.insert(Kind::Legacy, c(100, 98, 2));
        let vb = prom::parse("keyshift_verify_legacy_total{loosening=\"issuers\"} 5\n");
        let va = prom::parse(concat!(
            "keyshift_verify_legacy_total{loosening=\"issuers\"} 70\n",
            "keyshift_verify_legacy_total{loosening=\"audience_required\"} 98\n",
        ));
        let empty = Samples::new();
        let mut i = input(&s, &vb, &va, &empty, &empty);
        i.legacy = true;
        let l = summarize(i).legacy.expect("legacy");
        assert_eq!((l.sent, l.accepted, l.unexpected_rejections), (100, 98, 2));
        assert_eq!(l.loosenings.get("issuers"), Some(&65));
        assert_eq!(l.loosenings.get("audience_required"), Some(&98));
        let p = summarize(input(&s, &vb, &va, &empty, &empty));
        assert_eq!(p.legacy, None, "off without --legacy-issuer");
        assert_eq!(
            p.legitimate_requests,
            900 + 100,
            "legacy tokens are legitimate"
        );
    }

    #[test]
    fn the_fetch_bound_adds_its_terms() {
        // 10 s: 11 looks, 1 + 1 cooldown refetches, 1 rotation, 2 SIGHUPs, slack 2.
        assert_eq!(
            jwks_fetch_bound(Duration::from_secs(10), Duration::from_secs(30), 1, 2),
            11 + 1 + 1 + 1 + 2 + 2
        );
        assert_eq!(
            jwks_fetch_bound(Duration::from_millis(6_300), Duration::from_secs(3), 0, 0),
            8 + 4 + 2
        );
        assert_eq!(
            jwks_fetch_bound(Duration::from_secs(1), Duration::ZERO, 0, 0),
            u64::MAX
        );
    }

    #[test]
    fn intended_503s_are_not_unexpected_but_other_5xx_are() {
        let mut s = sent();
        if let Some(c) = s.kinds.get_mut(&Kind::Attack) {
            // The one failed attack request, and two 503s during the outage goose counted ok.
            c.ok += 2;
            c.server_errors = 3;
            c.outage_503 = 2;
        }
        let empty = Samples::new();
        let p = summarize(input(&s, &empty, &empty, &empty, &empty));
        assert_eq!(p.unexpected, 1, "the failed one only");
        if let Some(c) = s.kinds.get_mut(&Kind::Attack) {
            c.server_errors = 5;
        }
        let p = summarize(input(&s, &empty, &empty, &empty, &empty));
        assert_eq!(p.unexpected, 3, "5xx beyond the intended ones");
    }
}
