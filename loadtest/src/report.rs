//! The report: `summary.json` (stable field names, documented in
//! docs/loadtest.md), `summary.md`, and an SVG chart of throughput and p99.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use keyshift_core::Phase;
use serde::{Deserialize, Serialize};

use crate::capacity::Capacity;
use crate::drive::SentCount;
use crate::events::{OutageReport, RotationReport};
use crate::proxy::ProxyCounts;
use crate::sut::Mode;
use crate::token_traffic::TokenCounts;

/// Format version of `summary.json` (4: `phases[].legacy`,
/// `phases[].gateway` and `token_endpoint` added; 3: `phases[].jwks_proxy`
/// added, `phases[].outage.forced_fetches` removed).
pub const VERSION: u32 = 4;

/// A legacy issuer's tokens in one phase (`--legacy-issuer`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct LegacySummary {
    /// Legacy tokens sent.
    pub sent: u64,
    /// Accepted where the phase accepts HS256 (200 as expected).
    pub accepted: u64,
    /// Refused in `asymmetric` (401 as expected).
    pub expected_rejections: u64,
    /// Refused where they must pass: must be 0.
    pub unexpected_rejections: u64,
    /// Accepted in `asymmetric`, or answered neither 200 nor 401: must be 0.
    pub unexpected_other: u64,
    /// `keyshift_verify_legacy_total` deltas by `loosening`: the profile's
    /// loosenings the verifier relied on.
    pub loosenings: BTreeMap<String, u64>,
}

/// The same phase's tokens through `keyshift gateway` (`--through-gateway`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct GatewaySummary {
    /// Seconds goose drove the gateway.
    pub duration_s: f64,
    /// Requests answered, every kind.
    pub requests: u64,
    /// Per second.
    pub rps: f64,
    /// Legitimate-token requests per second.
    pub legitimate_rps: f64,
    /// Latency of the legitimate-token requests (verify, sign or cache, proxy to the upstream), ms.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Per request kind, as `sent` of the phase.
    pub sent: BTreeMap<String, SentCount>,
    /// Requests goose saw answered wrongly: must be 0.
    pub unexpected: u64,
    /// `keyshift_gateway_requests_total` deltas by `outcome`.
    pub outcomes: BTreeMap<String, u64>,
    /// `keyshift_gateway_upstream_errors_total` deltas by `kind`.
    pub upstream_errors: BTreeMap<String, u64>,
    /// `keyshift_gateway_signed_total` delta: RS256 tokens signed for the upstream.
    pub signed: u64,
    /// hit / (hit + miss) of `keyshift_gateway_signed_cache_total`.
    pub signed_cache_hit_rate: Option<f64>,
    /// Signed tokens the upstream received (each checked: RS256, the route's audience).
    pub upstream_requests: u64,
    /// Upstream requests whose `Authorization` was not a gateway-signed RS256 token: must be 0.
    pub upstream_bad_tokens: u64,
    /// p50 through the gateway minus the verifier's alone, same tokens, ms.
    pub added_p50_ms: f64,
    /// p99 through the gateway minus the verifier's alone, ms.
    pub added_p99_ms: f64,
    /// Legitimate req/s through the gateway over the verifier's alone.
    pub throughput_ratio: f64,
}

/// The token endpoint's capacity per client-secret hash kind.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct TokenEndpointSummary {
    /// The phase the services were in (what the issuer signed with).
    pub phase: Option<Phase>,
    /// Concurrent clients.
    pub users: usize,
    /// Seconds of load per hash kind.
    pub seconds: f64,
    /// Token requests/s to plan for (`--token-rate`).
    pub target_rate: f64,
    /// What was done so the limiter does not distort the figures.
    pub limiter: String,
    /// One entry per hash kind.
    pub kinds: Vec<TokenKindFigures>,
}

/// The token endpoint under one client-secret hash kind.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct TokenKindFigures {
    /// `sha256`, `argon2id`, `bcrypt` or `pbkdf2-sha256`.
    pub kind: String,
    /// The hash's cost parameters.
    pub params: String,
    /// Token requests answered.
    pub requests: u64,
    /// Tokens issued per second.
    pub rps: f64,
    /// Median latency, ms.
    pub p50_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// Answers other than 200 (none expected: right secrets only).
    pub failures: u64,
    /// `keyshift_token_requests_total` deltas by `outcome` in its window.
    pub outcomes: BTreeMap<String, u64>,
    /// Issuer instances for `target_rate`, by the verifier's capacity rule.
    pub capacity: Option<Capacity>,
}

/// The issuer's side of a phase, from its `/metrics` deltas and the harness's own counts.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct IssuerSummary {
    /// `keyshift_tokens_issued_total` deltas by `alg`.
    pub tokens_issued: BTreeMap<String, u64>,
    /// `keyshift_token_requests_total` deltas by `outcome`.
    pub token_requests: BTreeMap<String, u64>,
    /// Token requests the harness sent in the window.
    pub harness_mint_attempts: u64,
    /// Tokens the harness received in the window.
    pub harness_minted: u64,
    /// The soak's background token requests in the window (one more may
    /// have been out at its start); absent outside a soak.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub background: Option<TokenCounts>,
}

/// The token pool of a phase.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct PoolSummary {
    /// Slots (legitimate tokens plus stragglers).
    pub slots: usize,
    /// Straggler slots.
    pub stragglers: usize,
    /// Uses before a token is replaced; `null`: only near expiry.
    pub reuse: Option<u64>,
    /// Replacements slots asked for.
    pub replacements_requested: u64,
    /// Replacements minted and installed.
    pub replaced: u64,
    /// Replacement mints that failed.
    pub replace_errors: u64,
}

/// One phase's figures.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PhaseSummary {
    /// The phase.
    pub phase: Phase,
    /// Seconds goose drove load (wall time).
    pub duration_s: f64,
    /// Seconds between the verifier scrapes the deltas come from.
    pub window_s: f64,
    /// Goose users.
    pub users: usize,
    /// `/verify` requests answered (every kind).
    pub requests: u64,
    /// Requests per second (every kind).
    pub rps: f64,
    /// Legitimate-token requests answered.
    pub legitimate_requests: u64,
    /// Legitimate-token requests per second.
    pub legitimate_rps: f64,
    /// Latency of the legitimate-token requests, ms.
    pub p50_ms: f64,
    /// 95th percentile.
    pub p95_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Slowest request of any kind.
    pub max_ms: f64,
    /// Per request kind: sent, ok (expected status), failed, 5xx.
    pub sent: BTreeMap<String, SentCount>,
    /// `keyshift_verify_total` deltas: `"alg/outcome"` → count.
    pub outcomes: BTreeMap<String, u64>,
    /// Expected 401s (stragglers, attack kids) answered as expected.
    pub expected_rejections: u64,
    /// Requests goose saw answered wrongly (legitimate rejected, wrong status, 5xx, timeouts).
    pub unexpected: u64,
    /// Failed checks (cross-checks, events, bounds); must be empty.
    pub problems: Vec<String>,
    /// Key-cache hit rate in [0, 1], if any lookup happened.
    pub key_cache_hit_rate: Option<f64>,
    /// Token-cache hit rate in [0, 1], if any lookup happened.
    pub token_cache_hit_rate: Option<f64>,
    /// JWKS fetches by the verifier in the window (all outcomes).
    pub jwks_fetches: u64,
    /// Of which failed.
    pub jwks_fetch_errors: u64,
    /// The most fetches the window may hold (see docs/loadtest.md).
    pub jwks_fetch_bound: u64,
    /// SIGHUPs the verifier got in or just before the window.
    pub verifier_sighups: u64,
    /// What the harness's JWKS proxy served in the window (managed mode).
    pub jwks_proxy: Option<ProxyCounts>,
    /// The issuer's side.
    pub issuer: IssuerSummary,
    /// The token pool.
    pub pool: PoolSummary,
    /// Events that ran (`attack`, `rotation`, `jwks_outage`).
    pub events: Vec<String>,
    /// The rotation, if it ran.
    pub rotation: Option<RotationReport>,
    /// The outage, if it ran.
    pub outage: Option<OutageReport>,
    /// What was skipped and why.
    pub notes: Vec<String>,
    /// Verifier resident memory at the end, KiB.
    pub verifier_rss_kib: Option<u64>,
    /// The capacity line, with `--target-rps`.
    pub capacity: Option<Capacity>,
    /// The legacy issuer's tokens, with `--legacy-issuer`.
    #[serde(default)]
    pub legacy: Option<LegacySummary>,
    /// The same tokens through the gateway, with `--through-gateway`.
    #[serde(default)]
    pub gateway: Option<GatewaySummary>,
}

/// The options a run used (for reproducing it).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunOptions {
    /// Seconds per phase.
    pub duration_s: u64,
    /// Goose users.
    pub users: usize,
    /// Legitimate slots.
    pub pool_size: usize,
    /// Uses per token.
    pub reuse: Option<u64>,
    /// Straggler share.
    pub straggler_share: f64,
    /// Attack share.
    pub attack_share: f64,
    /// Rotation on.
    pub rotate: bool,
    /// Outage on.
    pub outage: bool,
    /// `--quick`.
    pub quick: bool,
    /// `--legacy-issuer`'s share of requests.
    #[serde(default)]
    pub legacy_share: Option<f64>,
    /// `--through-gateway`: seconds through the gateway per phase.
    #[serde(default)]
    pub gateway_duration_s: Option<u64>,
    /// `--token-rate`, when the token endpoint is measured.
    #[serde(default)]
    pub token_rate: Option<f64>,
}

/// The whole run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Summary {
    /// Format version of this file ([`VERSION`]).
    pub version: u32,
    /// Unix time of the start.
    pub started_unix: u64,
    /// CPU cores of the machine (load generator and services share them).
    pub cores: usize,
    /// How the services were reached.
    pub mode: Mode,
    /// The phases asked for, in order (what `phases` must match).
    pub planned: Vec<Phase>,
    /// Options.
    pub options: RunOptions,
    /// Run-wide notes.
    pub notes: Vec<String>,
    /// What capacity figures assume, when there are any.
    pub capacity_assumption: Option<String>,
    /// One object per phase, in order.
    pub phases: Vec<PhaseSummary>,
    /// The token endpoint per hash kind (managed runs).
    #[serde(default)]
    pub token_endpoint: Option<TokenEndpointSummary>,
}

fn pct(r: Option<f64>) -> String {
    r.map(|v| format!("{:.1} %", v * 100.0))
        .unwrap_or_else(|| "—".into())
}

/// The summary as Markdown.
pub fn markdown(s: &Summary) -> String {
    let mut md = format!(
        "# keyshift load test\n\n{} cores, load generator and services on the same machine; mode {}.\n\n| phase | req/s | legit req/s | p50 ms | p95 ms | p99 ms | max ms | accepted | expected rejections | unexpected | key cache | token cache | JWKS fetches (errors) | tokens issued | events |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
        s.cores,
        s.mode.as_str()
    );
    for p in &s.phases {
        let accepted: u64 = p
            .outcomes
            .iter()
            .filter(|(k, _)| k.ends_with("/accepted"))
            .map(|(_, v)| v)
            .sum();
        let issued: Vec<String> = p
            .issuer
            .tokens_issued
            .iter()
            .map(|(alg, n)| format!("{n} {alg}"))
            .collect();
        md.push_str(&format!(
            "| {} | {:.0} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {} | {} | {} | {} | {} | {} ({}) | {} | {} |\n",
            p.phase,
            p.rps,
            p.legitimate_rps,
            p.p50_ms,
            p.p95_ms,
            p.p99_ms,
            p.max_ms,
            accepted,
            p.expected_rejections,
            p.unexpected,
            pct(p.key_cache_hit_rate),
            pct(p.token_cache_hit_rate),
            p.jwks_fetches,
            p.jwks_fetch_errors,
            if issued.is_empty() { "0".to_owned() } else { issued.join(", ") },
            p.events.join(", ")
        ));
    }
    md.push_str("\n## Outcomes (keyshift_verify_total deltas) and what was sent\n\n");
    for p in &s.phases {
        let outcomes: Vec<String> = p.outcomes.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let sent: Vec<String> = p
            .sent
            .iter()
            .filter(|(_, c)| c.sent > 0)
            .map(|(k, c)| format!("{k} {}", c.ok + c.failed))
            .collect();
        md.push_str(&format!(
            "- **{}**: {} — sent: {}\n",
            p.phase,
            outcomes.join(", "),
            sent.join(", ")
        ));
    }
    md.push_str("\n## Issuer (keyshift_token_requests_total deltas) and token pool\n\n");
    for p in &s.phases {
        let req: Vec<String> = p
            .issuer
            .token_requests
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        md.push_str(&format!(
            "- **{}**: token requests {}; pool {} slots ({} stragglers), reuse {}, {} tokens replaced\n",
            p.phase,
            if req.is_empty() { "none".to_owned() } else { req.join(", ") },
            p.pool.slots,
            p.pool.stragglers,
            p.pool.reuse.map(|n| n.to_string()).unwrap_or_else(|| "until near expiry".into()),
            p.pool.replaced
        ));
    }
    let events: Vec<String> = s
        .phases
        .iter()
        .flat_map(|p| {
            let rotation = p.rotation.as_ref().map(|r| {
                format!(
                    "- **{}** rotation: new kid {}, {} tokens with it in the pool{}\n",
                    p.phase,
                    r.new_kid.as_deref().unwrap_or("none"),
                    r.new_kid_tokens,
                    r.note.as_ref().map(|n| format!(" ({n})")).unwrap_or_default()
                )
            });
            let outage = p.outage.as_ref().map(|o| {
                format!(
                    "- **{}** JWKS outage: {:.1} s, {} 503s served, forced fetch {}, {} failed fetch(es) counted by the verifier\n",
                    p.phase,
                    o.seconds,
                    o.proxy_503s,
                    if o.forced_fetch_answered { "answered" } else { "not answered" },
                    p.jwks_fetch_errors
                )
            });
            rotation.into_iter().chain(outage)
        })
        .collect();
    if !events.is_empty() {
        md.push_str("\n## Events\n\n");
        md.push_str(&events.concat());
    }
    if s.phases.iter().any(|p| p.legacy.is_some()) {
        md.push_str("\n## Legacy issuer (tokens of an independent HS256 issuer, legacy shapes)\n\n| phase | sent | accepted | refused as expected | unexpected rejections | other unexpected | loosenings relied on |\n|---|---|---|---|---|---|---|\n");
        for p in &s.phases {
            if let Some(l) = &p.legacy {
                let loosenings: Vec<String> = l
                    .loosenings
                    .iter()
                    .map(|(k, v)| format!("{k} {v}"))
                    .collect();
                md.push_str(&format!(
                    "| {} | {} | {} | {} | {} | {} | {} |\n",
                    p.phase,
                    l.sent,
                    l.accepted,
                    l.expected_rejections,
                    l.unexpected_rejections,
                    l.unexpected_other,
                    if loosenings.is_empty() {
                        "none".to_owned()
                    } else {
                        loosenings.join(", ")
                    }
                ));
            }
        }
    }
    if s.phases.iter().any(|p| p.gateway.is_some()) {
        md.push_str("\n## Through the gateway (same tokens, verify + sign, loopback upstream)\n\n| phase | req/s | legit req/s | p50 ms | p99 ms | unexpected | signed-token cache | tokens signed | upstream errors | added p50 ms | added p99 ms | throughput vs verifier |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n");
        for p in &s.phases {
            if let Some(g) = &p.gateway {
                md.push_str(&format!(
                    "| {} | {:.0} | {:.0} | {:.2} | {:.2} | {} | {} | {} | {} | {:+.2} | {:+.2} | {:.0} % |\n",
                    p.phase,
                    g.rps,
                    g.legitimate_rps,
                    g.p50_ms,
                    g.p99_ms,
                    g.unexpected,
                    pct(g.signed_cache_hit_rate),
                    g.signed,
                    g.upstream_errors.values().sum::<u64>(),
                    g.added_p50_ms,
                    g.added_p99_ms,
                    g.throughput_ratio * 100.0
                ));
            }
        }
    }
    if let Some(t) = &s.token_endpoint {
        md.push_str(&format!(
            "\n## Token endpoint (POST /oauth/token) per client-secret hash kind\n\nPhase {}, {} concurrent clients, {:.0} s per kind; {}.\n\n| hash | parameters | tokens/s | p50 ms | p99 ms | failures | issuers for {:.0} tokens/s |\n|---|---|---|---|---|---|---|\n",
            t.phase.map(|p| p.as_str()).unwrap_or("?"),
            t.users,
            t.seconds,
            t.limiter,
            t.target_rate
        ));
        for k in &t.kinds {
            md.push_str(&format!(
                "| {} | {} | {:.1} | {:.2} | {:.2} | {} | {} |\n",
                k.kind,
                k.params,
                k.rps,
                k.p50_ms,
                k.p99_ms,
                k.failures,
                k.capacity
                    .as_ref()
                    .and_then(|c| c.instances)
                    .map(|n| n.to_string())
                    .unwrap_or_else(|| "n/a".into())
            ));
        }
    }
    if s.phases.iter().any(|p| p.capacity.is_some()) {
        md.push_str("\n## Capacity\n\n");
        if let Some(a) = &s.capacity_assumption {
            md.push_str(&format!("Assumption: {a}.\n\n"));
        }
        for p in &s.phases {
            if let Some(c) = &p.capacity {
                md.push_str(&format!("- **{}**: {}\n", p.phase, c.verdict));
            }
        }
    }
    let notes: Vec<String> = s
        .notes
        .iter()
        .cloned()
        .chain(
            s.phases
                .iter()
                .flat_map(|p| p.notes.iter().map(move |n| format!("{}: {n}", p.phase))),
        )
        .collect();
    if !notes.is_empty() {
        md.push_str("\n## Notes\n\n");
        for n in notes {
            md.push_str(&format!("- {n}\n"));
        }
    }
    let problems: Vec<String> = s
        .phases
        .iter()
        .flat_map(|p| p.problems.iter().map(move |n| format!("{}: {n}", p.phase)))
        .collect();
    if !problems.is_empty() {
        md.push_str("\n## PROBLEMS\n\n");
        for n in problems {
            md.push_str(&format!("- {n}\n"));
        }
    }
    md
}

/// Escapes text for SVG.
fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// An SVG with two panels sharing the phase axis: requests/s (bars; the
/// darker part legitimate tokens) on top, p99 of the legitimate-token
/// requests (bars, its own ms axis) below.
pub fn chart(s: &Summary) -> String {
    const LEFT: usize = 70;
    const STEP: usize = 150;
    const BAR: usize = 90;
    const PANEL_H: f64 = 170.0;
    let n = s.phases.len().max(1);
    let width = LEFT + STEP * n + 30;
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="500" font-family="sans-serif" font-size="12"><text x="10" y="20" font-size="14">keyshift /verify per phase: throughput and p99 latency</text>"#
    );
    // One panel: axis at `base` (its bottom), scaled to a round maximum.
    let mut panel = |title: &str,
                     base: f64,
                     max: f64,
                     color: &str,
                     values: &[(f64, Option<f64>)]| {
        let max = nice_max(max);
        let top = base - PANEL_H;
        let label = |v: f64| {
            if max >= 10.0 {
                format!("{v:.0}")
            } else {
                format!("{v:.2}")
            }
        };
        svg.push_str(&format!(
            r##"<text x="10" y="{:.1}" font-size="13">{}</text>"##,
            top - 12.0,
            xml(title)
        ));
        for i in 0..=4 {
            let v = max * f64::from(i) / 4.0;
            let y = base - PANEL_H * f64::from(i) / 4.0;
            svg.push_str(&format!(
                r##"<line x1="{LEFT}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
                width - 20,
                LEFT - 4,
                y + 4.0,
                label(v)
            ));
        }
        svg.push_str(&format!(
            r##"<line x1="{LEFT}" y1="{top:.1}" x2="{LEFT}" y2="{base:.1}" stroke="#333"/><line x1="{LEFT}" y1="{base:.1}" x2="{}" y2="{base:.1}" stroke="#333"/>"##,
            width - 20
        ));
        for (i, (value, inner)) in values.iter().enumerate() {
            let x = LEFT + 20 + i * STEP;
            let h = (value / max * PANEL_H).clamp(1.0, PANEL_H);
            let opacity = if inner.is_some() { 0.45 } else { 1.0 };
            svg.push_str(&format!(
                r##"<rect x="{x}" y="{:.1}" width="{BAR}" height="{h:.1}" fill="{color}" fill-opacity="{opacity}"/>"##,
                base - h
            ));
            if let Some(inner) = inner {
                let hi = (inner / max * PANEL_H).clamp(0.0, h);
                svg.push_str(&format!(
                    r##"<rect x="{x}" y="{:.1}" width="{BAR}" height="{hi:.1}" fill="{color}"/>"##,
                    base - hi
                ));
            }
            svg.push_str(&format!(
                r#"<text x="{}" y="{:.1}" text-anchor="middle">{}</text>"#,
                x + BAR / 2,
                base - h - 4.0,
                if *value >= 10.0 {
                    format!("{value:.0}")
                } else {
                    format!("{value:.2}")
                }
            ));
        }
    };
    let rps: Vec<(f64, Option<f64>)> = s
        .phases
        .iter()
        .map(|p| (p.rps, Some(p.legitimate_rps)))
        .collect();
    let p99: Vec<(f64, Option<f64>)> = s.phases.iter().map(|p| (p.p99_ms, None)).collect();
    let max_rps = rps.iter().map(|v| v.0).fold(0.0, f64::max);
    let max_p99 = p99.iter().map(|v| v.0).fold(0.0, f64::max);
    panel(
        "throughput, requests/s (all requests; darker: legitimate tokens)",
        240.0,
        max_rps,
        "#4a78c2",
        &rps,
    );
    panel(
        "p99 latency of legitimate-token requests, ms",
        460.0,
        max_p99,
        "#d9822b",
        &p99,
    );
    for (i, p) in s.phases.iter().enumerate() {
        svg.push_str(&format!(
            r#"<text x="{}" y="480" text-anchor="middle">{}</text>"#,
            LEFT + 20 + i * STEP + BAR / 2,
            p.phase
        ));
    }
    svg.push_str("</svg>\n");
    svg
}

/// The smallest 1, 2 or 5 times a power of ten that is at least `v` (and
/// leaves room above the tallest bar's label); 1 for nothing to plot.
fn nice_max(v: f64) -> f64 {
    if !(v > 0.0 && v.is_finite()) {
        return 1.0;
    }
    let v = v * 1.1;
    let p = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * p)
        .find(|c| *c >= v)
        .unwrap_or(10.0 * p)
}

/// Writes summary.json, summary.md and chart.svg into `dir`.
pub fn write(dir: &Path, s: &Summary) -> anyhow::Result<()> {
    std::fs::write(dir.join("summary.json"), serde_json::to_string_pretty(s)?)
        .context("summary.json")?;
    std::fs::write(dir.join("summary.md"), markdown(s)).context("summary.md")?;
    std::fs::write(dir.join("chart.svg"), chart(s)).context("chart.svg")?;
    Ok(())
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use crate::pool::Kind;

    /// A plausible summary of a clean `dual` phase.
    pub fn phase(phase: Phase) -> PhaseSummary {
        PhaseSummary {
            phase,
            duration_s: 10.0,
            window_s: 10.5,
            users: 4,
            requests: 1000,
            rps: 100.0,
            legitimate_requests: 980,
            legitimate_rps: 98.0,
            p50_ms: 0.5,
            p95_ms: 1.0,
            p99_ms: 2.0,
            max_ms: 5.0,
            sent: [
                (
                    Kind::Hs256.name().to_owned(),
                    SentCount {
                        sent: 980,
                        ok: 980,
                        failed: 0,
                        server_errors: 0,
                        outage_503: 0,
                    },
                ),
                (
                    Kind::Attack.name().to_owned(),
                    SentCount {
                        sent: 20,
                        ok: 20,
                        failed: 0,
                        server_errors: 0,
                        outage_503: 0,
                    },
                ),
            ]
            .into_iter()
            .collect(),
            outcomes: [
                ("HS256/accepted".to_owned(), 980),
                ("RS256/unknown_kid".to_owned(), 20),
            ]
            .into_iter()
            .collect(),
            expected_rejections: 20,
            unexpected: 0,
            problems: vec![],
            key_cache_hit_rate: Some(0.0),
            token_cache_hit_rate: Some(0.9),
            jwks_fetches: 11,
            jwks_fetch_errors: 0,
            jwks_fetch_bound: 16,
            verifier_sighups: 1,
            jwks_proxy: Some(ProxyCounts {
                requests: 11,
                served_503: 0,
                served_502: 0,
            }),
            issuer: IssuerSummary {
                tokens_issued: [("HS256".to_owned(), 45)].into_iter().collect(),
                token_requests: [("issued".to_owned(), 45)].into_iter().collect(),
                harness_mint_attempts: 45,
                harness_minted: 45,
                background: None,
            },
            pool: PoolSummary {
                slots: 40,
                stragglers: 0,
                reuse: Some(50),
                replacements_requested: 5,
                replaced: 5,
                replace_errors: 0,
            },
            events: vec!["attack".into()],
            rotation: None,
            outage: None,
            notes: vec![],
            verifier_rss_kib: Some(10_000),
            capacity: None,
            legacy: None,
            gateway: None,
        }
    }

    /// A summary of one dual phase.
    pub fn sample() -> Summary {
        Summary {
            version: VERSION,
            started_unix: 1,
            cores: 2,
            mode: Mode::Managed,
            planned: vec![Phase::Dual],
            options: RunOptions {
                duration_s: 10,
                users: 4,
                pool_size: 40,
                reuse: Some(50),
                straggler_share: 0.05,
                attack_share: 0.02,
                rotate: true,
                outage: true,
                quick: false,
                legacy_share: None,
                gateway_duration_s: None,
                token_rate: None,
            },
            notes: vec!["a note".into()],
            capacity_assumption: None,
            phases: vec![phase(Phase::Dual)],
            token_endpoint: None,
        }
    }

    #[test]
    fn summary_round_trips_and_renders() {
        let s = sample();
        let json = serde_json::to_string(&s).expect("json");
        assert!(
            json.contains(r#""phase":"dual""#),
            "phases serialize as their config value"
        );
        assert_eq!(serde_json::from_str::<Summary>(&json).expect("parse"), s);
        let md = markdown(&s);
        assert!(md.contains("| dual | 100 | 98 |"), "{md}");
        assert!(md.contains("45 HS256"));
        assert!(md.contains("- a note"));
        assert!(md.contains("mode managed."));
        assert!(!md.contains("PROBLEMS"));
    }

    #[test]
    fn the_new_modes_render_their_sections() {
        let mut s = sample();
        s.phases[0].legacy = Some(LegacySummary {
            sent: 100,
            accepted: 99,
            unexpected_rejections: 1,
            ..LegacySummary::default()
        });
        s.phases[0].gateway = Some(GatewaySummary {
            signed_cache_hit_rate: Some(0.5),
            ..GatewaySummary::default()
        });
        s.token_endpoint = Some(TokenEndpointSummary {
            kinds: vec![TokenKindFigures {
                kind: "bcrypt".into(),
                ..TokenKindFigures::default()
            }],
            ..TokenEndpointSummary::default()
        });
        let md = markdown(&s);
        assert!(
            md.contains("| dual | 100 | 99 | 0 | 1 | 0 | none |"),
            "{md}"
        );
        assert!(md.contains("50.0 %"), "{md}");
        assert!(md.contains("| bcrypt |"), "{md}");
        let json = serde_json::to_string(&s).expect("json");
        assert_eq!(serde_json::from_str::<Summary>(&json).expect("parse"), s);
    }

    #[test]
    fn modes_are_named_as_they_serialize() {
        for mode in [
            Mode::Managed,
            Mode::ExternalControlled,
            Mode::ExternalObserved,
        ] {
            assert_eq!(
                serde_json::to_value(mode).expect("json"),
                serde_json::Value::from(mode.as_str())
            );
        }
    }

    #[test]
    fn the_chart_plots_throughput_and_p99_per_phase() {
        let mut s = sample();
        let mut second = phase(Phase::Transition);
        second.p99_ms = 4.0;
        s.phases.push(second);
        let svg = chart(&s);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        // Per phase: a throughput bar, its legitimate part, and a p99 bar.
        assert_eq!(svg.matches("<rect").count(), 3 * s.phases.len());
        assert!(svg.contains("p99 latency"));
        assert!(svg.contains(">4.00<"), "the p99 value is labelled");
        assert!(svg.contains(">transition<"));
    }

    #[test]
    fn axes_end_on_round_numbers() {
        assert_eq!(nice_max(4_398.0), 5_000.0);
        assert_eq!(nice_max(6.11), 10.0);
        assert_eq!(nice_max(1.7), 2.0);
        assert_eq!(nice_max(0.0), 1.0);
        assert_eq!(nice_max(f64::NAN), 1.0);
    }
}
