//! The goose driver: users send `GET /verify` with pooled tokens for a fixed
//! time, each request named by its [`Kind`] so goose counts and times the
//! kinds apart and fails a request whose status is not the expected one.
//! Goose itself runs quiet; a side task prints a progress line.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use goose::goose::TransactionFunction;
use goose::metrics::{GooseMetrics, GooseRequestMetricTimingData};
use goose::prelude::*;
use keyshift_core::Phase;
use serde::{Deserialize, Serialize};

use crate::answers::{self, Class, VerifyLedger};
use crate::http;
use crate::pool::{Kind, Pool};
use crate::proxy::ProxyControl;

/// What happened to the requests of one kind.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct SentCount {
    /// Requests the harness started (before any answer).
    pub sent: u64,
    /// Goose: answered with the expected status.
    pub ok: u64,
    /// Goose: answered otherwise, or not at all (timeouts).
    pub failed: u64,
    /// Goose: answers with a 5xx status.
    pub server_errors: u64,
    /// Of `server_errors`, the 503s the soak judged intended (during the
    /// JWKS outage, to a request expecting 401; goose counts them in `ok`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub outage_503: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Latency figures, milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
pub struct Latency {
    /// Median.
    pub p50_ms: f64,
    /// 95th percentile.
    pub p95_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Slowest.
    pub max_ms: f64,
}

/// One phase's load, as goose and the harness saw it.
#[derive(Debug, Clone, Default)]
pub struct Sent {
    /// Wall time of the goose run, seconds.
    pub seconds: f64,
    /// Per kind.
    pub kinds: BTreeMap<Kind, SentCount>,
    /// Latency of the legitimate-token requests.
    pub legitimate: Latency,
    /// Slowest request of any kind, ms.
    pub max_ms: f64,
    /// Goose rows that are none of ours (should not exist).
    pub foreign_requests: u64,
}

impl Sent {
    /// Requests answered (as expected or not) of `kind`.
    pub fn answered(&self, kind: &Kind) -> u64 {
        self.kinds.get(kind).map(|c| c.ok + c.failed).unwrap_or(0)
    }

    /// Requests answered, all kinds: (all, those with a legitimate token).
    pub fn answered_totals(&self) -> (u64, u64) {
        let all = Kind::ALL.iter().map(|k| self.answered(k)).sum();
        let legitimate = Kind::ALL
            .iter()
            .filter(|k| k.legitimate())
            .map(|k| self.answered(k))
            .sum();
        (all, legitimate)
    }
}

/// One goose request row, decoupled from goose's types.
#[derive(Debug)]
pub struct Row<'a> {
    /// `"GET <name>"`.
    pub key: &'a str,
    /// Expected status.
    pub success: u64,
    /// Anything else.
    pub fail: u64,
    /// Status → count.
    pub statuses: Vec<(u16, u64)>,
    /// Goose's timing data.
    pub timing: &'a GooseRequestMetricTimingData,
}

/// Tallies goose's rows into [`Sent`], starting from the pool's counts
/// (`sent`, `outage_503`) of each kind.
pub fn tally<'a>(
    rows: impl IntoIterator<Item = Row<'a>>,
    pool_counts: impl Fn(Kind) -> SentCount,
    seconds: f64,
) -> Sent {
    let mut kinds: BTreeMap<Kind, SentCount> =
        Kind::ALL.into_iter().map(|k| (k, pool_counts(k))).collect();
    let mut legit = GooseRequestMetricTimingData::default();
    let mut max_us = 0u64;
    let mut foreign = 0u64;
    for row in rows {
        max_us = max_us.max(row.timing.maximum_time_us);
        let Some(kind) = Kind::from_request_key(row.key) else {
            foreign += row.success + row.fail;
            continue;
        };
        let c = kinds.entry(kind).or_default();
        c.ok += row.success;
        c.failed += row.fail;
        c.server_errors += row
            .statuses
            .iter()
            .filter(|(code, _)| *code >= 500)
            .map(|(_, n)| n)
            .sum::<u64>();
        if kind.legitimate() {
            merge(&mut legit, row.timing);
        }
    }
    let ms = |us: u64| us as f64 / 1000.0;
    let pct = |p: f32| ms(legit.percentile_us(p));
    Sent {
        seconds,
        kinds,
        legitimate: Latency {
            p50_ms: pct(0.50),
            p95_ms: pct(0.95),
            p99_ms: pct(0.99),
            max_ms: ms(legit.maximum_time_us),
        },
        max_ms: ms(max_us),
        foreign_requests: foreign,
    }
}

/// Adds `other`'s times to `into` (goose keeps per-name histograms; the
/// legitimate kinds' p99 is over their union).
fn merge(into: &mut GooseRequestMetricTimingData, other: &GooseRequestMetricTimingData) {
    for (bucket, count) in other.times_us.iter() {
        let had = into.times_us.get(bucket).copied().unwrap_or(0);
        into.times_us.insert(*bucket, had + count);
    }
    if other.counter > 0 {
        into.minimum_time_us = if into.counter == 0 {
            other.minimum_time_us
        } else {
            into.minimum_time_us.min(other.minimum_time_us)
        };
    }
    into.maximum_time_us = into.maximum_time_us.max(other.maximum_time_us);
    into.total_time_us += other.total_time_us;
    into.counter += other.counter;
}

fn rows(metrics: &GooseMetrics) -> Vec<Row<'_>> {
    metrics
        .requests
        .iter()
        .map(|(key, agg)| Row {
            key,
            success: agg.success_count as u64,
            fail: agg.fail_count as u64,
            statuses: agg
                .status_code_counts
                .iter()
                .map(|(code, n)| (*code, *n as u64))
                .collect(),
            timing: &agg.raw_data,
        })
        .collect()
}

/// Each user's client: the harness's timeouts, and no proxy.
async fn setup_client(user: &mut GooseUser) -> TransactionResult {
    user.set_client_builder(http::builder()).await?;
    Ok(())
}

/// The soak's own view of the answers: its ledger, and the JWKS outage
/// switch its 503s are judged against.
#[derive(Debug, Clone)]
pub struct Watch {
    /// Where every answer is counted.
    pub ledger: Arc<VerifyLedger>,
    /// The outage switch.
    pub proxy: Arc<ProxyControl>,
}

/// Where goose sends the pooled tokens.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    /// The service.
    pub addr: SocketAddr,
    /// The path of every request.
    pub path: &'static str,
    /// goose's scenario name.
    pub scenario: &'static str,
}

impl Target {
    /// The verifier's forward-auth route, `GET /verify`.
    pub fn verifier(addr: SocketAddr) -> Target {
        Target {
            addr,
            path: "/verify",
            scenario: "verifier",
        }
    }

    /// The gateway's route for every path: `GET /` is proxied upstream.
    pub fn gateway(addr: SocketAddr) -> Target {
        Target {
            addr,
            path: "/",
            scenario: "gateway",
        }
    }
}

/// The goose transaction: one request to `path` with a token from `pool`.
fn verify_with(path: &'static str, pool: Arc<Pool>, watch: Option<Watch>) -> Transaction {
    let verify: TransactionFunction =
        Arc::new(move |user| Box::pin(verify(user, path, pool.clone(), watch.clone())));
    Transaction::new(verify)
}

/// One request with a pooled token; with a [`Watch`], its answer is
/// classified and counted, and an intended 503 is no goose failure.
async fn verify(
    user: &mut GooseUser,
    path: &str,
    pool: Arc<Pool>,
    watch: Option<Watch>,
) -> TransactionResult {
    let tok = pool.pick();
    pool.record_sent(tok.kind);
    let before = watch.as_ref().map(|w| {
        w.ledger.of(tok.kind).sent();
        w.proxy.outage_mark()
    });
    let builder = user
        .get_request_builder(&GooseMethod::Get, path)?
        .header("authorization", tok.header.as_str());
    let request = GooseRequest::builder()
        .set_request_builder(builder)
        .name(tok.kind.name())
        .expect_status_code(tok.kind.expected_status())
        .build();
    let mut goose = user.request(request).await?;
    if let (Some(w), Some(before)) = (&watch, before) {
        let status = goose.response.as_ref().ok().map(|r| r.status().as_u16());
        let class = answers::classify(status, before.overlaps(w.proxy.outage_mark()));
        w.ledger.of(tok.kind).answered(class);
        if class == Class::Outage503 && answers::verify_as_expected(tok.kind, class) {
            pool.record_outage_503(tok.kind);
            user.set_success(&mut goose.request)?;
        }
    }
    Ok(())
}

/// Runs goose against `target` for `duration`, its users drawing from
/// `pool`; with `watch`, every answer is also counted there. The counts are
/// this run's (a pool may be driven twice: the verifier, then the gateway).
pub async fn drive(
    target: Target,
    phase: Phase,
    users: usize,
    duration: Duration,
    report_html: &Path,
    pool: &Arc<Pool>,
    watch: Option<Watch>,
) -> anyhow::Result<Sent> {
    let mut config = goose::config::GooseConfiguration::default();
    config.host = Some(format!("http://{}", target.addr));
    config.users = Some(users);
    config.increase_rate = Some(users.to_string());
    config.run_time = Some(format!("{}s", duration.as_secs()));
    config.no_telnet = true;
    config.no_reset_metrics = true;
    config.no_print_metrics = true;
    config.quiet = 1;
    config.report_file = vec![report_html.display().to_string()];
    let attack = GooseAttack::initialize_with_config(config)?.register_scenario(
        Scenario::new(target.scenario)
            .register_transaction(transaction!(setup_client).set_on_start())
            .register_transaction(verify_with(target.path, pool.clone(), watch)),
    );
    let sent_before = Kind::ALL.map(|k| pool.stats.sent(k));
    let outage_before = Kind::ALL.map(|k| pool.stats.outage_503(k));
    let progress = tokio::spawn(progress(phase, duration, pool.clone()));
    let started = Instant::now();
    let result = attack.execute().await;
    let seconds = started.elapsed().as_secs_f64();
    progress.abort();
    let metrics = result?;
    let pool_counts = |k: Kind| SentCount {
        sent: pool.stats.sent(k) - sent_before[k.index()].min(pool.stats.sent(k)),
        outage_503: pool.stats.outage_503(k)
            - outage_before[k.index()].min(pool.stats.outage_503(k)),
        ..SentCount::default()
    };
    Ok(tally(rows(&metrics), pool_counts, seconds))
}

/// Prints phase, elapsed/total, requests so far and the current rate every
/// second (every 2 s for phases over 10 s); ends with the phase (aborted)
/// or after the phase plus a minute at most.
async fn progress(phase: Phase, duration: Duration, pool: Arc<Pool>) {
    let every = if duration <= Duration::from_secs(10) {
        Duration::from_secs(1)
    } else {
        Duration::from_secs(2)
    };
    let started = Instant::now();
    let (mut last_n, mut last_t) = (0u64, started);
    let ticks = (duration + Duration::from_secs(60)).as_secs() / every.as_secs().max(1);
    for _ in 0..ticks {
        tokio::time::sleep(every).await;
        let n = pool.stats.sent_total();
        let now = Instant::now();
        let rate = (n - last_n.min(n)) as f64 / now.duration_since(last_t).as_secs_f64().max(1e-3);
        println!(
            "  {:<10} {:>5.1}/{} s  {n:>9} requests  {rate:>7.0} req/s now",
            phase.as_str(),
            started.elapsed().as_secs_f64(),
            duration.as_secs()
        );
        (last_n, last_t) = (n, now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timing(times_us: &[(u64, usize)]) -> GooseRequestMetricTimingData {
        let mut t = GooseRequestMetricTimingData::default();
        for (us, n) in times_us {
            t.times_us.insert(*us, *n);
            t.counter += n;
            t.total_time_us += us * *n as u64;
            t.maximum_time_us = t.maximum_time_us.max(*us);
            t.minimum_time_us = if t.minimum_time_us == 0 {
                *us
            } else {
                t.minimum_time_us.min(*us)
            };
        }
        t
    }

    #[test]
    fn rows_are_tallied_by_kind_and_latency_is_over_legitimate_kinds_only() {
        let hs = timing(&[(1_000, 98), (2_000, 2)]);
        let rs = timing(&[(3_000, 50)]);
        let attack = timing(&[(90_000, 10)]);
        let other = timing(&[(5, 1)]);
        let rows = vec![
            Row {
                key: "GET HS256 legitimate",
                success: 99,
                fail: 1,
                statuses: vec![(200, 99), (503, 1)],
                timing: &hs,
            },
            Row {
                key: "GET RS256 legitimate",
                success: 50,
                fail: 0,
                statuses: vec![(200, 50)],
                timing: &rs,
            },
            Row {
                key: "GET attack kid (expected 401)",
                success: 10,
                fail: 0,
                statuses: vec![(401, 10)],
                timing: &attack,
            },
            Row {
                key: "GET /somewhere",
                success: 1,
                fail: 0,
                statuses: vec![(200, 1)],
                timing: &other,
            },
        ];
        let pool_counts = |k| SentCount {
            sent: if k == Kind::Hs256 { 101 } else { 0 },
            ..SentCount::default()
        };
        let sent = tally(rows, pool_counts, 2.0);
        let hs = sent.kinds[&Kind::Hs256];
        assert_eq!(
            hs,
            SentCount {
                sent: 101,
                ok: 99,
                failed: 1,
                server_errors: 1,
                outage_503: 0,
            }
        );
        assert_eq!(sent.kinds[&Kind::Attack].ok, 10);
        assert_eq!(sent.kinds[&Kind::Straggler], SentCount::default());
        assert_eq!(sent.foreign_requests, 1);
        assert_eq!(sent.max_ms, 90.0, "max over every kind");
        assert_eq!(sent.legitimate.max_ms, 3.0, "attack latency left out");
        assert!(sent.legitimate.p99_ms >= sent.legitimate.p50_ms);
        assert!(sent.legitimate.p99_ms <= 3.0 && sent.legitimate.p50_ms >= 0.9);
        assert!(
            sent.legitimate.p99_ms > 2.0,
            "the RS256 third of the union sets the p99: {:?}",
            sent.legitimate
        );
    }

    #[test]
    fn nothing_sent_gives_zeros() {
        let sent = tally(Vec::new(), |_| SentCount::default(), 1.0);
        assert_eq!(sent.legitimate, Latency::default());
    }
}
