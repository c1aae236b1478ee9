//! `--quick`'s end-to-end test of the external modes: this binary is run
//! again, as a user would, against the services the quick run started —
//! once measuring their current phase (`--issuer`/`--verifier` only), once
//! switching them to `transition` through their config and pids (and
//! restoring it). Each child must pass its own checks and report the mode
//! and phase it was asked for; the services must be back in their phase.

use std::path::Path;
use std::time::Duration;

use keyshift_core::Phase;

use crate::phase::{self, Role};
use crate::report::Summary;
use crate::sut::{Mode, Sut};

/// Longest a child run may take (2 s of load plus start-up and reports).
const CHILD_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs both children; returns the problems found.
pub async fn external_modes(
    dir: &Path,
    http: &reqwest::Client,
    sut: &Sut,
    current: Phase,
) -> Vec<String> {
    let mut problems = Vec::new();
    let base = vec![
        "--issuer".to_owned(),
        format!("http://{}", sut.issuer),
        "--verifier".to_owned(),
        format!("http://{}", sut.verifier),
        "--duration".to_owned(),
        "2".to_owned(),
        "--users".to_owned(),
        "2".to_owned(),
        "--pool-size".to_owned(),
        "10".to_owned(),
        "--reuse".to_owned(),
        "20".to_owned(),
    ];
    let observed = child(dir, "external-observed", base.clone()).await;
    problems.extend(expect(
        observed,
        Mode::ExternalObserved,
        current,
        "observed",
    ));

    let (Some(config), Some(ip), Some(vp)) = (&sut.config_path, sut.issuer_pid, sut.verifier_pid)
    else {
        problems.push("external smoke: the quick run's services have no config or pids".into());
        return problems;
    };
    let target = if current == Phase::Transition {
        Phase::Dual
    } else {
        Phase::Transition
    };
    let mut args = base;
    args.extend([
        "--config".to_owned(),
        config.display().to_string(),
        "--issuer-pid".to_owned(),
        ip.to_string(),
        "--verifier-pid".to_owned(),
        vp.to_string(),
        "--phases".to_owned(),
        target.to_string(),
        "--rotate".to_owned(),
        "false".to_owned(),
    ]);
    let controlled = child(dir, "external-controlled", args).await;
    problems.extend(expect(
        controlled,
        Mode::ExternalControlled,
        target,
        "controlled",
    ));
    // The child restored the config and sent SIGHUP: the services are back.
    for role in [Role::Verifier, Role::Issuer] {
        if let Err(e) = phase::wait_for_role(http, role, sut.addr(role), current).await {
            problems.push(format!(
                "external smoke: services not back in {current} after the controlled run: {e:#}"
            ));
        }
    }
    if problems.is_empty() {
        println!("external modes passed: an observed and a controlled run against the quick run's services");
    }
    problems
}

/// Runs this binary with `args` and `--out <dir>/<name>`; returns its summary.
async fn child(dir: &Path, name: &str, mut args: Vec<String>) -> anyhow::Result<Summary> {
    let out = dir.join(name);
    args.extend(["--out".to_owned(), out.display().to_string()]);
    let exe = std::env::current_exe()?;
    let log = dir.join(format!("{name}.log"));
    let log_file = std::fs::File::create(&log)?;
    let err_file = log_file.try_clone()?;
    println!(
        "external smoke ({name}): {} {}",
        exe.display(),
        args.join(" ")
    );
    let mut cmd = tokio::process::Command::new(&exe);
    cmd.args(&args)
        .stdout(log_file)
        .stderr(err_file)
        .kill_on_drop(true);
    let status = tokio::time::timeout(CHILD_TIMEOUT, cmd.status())
        .await
        .map_err(|_| anyhow::anyhow!("{name}: over {} s", CHILD_TIMEOUT.as_secs()))??;
    if !status.success() {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(15).collect();
        anyhow::bail!(
            "{name} exited with {status} (log {}):\n{}",
            log.display(),
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }
    // The child made exactly one report folder in its --out.
    let mut dirs = std::fs::read_dir(&out)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_dir());
    let (Some(report), None) = (dirs.next(), dirs.next()) else {
        anyhow::bail!("{name}: expected one report folder in {}", out.display());
    };
    let json = std::fs::read_to_string(report.join("summary.json"))?;
    Ok(serde_json::from_str(&json)?)
}

fn expect(got: anyhow::Result<Summary>, mode: Mode, phase: Phase, what: &str) -> Vec<String> {
    let s = match got {
        Ok(s) => s,
        Err(e) => return vec![format!("external smoke ({what}): {e:#}")],
    };
    let mut problems = Vec::new();
    if s.mode != mode {
        problems.push(format!(
            "external smoke ({what}): mode {:?}, expected {mode:?}",
            s.mode
        ));
    }
    let ran: Vec<Phase> = s.phases.iter().map(|p| p.phase).collect();
    if ran != [phase] {
        problems.push(format!(
            "external smoke ({what}): ran {ran:?}, expected [{phase}]"
        ));
    }
    if s.phases.iter().any(|p| p.requests == 0) {
        problems.push(format!("external smoke ({what}): no requests"));
    }
    problems
}
