//! `--through-gateway`: the phase's tokens through `keyshift gateway`.
//!
//! The gateway runs from the harness's config (its `[gateway]` table has one
//! route, `verify = true, sign = true`, for every path, see
//! [`crate::services`]) in front of [`Upstream`], a tiny loopback server
//! that answers 200 and checks each request carries a token the gateway
//! signed (RS256, the route's audience, `act.sub` the gateway). The gateway
//! reads its phase at start (SIGHUP only reloads its keys), so it is started
//! for each phase after the switch and the verifier's own run, driven by
//! goose with the same pool for `--duration` (3 s in `--quick`), scraped
//! before and after, and stopped: its caches start cold every phase.
//!
//! Its figures stand beside the verifier's of the same phase: same tokens,
//! same users, same machine; the overhead is the difference.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::AUTHORIZATION;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use keyshift_core::{Alg, Phase};
use keyshift_testkit::jwt;

use crate::drive::{self, Sent};
use crate::http;
use crate::pool::{Kind, Pool};
use crate::prom::{self, Samples};
use crate::report::{GatewaySummary, PhaseSummary};
use crate::services::{Process, GATEWAY_AUDIENCE};

/// `act.sub` of the tokens the gateway signs (keyshift-gateway's `ACTOR`).
const ACTOR: &str = "keyshift-gateway";

/// What the upstream saw.
#[derive(Debug, Default)]
pub struct Upstream {
    /// Requests received.
    requests: AtomicU64,
    /// Of which without a gateway-signed token.
    bad_tokens: AtomicU64,
}

/// The upstream's counts at one instant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UpstreamCounts {
    /// Requests received.
    pub requests: u64,
    /// Of which without a gateway-signed token.
    pub bad_tokens: u64,
}

impl Upstream {
    /// Counts so far.
    pub fn counts(&self) -> UpstreamCounts {
        UpstreamCounts {
            requests: self.requests.load(Ordering::Relaxed),
            bad_tokens: self.bad_tokens.load(Ordering::Relaxed),
        }
    }

    /// Starts the upstream on 127.0.0.1:0; returns its address.
    pub async fn start(self: &Arc<Self>) -> anyhow::Result<SocketAddr> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the gateway's upstream")?;
        let addr = listener.local_addr()?;
        let me = self.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let me = me.clone();
                tokio::spawn(async move {
                    let svc =
                        hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                            let me = me.clone();
                            async move { Ok::<_, Infallible>(me.answer(req).await) }
                        });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Ok(addr)
    }

    async fn answer(&self, req: Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let signed = req
            .headers()
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(gateway_signed);
        if !signed {
            self.bad_tokens.fetch_add(1, Ordering::Relaxed);
        }
        drop(req.into_body().collect().await);
        Response::new(Full::new(Bytes::from_static(b"ok\n")))
    }
}

/// Whether `token` reads as one the gateway signed for this route (no
/// signature check: the gateway's signing is its own crate's to test; the
/// harness checks the client's credential never reached the upstream).
pub fn gateway_signed(token: &str) -> bool {
    let (Some(h), Some(c)) = (jwt::header(token), jwt::payload(token)) else {
        return false;
    };
    h.alg == Alg::Rs256
        && h.kid.is_some()
        && c["aud"].as_str() == Some(GATEWAY_AUDIENCE)
        && c["act"]["sub"].as_str() == Some(ACTOR)
}

/// What a gateway run needs.
#[derive(Debug)]
pub struct GatewayRun<'a> {
    /// The binary.
    pub keyshift: &'a Path,
    /// The harness's config (with its `[gateway]`), in the phase.
    pub config: &'a Path,
    /// Where its log goes.
    pub log: &'a Path,
    /// The upstream.
    pub upstream: &'a Upstream,
    /// Goose users (the verifier's run's).
    pub users: usize,
    /// Load time.
    pub duration: Duration,
    /// goose's HTML report.
    pub report_html: &'a Path,
}

/// Starts the gateway, drives the pool through it, scrapes it and stops it;
/// the figures are set against the verifier's `alone`.
pub async fn run_phase(
    http_client: &reqwest::Client,
    ph: Phase,
    run: GatewayRun<'_>,
    pool: &Arc<Pool>,
    alone: &PhaseSummary,
) -> anyhow::Result<GatewaySummary> {
    let gateway = Process::start(run.keyshift, "gateway", run.config, run.log)?;
    let before = http::scrape(http_client, gateway.addr).await?;
    let upstream_before = run.upstream.counts();
    println!(
        "phase {ph}: through the gateway at {}, {} users for {} s",
        gateway.addr,
        run.users,
        run.duration.as_secs()
    );
    let sent = drive::drive(
        drive::Target::gateway(gateway.addr),
        ph,
        run.users,
        run.duration,
        run.report_html,
        pool,
        None,
    )
    .await
    .with_context(|| format!("phase {ph}: goose through the gateway"))?;
    let after = http::scrape(http_client, gateway.addr).await?;
    drop(gateway);
    let up = run.upstream.counts();
    let upstream = UpstreamCounts {
        requests: up.requests - upstream_before.requests.min(up.requests),
        bad_tokens: up.bad_tokens - upstream_before.bad_tokens.min(up.bad_tokens),
    };
    Ok(summarize(&sent, &before, &after, upstream, alone))
}

/// The gateway's figures from goose's tally, its `/metrics` and the upstream's counts.
pub fn summarize(
    sent: &Sent,
    before: &Samples,
    after: &Samples,
    upstream: UpstreamCounts,
    alone: &PhaseSummary,
) -> GatewaySummary {
    let (requests, legitimate) = sent.answered_totals();
    let failed: u64 = sent.kinds.values().map(|c| c.failed).sum();
    let server_errors: u64 = sent.kinds.values().map(|c| c.server_errors).sum();
    let seconds = sent.seconds.max(1e-3);
    let legitimate_rps = legitimate as f64 / seconds;
    GatewaySummary {
        duration_s: sent.seconds,
        requests,
        rps: requests as f64 / seconds,
        legitimate_rps,
        p50_ms: sent.legitimate.p50_ms,
        p99_ms: sent.legitimate.p99_ms,
        sent: sent
            .kinds
            .iter()
            .filter(|(_, c)| c.sent + c.ok + c.failed > 0)
            .map(|(k, c)| (k.name().to_owned(), *c))
            .collect(),
        unexpected: failed.max(server_errors) + sent.foreign_requests,
        outcomes: prom::deltas_by(before, after, prom::GATEWAY_REQUESTS, &["outcome"]),
        upstream_errors: prom::deltas_by(before, after, prom::GATEWAY_UPSTREAM_ERRORS, &["kind"]),
        signed: prom::delta_where(before, after, prom::GATEWAY_SIGNED, &[]).round() as u64,
        signed_cache_hit_rate: prom::hit_rate(before, after, prom::GATEWAY_SIGNED_CACHE),
        upstream_requests: upstream.requests,
        upstream_bad_tokens: upstream.bad_tokens,
        added_p50_ms: sent.legitimate.p50_ms - alone.p50_ms,
        added_p99_ms: sent.legitimate.p99_ms - alone.p99_ms,
        throughput_ratio: if alone.legitimate_rps > 0.0 {
            legitimate_rps / alone.legitimate_rps
        } else {
            0.0
        },
    }
}

/// Everything wrong with a gateway run (outcomes, never speeds): goose saw
/// every expected answer; the gateway proxied exactly the legitimate
/// requests and refused the others as `unauthorized`; the upstream got only
/// gateway-signed tokens, one per proxied request; no upstream error.
pub fn problems(g: &GatewaySummary) -> Vec<String> {
    let mut problems = Vec::new();
    if g.unexpected > 0 {
        problems.push(format!(
            "{} requests not answered as expected through the gateway",
            g.unexpected
        ));
    }
    let between = |lo: u64, hi: u64| move |n: u64| -> bool { n >= lo && n <= hi };
    let (mut legit_ok, mut legit_sent, mut refused_ok, mut refused_sent) = (0, 0, 0, 0);
    for kind in Kind::ALL {
        let Some(c) = g.sent.get(kind.name()) else {
            continue;
        };
        let most = c.sent.max(c.ok + c.failed);
        if kind.legitimate() {
            legit_ok += c.ok;
            legit_sent += most;
        } else {
            refused_ok += c.ok;
            refused_sent += most;
        }
    }
    let outcome = |name: &str| g.outcomes.get(name).copied().unwrap_or(0);
    if !between(legit_ok, legit_sent)(outcome("proxied")) {
        problems.push(format!(
            "the gateway counted {} proxied, goose saw {legit_ok} legitimate requests answered 200 of {legit_sent} sent",
            outcome("proxied")
        ));
    }
    if !between(refused_ok, refused_sent)(outcome("unauthorized")) {
        problems.push(format!(
            "the gateway counted {} unauthorized, goose saw {refused_ok} refused tokens answered 401 of {refused_sent} sent",
            outcome("unauthorized")
        ));
    }
    for (name, n) in &g.outcomes {
        if !matches!(name.as_str(), "proxied" | "unauthorized") {
            problems.push(format!("the gateway counted {n} {name}"));
        }
    }
    let errors: u64 = g.upstream_errors.values().sum();
    if errors > 0 {
        problems.push(format!("{errors} upstream errors"));
    }
    if g.upstream_bad_tokens > 0 {
        problems.push(format!(
            "the upstream got {} request(s) without a gateway-signed RS256 token",
            g.upstream_bad_tokens
        ));
    }
    if !between(legit_ok, legit_sent)(g.upstream_requests) {
        problems.push(format!(
            "the upstream got {} requests, goose saw {legit_ok} of {legit_sent} legitimate ones answered 200",
            g.upstream_requests
        ));
    }
    if legit_ok > 0 && g.signed == 0 {
        problems.push("requests proxied but no token signed".into());
    }
    if let Some(r) = g.signed_cache_hit_rate {
        if !(0.0..=1.0).contains(&r) {
            problems.push(format!("signed-token cache hit rate {r} outside [0, 1]"));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drive::SentCount;
    use keyshift_core::b64;

    fn token(alg: &str, aud: &str, actor: &str) -> String {
        format!(
            "{}.{}.c2ln",
            b64::encode(format!(r#"{{"alg":"{alg}","kid":"k1","typ":"at+jwt"}}"#)),
            b64::encode(format!(r#"{{"aud":"{aud}","act":{{"sub":"{actor}"}}}}"#))
        )
    }

    #[test]
    fn only_tokens_the_gateway_signed_for_the_route_pass_the_upstream() {
        assert!(gateway_signed(&token("RS256", GATEWAY_AUDIENCE, ACTOR)));
        assert!(!gateway_signed(&token("HS256", GATEWAY_AUDIENCE, ACTOR)));
        assert!(!gateway_signed(&token(
            "RS256",
            "https://api.loadtest",
            ACTOR
        )));
        assert!(!gateway_signed(&token("RS256", GATEWAY_AUDIENCE, "svc-00")));
        assert!(!gateway_signed("not-a-token"));
    }

    fn clean() -> GatewaySummary {
        let c = |sent, ok| SentCount {
            sent,
            ok,
            ..SentCount::default()
        };
        GatewaySummary {
            requests: 1000,
            sent: [
                (Kind::Rs256.name().to_owned(), c(980, 980)),
                (Kind::Attack.name().to_owned(), c(20, 20)),
            ]
            .into_iter()
            .collect(),
            outcomes: [("proxied".to_owned(), 980), ("unauthorized".to_owned(), 20)]
                .into_iter()
                .collect(),
            signed: 40,
            signed_cache_hit_rate: Some(0.96),
            upstream_requests: 980,
            ..GatewaySummary::default()
        }
    }

    #[test]
    fn a_clean_run_has_no_problems_and_each_fault_is_named() {
        assert_eq!(problems(&clean()), Vec::<String>::new());
        let mut g = clean();
        g.upstream_bad_tokens = 1;
        assert!(problems(&g)[0].contains("without a gateway-signed RS256 token"));
        let mut g = clean();
        g.outcomes.insert("sign_failed".into(), 2);
        assert!(problems(&g)[0].contains("2 sign_failed"));
        let mut g = clean();
        g.outcomes.insert("proxied".into(), 999);
        assert!(problems(&g)[0].contains("999 proxied"));
        let mut g = clean();
        g.upstream_errors.insert("connect".into(), 1);
        assert!(problems(&g)[0].contains("1 upstream errors"));
        let mut g = clean();
        g.signed = 0;
        assert!(problems(&g)[0].contains("no token signed"));
        let mut g = clean();
        g.unexpected = 3;
        assert!(problems(&g)[0].contains("3 requests not answered"));
    }

    #[test]
    fn figures_come_from_goose_the_metrics_and_the_upstream() {
        let mut sent = Sent {
            seconds: 2.0,
            ..Sent::default()
        };
        sent.legitimate.p50_ms = 0.5;
        sent.legitimate.p99_ms = 2.0;
        sent.kinds.insert(
            Kind::Hs256,
            SentCount {
                sent: 200,
                ok: 200,
                ..SentCount::default()
            },
        );
        let before = prom::parse(
            "keyshift_gateway_signed_cache_total{result=\"hit\"} 10\nkeyshift_gateway_signed_total{route=\"loadtest\"} 3\n",
        );
        let after = prom::parse(concat!(
            "keyshift_gateway_signed_cache_total{result=\"hit\"} 190\n",
            "keyshift_gateway_signed_cache_total{result=\"miss\"} 20\n",
            "keyshift_gateway_signed_total{route=\"loadtest\"} 23\n",
            "keyshift_gateway_requests_total{route=\"loadtest\",outcome=\"proxied\"} 200\n",
        ));
        let mut alone = crate::report::tests::phase(Phase::Dual);
        alone.legitimate_rps = 400.0;
        alone.p50_ms = 0.25;
        alone.p99_ms = 1.0;
        let g = summarize(
            &sent,
            &before,
            &after,
            UpstreamCounts {
                requests: 200,
                bad_tokens: 0,
            },
            &alone,
        );
        assert_eq!(g.signed, 20);
        assert_eq!(g.signed_cache_hit_rate, Some(0.9));
        assert_eq!(g.outcomes.get("proxied"), Some(&200));
        assert_eq!(g.legitimate_rps, 100.0);
        assert_eq!(g.throughput_ratio, 0.25);
        assert_eq!((g.added_p50_ms, g.added_p99_ms), (0.25, 1.0));
        assert_eq!(problems(&g), Vec::<String>::new());
    }
}
