//! `keyshift-loadtest`: drives a real keyshift issuer and verifier on
//! loopback through the migration phases (dual → transition → asymmetric)
//! with goose, and reports throughput, latency, outcomes and cache hit rates
//! from the services' own `/metrics`. `make loadtest` runs it on a release
//! build; `--quick` is the smoke run of `make test`.

mod capacity;
mod http;
mod pool;
mod prom;
mod proxy;
mod report;
mod services;

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use clap::Parser;
use goose::prelude::*;
use nix::sys::signal::Signal;

use pool::Expect;
use report::{PhaseSummary, Summary};
use services::Process;

/// Load-test keyshift across the migration phases.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// The keyshift binary.
    #[arg(long, default_value = "target/release/keyshift")]
    keyshift: PathBuf,
    /// Phases to run, in order.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "dual,transition,asymmetric"
    )]
    phases: Vec<String>,
    /// Load time per phase, seconds.
    #[arg(long, default_value_t = 20)]
    duration: u64,
    /// Concurrent goose users.
    #[arg(long, default_value_t = 16)]
    users: usize,
    /// Legitimate tokens per pool (fewer means more token-cache hits).
    #[arg(long, default_value_t = 400)]
    pool_size: usize,
    /// Share of stale HS256 stragglers in phase asymmetric (expected 401).
    #[arg(long, default_value_t = 0.05)]
    straggler_share: f64,
    /// Share of attack tokens with random kids (expected 401); 0 turns it off.
    #[arg(long, default_value_t = 0.02)]
    attack_share: f64,
    /// Rotate the signing key in the RS256 phases (published at 15 %, signing 2.5 s later).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    rotate: bool,
    /// Make the JWKS endpoint fail from 60 % to 85 % of each RS256 phase.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    outage: bool,
    /// Target request rate for the capacity line.
    #[arg(long)]
    target_rps: Option<f64>,
    /// p99 objective in milliseconds for the capacity line.
    #[arg(long)]
    p99_ms: Option<f64>,
    /// Where reports go (a timestamped folder is made inside).
    #[arg(long, default_value = "loadtest/reports")]
    out: PathBuf,
    /// A short smoke run: 5 s per phase, 4 users, small pools; checks the report.
    #[arg(long)]
    quick: bool,
}

fn main() -> anyhow::Result<()> {
    let mut args = Args::parse();
    if args.quick {
        args.duration = 5;
        args.users = 4;
        args.pool_size = 40;
    }
    validate(&args)?;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(args))
}

/// Refuses options that would panic or mean nothing: an empty pool, no
/// users, no time, shares outside [0, 1], a non-positive target.
fn validate(args: &Args) -> anyhow::Result<()> {
    if args.pool_size == 0 {
        bail!("--pool-size 0: the pool needs at least one token");
    }
    if args.users == 0 {
        bail!("--users 0: at least one user");
    }
    if !(1..=3600).contains(&args.duration) {
        bail!("--duration {}: between 1 and 3600 seconds", args.duration);
    }
    for (name, v) in [
        ("--straggler-share", args.straggler_share),
        ("--attack-share", args.attack_share),
    ] {
        if !(0.0..=1.0).contains(&v) {
            bail!("{name} {v}: must be between 0 and 1");
        }
    }
    for (name, v) in [("--target-rps", args.target_rps), ("--p99-ms", args.p99_ms)] {
        if let Some(v) = v {
            if !(v > 0.0 && v.is_finite()) {
                bail!("{name} {v}: must be a positive number");
            }
        }
    }
    Ok(())
}

/// A new folder `<out>/<started>`, or `<started>-2`, `-3`, … if taken.
fn report_dir(out: &std::path::Path, started: u64) -> anyhow::Result<PathBuf> {
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
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e).with_context(|| format!("creating {}", dir.display())),
        }
    }
    bail!(
        "{}: 100 report folders for second {started} already exist",
        out.display()
    )
}

async fn run(args: Args) -> anyhow::Result<()> {
    let started = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let dir = report_dir(&args.out, started)?;
    let work = dir.join("work");
    std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    std::fs::write(
        work.join("hs256.secret"),
        "loadtest-shared-secret-0123456789abcdef\n",
    )?;

    // Issuer first (its port goes into the verifier's JWKS URL, through our proxy).
    let first = args.phases.first().map(String::as_str).unwrap_or("dual");
    let mut config = services::write_config(&work, first, "127.0.0.1:0", None)?;
    let issuer = Process::start(&args.keyshift, "issuer", &config, &work.join("issuer.log"))?;
    let control = Arc::new(proxy::ProxyControl::default());
    let proxy_addr = proxy::start(issuer.addr, control.clone()).await?;
    let jwks_url = format!("http://{proxy_addr}/.well-known/jwks.json");
    let issuer_listen = issuer.addr.to_string();
    config = services::write_config(&work, first, &issuer_listen, Some(&jwks_url))?;
    let verifier = Process::start(
        &args.keyshift,
        "verifier",
        &config,
        &work.join("verifier.log"),
    )?;
    let http = http::client()?;
    println!(
        "keyshift-loadtest: issuer {} verifier {} (JWKS through {proxy_addr}), reports in {}",
        issuer.addr,
        verifier.addr,
        dir.display()
    );

    let mut summary = Summary {
        version: 1,
        started_unix: started,
        cores: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        capacity_assumption: args.target_rps.map(|_| capacity::ASSUMPTION.to_owned()),
        phases: Vec::new(),
    };
    let mut hs256_before_switch: Vec<String> = Vec::new();
    for phase in &args.phases {
        services::write_config(&work, phase, &issuer_listen, Some(&jwks_url))?;
        issuer.signal(Signal::SIGHUP)?;
        verifier.signal(Signal::SIGHUP)?;
        wait_for_phase(&http, &issuer, &verifier, phase).await?;

        let before_i = http::scrape(&http, issuer.addr).await?;
        let fresh = pool::mint(&http, issuer.addr, args.pool_size).await?;
        let first = fresh
            .first()
            .context("the token endpoint gave no token")?
            .clone();
        let mut tokens = pool::bearer(&fresh, Expect::Accept);
        let mut events = Vec::new();
        match phase.as_str() {
            "transition" => tokens.extend(pool::bearer(&hs256_before_switch, Expect::Accept)),
            "asymmetric" => {
                let n = ((args.pool_size as f64) * args.straggler_share).ceil() as usize;
                let stragglers: Vec<String> = hs256_before_switch.iter().take(n).cloned().collect();
                tokens.extend(pool::bearer(&stragglers, Expect::Reject));
            }
            _ => {}
        }
        if pool::alg(&first) == "HS256" {
            hs256_before_switch = fresh.clone();
        }
        if args.attack_share > 0.0 {
            let n = ((args.pool_size as f64) * args.attack_share).ceil() as usize;
            let attacks: Vec<String> = (0..n as u64)
                .map(|i| pool::random_kid_token(started ^ (i << 20), &first))
                .collect();
            tokens.extend(pool::bearer(&attacks, Expect::Reject));
            events.push("attack".to_owned());
        }
        pool::set(tokens);

        let before_v = http::scrape(&http, verifier.addr).await?;
        let rs256_phase = pool::alg(&first) == "RS256";
        let events_task = if rs256_phase {
            if args.rotate {
                events.push("rotation".to_owned());
            }
            if args.outage {
                events.push("jwks_outage".to_owned());
            }
            Some(tokio::spawn(run_events(
                args.keyshift.clone(),
                config.clone(),
                issuer.addr,
                issuer.pid(),
                control.clone(),
                Duration::from_secs(args.duration),
                args.rotate,
                args.outage,
            )))
        } else {
            None
        };
        println!(
            "phase {phase}: {} users for {} s, {} tokens in the pool",
            args.users,
            args.duration,
            pool_len()
        );
        let report_html = dir.join(format!("goose-{phase}.html"));
        let metrics = drive(verifier.addr, args.users, args.duration, &report_html).await?;
        if let Some(task) = events_task {
            task.await.context("events task")??;
            if args.outage {
                println!(
                    "phase {phase}: the JWKS proxy served {} 503s during the outage",
                    control.served_503.load(Ordering::Relaxed)
                );
            }
        }
        let after_v = http::scrape(&http, verifier.addr).await?;
        let after_i = http::scrape(&http, issuer.addr).await?;
        let phase_summary = summarize(
            phase,
            &args,
            &metrics,
            (&before_v, &after_v),
            (&before_i, &after_i),
            events,
            verifier.rss_kib(),
        );
        println!(
            "phase {phase}: {:.0} req/s, p99 {:.2} ms, unexpected {}",
            phase_summary.rps, phase_summary.p99_ms, phase_summary.unexpected
        );
        summary.phases.push(phase_summary);
    }

    report::write(&dir, &summary)?;
    print!("\n{}", report::markdown(&summary));
    println!("\nreport: {}", dir.display());
    check(&summary, args.quick)
}

/// Waits (≤ 15 s) until the issuer mints the phase's algorithm and the verifier reports the phase.
async fn wait_for_phase(
    http: &reqwest::Client,
    issuer: &Process,
    verifier: &Process,
    phase: &str,
) -> anyhow::Result<()> {
    let want_alg = if matches!(phase, "legacy" | "dual") {
        "HS256"
    } else {
        "RS256"
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        let minted = pool::mint(http, issuer.addr, 1).await?;
        let reported = http
            .get(format!("http://{}/migration", verifier.addr))
            .send()
            .await?
            .bytes()
            .await?;
        let v: serde_json::Value = serde_json::from_slice(&reported).unwrap_or_default();
        let minted_alg = minted.first().map(|t| pool::alg(t)).unwrap_or_default();
        if minted_alg == want_alg && v["phase"] == phase {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("the services did not switch to phase {phase} within 15 s")
}

fn pool_len() -> usize {
    pool::len()
}

/// Mid-phase events, as an operator would run them: a rotation (the next
/// key is published, then signs once pre-published) and a JWKS outage
/// window that does not overlap the key's publication.
#[allow(clippy::too_many_arguments)]
async fn run_events(
    keyshift: PathBuf,
    config: PathBuf,
    issuer: std::net::SocketAddr,
    issuer_pid: u32,
    control: Arc<proxy::ProxyControl>,
    duration: Duration,
    rotate: bool,
    outage: bool,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let at = |share: f64| duration.mul_f64(share);
    let until = |t: Duration| tokio::time::sleep(t.saturating_sub(started.elapsed()));
    if rotate {
        until(at(0.15)).await;
        let mut rotate = tokio::process::Command::new(&keyshift);
        rotate
            .args(["keys", "rotate", "--config"])
            .arg(&config)
            .kill_on_drop(true);
        let out = tokio::time::timeout(Duration::from_secs(30), rotate.output())
            .await
            .map_err(|_| anyhow::anyhow!("keyshift keys rotate took over 30 s"))?
            .context("keyshift keys rotate")?;
        if !out.status.success() {
            bail!(
                "keys rotate failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let hup = || {
            // 0 or a negative id would signal a whole process group.
            let pid = i32::try_from(issuer_pid)
                .ok()
                .filter(|p| *p > 1)
                .context("the issuer's pid is not one the harness may signal")?;
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGHUP)
                .context("SIGHUP issuer")
        };
        hup()?;
        // The issuer promotes the key once it has been published for key_prepublish (2 s).
        until(at(0.15) + Duration::from_millis(2_500)).await;
        hup()?;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let http = http::client()?;
        let fresh = pool::mint(&http, issuer, 20).await?;
        pool::extend(pool::bearer(&fresh, Expect::Accept));
    }
    if outage {
        until(at(0.60)).await;
        control.outage.store(true, Ordering::Relaxed);
        until(at(0.85)).await;
        control.outage.store(false, Ordering::Relaxed);
    }
    Ok(())
}

/// One `/verify` with a pooled token; a status other than expected is a goose failure.
async fn verify(user: &mut GooseUser) -> TransactionResult {
    let Some(tok) = pool::pick() else {
        return Ok(());
    };
    let expected = match tok.expect {
        Expect::Accept => 200,
        Expect::Reject => 401,
    };
    let builder = user
        .get_request_builder(&GooseMethod::Get, "/verify")?
        .header("authorization", tok.header.as_str());
    let request = GooseRequest::builder()
        .set_request_builder(builder)
        .name(if expected == 200 {
            "verify (legitimate)"
        } else {
            "verify (expected 401)"
        })
        .expect_status_code(expected)
        .build();
    user.request(request).await?;
    Ok(())
}

/// Runs goose against the verifier for `seconds`.
async fn drive(
    verifier: std::net::SocketAddr,
    users: usize,
    seconds: u64,
    report_html: &std::path::Path,
) -> anyhow::Result<goose::metrics::GooseMetrics> {
    let mut config = goose::config::GooseConfiguration::default();
    config.host = Some(format!("http://{verifier}"));
    config.users = Some(users);
    config.increase_rate = Some(users.to_string());
    config.run_time = Some(format!("{seconds}s"));
    config.no_telnet = true;
    config.no_reset_metrics = true;
    config.no_print_metrics = true;
    config.quiet = 1;
    config.report_file = vec![report_html.display().to_string()];
    let metrics = GooseAttack::initialize_with_config(config)?
        .register_scenario(scenario!("verifier").register_transaction(transaction!(verify)))
        .execute()
        .await?;
    Ok(metrics)
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

fn summarize(
    phase: &str,
    args: &Args,
    metrics: &goose::metrics::GooseMetrics,
    (before, after): (&prom::Samples, &prom::Samples),
    (issuer_before, issuer_after): (&prom::Samples, &prom::Samples),
    events: Vec<String>,
    rss: Option<u64>,
) -> PhaseSummary {
    let mut requests = 0u64;
    let mut failures = 0u64;
    let mut expected_rejections = 0u64;
    let mut legitimate = 0u64;
    let mut server_errors = 0u64;
    // Percentiles of the largest request group (the legitimate tokens).
    let mut largest: Option<&goose::metrics::GooseRequestMetricTimingData> = None;
    let mut max_us = 0u64;
    for (name, agg) in &metrics.requests {
        requests += agg.success_count as u64 + agg.fail_count as u64;
        failures += agg.fail_count as u64;
        if name.contains("expected 401") {
            expected_rejections += agg.success_count as u64;
        } else {
            legitimate += agg.success_count as u64 + agg.fail_count as u64;
        }
        server_errors += agg
            .status_code_counts
            .iter()
            .filter(|(code, _)| **code >= 500)
            .map(|(_, n)| *n as u64)
            .sum::<u64>();
        max_us = max_us.max(agg.raw_data.maximum_time_us);
        if largest.is_none_or(|l| l.counter < agg.raw_data.counter) {
            largest = Some(&agg.raw_data);
        }
    }
    let duration = metrics.duration.max(1) as f64;
    let rps = requests as f64 / duration;
    let outcomes = prom::deltas_by(before, after, prom::VERIFY_TOTAL, &["alg", "outcome"]);
    let pct = |p: f32| largest.map(|l| ms(l.percentile_us(p))).unwrap_or(0.0);
    let p99 = pct(0.99);
    PhaseSummary {
        phase: phase.to_owned(),
        duration_s: duration,
        users: args.users,
        requests,
        rps,
        p50_ms: pct(0.50),
        p95_ms: pct(0.95),
        p99_ms: p99,
        max_ms: ms(max_us),
        outcomes,
        expected_rejections,
        unexpected: failures.max(server_errors),
        key_cache_hit_rate: prom::hit_rate(before, after, prom::KEY_CACHE),
        token_cache_hit_rate: prom::hit_rate(before, after, prom::TOKEN_CACHE),
        jwks_fetches: prom::delta_where(before, after, prom::JWKS_FETCH, &[]).round() as u64,
        issuer: report::IssuerSummary {
            tokens_issued: prom::deltas_by(
                issuer_before,
                issuer_after,
                prom::TOKENS_ISSUED,
                &["alg"],
            ),
            token_requests: prom::deltas_by(
                issuer_before,
                issuer_after,
                prom::TOKEN_REQUESTS,
                &["outcome"],
            ),
        },
        events,
        verifier_rss_kib: rss,
        // Capacity counts legitimate tokens only: expected 401s are cheap, and
        // the p99 is the legitimate tokens' own.
        capacity: args.target_rps.and_then(|t| {
            capacity::plan(
                t,
                legitimate as f64 / duration,
                p99,
                args.p99_ms,
                args.users,
            )
        }),
    }
}

/// The run fails on any unexpected outcome; `--quick` also checks the report's shape.
fn check(summary: &Summary, quick: bool) -> anyhow::Result<()> {
    let unexpected: u64 = summary.phases.iter().map(|p| p.unexpected).sum();
    if unexpected > 0 {
        bail!("{unexpected} unexpected outcomes (legitimate tokens rejected or 5xx)");
    }
    if quick {
        if summary.phases.len() != 3 {
            bail!("expected three phases, ran {}", summary.phases.len());
        }
        for p in &summary.phases {
            if p.requests == 0 {
                bail!("phase {}: no requests", p.phase);
            }
            for rate in [p.key_cache_hit_rate, p.token_cache_hit_rate]
                .into_iter()
                .flatten()
            {
                if !(0.0..=1.0).contains(&rate) {
                    bail!("phase {}: hit rate {rate} outside [0, 1]", p.phase);
                }
            }
            if p.token_cache_hit_rate.is_none() {
                bail!("phase {}: no token-cache lookups recorded", p.phase);
            }
        }
        if summary.phases.iter().all(|p| p.expected_rejections == 0) {
            bail!("no expected rejection was counted");
        }
    }
    Ok(())
}
