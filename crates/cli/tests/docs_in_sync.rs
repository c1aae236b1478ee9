//! docs/metrics.md, the dashboard and the alert rules name only metrics the
//! code exports, and the docs list every metric the code exports.

use keyshift_issuer::metrics as issuer;
use keyshift_verifier::metrics as verifier;

const EXPORTED: &[&str] = &[
    verifier::VERIFY_TOTAL,
    verifier::VERIFY_DURATION,
    verifier::KEY_CACHE,
    verifier::TOKEN_CACHE,
    verifier::JWKS_FETCH,
    verifier::JWKS_KEYS,
    verifier::JWKS_LAST_SUCCESS,
    verifier::LAST_ACCEPTED,
    verifier::READY_FOR_ASYMMETRIC,
    verifier::HS256_VALID_UNTIL,
    verifier::JWKS_MAX_STALENESS,
    keyshift_core::phase_metrics::PHASE_INFO,
    keyshift_core::phase_metrics::SECRET_CONFIGURED,
    issuer::TOKENS_ISSUED,
    issuer::TOKEN_REQUESTS,
    issuer::SIGNING_KEYS,
    issuer::NEXT_ROTATION,
];

fn doc(path: &str) -> String {
    std::fs::read_to_string(format!("{}/../../{path}", env!("CARGO_MANIFEST_DIR"))).expect(path)
}

/// Every `keyshift_…` metric name in `text` (histogram series suffixes folded).
fn names_in(text: &str) -> Vec<String> {
    let mut names: Vec<String> = text
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|w| w.starts_with("keyshift_") && !w.contains(':'))
        .map(|w| {
            w.trim_end_matches("_bucket")
                .trim_end_matches("_sum")
                .trim_end_matches("_count")
                .to_owned()
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

#[test]
fn metrics_doc_lists_every_exported_metric() {
    let text = doc("docs/metrics.md");
    for name in EXPORTED {
        assert!(
            text.contains(&format!("`{name}`")),
            "docs/metrics.md does not document {name}"
        );
    }
}

#[test]
fn dashboard_alerts_and_docs_use_only_exported_metrics() {
    for path in [
        "docs/metrics.md",
        "docs/dashboards/keyshift-migration.json",
        "docs/alerts/keyshift.rules.yml",
        "docs/migration-runbook.md",
    ] {
        for name in names_in(&doc(path)) {
            assert!(
                EXPORTED.contains(&name.as_str()),
                "{path} names {name}, which nothing exports"
            );
        }
    }
}

// === runbook links ===

/// GitHub's anchor for a heading: lower case; letters, digits, `-` and `_`
/// kept, spaces turned into `-`, everything else (punctuation, arrows,
/// backticks) dropped.
fn github_slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// The anchors of every heading of a markdown text (outside code fences),
/// with GitHub's `-1`, `-2`, … suffixes for repeated headings.
fn anchors(markdown: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut in_code = false;
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        let hashes = line.chars().take_while(|&c| c == '#').count();
        if in_code || !(1..=6).contains(&hashes) {
            continue;
        }
        let Some(text) = line[hashes..].strip_prefix(' ') else {
            continue;
        };
        let slug = github_slug(text);
        let repeats = out
            .iter()
            .filter(|a| {
                **a == slug
                    || a.strip_prefix(&format!("{slug}-"))
                        .is_some_and(|n| n.parse::<u32>().is_ok())
            })
            .count();
        out.push(if repeats == 0 {
            slug
        } else {
            format!("{slug}-{repeats}")
        });
    }
    out
}

/// `(alert name, runbook_url)` for every alert of the rules file.
fn alert_runbooks() -> Vec<(String, Option<String>)> {
    let mut alerts: Vec<(String, Option<String>)> = Vec::new();
    for line in doc("docs/alerts/keyshift.rules.yml").lines() {
        let line = line.trim();
        if let Some(name) = line.strip_prefix("- alert:") {
            alerts.push((name.trim().to_owned(), None));
        } else if let Some(url) = line.strip_prefix("runbook_url:") {
            let last = alerts.last_mut().expect("runbook_url before any alert");
            last.1 = Some(url.trim().trim_matches('"').to_owned());
        }
    }
    alerts
}

#[test]
fn github_slugs_match_what_github_renders() {
    assert_eq!(
        github_slug("Phase 2 → 3 (`transition` → `asymmetric`): RS256 only"),
        "phase-2--3-transition--asymmetric-rs256-only"
    );
    assert_eq!(
        github_slug("KeyshiftJwksFetchFailing"),
        "keyshiftjwksfetchfailing"
    );
    assert_eq!(
        anchors("# A\n```\n# not a heading\n```\n## A\n### a\n"),
        ["a", "a-1", "a-2"]
    );
}

#[test]
fn every_alert_links_to_its_own_runbook_section() {
    let alerts = alert_runbooks();
    assert!(alerts.len() >= 10, "alerts not found in the rules file");
    for (alert, url) in alerts {
        let url = url.unwrap_or_else(|| panic!("{alert} has no runbook_url"));
        let (path, anchor) = url
            .split_once('#')
            .unwrap_or_else(|| panic!("{alert}: runbook_url {url} has no #anchor"));
        assert!(path.starts_with("docs/"), "{alert}: {url} is not in docs/");
        let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(path);
        let text = std::fs::read_to_string(&file)
            .unwrap_or_else(|e| panic!("{alert}: {url}: {path} cannot be read: {e}"));
        assert!(
            anchors(&text).iter().any(|a| a == anchor),
            "{alert}: {url}: no heading with anchor #{anchor} in {path}"
        );
        assert_eq!(
            anchor,
            github_slug(&alert),
            "{alert}: its runbook_url must point at the section named after it"
        );
    }
}

#[test]
fn links_between_the_operator_docs_resolve() {
    for path in [
        "docs/migration-runbook.md",
        "docs/metrics.md",
        "docs/security.md",
        "docs/architecture.md",
    ] {
        let text = doc(path);
        for (i, _) in text.match_indices("](") {
            let target: String = text[i + 2..].chars().take_while(|&c| c != ')').collect();
            if target.starts_with("http") {
                continue;
            }
            let (file, anchor) = target.split_once('#').unwrap_or((target.as_str(), ""));
            let dir = std::path::Path::new(path).parent().expect("docs/");
            let linked = if file.is_empty() {
                path.to_owned()
            } else {
                dir.join(file).to_string_lossy().into_owned()
            };
            let full = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../..")
                .join(&linked);
            assert!(
                full.exists(),
                "{path}: link to {target}: {linked} does not exist"
            );
            if !anchor.is_empty() {
                assert!(
                    anchors(&doc(&linked)).iter().any(|a| a == anchor),
                    "{path}: link to {target}: no such heading in {linked}"
                );
            }
        }
    }
}
