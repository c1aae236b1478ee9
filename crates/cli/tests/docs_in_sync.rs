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
