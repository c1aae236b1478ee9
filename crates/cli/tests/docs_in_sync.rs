//! docs/metrics.md, the dashboard and the alert rules name only metrics the
//! code exports; the docs list every metric the real binary renders, with its
//! type, its label names and every label value it renders; every alert links
//! to its own runbook section.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::{fetch_token, http, start, write_config};
use keyshift_core::Phase;
use keyshift_gateway::metrics as gateway;
use keyshift_issuer::metrics as issuer;
use keyshift_testkit::prom::{self, Line};
use keyshift_testkit::{eventually, Service};
use keyshift_verifier::metrics as verifier;

const EXPORTED: &[&str] = &[
    verifier::VERIFY_TOTAL,
    verifier::VERIFY_LEGACY_TOTAL,
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
    verifier::PHASE_FORCED,
    keyshift_core::phase_metrics::PHASE_INFO,
    keyshift_core::phase_metrics::SECRET_CONFIGURED,
    keyshift_core::ops_metrics::BUILD_INFO,
    keyshift_core::ops_metrics::CONFIG_RELOADS,
    keyshift_core::ops_metrics::CONFIG_LAST_RELOAD_SUCCESS,
    keyshift_core::ops_metrics::CONFIG_LAST_RELOAD_SUCCESSFUL,
    keyshift_core::phase_metrics::SECRET_WEAK,
    issuer::TOKENS_ISSUED,
    issuer::TOKEN_REQUESTS,
    issuer::TOKEN_REQUEST_DURATION,
    keyshift_http::metrics::CONNECTIONS_OPEN,
    keyshift_http::metrics::CONNECTIONS_REJECTED,
    issuer::SIGNING_KEYS,
    issuer::NEXT_ROTATION,
    gateway::REQUESTS,
    gateway::DURATION,
    gateway::UPSTREAM_ERRORS,
    gateway::SIGNED,
    gateway::SIGNED_CACHE,
];

/// The standard process metrics the binary renders beside its own (both
/// services; `crates/cli/src/process_metrics.rs`).
const PROCESS: &[&str] = &[
    "process_cpu_seconds_total",
    "process_resident_memory_bytes",
    "process_virtual_memory_bytes",
    "process_open_fds",
    "process_max_fds",
    "process_start_time_seconds",
];

fn doc(path: &str) -> String {
    std::fs::read_to_string(format!("{}/../../{path}", env!("CARGO_MANIFEST_DIR"))).expect(path)
}

/// Every `keyshift_…` and `process_…` metric name in `text` (histogram
/// series suffixes folded).
fn names_in(text: &str) -> Vec<String> {
    let mut names: Vec<String> = text
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|w| (w.starts_with("keyshift_") || w.starts_with("process_")) && !w.contains(':'))
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
    for name in EXPORTED.iter().chain(PROCESS) {
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
        "docs/security.md",
        "docs/architecture.md",
    ] {
        // The runbook base is an external label of Prometheus, not a metric.
        for name in names_in(&doc(path))
            .into_iter()
            .filter(|n| n != RUNBOOK_LABEL)
        {
            assert!(
                EXPORTED.contains(&name.as_str()) || PROCESS.contains(&name.as_str()),
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

/// The external label that sets the runbook base (not a metric).
const RUNBOOK_LABEL: &str = "keyshift_runbook_url";

/// The one base of every alert's runbook_url: the evaluating Prometheus's
/// external label `keyshift_runbook_url`, else the runbook in the repository.
const RUNBOOK_BASE: &str = "{{ or $externalLabels.keyshift_runbook_url \"https://example.invalid/keyshift/blob/main/docs/migration-runbook.md\" }}";

/// `(alert name, runbook_url)` for every alert of the rules file.
fn alert_runbooks() -> Vec<(String, Option<String>)> {
    let mut alerts: Vec<(String, Option<String>)> = Vec::new();
    for line in doc("docs/alerts/keyshift.rules.yml").lines() {
        let line = line.trim();
        if let Some(name) = line.strip_prefix("- alert:") {
            alerts.push((name.trim().to_owned(), None));
        } else if let Some(url) = line.strip_prefix("runbook_url:") {
            let last = alerts.last_mut().expect("runbook_url before any alert");
            last.1 = Some(url.trim().trim_matches('\'').to_owned());
        }
    }
    alerts
}

#[test]
fn runbook_urls_are_absolute_from_one_base_in_the_repository() {
    let repository = doc("Cargo.toml")
        .lines()
        .find_map(|l| l.strip_prefix("repository = "))
        .map(|r| r.trim_matches('"').to_owned())
        .expect("workspace repository");
    let default = RUNBOOK_BASE
        .split('"')
        .nth(1)
        .expect("the default base is quoted");
    assert_eq!(
        default,
        format!("{repository}/blob/main/docs/migration-runbook.md"),
        "the default runbook base is the repository's runbook"
    );
    for (alert, url) in alert_runbooks() {
        let url = url.unwrap_or_else(|| panic!("{alert} has no runbook_url"));
        assert!(
            url.starts_with(&format!("{RUNBOOK_BASE}#")),
            "{alert}: runbook_url {url} is not built from the one base"
        );
    }
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
        let anchor = url
            .strip_prefix(&format!("{RUNBOOK_BASE}#"))
            .unwrap_or_else(|| panic!("{alert}: runbook_url {url} has no #anchor on the base"));
        let path = "docs/migration-runbook.md";
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

// === metric types and labels against a real scrape ===

/// One metric family: its type and, per label name, the values seen
/// (documented: the values listed, empty when the doc does not enumerate them).
#[derive(Debug, Default)]
struct Family {
    kind: String,
    labels: BTreeMap<String, BTreeSet<String>>,
}

/// The families of a Prometheus text exposition: `# TYPE` lines give the
/// types; sample lines (`_bucket`/`_sum`/`_count` folded into their
/// histogram) give label names and values, `le` left out.
fn parse_exposition(text: &str) -> BTreeMap<String, Family> {
    let mut families: BTreeMap<String, Family> = BTreeMap::new();
    for line in text.lines() {
        let series = match prom::line(line) {
            Line::Type { name, kind } => {
                families.entry(name.to_owned()).or_default().kind = kind.to_owned();
                continue;
            }
            Line::Comment => continue,
            Line::Malformed(line) => panic!("not an exposition line: {line:?}"),
            Line::Sample(series, _) => series,
        };
        let mut name = series.name.as_str();
        if !families.contains_key(name) {
            for suffix in ["_bucket", "_sum", "_count"] {
                if let Some(base) = name.strip_suffix(suffix) {
                    if families.get(base).is_some_and(|f| f.kind == "histogram") {
                        name = base;
                    }
                }
            }
        }
        let family = families
            .get_mut(name)
            .unwrap_or_else(|| panic!("sample {name} without a # TYPE line"));
        for (label, value) in series.labels.iter().filter(|(l, _)| *l != "le") {
            family
                .labels
                .entry(label.clone())
                .or_default()
                .insert(value.clone());
        }
    }
    families
}

/// The cells of a markdown table row (`\\|` inside a cell is not a separator).
fn table_cells(row: &str) -> Vec<String> {
    let mut cells = vec![String::new()];
    let mut prev = ' ';
    for c in row
        .trim()
        .trim_start_matches('|')
        .trim_end_matches('|')
        .chars()
    {
        if c == '|' && prev != '\\' {
            cells.push(String::new());
        } else if let Some(cell) = cells.last_mut() {
            cell.push(c);
        }
        prev = c;
    }
    cells.into_iter().map(|c| c.trim().to_owned()).collect()
}

/// The metric rows of one `## section` of docs/metrics.md. The labels cell is
/// `;`-separated entries, each a backticked label name optionally followed by
/// `=` and its backticked values.
fn documented(section: &str) -> BTreeMap<String, Family> {
    let text = doc("docs/metrics.md");
    let start = text
        .find(&format!("\n## {section}\n"))
        .unwrap_or_else(|| panic!("docs/metrics.md has no ## {section}"));
    let body = &text[start + 1..];
    let body = &body[..body[3..].find("\n## ").map_or(body.len(), |i| i + 3)];
    let backticked =
        |s: &str| -> Vec<String> { s.split('`').skip(1).step_by(2).map(str::to_owned).collect() };
    let mut out = BTreeMap::new();
    for row in body
        .lines()
        .filter(|l| l.starts_with("| `keyshift_") || l.starts_with("| `process_"))
    {
        let cells = table_cells(row);
        assert!(cells.len() >= 4, "docs/metrics.md: malformed row {row}");
        let name = backticked(&cells[0]).remove(0);
        let mut family = Family {
            kind: cells[1].clone(),
            labels: BTreeMap::new(),
        };
        for entry in cells[2].split(';').filter(|e| !e.trim().is_empty()) {
            let (label, values) = entry.split_once('=').unwrap_or((entry, ""));
            let label = backticked(label)
                .into_iter()
                .next()
                .unwrap_or_else(|| panic!("docs/metrics.md: {name}: label entry {entry:?}"));
            family
                .labels
                .insert(label, backticked(values).into_iter().collect());
        }
        out.insert(name, family);
    }
    out
}

/// [`scrape_real_services`], and a gateway's scrape: one route that
/// neither verifies nor signs, in front of an upstream that is down, so its
/// series render without a `[verifier]` in the way.
fn scrape_real_services_and_gateway() -> ((String, String), String) {
    let services = scrape_real_services();
    let tmp = common::dir_with_secret();
    let down = keyshift_testkit::net::unused_fixed_port();
    let config = keyshift_testkit::ConfigToml::new(Phase::Transition)
        .gateway_lines(&format!(
            "[gateway]\nlisten = \"127.0.0.1:0\"\n\n[[gateway.routes]]\nname = \"down\"\nupstream = \"http://127.0.0.1:{down}\"\nverify = false\n"
        ))
        .write_to(tmp.path());
    let gateway = start("gateway", &config);
    assert_eq!(http(gateway.addr, "GET", "/x", &[], b"").status, 502);
    let text = http(gateway.addr, "GET", "/metrics", &[], b"").text();
    (services, text)
}

/// Starts a real issuer and verifier (phase transition), sends a little
/// traffic so that lazily created series exist, and returns both scrapes.
fn scrape_real_services() -> (String, String) {
    let tmp = common::dir_with_secret();
    let config = write_config(tmp.path(), Phase::Transition, None);
    common::generate_keys(&config);
    let issuer = start("issuer", &config);
    write_config(tmp.path(), Phase::Transition, Some(issuer.addr));
    let verifier = start("verifier", &config);
    assert!(
        eventually(Duration::from_secs(20), || {
            http(verifier.addr, "GET", "/readyz", &[], b"").status == 200
        }),
        "verifier not ready"
    );
    let token = fetch_token(issuer.addr, "svc-a", "s3cret");
    let form = [("Content-Type", "application/x-www-form-urlencoded")];
    let bad = b"grant_type=client_credentials&client_id=svc-a&client_secret=nope";
    assert_eq!(
        http(issuer.addr, "POST", "/oauth/token", &form, bad).status,
        401
    );
    let bearer = format!("Bearer {token}");
    for auth in [bearer.as_str(), bearer.as_str(), "Bearer not.a.token"] {
        http(
            verifier.addr,
            "GET",
            "/verify",
            &[("Authorization", auth)],
            b"",
        );
    }
    let metrics = |s: &Service| http(s.addr, "GET", "/metrics", &[], b"").text();
    (metrics(&issuer), metrics(&verifier))
}

#[test]
fn metrics_doc_matches_what_the_real_binary_renders() {
    let ((issuer_text, verifier_text), gateway_text) = scrape_real_services_and_gateway();
    let mut rendered = BTreeSet::new();
    for (section, text) in [
        ("Verifier", &verifier_text),
        ("Issuer", &issuer_text),
        ("Gateway", &gateway_text),
    ] {
        let scraped = parse_exposition(text);
        let doc = documented(section);
        let names = |m: &BTreeMap<String, Family>| m.keys().cloned().collect::<BTreeSet<_>>();
        assert_eq!(
            names(&doc),
            names(&scraped),
            "docs/metrics.md ## {section} lists other metrics than the {section} renders on /metrics"
        );
        for (name, got) in &scraped {
            let want = &doc[name];
            assert_eq!(want.kind, got.kind, "docs/metrics.md: type of {name}");
            assert_eq!(
                want.labels.keys().collect::<Vec<_>>(),
                got.labels.keys().collect::<Vec<_>>(),
                "docs/metrics.md: label names of {name}"
            );
            for (label, values) in &got.labels {
                let listed = &want.labels[label];
                let missing: Vec<_> = values.difference(listed).collect();
                assert!(
                    listed.is_empty() || missing.is_empty(),
                    "docs/metrics.md: {name}{{{label}}} renders {missing:?}, not listed"
                );
            }
            rendered.insert(name.clone());
        }
        for name in PROCESS {
            assert!(scraped.contains_key(*name), "{section} renders no {name}");
        }
    }
    rendered.retain(|name| !PROCESS.contains(&name.as_str()));
    let exported: BTreeSet<String> = EXPORTED.iter().map(|s| (*s).to_owned()).collect();
    assert_eq!(
        exported, rendered,
        "EXPORTED (the metrics.rs constants) and what the binary renders differ"
    );
}

#[test]
fn exposition_parser_reads_types_labels_and_histograms() {
    let text = "# TYPE a_total counter\na_total{x=\"1\",y=\"q\\\"z\"} 3\n\
                # TYPE h histogram\nh_bucket{alg=\"RS256\",le=\"0.5\"} 1\nh_sum{alg=\"RS256\"} 1\n\
                # TYPE g gauge\ng 1\n";
    let f = parse_exposition(text);
    assert_eq!(f["a_total"].kind, "counter");
    assert_eq!(
        f["a_total"].labels["y"].iter().next().map(String::as_str),
        Some("q\"z")
    );
    assert_eq!(f["h"].labels.keys().collect::<Vec<_>>(), ["alg"]);
    assert!(f["g"].labels.is_empty());
}

// === architecture ===

#[test]
fn architecture_lists_every_workspace_member_in_its_table_and_diagram() {
    let manifest = doc("Cargo.toml");
    let members = manifest
        .split("members = [")
        .nth(1)
        .and_then(|m| m.split(']').next())
        .expect("workspace members");
    let arch = doc("docs/architecture.md");
    let mut seen = 0;
    for line in members.lines().filter(|l| l.contains('"')) {
        let path = line.split('"').nth(1).expect("member path");
        let package = line
            .split('#')
            .nth(1)
            .and_then(|c| c.split(':').next())
            .map(str::trim)
            .unwrap_or_else(|| panic!("Cargo.toml: member {path} has no `# package: …` comment"));
        assert!(
            arch.contains(&format!("| `{path}` ({package}) |")),
            "docs/architecture.md: no crate-table row for {path} ({package})"
        );
        assert!(
            arch.contains(&format!("{package} ({path})")),
            "docs/architecture.md: the crates diagram lacks {package} ({path})"
        );
        seen += 1;
    }
    assert!(seen >= 7, "workspace members not found in Cargo.toml");
}

// === alert tests ===

/// Every alert of the rules file has, in docs/alerts/tests/, a case where it
/// fires and a case where it stays silent, and every alert with a `for:` a
/// check of its pending stage; every recording rule a `promql_expr_test`.
#[test]
fn every_alert_has_firing_silent_and_pending_tests_and_every_rule_an_expr_test() {
    let rules = doc("docs/alerts/keyshift.rules.yml");
    let tests = doc("docs/alerts/tests/keyshift.rules.test.yml");
    let lines: Vec<&str> = tests.lines().map(str::trim).collect();
    let mut alert: Option<&str> = None;
    let mut with_for = Vec::new();
    let mut alerts = Vec::new();
    for line in rules.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix("- alert:") {
            alert = Some(name.trim());
            alerts.push(name.trim());
        } else if line.starts_with("- record:") {
            alert = None;
        } else if line.starts_with("for:") {
            with_for.extend(alert);
        }
    }
    assert!(alerts.len() >= 10, "alerts not found");
    for name in &alerts {
        let silent = format!("alertname: {name}, exp_alerts: []}}");
        assert!(
            lines.iter().any(|l| l.ends_with(&silent)),
            "{name}: no promtool case where it stays silent"
        );
        let fires = lines
            .windows(2)
            .any(|w| w[0] == format!("alertname: {name}") && w[1] == "exp_alerts:");
        assert!(fires, "{name}: no promtool case where it fires");
    }
    for name in with_for {
        let pending = format!(r#"ALERTS{{alertname="{name}",alertstate="pending""#);
        assert!(
            tests.contains(&pending),
            "{name} has a `for:` but no test of its pending stage"
        );
    }
    for line in rules.lines().map(str::trim) {
        if let Some(record) = line.strip_prefix("- record:") {
            assert!(
                tests.contains(&format!("expr: {}\n", record.trim())),
                "recording rule {} has no promql_expr_test",
                record.trim()
            );
        }
    }
}

// === security.md ===

/// The text of every `.rs` file under `dir`.
fn rust_sources(dir: &std::path::Path, out: &mut String) {
    for entry in std::fs::read_dir(dir)
        .expect("read_dir")
        .map_while(Result::ok)
    {
        let path = entry.path();
        if path.is_dir() {
            rust_sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push_str(&std::fs::read_to_string(&path).expect("source"));
        }
    }
}

/// Every function and test the RFC 8725 table of docs/security.md names in
/// its "where" and "proof" columns exists in crates/.
#[test]
fn security_doc_names_functions_and_tests_that_exist() {
    let mut sources = String::new();
    rust_sources(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".."),
        &mut sources,
    );
    let text = doc("docs/security.md");
    let rows: Vec<Vec<String>> = text
        .lines()
        .filter(|l| l.starts_with("| §") || l.starts_with("| RFC 75"))
        .map(table_cells)
        .collect();
    assert!(rows.len() >= 12, "RFC 8725 table not found");
    let mut checked = 0;
    for row in &rows {
        assert_eq!(
            row.len(),
            4,
            "security.md: row {row:?} needs rule | what | where | proof"
        );
        for cell in &row[2..] {
            for name in cell.split('`').skip(1).step_by(2) {
                // `Type::function`, `module::function`, `tests::name`, or a bare
                // snake_case name with an underscore (a test or function);
                // single words, constants and paths are prose.
                let function = name.rsplit("::").next().unwrap_or(name);
                let is_ident = !function.is_empty()
                    && function
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
                if !is_ident || !(name.contains("::") || function.contains('_')) {
                    continue;
                }
                assert!(
                    sources.contains(&format!("fn {function}("))
                        || sources.contains(&format!("fn {function}<")),
                    "docs/security.md names `{name}`, but no fn {function} exists in crates/"
                );
                checked += 1;
            }
        }
    }
    assert!(
        checked >= 30,
        "only {checked} functions and tests found in the table"
    );
}

// === the dashboard ===

/// Every PromQL expression of the dashboard, collapsed rows included.
fn dashboard_exprs() -> Vec<(String, String)> {
    fn walk(panels: &serde_json::Value, out: &mut Vec<(String, String)>) {
        for p in panels.as_array().into_iter().flatten() {
            for t in p["targets"].as_array().into_iter().flatten() {
                let title = p["title"].as_str().unwrap_or("").to_owned();
                out.push((title, t["expr"].as_str().unwrap_or("").to_owned()));
            }
            walk(&p["panels"], out);
        }
    }
    let d: serde_json::Value =
        serde_json::from_str(&doc("docs/dashboards/keyshift-migration.json")).expect("json");
    let mut out = Vec::new();
    walk(&d["panels"], &mut out);
    out
}

/// The dashboard serves a fleet: `job`, `instance` and `environment`
/// variables, and every metric selector of every query filtered by all three.
#[test]
fn every_dashboard_query_is_filtered_by_job_instance_and_environment() {
    let d: serde_json::Value =
        serde_json::from_str(&doc("docs/dashboards/keyshift-migration.json")).expect("json");
    let variables: Vec<&str> = d["templating"]["list"]
        .as_array()
        .expect("variables")
        .iter()
        .filter_map(|v| v["name"].as_str())
        .collect();
    for name in ["datasource", "job", "instance", "environment"] {
        assert!(
            variables.contains(&name),
            "no `{name}` variable: {variables:?}"
        );
    }
    let filter = r#"{job=~"$job",instance=~"$instance",environment=~"$environment""#;
    let exprs = dashboard_exprs();
    assert!(exprs.len() >= 30, "expressions not found");
    for (title, expr) in exprs {
        for name in names_in(&expr) {
            for (i, _) in expr.match_indices(name.as_str()) {
                let rest = &expr[i..];
                let word_end = rest
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(rest.len());
                assert!(
                    rest[word_end..].starts_with(filter),
                    "{title}: `{name}` is not filtered by the fleet variables in {expr}"
                );
            }
        }
    }
}

// === routes ===

/// The `` `METHOD /path` `` (or `` `/path` ``) routes of the first column of
/// the markdown table rows in `text` that follow `after`, up to the next
/// blank line after the table.
fn route_rows(text: &str, after: &str) -> Vec<String> {
    let start = text.find(after).unwrap_or_else(|| panic!("no {after:?}"));
    text[start..]
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .filter_map(|l| {
            let cell = table_cells(l).into_iter().next()?;
            let route = cell.strip_prefix('`')?.split('`').next()?.to_owned();
            route.contains('/').then_some(route)
        })
        .collect()
}

/// docs/architecture.md lists each service's routes exactly as its
/// `service.rs` module doc does, and the real binaries answer each `GET`
/// route (no 404).
#[test]
fn routes_in_the_docs_are_the_services_routes() {
    let arch = doc("docs/architecture.md");
    let tmp = common::dir_with_secret();
    let config = write_config(tmp.path(), Phase::Dual, None);
    let issuer = start("issuer", &config);
    write_config(tmp.path(), Phase::Dual, Some(issuer.addr));
    let verifier = start("verifier", &config);
    for (service, source, heading, addr) in [
        (
            "issuer",
            "crates/issuer/src/service.rs",
            "Issuer:\n",
            issuer.addr,
        ),
        (
            "verifier",
            "crates/verifier/src/service.rs",
            "Verifier:\n",
            verifier.addr,
        ),
    ] {
        let module_doc: String = doc(source)
            .lines()
            .filter_map(|l| l.strip_prefix("//! "))
            .collect::<Vec<_>>()
            .join("\n");
        let code = route_rows(&module_doc, "| route |");
        let documented = route_rows(&arch, heading);
        assert_eq!(
            documented, code,
            "docs/architecture.md and {source} list other routes"
        );
        for path in ["GET /version", "GET /migration"] {
            assert!(code.iter().any(|r| r == path), "{service} has no {path}");
        }
        for route in &code {
            if let Some(path) = route.strip_prefix("GET ") {
                // A placeholder route (`<issuer path>`) needs an issuer URL
                // with a path: crates/issuer/tests/metadata.rs asks it.
                if path.contains('<') {
                    continue;
                }
                let status = http(addr, "GET", path, &[], b"").status;
                assert_ne!(status, 404, "{service}: GET {path}");
            }
        }
    }
    let version = http(verifier.addr, "GET", "/version", &[], b"").json();
    assert_eq!(version["service"], "verifier");
    let metrics = http(issuer.addr, "GET", "/metrics", &[], b"").text();
    let sha = version["git_sha"].as_str().expect("git_sha");
    assert!(
        metrics.contains(&format!("git_sha=\"{sha}\"")),
        "keyshift_build_info names the same commit as /version: {sha}"
    );
}
