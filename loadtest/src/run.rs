//! The run: for each phase, switch (when the harness controls the phase),
//! build the pool, scrape, drive, scrape, summarize and check; then write the
//! report, read it back and fail on any problem. A soak ([`crate::soak`])
//! runs beside the same walk and adds its own report and checks.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context};
use keyshift_core::clock::{Clock, SystemClock};
use keyshift_core::{Alg, Phase};
use keyshift_testkit::jwt;
use tokio::sync::mpsc;

use crate::capacity;
use crate::check;
use crate::cli::{Options, Target};
use crate::drive;
use crate::events::{self, EventsReport, OutagePlan, RotationPlan};
use crate::gateway::{self, GatewayRun, Upstream};
use crate::http;
use crate::legacy::LegacyIssuer;
use crate::phase;
use crate::pool::{self, Expiring, Kind, Mix, Pool, SlotInit};
use crate::report::{self, PhaseSummary, PoolSummary, RunOptions, Summary};
use crate::services::Settings;
use crate::smoke;
use crate::soak::{self, Soak};
use crate::soak_check::Wanted;
use crate::soak_report::{self, SoakSummary};
use crate::summarize::{self, PhaseInput};
use crate::sut::{Mode, Sut, SHARED_SECRET};
use crate::token::{self, Credentials, Minted, Minter};
use crate::token_capacity::{self, HashClient};

/// Runs the load test; an error (or any problem found) fails the run.
pub async fn run(opts: Options) -> anyhow::Result<()> {
    let started = SystemClock.now_secs();
    let dir = report_dir(&opts.out, started)?;
    let work = dir.join("work");
    std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    let http = http::client()?;
    let clients = read_clients(&opts)?;
    let extras = Extras::new(&opts).await?;
    let sut = start_sut(&opts, &work, clients.clone(), &extras).await?;
    println!(
        "keyshift-loadtest: issuer {} verifier {} ({:?}), reports in {}",
        sut.issuer,
        sut.verifier,
        sut.mode,
        dir.display()
    );
    for note in opts.notes.iter().chain(&sut.notes) {
        println!("note: {note}");
    }
    let minter = Arc::new(Minter::new(http.clone(), sut.issuer, clients.clone())?);
    let mut current = phase::current(&http, sut.issuer, sut.verifier).await?;
    let planned = opts.phases.clone().unwrap_or_else(|| vec![current]);
    let mut summary = new_summary(&opts, &sut, started, planned.clone());
    let soak = match opts.soak {
        Some(s) => Some(Soak::start(&http, &sut, &minter, clients, s.seconds, started).await?),
        None => None,
    };

    let run = Run {
        opts: &opts,
        sut: &sut,
        http: &http,
        minter: &minter,
        dir: &dir,
        soak: soak.as_ref(),
        extras: &extras,
    };
    let mut carried = Carried::default();
    for &ph in &planned {
        let mut sighups = 0;
        if sut.controls_phase() {
            run.switch(current, ph, &mut carried).await?;
            sighups += 1;
            current = ph;
        }
        summary.phases.push(run.phase(ph, &carried, sighups).await?);
    }
    if let Some(t) = opts.token_endpoint {
        summary.token_endpoint = Some(
            token_capacity::measure(&http, sut.issuer, current, &extras.hash_clients, t).await?,
        );
    }
    let soak = match soak {
        Some(s) => {
            let wanted = Wanted {
                rotation: opts.rotate && planned.iter().any(|p| p.signs() == Alg::Rs256),
                outage: opts.outage && planned.iter().any(|p| p.signs() == Alg::Rs256),
            };
            Some(s.finish(&http, &sut, &minter, &summary, wanted).await?)
        }
        None => None,
    };
    finish(&dir, &summary, soak.as_ref(), &opts, &http, sut, current).await
}

/// The client credentials: `--clients`, or the harness's own.
fn read_clients(opts: &Options) -> anyhow::Result<Vec<Credentials>> {
    match &opts.clients {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("--clients {}", path.display()))?;
            token::parse_clients(&text).with_context(|| format!("--clients {}", path.display()))
        }
        None => Ok(token::builtin_clients()),
    }
}

/// What the load-test modes add to a managed run: the legacy issuer, the
/// gateway's upstream, the token-endpoint capacity clients.
#[derive(Debug, Default)]
struct Extras {
    legacy: Option<LegacyIssuer>,
    upstream: Option<(Arc<Upstream>, std::net::SocketAddr)>,
    hash_clients: Vec<HashClient>,
}

impl Extras {
    async fn new(opts: &Options) -> anyhow::Result<Extras> {
        let upstream = match opts.gateway {
            Some(_) => {
                let u = Arc::new(Upstream::default());
                let addr = u.start().await?;
                Some((u, addr))
            }
            None => None,
        };
        Ok(Extras {
            legacy: opts
                .legacy_share
                .map(|_| LegacyIssuer::new(SHARED_SECRET.as_bytes())),
            upstream,
            hash_clients: match opts.token_endpoint {
                Some(t) => token_capacity::clients(t.real_cost)?,
                None => Vec::new(),
            },
        })
    }
}

/// Starts the services (managed) or attaches to them (external).
async fn start_sut(
    opts: &Options,
    work: &Path,
    clients: Vec<Credentials>,
    extras: &Extras,
) -> anyhow::Result<Sut> {
    let mut settings = if opts.soak.is_some() {
        Settings::soak(soak::configured_clients(&clients))
    } else {
        Settings::load_test(clients)
    };
    settings.legacy_profile = extras.legacy.is_some();
    settings.gateway_upstream = extras.upstream.as_ref().map(|(_, addr)| *addr);
    settings.hashed_clients = extras
        .hash_clients
        .iter()
        .map(|c| c.entry.clone())
        .collect();
    match &opts.target {
        Target::Managed { keyshift } => {
            // RS256-only plans still start in dual, so HS256 tokens exist before the switch.
            let first = opts
                .phases
                .as_ref()
                .and_then(|p| p.first().copied())
                .unwrap_or(Phase::Dual);
            let start = if first.signs() == Alg::Rs256 {
                Phase::Dual
            } else {
                first
            };
            Sut::managed(keyshift, work, start, settings).await
        }
        Target::External {
            issuer,
            verifier,
            control,
        } => Sut::external(*issuer, *verifier, control.as_ref()),
    }
}

/// The summary before any phase ran.
fn new_summary(opts: &Options, sut: &Sut, started: u64, planned: Vec<Phase>) -> Summary {
    Summary {
        version: report::VERSION,
        started_unix: started,
        cores: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        mode: sut.mode,
        planned,
        options: RunOptions {
            duration_s: opts.duration.as_secs(),
            users: opts.users,
            pool_size: opts.pool.size,
            reuse: opts.pool.reuse,
            straggler_share: opts.pool.straggler_share,
            attack_share: opts.pool.attack_share,
            rotate: opts.rotate,
            outage: opts.outage,
            quick: opts.quick,
            legacy_share: opts.legacy_share,
            gateway_duration_s: opts.gateway.map(|d| d.as_secs()),
            token_rate: opts.token_endpoint.map(|t| t.target_rate),
        },
        notes: opts.notes.iter().chain(&sut.notes).cloned().collect(),
        capacity_assumption: opts
            .capacity
            .or(opts.token_endpoint.map(|t| (t.target_rate, None)))
            .map(|_| capacity::ASSUMPTION.to_owned()),
        phases: Vec::new(),
        token_endpoint: None,
    }
}

/// HS256 tokens minted just before leaving an HS256-signing phase: still
/// valid in transition, stale stragglers in asymmetric.
#[derive(Debug)]
struct Carried {
    tokens: Vec<Minted>,
    at: Instant,
}

impl Default for Carried {
    fn default() -> Carried {
        Carried {
            tokens: Vec::new(),
            at: Instant::now(),
        }
    }
}

/// What every step of a run reads.
#[derive(Debug)]
struct Run<'a> {
    opts: &'a Options,
    sut: &'a Sut,
    http: &'a reqwest::Client,
    minter: &'a Arc<Minter>,
    dir: &'a Path,
    soak: Option<&'a Soak>,
    extras: &'a Extras,
}

/// A phase's goose run and the events beside it.
#[derive(Debug)]
struct Load {
    sent: drive::Sent,
    events: EventsReport,
}

impl Run<'_> {
    /// The operator path from `from` to `to`: carry HS256 tokens across an
    /// HS256 → RS256 switch, edit the config, then reload one service after
    /// the other in the runbook's order, each reporting the phase before the
    /// next.
    async fn switch(&self, from: Phase, to: Phase, carried: &mut Carried) -> anyhow::Result<()> {
        if from.signs() == Alg::Hs256 && to.signs() == Alg::Rs256 {
            carried.tokens = self.minter.mint_many(self.opts.pool.size, 0).await?;
            carried.at = Instant::now();
        }
        self.sut.write_phase(to)?;
        for role in phase::reload_order(from, to) {
            self.sut.hup(role)?;
            phase::wait_for_role(self.http, role, self.sut.addr(role), to).await?;
        }
        Ok(())
    }

    /// One phase: fill the pool, scrape, drive goose (with the events),
    /// scrape again, summarize and check.
    async fn phase(
        &self,
        ph: Phase,
        carried: &Carried,
        mut sighups: u64,
    ) -> anyhow::Result<PhaseSummary> {
        let (opts, sut) = (self.opts, self.sut);
        let mut notes = Vec::new();
        let background_before = self.soak.map(Soak::token_counts);
        let issuer_before = http::scrape(self.http, sut.issuer).await?;
        let mints_before = self.minter.counts();
        let expiring = match self.soak {
            Some(_) => soak::mint_expiring(sut, self.minter, ph).await?,
            None => Vec::new(),
        };
        let slots = self.slots(ph, carried, &mut notes).await?;
        let mut mix = self.mix(ph, &slots, expiring);
        if let (Some(issuer), Some(share)) = (&self.extras.legacy, opts.legacy_share) {
            mix.legacy_share = share;
            mix.legacy = issuer.mint_fleet(SystemClock.now_secs())?;
            mix.legacy_kind = Some(Kind::legacy_in(ph));
        }
        let (pool, refill_rx) = Pool::new(slots, opts.pool.reuse, mix)?;
        let outage = self.outage(ph);
        sighups += u64::from(outage.is_some());

        let proxy_before = sut.proxy.as_ref().map(|p| p.counts());
        let verifier_before = http::scrape(self.http, sut.verifier).await?;
        let window_started = Instant::now();
        let load = self.load(ph, &pool, refill_rx, outage).await?;
        let verifier_after = http::scrape(self.http, sut.verifier).await?;
        let window = window_started.elapsed();
        let proxy = sut
            .proxy
            .as_ref()
            .zip(proxy_before)
            .map(|(p, before)| p.counts().since(before));
        let issuer_after = http::scrape(self.http, sut.issuer).await?;
        let mints = self.minter.counts().since(mints_before);
        let background = self
            .soak
            .zip(background_before)
            .map(|(s, before)| s.token_counts().since(&before));

        let mut phase_summary = summarize::summarize(PhaseInput {
            phase: ph,
            users: opts.users,
            sent: &load.sent,
            window,
            verifier_before: &verifier_before,
            verifier_after: &verifier_after,
            issuer_before: &issuer_before,
            issuer_after: &issuer_after,
            mints,
            background,
            pool: pool_summary(&pool, opts.pool.reuse),
            events: load.events,
            attack: opts.pool.attack_share > 0.0,
            verifier_sighups: sighups,
            proxy,
            unknown_kid_cooldown: sut.unknown_kid_cooldown,
            notes,
            rss_kib: sut.verifier_rss_kib(),
            capacity: opts.capacity,
            legacy: opts.legacy_share.is_some(),
        });
        phase_summary.gateway = self.through_gateway(ph, &pool, &phase_summary).await?;
        phase_summary.problems = check::phase_problems(&phase_summary, sut.mode);
        println!(
            "phase {ph}: {:.0} req/s ({:.0} legitimate), p99 {:.2} ms, unexpected {}, problems {}",
            phase_summary.rps,
            phase_summary.legitimate_rps,
            phase_summary.p99_ms,
            phase_summary.unexpected,
            phase_summary.problems.len()
        );
        if let Some(g) = &phase_summary.gateway {
            println!(
                "phase {ph} through the gateway: {:.0} req/s ({:.0} legitimate), p99 {:.2} ms ({:+.2} ms), signed-token cache {}",
                g.rps,
                g.legitimate_rps,
                g.p99_ms,
                g.added_p99_ms,
                g.signed_cache_hit_rate
                    .map(|r| format!("{:.1} %", r * 100.0))
                    .unwrap_or_else(|| "—".into())
            );
        }
        Ok(phase_summary)
    }

    /// `--through-gateway`: the phase's pool through a gateway started for
    /// the phase, set against the verifier's figures `alone`.
    async fn through_gateway(
        &self,
        ph: Phase,
        pool: &Arc<Pool>,
        alone: &PhaseSummary,
    ) -> anyhow::Result<Option<report::GatewaySummary>> {
        let (Some((upstream, _)), Some(duration)) = (&self.extras.upstream, self.opts.gateway)
        else {
            return Ok(None);
        };
        let (Some(keyshift), Some(config)) = (&self.sut.keyshift, &self.sut.config_path) else {
            bail!("--through-gateway needs the services the harness started");
        };
        let run = GatewayRun {
            keyshift,
            config,
            log: &self.dir.join("work").join(format!("gateway-{ph}.log")),
            upstream,
            users: self.opts.users,
            duration,
            report_html: &self.dir.join(format!("goose-gateway-{ph}.html")),
        };
        Ok(Some(
            gateway::run_phase(self.http, ph, run, pool, alone).await?,
        ))
    }

    /// The pool's starting tokens: fresh ones, and in an RS256-signing
    /// phase the carried HS256 ones (legitimate while HS256 is accepted,
    /// stragglers after).
    async fn slots(
        &self,
        ph: Phase,
        carried: &Carried,
        notes: &mut Vec<String>,
    ) -> anyhow::Result<Vec<SlotInit>> {
        let pool = &self.opts.pool;
        let fresh_at = Instant::now();
        let mut slots: Vec<SlotInit> = self
            .minter
            .mint_many(pool.size, 0)
            .await?
            .into_iter()
            .map(|minted| SlotInit {
                minted,
                straggler: false,
                minted_at: fresh_at,
            })
            .collect();
        if ph.signs() == Alg::Rs256 {
            let carry = |t: &Minted, straggler| SlotInit {
                minted: t.clone(),
                straggler,
                minted_at: carried.at,
            };
            if ph.accepts(Alg::Hs256) {
                slots.extend(carried.tokens.iter().map(|t| carry(t, false)));
            } else {
                let n = (pool.size as f64 * pool.straggler_share).ceil() as usize;
                slots.extend(carried.tokens.iter().take(n).map(|t| carry(t, true)));
            }
            if carried.tokens.is_empty() && (ph.accepts(Alg::Hs256) || pool.straggler_share > 0.0) {
                notes.push("no HS256 tokens from before the switch (the services were not in an HS256-signing phase during this run)".to_owned());
            }
        }
        Ok(slots)
    }

    /// The unwanted tokens among the phase's requests: random kids, and in a
    /// soak forged tokens (from a slot's token of the phase's signing
    /// algorithm) and the `expiring` ones.
    fn mix(&self, ph: Phase, slots: &[SlotInit], expiring: Vec<Expiring>) -> Mix {
        let mut mix = Mix::attacks(self.opts.pool.attack_share);
        if self.soak.is_some() {
            mix.forged_share = soak::FORGED_SHARE;
            mix.forge_from = slots
                .iter()
                .filter(|s| !s.straggler)
                .map(|s| &s.minted.token)
                .find(|t| jwt::header(t).is_some_and(|h| h.alg == ph.signs()))
                .cloned();
            mix.expired_share = soak::EXPIRED_SHARE;
            mix.expired = expiring;
        }
        mix
    }

    /// A key rotation during the phase, when asked for and possible (RS256
    /// signing, and the binary, config, issuer pid and timings known).
    fn rotation(
        &self,
        ph: Phase,
        pool: &Arc<Pool>,
    ) -> Option<(RotationPlan, Arc<Pool>, Arc<Minter>)> {
        let sut = self.sut;
        if !(self.opts.rotate && ph.signs() == Alg::Rs256) {
            return None;
        }
        match (
            &sut.keyshift,
            &sut.config_path,
            sut.issuer_pid,
            sut.key_prepublish,
        ) {
            (Some(keyshift), Some(config), Some(issuer_pid), Some(prepublish)) => Some((
                RotationPlan {
                    keyshift: keyshift.clone(),
                    config: config.clone(),
                    issuer: sut.issuer,
                    issuer_pid,
                    prepublish,
                },
                pool.clone(),
                self.minter.clone(),
            )),
            _ => None,
        }
    }

    /// A JWKS outage during the phase, when asked for and possible (RS256
    /// signing, the harness's proxy and the verifier's pid).
    fn outage(&self, ph: Phase) -> Option<OutagePlan> {
        match (
            self.opts.outage && ph.signs() == Alg::Rs256,
            &self.sut.proxy,
            self.sut.verifier_pid,
        ) {
            (true, Some(proxy), Some(verifier_pid)) => Some(OutagePlan {
                proxy: proxy.clone(),
                verifier_pid,
            }),
            _ => None,
        }
    }

    /// Goose for the phase's duration, with the pool refilled and the
    /// events (rotation, outage) run beside it.
    async fn load(
        &self,
        ph: Phase,
        pool: &Arc<Pool>,
        refill_rx: mpsc::Receiver<usize>,
        outage: Option<OutagePlan>,
    ) -> anyhow::Result<Load> {
        let opts = self.opts;
        let refill = tokio::spawn(pool::refill(pool.clone(), refill_rx, self.minter.clone()));
        println!(
            "phase {ph}: {} users for {} s, {} tokens ({} stragglers), reuse {}, attack share {}",
            opts.users,
            opts.duration.as_secs(),
            pool.len(),
            pool.stragglers(),
            opts.pool
                .reuse
                .map(|n| n.to_string())
                .unwrap_or_else(|| "until near expiry".into()),
            opts.pool.attack_share
        );
        let events_task = tokio::spawn(events::run(
            self.http.clone(),
            Instant::now(),
            opts.duration,
            self.rotation(ph, pool),
            outage,
        ));
        let html = self.dir.join(format!("goose-{ph}.html"));
        let load_from = self.soak.map(Soak::now_s);
        let sent = drive::drive(
            drive::Target::verifier(self.sut.verifier),
            ph,
            opts.users,
            opts.duration,
            &html,
            pool,
            self.soak.and_then(|s| s.watch(self.sut)),
        )
        .await;
        refill.abort();
        if let (Some(s), Some(from)) = (self.soak, load_from) {
            s.load_ran(ph, from, s.now_s());
        }
        let sent = match sent {
            Ok(s) => s,
            Err(e) => {
                events_task.abort();
                return Err(e.context(format!("phase {ph}: goose")));
            }
        };
        let events = events_task.await.context("events task")??;
        Ok(Load { sent, events })
    }
}

/// Writes the report (and a soak's), reads it back and checks it (and, in
/// a quick managed run that is no soak, the external modes); stops the
/// services; fails on any problem.
async fn finish(
    dir: &Path,
    summary: &Summary,
    soak: Option<&SoakSummary>,
    opts: &Options,
    http: &reqwest::Client,
    sut: Sut,
    current: Phase,
) -> anyhow::Result<()> {
    report::write(dir, summary)?;
    print!("\n{}", report::markdown(summary));
    if let Some(s) = soak {
        soak_report::write(dir, s)?;
        print!("\n{}", soak_report::markdown(s));
    }
    println!("\nreport: {}", dir.display());

    let parsed = check::read_report(dir, summary).context("reading the report back")?;
    let mut problems = check::all_problems(&parsed, opts.quick);
    if let Some(s) = soak {
        let back = soak_report::read_back(dir, s).context("reading the soak report back")?;
        problems.extend(back.problems.iter().map(|p| format!("soak: {p}")));
    }
    if opts.quick && sut.mode == Mode::Managed && soak.is_none() {
        problems.extend(smoke::external_modes(dir, http, &sut, current).await);
    }
    drop(sut);
    if !problems.is_empty() {
        bail!(
            "{} problem(s):\n  - {}",
            problems.len(),
            problems.join("\n  - ")
        );
    }
    if opts.quick {
        println!(
            "self-check passed: report files parse, outcomes match what was sent, events happened"
        );
    }
    if soak.is_some() {
        println!("soak passed: no legitimate request failed, no 5xx but the outage's 503s, RSS and fds within their bounds");
    }
    Ok(())
}

fn pool_summary(pool: &Pool, reuse: Option<u64>) -> PoolSummary {
    use std::sync::atomic::Ordering::Relaxed;
    PoolSummary {
        slots: pool.len(),
        stragglers: pool.stragglers(),
        reuse,
        replacements_requested: pool.stats.replacements_requested.load(Relaxed),
        replaced: pool.stats.replaced.load(Relaxed),
        replace_errors: pool.stats.replace_errors.load(Relaxed),
    }
}

/// A new folder `<out>/<started>`, or `<started>-2`, `-3`, … if taken.
pub fn report_dir(out: &Path, started: u64) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    for n in 1..=100 {
        let name = if n == 1 {
            started.to_string()
        } else {
            format!("{started}-{n}")
        };
        let dir = out.join(name);
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e).with_context(|| format!("creating {}", dir.display())),
        }
    }
    bail!(
        "{}: 100 report folders for second {started} already exist",
        out.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_folders_never_collide() {
        let out =
            std::env::temp_dir().join(format!("keyshift-loadtest-dirs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&out);
        let a = report_dir(&out, 42).expect("first");
        let b = report_dir(&out, 42).expect("second");
        let c = report_dir(&out, 42).expect("third");
        assert_eq!(a, out.join("42"));
        assert_eq!(b, out.join("42-2"));
        assert_eq!(c, out.join("42-3"));
        let _ = std::fs::remove_dir_all(&out);
    }
}
