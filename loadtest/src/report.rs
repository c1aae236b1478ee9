//! The report: `summary.json` (stable field names, documented in
//! docs/loadtest.md), `summary.md`, and an SVG chart of throughput and p99.

use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::capacity::Capacity;

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
        "# keyshift load test\n\n{} cores, load generator and services on the same machine.\n\n| phase | req/s | p50 ms | p95 ms | p99 ms | max ms | accepted | expected rejections | unexpected | key cache | token cache | JWKS fetches | events |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
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
        md.push_str(&format!(
            "| {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {} | {} | {} | {} | {} | {} | {} |\n",
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
            p.events.join(", ")
        ));
    }
    md.push_str("\n## Outcomes (keyshift_verify_total deltas)\n\n");
    for p in &s.phases {
        let list: Vec<String> = p.outcomes.iter().map(|(k, v)| format!("{k} {v}")).collect();
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

/// An SVG bar chart: requests/s (bars) and p99 (labels) per phase.
pub fn chart(s: &Summary) -> String {
    let width = 160 * s.phases.len().max(1) + 80;
    let max_rps = s.phases.iter().map(|p| p.rps).fold(1.0, f64::max);
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="320" font-family="sans-serif" font-size="12"><text x="10" y="20" font-size="14">keyshift /verify throughput (bars) and p99 per phase</text>"#
    );
    for (i, p) in s.phases.iter().enumerate() {
        let h = (p.rps / max_rps * 220.0).max(1.0);
        let x = 60 + i * 160;
        let y = 270.0 - h;
        svg.push_str(&format!(
            r##"<rect x="{x}" y="{y:.1}" width="100" height="{h:.1}" fill="#4a78c2"/><text x="{x}" y="{:.1}">{:.0} req/s</text><text x="{x}" y="{:.1}">p99 {:.2} ms</text><text x="{x}" y="290">{}</text>"##,
            y - 18.0,
            p.rps,
            y - 4.0,
            p.p99_ms,
            p.phase
        ));
    }
    svg.push_str("</svg>\n");
    svg
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
        assert!(markdown(&s).contains("| dual | 100 |"));
        assert!(chart(&s).starts_with("<svg"));
    }
}
