//! Mid-phase events, as an operator would cause them:
//!
//! - a key rotation at 5 % of the phase: `keyshift keys rotate`, SIGHUP to
//!   the issuer (the next key is published; the issuer would also see the
//!   manifest change within a second on its own), and once it has been
//!   published for `key_prepublish` the issuer promotes it (the harness's
//!   second SIGHUP then only makes sure); clients that renew then get tokens
//!   with the new kid, which join the pool;
//! - a JWKS outage from 65 % to 90 %: the harness's proxy answers 503, and
//!   half-way through the verifier gets a SIGHUP, which forces a JWKS fetch,
//!   so the window surely holds a failed fetch; the outage lasts until the
//!   proxy has answered that fetch (at most [`FORCED_FETCH_GRACE`] longer).
//!
//! Every wait is bounded by the phase's length plus a fixed grace.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use keyshift_testkit::jwt;
use nix::sys::signal::Signal;
use serde::{Deserialize, Serialize};

use crate::http;
use crate::pool::Pool;
use crate::proxy::ProxyControl;
use crate::services::Pid;
use crate::token::Minter;

/// Longest `keyshift keys rotate` may run.
const ROTATE_TIMEOUT: Duration = Duration::from_secs(30);
/// Past the pre-publish time, how long the harness waits before the promoting SIGHUP.
const PROMOTE_MARGIN: Duration = Duration::from_millis(500);
/// Least load left after the promotion for the rotation to be worth it.
const MIN_LOAD_AFTER_PROMOTION: Duration = Duration::from_millis(700);
/// Tokens minted right after the rotation (clients that renew at once).
const ROTATED_BATCH: usize = 20;
/// How long the outage may outlast its window waiting for the forced fetch.
const FORCED_FETCH_GRACE: Duration = Duration::from_secs(3);

/// The rotation's part.
#[derive(Debug, Clone)]
pub struct RotationPlan {
    /// The binary.
    pub keyshift: PathBuf,
    /// The config the issuer runs from.
    pub config: PathBuf,
    /// The issuer.
    pub issuer: SocketAddr,
    /// Its pid.
    pub issuer_pid: Pid,
    /// Its `key_prepublish`.
    pub prepublish: Duration,
}

/// The outage's part.
#[derive(Debug, Clone)]
pub struct OutagePlan {
    /// The proxy switch.
    pub proxy: Arc<ProxyControl>,
    /// The verifier (SIGHUP forces a JWKS fetch).
    pub verifier_pid: Pid,
}

/// What the rotation did (in `summary.json`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RotationReport {
    /// Kids the pool's tokens carried before.
    pub old_kids: Vec<String>,
    /// The kid that appeared in the issuer's JWKS after `keys rotate` + SIGHUP.
    pub published_kid: Option<String>,
    /// The kid of tokens minted after the promotion, if it was new.
    pub new_kid: Option<String>,
    /// Tokens with the new kid put into the pool right after the rotation.
    pub new_kid_tokens: u64,
    /// Whether the key was expected to sign within the phase (its pre-publish time fits).
    pub signing_expected: bool,
    /// Why something was skipped.
    pub note: Option<String>,
}

/// What the outage did (in `summary.json`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct OutageReport {
    /// 503s the proxy served during the window.
    pub proxy_503s: u64,
    /// Whether the proxy answered a fetch after the one SIGHUP sent to the
    /// verifier half-way through the window (counted in `verifier_sighups`).
    pub forced_fetch_answered: bool,
    /// Seconds the outage lasted.
    pub seconds: f64,
}

/// Both.
#[derive(Debug, Default)]
pub struct EventsReport {
    /// Rotation, if planned.
    pub rotation: Option<RotationReport>,
    /// Outage, if planned.
    pub outage: Option<OutageReport>,
}

/// Runs the planned events of a phase that started at `started` and lasts `duration`.
pub async fn run(
    http: reqwest::Client,
    started: Instant,
    duration: Duration,
    rotation: Option<(RotationPlan, Arc<Pool>, Arc<Minter>)>,
    outage: Option<OutagePlan>,
) -> anyhow::Result<EventsReport> {
    let rotate = async {
        match rotation {
            Some((plan, pool, minter)) => rotate(&http, started, duration, &plan, &pool, &minter)
                .await
                .map(Some),
            None => Ok(None),
        }
    };
    let cut = async {
        match outage {
            Some(plan) => cut_jwks(started, duration, &plan).await.map(Some),
            None => Ok(None),
        }
    };
    let (rotation, outage) = tokio::join!(rotate, cut);
    Ok(EventsReport {
        rotation: rotation.context("rotation")?,
        outage: outage.context("JWKS outage")?,
    })
}

async fn until(started: Instant, at: Duration) {
    tokio::time::sleep(at.saturating_sub(started.elapsed())).await;
}

async fn rotate(
    http: &reqwest::Client,
    started: Instant,
    duration: Duration,
    plan: &RotationPlan,
    pool: &Pool,
    minter: &Minter,
) -> anyhow::Result<RotationReport> {
    let mut report = RotationReport {
        old_kids: {
            let mut k: Vec<String> = pool.base_kids().iter().cloned().collect();
            k.sort();
            k
        },
        ..RotationReport::default()
    };
    until(started, duration.mul_f64(0.05)).await;
    let published_before: HashSet<String> = http::issuer_kids(http, plan.issuer)
        .await?
        .into_iter()
        .collect();
    let mut cmd = tokio::process::Command::new(&plan.keyshift);
    cmd.args(["keys", "rotate", "--config"])
        .arg(&plan.config)
        .kill_on_drop(true);
    let out = tokio::time::timeout(ROTATE_TIMEOUT, cmd.output())
        .await
        .map_err(|_| {
            anyhow::anyhow!(
                "keyshift keys rotate took over {} s",
                ROTATE_TIMEOUT.as_secs()
            )
        })?
        .context("running keyshift keys rotate")?;
    if !out.status.success() {
        bail!(
            "keys rotate failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let rotated_at = Instant::now();
    plan.issuer_pid.signal(Signal::SIGHUP)?;
    // The new key shows in the issuer's JWKS once the SIGHUP is handled.
    for _ in 0..50 {
        let now: HashSet<String> = http::issuer_kids(http, plan.issuer)
            .await?
            .into_iter()
            .collect();
        if let Some(k) = now.difference(&published_before).next() {
            report.published_kid = Some(k.clone());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let promote_at = rotated_at + plan.prepublish + PROMOTE_MARGIN;
    // Leave some load with the new key.
    if promote_at + MIN_LOAD_AFTER_PROMOTION > started + duration {
        report.note = Some(format!(
            "the new key was published but cannot sign within the phase (key_prepublish {} s)",
            plan.prepublish.as_secs()
        ));
        return Ok(report);
    }
    report.signing_expected = true;
    tokio::time::sleep(promote_at.saturating_duration_since(Instant::now())).await;
    plan.issuer_pid.signal(Signal::SIGHUP)?;
    // Poll (bounded) until the issuer signs with a kid the pool did not start with.
    let mut first = None;
    for attempt in 0..20 {
        let t = minter.mint(attempt).await?;
        let kid = jwt::header(&t.token).and_then(|h| h.kid);
        if kid.as_ref().is_some_and(|k| !pool.base_kids().contains(k)) {
            report.new_kid = kid;
            first = Some(t);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let Some(first) = first else {
        report.note =
            Some("the issuer did not sign with a new kid after the promoting SIGHUP".into());
        return Ok(report);
    };
    let mut batch = vec![first];
    let more = ROTATED_BATCH.min(pool.len()).saturating_sub(1);
    batch.extend(minter.mint_many(more, 1).await?);
    report.new_kid_tokens = pool.replace_first(&batch, Instant::now()) as u64;
    Ok(report)
}

async fn cut_jwks(
    started: Instant,
    duration: Duration,
    plan: &OutagePlan,
) -> anyhow::Result<OutageReport> {
    let served = || plan.proxy.served_503.load(Ordering::Relaxed);
    until(started, duration.mul_f64(0.65)).await;
    let at_start = served();
    let began = Instant::now();
    plan.proxy.set_outage(true);
    let result = async {
        until(started, duration.mul_f64(0.775)).await;
        let before_hup = served();
        plan.verifier_pid.signal(Signal::SIGHUP)?;
        until(started, duration.mul_f64(0.90)).await;
        let grace = Instant::now() + FORCED_FETCH_GRACE;
        while served() == before_hup && Instant::now() < grace {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        anyhow::Ok(served() > before_hup)
    }
    .await;
    // The outage ends whatever happened above.
    plan.proxy.set_outage(false);
    let answered = result?;
    Ok(OutageReport {
        proxy_503s: served() - at_start,
        forced_fetch_answered: answered,
        seconds: began.elapsed().as_secs_f64(),
    })
}
