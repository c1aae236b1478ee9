//! The report: `summary.json` (stable field names, documented in
//! docs/loadtest.md), `summary.md`, and an SVG chart of throughput and p99.

use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::capacity::Capacity;

/// The issuer's side of a phase, from its `/metrics` deltas.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct IssuerSummary {
    /// `keyshift_tokens_issued_total` deltas by `alg`.
    pub tokens_issued: std::collections::BTreeMap<String, u64>,
    /// `keyshift_token_requests_total` deltas by `outcome`.
    pub token_requests: std::collections::BTreeMap<String, u64>,
}

/// One phase's figures.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PhaseSummary {
    /// `dual`, `transition` or `asymmetric`.
    pub phase: String,
    /// Seconds goose drove load.
    pub duration_s: f64,
    /// Goose users.
    pub users: usize,
    /// `/verify` requests sent.
    pub requests: u64,
    /// Requests per second.
    pub rps: f64,
    /// Latency percentiles from goose, milliseconds.
    pub p50_ms: f64,
    /// 95th percentile.
    pub p95_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Slowest.
    pub max_ms: f64,
    /// `keyshift_verify_total` deltas: "alg/outcome" → count.
    pub outcomes: std::collections::BTreeMap<String, u64>,
    /// Rejections that were expected (stragglers, attack tokens).
    pub expected_rejections: u64,
    /// Legitimate tokens rejected, wrong statuses, 5xx: must be 0.
    pub unexpected: u64,
    /// Key-cache hit rate in [0, 1], if any lookup happened.
    pub key_cache_hit_rate: Option<f64>,
    /// Token-cache hit rate in [0, 1], if any lookup happened.
    pub token_cache_hit_rate: Option<f64>,
    /// JWKS fetches by the verifier during the phase.
    pub jwks_fetches: u64,
    /// The issuer's side.
    pub issuer: IssuerSummary,
    /// Events run in the phase (`rotation`, `jwks_outage`, `attack`).
    pub events: Vec<String>,
    /// Verifier resident memory at the end, KiB.
    pub verifier_rss_kib: Option<u64>,
    /// Instances needed for `--target-rps`, if given.
    pub capacity: Option<Capacity>,
}

/// The whole run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Summary {
    /// Format version of this file.
    pub version: u32,
    /// Unix time of the start.
    pub started_unix: u64,
    /// CPU cores of the machine (load generator and services share them).
    pub cores: usize,
    /// What capacity figures assume, when there are any.
    pub capacity_assumption: Option<String>,
    /// One object per phase, in order.
    pub phases: Vec<PhaseSummary>,
}

/// The summary as a Markdown table.
pub fn markdown(s: &Summary) -> String {
    let mut md = format!(
        "# keyshift load test\n\n{} cores, load generator and services on the same machine.\n\n| phase | req/s | p50 ms | p95 ms | p99 ms | max ms | accepted | expected rejections | unexpected | key cache | token cache | JWKS fetches | tokens issued | events |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
        s.cores
    );
    let pct = |r: Option<f64>| {
        r.map(|v| format!("{:.1} %", v * 100.0))
            .unwrap_or_else(|| "—".into())
    };
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
            "| {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            p.phase,
            p.rps,
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
            if issued.is_empty() {
                "0".to_owned()
            } else {
                issued.join(", ")
            },
            p.events.join(", ")
        ));
    }
    md.push_str("\n## Outcomes (keyshift_verify_total deltas)\n\n");
    for p in &s.phases {
        let list: Vec<String> = p.outcomes.iter().map(|(k, v)| format!("{k} {v}")).collect();
        md.push_str(&format!("- **{}**: {}\n", p.phase, list.join(", ")));
    }
    md.push_str("\n## Issuer (keyshift_token_requests_total deltas)\n\n");
    for p in &s.phases {
        let list: Vec<String> = p
            .issuer
            .token_requests
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        md.push_str(&format!("- **{}**: {}\n", p.phase, list.join(", ")));
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
    md
}

/// Escapes text for SVG.
fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// An SVG with two panels sharing the phase axis: requests/s (bars) on
/// top, p99 of the legitimate-token requests (bars, its own ms axis) below.
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
    let rps: Vec<(f64, Option<f64>)> = s.phases.iter().map(|p| (p.rps, None)).collect();
    let p99: Vec<(f64, Option<f64>)> = s.phases.iter().map(|p| (p.p99_ms, None)).collect();
    let max_rps = rps.iter().map(|v| v.0).fold(0.0, f64::max);
    let max_p99 = p99.iter().map(|v| v.0).fold(0.0, f64::max);
    panel("throughput, requests/s", 240.0, max_rps, "#4a78c2", &rps);
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
    std::fs::write(dir.join("summary.json"), serde_json::to_vec_pretty(s)?)
        .context("summary.json")?;
    std::fs::write(dir.join("summary.md"), markdown(s)).context("summary.md")?;
    std::fs::write(dir.join("chart.svg"), chart(s)).context("chart.svg")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Summary {
        Summary {
            version: 1,
            started_unix: 1,
            cores: 2,
            capacity_assumption: None,
            phases: vec![PhaseSummary {
                phase: "dual".into(),
                duration_s: 10.0,
                users: 4,
                requests: 1000,
                rps: 100.0,
                p50_ms: 0.5,
                p95_ms: 1.0,
                p99_ms: 2.0,
                max_ms: 5.0,
                outcomes: [("HS256/accepted".to_owned(), 1000)].into_iter().collect(),
                expected_rejections: 0,
                unexpected: 0,
                key_cache_hit_rate: None,
                token_cache_hit_rate: Some(0.9),
                jwks_fetches: 0,
                issuer: IssuerSummary {
                    tokens_issued: [("HS256".to_owned(), 45)].into_iter().collect(),
                    token_requests: [("issued".to_owned(), 45)].into_iter().collect(),
                },
                events: vec![],
                verifier_rss_kib: Some(10_000),
                capacity: None,
            }],
        }
    }

    #[test]
    fn summary_round_trips_and_renders() {
        let s = sample();
        let json = serde_json::to_string(&s).expect("json");
        assert_eq!(serde_json::from_str::<Summary>(&json).expect("parse"), s);
        let md = markdown(&s);
        assert!(md.contains("| dual | 100 |"));
        assert!(md.contains("| 45 HS256 |"), "{md}");
        assert!(md.contains("- **dual**: issued 45"), "{md}");
    }

    #[test]
    fn the_chart_plots_throughput_and_p99_per_phase() {
        let mut s = sample();
        let mut second = s.phases[0].clone();
        second.phase = "transition".into();
        second.p99_ms = 4.0;
        s.phases.push(second);
        let svg = chart(&s);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        // Per phase: a throughput bar and a p99 bar.
        assert_eq!(svg.matches("<rect").count(), 2 * s.phases.len());
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
