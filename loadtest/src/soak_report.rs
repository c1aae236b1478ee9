//! The soak's report: `soak.json` (the whole [`SoakSummary`]) and
//! `soak.md`, one page: the verdict, answers by kind of traffic, token
//! requests by status, the 5xx account, the events, RSS and fds over time
//! (sparklines and a small table) and the bounds.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use keyshift_core::Phase;
use serde::{Deserialize, Serialize};

use crate::answers::{Answers, Tally};
use crate::pool::Kind;
use crate::resources::{self, Bound, Sample, Usage};
use crate::token_traffic::{self, TokenCounts};

/// Format version of `soak.json`.
pub const VERSION: u32 = 1;

/// One phase of the soak's walk.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PhaseWindow {
    /// The phase.
    pub phase: Phase,
    /// When its load began, seconds since the soak started.
    pub load_from_s: f64,
    /// When its load ended.
    pub load_to_s: f64,
    /// What happened in it, in words (the reload into it first).
    pub events: Vec<String>,
    /// Problems its own checks found (listed in `summary.json`).
    pub problems: usize,
}

/// Every 5xx of the soak.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ServerErrors {
    /// Intended: the 503s the JWKS proxy served (the outages themselves).
    pub jwks_outage_503: u64,
    /// Intended: `/verify` 503s while an outage was on.
    pub verify_outage_503: u64,
    /// `/verify` 5xx at any other time, or of another status.
    pub verify_other: u64,
    /// Token endpoint 5xx (none is intended).
    pub token_endpoint: u64,
    /// 502s of the harness's JWKS proxy (the issuer unreachable through it).
    pub jwks_proxy_502: u64,
}

impl ServerErrors {
    /// Every 5xx that was not intended.
    pub fn unexpected(&self) -> u64 {
        self.verify_other + self.token_endpoint + self.jwks_proxy_502
    }
}

/// The issuer's side over the whole soak.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct IssuerAccount {
    /// `keyshift_token_requests_total` deltas by outcome.
    pub token_requests: BTreeMap<String, u64>,
    /// `failed_auth_limit` the issuer ran with.
    pub failed_auth_limit: u32,
    /// Its window, seconds.
    pub failed_auth_window_s: u64,
    /// Token requests of the harness's minter (pool, rotation, expiring tokens).
    pub harness_mint_attempts: u64,
    /// Tokens it received.
    pub harness_minted: u64,
    /// Seconds the background token requests ran.
    pub background_s: f64,
}

/// The whole soak (`soak.json`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SoakSummary {
    /// [`VERSION`].
    pub version: u32,
    /// Unix time of the start.
    pub started_unix: u64,
    /// CPU cores (load generator and services share them).
    pub cores: usize,
    /// Seconds of load asked for (split over the phases).
    pub seconds: u64,
    /// `--quick`.
    pub quick: bool,
    /// Goose users.
    pub users: usize,
    /// Wall time of the whole soak, start-up to the last sample.
    pub wall_s: f64,
    /// The phases, in order.
    pub phases: Vec<PhaseWindow>,
    /// `/verify` by kind of token: sent and answers.
    pub verify: BTreeMap<String, Tally>,
    /// `keyshift_verify_total` deltas over the soak, `alg/outcome`.
    pub verify_outcomes: BTreeMap<String, u64>,
    /// The background token requests.
    pub token_traffic: TokenCounts,
    /// The issuer's counts.
    pub issuer: IssuerAccount,
    /// The 5xx account.
    pub server_errors: ServerErrors,
    /// Warm-up, seconds of load.
    pub warm_up_s: f64,
    /// One sample a second.
    pub samples: Vec<Sample>,
    /// The sample the bounds start from.
    pub warm_up_sample: Option<Sample>,
    /// The sample the bounds are checked at (the last under load).
    pub end_sample: Option<Sample>,
    /// A sample after the load stopped and the services went idle.
    pub idle_sample: Option<Sample>,
    /// RSS and fd bounds.
    pub bounds: Vec<Bound>,
    /// Everything that failed; must be empty.
    pub problems: Vec<String>,
}

impl SoakSummary {
    /// `/verify` requests sent, every kind.
    pub fn verify_sent(&self) -> u64 {
        self.verify.values().map(|t| t.sent).sum()
    }
}

/// Writes `soak.json` and `soak.md` into `dir`.
pub fn write(dir: &Path, s: &SoakSummary) -> anyhow::Result<()> {
    std::fs::write(dir.join("soak.json"), serde_json::to_string_pretty(s)?).context("soak.json")?;
    std::fs::write(dir.join("soak.md"), markdown(s)).context("soak.md")?;
    Ok(())
}

/// Reads `soak.json` and `soak.md` back from `dir`: the JSON must parse and
/// be exactly `expected`, the page must carry its verdict.
pub fn read_back(dir: &Path, expected: &SoakSummary) -> anyhow::Result<SoakSummary> {
    let json_path = dir.join("soak.json");
    let json = std::fs::read_to_string(&json_path)
        .with_context(|| format!("reading {}", json_path.display()))?;
    let parsed: SoakSummary = serde_json::from_str(&json).context("soak.json does not parse")?;
    anyhow::ensure!(
        json == serde_json::to_string_pretty(expected)?,
        "soak.json differs from the soak the run computed"
    );
    let md_path = dir.join("soak.md");
    let md = std::fs::read_to_string(&md_path)
        .with_context(|| format!("reading {}", md_path.display()))?;
    anyhow::ensure!(
        md.starts_with("# keyshift soak: "),
        "soak.md has no verdict line"
    );
    Ok(parsed)
}

const LEVELS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/// `values` as at most `width` block characters, each the largest value of
/// its share of the series, scaled from the smallest value to the largest.
pub fn sparkline(values: &[u64], width: usize) -> String {
    if values.is_empty() || width == 0 {
        return String::new();
    }
    let buckets = width.min(values.len());
    let peaks: Vec<u64> = (0..buckets)
        .map(|b| {
            let from = b * values.len() / buckets;
            let to = ((b + 1) * values.len() / buckets).max(from + 1);
            values
                .get(from..to.min(values.len()))
                .and_then(|part| part.iter().max().copied())
                .unwrap_or(0)
        })
        .collect();
    let lo = values.iter().min().copied().unwrap_or(0);
    let hi = values.iter().max().copied().unwrap_or(0);
    let top = LEVELS.len() - 1;
    peaks
        .iter()
        .map(|v| {
            let level = if hi == lo {
                0
            } else {
                ((v - lo) as u128 * top as u128 / (hi - lo) as u128) as usize
            };
            LEVELS.get(level.min(top)).copied().unwrap_or('▁')
        })
        .collect()
}

/// At most `rows` complete samples, evenly spread from first to last, with
/// the warm-up and end samples among them, in time order.
pub fn timeline(samples: &[Sample], marks: &[Option<Sample>], rows: usize) -> Vec<Sample> {
    let complete: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.issuer.is_some() && s.verifier.is_some())
        .collect();
    let mut picked: Vec<Sample> = Vec::new();
    let n = complete.len();
    let rows = rows.max(2);
    if n > 0 {
        for r in 0..rows.min(n) {
            let i = if rows.min(n) == 1 {
                0
            } else {
                r * (n - 1) / (rows.min(n) - 1)
            };
            if let Some(s) = complete.get(i) {
                picked.push(**s);
            }
        }
    }
    picked.extend(marks.iter().flatten().copied());
    picked.sort_by(|a, b| a.t_s.total_cmp(&b.t_s));
    picked.dedup_by(|a, b| a.t_s == b.t_s);
    picked
}

fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

fn answers_row(name: &str, expected: &str, t: &Tally) -> String {
    let a: &Answers = &t.answers;
    format!(
        "| {name} | {expected} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
        t.sent,
        a.ok,
        a.unauthorized,
        a.rate_limited,
        a.outage_503,
        a.server_errors,
        a.other,
        a.no_answer
    )
}

/// The one-page report.
pub fn markdown(s: &SoakSummary) -> String {
    let verdict = if s.problems.is_empty() {
        "PASS"
    } else {
        "FAIL"
    };
    let walk: Vec<&str> = s.phases.iter().map(|p| p.phase.as_str()).collect();
    let mut md = format!(
        "# keyshift soak: {verdict}\n\n{} s of load{} in {:.0} s wall on {} cores (load generator, \
         issuer and verifier together), {} goose users, phases {}; a token request \
         every {} ms beside it.\n\n",
        s.seconds,
        if s.quick { " (quick)" } else { "" },
        s.wall_s,
        s.cores,
        s.users,
        walk.join(" → "),
        1000 / token_traffic::RATE_PER_SECOND
    );

    md.push_str("## Traffic, by answer\n\n");
    md.push_str("| traffic | expected | sent | 200 | 401 | 429 | 503 in outage | other 5xx | other | no answer |\n|---|---|---|---|---|---|---|---|---|---|\n");
    for kind in Kind::ALL {
        if let Some(t) = s.verify.get(kind.name()) {
            let expected = if kind.legitimate() {
                "200"
            } else {
                "401 (503 in outage)"
            };
            md.push_str(&answers_row(
                &format!("/verify {}", kind.name()),
                expected,
                t,
            ));
        }
    }
    md.push_str(&answers_row(
        "token: good clients",
        "200",
        &s.token_traffic.good,
    ));
    md.push_str(&answers_row(
        &format!("token: wrong secret ({})", token_traffic::GUESSER_ID),
        "401, then 429",
        &s.token_traffic.wrong_secret,
    ));
    let outcomes: Vec<String> = s
        .verify_outcomes
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    let requests: Vec<String> = s
        .issuer
        .token_requests
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    md.push_str(&format!(
        "\nVerifier (`keyshift_verify_total`): {}.  \nIssuer (`keyshift_token_requests_total`): {}; \
         failed-auth limit {} per {} s per (client id, address); the harness minted {} tokens.\n",
        outcomes.join(", "),
        requests.join(", "),
        s.issuer.failed_auth_limit,
        s.issuer.failed_auth_window_s,
        s.issuer.harness_minted
    ));

    let e = &s.server_errors;
    md.push_str(&format!(
        "\n## 5xx\n\nIntended: {} JWKS 503s served during the outages, {} `/verify` 503s during \
         them. Unexpected: {} (`/verify` {}, token endpoint {}, JWKS proxy 502 {}).\n",
        e.jwks_outage_503,
        e.verify_outage_503,
        e.unexpected(),
        e.verify_other,
        e.token_endpoint,
        e.jwks_proxy_502
    ));

    md.push_str(
        "\n## Events\n\n| phase | load, s | events | phase problems |\n|---|---|---|---|\n",
    );
    for p in &s.phases {
        md.push_str(&format!(
            "| {} | {:.0}–{:.0} | {} | {} |\n",
            p.phase,
            p.load_from_s,
            p.load_to_s,
            p.events.join("; "),
            p.problems
        ));
    }

    md.push_str(&resources_section(s));

    if !s.problems.is_empty() {
        md.push_str("\n## PROBLEMS\n\n");
        for p in &s.problems {
            md.push_str(&format!("- {p}\n"));
        }
    }
    md
}

/// Sparklines, the table of samples and the bounds.
fn resources_section(s: &SoakSummary) -> String {
    let mut md = format!(
        "\n## Memory and file descriptors\n\nOne sample a second; warm-up: the first {:.0} s of load.\n\n```\n",
        s.warm_up_s
    );
    let series = |f: fn(&Sample) -> Option<Usage>, g: fn(&Usage) -> u64| -> Vec<u64> {
        s.samples
            .iter()
            .filter_map(|x| f(x).map(|u| g(&u)))
            .collect()
    };
    let lines: [(&str, Vec<u64>, bool); 4] = [
        ("issuer RSS  ", series(|x| x.issuer, |u| u.rss_kib), true),
        ("verifier RSS", series(|x| x.verifier, |u| u.rss_kib), true),
        ("issuer fds  ", series(|x| x.issuer, |u| u.fds), false),
        ("verifier fds", series(|x| x.verifier, |u| u.fds), false),
    ];
    for (name, values, is_rss) in &lines {
        let lo = values.iter().min().copied().unwrap_or(0);
        let hi = values.iter().max().copied().unwrap_or(0);
        let (lo, hi, unit) = if *is_rss {
            (mib(lo), mib(hi), " MiB")
        } else {
            (lo.to_string(), hi.to_string(), "")
        };
        md.push_str(&format!(
            "{name} {lo:>6} {} {hi}{unit}\n",
            sparkline(values, 60)
        ));
    }
    md.push_str("```\n\n| t, s | | issuer RSS, MiB | issuer fds | verifier RSS, MiB | verifier fds |\n|---|---|---|---|---|---|\n");
    let marks = [s.warm_up_sample, s.end_sample, s.idle_sample];
    // Rows up to the end of the load; the idle sample after it is marked.
    let under_load: Vec<Sample> = match s.end_sample {
        Some(end) => s
            .samples
            .iter()
            .filter(|x| x.t_s <= end.t_s)
            .copied()
            .collect(),
        None => s.samples.clone(),
    };
    for x in timeline(&under_load, &marks, 8) {
        let mark = if Some(x) == s.warm_up_sample {
            "after warm-up"
        } else if Some(x) == s.end_sample {
            "end of load"
        } else if Some(x) == s.idle_sample {
            "idle after"
        } else {
            ""
        };
        let cell =
            |u: Option<Usage>, f: fn(&Usage) -> String| u.as_ref().map(f).unwrap_or_default();
        md.push_str(&format!(
            "| {:.0} | {mark} | {} | {} | {} | {} |\n",
            x.t_s,
            cell(x.issuer, |u| mib(u.rss_kib)),
            cell(x.issuer, |u| u.fds.to_string()),
            cell(x.verifier, |u| mib(u.rss_kib)),
            cell(x.verifier, |u| u.fds.to_string()),
        ));
    }
    md.push_str(&format!(
        "\n## Bounds\n\nAt the end of the load, against the end of the warm-up (both under load): \
         RSS ≤ 1.5 × + {} MiB (caches fill to their bounds and the allocator keeps its high-water \
         mark: a healthy service grows some; a leak grows with every request), fds ≤ + {} \
         (connections come and go by a few).\n\n| bound | after warm-up | at end | limit | held |\n|---|---|---|---|---|\n",
        resources::RSS_SLACK_KIB / 1024,
        resources::FD_SLACK
    ));
    for b in &s.bounds {
        let show = |v: u64| {
            if b.what.ends_with("RSS") {
                format!("{} MiB", mib(v))
            } else {
                v.to_string()
            }
        };
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            b.what,
            show(b.after_warm_up),
            show(b.at_end),
            show(b.limit),
            if b.held { "yes" } else { "**no**" }
        ));
    }
    if let Some(b) = s.bounds.iter().find(|b| b.what == "verifier RSS") {
        let sent = s.verify_sent();
        let room = b.limit.saturating_sub(b.after_warm_up).saturating_mul(1024);
        if let Some(per_request) = room.checked_div(sent) {
            md.push_str(&format!(
                "\nA verifier leak above {per_request} bytes per `/verify` request ({sent} sent) would have broken its RSS bound.\n"
            ));
        }
    }
    md
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use crate::answers::Answers;

    fn usage(rss_kib: u64, fds: u64) -> Option<Usage> {
        Some(Usage { rss_kib, fds })
    }

    fn sample(t_s: f64, rss_kib: u64, fds: u64) -> Sample {
        Sample {
            t_s,
            issuer: usage(rss_kib, fds),
            verifier: usage(rss_kib * 2, fds + 4),
        }
    }

    /// A clean quick soak.
    pub fn soak() -> SoakSummary {
        let samples: Vec<Sample> = (0..12u32)
            .map(|t| sample(f64::from(t), 10_240 + u64::from(t) * 100, 12))
            .collect();
        let warm = samples.get(3).copied();
        let end = samples.get(10).copied();
        let ok = |n| Tally {
            sent: n,
            answers: Answers {
                ok: n,
                ..Answers::default()
            },
        };
        let refused = |n| Tally {
            sent: n,
            answers: Answers {
                unauthorized: n,
                ..Answers::default()
            },
        };
        SoakSummary {
            version: VERSION,
            started_unix: 1,
            cores: 2,
            seconds: 10,
            quick: true,
            users: 4,
            wall_s: 14.2,
            phases: vec![PhaseWindow {
                phase: Phase::Transition,
                load_from_s: 1.0,
                load_to_s: 11.0,
                events: vec!["phase reload".into(), "JWKS outage 1.5 s (3 503s)".into()],
                problems: 0,
            }],
            verify: [
                (Kind::Rs256.name().to_owned(), ok(9_000)),
                (Kind::Forged.name().to_owned(), refused(200)),
            ]
            .into_iter()
            .collect(),
            verify_outcomes: [
                ("RS256/accepted".to_owned(), 9_000),
                ("RS256/bad_signature".to_owned(), 200),
            ]
            .into_iter()
            .collect(),
            token_traffic: TokenCounts {
                good: ok(180),
                wrong_secret: Tally {
                    sent: 20,
                    answers: Answers {
                        unauthorized: 10,
                        rate_limited: 10,
                        ..Answers::default()
                    },
                },
            },
            issuer: IssuerAccount {
                token_requests: [
                    ("issued".to_owned(), 230),
                    ("invalid_client".to_owned(), 10),
                    ("rate_limited".to_owned(), 10),
                ]
                .into_iter()
                .collect(),
                failed_auth_limit: 10,
                failed_auth_window_s: 60,
                harness_mint_attempts: 50,
                harness_minted: 50,
                background_s: 12.0,
            },
            server_errors: ServerErrors {
                jwks_outage_503: 3,
                ..ServerErrors::default()
            },
            warm_up_s: 2.0,
            bounds: match (warm, end) {
                (Some(w), Some(e)) => resources::bounds(&w, &e),
                _ => Vec::new(),
            },
            samples,
            warm_up_sample: warm,
            end_sample: end,
            idle_sample: Some(sample(12.5, 10_000, 8)),
            problems: Vec::new(),
        }
    }

    #[test]
    fn sparklines_scale_from_the_least_to_the_most() {
        assert_eq!(sparkline(&[1, 2, 3, 4, 5, 6, 7, 8], 8), "▁▂▃▄▅▆▇█");
        assert_eq!(
            sparkline(&[5, 5, 5], 10),
            "▁▁▁",
            "flat, and no wider than the series"
        );
        assert_eq!(
            sparkline(&[0, 100, 0, 0], 2),
            "█▁",
            "each bucket shows its peak"
        );
        assert_eq!(sparkline(&[], 10), "");
        assert_eq!(sparkline(&[0, u64::MAX], 2), "▁█");
        assert_eq!(
            sparkline(&(0..1000).collect::<Vec<u64>>(), 60)
                .chars()
                .count(),
            60
        );
    }

    #[test]
    fn the_timeline_spreads_its_rows_and_keeps_the_marked_samples() {
        let s = soak();
        let rows = timeline(
            &s.samples,
            &[s.warm_up_sample, s.end_sample, s.idle_sample],
            4,
        );
        let times: Vec<f64> = rows.iter().map(|r| r.t_s).collect();
        assert_eq!(times, [0.0, 3.0, 7.0, 10.0, 11.0, 12.5]);
        assert!(timeline(&[], &[None], 8).is_empty());
    }

    #[test]
    fn the_report_is_one_page_with_every_section() {
        let s = soak();
        let md = markdown(&s);
        assert!(md.starts_with("# keyshift soak: PASS\n"), "{md}");
        for needle in [
            "| /verify RS256 legitimate | 200 | 9000 | 9000 |",
            "| /verify forged signature (expected 401) | 401 (503 in outage) | 200 | 0 | 200 |",
            "| token: wrong secret (soak-guessed) | 401, then 429 | 20 | 0 | 10 | 10 |",
            "RS256/bad_signature 200",
            "invalid_client 10",
            "Intended: 3 JWKS 503s",
            "Unexpected: 0",
            "| transition | 1–11 | phase reload; JWKS outage 1.5 s (3 503s) | 0 |",
            "| 3 | after warm-up | 10.3 |",
            "| 10 | end of load |",
            "| 12 | idle after |",
            "| verifier RSS | 20.6 MiB | 22.0 MiB | 62.9 MiB | yes |",
            "| issuer fds | 12 | 12 | 28 | yes |",
            "bytes per `/verify` request (9200 sent)",
        ] {
            assert!(md.contains(needle), "no `{needle}` in:\n{md}");
        }
        assert!(!md.contains("PROBLEMS"));
        assert!(
            md.lines().count() < 70,
            "one page: {} lines",
            md.lines().count()
        );
        let mut failed = s;
        failed.problems.push("verifier RSS grew".into());
        let md = markdown(&failed);
        assert!(md.starts_with("# keyshift soak: FAIL\n"));
        assert!(md.contains("## PROBLEMS\n\n- verifier RSS grew\n"));
    }

    #[test]
    fn the_files_are_written_and_read_back_as_computed() {
        let s = soak();
        let json = serde_json::to_string(&s).expect("json");
        assert_eq!(
            serde_json::from_str::<SoakSummary>(&json).expect("parse"),
            s
        );
        assert!(json.contains(r#""phase":"transition""#));
        let dir = crate::testutil::scratch_dir("soak-report");
        write(&dir, &s).expect("write");
        assert_eq!(read_back(&dir, &s).expect("read back"), s);
        let mut other = s.clone();
        other.wall_s += 1.0;
        let e = read_back(&dir, &other).expect_err("differs");
        assert!(format!("{e:#}").contains("differs"), "{e:#}");
        std::fs::write(dir.join("soak.md"), "nothing").expect("md");
        assert!(read_back(&dir, &s).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
