//! The migration phase as the services report it, the order in which the
//! services reload for a switch, waiting for it to land, and editing `phase`
//! in a config file.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use keyshift_core::phase_metrics::PHASE_INFO;
use keyshift_core::{Alg, Phase};

use crate::http;
use crate::prom;

/// How long a SIGHUP'd phase switch may take to show on both services.
pub const SWITCH_TIMEOUT: Duration = Duration::from_secs(15);

/// The phase the verifier reports at `GET /migration`.
pub async fn verifier_phase(http: &reqwest::Client, verifier: SocketAddr) -> anyhow::Result<Phase> {
    let v = http::get_json(http, &format!("http://{verifier}/migration")).await?;
    let text = v["phase"]
        .as_str()
        .context("the verifier's /migration has no phase")?;
    text.parse()
        .with_context(|| format!("the verifier's /migration reports phase `{text}`"))
}

/// The phase the issuer exports as `keyshift_phase_info{phase} 1`.
pub async fn issuer_phase(
    http: &reqwest::Client,
    issuer: SocketAddr,
) -> anyhow::Result<Option<Phase>> {
    let samples = http::scrape(http, issuer).await?;
    Ok(phase_from_metrics(&samples))
}

/// The phase whose `keyshift_phase_info` gauge is 1.
pub fn phase_from_metrics(samples: &prom::Samples) -> Option<Phase> {
    Phase::ALL
        .into_iter()
        .find(|p| prom::gauge(samples, PHASE_INFO, &[("phase", p.as_str())]) == Some(1.0))
}

/// The phase both services are in; an error if they disagree.
pub async fn current(
    http: &reqwest::Client,
    issuer: SocketAddr,
    verifier: SocketAddr,
) -> anyhow::Result<Phase> {
    let v = verifier_phase(http, verifier).await?;
    match issuer_phase(http, issuer).await? {
        Some(i) if i != v => bail!(
            "the issuer is in phase {i} and the verifier in phase {v}; finish the switch first"
        ),
        _ => Ok(v),
    }
}

/// One of the two services.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The issuer.
    Issuer,
    /// The verifier.
    Verifier,
}

/// The reload order of a switch, as docs/migration-runbook.md prescribes:
/// the issuer first when it starts publishing RSA keys (verifiers must find
/// them at their forced refetch) or changes what it signs while verifiers
/// keep accepting both; the verifiers first when they stop accepting an
/// algorithm, or accept one again on a rollback.
pub fn reload_order(from: Phase, to: Phase) -> [Role; 2] {
    let narrows = Alg::ALL
        .into_iter()
        .any(|a| from.accepts(a) && !to.accepts(a));
    let widens = Alg::ALL
        .into_iter()
        .any(|a| !from.accepts(a) && to.accepts(a));
    let issuer_first = if !from.publishes_rsa_keys() && to.publishes_rsa_keys() {
        true
    } else if narrows || widens {
        false
    } else {
        from.signs() != to.signs()
    };
    if issuer_first {
        [Role::Issuer, Role::Verifier]
    } else {
        [Role::Verifier, Role::Issuer]
    }
}

/// Waits (≤ [`SWITCH_TIMEOUT`]) until `role` at `addr` reports `phase`.
pub async fn wait_for_role(
    http: &reqwest::Client,
    role: Role,
    addr: SocketAddr,
    phase: Phase,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + SWITCH_TIMEOUT;
    let mut last = String::from("no answer yet");
    while Instant::now() < deadline {
        let seen = match role {
            Role::Issuer => issuer_phase(http, addr).await,
            Role::Verifier => verifier_phase(http, addr).await.map(Some),
        };
        match seen {
            Ok(Some(p)) if p == phase => return Ok(()),
            other => last = format!("{other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!(
        "the {role:?} did not switch to phase {phase} within {} s ({last})",
        SWITCH_TIMEOUT.as_secs()
    )
}

/// `text` with its top-level `phase = …` line set to `phase` (added at the
/// top if missing). Comments after the value are kept; tables are untouched.
pub fn set_phase_line(text: &str, phase: Phase) -> anyhow::Result<String> {
    let mut out = Vec::new();
    let mut done = false;
    let mut in_table = false;
    for line in text.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with('[') {
            in_table = true;
        }
        let is_phase = !in_table
            && trimmed
                .strip_prefix("phase")
                .is_some_and(|rest| rest.trim_start().starts_with('='));
        if is_phase {
            if done {
                bail!("the config sets `phase` twice");
            }
            let comment = line
                .find('#')
                .filter(|i| line[..*i].matches('"').count() % 2 == 0)
                .map(|i| format!("  {}", &line[i..]))
                .unwrap_or_default();
            out.push(format!("phase = \"{phase}\"{comment}"));
            done = true;
        } else {
            out.push(line.to_owned());
        }
    }
    if !done {
        out.insert(0, format!("phase = \"{phase}\""));
    }
    let mut joined = out.join("\n");
    if text.ends_with('\n') || text.is_empty() {
        joined.push('\n');
    }
    Ok(joined)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_phase_line_is_replaced_and_the_rest_kept() {
        let text = "# fleet\nphase = \"dual\"   # step 1\n\n[issuer]\nphase_note = 1\n";
        let out = set_phase_line(text, Phase::Transition).expect("edit");
        assert_eq!(
            out,
            "# fleet\nphase = \"transition\"  # step 1\n\n[issuer]\nphase_note = 1\n"
        );
    }

    #[test]
    fn a_missing_phase_is_added_and_tables_are_not_touched() {
        let out = set_phase_line("[issuer]\nphase = \"x\"\n", Phase::Dual).expect("edit");
        assert_eq!(out, "phase = \"dual\"\n[issuer]\nphase = \"x\"\n");
    }

    #[test]
    fn two_phase_lines_are_refused() {
        assert!(set_phase_line("phase = \"dual\"\nphase=\"legacy\"\n", Phase::Dual).is_err());
    }

    #[test]
    fn reloads_follow_the_runbook_order() {
        use Phase::*;
        use Role::*;
        // Forward: keys published before verifiers look; RS256 signed once
        // verifiers accept it; HS256 refused by verifiers first.
        assert_eq!(reload_order(Legacy, Dual), [Issuer, Verifier]);
        assert_eq!(reload_order(Dual, Transition), [Issuer, Verifier]);
        assert_eq!(reload_order(Transition, Asymmetric), [Verifier, Issuer]);
        // Rollbacks.
        assert_eq!(reload_order(Asymmetric, Transition), [Verifier, Issuer]);
        assert_eq!(reload_order(Transition, Dual), [Issuer, Verifier]);
        assert_eq!(reload_order(Dual, Legacy), [Verifier, Issuer]);
        // A phase to itself: nothing to order; verifiers first is harmless.
        assert_eq!(reload_order(Dual, Dual), [Verifier, Issuer]);
    }

    #[test]
    fn the_phase_is_read_from_the_info_gauge() {
        let s = prom::parse(
            "keyshift_phase_info{phase=\"dual\"} 0\nkeyshift_phase_info{phase=\"transition\"} 1\n",
        );
        assert_eq!(phase_from_metrics(&s), Some(Phase::Transition));
        assert_eq!(phase_from_metrics(&prom::parse("up 1\n")), None);
    }
}
