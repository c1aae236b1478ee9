//! `--soak`: the load test's phase walk, run for longer and watched more
//! closely. Beside the walk (its phase reloads, key rotations, JWKS outages
//! and goose load, checked phase by phase as in any run):
//!
//! - the pool also sends forged tokens (a real token's header and claims
//!   under a random signature) and expired ones (real tokens the issuer
//!   minted with a 1 s lifetime, see [`mint_expiring`]), both expected 401;
//! - background token requests with some wrong secrets
//!   ([`crate::token_traffic`]);
//! - a sampler of both services' RSS and fds ([`crate::resources`]);
//! - every answer counted by the soak itself ([`crate::answers`]).
//!
//! At the end: [`crate::soak_check`] over the whole soak, and `soak.md` and
//! `soak.json` ([`crate::soak_report`]). Managed mode only: it needs the
//! pids and the harness's own config.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use keyshift_core::{Config, Phase};
use tokio::sync::watch;

use crate::answers::VerifyLedger;
use crate::drive::Watch;
use crate::http;
use crate::phase::Role;
use crate::pool::{Expiring, Kind};
use crate::prom::{self, Samples};
use crate::proxy::ProxyCounts;
use crate::report::{PhaseSummary, Summary};
use crate::resources::{self, Sampler};
use crate::services::SOAK_LEEWAY;
use crate::soak_check::{self, Wanted};
use crate::soak_report::{IssuerAccount, PhaseWindow, ServerErrors, SoakSummary};
use crate::sut::Sut;
use crate::token::{Credentials, MintCounts, Minter};
use crate::token_traffic::{self, TokenCounts, TokenTraffic};

/// Share of requests with a forged token.
pub const FORGED_SHARE: f64 = 0.02;
/// Share of requests with an expired token (once the phase's are expired).
pub const EXPIRED_SHARE: f64 = 0.02;
/// Lifetime of the tokens minted to expire.
pub const EXPIRING_TTL: Duration = Duration::from_secs(1);
/// Tokens minted to expire, per phase.
pub const EXPIRING_TOKENS: usize = 8;
/// Mints (100 ms apart) waiting for the issuer to apply a reload.
const RELOAD_PROBES: usize = 50;
/// Longest the background token requests may take to stop.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// The warm-up after which RSS and fds are taken as the baseline: 10 % of
/// the load, at least 2 s, at most a minute.
pub fn warm_up(load: Duration) -> Duration {
    (load / 10).clamp(Duration::from_secs(2), Duration::from_secs(60))
}

/// The clients the soak's issuer has: the harness's own and the guesser's.
pub fn configured_clients(clients: &[Credentials]) -> Vec<Credentials> {
    let mut all = clients.to_vec();
    all.push(token_traffic::guessed_client());
    all
}

/// A running soak: what it watches beside the phase walk.
#[derive(Debug)]
pub struct Soak {
    started_unix: u64,
    load: Duration,
    ledger: Arc<VerifyLedger>,
    traffic: Arc<TokenTraffic>,
    sampler: Sampler,
    stop: watch::Sender<bool>,
    driver: tokio::task::JoinHandle<()>,
    background_started: Instant,
    issuer_before: Samples,
    verifier_before: Samples,
    mints_before: MintCounts,
    proxy_before: ProxyCounts,
    windows: Mutex<Vec<(Phase, f64, f64)>>,
}

impl Soak {
    /// Starts the sampler and the background token requests, and scrapes
    /// both services; `load` is the load asked for, `good` the clients the
    /// background requests use.
    pub async fn start(
        http: &reqwest::Client,
        sut: &Sut,
        minter: &Minter,
        good: Vec<Credentials>,
        load: Duration,
        started_unix: u64,
    ) -> anyhow::Result<Soak> {
        let (Some(issuer_pid), Some(verifier_pid), Some(proxy)) =
            (sut.issuer_pid, sut.verifier_pid, &sut.proxy)
        else {
            bail!("the soak needs the services' pids and the JWKS proxy: it starts the services itself");
        };
        // Every loop of the soak ends by this time, however slow the set-up between phases.
        let longest = load * 2 + Duration::from_secs(600);
        let sampler = Sampler::start(Instant::now(), issuer_pid, verifier_pid, longest);
        let issuer_before = http::scrape(http, sut.issuer).await?;
        let verifier_before = http::scrape(http, sut.verifier).await?;
        let traffic = Arc::new(TokenTraffic::default());
        let (stop, stopped) = watch::channel(false);
        let driver = tokio::spawn(token_traffic::run(
            http.clone(),
            sut.issuer,
            good,
            traffic.clone(),
            stopped,
            longest,
        ));
        Ok(Soak {
            started_unix,
            load,
            ledger: Arc::new(VerifyLedger::default()),
            traffic,
            sampler,
            stop,
            driver,
            background_started: Instant::now(),
            issuer_before,
            verifier_before,
            mints_before: minter.counts(),
            proxy_before: proxy.counts(),
            windows: Mutex::new(Vec::new()),
        })
    }

    /// The watch goose's users report to.
    pub fn watch(&self, sut: &Sut) -> Option<Watch> {
        sut.proxy.as_ref().map(|proxy| Watch {
            ledger: self.ledger.clone(),
            proxy: proxy.clone(),
        })
    }

    /// The background token requests so far (for a phase's issuer window).
    pub fn token_counts(&self) -> TokenCounts {
        self.traffic.counts()
    }

    /// Seconds since the soak started.
    pub fn now_s(&self) -> f64 {
        self.sampler.now_s()
    }

    /// Records that `phase`'s load ran from `from_s` to `to_s`.
    pub fn load_ran(&self, phase: Phase, from_s: f64, to_s: f64) {
        self.windows
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((phase, from_s, to_s));
    }

    /// Stops the background requests and the sampler, scrapes both services
    /// again and sums the soak up against `summary` (the phase walk's);
    /// `wanted`: the events the options asked for.
    pub async fn finish(
        self,
        http: &reqwest::Client,
        sut: &Sut,
        minter: &Minter,
        summary: &Summary,
        wanted: Wanted,
    ) -> anyhow::Result<SoakSummary> {
        let _ = self.stop.send(true);
        let mut driver = self.driver;
        if tokio::time::timeout(STOP_TIMEOUT, &mut driver)
            .await
            .is_err()
        {
            driver.abort();
            bail!(
                "the background token requests did not stop within {} s",
                STOP_TIMEOUT.as_secs()
            );
        }
        let background_s = self.background_started.elapsed().as_secs_f64();
        let issuer_after = http::scrape(http, sut.issuer).await?;
        let verifier_after = http::scrape(http, sut.verifier).await?;
        let mints = minter.counts().since(self.mints_before);
        let proxy = sut
            .proxy
            .as_ref()
            .map(|p| p.counts().since(self.proxy_before))
            .unwrap_or_default();
        // The load is over: let connections close before the idle sample.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let idle = self.sampler.sample_now();
        let wall_s = self.sampler.now_s();
        let samples = self.sampler.stop().await;

        let windows = self.windows.into_inner().unwrap_or_else(|p| p.into_inner());
        let load_from = windows.first().map(|w| w.1).unwrap_or(0.0);
        let load_to = windows.last().map(|w| w.2).unwrap_or(0.0);
        let warm_up_s = warm_up(self.load).as_secs_f64();
        let marks = resources::warm_and_end(&samples, load_from + warm_up_s, load_to);
        let (limit, window) = failed_auth_settings(sut)?;

        let verify = self.ledger.tallies();
        let token_traffic = self.traffic.counts();
        let answers = verify
            .values()
            .fold(crate::answers::Answers::default(), |a, t| {
                a.plus(&t.answers)
            });
        let token_answers = token_traffic.good.plus(&token_traffic.wrong_secret).answers;
        let mut soak = SoakSummary {
            version: crate::soak_report::VERSION,
            started_unix: self.started_unix,
            cores: summary.cores,
            seconds: self.load.as_secs(),
            quick: summary.options.quick,
            users: summary.options.users,
            wall_s,
            phases: summary
                .phases
                .iter()
                .zip(&windows)
                .map(|(p, w)| phase_window(p, w.1, w.2))
                .collect(),
            verify,
            verify_outcomes: prom::deltas_by(
                &self.verifier_before,
                &verifier_after,
                prom::VERIFY_TOTAL,
                &["alg", "outcome"],
            ),
            token_traffic,
            issuer: IssuerAccount {
                token_requests: prom::deltas_by(
                    &self.issuer_before,
                    &issuer_after,
                    prom::TOKEN_REQUESTS,
                    &["outcome"],
                ),
                failed_auth_limit: limit,
                failed_auth_window_s: window.as_secs(),
                harness_mint_attempts: mints.attempts,
                harness_minted: mints.issued,
                background_s,
            },
            server_errors: ServerErrors {
                jwks_outage_503: proxy.served_503,
                verify_outage_503: answers.outage_503,
                verify_other: answers.server_errors,
                token_endpoint: token_answers.server_errors,
                jwks_proxy_502: proxy.served_502,
            },
            warm_up_s,
            warm_up_sample: marks.map(|m| m.0),
            end_sample: marks.map(|m| m.1),
            idle_sample: Some(idle),
            bounds: marks
                .map(|(w, e)| resources::bounds(&w, &e))
                .unwrap_or_default(),
            samples,
            problems: Vec::new(),
        };
        let cut_off = (summary.options.users * summary.phases.len()) as u64;
        soak.problems = soak_check::problems(&soak, wanted, cut_off);
        Ok(soak)
    }
}

/// The issuer's `failed_auth_limit` and window, from the config it runs from.
fn failed_auth_settings(sut: &Sut) -> anyhow::Result<(u32, Duration)> {
    let path = sut
        .config_path
        .as_ref()
        .context("the soak's services have no config file")?;
    let config = Config::load(path).with_context(|| format!("reading {}", path.display()))?;
    let issuer = config.issuer.context("the soak's config has no [issuer]")?;
    Ok((issuer.failed_auth_limit, issuer.failed_auth_window))
}

/// A phase of the walk, in words.
fn phase_window(p: &PhaseSummary, from_s: f64, to_s: f64) -> PhaseWindow {
    let mut events = vec!["phase reload".to_owned()];
    if p.sent.contains_key(Kind::Expired.name()) {
        events.push(format!(
            "{EXPIRING_TOKENS} tokens minted with a {} s lifetime (two issuer reloads)",
            EXPIRING_TTL.as_secs()
        ));
    }
    if let Some(r) = &p.rotation {
        events.push(match (&r.new_kid, &r.note) {
            (Some(kid), _) => format!(
                "key rotation: {kid} signs, {} tokens with it pooled at once",
                r.new_kid_tokens
            ),
            (None, note) => format!(
                "key rotation: {}",
                note.as_deref().unwrap_or("no new kid signed")
            ),
        });
    }
    if let Some(o) = &p.outage {
        events.push(format!(
            "JWKS outage {:.1} s ({} 503s served, {} failed fetches counted)",
            o.seconds, o.proxy_503s, p.jwks_fetch_errors
        ));
    }
    PhaseWindow {
        phase: p.phase,
        load_from_s: from_s,
        load_to_s: to_s,
        events,
        problems: p.problems.len(),
    }
}

/// Mints [`EXPIRING_TOKENS`] tokens of `phase`'s algorithm that expire at
/// once: the issuer is reloaded with `token_ttl` = [`EXPIRING_TTL`], the
/// tokens are minted, and it is reloaded with its own lifetime again
/// (whatever happened in between). Each is sure to count as expired at
/// its arrival + lifetime + the verifier's leeway + 1 s (`exp` is in whole
/// seconds).
pub async fn mint_expiring(
    sut: &Sut,
    minter: &Minter,
    phase: Phase,
) -> anyhow::Result<Vec<Expiring>> {
    let normal = sut
        .token_ttl()
        .context("the soak rewrites only the harness's own config")?;
    sut.write_token_ttl(phase, EXPIRING_TTL)?;
    sut.hup(Role::Issuer)?;
    let minted = async {
        let first = minted_with(minter, EXPIRING_TTL).await?;
        let mut out = vec![first];
        for t in minter.mint_many(EXPIRING_TOKENS - 1, 1).await? {
            ensure!(
                t.expires_in == EXPIRING_TTL,
                "a token of the short-lived batch lives {} s",
                t.expires_in.as_secs()
            );
            out.push(t);
        }
        anyhow::Ok(out)
    }
    .await;
    sut.write_phase(phase)?;
    sut.hup(Role::Issuer)?;
    minted_with(minter, normal)
        .await
        .context("restoring the issuer's token lifetime")?;
    let received = Instant::now();
    let sure = EXPIRING_TTL + SOAK_LEEWAY + Duration::from_secs(1);
    Ok(minted
        .context("minting tokens that expire at once")?
        .into_iter()
        .map(|t| Expiring {
            token: t.token,
            expired_at: received + sure,
        })
        .collect())
}

/// Mints (≤ [`RELOAD_PROBES`] times, 100 ms apart) until a token lives
/// `ttl`: the issuer has applied the reload that set it.
async fn minted_with(minter: &Minter, ttl: Duration) -> anyhow::Result<crate::token::Minted> {
    for attempt in 0..RELOAD_PROBES {
        let t = minter.mint(attempt).await?;
        if t.expires_in == ttl {
            return Ok(t);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!(
        "the issuer did not mint tokens living {} s within {} probes of its reload",
        ttl.as_secs(),
        RELOAD_PROBES
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warm_up_is_a_tenth_of_the_load_within_2_and_60_s() {
        assert_eq!(warm_up(Duration::from_secs(10)), Duration::from_secs(2));
        assert_eq!(warm_up(Duration::from_secs(60)), Duration::from_secs(6));
        assert_eq!(warm_up(Duration::from_secs(600)), Duration::from_secs(60));
        assert_eq!(warm_up(Duration::from_secs(7200)), Duration::from_secs(60));
    }

    #[test]
    fn the_guesser_is_configured_beside_the_harness_clients() {
        let clients = crate::token::builtin_clients();
        let all = configured_clients(&clients);
        assert_eq!(all.len(), clients.len() + 1);
        assert!(!clients.iter().any(|c| c.id == token_traffic::GUESSER_ID));
        assert_eq!(
            all.last().map(|c| c.id.as_str()),
            Some(token_traffic::GUESSER_ID)
        );
    }
}
