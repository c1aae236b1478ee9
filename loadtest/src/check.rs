//! What makes a run fail, asserted on outcomes, never on speeds.
//!
//! - [`phase_problems`], for every run: goose saw every answer it expected;
//!   the verifier's `keyshift_verify_total` deltas hold exactly the outcomes
//!   the kinds sent can cause, in counts between goose's answered-as-expected
//!   and the harness's sent (e.g. no HS256 accepted in `asymmetric`, every
//!   straggler an `HS256/alg_disabled`); the issuer issued only the phase's
//!   algorithm and (managed) exactly what the harness minted; a rotation put
//!   a new kid into tokens the verifier accepted; an outage served 503s and
//!   the verifier counted a failed fetch; the harness's JWKS proxy served no
//!   502; JWKS fetches stayed within the bound. Run on the live summary; its
//!   result is stored in the phase's `problems`.
//! - [`run_problems`], for every run: the planned phases ran, hit rates are
//!   in [0, 1]; with `--quick` also: requests, token-cache and (RS256 phases)
//!   key-cache rates present, expected rejections counted, the events ran,
//!   and the pool replaced tokens when its reuse count was surely reached.
//! - [`read_report`]: the files on disk exist and parse, and
//!   `summary.json` is the summary the run computed (so the problems it
//!   stores are the ones [`phase_problems`] found).

use std::path::Path;

use anyhow::{bail, Context};
use keyshift_core::{Alg, Phase};

use crate::pool::Kind;
use crate::report::{PhaseSummary, Summary};
use crate::sut::Mode;

/// The `alg/outcome` the verifier must count for a request of `kind` in `phase`.
pub fn expected_outcome(kind: Kind, phase: Phase) -> String {
    let alg = match kind {
        Kind::Hs256 | Kind::Straggler | Kind::Legacy | Kind::LegacyRefused => Alg::Hs256,
        Kind::Rs256 | Kind::NewKid | Kind::Attack => Alg::Rs256,
        // Made from the phase's own tokens (see `pool::Mix`).
        Kind::Expired | Kind::Forged => phase.signs(),
    };
    let outcome = match (kind, phase.accepts(alg)) {
        (_, false) => "alg_disabled",
        (Kind::Attack, true) => "unknown_kid",
        (Kind::Expired, true) => "expired",
        (Kind::Forged, true) => "bad_signature",
        (_, true) => "accepted",
    };
    format!("{alg}/{outcome}")
}

/// Everything wrong with one phase.
pub fn phase_problems(p: &PhaseSummary, mode: Mode) -> Vec<String> {
    let mut problems = Vec::new();
    if p.unexpected > 0 {
        problems.push(format!(
            "{} requests not answered as expected (legitimate token rejected, wrong status, 5xx or timeout)",
            p.unexpected
        ));
    }
    let count = |k: Kind| p.sent.get(k.name()).copied().unwrap_or_default();

    // Each outcome the verifier counted must come from a kind the harness sent,
    // between goose's answered-as-expected and the harness's sent.
    let mut bounds: std::collections::BTreeMap<String, (u64, u64, Vec<&str>)> = Default::default();
    for kind in Kind::ALL {
        let c = count(kind);
        if c.sent == 0 && c.ok == 0 {
            continue;
        }
        let b = bounds
            .entry(expected_outcome(kind, p.phase))
            .or_insert((0, 0, Vec::new()));
        b.0 += c.ok;
        b.1 += c.sent.max(c.ok + c.failed);
        b.2.push(kind.name());
    }
    for (outcome, n) in &p.outcomes {
        if !bounds.contains_key(outcome) {
            let what = if outcome == "HS256/accepted" {
                format!("HS256 accepted in phase {}", p.phase)
            } else {
                "an outcome no request of the harness should cause".to_owned()
            };
            problems.push(format!("{outcome} {n}: {what}"));
        }
    }
    for (outcome, (lo, hi, kinds)) in &bounds {
        let n = p.outcomes.get(outcome).copied().unwrap_or(0);
        if n < *lo || n > *hi {
            problems.push(format!(
                "{outcome}: the verifier counted {n}, the harness's {} were answered as expected {lo} times of {hi} sent",
                kinds.join(" + ")
            ));
        }
    }
    if p.phase == Phase::Asymmetric && count(Kind::Straggler).sent > 0 {
        let n = p.outcomes.get("HS256/alg_disabled").copied().unwrap_or(0);
        if n == 0 {
            problems.push("stragglers sent but no HS256/alg_disabled counted".into());
        }
    }

    if let Some(l) = &p.legacy {
        if l.unexpected_rejections > 0 {
            problems.push(format!(
                "{} legacy-issuer token(s) refused (or unanswered) in phase {}, where [verifier.legacy] must pass them",
                l.unexpected_rejections, p.phase
            ));
        }
        if l.unexpected_other > 0 {
            problems.push(format!(
                "{} legacy-issuer token(s) not refused with 401 in phase {}",
                l.unexpected_other, p.phase
            ));
        }
        if l.accepted > 0 && l.loosenings.values().sum::<u64>() == 0 {
            problems.push(format!(
                "{} legacy-issuer tokens accepted but keyshift_verify_legacy_total did not rise: they did not go through the legacy profile",
                l.accepted
            ));
        }
    }
    if let Some(g) = &p.gateway {
        problems.extend(
            crate::gateway::problems(g)
                .into_iter()
                .map(|x| format!("gateway: {x}")),
        );
    }

    // The issuer.
    for (alg, n) in &p.issuer.tokens_issued {
        if *alg != p.phase.signs().as_str() {
            problems.push(format!(
                "the issuer issued {n} {alg} tokens in phase {}",
                p.phase
            ));
        }
    }
    let issued: u64 = p.issuer.tokens_issued.values().sum();
    let (minted, attempts) = (p.issuer.harness_minted, p.issuer.harness_mint_attempts);
    match mode {
        Mode::Managed => {
            // A soak's background requests are in the issuer's counts too
            // (exactly accounted for over the whole soak, see soak_check);
            // one of them may have been out when the window began.
            let (background, wrong_secrets) = p
                .issuer
                .background
                .map(|b| {
                    (
                        b.good.sent + b.wrong_secret.sent + 1,
                        b.wrong_secret.sent + 1,
                    )
                })
                .unwrap_or((0, 0));
            if issued < minted || issued > attempts + background {
                let theirs = if background > 0 {
                    format!(" and up to {background} background requests")
                } else {
                    String::new()
                };
                problems.push(format!(
                    "the issuer counted {issued} tokens issued, the harness received {minted} of {attempts} asked{theirs}"
                ));
            }
            let refused = |expected: bool| -> u64 {
                p.issuer
                    .token_requests
                    .iter()
                    .filter(|(k, _)| k.as_str() != "issued")
                    .filter(|(k, _)| {
                        let guesses = matches!(k.as_str(), "invalid_client" | "rate_limited");
                        (p.issuer.background.is_some() && guesses) == expected
                    })
                    .map(|(_, v)| v)
                    .sum()
            };
            if refused(false) > 0 {
                problems.push(format!(
                    "{} token requests refused by the issuer",
                    refused(false)
                ));
            }
            if refused(true) > wrong_secrets {
                problems.push(format!(
                    "{} token requests refused for bad credentials, more than the {} wrong secrets the soak sent",
                    refused(true),
                    wrong_secrets
                ));
            }
        }
        Mode::ExternalControlled | Mode::ExternalObserved => {
            if issued < minted {
                problems.push(format!(
                    "the issuer counted {issued} tokens issued, fewer than the {minted} the harness received"
                ));
            }
        }
    }
    if p.pool.replace_errors > 0 {
        problems.push(format!(
            "{} background token mints failed",
            p.pool.replace_errors
        ));
    }

    // Events.
    if let Some(r) = &p.rotation {
        if r.published_kid.is_none() {
            problems.push("rotation: no new kid appeared in the issuer's JWKS".into());
        }
        if r.signing_expected {
            // `new_kid` is only ever set to a kid outside `old_kids` (the
            // pool's first kids), and summaries are never re-checked from
            // disk, so there is no "kid is not new" case to look for.
            match &r.new_kid {
                None => problems.push("rotation: no token carried a new kid".into()),
                Some(k) if r.published_kid.as_ref() != Some(k) => problems.push(format!(
                    "rotation: tokens carry kid {k}, the JWKS published {:?}",
                    r.published_kid
                )),
                Some(_) => {}
            }
            let c = count(Kind::NewKid);
            if r.new_kid_tokens == 0 || c.ok == 0 {
                problems.push(format!(
                    "rotation: {} new-kid tokens pooled, {} accepted",
                    r.new_kid_tokens, c.ok
                ));
            }
            if c.failed > 0 {
                problems.push(format!(
                    "rotation: {} new-kid tokens not accepted",
                    c.failed
                ));
            }
        }
    }
    if let Some(o) = &p.outage {
        if o.proxy_503s == 0 {
            problems.push("JWKS outage: the proxy served no 503".into());
        }
        if !o.forced_fetch_answered {
            problems.push("JWKS outage: the forced fetch did not reach the proxy".into());
        }
        if p.jwks_fetch_errors == 0 {
            problems.push("JWKS outage: the verifier counted no failed fetch".into());
        }
    }
    if let Some(px) = &p.jwks_proxy {
        if px.served_502 > 0 {
            problems.push(format!(
                "the harness's JWKS proxy answered {} fetch(es) with 502 (issuer unreachable through it, or its body cut): the harness broke the verifier's JWKS path",
                px.served_502
            ));
        }
    }
    if p.jwks_fetches > p.jwks_fetch_bound {
        problems.push(format!(
            "{} JWKS fetches, above the bound of {}",
            p.jwks_fetches, p.jwks_fetch_bound
        ));
    }
    problems
}

/// Run-wide problems; `quick` adds the smoke run's expectations.
pub fn run_problems(s: &Summary, quick: bool) -> Vec<String> {
    let mut problems = Vec::new();
    let ran: Vec<Phase> = s.phases.iter().map(|p| p.phase).collect();
    if ran != s.planned {
        problems.push(format!(
            "phases {:?} ran, {:?} were planned",
            ran, s.planned
        ));
    }
    for p in &s.phases {
        for (name, rate) in [
            ("key-cache", p.key_cache_hit_rate),
            ("token-cache", p.token_cache_hit_rate),
        ] {
            if let Some(r) = rate {
                if !(0.0..=1.0).contains(&r) {
                    problems.push(format!("{}: {name} hit rate {r} outside [0, 1]", p.phase));
                }
            }
        }
    }
    if let Some(t) = &s.token_endpoint {
        problems.extend(crate::token_capacity::problems(t));
    }
    if !quick {
        return problems;
    }
    let managed = s.mode == Mode::Managed;
    for p in &s.phases {
        let ph = p.phase;
        if p.requests == 0 {
            problems.push(format!("{ph}: no requests"));
        }
        if p.token_cache_hit_rate.is_none() {
            problems.push(format!("{ph}: no token-cache lookups recorded"));
        }
        let rs256_sent = [Kind::Rs256, Kind::NewKid]
            .iter()
            .any(|k| p.sent.get(k.name()).is_some_and(|c| c.ok > 0));
        if rs256_sent && p.key_cache_hit_rate.is_none() {
            problems.push(format!("{ph}: RS256 tokens verified but no key-cache rate"));
        }
        let signs_rs256 = ph.signs() == Alg::Rs256;
        if managed && s.options.rotate && signs_rs256 {
            match &p.rotation {
                None => problems.push(format!("{ph}: the rotation did not run")),
                Some(r) if r.new_kid.is_none() => problems.push(format!(
                    "{ph}: the rotation produced no token with a new kid ({})",
                    r.note.as_deref().unwrap_or("no note")
                )),
                Some(_) => {}
            }
        }
        if managed && s.options.outage && signs_rs256 && p.outage.is_none() {
            problems.push(format!("{ph}: the JWKS outage did not run"));
        }
        if let Some(n) = p.pool.reuse {
            // Pigeonhole: past this many legitimate requests some slot was
            // used `n` times and must have asked for a replacement.
            let legit_sent: u64 = Kind::ALL
                .iter()
                .filter(|k| k.legitimate())
                .filter_map(|k| p.sent.get(k.name()))
                .map(|c| c.sent)
                .sum();
            let rotated = p.rotation.as_ref().map(|r| r.new_kid_tokens).unwrap_or(0);
            let capacity =
                (p.pool.slots.saturating_sub(p.pool.stragglers) as u64).saturating_add(rotated);
            let most_without_replacement = capacity.saturating_mul(n.saturating_sub(1));
            if legit_sent > most_without_replacement && p.pool.replacements_requested == 0 {
                problems.push(format!(
                    "{ph}: {legit_sent} legitimate requests over {capacity} tokens reused up to {n} times, yet no token was replaced"
                ));
            }
        }
    }
    if s.phases.iter().all(|p| p.expected_rejections == 0) {
        problems.push("no expected rejection was counted".into());
    }
    if s.options.legacy_share.is_some_and(|x| x > 0.0) {
        for p in &s.phases {
            match &p.legacy {
                None => problems.push(format!("{}: no legacy-issuer figures", p.phase)),
                Some(l) if l.sent == 0 => {
                    problems.push(format!("{}: no legacy-issuer token sent", p.phase))
                }
                Some(l) if p.phase.accepts(Alg::Hs256) && l.accepted == 0 => {
                    problems.push(format!("{}: no legacy-issuer token accepted", p.phase))
                }
                Some(l) if !p.phase.accepts(Alg::Hs256) && l.expected_rejections == 0 => {
                    problems.push(format!("{}: no legacy-issuer token refused", p.phase))
                }
                Some(_) => {}
            }
        }
    }
    if s.options.gateway_duration_s.is_some() {
        for p in &s.phases {
            match &p.gateway {
                None => problems.push(format!("{}: the gateway was not driven", p.phase)),
                Some(g) if g.requests == 0 || g.signed == 0 => problems.push(format!(
                    "{}: {} requests through the gateway, {} tokens signed",
                    p.phase, g.requests, g.signed
                )),
                Some(g) if g.signed_cache_hit_rate.is_none() => problems.push(format!(
                    "{}: no signed-token cache lookup counted by the gateway",
                    p.phase
                )),
                Some(_) => {}
            }
        }
    }
    if s.options.token_rate.is_some() {
        match &s.token_endpoint {
            None => problems.push("the token endpoint was not measured".into()),
            Some(t) => problems.extend(crate::token_capacity::quick_problems(t)),
        }
    }
    problems
}

/// Reads the report back from `dir`: `summary.json` must parse and equal
/// `expected`; `summary.md` must hold a row per phase; `chart.svg` must be
/// an SVG with each phase; `goose-<phase>.html` must be an HTML page.
pub fn read_report(dir: &Path, expected: &Summary) -> anyhow::Result<Summary> {
    let read = |name: &str| {
        let path = dir.join(name);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        if text.trim().is_empty() {
            bail!("{} is empty", path.display());
        }
        anyhow::Ok(text)
    };
    let json = read("summary.json")?;
    let parsed: Summary = serde_json::from_str(&json).context("summary.json does not parse")?;
    // Compared as text: what was written is what the run computed (a parsed
    // float may differ from the computed one in its last bit).
    if json != serde_json::to_string_pretty(expected)? {
        bail!("summary.json differs from the summary the run computed");
    }
    let md = read("summary.md")?;
    let svg = read("chart.svg")?;
    let svg = svg.trim();
    if !(svg.starts_with("<svg") && svg.ends_with("</svg>")) {
        bail!("chart.svg is not an SVG document");
    }
    if svg.matches("<rect").count() < 2 * parsed.phases.len() {
        bail!("chart.svg lacks a throughput and a p99 bar per phase");
    }
    for p in &parsed.phases {
        if !md.contains(&format!("| {} |", p.phase)) {
            bail!("summary.md has no row for {}", p.phase);
        }
        if !svg.contains(&format!(">{}<", p.phase)) {
            bail!("chart.svg does not name {}", p.phase);
        }
        let html = read(&format!("goose-{}.html", p.phase))?;
        if !html.to_ascii_lowercase().contains("<html") {
            bail!("goose-{}.html is not an HTML page", p.phase);
        }
    }
    Ok(parsed)
}

/// Every problem of a summary [`read_report`] returned: the phases' stored
/// [`phase_problems`] (the file equals the computed summary) and the
/// run-wide ones.
pub fn all_problems(s: &Summary, quick: bool) -> Vec<String> {
    s.phases
        .iter()
        .flat_map(|p| p.problems.iter().map(move |x| format!("{}: {x}", p.phase)))
        .chain(run_problems(s, quick))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drive::SentCount;
    use crate::events::{OutageReport, RotationReport};
    use crate::proxy::ProxyCounts;
    use crate::report::tests::{phase, sample};

    fn sent(sent: u64, ok: u64, failed: u64) -> SentCount {
        SentCount {
            sent,
            ok,
            failed,
            server_errors: 0,
            outage_503: 0,
        }
    }

    /// Asserts that one of `problems` contains `needle`.
    fn assert_any(problems: &[String], needle: &str) {
        assert!(
            problems.iter().any(|x| x.contains(needle)),
            "no problem contains `{needle}`: {problems:?}"
        );
    }

    /// Asserts that a managed run's check of `p` finds a problem containing `needle`.
    fn assert_flagged(p: &PhaseSummary, needle: &str) {
        assert_any(&phase_problems(p, Mode::Managed), needle);
    }

    fn asymmetric() -> PhaseSummary {
        let mut p = phase(Phase::Asymmetric);
        p.sent = [
            (Kind::Rs256.name().to_owned(), sent(900, 900, 0)),
            (Kind::Straggler.name().to_owned(), sent(50, 50, 0)),
            (Kind::Attack.name().to_owned(), sent(20, 20, 0)),
        ]
        .into_iter()
        .collect();
        p.outcomes = [
            ("RS256/accepted".to_owned(), 900),
            ("HS256/alg_disabled".to_owned(), 50),
            ("RS256/unknown_kid".to_owned(), 20),
        ]
        .into_iter()
        .collect();
        p.issuer.tokens_issued = [("RS256".to_owned(), 45)].into_iter().collect();
        p
    }

    #[test]
    fn legacy_tokens_pass_until_asymmetric_and_a_rejection_fails_the_phase() {
        use crate::report::LegacySummary;
        assert_eq!(
            expected_outcome(Kind::Legacy, Phase::Legacy),
            "HS256/accepted"
        );
        assert_eq!(
            expected_outcome(Kind::Legacy, Phase::Transition),
            "HS256/accepted"
        );
        assert_eq!(
            expected_outcome(Kind::LegacyRefused, Phase::Asymmetric),
            "HS256/alg_disabled"
        );
        let mut p = phase(Phase::Dual);
        let clean = LegacySummary {
            sent: 50,
            accepted: 50,
            loosenings: [("issuers".to_owned(), 30)].into_iter().collect(),
            ..LegacySummary::default()
        };
        p.legacy = Some(clean.clone());
        assert_eq!(phase_problems(&p, Mode::Managed), Vec::<String>::new());
        p.legacy = Some(LegacySummary {
            unexpected_rejections: 3,
            ..clean.clone()
        });
        assert_flagged(
            &p,
            "3 legacy-issuer token(s) refused (or unanswered) in phase dual",
        );
        p.legacy = Some(LegacySummary {
            loosenings: Default::default(),
            ..clean.clone()
        });
        assert_flagged(&p, "did not go through the legacy profile");
        let mut a = asymmetric();
        a.legacy = Some(LegacySummary {
            sent: 10,
            expected_rejections: 9,
            unexpected_other: 1,
            ..LegacySummary::default()
        });
        assert_flagged(
            &a,
            "1 legacy-issuer token(s) not refused with 401 in phase asymmetric",
        );
    }

    #[test]
    fn quick_runs_of_the_new_modes_need_their_figures() {
        use crate::report::LegacySummary;
        let mut s = sample();
        s.options.legacy_share = Some(0.2);
        assert_any(&run_problems(&s, true), "dual: no legacy-issuer figures");
        s.phases[0].legacy = Some(LegacySummary {
            sent: 5,
            ..LegacySummary::default()
        });
        assert_any(
            &run_problems(&s, true),
            "dual: no legacy-issuer token accepted",
        );
        s.options.legacy_share = None;
        s.options.gateway_duration_s = Some(3);
        assert_any(&run_problems(&s, true), "dual: the gateway was not driven");
        s.options.gateway_duration_s = None;
        s.options.token_rate = Some(200.0);
        assert_any(
            &run_problems(&s, true),
            "the token endpoint was not measured",
        );
    }

    #[test]
    fn expected_outcomes_follow_the_phase_table() {
        assert_eq!(expected_outcome(Kind::Hs256, Phase::Dual), "HS256/accepted");
        assert_eq!(
            expected_outcome(Kind::Straggler, Phase::Asymmetric),
            "HS256/alg_disabled"
        );
        assert_eq!(
            expected_outcome(Kind::Attack, Phase::Transition),
            "RS256/unknown_kid"
        );
        assert_eq!(
            expected_outcome(Kind::Attack, Phase::Legacy),
            "RS256/alg_disabled"
        );
        assert_eq!(
            expected_outcome(Kind::NewKid, Phase::Asymmetric),
            "RS256/accepted"
        );
        assert_eq!(
            expected_outcome(Kind::Expired, Phase::Dual),
            "HS256/expired"
        );
        assert_eq!(
            expected_outcome(Kind::Expired, Phase::Transition),
            "RS256/expired"
        );
        assert_eq!(
            expected_outcome(Kind::Forged, Phase::Legacy),
            "HS256/bad_signature"
        );
        assert_eq!(
            expected_outcome(Kind::Forged, Phase::Asymmetric),
            "RS256/bad_signature"
        );
    }

    #[test]
    fn clean_phases_have_no_problems() {
        assert_eq!(
            phase_problems(&phase(Phase::Dual), Mode::Managed),
            Vec::<String>::new()
        );
        assert_eq!(
            phase_problems(&asymmetric(), Mode::Managed),
            Vec::<String>::new()
        );
    }

    #[test]
    fn hs256_accepted_in_asymmetric_fails() {
        let mut p = asymmetric();
        p.outcomes.insert("HS256/accepted".into(), 3);
        assert_flagged(&p, "HS256 accepted in phase asymmetric");
    }

    #[test]
    fn a_rejected_legitimate_token_fails_even_if_goose_missed_it() {
        let mut p = asymmetric();
        p.outcomes.insert("RS256/expired".into(), 1);
        assert_flagged(&p, "RS256/expired 1");
        let mut p = asymmetric();
        // A new-kid token rejected as unknown_kid shows as more unknown_kid than attacks sent.
        p.outcomes.insert("RS256/unknown_kid".into(), 21);
        assert_flagged(&p, "RS256/unknown_kid: the verifier counted 21");
    }

    #[test]
    fn straggler_counts_must_match_what_was_sent() {
        let mut p = asymmetric();
        p.outcomes.insert("HS256/alg_disabled".into(), 40);
        assert_flagged(&p, "HS256/alg_disabled: the verifier counted 40");
        p.outcomes.remove("HS256/alg_disabled");
        assert_flagged(&p, "no HS256/alg_disabled");
    }

    #[test]
    fn goose_failures_fail() {
        let mut p = phase(Phase::Dual);
        p.unexpected = 2;
        assert!(phase_problems(&p, Mode::Managed)[0].contains("2 requests not answered"));
    }

    #[test]
    fn the_issuer_must_issue_the_phases_alg_and_what_the_harness_minted() {
        let mut p = phase(Phase::Dual);
        p.issuer.tokens_issued.insert("RS256".into(), 1);
        assert_flagged(&p, "issued 1 RS256 tokens in phase dual");
        assert_flagged(&p, "counted 46 tokens issued");
        assert!(
            !phase_problems(&p, Mode::ExternalObserved)
                .iter()
                .any(|x| x.contains("counted 46")),
            "other clients may mint against external services"
        );
        let mut p = phase(Phase::Dual);
        p.issuer.token_requests.insert("invalid_client".into(), 2);
        assert_flagged(&p, "2 token requests refused");
    }

    #[test]
    fn a_soaks_background_token_requests_are_allowed_for_but_bounded() {
        use crate::answers::Tally;
        use crate::token_traffic::TokenCounts;
        let mut p = phase(Phase::Dual);
        let sent = |n| Tally {
            sent: n,
            ..Tally::default()
        };
        p.issuer.background = Some(TokenCounts {
            good: sent(18),
            wrong_secret: sent(2),
        });
        p.issuer.tokens_issued.insert("HS256".into(), 45 + 19);
        p.issuer.token_requests.insert("invalid_client".into(), 1);
        p.issuer.token_requests.insert("rate_limited".into(), 2);
        assert_eq!(phase_problems(&p, Mode::Managed), Vec::<String>::new());
        p.issuer.tokens_issued.insert("HS256".into(), 45 + 22);
        assert_flagged(&p, "and up to 21 background requests");
        p.issuer.tokens_issued.insert("HS256".into(), 45);
        p.issuer.token_requests.insert("rate_limited".into(), 3);
        assert_flagged(
            &p,
            "4 token requests refused for bad credentials, more than the 3",
        );
        p.issuer.token_requests.insert("invalid_request".into(), 1);
        assert_flagged(&p, "1 token requests refused by the issuer");
    }

    #[test]
    fn a_rotation_without_accepted_new_kid_tokens_fails() {
        let mut p = asymmetric();
        p.rotation = Some(RotationReport {
            old_kids: vec!["k1".into()],
            published_kid: Some("k2".into()),
            new_kid: Some("k2".into()),
            new_kid_tokens: 20,
            signing_expected: true,
            note: None,
        });
        assert_flagged(&p, "20 new-kid tokens pooled, 0 accepted");
        p.sent.insert(Kind::NewKid.name().into(), sent(30, 30, 0));
        p.outcomes.insert("RS256/accepted".into(), 930);
        assert_eq!(phase_problems(&p, Mode::Managed), Vec::<String>::new());
        if let Some(r) = p.rotation.as_mut() {
            r.new_kid = Some("k3".into());
        }
        assert_flagged(&p, "tokens carry kid k3, the JWKS published Some(\"k2\")");
    }

    #[test]
    fn an_outage_must_show_in_the_proxy_and_the_fetch_errors() {
        let mut p = asymmetric();
        p.outage = Some(OutageReport {
            proxy_503s: 0,
            forced_fetch_answered: false,
            seconds: 1.5,
        });
        let problems = phase_problems(&p, Mode::Managed);
        assert_eq!(problems.len(), 3, "{problems:?}");
        p.outage = Some(OutageReport {
            proxy_503s: 2,
            forced_fetch_answered: true,
            seconds: 1.5,
        });
        p.jwks_fetch_errors = 1;
        assert_eq!(phase_problems(&p, Mode::Managed), Vec::<String>::new());
    }

    #[test]
    fn a_502_from_the_harness_proxy_fails() {
        let mut p = phase(Phase::Dual);
        p.jwks_proxy = Some(ProxyCounts {
            requests: 12,
            served_503: 0,
            served_502: 1,
        });
        assert_flagged(&p, "JWKS proxy answered 1 fetch(es) with 502");
        p.jwks_proxy = None;
        assert_eq!(phase_problems(&p, Mode::Managed), Vec::<String>::new());
    }

    #[test]
    fn jwks_fetches_above_the_bound_fail() {
        let mut p = phase(Phase::Dual);
        p.jwks_fetches = p.jwks_fetch_bound + 1;
        assert!(phase_problems(&p, Mode::Managed)[0].contains("above the bound"));
    }

    #[test]
    fn quick_runs_need_every_planned_phase_and_its_figures() {
        let s = sample();
        assert_eq!(run_problems(&s, true), Vec::<String>::new());
        let mut missing = s.clone();
        missing.planned.push(Phase::Transition);
        assert!(run_problems(&missing, false)[0].contains("were planned"));
        let mut no_cache = s.clone();
        no_cache.phases[0].token_cache_hit_rate = None;
        assert!(run_problems(&no_cache, true)[0].contains("no token-cache lookups"));
        assert_eq!(run_problems(&no_cache, false), Vec::<String>::new());
        let mut bad_rate = s.clone();
        bad_rate.phases[0].key_cache_hit_rate = Some(1.5);
        assert!(run_problems(&bad_rate, false)[0].contains("outside [0, 1]"));
        let mut no_rejections = s.clone();
        no_rejections.phases[0].expected_rejections = 0;
        assert_any(&run_problems(&no_rejections, true), "no expected rejection");
    }

    #[test]
    fn quick_rs256_phases_need_their_events_and_key_cache() {
        let mut s = sample();
        let mut p = asymmetric();
        p.key_cache_hit_rate = None;
        s.planned = vec![Phase::Asymmetric];
        s.phases = vec![p];
        let problems = run_problems(&s, true);
        assert_any(&problems, "no key-cache rate");
        assert_any(&problems, "rotation did not run");
        assert_any(&problems, "outage did not run");
        s.phases[0].rotation = Some(RotationReport {
            old_kids: vec!["k1".into()],
            published_kid: Some("k2".into()),
            note: Some("cannot sign within the phase".into()),
            ..RotationReport::default()
        });
        assert_any(
            &run_problems(&s, true),
            "no token with a new kid (cannot sign",
        );
    }

    #[test]
    fn quick_pools_must_replace_worn_tokens() {
        let mut s = sample();
        // 40 slots × 49 uses = 1960 < 980 sent: no replacement guaranteed.
        s.phases[0].pool.replacements_requested = 0;
        assert_eq!(run_problems(&s, true), Vec::<String>::new());
        s.phases[0]
            .sent
            .insert(Kind::Hs256.name().into(), sent(5_000, 5_000, 0));
        assert!(run_problems(&s, true)[0].contains("no token was replaced"));
    }

    #[test]
    fn a_huge_reuse_or_odd_pool_does_not_overflow_the_replacement_check() {
        let mut s = sample();
        s.phases[0].pool.replacements_requested = 0;
        // capacity × (reuse − 1) overflows u64: nothing sent can reach it.
        s.phases[0].pool.reuse = Some(u64::MAX);
        assert_eq!(run_problems(&s, true), Vec::<String>::new());
        // A summary from elsewhere: more stragglers than slots, a reuse of 0.
        s.phases[0].pool.stragglers = s.phases[0].pool.slots + 1;
        s.phases[0].pool.reuse = Some(0);
        assert!(run_problems(&s, true)[0].contains("no token was replaced"));
    }

    #[test]
    fn all_problems_are_the_stored_ones_and_the_run_wide_ones() {
        let mut s = sample();
        s.phases[0].problems = vec!["stored".into()];
        // Figures that would fail the phase check are not re-checked: the
        // stored problems are what the run found.
        s.phases[0].unexpected = 3;
        s.planned.push(Phase::Transition);
        assert_eq!(
            all_problems(&s, false),
            vec![
                "dual: stored".to_owned(),
                "phases [Dual] ran, [Dual, Transition] were planned".to_owned()
            ]
        );
    }

    #[test]
    fn the_report_on_disk_must_match_and_parse() {
        let dir = crate::testutil::scratch_dir("check");
        let s = sample();
        crate::report::write(&dir, &s).expect("write");
        let e = read_report(&dir, &s).expect_err("no goose report yet");
        assert!(format!("{e:#}").contains("goose-dual.html"), "{e:#}");
        std::fs::write(dir.join("goose-dual.html"), "<!DOCTYPE html><html></html>").expect("html");
        let back = read_report(&dir, &s).expect("report");
        assert_eq!(back.phases.len(), 1);
        assert_eq!(back.phases[0].outcomes, s.phases[0].outcomes);
        let mut other = s.clone();
        other.cores = 64;
        assert!(
            format!("{:#}", read_report(&dir, &other).expect_err("differs")).contains("differs")
        );
        std::fs::write(dir.join("chart.svg"), "<svg></svg>").expect("svg");
        assert!(format!("{:#}", read_report(&dir, &s).expect_err("bars")).contains("chart.svg"));
        std::fs::write(dir.join("summary.json"), "{").expect("json");
        assert!(
            format!("{:#}", read_report(&dir, &s).expect_err("parse")).contains("does not parse")
        );
        std::fs::write(dir.join("summary.md"), "").expect("md");
        std::fs::remove_file(dir.join("summary.json")).expect("rm");
        assert!(
            format!("{:#}", read_report(&dir, &s).expect_err("missing")).contains("summary.json")
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
