//! What fails a soak, beyond each phase's own checks ([`crate::check`]):
//! a legitimate request that did not get its 200; an unwanted token (random
//! kid, straggler, expired, forged) that got anything but a 401 (or a 503
//! during the JWKS outage); a good client refused a token, or a wrong secret
//! given one; more guesses checked than the failed-auth limit allows; the
//! issuer's counts not matching what the soak sent; any 5xx but the
//! intended 503s; a planned event that did not happen; RSS or fds past
//! their bounds.

use crate::answers::{Answers, Class, Tally};
use crate::pool::Kind;
use crate::soak_report::SoakSummary;
use crate::token_traffic;

/// The events the options asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wanted {
    /// A key rotation (in an RS256-signing phase).
    pub rotation: bool,
    /// A JWKS outage (in an RS256-signing phase).
    pub outage: bool,
}

/// The answers in `a` that are not `expected`, as `"12 × 401, 1 × no answer"`.
fn wrong_answers(a: &Answers, expected: impl Fn(Class) -> bool) -> Option<String> {
    let parts: Vec<String> = Class::ALL
        .into_iter()
        .filter(|c| !expected(*c) && a.get(*c) > 0)
        .map(|c| format!("{} × {}", a.get(c), class_name(c)))
        .collect();
    (!parts.is_empty()).then(|| parts.join(", "))
}

fn class_name(c: Class) -> &'static str {
    match c {
        Class::Ok => "200",
        Class::Unauthorized => "401",
        Class::RateLimited => "429",
        Class::Outage503 => "503 in the outage",
        Class::ServerError => "other 5xx",
        Class::Other => "other status",
        Class::NoAnswer => "no answer",
    }
}

/// Everything wrong with a soak; `cut_off` is how many requests may go
/// unanswered because a phase ended under them (goose users × phases).
pub fn problems(s: &SoakSummary, wanted: Wanted, cut_off: u64) -> Vec<String> {
    let mut problems = Vec::new();
    let mut unanswered = 0;
    for kind in Kind::ALL {
        let Some(t) = s.verify.get(kind.name()) else {
            continue;
        };
        unanswered += t.sent.saturating_sub(t.answers.total());
        let expected = |c| crate::answers::verify_as_expected(kind, c);
        if let Some(wrong) = wrong_answers(&t.answers, expected) {
            let what = if kind.legitimate() {
                format!("legitimate requests failed ({})", kind.name())
            } else {
                format!("{} answered wrongly", kind.name())
            };
            problems.push(format!("/verify: {what}: {wrong}"));
        }
    }
    if unanswered > cut_off {
        problems.push(format!(
            "/verify: {unanswered} requests never answered (at most {cut_off} may be cut off as phases end)"
        ));
    }
    if !s.phases.is_empty() {
        for kind in [Kind::Expired, Kind::Forged] {
            if s.verify.get(kind.name()).is_none_or(|t| t.sent == 0) {
                problems.push(format!("no `{}` request was sent", kind.name()));
            }
        }
    }
    problems.extend(token_problems(s));
    let e = &s.server_errors;
    if e.unexpected() > 0 {
        problems.push(format!(
            "{} unexpected 5xx (/verify {}, token endpoint {}, JWKS proxy 502 {})",
            e.unexpected(),
            e.verify_other,
            e.token_endpoint,
            e.jwks_proxy_502
        ));
    }
    let happened = |prefix: &str| {
        s.phases
            .iter()
            .any(|p| p.events.iter().any(|e| e.starts_with(prefix)))
    };
    if wanted.rotation && !happened("key rotation") {
        problems.push("no key rotation happened".into());
    }
    if wanted.outage && !happened("JWKS outage") {
        problems.push("no JWKS outage happened".into());
    }
    if s.phases.is_empty() {
        problems.push("no phase ran".into());
    }
    if s.warm_up_sample.is_none() || s.end_sample.is_none() {
        problems
            .push("no complete RSS/fd sample after the warm-up and at the end of the load".into());
    }
    for b in s.bounds.iter().filter(|b| !b.held) {
        problems.push(format!(
            "{}: {} at the end of the load, above the bound of {} ({} after warm-up)",
            b.what, b.at_end, b.limit, b.after_warm_up
        ));
    }
    problems
}

/// The background token requests and the issuer's account of them.
fn token_problems(s: &SoakSummary) -> Vec<String> {
    let mut problems = Vec::new();
    let (good, wrong): (&Tally, &Tally) = (&s.token_traffic.good, &s.token_traffic.wrong_secret);
    if good.sent == 0 || wrong.sent == 0 {
        problems.push(format!(
            "background token requests: {} good, {} with a wrong secret sent; both must run",
            good.sent, wrong.sent
        ));
    }
    if let Some(w) = wrong_answers(&good.answers, |c| token_traffic::as_expected(false, c)) {
        problems.push(format!("token requests of good clients failed: {w}"));
    }
    if let Some(w) = wrong_answers(&wrong.answers, |c| token_traffic::as_expected(true, c)) {
        problems.push(format!(
            "token requests with a wrong secret answered wrongly: {w}"
        ));
    }
    let i = &s.issuer;
    let admitted = token_traffic::most_admitted_failures(
        i.failed_auth_limit,
        std::time::Duration::from_secs(i.failed_auth_window_s),
        std::time::Duration::from_secs_f64(i.background_s.max(0.0)),
    );
    if wrong.answers.unauthorized > admitted {
        problems.push(format!(
            "the issuer checked {} wrong secrets of {} in {:.0} s; its limit of {} per {} s allows {admitted}",
            wrong.answers.unauthorized,
            token_traffic::GUESSER_ID,
            i.background_s,
            i.failed_auth_limit,
            i.failed_auth_window_s
        ));
    }
    // The issuer's counts: every request of the soak is accounted for.
    let count = |outcome: &str| i.token_requests.get(outcome).copied().unwrap_or(0);
    for (outcome, ours) in [
        ("invalid_client", wrong.answers.unauthorized),
        ("rate_limited", wrong.answers.rate_limited),
    ] {
        if count(outcome) != ours {
            problems.push(format!(
                "the issuer counted {} token requests `{outcome}`, the soak got {ours}",
                count(outcome)
            ));
        }
    }
    let issued = count("issued");
    let lo = i.harness_minted + good.answers.ok;
    let hi = i.harness_mint_attempts + good.answers.ok;
    if issued < lo || issued > hi {
        problems.push(format!(
            "the issuer counted {issued} tokens issued; the harness received {} of {} asked and the background requests {}",
            i.harness_minted, i.harness_mint_attempts, good.answers.ok
        ));
    }
    for (outcome, n) in &i.token_requests {
        if !["issued", "invalid_client", "rate_limited"].contains(&outcome.as_str()) && *n > 0 {
            problems.push(format!("the issuer counted {n} token requests `{outcome}`"));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::{self, Sample, Usage};
    use crate::soak_report::tests::soak;

    const OUTAGE_ONLY: Wanted = Wanted {
        rotation: false,
        outage: true,
    };

    fn assert_any(problems: &[String], needle: &str) {
        assert!(
            problems.iter().any(|p| p.contains(needle)),
            "no problem contains `{needle}`: {problems:?}"
        );
    }

    /// The sample soak with an expired kind too: clean.
    fn clean() -> SoakSummary {
        let mut s = soak();
        s.verify.insert(
            Kind::Expired.name().into(),
            Tally {
                sent: 10,
                answers: Answers {
                    unauthorized: 9,
                    outage_503: 1,
                    ..Answers::default()
                },
            },
        );
        s
    }

    #[test]
    fn a_clean_soak_has_no_problems() {
        assert_eq!(problems(&clean(), OUTAGE_ONLY, 0), Vec::<String>::new());
    }

    #[test]
    fn a_legitimate_request_failing_fails_the_soak_even_in_the_outage() {
        let mut s = clean();
        if let Some(t) = s.verify.get_mut(Kind::Rs256.name()) {
            t.sent += 2;
            t.answers.outage_503 += 1;
            t.answers.no_answer += 1;
        }
        assert_any(
            &problems(&s, OUTAGE_ONLY, 0),
            "legitimate requests failed (RS256 legitimate): 1 × 503 in the outage, 1 × no answer",
        );
    }

    #[test]
    fn an_accepted_forged_token_fails_the_soak() {
        let mut s = clean();
        if let Some(t) = s.verify.get_mut(Kind::Forged.name()) {
            t.answers.unauthorized -= 1;
            t.answers.ok += 1;
        }
        assert_any(
            &problems(&s, OUTAGE_ONLY, 0),
            "forged signature (expected 401) answered wrongly: 1 × 200",
        );
    }

    #[test]
    fn unanswered_requests_beyond_the_cut_off_fail() {
        let mut s = clean();
        if let Some(t) = s.verify.get_mut(Kind::Rs256.name()) {
            t.sent += 5;
        }
        assert_eq!(problems(&s, OUTAGE_ONLY, 8), Vec::<String>::new());
        assert_any(&problems(&s, OUTAGE_ONLY, 4), "5 requests never answered");
    }

    #[test]
    fn only_the_outages_503s_are_intended() {
        let mut s = clean();
        s.server_errors.verify_other = 1;
        s.server_errors.jwks_proxy_502 = 2;
        assert_any(
            &problems(&s, OUTAGE_ONLY, 0),
            "3 unexpected 5xx (/verify 1, token endpoint 0, JWKS proxy 502 2)",
        );
    }

    #[test]
    fn a_guesser_must_not_lock_out_good_clients_nor_pass_the_limit() {
        let mut s = clean();
        s.token_traffic.good.answers.ok -= 1;
        s.token_traffic.good.answers.rate_limited += 1;
        assert_any(
            &problems(&s, OUTAGE_ONLY, 0),
            "token requests of good clients failed: 1 × 429",
        );
        let mut s = clean();
        s.token_traffic.wrong_secret.answers.rate_limited -= 5;
        s.token_traffic.wrong_secret.answers.unauthorized += 5;
        s.issuer.token_requests.insert("invalid_client".into(), 15);
        s.issuer.token_requests.insert("rate_limited".into(), 5);
        let p = problems(&s, OUTAGE_ONLY, 0);
        assert_any(
            &p,
            "checked 15 wrong secrets of soak-guessed in 12 s; its limit of 10 per 60 s allows 10",
        );
        assert_eq!(p.len(), 1, "{p:?}");
        let mut s = clean();
        s.token_traffic.wrong_secret.answers.unauthorized -= 1;
        s.token_traffic.wrong_secret.answers.ok += 1;
        assert_any(
            &problems(&s, OUTAGE_ONLY, 0),
            "with a wrong secret answered wrongly: 1 × 200",
        );
    }

    #[test]
    fn the_issuers_counts_must_match_what_the_soak_sent() {
        let mut s = clean();
        s.issuer.token_requests.insert("rate_limited".into(), 11);
        s.issuer.token_requests.insert("issued".into(), 231);
        s.issuer.token_requests.insert("server_error".into(), 1);
        let p = problems(&s, OUTAGE_ONLY, 0);
        assert_any(
            &p,
            "counted 11 token requests `rate_limited`, the soak got 10",
        );
        assert_any(&p, "counted 231 tokens issued");
        assert_any(&p, "counted 1 token requests `server_error`");
    }

    #[test]
    fn missing_events_and_kinds_fail() {
        let mut s = clean();
        s.phases[0].events = vec!["phase reload".into()];
        s.verify.remove(Kind::Expired.name());
        let p = problems(
            &s,
            Wanted {
                rotation: true,
                outage: true,
            },
            0,
        );
        assert_any(&p, "no key rotation happened");
        assert_any(&p, "no JWKS outage happened");
        assert_any(&p, "no `expired (expected 401)` request was sent");
    }

    #[test]
    fn bounds_broken_or_unmeasured_fail() {
        let mut s = clean();
        let warm = s.warm_up_sample.expect("warm");
        let mut end = warm;
        end.t_s += 5.0;
        end.verifier = Some(Usage {
            rss_kib: resources::rss_limit_kib(warm.verifier.map(|u| u.rss_kib).unwrap_or(0)) + 1,
            fds: 1_000,
        });
        s.bounds = resources::bounds(&warm, &end);
        let p = problems(&s, OUTAGE_ONLY, 0);
        assert_any(&p, "verifier RSS: ");
        assert_any(
            &p,
            "verifier fds: 1000 at the end of the load, above the bound of 32",
        );
        s.end_sample = None::<Sample>;
        assert_any(&problems(&s, OUTAGE_ONLY, 0), "no complete RSS/fd sample");
    }
}
